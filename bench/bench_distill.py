"""Distillation speed: one general-distillation step, ours (MindSpore, GRAPH_MODE) against the
same step written in PyTorch, side by side in one run; and examples/s of GD and TD steps.

The step: a BERT-base-size teacher (12 layers, 768 hidden) and a TinyBERT-4 student (4 layers,
312 hidden, fit_dense to 768), batch 32, seq 128; attention-score MSE on the mapped layers
(teacher layers 2, 5, 8, 11) and hidden-state MSE on the mapped states (0, 3, 6, 9, 12);
AdamW with global-norm clipping. Random weights and token ids: speed does not depend on them.

Each framework runs in its own subprocess (one heavy model at a time on this machine), and the
two alternate for `--rounds` rounds; the figure is the median step time over all rounds.

    python bench/bench_distill.py [--rounds 2] [--steps 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

BATCH, SEQ = 32, 128
TEACHER = dict(hidden=768, layers=12, heads=12, ffn=3072)
STUDENT = dict(hidden=312, layers=4, heads=12, ffn=1200)
VOCAB = 30522
HIDDEN_MAP = [0, 3, 6, 9, 12]
ATTENTION_MAP = [2, 5, 8, 11]


def batch_arrays(batch=BATCH, seq=SEQ):
    import numpy as np

    rng = np.random.default_rng(0)
    input_ids = rng.integers(1000, VOCAB, size=(batch, seq)).astype(np.int32)
    segment_ids = np.zeros((batch, seq), np.int32)
    input_mask = np.ones((batch, seq), np.int32)
    input_mask[:, seq * 3 // 4 :] = 0  # a quarter of every row is padding, as in real batches
    labels = rng.integers(0, 2, size=batch).astype(np.int32)
    return input_ids, segment_ids, input_mask, labels


# ---- ours ---------------------------------------------------------------------------------


def mindspore_steps(kind: str, steps: int, seq: int) -> list:
    import mindspore as ms
    from mindspore import Tensor

    from tinybert_distill.distillers import DistillationLoss
    from tinybert_distill.optimization import TrainStep, build_optimizer, learning_rates
    from tinybert_model import BertConfig, BertForSequenceClassification, BertModel, TinyBertStudent

    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_device("CPU")

    def config(shape, labels=None):
        return BertConfig.from_dict(
            dict(
                vocab_size=VOCAB,
                hidden_size=shape["hidden"],
                num_hidden_layers=shape["layers"],
                num_attention_heads=shape["heads"],
                intermediate_size=shape["ffn"],
                labels=labels,
                task_type="classification" if labels else None,
            )
        )

    labels = ["0", "1"] if kind.startswith("td") else None
    model_class = BertForSequenceClassification if labels else BertModel
    teacher = model_class(config(TEACHER, labels))
    student = TinyBertStudent(model_class(config(STUDENT, labels)), TEACHER["hidden"])
    loss = DistillationLoss(
        teacher,
        student,
        HIDDEN_MAP,
        ATTENTION_MAP,
        layers=kind in ("gd", "td_phase1"),
        prediction=kind == "td_phase2",
    )
    settings = {"learning_rate": 5e-5, "weight_decay": 1e-4, "warmup_ratio": 0.0}
    optimizer = build_optimizer(
        student.trainable_params(), learning_rates(steps + 2, settings), settings
    )
    step = TrainStep(loss, optimizer, loss_scale_value=1.0)
    inputs = [Tensor(x) for x in batch_arrays(seq=seq)]
    inputs = inputs if labels else inputs[:3]
    times = []
    for _ in range(steps + 1):  # the first step compiles the graph
        started = time.perf_counter()
        result = step(*inputs)
        result[0].asnumpy()
        times.append(time.perf_counter() - started)
    return times[1:]


# ---- PyTorch peer: the same models and losses ---------------------------------------------


def torch_steps(steps: int, seq: int) -> list:
    import math

    import torch
    from torch import nn

    torch.set_num_threads(os.cpu_count())

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
        def __init__(self, hidden, layers, heads, ffn, fit_to=None):
            super().__init__()
            self.words = nn.Embedding(VOCAB, hidden)
            self.positions = nn.Embedding(512, hidden)
            self.types = nn.Embedding(2, hidden)
            self.norm = nn.LayerNorm(hidden, eps=1e-12)
            self.layers = nn.ModuleList(Layer(hidden, heads, ffn) for _ in range(layers))
            self.fit_dense = nn.Linear(hidden, fit_to) if fit_to else None

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

    teacher = Bert(**TEACHER).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    student = Bert(**STUDENT, fit_to=TEACHER["hidden"]).train()
    optimizer = torch.optim.AdamW(student.parameters(), lr=5e-5, weight_decay=1e-4, eps=1e-6)
    ids, segments, mask, _ = (torch.from_numpy(x).long() for x in batch_arrays(seq=seq))

    def zero_masked(scores):
        return torch.where(scores <= -100, torch.zeros_like(scores), scores)

    times = []
    for _ in range(steps + 1):
        started = time.perf_counter()
        with torch.no_grad():
            teacher_hidden, teacher_scores = teacher(ids, segments, mask)
        student_hidden, student_scores = student(ids, segments, mask)
        loss = sum(
            nn.functional.mse_loss(zero_masked(student_scores[s]), zero_masked(teacher_scores[t]))
            for s, t in enumerate(ATTENTION_MAP)
        ) + sum(
            nn.functional.mse_loss(student_hidden[s], teacher_hidden[t])
            for s, t in enumerate(HIDDEN_MAP)
        )
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        optimizer.step()
        times.append(time.perf_counter() - started)
    return times[1:]


# ---- driver ---------------------------------------------------------------------------------


def measure(framework: str, kind: str, steps: int, seq: int) -> list:
    """Run one measurement in a fresh subprocess; its step times in seconds."""
    command = [sys.executable, __file__, "--worker", framework, kind, str(steps), str(seq)]
    env = dict(os.environ, GLOG_v="3")
    output = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rounds", type=int, default=2, help="alternating rounds per framework (default 2)"
    )
    parser.add_argument("--steps", type=int, default=5, help="timed steps per round (default 5)")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        framework, kind, steps, seq = args.worker
        steps, seq = int(steps), int(seq)
        times = (
            torch_steps(steps, seq) if framework == "torch" else mindspore_steps(kind, steps, seq)
        )
        print(json.dumps(times))
        return

    print(
        f"general distillation step: batch {BATCH}, seq {SEQ}, "
        "BERT-base teacher, TinyBERT-4 student"
    )
    ours, theirs = [], []
    for round_number in range(args.rounds):
        ours += measure("mindspore", "gd", args.steps, SEQ)
        theirs += measure("torch", "gd", args.steps, SEQ)
        print(
            f"  round {round_number + 1}: ours {statistics.median(ours):.2f} s, "
            f"PyTorch {statistics.median(theirs):.2f} s"
        )
    ours_s, theirs_s = statistics.median(ours), statistics.median(theirs)
    print(
        f"GD step  ours (MindSpore GRAPH) {ours_s:.2f} s  PyTorch 2.13 eager {theirs_s:.2f} s  "
        f"ratio ours/PyTorch {ours_s / theirs_s:.2f}x (target <= 1.0x)"
    )
    print(f"GD examples/s (seq {SEQ}): ours {BATCH / ours_s:.1f}, PyTorch {BATCH / theirs_s:.1f}")
    for kind in ("td_phase1", "td_phase2"):
        times = measure("mindspore", kind, args.steps, 64)
        median = statistics.median(times)
        print(
            f"TD {kind} step (batch {BATCH}, seq 64): {median:.2f} s, "
            f"{BATCH / median:.1f} examples/s"
        )


if __name__ == "__main__":
    main()

"""Does the student keep its teacher's quality, and the ONNX model the student's? The recipe end
to end, each stage one of our console scripts printed before it runs: tokenize train and dev
(`tinybert-data task`), fine-tune the teacher (`tinybert-finetune`), distil a student
(`tinybert-td`, phase 1 then phase 2), export it (`tinybert-export`) and score the ONNX model on
the raw dev file (`tinybert-eval-onnx`). Two plans:

- four tasks (`nox -s bench -- quality`, about 2.5 hours; `--scale` multiplies every step
  budget): SST-2, QNLI, TNEWS and CLUENER at short budgets, batch 32 (QNLI 16), route A's
  student. Targets on SST-2: the student keeps >= 96.8% of its teacher (the TinyBERT paper's
  claim for TinyBERT-4), ONNX within 0.2 points of the student. What stands in for what offline:
  QNLI's train set is not available, so ../shared/data/qnli/dev.tsv is split (its first 4,463
  rows train, the last 1,000 evaluate); there is no pretrained Chinese model, and MiniLM's
  English vocabulary turns 60% of Chinese characters into [UNK], so TNEWS's and CLUENER's
  teacher is all-MiniLM-L6-v2's layers under an embedding table for bert-base-chinese's
  vocabulary (tokens both vocabularies hold keep MiniLM's embedding), far weaker than the zoo's
  Chinese BERT. Results in runs/bench-quality-<time>/.
- `--full` (`nox -s bench -- quality --full`): SST-2 at the budgets of the PyTorch reference run
  in ../shared/DESIGN.md: all of SST-2 train, seq 64, batch 64, warmup 10% then linear decay,
  AdamW weight decay 0.01; the teacher 2 epochs at 3e-5; routes A and B, each task distillation
  2 + 2 epochs at 1e-4 / 5e-5 with the default layer maps; dev scored 4 times an epoch, the
  curves copied to docs/quality_full_curves.png. Targets: teacher >= 0.889, route A >= 0.890,
  route B >= 0.855, ONNX within 0.2 points. About 7 hours here, so resumable: everything lives in
  runs/quality-full/, every stage runs with `--resume true`, a stage whose files exist is
  skipped, wall times add up in stages.json (`--status`: where it stands; `--stop_after
  STAGE`: a piece; `--gd_from GD_CKPT`: route B from a general student made elsewhere, its
  general distillation being the longest stage; `--routes a|b|ab`).

The teacher is all-MiniLM-L6-v2 fine-tuned on the task. Route A: a 4 x 384 student built from
its layers 1, 2, 4, 5. Route B: TinyBERT-4 (4 x 312) from random weights, general distillation
from the pretrained MiniLM for 10 epochs over the wiki sample and SST-2's train sentences packed
to 128 tokens, batch 64, 2e-4.

`--smoke`: CLUENER on the four-task plan (a Chinese teacher, a tagging task), then route B of
the full plan (general distillation), 64 train and 32 dev rows, 200 wiki lines, 1-2 steps a
stage in eager MindSpore (a teacher that learns nothing allowed), in a temporary folder, then
`--status`: the code runs; its figures mean nothing.

    python bench/bench_quality.py [--tasks sst2 qnli tnews cluener] [--scale 1.0]
    python bench/bench_quality.py --full [--status] [--stop_after STAGE] [--routes b]
        [--gd_from ../shared/runs/route_b_gd/gd/gd.ckpt]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

from common import (
    ROOT,
    SHARED_DATA,
    SST2_DEV,
    SST2_TRAIN,
    TINYBERT_4,
    WIKI,
    head_rows,
    machine,
    minilm,
    options,
    output_folder,
    pyplot,
)

from demo import script, sst2_sentences


class Task(NamedTuple):
    """A task's data, its shape, and the four-task plan's budgets."""

    train: Path
    dev: Path
    chinese: bool
    seq_length: int
    batch: int
    teacher_steps: int  # the four-task plan's budgets
    distill_steps: int  # per phase


CHINESE = SHARED_DATA / "vocab" / "bert-base-chinese-vocab.txt"
TNEWS, CLUENER = (
    [SHARED_DATA / t / f"{s}.json" for s in ("train", "dev")] for t in ("tnews", "cluener")
)
TASKS = {
    "sst2": Task(SST2_TRAIN, SST2_DEV, False, 64, 32, 500, 250),
    "qnli": Task(Path("qnli/train.tsv"), Path("qnli/dev.tsv"), False, 128, 16, 280, 140),
    # The Chinese teachers learn most of their embedding table here, hence the longer budgets.
    "tnews": Task(*TNEWS, True, 64, 32, 1000, 200),
    "cluener": Task(*CLUENER, True, 64, 32, 1000, 200),
}
QNLI_EVAL_ROWS = 1000
# The model zoo's published TinyBERT figures (research/nlp/tinybert README); CLUENER's is token
# accuracy there, while we report entity F1.
ZOO = {"sst2": 0.9028, "qnli": 0.8860, "tnews": 0.53, "cluener": 0.915}
# The full plan: the PyTorch reference run's budgets, targets and figures (DESIGN.md).
STEPS_PER_EPOCH = 67349 // 64
OPTIMIZER = {"weight_decay": 0.01, "warmup_ratio": 0.1, "end_learning_rate": 0.0, "power": 1.0}
TARGETS = {"teacher": 0.889, "route_a": 0.890, "route_b": 0.855}
REFERENCE = {"teacher": 0.8945, "route_a": 0.8956, "route_b": 0.8624}
ROUTES = {"a": "route A", "b": "route B td"}  # route -> its stage's name
FULL_STAGES = (
    *("convert", "tokenize train", "tokenize dev", "corpus", "route B gd", "teacher"),
    *("route B td", "export route_b", "score route_b ONNX"),
    *("route A", "export route_a", "score route_a ONNX"),
)
EAGER = {"ms_mode": "PYNATIVE"}  # a smoke run's few steps do not repay compiling


def block(prefix: str, values: dict) -> dict:
    return {f"{prefix}.{key}": value for key, value in values.items()}


class Stages:
    """Each stage's command, whether it is done, and the wall time spent on it so far."""

    def __init__(self, folder: Path, stop_after: str | None = None):
        self.stop_after = stop_after
        self.times_file = folder / "stages.json"
        self.times = json.loads(self.times_file.read_text()) if self.times_file.exists() else {}

    def run(self, name: str, done: Path, command: str, *arguments, **flags) -> None:
        """Run `command *arguments --flag value ...` unless `done` exists; stop if it fails,
        or after it when it is the `stop_after` stage."""
        if not done.exists():
            line = [script(command), *map(str, arguments), *options(flags)]
            print(f"\n[{name}] $ {' '.join(line)}", flush=True)
            started = time.perf_counter()
            result = subprocess.run(line)
            self.times[name] = self.times.get(name, 0) + time.perf_counter() - started
            self.times_file.write_text(json.dumps(self.times, indent=2) + "\n")
            if result.returncode != 0:
                sys.exit(f"bench quality: stage {name} stopped (exit {result.returncode})")
        print(f"[{name}] done ({self.times.get(name, 0) / 60:.1f} min)", flush=True)
        if name == self.stop_after:
            sys.exit(f"stopped after [{name}] (--stop_after); run again to continue")


def status(folder: Path) -> None:
    """Where each training stage stands, from the files on disk."""
    for metrics in sorted(folder.rglob("metrics.jsonl")):
        stage = metrics.parent
        if (stage / "summary.json").exists() or (stage / "gd.ckpt").exists():
            print(f"{stage.relative_to(folder)}: done")
            continue
        last = {}
        for line in metrics.read_text().splitlines():
            record = json.loads(line)
            if "loss" in record:
                last[record["phase"]] = record["step"]
        print(
            f"{stage.relative_to(folder)}: " + ", ".join(f"{p} step {s}" for p, s in last.items())
        )


def chinese_teacher(english: Path, english_vocab: Path, output: Path) -> Path:
    """MiniLM's encoder under an embedding table for bert-base-chinese's vocabulary: tokens both
    vocabularies hold ([CLS], [SEP], digits, punctuation, the CJK characters BERT's uncased
    vocabulary has) keep MiniLM's embedding; the others are drawn with the mean and spread of
    MiniLM's rows, per dimension, the scale its pretrained layers were trained on."""
    import mindspore as ms
    import numpy as np

    from tinybert_data import BertTokenizer
    from tinybert_model import BertModel, read_checkpoint, save_checkpoint

    source = read_checkpoint(english)
    english_ids = BertTokenizer.from_vocab(english_vocab).vocab
    chinese_ids = BertTokenizer.from_vocab(CHINESE).vocab
    model = BertModel(dataclasses.replace(source.config, vocab_size=len(chinese_ids)))
    table_name = "embeddings.word_embeddings.embedding_table"
    english_rows = source.tensors[table_name]
    rng = np.random.default_rng(0)
    rows = rng.normal(
        english_rows.mean(0), english_rows.std(0), (len(chinese_ids), english_rows.shape[1])
    ).astype(np.float32)
    shared = [(i, english_ids[token]) for token, i in chinese_ids.items() if token in english_ids]
    for chinese_id, english_id in shared:
        rows[chinese_id] = english_rows[english_id]
    for name, parameter in model.parameters_and_names():
        parameter.set_data(ms.Tensor(rows if name == table_name else source.tensors[name]))
    print(f"Chinese teacher: {len(shared)} of {len(rows)} embeddings from MiniLM", flush=True)
    save_checkpoint(model, output)
    return output


def budgets(args, name: str, task: Task) -> tuple:
    """(the teacher's flags, task distillation's) in the plan `args` gives."""
    if args.full:
        common = {"resume": "true", "log_every": 50, "save_ckpt_step": 100}
        common["eval_step"] = 2 if args.smoke else STEPS_PER_EPOCH // 4
        teacher = {"epoch_size": 2, "learning_rate": 3e-5}
        teacher.update(block("common_cfg.AdamWeightDecay", OPTIMIZER))
        distill = {"td_phase1_epoch_size": 2, "td_phase2_epoch_size": 2}
        distill.update({"phase1_cfg.learning_rate": 1e-4, "phase2_cfg.learning_rate": 5e-5})
        for phase in ("phase1_cfg", "phase2_cfg"):
            distill.update(block(f"{phase}.AdamWeightDecay", OPTIMIZER))
    else:
        teacher_steps = max(int(task.teacher_steps * args.scale), 1)
        distill_steps = max(int(task.distill_steps * args.scale), 1)
        common = {"log_every": 20}
        # Every teacher, the Chinese ones included, at 5e-5: higher rates, tried for the Chinese
        # teachers' new embeddings, do worse (after 240 TNEWS steps dev accuracy is 0.29 at 5e-5,
        # 0.16 at 1e-4, the majority class at 2e-4).
        teacher = {"train_steps": teacher_steps, "eval_step": teacher_steps, "learning_rate": 5e-5}
        distill = {"train_steps": distill_steps, "eval_step": distill_steps}
        distill.update({"phase1_cfg.learning_rate": 5e-5, "phase2_cfg.learning_rate": 3e-5})
    common.update(args.flags, task_name=name)
    teacher = {**common, **teacher, "common_cfg.batch_size": task.batch}
    distill = {**common, **distill, **args.td_flags}
    distill.update({"phase1_cfg.batch_size": task.batch, "phase2_cfg.batch_size": task.batch})
    return teacher, distill


def recipe(stages: Stages, args, name: str, task: Task, folder: Path, minilm_ckpt: Path) -> dict:
    """One task: tokenize, fine-tune the teacher, distil each route, export and score each."""
    prefix = "" if args.full else f"{name}: "  # the full plan's stage names predate the plan
    vocab = CHINESE if task.chinese else minilm() / "vocab.txt"
    records = folder / "records"
    for split, source in (("train", task.train), ("dev", task.dev)):
        stages.run(
            f"{prefix}tokenize {split}", records / split / "task.json", "tinybert-data", "task",
            task=name, input=source, vocab=vocab, seq_length=task.seq_length,
            output=records / split, on_error="skip",  # CLUENER train has overlapping spans
        )  # fmt: skip
    teacher_init = minilm_ckpt
    if task.chinese:
        teacher_init = folder / "teacher-init.ckpt"
        if not teacher_init.exists():
            chinese_teacher(minilm_ckpt, minilm() / "vocab.txt", teacher_init)
    teacher, distill = budgets(args, name, task)
    data = {"train_data_dir": records / "train", "eval_data_dir": records / "dev"}
    stages.run(
        f"{prefix}teacher", folder / "teacher" / "summary.json", "tinybert-finetune",
        load_ckpt_path=teacher_init, save_ckpt_path=folder / "teacher", **data, **teacher,
    )  # fmt: skip
    starts = {"a": {"init_student_from_teacher_layers": "[1, 2, 4, 5]"}}
    if "b" in args.routes:
        starts["b"] = {"load_gd_ckpt_path": args.gd_from or general(stages, args, minilm_ckpt)}
    result = {"teacher": best(folder / "teacher"), "routes": {}}
    for route in sorted(args.routes, reverse=True):  # b first: its general student is ready
        student = folder / f"route_{route}"
        stages.run(
            f"{prefix}{ROUTES[route]}", student / "summary.json", "tinybert-td",
            load_teacher_ckpt_path=folder / "teacher" / "best.ckpt", save_ckpt_path=student,
            **data, **distill, **starts[route],
        )  # fmt: skip
        onnx = folder / "export" / f"{student.name}.onnx"
        scores = folder / f"onnx_{student.name}.json"
        stages.run(
            f"{prefix}export {student.name}", onnx, "tinybert-export",
            ckpt_file=student / "best.ckpt", task_name=name, file_name=onnx.with_suffix(""),
            file_format="ONNX",
        )  # fmt: skip
        stages.run(
            f"{prefix}score {student.name} ONNX", scores, "tinybert-eval-onnx", model=onnx,
            task=name, input=task.dev, vocab=vocab, seq_length=task.seq_length, output=scores,
        )  # fmt: skip
        scored = json.loads(scores.read_text())
        result.update(metric=scored["main"], dev_rows=scored["count"])
        result["routes"][student.name] = {"student": best(student), "onnx": scored[scored["main"]]}
        if "token_accuracy" in scored:  # NER: the zoo's CLUENER metric
            result["routes"][student.name]["onnx_token_accuracy"] = scored["token_accuracy"]
    return result


def general(stages: Stages, args, teacher: Path) -> Path:
    """Route B's general student: the corpus (the wiki sample and SST-2's train sentences,
    packed to 128), then general distillation from the pretrained MiniLM into gd/gd.ckpt."""
    records = args.folder / "records" / "corpus"
    sentences = sst2_sentences(args.sst2, args.folder / "sst2_sentences.txt")
    stages.run(
        "corpus", records / "task.json", "tinybert-data", "corpus", "--input", args.wiki,
        sentences, vocab=minilm() / "vocab.txt", seq_length=128, output=records,
    )  # fmt: skip
    optimizer = block("common_cfg.AdamWeightDecay", OPTIMIZER)
    stages.run(
        "route B gd", args.folder / "gd" / "gd.ckpt", "tinybert-gd", load_teacher_ckpt_path=teacher,
        data_dir=records, save_ckpt_path=args.folder / "gd", resume="true", log_every=50,
        save_ckpt_step=100, epoch_size=10, learning_rate=2e-4, **args.flags, **optimizer,
        **{"common_cfg.batch_size": args.batch}, **block("bert_student_net_cfg", TINYBERT_4),
    )  # fmt: skip
    return args.folder / "gd" / "gd.ckpt"


def best(stage: Path) -> float:
    return json.loads((stage / "summary.json").read_text())["best"]


def report(args, results: dict) -> None:
    """results.md and .json; the full plan's curves.png, copied to docs/ after a full run."""
    lines = [
        "| task | model | metric | dev rows | score | kept | ONNX (- model) | target | reference |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    for name, result in results.items():
        teacher = result["teacher"]
        met = (
            f">= {TARGETS['teacher']}: {judge(teacher >= TARGETS['teacher'])}" if args.full else ""
        )
        reference = f"{REFERENCE['teacher']} (PyTorch)" if args.full else ""
        lines.append(f"| {name} | teacher | {result['metric']} | {result['dev_rows']} "
                     f"| {teacher:.4f} | | | {met} | {reference} |")  # fmt: skip
        for route, scores in result["routes"].items():
            student, onnx = scores["student"], scores["onnx"]
            kept, gap = student / teacher if teacher else 0.0, (onnx - student) * 100
            if args.full:
                met = f">= {TARGETS[route]}: {judge(student >= TARGETS[route])}; "
                reference = f"{REFERENCE[route]} (PyTorch)"
            else:
                met = f"kept >= 96.8%: {judge(kept >= 0.968)}; " if name == "sst2" else ""
                reference = f"{ZOO[name]} (model zoo TinyBERT)"
            met += f"ONNX within 0.2: {judge(abs(gap) <= 0.2)}" if met else ""
            lines.append(f"| {name} | {route} | {result['metric']} | {result['dev_rows']} "
                         f"| {student:.4f} | {kept:.1%} | {onnx:.4f} ({gap:+.2f}) | {met} "
                         f"| {reference} |")  # fmt: skip
            if "onnx_token_accuracy" in scores:
                notes.append(
                    f"{name} {route}: ONNX token accuracy {scores['onnx_token_accuracy']:.4f}"
                )
    times = ", ".join(f"{k} {v / 60:.1f} min" for k, v in args.stages.times.items())
    text = "\n".join([*lines, "", *notes, f"{machine()}. Stage wall times: {times}"])
    print("\n" + text, flush=True)
    (args.folder / "results.md").write_text(text + "\n")
    (args.folder / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    if args.full:
        curves = plot_curves(args.folder)
        if not args.smoke:
            shutil.copyfile(curves, ROOT / "docs" / "quality_full_curves.png")


def judge(met: bool) -> str:
    return "met" if met else "NOT met"


def plot_curves(folder: Path) -> Path:
    """Dev accuracy at each evaluation of the teacher and of each route (phase 2 after phase 1)."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(7, 4.2))
    for stage, label in (("teacher", "teacher (fine-tuning)"), ("route_a", "route A student"),
                         ("route_b", "route B TinyBERT-4")):  # fmt: skip
        if not (folder / stage / "metrics.jsonl").exists():
            continue
        records = [json.loads(line) for line in (folder / stage / "metrics.jsonl").open()]
        phase1 = max((r["step"] for r in records if r.get("phase") == "td_phase1"), default=0)
        points = sorted(
            {(r["step"] + phase1 * (r["phase"] == "td_phase2"), r["accuracy"]) for r in records
             if r.get("phase") in ("finetune", "td_phase2") and "accuracy" in r}
        )  # fmt: skip
        axis.plot(
            *zip(*points), marker="o", markersize=3, label=label + " (phase 2)" * bool(phase1)
        )
    axis.axhline(REFERENCE["teacher"], color="grey", linestyle=":", linewidth=1)
    axis.set_xlabel("training steps of the stage (batch 64; students: phase 2 after phase 1)")
    axis.set_ylabel("SST-2 dev accuracy")
    axis.set_title("Full-length recipe on SST-2 (dotted: reference teacher 0.8945)")
    axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(folder / "curves.png", dpi=120)
    return folder / "curves.png"


def split_qnli(folder: Path) -> dict:
    """QNLI dev.tsv -> train.tsv (all but the last 1,000 rows) and dev.tsv (those)."""
    header, *rows = (SHARED_DATA / "qnli" / "dev.tsv").read_text(encoding="utf-8").splitlines()
    folder.mkdir(parents=True, exist_ok=True)
    for name, part in (("train", rows[:-QNLI_EVAL_ROWS]), ("dev", rows[-QNLI_EVAL_ROWS:])):
        (folder / f"{name}.tsv").write_text("\n".join([header, *part]) + "\n", encoding="utf-8")
    return dict(train=folder / "train.tsv", dev=folder / "dev.tsv")


def run_plan(args) -> None:
    """The plan `args` describe, in args.folder: its tasks one after the other, then the report."""
    args.folder.mkdir(parents=True, exist_ok=True)
    if args.status:
        return status(args.folder)
    args.stages = Stages(args.folder, args.stop_after)
    minilm_ckpt = args.minilm_ckpt or args.folder / "minilm.ckpt"
    args.stages.run("convert", minilm_ckpt, "tinybert-convert", "hf2ms", input=minilm(),
                    output=minilm_ckpt)  # fmt: skip
    results = {}
    for name in args.tasks:
        task = TASKS[name]
        if name == "qnli":
            task = task._replace(**split_qnli(args.folder / "qnli"))
        if args.full:
            task = task._replace(train=args.sst2, dev=args.dev, batch=args.batch)
        if args.smoke:
            task = task._replace(
                train=head_rows(task.train, 64, args.folder / f"{name}_train{task.train.suffix}"),
                dev=head_rows(task.dev, 32, args.folder / f"{name}_dev{task.dev.suffix}"),
            )
        folder = args.folder if args.full else args.folder / name
        results[name] = recipe(args.stages, args, name, task, folder, minilm_ckpt)
        report(args, results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every step budget")
    parser.add_argument("--full", action="store_true", help="SST-2 at the reference budgets")
    parser.add_argument("--status", action="store_true", help="--full: where the run stands")
    parser.add_argument(
        "--stop_after", choices=FULL_STAGES, metavar="STAGE",
        help="--full: stop once this stage is done: " + ", ".join(map(repr, FULL_STAGES)),
    )  # fmt: skip
    parser.add_argument("--gd_from", type=Path, metavar="GD_CKPT", help="--full: route B's start")
    parser.add_argument("--routes", choices=("a", "b", "ab"), help="--full: the students (ab)")
    parser.add_argument("--smoke", action="store_true", help="tiny data and budgets: runs or not")
    args = parser.parse_args()
    if not args.full and (args.status or args.stop_after or args.gd_from or args.routes):
        parser.error("--status, --stop_after, --gd_from and --routes are --full's")
    if args.gd_from is not None and not args.gd_from.is_file():
        parser.error(f"--gd_from {args.gd_from}: no such file")
    print(machine())
    args.sst2, args.dev, args.wiki, args.batch = SST2_TRAIN, SST2_DEV, WIKI, 64
    args.flags, args.td_flags, args.minilm_ckpt = {}, {}, None  # None: the run folder's
    if args.full and not args.smoke:
        args.tasks, args.routes = ["sst2"], args.routes or "ab"
        args.folder = ROOT / "runs" / "quality-full"
        return run_plan(args)
    if not args.smoke:
        args.routes, args.folder = "a", output_folder("quality", False)
        return run_plan(args)
    smoke = output_folder("quality", True)
    args.wiki = head_rows(WIKI, 200, smoke / "wiki.txt")
    args.sst2 = head_rows(SST2_TRAIN, 64, smoke / "sst2_train.tsv")
    args.dev = head_rows(SST2_DEV, 32, smoke / "sst2_dev.tsv")
    args.minilm_ckpt = smoke / "minilm.ckpt"  # converted once for both plans
    args.td_flags = {"allow_weak_teacher": "true"}  # a step or two learns nothing
    plans = (
        dict(full=False, tasks=["cluener"], routes="a", scale=0.001, folder=smoke / "four"),
        dict(full=True, tasks=["sst2"], routes="b", folder=smoke / "full", batch=8),
    )
    for plan in plans:
        vars(args).update(plan)
        # tinybert-gd has no eval_step: the full plan's smoke evaluates at its last step
        args.flags = dict(EAGER, train_steps=2) if args.full else EAGER
        run_plan(args)
    args.status = True
    run_plan(args)


if __name__ == "__main__":
    main()

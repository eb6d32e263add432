"""Fault injection (issue 14): a checkpoint writer killed with SIGKILL at random moments of its
writes, and one whose files may not grow past a limit (RLIMIT_FSIZE, as a full disk). The final
name only ever holds a complete checkpoint whose every tensor verifies, the next writer removes
what a killed one left, and a failed write leaves nothing and names the path.

Writers are forked from the test process (MindSpore is imported once). Set
TINYBERT_FAULTS_REPORT to a file to get the outcome counts (docs/RESULTS.md has a table),
TINYBERT_FAULTS_KILLS to kill more often than CI does.
"""

import json
import os
import random
import re
import signal
import time
from collections import Counter

import numpy as np
from conftest import fork, wait

from tinybert_model import read_checkpoint, write_checkpoint

KILLS = int(os.environ.get("TINYBERT_FAULTS_KILLS", 12))  # more for the RESULTS.md run


def writer(path, writes: int):
    """A body for `fork`: write a 32 MB checkpoint `writes` times (0: until killed), every
    tensor filled with the write's number, which also goes in as the string "version"."""

    def write_over_and_over(out) -> int:
        tensors = {f"layer{i}.weight": np.zeros((1024, 1024), np.float32) for i in range(8)}
        version = 0
        while writes == 0 or version < writes:
            version += 1
            for tensor in tensors.values():
                tensor.fill(version)
            try:
                write_checkpoint(path, tensors, extra={"version": str(version)})
            except OSError as error:
                print(f"error: {error}", file=out)
                return 1
            print(version, time.perf_counter(), file=out)
        return 0

    return write_over_and_over


def check_complete(path) -> int:
    """The version of the checkpoint at `path`, after checking every tensor holds it."""
    checkpoint = read_checkpoint(path)  # verifies each tensor's checksum
    version = int(checkpoint.extra["version"])
    assert len(checkpoint.tensors) == 8
    assert all((t == version).all() for t in checkpoint.tensors.values())
    return version


def others(folder, final) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != final.name)


def report(name: str, outcomes: Counter, runs: int) -> None:
    path = os.environ.get("TINYBERT_FAULTS_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"test": name, "runs": runs, "outcomes": outcomes}) + "\n")


def test_kill_9_while_writing_a_checkpoint_then_rerun(tmp_path):
    final = tmp_path / "model.ckpt"
    pid, out = fork(writer(tmp_path / "reference" / "model.ckpt", 3))
    times = [float(line.split()[1]) for line in out]
    assert wait(pid) == 0, times
    write_seconds = (times[-1] - times[0]) / 2

    rng, outcomes, earlier_debris = random.Random(14), Counter(), []
    for _ in range(KILLS):
        pid, out = fork(writer(final, 0))
        first = out.readline()  # its first write is done, and removed the earlier debris
        assert first.startswith("1 "), first + out.read()
        assert not set(earlier_debris) & set(others(tmp_path, final))
        time.sleep(rng.uniform(0, 2 * write_seconds))
        os.kill(pid, signal.SIGKILL)
        assert wait(pid) == -signal.SIGKILL
        check_complete(final)
        left = [n for n in others(tmp_path, final) if n != "reference"]
        # Only the killed writer's own temporaries, recognisable by its pid.
        ours = rf"\.model\.ckpt\.tinybert-.+-{pid}-.+\.tmp.*"
        assert all(re.fullmatch(ours, name) for name in left), left
        if left:
            outcomes["mid-write: temporaries left, final name holds the last complete one"] += 1
        else:
            outcomes["between writes: final name holds the last complete one"] += 1
        earlier_debris = left

    pid, out = fork(writer(final, 1))
    assert wait(pid) == 0, out.read()
    assert check_complete(final) == 1
    assert others(tmp_path, final) == ["reference"]
    report("checkpoint: kill -9 during write_checkpoint (32 MB)", outcomes, KILLS)


def test_a_full_disk_during_a_checkpoint_write_leaves_the_earlier_one_and_names_the_path(
    tmp_path,
):
    final = tmp_path / "model.ckpt"
    pid, _ = fork(writer(final, 1))
    assert wait(pid) == 0
    before = final.read_bytes()
    pid, out = fork(writer(final, 1), file_size_limit=8_000_000)
    assert wait(pid) == 1
    assert out.read() == f"error: [Errno 27] File too large: '{final}'\n"
    assert final.read_bytes() == before
    assert others(tmp_path, final) == []
    outcomes = Counter({"write failed: the error names the path, nothing left, earlier intact": 1})
    report("checkpoint: file size limit (RLIMIT_FSIZE) during write_checkpoint", outcomes, 1)

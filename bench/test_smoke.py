"""Every benchmark at a tiny size (`--smoke`), so that none breaks unseen when the packages
change: CI runs this file as `nox -s "tests(package='bench')"`. A smoke run checks that a
benchmark's code runs from end to end on today's packages (its figures mean nothing), and that
it writes nothing where real runs leave their figures (docs/, runs/).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent


def outputs() -> dict:
    """The plots under docs/ with their modification times, and the run folders under runs/."""
    plots = {path: path.stat().st_mtime_ns for path in (ROOT / "docs").glob("*.png")}
    runs = set((ROOT / "runs").iterdir()) if (ROOT / "runs").is_dir() else set()
    return {"plots": plots, "runs": runs}


@pytest.mark.parametrize(
    "script", sorted(BENCH.glob("bench_*.py")), ids=lambda path: path.stem[len("bench_") :]
)
def test_smoke(script, tmp_path):
    before = outputs()
    done = subprocess.run(
        [sys.executable, str(script), "--smoke"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=dict(os.environ, GLOG_v="3"),
        timeout=20 * 60,
    )
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    assert outputs() == before, "a smoke run wrote under docs/ or runs/"

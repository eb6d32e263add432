"""The shared offline data (SST-2, QNLI, TNEWS, CLUENER) the task table is checked against."""

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(
    os.environ.get(
        "TINYBERT_SHARED_DATA", Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
    )
)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return SHARED_DATA


@pytest.fixture
def umask():
    """Set the process umask for one test; the old one comes back afterwards."""
    previous = os.umask(0o022)
    yield os.umask
    os.umask(previous)

"""Real data for the tests: CLUENER dev, SST-2 dev and TNEWS from the shared offline data."""

import json
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


@pytest.fixture(scope="session")
def cluener_dev() -> list:
    """CLUENER dev records: {"text", "label"}."""
    lines = (SHARED_DATA / "cluener" / "dev.json").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@pytest.fixture(scope="session")
def cluener_dev_path() -> Path:
    return SHARED_DATA / "cluener" / "dev.json"


@pytest.fixture(scope="session")
def sst2_dev_path() -> Path:
    return SHARED_DATA / "sst2" / "dev.tsv"

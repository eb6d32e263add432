"""Fixtures: the committed tiny ONNX models and vocabularies, and the real dev data."""

import os
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
SHARED_DATA = Path(
    os.environ.get(
        "TINYBERT_SHARED_DATA", Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
    )
)


@pytest.fixture(scope="session")
def sst2_model() -> Path:
    return FIXTURES / "sst2_tiny.onnx"


@pytest.fixture(scope="session")
def cluener_model() -> Path:
    return FIXTURES / "cluener_tiny.onnx"


@pytest.fixture(scope="session")
def vocab_en() -> Path:
    return FIXTURES / "vocab_en.txt"


@pytest.fixture(scope="session")
def vocab_zh() -> Path:
    return FIXTURES / "vocab_zh.txt"


@pytest.fixture(scope="session")
def sst2_dev() -> Path:
    return SHARED_DATA / "sst2" / "dev.tsv"


@pytest.fixture(scope="session")
def cluener_dev() -> Path:
    return SHARED_DATA / "cluener" / "dev.json"


def first_lines(source: Path, count: int, output: Path, header: bool) -> Path:
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    output.write_text("".join(lines[: count + (1 if header else 0)]), encoding="utf-8")
    return output

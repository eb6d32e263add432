"""Shared fixtures: the real data folder and tokenizers on its vocabularies."""

import os
from pathlib import Path

import pytest

from tinybert_data import BertTokenizer

DATA = Path(os.environ.get("TINYBERT_SHARED_DATA", Path(__file__).parents[4] / "shared" / "data"))
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def data() -> Path:
    if not (DATA / "SOURCES.md").is_file():
        pytest.fail(f"shared data not found at {DATA}; set TINYBERT_SHARED_DATA")
    return DATA


@pytest.fixture(scope="session")
def uncased_vocab(data) -> Path:
    return data / "vocab" / "bert-base-uncased-vocab.txt"


@pytest.fixture(scope="session")
def chinese_vocab(data) -> Path:
    return data / "vocab" / "bert-base-chinese-vocab.txt"


@pytest.fixture(scope="session")
def uncased(uncased_vocab) -> BertTokenizer:
    return BertTokenizer.from_vocab(uncased_vocab, do_lower_case=True)


@pytest.fixture(scope="session")
def chinese(chinese_vocab) -> BertTokenizer:
    return BertTokenizer.from_vocab(chinese_vocab, do_lower_case=True)

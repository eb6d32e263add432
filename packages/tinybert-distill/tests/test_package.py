"""The installed package is the one this folder describes."""

from importlib.metadata import version

import tinybert_distill


def test_version_matches_metadata():
    assert tinybert_distill.__version__ == version("tinybert-distill")

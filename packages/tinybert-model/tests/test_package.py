"""The installed package is the one this folder describes."""

from importlib.metadata import version

import tinybert_model


def test_version_matches_metadata():
    assert tinybert_model.__version__ == version("tinybert-model")

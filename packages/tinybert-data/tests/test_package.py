"""The installed package is the one this folder describes."""

from importlib.metadata import version

import tinybert_data


def test_version_matches_metadata():
    assert tinybert_data.__version__ == version("tinybert-data")


def test_import_does_not_pull_mindspore():
    # Run in a fresh interpreter: other tests in this session may have imported anything.
    import subprocess
    import sys

    code = "import sys, tinybert_data; print('mindspore' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

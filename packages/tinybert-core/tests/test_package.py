"""The installed package is the one this folder describes, and needs nothing but Python."""

import subprocess
import sys
from importlib.metadata import requires, version

import tinybert_core


def test_version_matches_metadata():
    assert tinybert_core.__version__ == version("tinybert-core")


def test_declares_and_imports_nothing_outside_the_standard_library():
    assert not [r for r in requires("tinybert-core") or [] if "extra ==" not in r]
    code = (
        "import sys; before = set(sys.modules); import tinybert_core; "
        "print(sorted({m.split('.')[0] for m in set(sys.modules) - before}"
        " - set(sys.stdlib_module_names) - {'tinybert_core'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

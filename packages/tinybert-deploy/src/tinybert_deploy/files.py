"""Atomic file writing, from tinybert-core (one helper for every package): a temporary file
beside the target, renamed into place at the end, with the mode any new file gets."""

from tinybert_core import atomic_path

__all__ = ["atomic_path"]

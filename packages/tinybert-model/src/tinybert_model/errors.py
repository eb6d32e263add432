"""The one exception type tinybert-model raises for bad user input (a tinybert-core
`TinybertError`).

Console scripts catch it and print its message (no stack trace) with a non-zero exit code,
so every message must say which file or tensor is wrong and how.
"""

from tinybert_core import TinybertError


class CheckpointError(TinybertError):
    """A checkpoint or config that cannot be read, converted or loaded as asked."""


def name_some(items, limit: int = 8) -> str:
    """The first few of a list of names, for an error message that stays readable."""
    items = list(items)
    shown = ", ".join(items[:limit])
    return shown + (f" (and {len(items) - limit} more)" if len(items) > limit else "")

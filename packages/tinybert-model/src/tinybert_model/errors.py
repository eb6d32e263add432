"""The one exception type tinybert-model raises for bad user input.

Console scripts catch it and print its message (no stack trace) with a non-zero exit code,
so every message must say which file or tensor is wrong and how.
"""


class CheckpointError(ValueError):
    """A checkpoint or config that cannot be read, converted or loaded as asked."""

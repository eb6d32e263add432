"""Errors that name the file, and where it applies the line, of what is wrong.

`DataError` (a bad input row: `path:line: what is wrong`) and `UnknownTaskError` are
tinybert-core's, shared by every package; `RecordsError` is this package's own.
"""

from __future__ import annotations

from tinybert_core import DataError, TinybertError, UnknownTaskError

__all__ = ["DataError", "RecordsError", "UnknownTaskError"]


class RecordsError(TinybertError):
    """Record files that are missing, corrupt, or disagree with their schema."""

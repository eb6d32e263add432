"""This package's own error: `RecordsError`. A bad input row (`DataError`) and an unknown task
(`UnknownTaskError`) are tinybert-core's, shared by every package."""

from __future__ import annotations

from tinybert_core import TinybertError


class RecordsError(TinybertError):
    """Record files that are missing, corrupt, or disagree with their schema."""

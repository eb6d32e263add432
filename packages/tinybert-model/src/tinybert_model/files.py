"""Atomic file writing, from tinybert-core (one helper for every package): a temporary file
beside the final one, renamed when complete, with the mode any new file gets; the temporaries
of killed writers are removed by the next write. Importable from here as before."""

from tinybert_core import (
    atomic_path,
    new_file_mode,
    remove_stale_temporaries,
    temporary_prefix,
)

__all__ = ["atomic_path", "new_file_mode", "remove_stale_temporaries", "temporary_prefix"]

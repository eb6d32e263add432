"""The contracts every tinybert package shares, each defined once, needing nothing but the
standard library:

    from tinybert_core import COLUMNS, TEXT_COLUMNS, LABELLED_COLUMNS, IGNORE_INDEX, MASK_PENALTY
    from tinybert_core import TASKS, task_spec, CLUENER_TYPES, CLUENER_TAGS
    from tinybert_core import read_task_info, write_task_info, atomic_path, atomic_write
    from tinybert_core import remove_stale_temporaries, temporary_folder, temporary_prefix
    from tinybert_core import TinybertError, DataError, text_lines
"""

from .columns import COLUMNS, IGNORE_INDEX, LABELLED_COLUMNS, MASK_PENALTY, TEXT_COLUMNS
from .errors import DataError, TinybertError, UnknownTaskError
from .files import (
    atomic_path,
    atomic_write,
    new_file_mode,
    remove_stale_temporaries,
    temporary_folder,
    temporary_prefix,
)
from .lines import text_lines
from .task_info import TASK_FILE, read_task_info, write_task_info
from .tasks import CLUENER_TAGS, CLUENER_TYPES, TASK_TYPES, TASKS, TaskSpec, task_spec

__version__ = "0.1.0"

__all__ = [
    "CLUENER_TAGS",
    "CLUENER_TYPES",
    "COLUMNS",
    "IGNORE_INDEX",
    "LABELLED_COLUMNS",
    "MASK_PENALTY",
    "TASKS",
    "TASK_FILE",
    "TASK_TYPES",
    "TEXT_COLUMNS",
    "DataError",
    "TaskSpec",
    "TinybertError",
    "UnknownTaskError",
    "atomic_path",
    "atomic_write",
    "new_file_mode",
    "read_task_info",
    "remove_stale_temporaries",
    "task_spec",
    "temporary_folder",
    "temporary_prefix",
    "text_lines",
    "write_task_info",
]

"""The contracts every tinybert package shares, each defined once, needing nothing but the
standard library:

    from tinybert_core import COLUMNS, TEXT_COLUMNS, LABELLED_COLUMNS, IGNORE_INDEX, MASK_PENALTY
    from tinybert_core import TASKS, task_spec, CLUENER_TYPES, CLUENER_TAGS
    from tinybert_core import read_task_info, write_task_info, atomic_path, atomic_write
    from tinybert_core import remove_stale_temporaries, temporary_folder, temporary_prefix
    from tinybert_core import TinybertError, DataError, text_lines
    from tinybert_core import regular_file, read_text, json_object, folder_file
    from tinybert_core import quiet_on_closed_stdout
"""

from .columns import COLUMNS, IGNORE_INDEX, LABELLED_COLUMNS, MASK_PENALTY, TEXT_COLUMNS
from .console import CLOSED_PIPE_STATUS, quiet_on_closed_stdout
from .errors import DataError, TinybertError, UnknownTaskError
from .files import (
    atomic_path,
    atomic_write,
    new_file_mode,
    remove_stale_temporaries,
    temporary_folder,
    temporary_prefix,
)
from .lines import check_line_ends, text_lines
from .reading import folder_file, json_object, read_text, regular_file
from .task_info import TASK_FILE, check_task_info, read_task_info, write_task_info
from .tasks import CLUENER_TAGS, CLUENER_TYPES, TASK_TYPES, TASKS, TaskSpec, task_spec

__version__ = "0.1.0"

__all__ = [
    "CLOSED_PIPE_STATUS",
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
    "check_line_ends",
    "check_task_info",
    "folder_file",
    "json_object",
    "new_file_mode",
    "quiet_on_closed_stdout",
    "read_task_info",
    "read_text",
    "regular_file",
    "remove_stale_temporaries",
    "task_spec",
    "temporary_folder",
    "temporary_prefix",
    "text_lines",
    "write_task_info",
]

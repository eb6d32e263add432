"""WordPiece tokenization, GLUE/CLUE task readers and pretraining corpora to TFRecord/MindRecord,
without MindSpore.

    from tinybert_data import BertTokenizer, get_task, write_task_records, load_records
    from tinybert_data import open_records  # rows by number, memory bounded

COLUMNS, IGNORE_INDEX, DataError, UnknownTaskError and read_task_info are tinybert-core's:
import them from tinybert_core.
"""

from tinybert_data.errors import RecordsError
from tinybert_data.indexed import IndexedRecords, LoadedRecords, open_records, write_row_indexes
from tinybert_data.pipeline import Summary, write_corpus_records, write_task_records
from tinybert_data.records import RecordsWriter, load_records, read_records, validate_records
from tinybert_data.tasks import TASK_READERS, Example, Task, get_task
from tinybert_data.tokenization import BertTokenizer, Encoding, vocab_tokens

__version__ = "0.2.0"

__all__ = [
    "TASK_READERS",
    "BertTokenizer",
    "Encoding",
    "Example",
    "IndexedRecords",
    "LoadedRecords",
    "RecordsError",
    "RecordsWriter",
    "Summary",
    "Task",
    "get_task",
    "load_records",
    "open_records",
    "read_records",
    "validate_records",
    "vocab_tokens",
    "write_corpus_records",
    "write_row_indexes",
    "write_task_records",
]

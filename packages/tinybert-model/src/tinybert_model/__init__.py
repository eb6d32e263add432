"""MindSpore BERT/TinyBERT cells, task heads and checkpoint conversion.

from tinybert_model import BertConfig, BertForSequenceClassification, load_checkpoint
"""

from .checkpoint import (
    load_checkpoint,
    load_model,
    read_checkpoint,
    save_checkpoint,
    write_checkpoint,
)
from .config import BertConfig
from .convert import hf_to_ms, ms_to_hf, ms_to_tf, ms_to_zoo, tf_to_ms, zoo_to_ms
from .errors import CheckpointError
from .modeling import (
    BertForPreTraining,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
    TinyBertStudent,
)

__version__ = "0.2.0"

__all__ = [
    "BertConfig",
    "BertForPreTraining",
    "BertForSequenceClassification",
    "BertForTokenClassification",
    "BertModel",
    "CheckpointError",
    "TinyBertStudent",
    "hf_to_ms",
    "load_checkpoint",
    "load_model",
    "ms_to_hf",
    "ms_to_tf",
    "ms_to_zoo",
    "read_checkpoint",
    "save_checkpoint",
    "tf_to_ms",
    "write_checkpoint",
    "zoo_to_ms",
]

"""MindSpore BERT/TinyBERT cells, task heads and checkpoint conversion.

from tinybert_model import BertConfig, BertForSequenceClassification, load_checkpoint

Everything other packages use is named here (and in the README's API section); the modules
behind it are internal.
"""

from .checkpoint import (
    load_checkpoint,
    load_model,
    load_tensors,
    named_parameters,
    read_checkpoint,
    save_checkpoint,
    write_checkpoint,
)
from .config import BertConfig, tiny_config
from .convert import (
    hf_to_ms,
    ms_to_hf,
    ms_to_tf,
    ms_to_zoo,
    read_hf_checkpoint,
    read_torch_checkpoint,
    tf_to_ms,
    zoo_to_ms,
)
from .errors import CheckpointError
from .masked_lm import MaskedLMTopK
from .modeling import (
    ARCHITECTURES,
    MASK_PENALTY,
    BertForMaskedLM,
    BertForPreTraining,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
    BertOutput,
    ClassifierOutput,
    MaskedLMOutput,
    PreTrainingOutput,
    StudentOutput,
    TinyBertStudent,
    architecture_for,
    return_layer_outputs,
)
from .names import expected_shapes, tensor_names

__version__ = "0.2.0"

__all__ = [
    "ARCHITECTURES",
    "MASK_PENALTY",
    "BertConfig",
    "BertForMaskedLM",
    "BertForPreTraining",
    "BertForSequenceClassification",
    "BertForTokenClassification",
    "BertModel",
    "BertOutput",
    "CheckpointError",
    "ClassifierOutput",
    "MaskedLMOutput",
    "MaskedLMTopK",
    "PreTrainingOutput",
    "StudentOutput",
    "TinyBertStudent",
    "architecture_for",
    "expected_shapes",
    "hf_to_ms",
    "load_checkpoint",
    "load_model",
    "load_tensors",
    "ms_to_hf",
    "ms_to_tf",
    "ms_to_zoo",
    "named_parameters",
    "read_checkpoint",
    "read_hf_checkpoint",
    "read_torch_checkpoint",
    "return_layer_outputs",
    "save_checkpoint",
    "tensor_names",
    "tf_to_ms",
    "tiny_config",
    "write_checkpoint",
    "zoo_to_ms",
]

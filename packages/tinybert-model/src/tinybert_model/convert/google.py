"""Google's TF1 BERT checkpoints (model.ckpt.index + model.ckpt.data-*), without TensorFlow.

The encoder lives under `bert/`, the pre-training heads under `cls/`, and run_classifier.py's
classifier at the top level (`output_weights`, `output_bias`). Fine-tuned checkpoints also
hold Adam slots and `global_step`: training state, not model, so they are left out.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from tinybert_core import atomic_path

from ..checkpoint import read_checkpoint, stored_architecture, write_checkpoint
from ..config import BertConfig
from ..errors import CheckpointError
from .core import check_layer_count, export_tensors, import_tensors
from .labels import labels_in_task_order
from .tf_checkpoint import read_tf_checkpoint, write_tf_checkpoint

log = logging.getLogger(__name__)

BACKBONE_PREFIX = "bert/"
LAYER_PATTERN = r"^bert/encoder/layer_(\d+)/"


def _is_kernel(name: str) -> bool:
    # Google's dense kernels are [in, out]; MindSpore's Dense weights are [out, in].
    return name.endswith("/kernel")


def _is_training_state(name: str) -> bool:
    return name == "global_step" or name.endswith(("/adam_m", "/adam_v"))


def _find_config(prefix: Path):
    """Google ships bert_config.json beside the checkpoint."""
    folder = prefix if prefix.is_dir() else prefix.parent
    candidate = folder / "bert_config.json"
    return candidate if candidate.is_file() else None


def tf_to_ms(
    input_prefix, output, config=None, strict: bool = True, reorder_labels: bool = False
) -> str:
    """Convert a Google TF1 BERT checkpoint to a MindSpore one; returns the architecture.

    `config` is a BertConfig or a path; by default bert_config.json beside the checkpoint.
    `reorder_labels`: put the classifier's rows in its task's label order (labels.py; the
    config must name the labels, as an HF config.json's id2label does).
    """
    prefix = Path(input_prefix)
    if config is None:
        config_file = _find_config(prefix)
        if config_file is None:
            raise CheckpointError(f"{prefix}: no bert_config.json beside it; pass --config")
        config = BertConfig.from_file(config_file)
    elif not isinstance(config, BertConfig):
        config = BertConfig.from_file(config)
    tensors = read_tf_checkpoint(prefix)
    skipped = {name for name in tensors if _is_training_state(name)}
    if skipped:
        log.info(
            "%s: leaving out %d training-state tensors (Adam slots, global_step)",
            prefix,
            len(skipped),
        )

    if "output_weights" in tensors:
        architecture = "BertForSequenceClassification"
        num_labels = tensors["output_weights"].shape[0]
        if not (config.labels and len(config.labels) == num_labels):
            config.labels = [str(i) for i in range(num_labels)]
        config.task_type = config.task_type or (
            "regression" if num_labels == 1 else "classification"
        )
    elif any(name.startswith("cls/") for name in tensors):
        architecture = "BertForPreTraining"
    else:
        architecture = "BertModel"
    if architecture != "BertForSequenceClassification":
        config.labels, config.task_type = None, None
    check_layer_count(tensors, LAYER_PATTERN, config, str(prefix))

    ours, architecture = import_tensors(
        tensors,
        fmt="tf",
        architecture=architecture,
        config=config,
        backbone_prefix=BACKBONE_PREFIX,
        transposed=_is_kernel,
        ignore=skipped,
        strict=strict,
        source=str(prefix),
    )
    if architecture == "BertModel":
        config.labels, config.task_type = None, None
    if reorder_labels:
        ours = labels_in_task_order(ours, config, architecture, str(prefix))
    write_checkpoint(output, ours, config, architecture)
    return architecture


def ms_to_tf(input_ckpt, output_prefix, config=None) -> str:
    """Write a MindSpore checkpoint as a Google TF1 checkpoint plus bert_config.json."""
    checkpoint = read_checkpoint(input_ckpt)
    config = config or checkpoint.config
    if config is None:
        raise CheckpointError(f"{input_ckpt}: no embedded config; pass --config")
    architecture = stored_architecture(checkpoint, config, input_ckpt)
    if architecture == "BertForTokenClassification":
        raise CheckpointError(f"{input_ckpt}: Google's TF BERT has no token-classification head")
    if architecture == "BertForMaskedLM":
        raise CheckpointError(
            f"{input_ckpt}: Google's TF BERT has no masked-LM-only model (its pre-training "
            "checkpoints have a pooler and a next-sentence head)"
        )
    tensors = {n: v for n, v in checkpoint.tensors.items() if not n.startswith("fit_dense.")}
    theirs = export_tensors(
        tensors,
        fmt="tf",
        architecture=architecture,
        config=config,
        backbone_prefix=BACKBONE_PREFIX,
        transposed=_is_kernel,
        source=str(input_ckpt),
    )
    output_prefix = Path(output_prefix)
    write_tf_checkpoint(output_prefix, theirs)
    with atomic_path(output_prefix.parent / "bert_config.json") as temporary:
        Path(temporary).write_text(json.dumps(config.to_google_dict(), indent=2) + "\n")
    return architecture

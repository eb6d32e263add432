"""Hugging Face BERT directories (config.json + model.safetensors or pytorch_model.bin).

HF keeps the encoder under `bert.` in its head classes and at the top level in a bare
`BertModel` (as all-MiniLM-L6-v2 ships it). Old checkpoints name LayerNorm parameters
gamma/beta; the masked-LM decoder is tied to the word embeddings and usually not stored.
`BertForMaskedLM` has neither pooler nor next-sentence head; `BertForPreTraining` has both.

`pytorch_model.bin` (one file, or shards listed in `pytorch_model.bin.index.json`) is read
without torch and without running it (`torch_pickle`).

huawei-noah's TinyBERT folders are HF folders too (their config.json has no `model_type`):
a general TinyBERT (`TinyBertForPreTraining`: `bert.*`, the pre-training heads `cls.*`, and
`fit_dense`, student width -> teacher width) becomes our general student, the encoder and its
fit_dense, what tinybert-gd writes as gd.ckpt; a task TinyBERT
(`TinyBertForSequenceClassification`: `bert.*`, `classifier`, `fit_dense`) becomes a student
classifier with its fit_dense.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from tinybert_core import atomic_path

from ..checkpoint import Checkpoint, read_checkpoint, stored_architecture, write_checkpoint
from ..config import BertConfig, read_json_object
from ..errors import CheckpointError
from ..modeling import ARCHITECTURES
from ..names import FIT_DENSE, our_prefix
from .core import check_finite, check_layer_count, export_tensors, import_tensors
from .labels import labels_in_task_order
from .torch_pickle import read_torch_checkpoint

log = logging.getLogger(__name__)

LAYER_PATTERN = r"encoder\.layer\.(\d+)\."
# Present in some checkpoints, never weights: the position ids buffer (also under the
# backbone's prefix), the tied decoder's copies.
IGNORED = {
    "embeddings.position_ids",
    "cls.predictions.decoder.weight",
    "cls.predictions.decoder.bias",
}
# The weight files of a folder, in the order they are looked for.
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "pytorch_model.bin.index.json")


def _read_weights(directory: Path) -> dict:
    safetensors_file = directory / "model.safetensors"
    if safetensors_file.is_file():
        try:
            return load_file(str(safetensors_file))
        except Exception as error:  # safetensors raises its own error types
            raise CheckpointError(
                f"{safetensors_file}: not a readable safetensors file ({error})"
            ) from None
    for name in WEIGHT_FILES[1:]:
        if (directory / name).is_file():
            return read_torch_checkpoint(directory / name)
    raise CheckpointError(f"{directory}: no {', '.join(WEIGHT_FILES[:-1])} or {WEIGHT_FILES[-1]}")


def _modern_names(tensors: dict) -> dict:
    """LayerNorm.gamma/beta (old HF) -> LayerNorm.weight/bias."""
    renamed = {}
    for name, value in tensors.items():
        if ".LayerNorm." in name:
            name = name.replace("LayerNorm.gamma", "LayerNorm.weight").replace(
                "LayerNorm.beta", "LayerNorm.bias"
            )
        renamed[name] = value
    return renamed


def _read_config(config_file: Path) -> tuple[dict, BertConfig]:
    """config.json, as a dict and as our BertConfig. A config of another model type (GPT-2,
    RoBERTa, ...) is refused: its tensors would mean other things under similar names.
    huawei-noah's TinyBERT and Google's configs have no model_type."""
    hf_config = read_json_object(config_file)
    model_type = hf_config.get("model_type", "bert")
    if model_type != "bert":
        raise CheckpointError(
            f"{config_file}: model_type is {model_type!r}; tinybert-convert hf2ms reads BERT "
            "models (model_type 'bert')"
        )
    return hf_config, BertConfig.from_json(config_file)


def _architecture(hf_config: dict, tensors: dict) -> str:
    """Which of our classes the folder holds. The pre-training heads are told apart by their
    tensors: a next-sentence head makes a BertForPreTraining even where config.json says
    BertForMaskedLM (as bert-base-uncased's does), a masked-LM head alone a BertForMaskedLM.
    config.json decides the rest (a tagger and a classifier have the same tensors)."""
    declared = (hf_config.get("architectures") or [None])[0]
    has_next_sentence = any(name.startswith("cls.seq_relationship.") for name in tensors)
    has_masked_lm = any(name.startswith("cls.predictions.") for name in tensors)
    if declared == "BertForPreTraining" or has_next_sentence:
        return "BertForPreTraining"
    if has_masked_lm:
        return "BertForMaskedLM"
    if declared in ARCHITECTURES:
        return declared
    if "classifier.weight" in tensors:
        return "BertForSequenceClassification"
    return "BertModel"


def _take_fit_dense(tensors: dict, config: BertConfig, directory: Path) -> dict:
    """A TinyBERT's fit_dense (student hidden -> teacher hidden), taken out of `tensors`."""
    found = {name: tensors.pop(name) for name in FIT_DENSE if name in tensors}
    if not found:
        return found
    weight, bias = found.get("fit_dense.weight"), found.get("fit_dense.bias")
    if weight is None or bias is None:
        raise CheckpointError(f"{directory}: fit_dense has a {', '.join(found)} and nothing else")
    if weight.ndim != 2 or weight.shape[1] != config.hidden_size or bias.shape != weight.shape[:1]:
        raise CheckpointError(
            f"{directory}: fit_dense.weight {tuple(weight.shape)} and fit_dense.bias "
            f"{tuple(bias.shape)} do not map the student's hidden_size {config.hidden_size} "
            "to a teacher's width ([teacher, student] and [teacher])"
        )
    check_finite(found, str(directory))
    return found


def read_hf_checkpoint(input_dir, strict: bool = True) -> Checkpoint:
    """A Hugging Face (or huawei-noah TinyBERT) folder converted to our tensors and config, in
    memory: what `hf_to_ms` writes. A TinyBERT's `fit_dense` is kept under that name."""
    directory = Path(input_dir)
    if not directory.is_dir():
        raise CheckpointError(
            f"{directory}: not a directory (expected a Hugging Face model folder)"
        )
    config_file = directory / "config.json"
    if not config_file.is_file():
        raise CheckpointError(f"{directory}: no config.json (a Hugging Face model folder has one)")
    hf_config, config = _read_config(config_file)
    tensors = _modern_names(_read_weights(directory))
    fit_dense = _take_fit_dense(tensors, config, directory)
    if fit_dense and any(name.startswith("cls.") for name in tensors):
        _take_pretraining_heads(tensors, fit_dense, directory)
    backbone_prefix = "bert." if any(n.startswith("bert.") for n in tensors) else ""
    architecture = _architecture(hf_config, tensors)

    if architecture in ("BertForSequenceClassification", "BertForTokenClassification"):
        num_labels = tensors["classifier.weight"].shape[0] if "classifier.weight" in tensors else 0
        labels = config.labels if config.labels and len(config.labels) == num_labels else None
        if architecture == "BertForTokenClassification":
            task_type = "ner"
        elif hf_config.get("problem_type") == "regression" or num_labels == 1:
            task_type = "regression"
        else:
            task_type = "classification"
        config.labels = labels or [str(i) for i in range(num_labels)]
        config.task_type = task_type
    else:
        config.labels, config.task_type = None, None
    _check_tied_decoder(tensors, backbone_prefix, directory)
    check_layer_count(tensors, LAYER_PATTERN, config, str(directory))

    ours, architecture = import_tensors(
        tensors,
        fmt="hf",
        architecture=architecture,
        config=config,
        backbone_prefix=backbone_prefix,
        ignore=IGNORED | {backbone_prefix + "embeddings.position_ids"},
        strict=strict,
        source=str(directory),
    )
    if architecture == "BertModel":
        config.labels, config.task_type = None, None
    if architecture == "BertForMaskedLM":
        _report_masked_lm(tensors, backbone_prefix, directory)
    if fit_dense and architecture == "BertForSequenceClassification":
        # TinyBertForSequenceClassification computes classifier(relu(pooled)); ours, as
        # transformers' BertForSequenceClassification, classifier(pooled).
        log.warning(
            "%s: huawei-noah TinyBertForSequenceClassification: encoder, classifier and "
            "fit_dense converted; its classifier read the pooled output through a ReLU, ours "
            "reads it as it is, so its logits differ until the classifier is trained again "
            "(tinybert-td phase 2: --load_td1_ckpt_path)",
            directory,
        )
    return Checkpoint({**ours, **fit_dense}, config, architecture, {})


def _take_pretraining_heads(tensors: dict, fit_dense: dict, directory: Path) -> None:
    """huawei-noah's general TinyBERT: its pre-training heads were never trained by their
    general distillation (it distils layers only) and our general student has none."""
    heads = sorted(name for name in tensors if name.startswith("cls."))
    for name in heads:
        del tensors[name]
    teacher, student = fit_dense["fit_dense.weight"].shape
    log.info(
        "%s: huawei-noah general TinyBERT: encoder and fit_dense (%d -> %d, a teacher of "
        "hidden size %d) converted, as tinybert-gd's gd.ckpt; its pre-training heads left out "
        "(%d tensors: cls.*)",
        directory,
        student,
        teacher,
        teacher,
        len(heads),
    )


def hf_to_ms(input_dir, output, strict: bool = True, reorder_labels: bool = False) -> str:
    """Convert a Hugging Face BERT directory to a MindSpore checkpoint; returns the architecture.
    `reorder_labels`: put the classifier's rows in its task's label order (labels.py)."""
    tensors, config, architecture, _ = read_hf_checkpoint(input_dir, strict)
    if reorder_labels:
        tensors = labels_in_task_order(tensors, config, architecture, str(input_dir))
    write_checkpoint(output, tensors, config, architecture)
    return architecture


def _report_masked_lm(tensors: dict, backbone_prefix: str, directory: Path) -> None:
    """A masked-LM has no pooler and no next-sentence head: say so, and what was left out."""
    pooler = sorted(n for n in tensors if n.startswith(backbone_prefix + "pooler."))
    log.info(
        "%s: BertForMaskedLM: encoder and masked-LM head converted; no next-sentence head%s",
        directory,
        f", pooler left out ({', '.join(pooler)})" if pooler else " and no pooler in it",
    )


def _check_tied_decoder(tensors: dict, backbone_prefix: str, directory: Path) -> None:
    """We tie the MLM decoder to the word embeddings; refuse a checkpoint where they differ."""
    decoder = tensors.get("cls.predictions.decoder.weight")
    embeddings = tensors.get(backbone_prefix + "embeddings.word_embeddings.weight")
    if decoder is not None and embeddings is not None and not np.array_equal(decoder, embeddings):
        raise CheckpointError(
            f"{directory}: cls.predictions.decoder.weight differs from the word embeddings; "
            "untied MLM decoders are not supported"
        )
    bias = tensors.get("cls.predictions.decoder.bias")
    if bias is not None and "cls.predictions.bias" not in tensors:
        tensors["cls.predictions.bias"] = bias


def ms_to_hf(input_ckpt, output_dir, config=None, vocab=None) -> str:
    """Write a MindSpore checkpoint as a Hugging Face directory transformers can load.

    `config` is needed only for checkpoints without an embedded one; `vocab` is copied in.
    """
    checkpoint = read_checkpoint(input_ckpt)
    config = config or checkpoint.config
    if config is None:
        raise CheckpointError(f"{input_ckpt}: no embedded config; pass --config")
    architecture = stored_architecture(checkpoint, config, input_ckpt)
    tensors = {n: v for n, v in checkpoint.tensors.items() if not n.startswith("fit_dense.")}
    if len(tensors) < len(checkpoint.tensors):
        log.info("%s: fit_dense is a distillation-only layer; not written", input_ckpt)
    theirs = export_tensors(
        tensors,
        fmt="hf",
        architecture=architecture,
        config=config,
        backbone_prefix=our_prefix(architecture),
        source=str(input_ckpt),
    )
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(output_dir / "model.safetensors") as temporary:
        save_file(
            {n: np.ascontiguousarray(v) for n, v in theirs.items()},
            temporary,
            metadata={"format": "pt"},
        )
    with atomic_path(output_dir / "config.json") as temporary:
        Path(temporary).write_text(json.dumps(config.to_hf_dict(architecture), indent=2) + "\n")
    if vocab is not None:
        with atomic_path(output_dir / "vocab.txt") as temporary:
            shutil.copyfile(vocab, temporary)
    return architecture

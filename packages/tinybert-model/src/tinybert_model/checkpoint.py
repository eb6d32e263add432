"""MindSpore checkpoints that describe themselves.

Every checkpoint we write embeds its `BertConfig` (as JSON) and the name of the model class
it belongs to, so `load_model(path)` rebuilds the model with nothing else to hand, and a
CRC-32 of every tensor's bytes ("tensor_checksums": JSON {name: "crc32:<8 hex>"}), checked
on every read so that a flipped byte is an error naming the tensor, not a wrong prediction
(checkpoints written before, or by others, have none and load unchecked). Files are written
atomically: a temporary file in the same folder, renamed at the end, so a failed run never
leaves a half-written checkpoint under the final name.

Two layers:
- `read_checkpoint` / `write_checkpoint` move plain numpy dicts (what the converters use);
- `save_checkpoint` / `load_checkpoint` / `load_model` work on model cells.
"""

from __future__ import annotations

import contextlib
import json
import logging
import zlib
from pathlib import Path
from typing import NamedTuple

import mindspore as ms
import numpy as np

from tinybert_core import atomic_path

from .config import BertConfig
from .errors import CheckpointError, name_some
from .modeling import ARCHITECTURES, TinyBertStudent, architecture_for
from .names import expected_shapes, ignored_names

log = logging.getLogger(__name__)

CONFIG_KEY = "bert_config"
ARCHITECTURE_KEY = "architecture"
CHECKSUMS_KEY = "tensor_checksums"


class Checkpoint(NamedTuple):
    tensors: dict  # name -> numpy array
    config: BertConfig | None  # None for checkpoints written elsewhere (e.g. the model zoo)
    architecture: str | None
    extra: dict  # other string entries, e.g. a trainer's state


def read_checkpoint(path) -> Checkpoint:
    """Read a MindSpore .ckpt into numpy arrays, with its embedded config if it has one."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        entries = ms.load_checkpoint(str(path))
    except (ValueError, RuntimeError) as error:
        raise CheckpointError(f"{path}: not a readable MindSpore checkpoint ({error})") from None
    config_json = entries.pop(CONFIG_KEY, None)
    architecture = entries.pop(ARCHITECTURE_KEY, None)
    checksums = entries.pop(CHECKSUMS_KEY, None)
    tensors = {
        name: value.asnumpy() for name, value in entries.items() if hasattr(value, "asnumpy")
    }
    if isinstance(checksums, str):
        _verify_checksums(tensors, json.loads(checksums), path)
    extra = {name: value for name, value in entries.items() if isinstance(value, str)}
    config = BertConfig.from_dict(json.loads(config_json)) if isinstance(config_json, str) else None
    architecture = architecture if isinstance(architecture, str) else None
    return Checkpoint(tensors, config, architecture, extra)


def write_checkpoint(
    path,
    tensors: dict,
    config: BertConfig | None = None,
    architecture: str | None = None,
    extra: dict | None = None,
) -> None:
    """Write numpy arrays (and the config that describes them) to a .ckpt, atomically.

    `extra` holds further string entries, read back as `Checkpoint.extra`.
    """
    entries = [
        {"name": name, "data": ms.Tensor(np.ascontiguousarray(value))}
        for name, value in tensors.items()
    ]
    strings = dict(extra or {})
    strings[CHECKSUMS_KEY] = json.dumps(
        {e["name"]: _checksum(e["data"].asnumpy()) for e in entries}
    )
    if config is not None:
        strings[CONFIG_KEY] = json.dumps(config.to_dict())
    if architecture is not None:
        strings[ARCHITECTURE_KEY] = architecture
    with atomic_path(path, suffix=".ckpt") as temporary, _no_save_failure_log():
        ms.save_checkpoint(entries, str(temporary), append_dict=strings)


class _SaveFailure(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Failed to save the checkpoint file")


@contextlib.contextmanager
def _no_save_failure_log():
    """Keep MindSpore from logging its own "Failed to save the checkpoint file <temporary>"
    before the error is raised: the error then names the final path, in one line."""
    logger, quiet = ms.log._get_logger(), _SaveFailure()  # MindSpore's logger has no public getter
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def _checksum(array: np.ndarray) -> str:
    return f"crc32:{zlib.crc32(np.ascontiguousarray(array).data):08x}"


def _verify_checksums(tensors: dict, checksums: dict, path) -> None:
    """Every tensor with a stored checksum is there and has the bytes it was written with."""
    for name, expected in checksums.items():
        if name not in tensors:
            raise CheckpointError(f"{path}: tensor {name} is missing (the file is damaged)")
        if _checksum(tensors[name]) != expected:
            raise CheckpointError(
                f"{path}: tensor {name} does not match its checksum: the file is corrupt "
                "(copy or convert it again)"
            )


def stored_architecture(checkpoint: Checkpoint, config: BertConfig, source) -> str:
    """The architecture a checkpoint stores or, for one that stores none, the one whose
    tensors it holds; CheckpointError in one sentence when it holds no architecture's."""
    if checkpoint.architecture:
        return checkpoint.architecture
    names = {n for n in checkpoint.tensors if not n.startswith("fit_dense.")}
    matching = [
        a for a in ARCHITECTURES if set(expected_shapes(config, a)) == names - ignored_names(a)
    ]
    if len(matching) > 1:  # classification and tagging heads have the same tensors
        return architecture_for(config) if architecture_for(config) in matching else matching[0]
    if matching:
        return matching[0]
    raise CheckpointError(
        f"{source}: the checkpoint stores no architecture and its {len(names)} tensors are "
        f"not those of any of {', '.join(ARCHITECTURES)} with this config (e.g. a model-zoo "
        "checkpoint: convert it with zoo2ms first)"
    )


def check_tensors(tensors: dict, config: BertConfig, architecture: str, source) -> None:
    """Raise CheckpointError naming every missing, unexpected or mis-shaped tensor.

    `fit_dense.*` (a TinyBERT student's projection) is allowed beside any architecture, and so
    is the pooler an older token classifier carries (`names.ignored_names`).
    """
    expected = expected_shapes(config, architecture)
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(
        n
        for n in set(tensors) - set(expected) - ignored_names(architecture)
        if not n.startswith("fit_dense.")
    )
    wrong = [
        f"{n}: {tuple(tensors[n].shape)}, expected {expected[n]}"
        for n in expected
        if n in tensors and tuple(tensors[n].shape) != expected[n]
    ]
    # An integer tensor in place of a weight is never one: float weights cast to int are
    # mostly zeros, and would convert and load as such.
    not_float = [
        f"{n}: {tensors[n].dtype}" for n in expected if n in tensors and not _is_float(tensors[n])
    ]
    problems = []
    if missing:
        problems.append(f"missing tensors: {name_some(missing)}")
    if unexpected:
        problems.append(f"unexpected tensors: {name_some(unexpected)}")
    if wrong:
        problems.append(f"wrong shapes: {name_some(wrong)}")
    if not_float:
        problems.append(f"not floating-point weights: {name_some(not_float)}")
    if problems:
        raise CheckpointError(f"{source}: " + "; ".join(problems))


def _is_float(array: np.ndarray) -> bool:
    return np.issubdtype(array.dtype, np.floating) or array.dtype.name == "bfloat16"


# ---- model cells -------------------------------------------------------------------------


def named_parameters(model) -> dict:
    """A model's parameters by their path inside it, e.g. `bert.pooler.weight`.

    MindSpore renames parameters (`Parameter.name`) when a cell is placed inside another,
    e.g. a student inside a distillation loss; paths don't change, so checkpoints use them.
    A TinyBertStudent's wrapped model keeps its own names (no `model.` prefix).
    """
    student = isinstance(model, TinyBertStudent)
    return {
        name.removeprefix("model.") if student else name: parameter
        for name, parameter in model.parameters_and_names()
    }


def save_checkpoint(model, path, extra: dict | None = None) -> None:
    """Save a model's parameters with its config and class name, atomically."""
    tensors = {name: p.asnumpy() for name, p in named_parameters(model).items()}
    inner = model.model if isinstance(model, TinyBertStudent) else model
    write_checkpoint(path, tensors, inner.config, type(inner).__name__, extra)


class LoadReport(NamedTuple):
    missing: list  # model parameters the checkpoint did not have (left as initialised)
    unused: list  # checkpoint tensors the model has no place for


def load_checkpoint(path, model, strict: bool = True) -> LoadReport:
    """Load a checkpoint into `model`, matching names with or without the `bert.` prefix.

    A BertModel checkpoint loads into a head model's `bert` and vice versa, and a student
    checkpoint with `fit_dense` loads into a plain model. Shape mismatches are always an
    error; parameters the checkpoint lacks are an error when `strict`, else reported.
    """
    return load_tensors(read_checkpoint(path).tensors, model, strict, path)


def load_tensors(tensors: dict, model, strict: bool = True, source="tensors") -> LoadReport:
    """`load_checkpoint` for tensors already read (a `Checkpoint`'s, or a converted folder's
    from `read_hf_checkpoint`); `source` names them in errors."""
    missing, used, wrong = [], set(), []
    for name, param in named_parameters(model).items():
        for candidate in (name, name.removeprefix("bert."), "bert." + name):
            if candidate in tensors:
                break
        else:
            missing.append(name)
            continue
        value = tensors[candidate]
        if tuple(value.shape) != tuple(param.shape):
            wrong.append(f"{candidate}: {tuple(value.shape)}, model has {tuple(param.shape)}")
            continue
        if not _is_float(value) and param.dtype.is_floating_point:
            wrong.append(f"{candidate}: {value.dtype}, not a floating-point weight")
            continue
        param.set_data(ms.Tensor(value, dtype=param.dtype))
        used.add(candidate)
    if wrong:
        raise CheckpointError(f"{source}: shape or type mismatch: {name_some(wrong)}")
    if missing and strict:
        raise CheckpointError(f"{source}: missing tensors: {name_some(missing)}")
    unused = sorted(set(tensors) - used)
    if missing:
        log.info("%s: not in the checkpoint, left as initialised: %s", source, name_some(missing))
    if unused:
        log.info("%s: not used by %s: %s", source, type(model).__name__, name_some(unused))
    return LoadReport(missing, unused)


def load_model(
    path,
    config: BertConfig | None = None,
    architecture: str | None = None,
    *,
    output_hidden_states: bool = False,
    output_attentions: bool = False,
):
    """Build the model a checkpoint describes and load its weights.

    `config` and `architecture` are needed only for checkpoints that don't embed them;
    `output_hidden_states` / `output_attentions` go to the model's constructor (a teacher
    whose layers are distilled asks for both).
    """
    checkpoint = read_checkpoint(path)
    config = config or checkpoint.config
    if config is None:
        raise CheckpointError(f"{path}: the checkpoint has no embedded config; pass one")
    architecture = architecture or checkpoint.architecture or architecture_for(config)
    if architecture not in ARCHITECTURES:
        raise CheckpointError(f"{path}: unknown architecture {architecture!r}")
    model = ARCHITECTURES[architecture](config, output_hidden_states, output_attentions)
    load_tensors(checkpoint.tensors, model, True, path)
    return model

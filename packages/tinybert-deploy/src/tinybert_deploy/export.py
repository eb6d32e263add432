"""Export a task checkpoint to ONNX, MINDIR or AIR (extra `tinybert-deploy[export]`).

    from tinybert_deploy.export import export
    export("td/best.ckpt", None, "student", "ONNX")     # writes student.onnx

ONNX is written from the weights (see onnx_graph.py) with truly dynamic batch and sequence
axes and exact Erf GELU, plus metadata (task, labels, vocabulary size, lower-casing, maximum
length) that tinybert-predict and tinybert-eval-onnx read; `fused=True` writes ONNX Runtime's
fused operators (domain com.microsoft). MINDIR comes from MindSpore's exporter with
dynamic-shape inputs. AIR needs an Ascend backend. A classifier's graph computes its last
layer for [CLS] alone in every format. The console script
`tinybert-export` (the model zoo's flags) is in cli.py.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from tinybert_core import atomic_path
from tinybert_data import vocab_tokens

from .errors import DeployError

log = logging.getLogger("tinybert_deploy")

FORMATS = {"ONNX": ".onnx", "MINDIR": ".mindir", "AIR": ".air"}


def _load(ckpt_file, config_path=None):
    """(checkpoint, config, architecture) of a checkpoint (`config_path` for checkpoints
    without an embedded config)."""
    from tinybert_model import BertConfig, CheckpointError, architecture_for, read_checkpoint

    try:
        checkpoint = read_checkpoint(ckpt_file)
    except CheckpointError as error:
        raise DeployError(str(error)) from None
    config = checkpoint.config
    if config_path:
        config = BertConfig.from_file(config_path)
    if config is None:
        raise DeployError(f"{ckpt_file} has no embedded config: pass --config_path")
    architecture = checkpoint.architecture or architecture_for(config)
    return checkpoint, config, architecture


def check_finite(tensors: dict, ckpt_file) -> None:
    """Refuse weights holding NaN or infinity: they would turn every prediction into NaN."""
    for name, value in tensors.items():
        value = np.asarray(value)
        if np.issubdtype(value.dtype, np.floating) and not np.all(np.isfinite(value)):
            count = int(np.size(value) - np.count_nonzero(np.isfinite(value)))
            raise DeployError(
                f"{ckpt_file}: tensor {name} holds {count} non-finite values (NaN or infinity): "
                "the checkpoint is corrupt or its training diverged; export an earlier checkpoint"
            )


def model_description(
    checkpoint, config, ckpt_file, task_name=None, do_lower_case=None, vocab_path=None
) -> dict:
    """The ONNX metadata: what the checkpoint's task_info and vocab say (trainers since 0.2
    store them), with the flags filling in for older checkpoints and refused where they
    contradict the checkpoint."""
    task_info = json.loads(checkpoint.extra.get("task_info", "{}"))
    task_info = {k: v for k, v in task_info.items() if k not in ("inputs", "files")}  # local paths
    stored_task = task_info.get("task")
    if task_name and stored_task and task_name != stored_task:
        raise DeployError(
            f"--task_name {task_name} contradicts {ckpt_file}, which was trained on {stored_task}: "
            "leave out --task_name (the checkpoint knows its task)"
        )
    task = stored_task or task_name
    if not task:
        raise DeployError(f"{ckpt_file} does not record its task: pass --task_name")
    stored_case = task_info.get("do_lower_case")
    if do_lower_case is not None and stored_case is not None and do_lower_case != stored_case:
        raise DeployError(
            f"--do_lower_case {str(do_lower_case).lower()} contradicts {ckpt_file}, whose data was "
            f"tokenized with do_lower_case {str(stored_case).lower()}"
        )
    lower_case = stored_case if stored_case is not None else do_lower_case
    vocab = checkpoint.extra.get("vocab")
    if vocab_path is not None:
        given = Path(vocab_path).read_text(encoding="utf-8")
        if vocab is not None and vocab_tokens(given) != vocab_tokens(vocab):
            raise DeployError(
                f"{vocab_path} is not the vocabulary {ckpt_file} was trained with (it carries its "
                "own): leave out --vocab"
            )
        vocab = vocab or given
    if vocab is not None:
        size = len(vocab_tokens(vocab))
        if size != config.vocab_size:
            raise DeployError(
                f"the vocabulary has {size} tokens but {ckpt_file}'s embedding table has "
                f"{config.vocab_size}: use the vocab.txt its data was tokenized with"
            )
    labels = list(config.labels or task_info.get("labels") or [])
    if task_info.get("labels") and config.labels and list(task_info["labels"]) != labels:
        raise DeployError(
            f"{ckpt_file}: the model's labels {labels} differ from its data's {task_info['labels']}"
        )
    metadata = {
        "task": task,
        "task_type": config.task_type or task_info.get("task_type") or "classification",
        "labels": json.dumps(labels or None),
        "vocab_size": config.vocab_size,
        "do_lower_case": json.dumps(True if lower_case is None else lower_case),
        "max_position_embeddings": config.max_position_embeddings,
        "quantization": "none",
    }
    if task_info.get("seq_length"):
        metadata["seq_length"] = int(task_info["seq_length"])
    if task_info:
        metadata["task_info"] = json.dumps(task_info, ensure_ascii=False)
    if vocab is not None:
        metadata["vocab"] = vocab
    return metadata


def export_onnx(
    ckpt_file,
    output,
    task_name=None,
    config_path=None,
    do_lower_case=None,
    vocab_path=None,
    fused: bool = False,
    remove_padding: bool = True,
) -> Path:
    """The ONNX graph of onnx_graph.py (`fused`, `remove_padding`: see its `build_graph`)."""
    import onnx

    from .onnx_graph import build_graph

    checkpoint, config, architecture = _load(ckpt_file, config_path)
    metadata = model_description(
        checkpoint, config, ckpt_file, task_name, do_lower_case, vocab_path
    )
    check_finite(checkpoint.tensors, ckpt_file)
    try:
        model = build_graph(
            checkpoint.tensors, config, architecture, metadata, fused, remove_padding
        )
    except (KeyError, ValueError) as error:
        raise DeployError(f"{ckpt_file}: cannot build the ONNX graph ({error})") from None
    try:
        with atomic_path(output) as temporary:
            onnx.save(model, str(temporary))
    except OSError as error:  # a full disk, a folder we may not write
        raise DeployError(f"cannot write {output}: {error.strerror or error}") from None
    return Path(output)


def export_mindspore(
    ckpt_file, output, file_format: str, config_path=None, device_target: str | None = None
) -> Path:
    """MINDIR (or AIR on Ascend) through MindSpore's exporter, with dynamic batch and sequence,
    on `device_target` (default: MindSpore's current backend)."""
    import mindspore as ms
    from mindspore import nn

    from tinybert_model import (
        ARCHITECTURES,
        BertConfig,
        architecture_for,
        load_checkpoint,
        load_model,
    )

    if device_target and ms.get_context("device_target") != device_target:
        ms.set_device(device_target)
    if file_format == "AIR" and ms.get_context("device_target") != "Ascend":
        raise DeployError(
            "AIR export needs an Ascend backend (MindSpore device_target Ascend); this machine "
            f"runs on {ms.get_context('device_target')}: export ONNX or MINDIR instead"
        )
    if config_path:
        config = BertConfig.from_file(config_path)
        model = ARCHITECTURES[architecture_for(config)](config)
        load_checkpoint(ckpt_file, model)
    else:
        model = load_model(ckpt_file)

    class LogitsOnly(nn.Cell):
        """The exported graph's one output: the models' `logits_only` computes no layer
        outputs, and a sequence classifier's last layer computes [CLS] alone."""

        def __init__(self, model):
            super().__init__()
            self.model = model

        def construct(self, input_ids, segment_ids, input_mask):
            return self.model(input_ids, segment_ids, input_mask, logits_only=True)[0]

    net = LogitsOnly(model)
    net.set_train(False)
    dynamic = [ms.Tensor(shape=[None, None], dtype=ms.int32) for _ in range(3)]
    output = Path(output)
    with atomic_path(output) as temporary:
        # ms.export appends the format's suffix to the name it is given
        stem = temporary.with_suffix("")
        ms.export(net, *dynamic, file_name=str(stem), file_format=file_format)
        Path(f"{stem}{FORMATS[file_format]}").replace(temporary)
    return output


def output_path(file_name, file_format: str) -> Path:
    """`file_name` with the format's suffix, in a folder that exists or can be made."""
    suffix = FORMATS[file_format]
    output = Path(file_name if str(file_name).endswith(suffix) else str(file_name) + suffix)
    if output.is_dir():
        raise DeployError(f"{output} is a folder: give a file name")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise DeployError(
            f"cannot write {output}: {output.parent} is a file, not a folder"
        ) from None
    except OSError as error:
        raise DeployError(f"cannot write {output}: {error.strerror}") from None
    return output


def export(
    ckpt_file,
    task_name: str | None,
    file_name,
    file_format: str = "ONNX",
    config_path=None,
    do_lower_case: bool | None = None,
    quantize: str | None = None,
    vocab_path=None,
    calibration_data=None,
    device_target: str | None = None,
    fused: bool = False,
) -> Path:
    """Export a checkpoint; returns the written file (`file_name` plus the format's suffix).

    `task_name`, `do_lower_case`, `vocab_path`: for checkpoints that do not record them (the
    trainers' checkpoints do); `quantize` "dynamic" or "static" also writes `<name>.int8.onnx`,
    static calibrated on `calibration_data` (a records folder or raw task file).
    `device_target`: MindSpore's backend for MINDIR/AIR (ONNX needs no MindSpore).
    `fused`: ONNX only, ONNX Runtime's fused operators (domain com.microsoft: a file for
    runtimes that know them)."""
    file_format = file_format.upper()
    if file_format not in FORMATS:
        raise DeployError(f"--file_format must be one of {', '.join(FORMATS)}, not {file_format}")
    if quantize and file_format != "ONNX":
        raise DeployError("--quantize applies to ONNX exports only")
    if fused and file_format != "ONNX":
        raise DeployError("--fused applies to ONNX exports only")
    if quantize == "static" and calibration_data is None:
        raise DeployError("--quantize static needs --calibration_data (the task's train records)")
    output = output_path(file_name, file_format)
    if file_format == "ONNX":
        export_onnx(ckpt_file, output, task_name, config_path, do_lower_case, vocab_path, fused)
    else:
        export_mindspore(ckpt_file, output, file_format, config_path, device_target)
    log.info("wrote %s", output)
    if quantize:
        from .quantize import quantize_model

        quantized = output.with_name(output.stem + ".int8.onnx")
        calibration = None
        if quantize == "static":
            from .evaluate import task_columns
            from .runtime import OnnxModel

            model = OnnxModel(output)
            seq_length = model.seq_length or 128
            calibration = task_columns(
                model.task, calibration_data, vocab_path, model, seq_length, rows=256
            )
        quantize_model(output, quantized, quantize, calibration)
        log.info("wrote %s (int8, %s quantization)", quantized, quantize)
    return output

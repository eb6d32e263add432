"""`tinybert-export`: a task checkpoint to ONNX, MINDIR or AIR (extra `tinybert-deploy[export]`).

    tinybert-export --ckpt_file td/best.ckpt --task_name sst2 --file_name student --file_format ONNX

The model zoo's flags. ONNX is written from the weights (see onnx_graph.py) with truly dynamic
batch and sequence axes and exact Erf GELU, plus metadata (task, labels, vocabulary size,
lower-casing, maximum length) that tinybert-predict and tinybert-eval-onnx read. MINDIR comes
from MindSpore's exporter with dynamic-shape inputs. AIR needs an Ascend backend.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .errors import DeployError
from .files import atomic_path

log = logging.getLogger("tinybert_deploy")

FORMATS = {"ONNX": ".onnx", "MINDIR": ".mindir", "AIR": ".air"}


def _load(ckpt_file, config_path=None):
    """(tensors, config, architecture) of a checkpoint (`config_path` for checkpoints
    without an embedded config)."""
    from tinybert_model import BertConfig, CheckpointError, read_checkpoint
    from tinybert_model.modeling import architecture_for

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
    return checkpoint.tensors, config, architecture


def export_onnx(
    ckpt_file, output, task_name: str, config_path=None, do_lower_case: bool = True
) -> Path:
    import onnx

    from .onnx_graph import build_graph

    tensors, config, architecture = _load(ckpt_file, config_path)
    metadata = {
        "task": task_name,
        "task_type": config.task_type or "classification",
        "labels": json.dumps(config.labels),
        "vocab_size": config.vocab_size,
        "do_lower_case": json.dumps(do_lower_case),
        "max_position_embeddings": config.max_position_embeddings,
    }
    try:
        model = build_graph(tensors, config, architecture, metadata)
    except (KeyError, ValueError) as error:
        raise DeployError(f"{ckpt_file}: cannot build the ONNX graph ({error})") from None
    with atomic_path(output) as temporary:
        onnx.save(model, str(temporary))
    return Path(output)


def export_mindspore(ckpt_file, output, file_format: str, config_path=None) -> Path:
    """MINDIR (or AIR on Ascend) through MindSpore's exporter, with dynamic batch and sequence."""
    import mindspore as ms
    from mindspore import nn

    from tinybert_model import load_model

    if file_format == "AIR" and ms.get_context("device_target") != "Ascend":
        raise DeployError(
            "AIR export needs an Ascend backend (MindSpore device_target Ascend); this machine "
            f"runs on {ms.get_context('device_target')}: export ONNX or MINDIR instead"
        )
    if config_path:
        from tinybert_model import BertConfig, load_checkpoint
        from tinybert_model.modeling import ARCHITECTURES, architecture_for

        config = BertConfig.from_file(config_path)
        model = ARCHITECTURES[architecture_for(config)](config)
        load_checkpoint(ckpt_file, model)
    else:
        model = load_model(ckpt_file)

    class LogitsOnly(nn.Cell):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def construct(self, input_ids, segment_ids, input_mask):
            return self.model(input_ids, segment_ids, input_mask)[0]

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


def export(
    ckpt_file,
    task_name: str,
    file_name,
    file_format: str = "ONNX",
    config_path=None,
    do_lower_case: bool = True,
    quantize: str | None = None,
) -> Path:
    """Export a checkpoint; returns the written file (`file_name` plus the format's suffix)."""
    file_format = file_format.upper()
    if file_format not in FORMATS:
        raise DeployError(f"--file_format must be one of {', '.join(FORMATS)}, not {file_format}")
    output = (
        Path(str(file_name) + FORMATS[file_format])
        if not str(file_name).endswith(FORMATS[file_format])
        else Path(file_name)
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    if file_format == "ONNX":
        export_onnx(ckpt_file, output, task_name, config_path, do_lower_case)
    else:
        if quantize:
            raise DeployError("--quantize applies to ONNX exports only")
        export_mindspore(ckpt_file, output, file_format, config_path)
    log.info("wrote %s", output)
    if quantize:
        from .quantize import quantize_model

        quantized = output.with_name(output.stem + ".int8.onnx")
        quantize_model(output, quantized)
        log.info("wrote %s (int8 weights, dynamic quantization)", quantized)
    return output


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="tinybert-export",
        description="Export a tinybert task checkpoint to ONNX (dynamic shapes, exact GELU), "
        "MINDIR or AIR.",
    )
    parser.add_argument(
        "--ckpt_file", required=True, help="task checkpoint (e.g. tinybert-td's best.ckpt)"
    )
    parser.add_argument(
        "--task_name", required=True, help="task the model was trained on (sst2, cluener, ...)"
    )
    parser.add_argument(
        "--file_name", required=True, help="output path; the format's suffix is added"
    )
    parser.add_argument("--file_format", default="ONNX", choices=list(FORMATS), help="default ONNX")
    parser.add_argument(
        "--config_path", help="BertConfig (JSON/YAML) for checkpoints without an embedded one"
    )
    parser.add_argument(
        "--do_lower_case",
        default="true",
        choices=["true", "false"],
        help="recorded in the ONNX metadata for tokenization (default true)",
    )
    parser.add_argument(
        "--quantize", choices=["dynamic"], help="also write an int8 copy (ONNX only)"
    )
    parser.add_argument(
        "--device_target",
        default="CPU",
        choices=["CPU", "GPU", "Ascend"],
        help="MindSpore backend for MINDIR/AIR (AIR needs Ascend)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.file_format != "ONNX":
            import mindspore as ms

            if ms.get_context("device_target") != args.device_target:
                ms.set_device(args.device_target)
        export(
            args.ckpt_file,
            args.task_name,
            args.file_name,
            args.file_format,
            args.config_path,
            args.do_lower_case == "true",
            args.quantize,
        )
    except (DeployError, FileNotFoundError) as error:
        print(f"tinybert-export: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

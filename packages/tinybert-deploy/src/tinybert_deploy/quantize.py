"""Reduced precision for an exported model (needs the `onnx` package: `tinybert-deploy[export]`).

- `quantize_model(source, output, "dynamic")`: int8 weights of every token projection,
  activations quantized on the fly per batch. No calibration data. The default int8.
- `quantize_model(source, output, "static", calibration)`: QDQ int8 with activation ranges
  calibrated on rows of the task's own data (`calibration`: feature columns, e.g. from
  `evaluate.task_columns`).
- `bf16_emulated(source)`: the model run by ONNX Runtime with every matrix product's inputs
  rounded to bf16 (`bf16_emulation`), which is what bf16 hardware computes (fp32
  accumulation): a measurement tool, for bf16 accuracy on CPUs that cannot run bf16 fast.

What is quantized: the projections of the token matrix (query, key, value, attention output,
FFN intermediate and output of every layer). The two attention products (activation by
activation), the embeddings and the task head (pooler and classifier: once per row, or for a
tagger a matrix a few labels wide, so int8 would buy no time there) stay float. The quantized
file keeps the model's metadata and records `quantization` ("dynamic" or "static") in it.

Weights are int8 with one scale per output column (per channel) and 7-bit values
(onnxruntime's `reduce_range`), chosen by measurement on SST-2 dev (README, "int8
quantization"): per-channel scales cut a fine-tuned student's logit error threefold, and 7 bits
keep ONNX Runtime's u8 x s8 kernel exact on CPUs without VNNI (AVX2), where it adds pairs of
byte products in 16 bits (`vpmaddubsw`): 255 * 127 * 2 overflows int16, 255 * 64 * 2 does not
(on the demo student per-channel 8-bit weights had 3.7x the logit error of per-tensor ones).
The kernels and node counts are plain `quantize_dynamic`'s, so the speed is too. Static
quantization uses the same weights: with per-tensor 8-bit weights a CLUENER
student lost 1.48 points of entity F1 (bar 1), with these 0.74 (docs/RESULTS.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime

from tinybert_core import atomic_path

from .errors import DeployError
from .runtime import INPUTS, OnnxModel, trimmed

MODES = ("dynamic", "static")


def _onnx():
    try:
        import onnx
    except ImportError:
        raise DeployError(
            "quantization needs the onnx package: pip install tinybert-deploy[export]"
        ) from None
    return onnx


# the task head's weights (tinybert-model's checkpoint names, the same in every exported graph)
HEAD_WEIGHTS = ("bert.pooler.", "classifier.")


def _projections(model) -> list:
    """Names of the MatMul nodes whose second input is a weight (an initializer), but for the
    task head's."""
    weights = {initializer.name for initializer in model.graph.initializer}
    return [
        n.name
        for n in model.graph.node
        if n.op_type == "MatMul"
        and n.input[1] in weights
        and not n.input[1].startswith(HEAD_WEIGHTS)
    ]


def _named(model):
    """Give every node a name (the quantizer selects nodes by name)."""
    for index, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{index}"
    return model


class _Calibration:
    """onnxruntime's CalibrationDataReader over feature columns, a batch at a time."""

    def __init__(self, columns: dict, rows: int, batch_size: int = 16):
        count = min(rows, len(columns["input_ids"]))
        self.batches = []
        for start in range(0, count, batch_size):
            batch = trimmed({n: columns[n][start : min(start + batch_size, count)] for n in INPUTS})
            self.batches.append({n: np.asarray(batch[n], np.int32) for n in INPUTS})
        self.iterator = iter(self.batches)

    def get_next(self):
        return next(self.iterator, None)

    def rewind(self):
        self.iterator = iter(self.batches)


def quantize_model(
    source, output, mode: str = "dynamic", calibration: dict | None = None, rows: int = 256
) -> Path:
    """Write an int8 copy of `source` to `output` (`mode` "dynamic" or "static"; static needs
    `calibration` columns, of which the first `rows` are used)."""
    onnx = _onnx()
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    if mode not in MODES:
        raise DeployError(f"quantization mode must be one of {', '.join(MODES)}, not {mode}")
    source = Path(source)
    if not source.is_file():
        raise DeployError(f"{source}: model file not found")
    try:
        model = _named(onnx.load(str(source)))
    except Exception as error:  # onnx raises DecodeError and friends
        raise DeployError(f"{source}: not an ONNX model ({error})") from None
    nodes = _projections(model)
    # ONNX's shape inference does not type the outputs of ONNX Runtime's fused operators
    # (export's `fused` graphs), which the quantizer needs: every activation here is float
    float_default = {"DefaultTensorType": onnx.TensorProto.FLOAT}
    with atomic_path(output) as temporary:
        if mode == "dynamic":
            quantize_dynamic(
                model,
                str(temporary),
                weight_type=QuantType.QInt8,
                per_channel=True,
                reduce_range=True,  # 7-bit weights: see the module's docstring
                nodes_to_quantize=nodes,
                extra_options=float_default,
            )
        else:
            if calibration is None:
                raise DeployError("static quantization needs calibration data (the task's rows)")

            class Reader(_Calibration, CalibrationDataReader):
                pass

            quantize_static(
                model,
                str(temporary),
                Reader(calibration, rows),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=True,
                reduce_range=True,
                nodes_to_quantize=nodes,
                extra_options={
                    "ActivationSymmetric": False,
                    "WeightSymmetric": True,
                    **float_default,
                },
            )
        quantized = onnx.load(str(temporary))
        properties = {p.key: p.value for p in model.metadata_props}
        properties["quantization"] = mode
        onnx.helper.set_model_props(quantized, properties)
        onnx.save(quantized, str(temporary))
    return Path(output)


def bf16_emulated(source, threads: int | None = None) -> OnnxModel:
    """The model at `source`, run by ONNX Runtime on `bf16_emulation`'s graph: its accuracy is
    the model's in bf16, measured on a CPU without bf16 hardware (where OpenVINO's bf16 would
    silently compute in fp32). `description` says "bf16 (emulated)"."""
    model = OnnxModel(source, threads)
    options = onnxruntime.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    model.session = onnxruntime.InferenceSession(
        bf16_emulation(source), options, providers=["CPUExecutionProvider"]
    )
    model.precision = "bf16 (emulated)"
    return model


def bf16_emulation(source) -> bytes:
    """The serialized model with both inputs of every MatMul rounded to bf16 (Cast to bfloat16
    and back), the weights once, in advance."""
    onnx = _onnx()
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(source))
    initializers = {i.name: i for i in model.graph.initializer}
    nodes, rounded = [], {}
    for node in model.graph.node:
        if node.op_type == "MatMul":
            for position, name in enumerate(node.input):
                if name in initializers and name not in rounded:
                    value = numpy_helper.to_array(initializers[name])
                    initializers[name].CopyFrom(numpy_helper.from_array(round_bf16(value), name))
                    rounded[name] = name
                elif name not in rounded:  # an activation: rounded once, for all its readers
                    low, back = f"{name}_bf16", f"{name}_bf16_fp32"
                    nodes.append(helper.make_node("Cast", [name], [low], to=TensorProto.BFLOAT16))
                    nodes.append(helper.make_node("Cast", [low], [back], to=TensorProto.FLOAT))
                    rounded[name] = back
                node.input[position] = rounded[name]
        nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model.SerializeToString()


def round_bf16(values: np.ndarray) -> np.ndarray:
    """float32 -> nearest bf16 (round half to even), returned as float32."""
    bits = np.ascontiguousarray(values, np.float32).view(np.uint32)
    rounding = ((bits >> 16) & 1) + np.uint32(0x7FFF)
    return ((bits + rounding) & np.uint32(0xFFFF0000)).view(np.float32)

"""Reduced precision for an exported model (needs the `onnx` package: `tinybert-deploy[export]`).

- `quantize_model(source, output, "dynamic")`: int8 weights of every projection (the Gemms of
  the 2-D token matrices), activations quantized on the fly per batch. No calibration data.
- `quantize_model(source, output, "static", calibration)`: QDQ int8 with activation ranges
  calibrated on rows of the task's own data (`calibration`: feature columns, e.g. from
  `evaluate.task_columns`).
- `bf16_emulation(source)`: the model with every matrix product's inputs rounded to bf16, which
  is what bf16 hardware computes (fp32 accumulation); used to measure bf16 accuracy on CPUs
  that cannot run bf16 fast.

Either way only the projections are quantized: the two attention products (scores and
context, activation by activation) and the embeddings stay float, which keeps the accuracy
and, measured, costs no speed. The quantized file keeps the model's metadata and records
`quantization` ("dynamic" or "static") in it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import DeployError
from .files import atomic_path

MODES = ("dynamic", "static")


def _onnx():
    try:
        import onnx
    except ImportError:
        raise DeployError(
            "quantization needs the onnx package: pip install tinybert-deploy[export]"
        ) from None
    return onnx


def _projections(model) -> list:
    """Names of the MatMul nodes whose second input is a weight (an initializer)."""
    weights = {initializer.name for initializer in model.graph.initializer}
    return [n.name for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in weights]


def _named(model):
    """Give every node a name (the quantizer selects nodes by name)."""
    for index, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{index}"
    return model


class _Calibration:
    """onnxruntime's CalibrationDataReader over feature columns, a batch at a time."""

    def __init__(self, columns: dict, rows: int, batch_size: int = 16):
        from .runtime import INPUTS, trimmed

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
    with atomic_path(output) as temporary:
        if mode == "dynamic":
            quantize_dynamic(
                model, str(temporary), weight_type=QuantType.QInt8, nodes_to_quantize=nodes
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
                nodes_to_quantize=nodes,
                extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
            )
        quantized = onnx.load(str(temporary))
        properties = {p.key: p.value for p in model.metadata_props}
        properties["quantization"] = mode
        onnx.helper.set_model_props(quantized, properties)
        onnx.save(quantized, str(temporary))
    return Path(output)


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

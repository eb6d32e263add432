"""int8 dynamic quantization of an exported model (onnxruntime.quantization).

Weights of the matrix multiplications become int8, activations are quantized on the fly; the
embeddings stay float. Needs the `onnx` package (`tinybert-deploy[export]`).
"""

from __future__ import annotations

from pathlib import Path

from .errors import DeployError
from .files import atomic_path


def quantize_model(source, output) -> Path:
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        raise DeployError(
            "quantization needs the onnx package: pip install tinybert-deploy[export]"
        ) from None
    source = Path(source)
    if not source.is_file():
        raise DeployError(f"{source}: model file not found")
    with atomic_path(output) as temporary:
        quantize_dynamic(str(source), str(temporary), weight_type=QuantType.QInt8)
    return Path(output)

"""Export TinyBERT to ONNX/MINDIR and run it with ONNX Runtime: evaluation, raw-text prediction,
int8, Ascend310 pre/post-processing.
"""

__version__ = "0.1.0"

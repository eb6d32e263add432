"""Run exported TinyBERT models with ONNX Runtime: prediction from raw text, evaluation, int8,
Ascend310 pre/post-processing; export to ONNX/MINDIR/AIR with the `[export]` extra.

    from tinybert_deploy import Predictor
    Predictor.from_files("student.onnx", "vocab.txt").predict(["a gripping film"])

Importing this package never imports MindSpore (export does, from tinybert_deploy.export).
"""

from .errors import DeployError
from .evaluate import evaluate, task_columns
from .runtime import OnnxModel, Predictor

__version__ = "0.1.0"

__all__ = ["DeployError", "OnnxModel", "Predictor", "evaluate", "task_columns"]

"""Run exported TinyBERT models with ONNX Runtime: prediction from raw text, evaluation, int8,
Ascend310 pre/post-processing; export to ONNX/MINDIR/AIR with the `[export]` extra.

    from tinybert_deploy import Predictor
    predictor = Predictor.from_model("student.onnx")   # vocabulary and task from the model
    predictor.predict(["a gripping film"]); predictor.path  # which engine and precision

Importing this package never imports MindSpore (export does, from tinybert_deploy.export).
"""

from .errors import DeployError
from .evaluate import evaluate, task_columns
from .runtime import OnnxModel, Predictor, choose_runtime

__version__ = "0.3.0"

__all__ = ["DeployError", "OnnxModel", "Predictor", "choose_runtime", "evaluate", "task_columns"]

"""TinyBERT general and task distillation, teacher fine-tuning and distributed launch.

The console scripts are the main interface (tinybert-gd, tinybert-td, tinybert-finetune,
tinybert-launch); the same work from Python:

    from tinybert_distill import general_distillation, load_config, packaged_config
    config = load_config(packaged_config("gd_config"))
    config.update(load_teacher_ckpt_path="teacher.ckpt", data_dir="corpus/")
    general_distillation(config)
"""

from .commands import fine_tune, general_distillation, task_distillation
from .config import apply_overrides, load_config, packaged_config
from .losses import (
    attention_loss,
    hidden_loss,
    regression_loss,
    soft_cross_entropy,
    uniform_layer_map,
)

__version__ = "0.2.0"

__all__ = [
    "apply_overrides",
    "attention_loss",
    "fine_tune",
    "general_distillation",
    "hidden_loss",
    "load_config",
    "packaged_config",
    "regression_loss",
    "soft_cross_entropy",
    "task_distillation",
    "uniform_layer_map",
]

"""TinyBERT general and task distillation, teacher fine-tuning and distributed launch.

The console scripts are the main interface (tinybert-gd, tinybert-td, tinybert-finetune,
tinybert-launch); the same work from Python:

    from tinybert_distill import general_distillation, make_config
    config = make_config("gd_config", load_teacher_ckpt_path="teacher.ckpt", data_dir="corpus/")
    general_distillation(config)

Each command is a recipe (recipes.py: setup, train, save) you can read top to bottom.
"""

from .config import apply_overrides, load_config, make_config, packaged_config
from .losses import (
    attention_loss,
    hidden_loss,
    regression_loss,
    soft_cross_entropy,
    uniform_layer_map,
)
from .matches import LOSSES, PRESETS, Match
from .recipes import fine_tune, general_distillation, task_distillation

__version__ = "0.2.0"

__all__ = [
    "LOSSES",
    "PRESETS",
    "Match",
    "apply_overrides",
    "attention_loss",
    "fine_tune",
    "general_distillation",
    "hidden_loss",
    "load_config",
    "make_config",
    "packaged_config",
    "regression_loss",
    "soft_cross_entropy",
    "task_distillation",
    "uniform_layer_map",
]

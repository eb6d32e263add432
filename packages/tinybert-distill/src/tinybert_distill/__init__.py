"""TinyBERT general and task distillation, teacher fine-tuning and distributed launch."""

__version__ = "0.1.0"

"""MindSpore BERT/TinyBERT cells, task heads and checkpoint conversion (TF, Hugging Face, MindSpore
model zoo).
"""

__version__ = "0.1.0"

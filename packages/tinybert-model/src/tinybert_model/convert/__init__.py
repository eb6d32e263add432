"""Checkpoint conversion between our MindSpore checkpoints and Google TF1, Hugging Face and
the MindSpore model zoo. Each function reads one format and writes another; `names.py` holds
the one table that says how every tensor is called in each format.
"""

from .google import ms_to_tf, tf_to_ms
from .huggingface import hf_to_ms, ms_to_hf, read_hf_checkpoint
from .torch_pickle import read_torch_checkpoint
from .zoo import ms_to_zoo, zoo_to_ms

__all__ = [
    "hf_to_ms",
    "ms_to_hf",
    "ms_to_tf",
    "ms_to_zoo",
    "read_hf_checkpoint",
    "read_torch_checkpoint",
    "tf_to_ms",
    "zoo_to_ms",
]

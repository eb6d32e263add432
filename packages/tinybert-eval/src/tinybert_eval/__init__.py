"""Metrics and streaming evaluators for BERT tasks: accuracy, entity-level span F1 (BIO,
BIOES, CLUENER spans), token accuracy, MCC, binary F1, Pearson and Spearman.

    from tinybert_eval import get_evaluator
    evaluator = get_evaluator("cluener", labels=tag_names)
    evaluator.update(logits, label_ids)          # per batch
    evaluator.compute()                          # {"f1": ..., "per_type": {...}, "main": "f1"}
"""

from .evaluators import (
    TASK_METRICS,
    Evaluator,
    RegressionEvaluator,
    TaggingEvaluator,
    get_evaluator,
)
from .metrics import accuracy, binary_f1, matthews_corrcoef, pearson, spearman
from .spans import span_scores, spans_from_cluener, spans_from_tags, tags_from_spans

__version__ = "0.2.0"

__all__ = [
    "TASK_METRICS",
    "Evaluator",
    "RegressionEvaluator",
    "TaggingEvaluator",
    "accuracy",
    "binary_f1",
    "get_evaluator",
    "matthews_corrcoef",
    "pearson",
    "span_scores",
    "spans_from_cluener",
    "spans_from_tags",
    "spearman",
    "tags_from_spans",
]

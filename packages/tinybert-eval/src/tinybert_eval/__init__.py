"""Metrics and streaming evaluators for BERT tasks: accuracy, entity-level span F1, MCC,
correlations.
"""

__version__ = "0.1.0"

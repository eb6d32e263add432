"""WordPiece tokenization, GLUE/CLUE task readers and pretraining corpora to TFRecord/MindRecord,
without MindSpore.
"""

__version__ = "0.1.0"

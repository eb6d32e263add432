"""The columns of a record, the label no loss is computed on, and what padding adds to
attention scores: the names and numbers data, model, distillation and export agree on."""

# The model's inputs, in its argument order (and the ONNX inputs'); a corpus record has these.
TEXT_COLUMNS = ("input_ids", "segment_ids", "input_mask")
# A task record: the inputs and its labels ([rows] for classification, [rows, seq] for NER).
LABELLED_COLUMNS = (*TEXT_COLUMNS, "label_ids")
# Every column a record may hold, in the order records, readers and models use everywhere.
COLUMNS = LABELLED_COLUMNS

# Label of the positions no loss or metric counts: special tokens, padding, the later pieces
# of a word, and every row of an unlabelled (test) file.
IGNORE_INDEX = -100

# Added to attention scores at padded key positions (input_mask 0), as Google's BERT and the
# MindSpore model zoo do. TinyBERT's attention loss zeroes scores at or below -100, i.e.
# exactly these positions, and the exported graph adds the same value.
MASK_PENALTY = -10000.0

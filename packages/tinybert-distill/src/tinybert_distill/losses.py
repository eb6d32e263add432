"""TinyBERT's losses, one function each, and the teacher-to-student layer mapping.

All functions take MindSpore tensors and return a scalar float32 tensor; they run inside
the compiled training graph.
"""

from __future__ import annotations

import mindspore as ms
from mindspore import ops

from tinybert_core import IGNORE_INDEX

# Attention scores at masked key positions carry -10000 (tinybert_model.modeling.MASK_PENALTY);
# anything at or below this is padding, and counts as 0 in both maps, as in the paper's code.
MASKED_SCORE = -100.0


def attention_loss(student_scores, teacher_scores, input_mask=None):
    """MSE between one student layer's and one teacher layer's attention scores.

    Scores are pre-softmax with the mask added, [batch, heads, seq, seq].

    With `input_mask` [batch, seq] (what training passes): each example's mean over the
    score entries whose query and key are both real tokens (heads x n x n of them for a row of
    n tokens), then the mean over examples. Padding contributes nothing, so the loss of a
    batch does not depend on how far it is padded, and the mean over examples keeps the loss
    of a data-parallel global batch equal to the mean of its workers' losses. For rows without
    padding (corpus records) this is the plain MSE over all entries.

    Without a mask: the model zoo's loss, the MSE over all entries after zeroing scores at or
    below -100 (masked keys) in both maps.
    """
    if input_mask is None:
        student = ops.where(
            student_scores <= MASKED_SCORE, ops.zeros_like(student_scores), student_scores
        )
        teacher = ops.where(
            teacher_scores <= MASKED_SCORE, ops.zeros_like(teacher_scores), teacher_scores
        )
        return ops.mean(ops.square(student - teacher))
    mask = ops.cast(input_mask, ms.float32)
    real_pairs = ops.expand_dims(ops.expand_dims(mask, 2) * ops.expand_dims(mask, 1), 1)
    # scores at masked keys carry MASK_PENALTY in both maps; the product drops them exactly
    squared = ops.square(student_scores - teacher_scores) * real_pairs
    heads = student_scores.shape[1]
    entries = ops.square(ops.sum(mask, 1)) * heads
    return ops.mean(ops.sum(squared, (1, 2, 3)) / ops.maximum(entries, 1.0))


def hidden_loss(student_fitted, teacher_hidden, input_mask=None):
    """MSE between a student hidden state (already mapped by fit_dense) and the teacher's.

    With `input_mask` [batch, seq]: each example's mean over its real tokens (and the hidden
    units), then the mean over examples, as for attention_loss. Without: the MSE over all
    positions, padding included (the model zoo's).
    """
    if input_mask is None:
        return ops.mean(ops.square(student_fitted - teacher_hidden))
    mask = ops.cast(input_mask, ms.float32)
    per_token = ops.sum(ops.square(student_fitted - teacher_hidden), -1)
    units = ops.sum(mask, 1) * student_fitted.shape[-1]
    return ops.mean(ops.sum(per_token * mask, 1) / ops.maximum(units, 1.0))


def soft_cross_entropy(student_logits, teacher_logits, temperature: float = 1.0, mask=None):
    """Cross-entropy of the student's softened distribution against the teacher's.

    Summed over classes and averaged over examples (over real tokens when `mask` [batch,
    seq] is given, for tagging). The model zoo averaged over classes as well, which only
    divides the loss by the number of labels.
    """
    targets = ops.softmax(teacher_logits / temperature, axis=-1)
    log_probabilities = ops.log_softmax(student_logits / temperature, axis=-1)
    per_example = -ops.sum(targets * log_probabilities, -1)
    if mask is None:
        return ops.mean(per_example)
    mask = ops.cast(mask, ms.float32)
    return ops.sum(per_example * mask) / ops.maximum(ops.sum(mask), 1.0)


def regression_loss(student_logits, targets):
    """MSE over the whole batch (the model zoo used only the last example's)."""
    return ops.mean(ops.square(ops.reshape(student_logits, (-1,)) - ops.reshape(targets, (-1,))))


def cross_entropy(logits, label_ids):
    """Cross-entropy of the logits [batch, labels] against the gold label ids [batch]."""
    return ops.cross_entropy(logits, ops.cast(label_ids, ms.int32))


def token_cross_entropy(logits, label_ids):
    """Cross-entropy per token, [batch, seq, labels] against [batch, seq], averaged over the
    tokens whose label is not IGNORE_INDEX (padding, special tokens, later word pieces)."""
    num_labels = logits.shape[-1]
    return ops.cross_entropy(
        ops.reshape(logits, (-1, num_labels)),
        ops.reshape(ops.cast(label_ids, ms.int32), (-1,)),
        ignore_index=IGNORE_INDEX,
    )


def uniform_layer_map(student_layers: int, teacher_layers: int) -> tuple[list, list]:
    """Teacher indices for each student index, spread evenly.

    Returns (hidden map, attention map). Hidden states are indexed from the embedding
    output (0) to the last layer (N), so the hidden map has M+1 entries: student state m
    learns from teacher state round(m * N / M). Attention scores are indexed by layer
    from 0, so the attention map has M entries: student layer m learns from the teacher
    layer the hidden map gives for its output. 4 from 6: hidden [0, 2, 3, 5, 6],
    attention [1, 2, 4, 5]; 4 from 12: hidden [0, 3, 6, 9, 12], attention [2, 5, 8, 11].
    """
    hidden = [int(m * teacher_layers / student_layers + 0.5) for m in range(student_layers + 1)]
    return hidden, [h - 1 for h in hidden[1:]]


def check_layer_map(hidden_map, attention_map, student_layers: int, teacher_layers: int) -> None:
    """Raise ValueError naming the config key if a mapping does not fit the two models."""
    if len(hidden_map) != student_layers + 1:
        raise ValueError(
            f"hidden_layer_map has {len(hidden_map)} entries; the student has {student_layers} "
            f"layers, so it needs {student_layers + 1} (embedding output first)"
        )
    if len(attention_map) != student_layers:
        raise ValueError(
            f"attention_layer_map has {len(attention_map)} entries; it needs one per student "
            f"layer ({student_layers})"
        )
    if not all(0 <= t <= teacher_layers for t in hidden_map):
        raise ValueError(f"hidden_layer_map {hidden_map}: entries must be in 0..{teacher_layers}")
    if not all(0 <= t < teacher_layers for t in attention_map):
        raise ValueError(
            f"attention_layer_map {attention_map}: entries must be in 0..{teacher_layers - 1}"
        )

"""Loss networks: a frozen teacher and a student in, one scalar loss out.

Each is an `nn.Cell` the training step differentiates with respect to the student's
parameters only. The teacher runs in inference mode (no dropout) and its outputs are cut
from the gradient graph.

- `DistillationLoss`: TinyBERT's losses. General distillation and task-distillation phase
  1 use the attention and hidden-state losses (`layers=True`); phase 2 the prediction loss
  (`prediction=True`). Both at once is allowed too.
- `PredictionLoss`: phase 2 on teacher logits computed beforehand (teacher_outputs.py): the
  student alone runs.
- `FineTuneLoss`: plain supervised loss on labels, for fine-tuning a teacher.
"""

from __future__ import annotations

import mindspore as ms
from mindspore import nn, ops

from tinybert_core import IGNORE_INDEX  # label of padding and special tokens in NER data

from .losses import attention_loss, hidden_loss, regression_loss, soft_cross_entropy


def freeze(teacher: nn.Cell) -> nn.Cell:
    """Inference mode and no gradients for every teacher parameter."""
    teacher.set_train(False)
    for parameter in teacher.get_parameters():
        parameter.requires_grad = False
    return teacher


class DistillationLoss(nn.Cell):
    """Teacher -> student distillation loss.

    Args:
        teacher: a BertModel or a head model (its outputs end with hidden_states,
            attention_scores; a head's first output is its logits).
        student: a `tinybert_model.TinyBertStudent`.
        hidden_map / attention_map: teacher index for each student index (see
            losses.uniform_layer_map).
        layers / prediction: which losses to use.
        task_type: "classification", "ner" or "regression" (the prediction loss).
    """

    def __init__(
        self,
        teacher,
        student,
        hidden_map,
        attention_map,
        *,
        layers: bool = True,
        prediction: bool = False,
        task_type: str = "classification",
        temperature: float = 1.0,
        attention_weight: float = 1.0,
        hidden_weight: float = 1.0,
        prediction_weight: float = 1.0,
    ):
        super().__init__()
        self.teacher = freeze(teacher)
        self.student = student
        self.hidden_pairs = tuple(enumerate(hidden_map))
        self.attention_pairs = tuple(enumerate(attention_map))
        self.layers = layers
        self.prediction = prediction
        self.task_type = task_type
        self.temperature = temperature
        self.attention_weight = attention_weight
        self.hidden_weight = hidden_weight
        self.prediction_weight = prediction_weight

    def construct(self, input_ids, segment_ids, input_mask, label_ids=None):
        teacher_outputs = self.teacher(input_ids, segment_ids, input_mask)
        teacher_logits = ops.stop_gradient(teacher_outputs[0])
        student_logits, student_hidden, student_scores = self.student(
            input_ids, segment_ids, input_mask
        )
        loss = ops.zeros((), ms.float32)
        if self.layers:
            teacher_hidden = teacher_outputs[-2]
            teacher_scores = teacher_outputs[-1]
            for student_index, teacher_index in self.attention_pairs:
                teacher_layer = ops.stop_gradient(teacher_scores[teacher_index])
                loss += self.attention_weight * attention_loss(
                    student_scores[student_index], teacher_layer, input_mask
                )
            for student_index, teacher_index in self.hidden_pairs:
                teacher_state = ops.stop_gradient(teacher_hidden[teacher_index])
                loss += self.hidden_weight * hidden_loss(
                    student_hidden[student_index], teacher_state, input_mask
                )
        if self.prediction:
            loss += self.prediction_weight * prediction_loss(
                self.task_type,
                student_logits,
                teacher_logits,
                label_ids,
                input_mask,
                self.temperature,
            )
        return loss


def prediction_loss(task_type, student_logits, teacher_logits, label_ids, input_mask, temperature):
    """Phase 2's loss: soft cross-entropy against the teacher (per real token for NER)."""
    if task_type == "regression":
        # the zoo's TinyBERT regresses on the gold labels in phase 2
        return regression_loss(student_logits, label_ids)
    if task_type == "ner":
        return soft_cross_entropy(student_logits, teacher_logits, temperature, input_mask)
    return soft_cross_entropy(student_logits, teacher_logits, temperature)


class PredictionLoss(nn.Cell):
    """Phase 2 on cached teacher logits (`teacher_logits`, an input like the data columns).

    `student` is a TinyBertStudent; only its wrapped model runs (fit_dense serves phase 1).
    Regression learns from the gold labels (as the zoo's phase 2 does): no teacher_logits.
    """

    def __init__(self, student, *, task_type: str, temperature: float = 1.0, weight: float = 1.0):
        super().__init__()
        self.model = student.model
        self.task_type = task_type
        self.temperature = temperature
        self.weight = weight

    def construct(self, input_ids, segment_ids, input_mask, label_ids, teacher_logits=None):
        student_logits = self.model(input_ids, segment_ids, input_mask)[0]
        return self.weight * prediction_loss(
            self.task_type, student_logits, teacher_logits, label_ids, input_mask, self.temperature
        )


class FineTuneLoss(nn.Cell):
    """Supervised loss for a head model: cross-entropy, token cross-entropy or MSE."""

    def __init__(self, model, task_type: str):
        super().__init__()
        self.model = model
        self.task_type = task_type

    def construct(self, input_ids, segment_ids, input_mask, label_ids):
        logits = self.model(input_ids, segment_ids, input_mask)[0]
        if self.task_type == "regression":
            return regression_loss(logits, label_ids)
        if self.task_type == "ner":
            num_labels = logits.shape[-1]
            return ops.cross_entropy(
                ops.reshape(logits, (-1, num_labels)),
                ops.reshape(ops.cast(label_ids, ms.int32), (-1,)),
                ignore_index=IGNORE_INDEX,
            )
        return ops.cross_entropy(logits, ops.cast(label_ids, ms.int32))

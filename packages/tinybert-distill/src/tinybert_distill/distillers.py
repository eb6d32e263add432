"""Loss networks: models in, one scalar loss out, the sum of a list of matches (matches.py).

Each is an `nn.Cell` the training step differentiates with respect to the trained model's
parameters only. A teacher runs in inference mode (no dropout) and its outputs are cut from
the gradient graph.

- `DistillationLoss`: a frozen teacher and a student run on the batch; general distillation
  and task-distillation phase 1 (matches.general_distillation_matches, task_phase1_matches).
- `PredictionLoss`: the student's model alone, its logits against teacher logits computed
  beforehand (teacher_outputs.py) or the gold labels: task-distillation phase 2
  (matches.task_phase2_matches).
- `FineTuneLoss`: a PredictionLoss on the gold labels, for fine-tuning a teacher
  (matches.fine_tuning_matches).
"""

from __future__ import annotations

import mindspore as ms
from mindspore import nn, ops

from tinybert_model import BertModel, TinyBertStudent, return_layer_outputs

from .matches import compile_matches, feature_of, fine_tuning_matches


def freeze(teacher: nn.Cell) -> nn.Cell:
    """Inference mode and no gradients for every teacher parameter."""
    teacher.set_train(False)
    for parameter in teacher.get_parameters():
        parameter.requires_grad = False
    return teacher


class DistillationLoss(nn.Cell):
    """Teacher -> student distillation: `sum(weight * loss(student feature, teacher feature))`
    over `matches`, in their order.

    Args:
        teacher: a BertModel or a head model, returning the features the matches name.
        student: a `tinybert_model.TinyBertStudent` (hidden states fitted to the teacher's).
        matches: a list of `matches.Match`.

        keep_teacher_logits: also return the teacher's logits, `(loss, teacher_logits)`:
            phase 1 hands them to phase 2, which then needs no teacher pass of its own
            (teacher_outputs.py). `extra_outputs` says how many outputs follow the loss.
    """

    def __init__(self, teacher, student, matches, keep_teacher_logits=False):
        super().__init__()
        self.extra_outputs = 1 if keep_teacher_logits else 0
        self.matches = list(matches)
        self.terms = compile_matches(self.matches)
        reads_layers = any(m.feature != "logits" for m in self.matches)
        if reads_layers and (isinstance(teacher, BertModel) or "bert" in teacher.name_cells()):
            # layer matches read the teacher's hidden states and attention scores, which a
            # tinybert_model model returns only when asked (a TinyBertStudent asks for its own)
            teacher = return_layer_outputs(teacher)
        self.teacher = freeze(teacher)
        self.student = student

    def construct(self, input_ids, segment_ids, input_mask, label_ids=None):
        teacher_outputs = self.teacher(input_ids, segment_ids, input_mask)
        student_outputs = self.student(input_ids, segment_ids, input_mask)
        loss = ops.zeros((), ms.float32)
        for feature, student_layer, teacher_layer, loss_function, weight, temperature in self.terms:
            student_value = feature_of(student_outputs, feature)
            teacher_value = feature_of(teacher_outputs, feature)
            if student_layer is not None:
                student_value = student_value[student_layer]
                teacher_value = teacher_value[teacher_layer]
            teacher_value = ops.stop_gradient(teacher_value)
            loss += weight * loss_function(
                student_value, teacher_value, input_mask, label_ids, temperature
            )
        if self.extra_outputs:
            return loss, ops.stop_gradient(feature_of(teacher_outputs, "logits"))
        return loss


class PredictionLoss(nn.Cell):
    """The model alone runs: `sum(weight * loss(logits, teacher_logits))` over logits matches.

    `teacher_logits` is an input like the data columns (phase 2 on cached teacher logits);
    matches that learn from the gold labels need none (regression, fine-tuning).

    Args:
        student: a TinyBertStudent (only its wrapped model runs: fit_dense serves the layer
            matches) or a head model.
        matches: a list of "logits" matches.
    """

    def __init__(self, student, matches):
        super().__init__()
        self.matches = list(matches)
        if any(m.feature != "logits" for m in self.matches):
            raise ValueError("PredictionLoss runs the model's head alone: logits matches only")
        self.terms = compile_matches(self.matches)
        self.model = student.model if isinstance(student, TinyBertStudent) else student

    def construct(self, input_ids, segment_ids, input_mask, label_ids, teacher_logits=None):
        # logits_only: no layer outputs, and a classifier's last layer computes [CLS] alone
        outputs = self.model(input_ids, segment_ids, input_mask, logits_only=True)
        logits = feature_of(outputs, "logits")
        loss = ops.zeros((), ms.float32)
        for _, _, _, loss_function, weight, temperature in self.terms:
            loss += weight * loss_function(
                logits, teacher_logits, input_mask, label_ids, temperature
            )
        return loss


class FineTuneLoss(PredictionLoss):
    """Supervised loss for a head model: cross-entropy, token cross-entropy or MSE."""

    def __init__(self, model, task_type: str):
        super().__init__(model, fine_tuning_matches(task_type))

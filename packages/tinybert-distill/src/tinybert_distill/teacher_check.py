"""Is the task teacher better than a guess? Checked before task distillation starts.

The checks of the teacher's checkpoint (students.check_task_teacher: a head, labels, the
data's labels in the data's order) pass a teacher that learnt nothing: a Hugging Face
classifier saved right after `from_pretrained` (its classifier as initialised), or one
fine-tuned on other data under the same label names. Distilling from it runs to the end and
gives a student as useless, without a word: the most reported cause of TinyBERT results that
do not reproduce (huawei-noah/Pretrained-Language-Model#52). So before phase 1 the teacher is
scored, and its score compared with that of the best guess that ignores the input:

- classification: accuracy over the rows, against always predicting the most frequent label
  (the majority rate);
- ner: token accuracy over the scored tokens, against tagging every token with the most
  frequent tag ("O", whose span F1 is 0);
- regression: Pearson's correlation (0 for constant predictions), against none (0).

A teacher counts as trained when its score is more than MARGIN_SE standard errors of the
guess's score above it, at the size of the data: sqrt(p (1 - p) / n) for a rate p over n rows;
for tokens, n is Kish's effective sample size (sum of m)^2 / sum of m^2 over sentences of m
scored tokens, because the tokens of a sentence are not independent draws (at worst they are
all alike and a sentence counts once, weighted by its length); 1 / sqrt(n - 1) for a
correlation where there is none. A teacher whose predictions have nothing to do with the
labels scores at most the guess on average (less, unless it always predicts the most frequent
label), so it passes by chance with probability below 2.3%, the normal tail beyond 2 standard
errors. On SST-2 dev (872 rows, majority rate 0.509) the bar is 0.543; the reference recipe's
teacher scores 0.89.

The data scored is the evaluation data, every row, when the run has some (`do_eval`).
Without it, up to SAMPLE_ROWS training rows spread evenly over the records are scored, and
their logits are handed to phase 2 (which learns from the teacher's logits of training rows)
with phase 1's (not with a data sink, where phase 1 keeps none). A teacher fine-tuned on those
very rows scores higher there than on rows it never saw, but one that learnt nothing does not.
The evaluation rows' logits are no use to phase 2, which scores the student on them, not the
teacher.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass

import numpy as np

from tinybert_core import IGNORE_INDEX

from .data import Dataset
from .evaluation import metrics_of, predict
from .students import ModelError

log = logging.getLogger("tinybert_distill")

MARGIN_SE = 2.0  # standard errors above the guess a trained teacher must score
SAMPLE_ROWS = 1024  # training rows scored when there is no evaluation data
MEASURES = {"classification": "accuracy", "ner": "token_accuracy", "regression": "pearson"}


class WeakTeacherError(ModelError):
    """A teacher that scores no better than a guess that ignores the input."""


@dataclass(frozen=True)
class TeacherScore:
    data: str  # what was scored: "dev (872 rows)", or which training rows
    metrics: dict  # tinybert-eval's result: the task's own metrics
    measure: str  # MEASURES[task type]
    score: float
    guess: str  # "always predicting '1'", "tagging every token 'O'", ...
    baseline: float  # the guess's score
    margin: float  # MARGIN_SE standard errors of the guess's score at this size
    learnt: bool | None  # None: every label is the same, no teacher can beat the guess

    def __str__(self) -> str:
        main = self.metrics.get("main")
        also = f" ({main} {self.metrics[main]:.4f})" if main and main != self.measure else ""
        return (
            f"{self.measure} {self.score:.4f}{also} on {self.data}, where {self.guess} scores "
            f"{self.baseline:.4f} and a trained teacher more than "
            f"{self.baseline + self.margin:.4f} ({MARGIN_SE:g} standard errors above)"
        )


def judge(
    data: str, metrics: dict, task_type: str, labels, input_mask, label_names
) -> TeacherScore:
    """The teacher's score (from tinybert-eval's `metrics`) against the guess's on the same
    labels: `labels` and `input_mask` of the scored rows, `label_names` in id order."""
    measure = MEASURES[task_type]
    score = float(metrics[measure])
    if task_type == "regression":
        values = np.asarray(labels, np.float64).reshape(-1)
        values = values[values != IGNORE_INDEX]
        if math.isnan(score):  # constant predictions: nothing to correlate
            score = 0.0
        margin = MARGIN_SE / math.sqrt(max(len(values) - 1, 1))
        learnt = None if len(values) < 3 or np.ptp(values) == 0 else bool(score > margin)
        guess = "predicting without regard to the labels"
        return TeacherScore(data, metrics, measure, score, guess, 0.0, margin, learnt)

    labels = np.asarray(labels)
    scored = labels != IGNORE_INDEX
    if task_type == "ner":
        scored &= np.asarray(input_mask) != 0
        per_sentence = scored.sum(axis=1).astype(np.float64)
        size = per_sentence.sum() ** 2 / max((per_sentence**2).sum(), 1.0)
    else:
        size = float(scored.sum())
    counts = np.bincount(labels[scored], minlength=len(label_names))
    top = int(counts.argmax())
    rate = float(counts[top] / max(counts.sum(), 1))
    margin = MARGIN_SE * math.sqrt(rate * (1 - rate) / max(size, 1.0))
    learnt = None if not 0 < rate < 1 else bool(score > rate + margin)
    name = label_names[top]
    guess = f"tagging every token {name!r}" if task_type == "ner" else f"always predicting {name!r}"
    return TeacherScore(
        data, metrics, measure, score, f"{guess} (the majority rate)", rate, margin, learnt
    )


def score_teacher(
    teacher,
    task_type: str,
    train: Dataset,
    evaluation_data: Dataset | None,
    batch_size: int = 32,
    length_buckets: bool = True,
    keep=None,
) -> TeacherScore:
    """Score a head model on the evaluation data, or without it on up to SAMPLE_ROWS training
    rows, whose logits go to `keep` (phase 1's `teacher_outputs.PhaseLogits`) if given."""
    if evaluation_data is not None:
        data, rows = evaluation_data, np.arange(evaluation_data.num_rows)
        described = f"{data.path} ({data.num_rows} rows)"
    else:
        data, count = train, min(train.num_rows, SAMPLE_ROWS)
        rows = np.unique(np.linspace(0, train.num_rows - 1, count).round().astype(np.int64))
        described = (
            f"{len(rows)} of the {train.num_rows} training rows of {train.path} "
            "(no evaluation data)"
        )
    logits = predict(teacher, data, rows, batch_size, length_buckets)
    if data is train and keep is not None:
        keep(rows, [logits])
    labels, input_mask = data.inputs(rows, ("label_ids", "input_mask"))
    metrics = metrics_of(logits, data, rows, batch_size)
    return judge(
        described, metrics, task_type, labels, input_mask, list(data.task.get("labels") or [])
    )


def refuse_weak_teacher(score: TeacherScore, teacher_path, allow_weak: bool) -> None:
    """Stop the run before anything is written, unless `--allow_weak_teacher true`."""
    if score.learnt is False and not allow_weak:
        raise WeakTeacherError(
            f"{teacher_path} does no better than a guess: {score}; fine-tune it on these "
            "records (tinybert-finetune) and use its best.ckpt, or pass --allow_weak_teacher "
            "true to distil from it anyway"
        )


def log_teacher_score(score: TeacherScore | None, teacher_path, run) -> None:
    """The teacher's score in log.txt and metrics.jsonl (`"phase": "teacher"`), once the run
    has started; `score` None: a run that starts from a phase-1 student, not checked."""
    if score is None:
        log.info(
            "teacher check: not run when phase 1 is skipped (load_td1_ckpt_path); it runs "
            "before phase 1"
        )
        return
    if score.learnt is None:
        log.info("teacher %s: %s; not judged: every label is the same", teacher_path, score)
    elif score.learnt:
        log.info("teacher %s: %s: trained", teacher_path, score)
    else:
        log.warning(
            "teacher %s: %s: no better than the guess; distilling from it all the same "
            "(--allow_weak_teacher true)",
            teacher_path,
            score,
        )
    if run.is_main:
        record = {"phase": "teacher", "teacher": str(teacher_path), **asdict(score)}
        with open(run.output_dir / "metrics.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, default=float) + "\n")

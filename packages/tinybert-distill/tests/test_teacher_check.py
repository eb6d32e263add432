"""The teacher check of tinybert-td: a teacher no better than a guess is refused before anything
is written (unless --allow_weak_teacher true), and every run logs the teacher's score.

The two teachers are real transformers models (fixtures/make_teacher_fixtures.py): a
BertForSequenceClassification saved right after `from_pretrained` of a small pretrained BERT,
and the same model fine-tuned on SST-2 with torch.
"""

import json
import math
from collections import Counter

import mindspore as ms
import numpy as np
import pytest
from conftest import FIXTURES, SHARED_DATA, converted, write_records

from tinybert_distill.cli import task_distill
from tinybert_distill.data import load_dataset
from tinybert_distill.evaluation import evaluate, metrics_of
from tinybert_distill.teacher_check import MARGIN_SE, judge, score_teacher
from tinybert_eval import get_evaluator
from tinybert_model import load_model

VOCAB = FIXTURES / "mlm" / "vocab.txt"  # the teachers' 1,200-token vocabulary
DEV_ROWS = 200


@pytest.fixture(autouse=True)
def pynative_mode():
    """Inference of a tiny model: no graph compiles needed (conftest's graph_mode, which runs
    first, sets graph mode back for the next test)."""
    ms.set_context(mode=ms.PYNATIVE_MODE)


@pytest.fixture(scope="module")
def teachers(tmp_path_factory) -> dict:
    """The two transformers teachers, converted."""
    names = ("sst2_untrained", "sst2_finetuned")
    return {name: converted(FIXTURES / "teachers" / name, tmp_path_factory) for name in names}


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("sst2_small_vocab")
    sst2 = SHARED_DATA / "sst2"
    return {
        "train": write_records(sst2 / "train.tsv", 64, "sst2", VOCAB, folder / "train"),
        "dev": write_records(sst2 / "dev.tsv", DEV_ROWS, "sst2", VOCAB, folder / "dev"),
    }


def dev_majority() -> tuple:
    """(label, share) of the most frequent label of the dev rows, read from the TSV itself."""
    lines = (SHARED_DATA / "sst2" / "dev.tsv").read_text(encoding="utf-8").splitlines()
    labels = Counter(line.split("\t")[1] for line in lines[1 : 1 + DEV_ROWS])
    label, count = labels.most_common(1)[0]
    return label, count / DEV_ROWS


# ---- the score and the guess ------------------------------------------------------------------


def test_a_teacher_saved_at_initialisation_is_no_better_than_the_majority(teachers, records):
    dev = load_dataset(records["dev"])
    score = score_teacher(load_model(teachers["sst2_untrained"]), "classification", dev, dev)
    label, share = dev_majority()
    assert score.learnt is False
    assert score.measure == "accuracy" and score.score == score.metrics["accuracy"]
    assert score.baseline == pytest.approx(share) and f"always predicting {label!r}" in score.guess
    assert score.margin == pytest.approx(MARGIN_SE * math.sqrt(share * (1 - share) / DEV_ROWS))
    assert score.score <= score.baseline + score.margin


def test_a_fine_tuned_teacher_is_accepted_with_the_score_evaluation_gives(teachers, records):
    dev = load_dataset(records["dev"])
    teacher = load_model(teachers["sst2_finetuned"])
    score = score_teacher(teacher, "classification", dev, dev)
    assert score.learnt is True
    assert score.score > score.baseline + score.margin
    assert score.baseline == pytest.approx(dev_majority()[1])
    assert score.score == pytest.approx(evaluate(teacher, dev)["accuracy"])


def test_without_evaluation_data_training_rows_are_scored_and_kept(teachers, records):
    train = load_dataset(records["train"])
    kept = {}
    score = score_teacher(
        load_model(teachers["sst2_finetuned"]),
        "classification",
        train,
        None,
        keep=lambda rows, extras: kept.update(rows=rows, logits=extras[0]),
    )
    assert f"{train.num_rows} of the {train.num_rows} training rows" in score.data
    assert list(kept["rows"]) == list(range(train.num_rows))
    assert kept["logits"].shape == (train.num_rows, 2)
    assert score.score == pytest.approx(metrics_of(kept["logits"], train)["accuracy"])


def test_ner_is_judged_on_tokens_against_tagging_everything_o(cluener_train):
    data = load_dataset(cluener_train)
    rows = np.arange(data.num_rows)
    labels, mask = data.inputs(rows, ("label_ids", "input_mask"))
    tags = list(data.task["labels"])
    scored = (labels >= 0) & (mask != 0)
    o_share = float(np.mean(labels[scored] == tags.index("O")))

    all_o = np.zeros((*labels.shape, len(tags)), np.float32)
    all_o[..., tags.index("O")] = 1.0
    score = judge("cluener", metrics_of(all_o, data), "ner", labels, mask, tags)
    assert score.metrics["f1"] == 0.0
    assert score.score == pytest.approx(o_share) and score.baseline == pytest.approx(o_share)
    assert score.learnt is False and "tagging every token 'O'" in score.guess
    # tokens of one sentence are not independent: the margin is at least that of one draw
    # per sentence, wider than one per token
    sentences = int((scored.sum(axis=1) > 0).sum())
    per_sentence = MARGIN_SE * math.sqrt(o_share * (1 - o_share) / sentences)
    assert (
        score.margin >= per_sentence > MARGIN_SE * math.sqrt(o_share * (1 - o_share) / scored.sum())
    )

    gold = np.eye(len(tags), dtype=np.float32)[np.where(labels >= 0, labels, 0)]
    score = judge("cluener", metrics_of(gold, data), "ner", labels, mask, tags)
    assert score.learnt is True and score.score == 1.0 and score.metrics["f1"] == 1.0


def regression_metrics(predictions, labels) -> dict:
    evaluator = get_evaluator("stsb")
    evaluator.update(predictions, labels)
    return evaluator.compute()


def test_regression_is_judged_on_correlation_against_none():
    rng = np.random.default_rng(0)
    labels = rng.uniform(0, 5, 200).astype(np.float32)
    mask = np.ones((200, 8), np.int32)

    def judged(predictions):
        metrics = regression_metrics(predictions, labels)
        return judge("stsb", metrics, "regression", labels, mask, [])

    constant = judged(np.full(200, 2.5))  # Pearson is undefined: no correlation
    assert constant.score == 0.0 and constant.learnt is False
    assert constant.margin == pytest.approx(MARGIN_SE / math.sqrt(199))
    assert judged(rng.normal(size=200)).learnt is False  # unrelated to the labels
    assert judged(labels + rng.normal(0, 1, 200)).learnt is True


def test_data_of_one_label_cannot_tell_a_teacher_from_the_guess():
    labels = np.ones(50, np.int64)
    logits = np.tile(np.float32([0.0, 1.0]), (50, 1))
    evaluator = get_evaluator("sst2")
    evaluator.update(logits, labels)
    score = judge("x", evaluator.compute(), "classification", labels, None, ["0", "1"])
    assert score.score == score.baseline == 1.0 and score.learnt is None


# ---- tinybert-td ------------------------------------------------------------------------------


def td_arguments(teacher, records, output, *extra) -> list:
    return [
        *("--task_name", "sst2", "--load_teacher_ckpt_path", str(teacher)),
        *("--init_student_from_teacher_layers", "[0]", "--train_steps", "2"),
        *("--train_data_dir", str(records["train"]), "--eval_data_dir", str(records["dev"])),
        *("--save_ckpt_path", str(output), "--ms_mode", "PYNATIVE"),
        *("--phase1_cfg.batch_size", "16", "--phase2_cfg.batch_size", "16"),
        *extra,
    ]


def teacher_records(output) -> list:
    lines = (output / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [r for r in map(json.loads, lines) if r["phase"] == "teacher"]


def test_tinybert_td_refuses_an_untrained_teacher_before_writing(
    teachers, records, tmp_path, capsys
):
    output = tmp_path / "td"
    assert task_distill(td_arguments(teachers["sst2_untrained"], records, output)) == 1
    console = capsys.readouterr().err
    error = console.strip().splitlines()[-1]  # one line, after the log lines
    label, share = dev_majority()
    assert error.startswith("tinybert-td: error: ") and "Traceback" not in console
    assert f"{teachers['sst2_untrained']} does no better than a guess: accuracy 0." in error
    assert f"always predicting {label!r} (the majority rate) scores {share:.4f}" in error
    assert "--allow_weak_teacher true" in error
    assert not output.exists()


def test_allow_weak_teacher_runs_and_hands_the_scored_rows_to_phase2(teachers, records, tmp_path):
    """Without evaluation data the training rows are scored; phase 2 computes none again."""
    output = tmp_path / "td"
    allowed = ("--do_eval", "false", "--allow_weak_teacher", "true")
    arguments = td_arguments(teachers["sst2_untrained"], records, output, *allowed)
    assert task_distill(arguments) == 0
    (record,) = teacher_records(output)
    assert record["learnt"] is False and record["measure"] == "accuracy"
    assert record["data"].startswith("64 of the 64 training rows")
    log = (output / "log.txt").read_text(encoding="utf-8")
    assert "no better than the guess; distilling from it all the same" in log
    assert "teacher logits: 32 rows from phase 1" in log  # 2 steps of 16
    assert "teacher logits: computing" not in log
    assert (output / "td_phase2.ckpt").is_file()


def test_a_fine_tuned_teacher_passes_and_its_score_is_logged(teachers, records, tmp_path):
    output = tmp_path / "td"
    arguments = td_arguments(
        teachers["sst2_finetuned"], records, output, "--td_phase2_epoch_size", "0"
    )
    assert task_distill(arguments) == 0
    (record,) = teacher_records(output)
    assert record["learnt"] is True and record["data"] == f"{records['dev']} ({DEV_ROWS} rows)"
    assert record["score"] > record["baseline"] + record["margin"]
    assert record["metrics"]["accuracy"] == record["score"]
    log = (output / "log.txt").read_text(encoding="utf-8")
    assert f"teacher {teachers['sst2_finetuned']}: accuracy {record['score']:.4f} on" in log
    assert log.index("teacher ") < log.index("epoch: 1, step: 1,")  # before phase 1

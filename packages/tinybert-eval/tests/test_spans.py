"""Span P/R/F1 equal seqeval's on real CLUENER dev entities against systematically perturbed
predictions, for BIO and BIOES."""

import random

import pytest
from seqeval.metrics import classification_report

from tinybert_eval import span_scores, spans_from_cluener, spans_from_tags, tags_from_spans
from tinybert_eval.evaluators import CLUENER_TYPES


def perturb(spans, length, rng):
    """Drop, shift, retype and invent entities, keeping them inside the sentence and apart."""
    result = []
    for kind, start, end in spans:
        roll = rng.random()
        if roll < 0.15:
            continue  # dropped
        if roll < 0.30:
            shift = rng.choice([-1, 1])
            start, end = max(0, start + shift), min(length - 1, end + shift)
        elif roll < 0.45:
            kind = rng.choice([k for k in CLUENER_TYPES if k != kind])
        elif roll < 0.55:
            end = max(start, end - 1)  # shortened
        result.append((kind, start, end))
    if rng.random() < 0.3 and length > 2:
        start = rng.randrange(length - 1)
        result.append((rng.choice(CLUENER_TYPES), start, min(length - 1, start + rng.randrange(3))))
    # later entities overwrite earlier ones where they overlap, as tags would
    return result


def tags_for(spans, length, scheme):
    return tags_from_spans(spans, length, scheme)


def seqeval_report(gold, predicted):
    """seqeval's default (conlleval) mode, which reads B-, I-, E- and S- tags alike."""
    return classification_report(gold, predicted, output_dict=True, zero_division=0)


@pytest.mark.parametrize("scheme", ["BIO", "BIOES"])
def test_span_scores_equal_seqeval_on_cluener_dev(cluener_dev, scheme):
    rng = random.Random(0)
    gold_tags, predicted_tags = [], []
    for record in cluener_dev:
        length = len(record["text"])
        gold = spans_from_cluener(record["label"])
        gold_tags.append(tags_for(gold, length, scheme))
        predicted_tags.append(tags_for(perturb(gold, length, rng), length, scheme))
        if rng.random() < 0.05:  # stray I- tags: conlleval opens an entity there
            position = rng.randrange(length)
            predicted_tags[-1][position] = f"I-{rng.choice(CLUENER_TYPES)}"

    ours = span_scores(
        [spans_from_tags(t, scheme) for t in predicted_tags],
        [spans_from_tags(t, scheme) for t in gold_tags],
    )
    theirs = seqeval_report(gold_tags, predicted_tags)
    assert 0.3 < ours["f1"] < 0.95  # the perturbations bite, but not everywhere
    for kind in CLUENER_TYPES:
        for metric in ("precision", "recall", "f1"):
            assert ours["per_type"][kind][metric] == pytest.approx(
                theirs[kind][f"{metric}-score" if metric == "f1" else metric], abs=1e-12
            )
        assert ours["per_type"][kind]["support"] == theirs[kind]["support"]
    micro = theirs["micro avg"]
    assert ours["precision"] == pytest.approx(micro["precision"], abs=1e-12)
    assert ours["recall"] == pytest.approx(micro["recall"], abs=1e-12)
    assert ours["f1"] == pytest.approx(micro["f1-score"], abs=1e-12)


def test_gold_against_itself_is_perfect(cluener_dev):
    spans = [spans_from_cluener(r["label"]) for r in cluener_dev]
    scores = span_scores(spans, spans)
    assert scores["f1"] == 1.0
    assert scores["support"] == sum(len(s) for s in spans)


@pytest.mark.parametrize(
    "tags, spans",
    [
        (["B-name", "I-name", "O", "B-game"], [("name", 0, 1), ("game", 3, 3)]),
        (["I-name", "I-name", "O"], [("name", 0, 1)]),  # a stray I- opens an entity
        (["B-name", "I-game", "I-game"], [("name", 0, 0), ("game", 1, 2)]),  # type change
        (["B-name", "B-name"], [("name", 0, 0), ("name", 1, 1)]),
        (["O", "O"], []),
    ],
)
def test_bio_decoding_rules(tags, spans):
    assert spans_from_tags(tags) == spans


def test_bioes_decoding():
    tags = ["S-name", "B-address", "I-address", "E-address", "O", "S-game"]
    assert spans_from_tags(tags, "BIOES") == [("name", 0, 0), ("address", 1, 3), ("game", 5, 5)]
    assert tags_from_spans(spans_from_tags(tags, "BIOES"), len(tags), "BIOES") == tags


def test_cluener_spans_are_end_inclusive(cluener_dev):
    record = cluener_dev[0]
    for kind, start, end in spans_from_cluener(record["label"]):
        assert record["text"][start : end + 1] in record["label"][kind]

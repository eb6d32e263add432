"""Span P/R/F1 equal seqeval's on real CLUENER dev entities against systematically perturbed
predictions, for BIO and BIOES: in seqeval's default (conlleval) mode on any tag sequence, and
in its strict mode on well-formed ones."""

import random

import pytest
from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
from seqeval.scheme import IOB2, IOBES

from tinybert_core import CLUENER_TYPES
from tinybert_eval import span_scores, spans_from_cluener, spans_from_tags, tags_from_spans

STRICT_SCHEMES = {"BIO": IOB2, "BIOES": IOBES}


def perturb(spans, length, rng):
    """Drop, shift, retype, shorten and invent entities, keeping them inside the sentence.
    Shifted and invented entities may overlap others; written as tags, the later one wins."""
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
    return result


def without_overlaps(spans):
    """Keep each span that overlaps none kept before it: the tags are then well formed."""
    kept = []
    for span in spans:
        if all(span[2] < other[1] or other[2] < span[1] for other in kept):
            kept.append(span)
    return kept


def perturbed_corpus(cluener_dev, scheme, well_formed):
    rng = random.Random(0)
    gold_tags, predicted_tags = [], []
    for record in cluener_dev:
        length = len(record["text"])
        gold = spans_from_cluener(record["label"])
        predicted = perturb(gold, length, rng)
        if well_formed:
            predicted = without_overlaps(predicted)
        gold_tags.append(tags_from_spans(gold, length, scheme))
        predicted_tags.append(tags_from_spans(predicted, length, scheme))
        if not well_formed and rng.random() < 0.05:  # a stray inside tag: an entity opens there
            stray = rng.choice(["I", "E"] if scheme == "BIOES" else ["I"])
            predicted_tags[-1][rng.randrange(length)] = f"{stray}-{rng.choice(CLUENER_TYPES)}"
    return gold_tags, predicted_tags


def assert_equal_to_seqeval(gold_tags, predicted_tags, tag_scheme, **seqeval_mode):
    ours = span_scores(
        [spans_from_tags(t, tag_scheme) for t in predicted_tags],
        [spans_from_tags(t, tag_scheme) for t in gold_tags],
    )
    theirs = classification_report(
        gold_tags, predicted_tags, output_dict=True, zero_division=0, **seqeval_mode
    )
    assert 0.3 < ours["f1"] < 0.95  # the perturbations bite, but not everywhere
    for kind in CLUENER_TYPES:
        for metric in ("precision", "recall", "f1"):
            assert ours["per_type"][kind][metric] == pytest.approx(
                theirs[kind][f"{metric}-score" if metric == "f1" else metric], abs=1e-12
            )
        assert ours["per_type"][kind]["support"] == theirs[kind]["support"]
    for metric, function in (
        ("precision", precision_score),
        ("recall", recall_score),
        ("f1", f1_score),
    ):
        micro = function(gold_tags, predicted_tags, zero_division=0, **seqeval_mode)
        assert ours[metric] == pytest.approx(micro, abs=1e-12)
    assert ours["support"] == theirs["micro avg"]["support"]


@pytest.mark.parametrize("scheme", ["BIO", "BIOES"])
def test_span_scores_equal_seqeval_default_mode(cluener_dev, scheme):
    """Overlapping entities and stray inside tags: decoded as conlleval does."""
    gold_tags, predicted_tags = perturbed_corpus(cluener_dev, scheme, well_formed=False)
    assert_equal_to_seqeval(gold_tags, predicted_tags, scheme)


@pytest.mark.parametrize("scheme", ["BIO", "BIOES"])
def test_span_scores_equal_seqeval_strict_mode_on_well_formed_tags(cluener_dev, scheme):
    gold_tags, predicted_tags = perturbed_corpus(cluener_dev, scheme, well_formed=True)
    assert_equal_to_seqeval(
        gold_tags, predicted_tags, scheme, mode="strict", scheme=STRICT_SCHEMES[scheme]
    )


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


@pytest.mark.parametrize(
    "tags, scheme",
    [(["O", "S-name"], "BIO"), (["B-name", "X-name"], "BIOES"), (["B-"], "BIO"), (["B"], "BIO")],
)
def test_tags_outside_the_scheme_are_an_error(tags, scheme):
    with pytest.raises(ValueError, match=f"{tags[-1]!r} at position {len(tags) - 1}"):
        spans_from_tags(tags, scheme)

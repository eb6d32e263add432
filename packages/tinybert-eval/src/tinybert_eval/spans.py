"""Entities as spans: decoding BIO/BIOES tag sequences and CLUENER span dicts, and span-level
precision, recall and F1.

An entity is `(type, start, end)` with `end` inclusive, positions counted in the tag
sequence (characters for CLUENER). Decoding follows conlleval, as seqeval does by default,
so the figures equal seqeval's:

- an entity starts at `B-X` or `S-X`, and also at an `I-X`/`E-X` that follows `O`, an
  entity's end (`E-`, `S-`) or a tag of another type (a stray `I-` opens an entity);
- it ends before `B-`, `S-`, `O` or a tag of another type, and after `E-` or `S-`.

The same rules read BIO and BIOES (conlleval's do); the scheme says which prefixes a tag
sequence may use, so that an `E-` or `S-` tag in a BIO sequence is an error, not a guess.
"""

from __future__ import annotations

from collections import Counter

from .metrics import precision_recall_f1

# scheme -> the prefixes its entity tags may carry
SCHEMES = {"BIO": ("B", "I"), "BIOES": ("B", "I", "E", "S")}


def check_tags(tags, scheme: str) -> None:
    """ValueError naming the first tag that is neither `O` nor PREFIX-TYPE of the scheme."""
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}, not {scheme!r}")
    prefixes = SCHEMES[scheme]
    for position, tag in enumerate(tags):
        prefix, dash, kind = tag.partition("-")
        if tag != "O" and not (prefix in prefixes and dash and kind):
            raise ValueError(
                f"tag {tag!r} at position {position} is not a {scheme} tag "
                f"(O or {'/'.join(prefixes)}-TYPE)"
            )


def _split(tag: str) -> tuple:
    if tag == "O":
        return "O", ""
    prefix, _, kind = tag.partition("-")
    return prefix, kind


def _ends(previous: str, previous_type: str, prefix: str, kind: str) -> bool:
    if previous in ("E", "S"):
        return True
    if previous in ("B", "I") and prefix in ("B", "S", "O"):
        return True
    return previous != "O" and previous_type != kind


def _starts(previous: str, previous_type: str, prefix: str, kind: str) -> bool:
    if prefix in ("B", "S"):
        return True
    if prefix in ("I", "E") and previous in ("E", "S", "O"):
        return True
    return prefix != "O" and previous_type != kind


def spans_from_tags(tags, scheme: str = "BIO") -> list:
    """Entities of one tag sequence, e.g. ["B-name", "I-name", "O"] -> [("name", 0, 1)].

    `tags` must all belong to `scheme` (ValueError otherwise)."""
    check_tags(tags, scheme)
    spans = []
    previous, previous_type, start = "O", "", None
    for position, tag in enumerate([*tags, "O"]):
        prefix, kind = _split(tag)
        if start is not None and _ends(previous, previous_type, prefix, kind):
            spans.append((previous_type, start, position - 1))
            start = None
        if _starts(previous, previous_type, prefix, kind):
            start = position
        previous, previous_type = prefix, kind
    return spans


def spans_from_cluener(label: dict) -> list:
    """Entities of a CLUENER `label` dict {type: {text: [[start, end], ...]}} (end inclusive)."""
    spans = []
    for kind, mentions in (label or {}).items():
        for positions in mentions.values():
            spans.extend((kind, int(start), int(end)) for start, end in positions)
    return sorted(spans, key=lambda span: (span[1], span[2], span[0]))


def tags_from_spans(spans, length: int, scheme: str = "BIO") -> list:
    """The tag sequence of `length` positions holding `spans`. Spans should not overlap: where
    they do, a later span overwrites an earlier one's tags, as a tagger's output would."""
    tags = ["O"] * length
    for kind, start, end in spans:
        if scheme == "BIOES" and start == end:
            tags[start] = f"S-{kind}"
            continue
        tags[start] = f"B-{kind}"
        for position in range(start + 1, end + 1):
            tags[position] = f"I-{kind}"
        if scheme == "BIOES":
            tags[end] = f"E-{kind}"
    return tags


class SpanCounts:
    """Correct, predicted and gold entity counts per type, accumulated sentence by sentence."""

    def __init__(self):
        self.correct, self.predicted, self.gold = Counter(), Counter(), Counter()

    def add(self, predicted_spans, gold_spans) -> None:
        predicted_set, gold_set = set(predicted_spans), set(gold_spans)
        self.correct.update(kind for kind, _, _ in predicted_set & gold_set)
        self.predicted.update(kind for kind, _, _ in predicted_set)
        self.gold.update(kind for kind, _, _ in gold_set)

    def scores(self) -> dict:
        """Micro precision/recall/F1 over all entities, and the same per type with support."""
        per_type = {}
        for kind in sorted(set(self.gold) | set(self.predicted)):
            precision, recall, f1 = precision_recall_f1(
                self.correct[kind], self.predicted[kind], self.gold[kind]
            )
            per_type[kind] = {
                "precision": precision,
                "recall": recall,
                "f1": f1,
                "support": self.gold[kind],
            }
        totals = (sum(self.correct.values()), sum(self.predicted.values()), sum(self.gold.values()))
        precision, recall, f1 = precision_recall_f1(*totals)
        return {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": totals[2],
            "per_type": per_type,
        }


def span_scores(predicted, gold) -> dict:
    """Span scores over sentences: `predicted` and `gold` are lists of span lists."""
    if len(predicted) != len(gold):
        raise ValueError(f"{len(predicted)} predicted sentences but {len(gold)} gold ones")
    counts = SpanCounts()
    for predicted_spans, gold_spans in zip(predicted, gold):
        counts.add(predicted_spans, gold_spans)
    return counts.scores()

"""`tinybert-eval score`: score a predictions file against a gold file.

    tinybert-eval score --task cluener --predictions pred.json --gold dev.json \\
        --output report.json
    tinybert-eval score --task sst2 --predictions pred.txt --gold dev.tsv

Formats are detected from each file's content, so predictions and gold may differ in format.
Labels: one per line; JSON lines with a "label" (or "score") field, as TNEWS and
tinybert-predict write them; or a GLUE TSV whose header has a label, gold_label or score
column. Entities: CLUENER JSON lines ("label": {type: {mention: [[start, end]]}}, end
inclusive); tinybert-predict JSON lines ("entities": [{"type", "start", "end"}], end
exclusive); or tag sequences, one sentence per line, tags separated by spaces.

Bad input (different numbers of examples, unknown labels or entity types, malformed JSON,
misaligned sentences, an empty file) stops with one message naming the file and line, exit
code 1, and no report written.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path

import numpy as np

from tinybert_core import CLUENER_TYPES, TASKS, atomic_write, quiet_on_closed_stdout

from .evaluators import ALIASES, TASK_METRICS, task_name
from .files import InputError, Sentence, read_labels, read_sentences
from .metrics import METRICS
from .spans import SpanCounts, tags_from_spans

log = logging.getLogger("tinybert-eval")

# Label sets of the classification tasks (tinybert-core's task table); --labels overrides them.
KNOWN_LABELS = {
    name: list(spec.labels) for name, spec in TASKS.items() if spec.task_type == "classification"
}


def _same_count(predictions: Path, predicted_lines: list, gold: Path, gold_lines: list) -> None:
    """Predictions and gold pair up one to one; the first unpaired line is the error."""
    if len(predicted_lines) > len(gold_lines):
        line = predicted_lines[len(gold_lines)]
        raise InputError(
            f"{predictions}:{line}: prediction {len(gold_lines) + 1} has no gold example "
            f"({gold} has {len(gold_lines)})"
        )
    if len(gold_lines) > len(predicted_lines):
        line = gold_lines[len(predicted_lines)]
        raise InputError(
            f"{gold}:{line}: gold example {len(predicted_lines) + 1} has no prediction "
            f"({predictions} has {len(predicted_lines)})"
        )


# ---- NER -----------------------------------------------------------------------------------


def score_entities(predictions: Path, gold: Path, scheme: str, types) -> dict:
    """Span P/R/F1 per type and micro; token accuracy when every sentence's length is known
    (a text or tags on either side): tags are then compared position by position."""
    predicted = read_sentences(predictions, scheme, types)
    log.info("read %d predicted sentences from %s", len(predicted), predictions)
    expected = read_sentences(gold, scheme, types)
    log.info("read %d gold sentences from %s", len(expected), gold)
    _same_count(predictions, [s.line for s in predicted], gold, [s.line for s in expected])
    counts = SpanCounts()
    correct_tokens = tokens = 0
    lengths_known = True
    for ours, theirs in zip(predicted, expected):
        where = f"{predictions}:{ours.line}"
        if ours.text is not None and theirs.text is not None and ours.text != theirs.text:
            raise InputError(f"{where}: the text differs from {gold}:{theirs.line}'s")
        if ours.length is not None and theirs.length is not None and ours.length != theirs.length:
            raise InputError(
                f"{where}: {ours.length} positions but the gold sentence ({gold}:{theirs.line}) "
                f"has {theirs.length}"
            )
        counts.add(ours.spans, theirs.spans)
        length = ours.length if ours.length is not None else theirs.length
        if length is None:
            lengths_known = False
            continue
        ours_tags = _tags(predictions, ours, length, scheme)
        theirs_tags = _tags(gold, theirs, length, scheme)
        correct_tokens += sum(p == g for p, g in zip(ours_tags, theirs_tags))
        tokens += length
    result = counts.scores()
    if lengths_known:
        result["token_accuracy"] = correct_tokens / tokens if tokens else 0.0
    return {**result, "count": len(expected), "main": "f1"}


def _tags(path: Path, sentence: Sentence, length: int, scheme: str) -> list:
    """The sentence's tags as given, or written from its spans over `length` positions."""
    if sentence.tags is not None:
        return sentence.tags
    for kind, start, end in sentence.spans:
        if end >= length:
            raise InputError(
                f"{path}:{sentence.line}: {kind} span [{start}, {end}] ends outside the "
                f"sentence of {length} positions"
            )
    return tags_from_spans(sentence.spans, length, scheme)


def entity_types(path: Path) -> set:
    """Entity types named by a tag list file (O, B-TYPE, I-TYPE, ..., one per line)."""
    types = set()
    for number, tag in read_labels(path):
        prefix, dash, kind = tag.partition("-")
        if tag != "O" and not (dash and kind and prefix in ("B", "I", "E", "S")):
            raise InputError(f"{path}:{number}: {tag!r} is not a tag (O, B-TYPE, I-TYPE, ...)")
        if kind:
            types.add(kind)
    return types


# ---- classification and regression -----------------------------------------------------------


def score_labels(task: str, predictions: Path, gold: Path, label_names) -> dict:
    kind, metrics, main = TASK_METRICS[task]
    predicted = read_labels(predictions)
    log.info("read %d predictions from %s", len(predicted), predictions)
    expected = read_labels(gold)
    log.info("read %d gold labels from %s", len(expected), gold)
    _same_count(predictions, [n for n, _ in predicted], gold, [n for n, _ in expected])
    if kind == "regression":
        predicted_values = np.array([_number(predictions, n, v) for n, v in predicted])
        expected_values = np.array([_number(gold, n, v) for n, v in expected])
    else:
        names = label_names or KNOWN_LABELS.get(task) or sorted({v for _, v in expected})
        index = {name: i for i, name in enumerate(names)}
        for path, rows in ((gold, expected), (predictions, predicted)):
            for number, value in rows:
                if value not in index:
                    raise InputError(
                        f"{path}:{number}: unknown label {value!r}; the labels are {names}"
                    )
        predicted_values = np.array([index[v] for _, v in predicted])
        expected_values = np.array([index[v] for _, v in expected])
    result = {name: METRICS[name](predicted_values, expected_values) for name in metrics}
    return {**result, "count": len(expected), "main": main}


def _number(path: Path, number: int, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{path}:{number}: {text!r} is not a number") from None
    if not math.isfinite(value):  # would make every correlation NaN
        raise InputError(f"{path}:{number}: {text!r} is not a finite number")
    return value


# ---- report --------------------------------------------------------------------------------


def format_report(task: str, result: dict) -> str:
    if "per_type" not in result:
        values = [f"{name} {result[name]:.4f}" for name in result if name not in ("count", "main")]
        return f"{task}: {', '.join(values)} ({result['count']} examples, main: {result['main']})"
    lines = [f"{'type':<14}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}"]
    for kind, scores in result["per_type"].items():
        lines.append(
            f"{kind:<14}{scores['precision']:>10.4f}{scores['recall']:>10.4f}"
            f"{scores['f1']:>10.4f}{scores['support']:>9d}"
        )
    lines.append(
        f"{'micro (spans)':<14}{result['precision']:>10.4f}{result['recall']:>10.4f}"
        f"{result['f1']:>10.4f}{result['support']:>9d}"
    )
    if "token_accuracy" in result:
        lines.append(
            f"token accuracy (per position, not entity F1): {result['token_accuracy']:.4f}"
        )
    lines.append(f"{result['count']} sentences")
    return "\n".join(lines)


def write_json(path: Path, value: dict) -> None:
    """Write the report atomically (tinybert-core's atomic_write): a failed run leaves no
    half-written report, the report gets the mode of any new file, and an OSError about no
    file (a full disk) is raised naming `path`."""
    atomic_write(path, json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinybert-eval", description="Score predictions against gold labels or entities."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    score = commands.add_parser(
        "score",
        help="score a predictions file against a gold file",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    score.add_argument(
        "--task",
        required=True,
        help=f"task name, which fixes the metrics: {', '.join(TASK_METRICS)} "
        f"(aliases {', '.join(ALIASES)})",
    )
    score.add_argument(
        "--predictions", required=True, type=Path, help="predicted labels or entities"
    )
    score.add_argument(
        "--gold", required=True, type=Path, help="gold labels or entities, in any of the formats"
    )
    score.add_argument(
        "--output", type=Path, help="also write the report as JSON to this file (atomically)"
    )
    score.add_argument(
        "--labels",
        type=Path,
        help="allowed labels, one per line or JSON lines with a 'label' field (e.g. TNEWS "
        "labels.json); default: the task's fixed set, else the gold file's labels. For NER: "
        "the tag list (O, B-TYPE, I-TYPE, ...), whose types are allowed; default CLUENER's",
    )
    score.add_argument(
        "--scheme",
        choices=["BIO", "BIOES"],
        default="BIO",
        help="NER tag scheme of tag-sequence files, and of tags written from spans for token "
        "accuracy (default BIO)",
    )
    return parser


@quiet_on_closed_stdout
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="tinybert-eval: %(message)s")
    try:
        task = task_name(args.task)
        if TASK_METRICS[task][0] == "ner":
            types = entity_types(args.labels) if args.labels else set(CLUENER_TYPES)
            result = score_entities(args.predictions, args.gold, args.scheme, types)
        else:
            names = [name for _, name in read_labels(args.labels)] if args.labels else None
            result = score_labels(task, args.predictions, args.gold, names)
    except (InputError, ValueError) as error:
        print(f"tinybert-eval: error: {error}", file=sys.stderr)
        return 1
    print(format_report(task, result))
    if args.output:
        report = {"task": task, "predictions": str(args.predictions), "gold": str(args.gold)}
        try:
            write_json(args.output, {**report, **result})
        except OSError as error:  # an unwritable folder, a path that is a file, a full disk
            print(f"tinybert-eval: error: cannot write the report: {error}", file=sys.stderr)
            return 1
        log.info("report written to %s", args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())

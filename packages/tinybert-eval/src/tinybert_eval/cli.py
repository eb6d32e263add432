"""`tinybert-eval score`: score a predictions file against a gold file.

    tinybert-eval score --task cluener --predictions pred.json --gold dev.json \\
        --output report.json
    tinybert-eval score --task sst2 --predictions pred.txt --gold dev.tsv

File formats, detected from the content:
- NER: CLUENER JSON lines ({"text": ..., "label": {type: {text: [[start, end]]}}}), or tag
  sequences, one sentence per line, tags separated by spaces. Either side may be either;
  token accuracy needs tag sequences on both sides.
- classification / regression: one label per line; JSON lines with a "label" field (TNEWS,
  and what tinybert-predict writes); or a TSV with a header that has a "label" column (GLUE).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from .evaluators import TASK_METRICS, task_name
from .metrics import METRICS
from .spans import SpanCounts, spans_from_cluener, spans_from_tags

# Label sets fixed by the task definition; other tasks take --labels or the gold file's own.
KNOWN_LABELS = {
    "sst2": ["0", "1"],
    "cola": ["0", "1"],
    "mrpc": ["0", "1"],
    "qqp": ["0", "1"],
    "qnli": ["entailment", "not_entailment"],
    "rte": ["entailment", "not_entailment"],
    "mnli": ["entailment", "neutral", "contradiction"],
    "mnli_mismatched": ["entailment", "neutral", "contradiction"],
}


class InputError(ValueError):
    """A file that cannot be scored: the message names the file and line."""


def _lines(path: Path) -> list:
    """(line number, text) of every non-empty line; an empty file is an error."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not UTF-8 text ({error.reason})") from None
    lines = [(number, line) for number, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise InputError(f"{path}: the file is empty")
    return lines


def _json(path: Path, number: int, line: str) -> dict:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as error:
        raise InputError(f"{path}:{number}: malformed JSON ({error.msg})") from None
    if not isinstance(value, dict):
        raise InputError(f"{path}:{number}: expected a JSON object")
    return value


# ---- NER ---------------------------------------------------------------------------------


def read_entities(path: Path, scheme: str) -> tuple:
    """(spans per sentence, tags per sentence or None) from CLUENER JSON lines or tag lines."""
    lines = _lines(path)
    if lines[0][1].lstrip().startswith("{"):
        spans = []
        for number, line in lines:
            record = _json(path, number, line)
            try:
                spans.append(spans_from_cluener(record.get("label")))
            except (AttributeError, TypeError, ValueError):
                raise InputError(
                    f'{path}:{number}: "label" must be {{type: {{text: [[start, end]]}}}}'
                ) from None
        return spans, None
    tags = [(number, line.split()) for number, line in lines]
    for number, sequence in tags:
        bad = [
            t
            for t in sequence
            if t != "O" and (t[:2] not in ("B-", "I-", "E-", "S-") or len(t) < 3)
        ]
        if bad:
            raise InputError(
                f"{path}:{number}: {bad[0]!r} is not a {scheme} tag (O, B-TYPE, I-TYPE ...)"
            )
    return [spans_from_tags(sequence, scheme) for _, sequence in tags], [(n, s) for n, s in tags]


def score_entities(predictions: Path, gold: Path, scheme: str) -> dict:
    predicted_spans, predicted_tags = read_entities(predictions, scheme)
    gold_spans, gold_tags = read_entities(gold, scheme)
    _same_length(predictions, len(predicted_spans), gold, len(gold_spans))
    counts = SpanCounts()
    for predicted, expected in zip(predicted_spans, gold_spans):
        counts.add(predicted, expected)
    result = counts.scores()
    if predicted_tags and gold_tags:
        correct = total = 0
        for (number, predicted), (_, expected) in zip(predicted_tags, gold_tags):
            if len(predicted) != len(expected):
                raise InputError(
                    f"{predictions}:{number}: {len(predicted)} tags but the gold sentence has "
                    f"{len(expected)}"
                )
            correct += sum(p == e for p, e in zip(predicted, expected))
            total += len(expected)
        result["token_accuracy"] = correct / total if total else 0.0
    result["main"] = "f1"
    result["count"] = len(gold_spans)
    return result


# ---- classification and regression ------------------------------------------------------


def read_labels(path: Path) -> list:
    """(line number, label text) per example."""
    lines = _lines(path)
    first = lines[0][1]
    if first.lstrip().startswith("{"):
        labels = []
        for number, line in lines:
            record = _json(path, number, line)
            if "label" not in record:
                raise InputError(f'{path}:{number}: no "label" field')
            labels.append((number, str(record["label"])))
        return labels
    if "\t" in first:
        header = first.split("\t")
        if "label" not in header:
            raise InputError(
                f"{path}:1: a TSV needs a header with a 'label' column, found {header}"
            )
        column = header.index("label")
        labels = []
        for number, line in lines[1:]:
            fields = line.split("\t")
            if len(fields) <= column:
                raise InputError(
                    f"{path}:{number}: {len(fields)} columns, expected at least {column + 1}"
                )
            labels.append((number, fields[column].strip()))
        if not labels:
            raise InputError(f"{path}: the file has a header and no rows")
        return labels
    return [(number, line.strip()) for number, line in lines]


def score_labels(task: str, predictions: Path, gold: Path, label_names) -> dict:
    kind, metrics, main = TASK_METRICS[task]
    predicted, expected = read_labels(predictions), read_labels(gold)
    _same_length(predictions, len(predicted), gold, len(expected))
    if kind == "regression":
        values = [
            _number(path, n, v)
            for path, rows in ((predictions, predicted), (gold, expected))
            for n, v in rows
        ]
        predicted_values = np.array(values[: len(predicted)])
        expected_values = np.array(values[len(predicted) :])
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
        return float(text)
    except ValueError:
        raise InputError(f"{path}:{number}: {text!r} is not a number") from None


def _same_length(predictions: Path, predicted: int, gold: Path, expected: int) -> None:
    if predicted != expected:
        raise InputError(f"{predictions} has {predicted} examples but {gold} has {expected}")


# ---- report ------------------------------------------------------------------------------


def format_report(task: str, result: dict) -> str:
    if "per_type" not in result:
        values = [f"{name} {result[name]:.4f}" for name in result if name not in ("count", "main")]
        return f"{task}: {', '.join(values)} ({result['count']} examples)"
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
        lines.append(f"token accuracy (not entity F1): {result['token_accuracy']:.4f}")
    lines.append(f"{result['count']} sentences")
    return "\n".join(lines)


def write_json(path: Path, value: dict) -> None:
    """Write atomically: a failed run leaves no half-written report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(value, out, indent=2, ensure_ascii=False)
            out.write("\n")
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="tinybert-eval", description="Score predictions against gold labels."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    score = commands.add_parser(
        "score",
        help="score a predictions file against a gold file",
        description=__doc__.split("\n\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    score.add_argument("--task", required=True, help=f"task name: {', '.join(TASK_METRICS)}")
    score.add_argument(
        "--predictions",
        required=True,
        type=Path,
        help="predicted labels, tags or CLUENER JSON lines",
    )
    score.add_argument(
        "--gold", required=True, type=Path, help="gold labels, in any of the same formats"
    )
    score.add_argument("--output", type=Path, help="also write the report as JSON here")
    score.add_argument(
        "--labels", type=Path, help="label names, one per line (default: the task's own)"
    )
    score.add_argument(
        "--scheme", choices=["BIO", "BIOES"], default="BIO", help="tag scheme for NER (default BIO)"
    )
    args = parser.parse_args(argv)
    try:
        task = task_name(args.task)
        if TASK_METRICS[task][0] == "ner":
            result = score_entities(args.predictions, args.gold, args.scheme)
        else:
            names = [n for _, n in _lines(args.labels)] if args.labels else None
            result = score_labels(task, args.predictions, args.gold, names)
    except (InputError, ValueError) as error:
        print(f"tinybert-eval: error: {error}", file=sys.stderr)
        return 1
    print(format_report(task, result))
    if args.output:
        write_json(
            args.output,
            {"task": task, "predictions": str(args.predictions), "gold": str(args.gold), **result},
        )
        print(f"report written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

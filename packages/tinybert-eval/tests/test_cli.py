"""`tinybert-eval score` on real files in every accepted format, and every kind of bad input:
exit 1, one message naming file and line, no report written."""

import argparse
import json

import pytest

from tinybert_core import TASKS
from tinybert_eval import span_scores, spans_from_cluener, tags_from_spans
from tinybert_eval.cli import build_parser, main
from tinybert_eval.evaluators import ALIASES


def write_lines(path, lines):
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def score(tmp_path, task, predictions, gold, *extra):
    """Run the command with a report path; returns (exit code, report dict or None)."""
    report = tmp_path / "report.json"
    argv = ["score", "--task", task, "--predictions", str(predictions), "--gold", str(gold)]
    code = main([*argv, "--output", str(report), *extra])
    return code, json.loads(report.read_text(encoding="utf-8")) if report.exists() else None


def drop_every_third_type(record, index):
    label = {}
    for number, (kind, mentions) in enumerate(sorted(record["label"].items())):
        if (index + number) % 3:
            label[kind] = mentions
    return {"text": record["text"], "label": label}


def char_tags(record):
    return tags_from_spans(spans_from_cluener(record["label"]), len(record["text"]))


def token_accuracy(predicted_records, gold_records):
    pairs = [
        (p, g)
        for pr, gr in zip(predicted_records, gold_records)
        for p, g in zip(char_tags(pr), char_tags(gr))
    ]
    return sum(p == g for p, g in pairs) / len(pairs)


# ---- NER -----------------------------------------------------------------------------------


def test_cluener_json_lines(tmp_path, cluener_dev, cluener_dev_path, capsys):
    predicted = [drop_every_third_type(r, i) for i, r in enumerate(cluener_dev)]
    predictions = write_lines(
        tmp_path / "pred.json", [json.dumps(p, ensure_ascii=False) for p in predicted]
    )
    code, result = score(tmp_path, "cluener", predictions, cluener_dev_path)
    assert code == 0
    out = capsys.readouterr().out
    assert "micro (spans)" in out and "address" in out and "token accuracy" in out
    expected = span_scores(
        [spans_from_cluener(p["label"]) for p in predicted],
        [spans_from_cluener(r["label"]) for r in cluener_dev],
    )
    assert result["f1"] == pytest.approx(expected["f1"])
    assert result["per_type"] == expected["per_type"]
    assert result["precision"] == 1.0 and result["recall"] < 1.0
    assert result["token_accuracy"] == pytest.approx(token_accuracy(predicted, cluener_dev))
    assert result["count"] == len(cluener_dev) and result["main"] == "f1"


def test_tinybert_predict_entities_are_end_exclusive(tmp_path, cluener_dev, cluener_dev_path):
    """tinybert-predict's {"entities": [{"type", "start", "end"}]} against CLUENER gold."""
    lines = []
    for record in cluener_dev:
        entities = [
            {"type": kind, "start": start, "end": end + 1, "text": record["text"][start : end + 1]}
            for kind, start, end in spans_from_cluener(record["label"])
        ]
        lines.append(json.dumps({"text": record["text"], "entities": entities}, ensure_ascii=False))
    code, result = score(
        tmp_path, "cluener", write_lines(tmp_path / "p.json", lines), cluener_dev_path
    )
    assert code == 0
    assert result["f1"] == 1.0 and result["token_accuracy"] == 1.0


def test_tag_sequences_against_cluener_json(tmp_path, cluener_dev, cluener_dev_path):
    """Character tags with each sentence's last tag set to O, scored against the JSON gold."""
    gold_tags = [char_tags(r) for r in cluener_dev]
    predicted_tags = [tags[:-1] + ["O"] for tags in gold_tags]
    predictions = write_lines(tmp_path / "pred.txt", [" ".join(t) for t in predicted_tags])
    code, result = score(tmp_path, "cluener", predictions, cluener_dev_path)
    assert code == 0
    pairs = [(p, g) for ps, gs in zip(predicted_tags, gold_tags) for p, g in zip(ps, gs)]
    assert result["token_accuracy"] == pytest.approx(sum(p == g for p, g in pairs) / len(pairs))
    assert 0 < result["recall"] < 1


def test_bioes_tag_sequences(tmp_path, cluener_dev):
    gold = [
        tags_from_spans(spans_from_cluener(r["label"]), len(r["text"]), "BIOES")
        for r in cluener_dev[:100]
    ]
    gold_path = write_lines(tmp_path / "gold.txt", [" ".join(t) for t in gold])
    code, result = score(tmp_path, "cluener", gold_path, gold_path, "--scheme", "BIOES")
    assert code == 0 and result["f1"] == 1.0
    code, _ = score(tmp_path, "cluener", gold_path, gold_path)  # S- and E- are not BIO tags
    assert code == 1


def test_labels_file_sets_the_entity_types(tmp_path):
    tags = write_lines(tmp_path / "tags.txt", ["O", "B-person", "I-person"])
    gold = write_lines(tmp_path / "gold.txt", ["B-person I-person O"])
    code, result = score(tmp_path, "cluener", gold, gold, "--labels", str(tags))
    assert code == 0 and list(result["per_type"]) == ["person"]


# ---- classification and regression -----------------------------------------------------------


def test_sst2_labels_against_glue_tsv(tmp_path, sst2_dev_path, capsys):
    rows = sst2_dev_path.read_text(encoding="utf-8").splitlines()[1:]
    labels = [row.split("\t")[1] for row in rows]
    predicted = ["1" if i % 4 == 0 else label for i, label in enumerate(labels)]
    code, result = score(
        tmp_path, "sst2", write_lines(tmp_path / "pred.txt", predicted), sst2_dev_path
    )
    assert code == 0
    expected = sum(p == g for p, g in zip(predicted, labels)) / len(labels)
    assert result["accuracy"] == pytest.approx(expected) and result["count"] == len(labels)
    assert "sst2: accuracy" in capsys.readouterr().out


def test_a_line_separator_inside_a_sentence_keeps_the_row_whole(tmp_path, sst2_dev_path):
    # tinybert-data's readers end lines at "\n" only; str.splitlines() would also break at
    # U+2028 and U+0085 and turn one gold row into two.
    header, *rows = sst2_dev_path.read_text(encoding="utf-8").split("\n")[:-1]
    rows[0] = rows[0].replace(" ", "\u2028", 1)
    rows[1] = rows[1].replace(" ", "\x85", 1)
    gold = tmp_path / "gold.tsv"
    gold.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    labels = [row.split("\t")[1] for row in rows]
    code, result = score(tmp_path, "sst2", write_lines(tmp_path / "pred.txt", labels), gold)
    assert code == 0 and result["count"] == len(rows) == 872 and result["accuracy"] == 1.0


def test_tnews_json_lines_with_the_labels_file(tmp_path, shared_data):
    gold = shared_data / "tnews" / "dev.json"
    records = [json.loads(line) for line in gold.read_text(encoding="utf-8").splitlines()]
    predicted = [{"label": "100" if i % 5 == 0 else r["label"]} for i, r in enumerate(records)]
    predictions = write_lines(tmp_path / "pred.json", [json.dumps(p) for p in predicted])
    labels = ["--labels", str(shared_data / "tnews" / "labels.json")]
    code, result = score(tmp_path, "tnews", predictions, gold, *labels)
    assert code == 0
    expected = sum(p["label"] == r["label"] for p, r in zip(predicted, records)) / len(records)
    assert result["accuracy"] == pytest.approx(expected)


def test_regression_scores_from_json_lines(tmp_path):
    gold = write_lines(tmp_path / "gold.txt", ["0.0", "1.0", "2.5", "4.0", "5.0"])
    predictions = write_lines(
        tmp_path / "pred.json", [json.dumps({"score": v}) for v in (0.5, 1.0, 2.0, 4.5, 4.8)]
    )
    code, result = score(tmp_path, "sts-b", predictions, gold)
    assert code == 0 and result["spearman"] == pytest.approx(1.0) and result["main"] == "pearson"


# ---- bad input -------------------------------------------------------------------------------

TSV_GOLD = ["sentence\tlabel", "a\t1", "b\t0"]
CLUENER_LINE = '{"text": "张三在北京", "label": {"name": {"张三": [[0, 1]]}}}'


@pytest.mark.parametrize(
    "task, predicted, gold, message",
    [
        ("sst2", ["1", "0", "1"], TSV_GOLD, "pred.txt:3: prediction 3 has no gold example"),
        ("sst2", ["1"], TSV_GOLD, "gold.txt:3: gold example 2 has no prediction"),
        ("sst2", ["1", "positive"], TSV_GOLD, "pred.txt:2: unknown label 'positive'"),
        ("sst2", ["1", "", "0"], TSV_GOLD + ["c\t1"], "pred.txt:2: empty line"),
        ("sst2", ["1", "0"], ["sentence\tpolarity", "a\t1", "b\t0"], "gold.txt:1: a TSV needs"),
        ("sst2", ["1", "0"], ["sentence\tlabel", "a", "b\t0"], "gold.txt:2: no value in column"),
        ("sst2", [], TSV_GOLD, "pred.txt: the file is empty"),
        ("sst2", ["1"], ["", "  "], "gold.txt: the file is empty"),
        ("tnews", ['{"label": "101"}', '{"id": 3}'], ["101", "102"], 'pred.txt:2: no "label"'),
        ("tnews", ['{"label": "101"}', "[1]"], ["101", "102"], "pred.txt:2: expected a JSON"),
        ("stsb", ["1.5", "high"], ["2.0", "3.0"], "pred.txt:2: 'high' is not a number"),
        (
            "cluener",
            [CLUENER_LINE, '{"text": "ab", "label": '],
            [CLUENER_LINE, CLUENER_LINE],
            "pred.txt:2: not valid JSON",
        ),
        ("cluener", ["B-name X-name"], ["O O"], "pred.txt:1: tag 'X-name' at position 1"),
        ("cluener", ["B-name I-name O"], ["O O"], "pred.txt:1: 3 positions but the gold"),
        (
            "cluener",
            ['{"text": "张三在北京", "label": {"person": {"张三": [[0, 1]]}}}'],
            [CLUENER_LINE],
            "pred.txt:1: unknown entity type 'person'",
        ),
        (
            "cluener",
            ['{"text": "张三在北京", "label": {"name": {"张三": [[0, 2]]}}}'],
            [CLUENER_LINE],
            "pred.txt:1: name span [0, 2] (end inclusive) covers '张三在', not '张三'",
        ),
        (
            "cluener",
            ['{"text": "张三在北京", "label": {"address": {"京": [[4, 5]]}}}'],
            [CLUENER_LINE],
            "ends outside the text of 5 characters",
        ),
        (
            "cluener",
            ['{"text": "张三在上海", "label": {}}'],
            [CLUENER_LINE],
            "pred.txt:1: the text differs from",
        ),
        (
            "cluener",
            ['{"text": "张三在北京", "entities": [{"type": "name", "start": 0}]}'],
            [CLUENER_LINE],
            'pred.txt:1: "entities" must be a list of',
        ),
        ("cluener", ['{"text": "x"}'], [CLUENER_LINE], 'pred.txt:1: no "label" (CLUENER spans)'),
    ],
)
def test_bad_input(tmp_path, capsys, task, predicted, gold, message):
    predictions = write_lines(tmp_path / "pred.txt", predicted)
    gold_path = write_lines(tmp_path / "gold.txt", gold)
    code, report = score(tmp_path, task, predictions, gold_path)
    assert code == 1
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error
    assert report is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gold.txt", "pred.txt"]


def test_missing_file_unknown_task_and_bad_labels_file(tmp_path, capsys):
    predictions = write_lines(tmp_path / "p.txt", ["1"])
    assert score(tmp_path, "sst2", tmp_path / "none.txt", predictions)[0] == 1
    assert "none.txt: file not found" in capsys.readouterr().err
    assert score(tmp_path, "nope", predictions, predictions)[0] == 1
    assert "unknown task 'nope'; known tasks: sst2" in capsys.readouterr().err
    tags = write_lines(tmp_path / "tags.txt", ["O", "B-person", "person"])
    assert score(tmp_path, "cluener", predictions, predictions, "--labels", str(tags))[0] == 1
    assert "tags.txt:3: 'person' is not a tag" in capsys.readouterr().err


def test_help_explains_every_flag(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["score", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--task", "--predictions", "--gold", "--output", "--labels", "--scheme"):
        assert flag in out


def test_task_help_lists_exactly_the_tables_tasks_and_the_aliases():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    (task,) = [a for a in subparsers.choices["score"]._actions if a.dest == "task"]
    names, aliases = task.help.split(": ", 1)[1].removesuffix(")").split(" (aliases ")
    assert names.split(", ") == list(TASKS)
    assert aliases.split(", ") == list(ALIASES)

"""`tinybert-eval score` on real files, and every kind of bad input: exit 1, a message naming
file and line, no report written."""

import json

import pytest

from tinybert_eval import span_scores, spans_from_cluener, spans_from_tags, tags_from_spans
from tinybert_eval.cli import main


def write_lines(path, lines):
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def drop_every_third_entity(record, index):
    label = {}
    for number, (kind, mentions) in enumerate(sorted(record["label"].items())):
        if (index + number) % 3:
            label[kind] = mentions
    return {"text": record["text"], "label": label}


def test_cluener_json_lines(tmp_path, cluener_dev, cluener_dev_path, capsys):
    predicted = [drop_every_third_entity(r, i) for i, r in enumerate(cluener_dev)]
    predictions = write_lines(
        tmp_path / "pred.json", [json.dumps(p, ensure_ascii=False) for p in predicted]
    )
    report = tmp_path / "report.json"
    assert (
        main(
            [
                "score",
                "--task",
                "cluener",
                "--predictions",
                str(predictions),
                "--gold",
                str(cluener_dev_path),
                "--output",
                str(report),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "micro (spans)" in out and "address" in out
    result = json.loads(report.read_text())
    expected = span_scores(
        [spans_from_cluener(p["label"]) for p in predicted],
        [spans_from_cluener(r["label"]) for r in cluener_dev],
    )
    assert result["f1"] == pytest.approx(expected["f1"])
    assert result["precision"] == 1.0 and result["recall"] < 1.0
    assert result["count"] == len(cluener_dev)


def test_tag_sequences_report_token_accuracy_separately(tmp_path, cluener_dev, capsys):
    gold_lines, predicted_lines = [], []
    for record in cluener_dev[:200]:
        tags = tags_from_spans(spans_from_cluener(record["label"]), len(record["text"]))
        gold_lines.append(" ".join(tags))
        predicted_lines.append(" ".join(tags[:-1] + ["O"]))
    gold = write_lines(tmp_path / "gold.txt", gold_lines)
    predictions = write_lines(tmp_path / "pred.txt", predicted_lines)
    assert (
        main(["score", "--task", "cluener", "--predictions", str(predictions), "--gold", str(gold)])
        == 0
    )
    out = capsys.readouterr().out
    assert "token accuracy (not entity F1)" in out
    spans = [spans_from_tags(line.split()) for line in gold_lines]
    assert sum(map(len, spans)) > 0


def test_sst2_labels_against_glue_tsv(tmp_path, sst2_dev_path, capsys):
    rows = sst2_dev_path.read_text(encoding="utf-8").splitlines()[1:]
    labels = [row.split("\t")[1] for row in rows]
    predicted = ["1" if i % 4 == 0 else label for i, label in enumerate(labels)]
    predictions = write_lines(tmp_path / "pred.txt", predicted)
    report = tmp_path / "r.json"
    assert (
        main(
            [
                "score",
                "--task",
                "sst2",
                "--predictions",
                str(predictions),
                "--gold",
                str(sst2_dev_path),
                "--output",
                str(report),
            ]
        )
        == 0
    )
    expected = sum(p == g for p, g in zip(predicted, labels)) / len(labels)
    assert json.loads(report.read_text())["accuracy"] == pytest.approx(expected)
    assert "sst2: accuracy" in capsys.readouterr().out


def test_json_lines_labels(tmp_path, capsys):
    gold = write_lines(
        tmp_path / "gold.json",
        [json.dumps({"sentence": "x", "label": "102"}), json.dumps({"label": "103"})],
    )
    predictions = write_lines(
        tmp_path / "pred.json", [json.dumps({"label": "102", "probabilities": [0.9]})] * 2
    )
    assert (
        main(["score", "--task", "tnews", "--predictions", str(predictions), "--gold", str(gold)])
        == 0
    )
    assert "accuracy 0.5000" in capsys.readouterr().out


@pytest.mark.parametrize(
    "task, predicted, gold, message",
    [
        ("sst2", ["1", "0"], ["sentence\tlabel", "a\t1"], "pred.txt has 2 examples but"),
        (
            "sst2",
            ["1", "positive"],
            ["sentence\tlabel", "a\t1", "b\t0"],
            "pred.txt:2: unknown label 'positive'",
        ),
        (
            "cluener",
            ['{"text": "ab", "label": {}}', '{"text": "ab", "label": '],
            ['{"text": "ab", "label": {}}', '{"text": "ab", "label": {}}'],
            "pred.txt:2: malformed JSON",
        ),
        ("sst2", [], ["sentence\tlabel", "a\t1"], "pred.txt: the file is empty"),
        ("cluener", ["B-name X-name"], ["O O"], "pred.txt:1: 'X-name' is not a BIO tag"),
        ("cluener", ["B-name I-name O"], ["O O"], "pred.txt:1: 3 tags but the gold sentence has 2"),
        ("stsb", ["1.5", "high"], ["2.0", "3.0"], "pred.txt:2: 'high' is not a number"),
    ],
)
def test_bad_input(tmp_path, capsys, task, predicted, gold, message):
    predictions = write_lines(tmp_path / "pred.txt", predicted)
    gold_path = write_lines(tmp_path / "gold.txt", gold)
    report = tmp_path / "report.json"
    code = main(
        [
            "score",
            "--task",
            task,
            "--predictions",
            str(predictions),
            "--gold",
            str(gold_path),
            "--output",
            str(report),
        ]
    )
    assert code == 1
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error
    assert not report.exists()


def test_missing_file_and_unknown_task(tmp_path, capsys):
    assert (
        main(
            [
                "score",
                "--task",
                "sst2",
                "--predictions",
                str(tmp_path / "none.txt"),
                "--gold",
                str(tmp_path / "g"),
            ]
        )
        == 1
    )
    assert "none.txt: file not found" in capsys.readouterr().err
    write_lines(tmp_path / "p.txt", ["1"])
    assert (
        main(
            [
                "score",
                "--task",
                "nope",
                "--predictions",
                str(tmp_path / "p.txt"),
                "--gold",
                str(tmp_path / "p.txt"),
            ]
        )
        == 1
    )
    assert "unknown task 'nope'" in capsys.readouterr().err

"""Task readers on the real GLUE/CLUE files (and the MNLI fixture), features, bad rows."""

import json
from collections import Counter
from typing import ClassVar

import numpy as np
import pytest
from conftest import FIXTURES

from tinybert_core import IGNORE_INDEX, TASKS, DataError, UnknownTaskError
from tinybert_data import TASK_READERS, get_task
from tinybert_data.tasks import GlueTask


def test_registry_and_unknown_task():
    assert set(TASK_READERS) == {"sst2", "qnli", "mnli", "tnews", "cluener"}
    assert get_task("sst2").name == "sst2"
    with pytest.raises(KeyError) as info:
        get_task("cola")
    assert isinstance(info.value, UnknownTaskError)
    assert str(info.value) == "unknown task 'cola'; known tasks: cluener, mnli, qnli, sst2, tnews"


def test_sst2_train_all_rows(data):
    task = get_task("sst2")
    examples = list(task.read(data / "sst2" / "train.tsv"))
    assert len(examples) == 67349
    assert Counter(e.label for e in examples) == {"1": 37569, "0": 29780}
    first = examples[0]
    assert (first.text_a, first.text_b, first.line) == (
        "hide new secretions from the parental units ",
        None,
        2,
    )
    assert first.source.endswith("train.tsv")


def test_glue_tsv_has_no_quote_handling(data):
    # Fields opening with a quote must stay text (csv's default quoting would merge lines).
    examples = list(get_task("qnli").read(data / "qnli" / "dev.tsv"))
    quoted = [e for e in examples if e.text_a.startswith('"') or e.text_b.startswith('"')]
    assert len(examples) == 5463 and quoted
    assert all("\t" not in e.text_b and "\n" not in e.text_b for e in quoted)


def test_qnli_dev_pairs(data):
    examples = list(get_task("qnli").read(data / "qnli" / "dev.tsv"))
    assert len(examples) == 5463
    assert Counter(e.label for e in examples) == {"entailment": 2702, "not_entailment": 2761}
    assert examples[0].text_a == "What came into force after the new constitution was herald?"
    assert examples[0].text_b.startswith("As of that day, the new constitution heralding")


def test_qnli_test_file_without_labels(data, uncased):
    task = get_task("qnli")
    examples = list(task.read(data / "qnli" / "test.tsv"))
    assert len(examples) == 5463 and all(e.label is None for e in examples)
    assert (task.features(examples[:5], uncased, 32)["label_ids"] == IGNORE_INDEX).all()


def test_mnli_label_order_and_both_dev_files(uncased):
    task = get_task("mnli")
    assert task.labels == ["entailment", "neutral", "contradiction"]
    matched = list(task.read(FIXTURES / "mnli" / "dev_matched.tsv"))
    mismatched = list(task.read(FIXTURES / "mnli" / "dev_mismatched.tsv"))
    assert [e.label for e in matched] == ["entailment", "contradiction", "neutral"] * 2
    assert matched[0].text_a == "The museum opens at nine every morning."
    assert matched[0].text_b == "The museum is open in the morning."
    assert mismatched[3].text_a == "'Quoted' titles keep their quotes."
    features = task.features(matched, uncased, 32)
    assert features["label_ids"].tolist() == [0, 2, 1, 0, 2, 1]
    assert (features["segment_ids"].max(axis=1) == 1).all()  # pairs: segment B present


def test_tnews_labels_follow_labels_json(data):
    task = get_task("tnews")
    lines = (data / "tnews" / "labels.json").read_text(encoding="utf-8").splitlines()
    assert task.labels == [json.loads(line)["label"] for line in lines]
    examples = list(task.read(data / "tnews" / "dev.json"))
    assert len(examples) == 10000 and len(task.labels) == 15
    assert examples[0].text_a == "江疏影甜甜圈自拍，迷之角度竟这么好看，美吸引一切事物"
    assert examples[0].label == "102"
    assert set(Counter(e.label for e in examples)) == set(task.labels)


def test_cluener_spans_to_bio_tags(data):
    task = get_task("cluener")
    assert task.task_type == "ner"
    assert task.labels[:3] == ["O", "B-address", "I-address"] and len(task.labels) == 21
    skipped = []
    examples = list(task.read(data / "cluener" / "train.json", on_error="skip", skipped=skipped))
    # One training row nests a company inside a book title: overlapping spans are refused.
    assert len(examples) == 10748 - 1
    assert [(e.line, "overlaps" in e.message) for e in skipped] == [(1507, True)]
    for example in examples:
        assert len(example.label) == len(example.text_a)
        for entity_type, entities in example.spans.items():
            for spans in entities.values():
                for start, end in spans:
                    assert example.label[start] == f"B-{entity_type}"
                    assert example.label[start + 1 : end + 1] == [f"I-{entity_type}"] * (
                        end - start
                    )
    tagged = sum(tag != "O" for e in examples for tag in e.label)
    covered = sum(
        e - s + 1 for x in examples for es in x.spans.values() for v in es.values() for s, e in v
    )
    assert tagged == covered


def test_cluener_features_first_character_rule(data, chinese):
    task = get_task("cluener")
    example = next(task.read(data / "cluener" / "dev.json"))  # 彭小军 name, 台湾 address
    features = task.features([example], chinese, 64)
    labels = [task.labels[i] if i != IGNORE_INDEX else None for i in features["label_ids"][0]]
    length = int(features["input_mask"][0].sum())
    assert labels[0] is None and labels[length - 1] is None  # [CLS], [SEP]
    assert all(label is None for label in labels[length:])  # padding
    assert labels[1:4] == ["B-name", "I-name", "I-name"]
    assert labels[16:18] == ["B-address", "I-address"]

    third = list(task.read(data / "cluener" / "dev.json"))[2]  # "...中Riddick发现..." and "Johns"
    enc = chinese.encode(third.text_a, seq_length=64)
    ids = task.features([third], chinese, 64)["label_ids"][0]
    for position, token in enumerate(enc.tokens):
        if token.startswith("##"):
            assert ids[position] == IGNORE_INDEX
        elif token not in ("[CLS]", "[SEP]", "[PAD]"):
            start = enc.offsets[position][0]
            assert task.labels[ids[position]] == third.label[start]
    assert "B-name" in [task.labels[i] for i in ids if i != IGNORE_INDEX]


def test_ner_truncation_keeps_label_alignment(data, chinese):
    task = get_task("cluener")
    examples = list(task.read(data / "cluener" / "dev.json"))[:200]
    features = task.features(examples, chinese, 16)
    assert features["label_ids"].shape == (200, 16)
    assert (features["label_ids"][:, 0] == IGNORE_INDEX).all()
    # A full row ends with [SEP] at position 15, which carries no label.
    assert (features["label_ids"][:, 15] == IGNORE_INDEX).all()
    assert features["label_ids"].dtype == np.int32


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"text": "abc", "label": {"name": {"abcd": [[0, 3]]}}}', "outside the text"),
        (
            '{"text": "abcd", "label": {"name": {"ab": [[0, 1]]}, "game": {"bc": [[1, 2]]}}}',
            "overlaps",
        ),
        ('{"text": "abcd", "label": {"name": {"ab": [[1, 2]]}}}', "not the entity"),
        ('{"text": "abcd", "label": {"person": {"ab": [[0, 1]]}}}', "unknown entity type 'person'"),
        ('{"text": "abcd", "label": {"name": {"ab": [0, 1]}}}', r"is not \[start, end\]"),
        ('{"text": "abcd", "label": {"name": {"ab": [[0, 1]]}}', "not valid JSON"),
        ('{"label": {}}', "field 'text' missing"),
    ],
)
def test_cluener_bad_rows_are_rejected_clearly(tmp_path, line, message):
    path = tmp_path / "bad.json"
    path.write_text('{"text": "ok", "label": {}}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=message) as info:
        list(get_task("cluener").read(path))
    assert str(info.value).startswith(f"{path}:2: ")
    assert info.value.line == 2


def test_bad_rows_skipped_and_counted(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("sentence\tlabel\ngood one \t1\nbad label\t7\ntoo\tmany\tcolumns\n\nfine\t0\n")
    skipped = []
    examples = list(get_task("sst2").read(path, on_error="skip", skipped=skipped))
    assert [e.text_a for e in examples] == ["good one ", "fine"]
    assert [e.line for e in examples] == [2, 6]
    assert [(e.line, e.message) for e in skipped] == [
        (3, "unknown label '7', expected one of ['0', '1']"),
        (4, "expected 2 tab-separated columns, found 3"),
    ]
    with pytest.raises(DataError, match=r"train.tsv:3: unknown label"):
        list(get_task("sst2").read(path))


def test_wrong_header_and_bad_encoding(tmp_path):
    path = tmp_path / "dev.tsv"
    path.write_text("text\tlabel\nhello\t1\n")
    with pytest.raises(
        DataError, match=r"dev.tsv:1: header .* lacks the column\(s\) \['sentence'\]"
    ):
        list(get_task("sst2").read(path))
    path.write_bytes(b"sentence\tlabel\n\xff\xfe bad\t1\n")
    with pytest.raises(DataError, match="dev.tsv:2: not UTF-8"):
        list(get_task("sst2").read(path))


def test_readers_take_type_and_labels_from_the_task_table_and_own_tasks_declare_theirs(data):
    for name, reader in TASK_READERS.items():
        spec = TASKS[name]  # every reader's task is defined in the table
        assert (reader.task_type, reader.labels) == (spec.task_type, list(spec.labels))

    class Cola(GlueTask):  # in the table: nothing to declare
        name = "cola"
        text_columns = ("sentence",)

    class Sentiment3(GlueTask):  # not in the table
        name = "sentiment3"
        labels: ClassVar[list[str]] = ["0", "1", "2"]
        text_columns = ("sentence",)

    assert (Cola.task_type, Cola.labels) == ("classification", ["0", "1"])
    assert (Sentiment3.task_type, Sentiment3.labels) == ("classification", ["0", "1", "2"])
    examples = list(Cola().read(data / "sst2" / "dev.tsv"))  # SST-2's columns and labels fit
    assert len(examples) == 872 and {e.label for e in examples} == {"0", "1"}

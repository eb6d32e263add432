"""task.json: written atomically as UTF-8, read from a folder or beside a file, old layouts
read as they are, damaged files named."""

import json
import os

import pytest

from tinybert_core import TASK_FILE, DataError, read_task_info, write_task_info


def test_round_trip_with_non_ascii_and_unknown_keys(tmp_path):
    info = {"task": "cluener", "labels": ["O", "B-name"], "inputs": ["数据/dev.json"], "new": 1}
    path = write_task_info(tmp_path, info)
    assert path == tmp_path / TASK_FILE
    assert "数据/dev.json" in path.read_text(encoding="utf-8")  # readable, not \\u escapes
    assert read_task_info(tmp_path) == info
    (tmp_path / "train.tfrecord").write_bytes(b"")
    assert read_task_info(tmp_path / "train.tfrecord") == info  # the folder of a shard
    assert sorted(os.listdir(tmp_path)) == [TASK_FILE, "train.tfrecord"]  # no temporary


def test_no_task_json_is_empty(tmp_path):
    assert read_task_info(tmp_path) == {}
    assert read_task_info(tmp_path / "missing") == {}


def test_an_older_layout_reads_as_written(tmp_path):
    # what tinybert-310-preprocess wrote before the layout was shared: five keys, no columns
    old = {"task": "sst2", "task_type": "classification", "labels": ["0", "1"]}
    old.update(seq_length=64, num_rows=48)
    (tmp_path / TASK_FILE).write_text(json.dumps(old))
    assert read_task_info(tmp_path) == old


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"task": "sst2",\n  "labels": [}', "task.json:2: not valid JSON"),
        ('["sst2"]', "task.json: expected a JSON object, found list"),
        (b"\xff\xfe{}", "task.json: not UTF-8 text"),
    ],
)
def test_a_damaged_task_json_is_a_data_error_naming_it(tmp_path, text, message):
    target = tmp_path / TASK_FILE
    target.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(DataError, match=message) as caught:
        read_task_info(tmp_path)
    assert str(caught.value).startswith(str(target))


def test_rewriting_replaces_the_whole_file(tmp_path):
    write_task_info(tmp_path, {"task": "sst2", "num_rows": 100, "files": ["a", "b", "c"]})
    write_task_info(tmp_path, {"task": "sst2", "num_rows": 5})
    assert read_task_info(tmp_path) == {"task": "sst2", "num_rows": 5}

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
        (b"\xff\xfe{}", "task.json:1: not UTF-8 text"),
        ("[" * 100_000 + "]" * 100_000, "task.json: not readable JSON: nested too deeply"),
        ('{"num_rows": -3}', "task.json: 'num_rows' must be a whole number >= 0, found -3"),
        ('{"seq_length": true}', "task.json: 'seq_length' must be a whole number >= 0"),
        ('{"labels": "01"}', "task.json: 'labels' must be a list of strings, found '01'"),
        ('{"files": [3]}', "task.json: 'files' must be a list of strings"),
        ('{"labelled": "no"}', "task.json: 'labelled' must be true or false"),
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


@pytest.mark.parametrize(
    "entry", ["../../x.txt", "/abs/y.txt", "..", ".", "", "sub/train.tfrecord", "a\\b"]
)
def test_files_outside_the_folder_are_refused_naming_task_json_and_the_entry(tmp_path, entry):
    folder = tmp_path / "a" / "b" / "records"
    folder.mkdir(parents=True)
    (folder / TASK_FILE).write_text(json.dumps({"files": ["train.tfrecord", entry]}))
    with pytest.raises(DataError) as caught:
        read_task_info(folder)
    assert str(caught.value) == (
        f"{folder / TASK_FILE}: lists {entry!r}, which is not a file name in its folder "
        "(a path elsewhere is refused)"
    )
    with pytest.raises(DataError):
        read_task_info(folder / "train.tfrecord")  # read beside a shard: the same check


def test_a_symbolic_link_leading_out_of_the_folder_is_refused_one_inside_is_not(tmp_path):
    folder = tmp_path / "records"
    folder.mkdir()
    outside = tmp_path / "secret.txt"
    outside.write_text("keep")
    (folder / "train.tfrecord").write_bytes(b"")
    (folder / "inside.tfrecord").symlink_to("train.tfrecord")
    (folder / "out.tfrecord").symlink_to(outside)
    (folder / TASK_FILE).write_text(json.dumps({"files": ["inside.tfrecord"]}))
    assert read_task_info(folder) == {"files": ["inside.tfrecord"]}
    (folder / TASK_FILE).write_text(json.dumps({"files": ["train.tfrecord", "out.tfrecord"]}))
    with pytest.raises(
        DataError,
        match=rf"lists 'out.tfrecord', a symbolic link leading out "
        rf"of its folder \(to {outside}\)",
    ):
        read_task_info(folder)
    assert outside.read_text() == "keep"


def test_null_values_read_as_absent_and_a_task_json_that_is_a_folder_is_named(tmp_path):
    (tmp_path / TASK_FILE).write_text('{"task": "sst2", "labels": null, "files": null}')
    assert read_task_info(tmp_path)["labels"] is None
    (tmp_path / TASK_FILE).unlink()
    (tmp_path / TASK_FILE).mkdir()
    with pytest.raises(DataError, match="task.json: is a directory, not a regular file"):
        read_task_info(tmp_path)

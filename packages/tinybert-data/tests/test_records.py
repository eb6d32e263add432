"""Records directories: TFRecord framing and schema, sharding, atomic writes, readers, and
reading back with the `tfrecord` package and (when installed) MindSpore."""

import json

import numpy as np
import pytest
from tfrecord.reader import tfrecord_loader
from tfrecord.writer import TFRecordWriter

from tinybert_core import DataError
from tinybert_data import (
    RecordsError,
    RecordsWriter,
    load_records,
    read_records,
    validate_records,
    write_task_records,
)
from tinybert_data.tfrecord_format import _varints, decode_varints, parse_examples


def rows(n: int, seq: int = 8, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "input_ids": rng.integers(0, 30522, (n, seq)).astype(np.int32),
        "segment_ids": rng.integers(0, 2, (n, seq)).astype(np.int32),
        "input_mask": rng.integers(0, 2, (n, seq)).astype(np.int32),
        "label_ids": rng.integers(-100, 3, n).astype(np.int32),
    }


SHAPES = {"input_ids": (8,), "segment_ids": (8,), "input_mask": (8,), "label_ids": ()}


def write(directory, batches, shards=1, format="tfrecord", name="train"):
    with RecordsWriter(
        directory, name, SHAPES, {"task": "test"}, format=format, num_shards=shards
    ) as w:
        for batch in batches:
            w.write(batch)
    return w


def test_we_read_what_the_tfrecord_package_writes(tmp_path):
    batch = rows(20)
    batch["input_ids"][0, :4] = [0, 127, 128, 2**31 - 1]  # varint size boundaries
    theirs = tmp_path / "theirs.tfrecord"
    writer = TFRecordWriter(str(theirs))
    for i in range(20):
        writer.write({name: (values[i].tolist(), "int") for name, values in batch.items()})
    writer.close()
    # Our reader checks CRCs: their file passing means our masked CRC-32C is theirs.
    loaded = load_records(theirs)
    for name, values in batch.items():
        np.testing.assert_array_equal(loaded[name], values)


def test_varints_round_trip_negative_and_large_values():
    values = np.array([[0, 1, 127, 128, 16383, 16384, 2**31 - 1, -1, -100, -(2**31)]], np.int64)
    buffer, row_bytes = _varints(values)
    assert row_bytes.tolist() == [len(buffer)] and buffer[:5] == b"\x00\x01\x7f\x80\x01"
    np.testing.assert_array_equal(decode_varints(buffer), values[0])
    assert len(buffer) == 1 + 1 + 1 + 2 + 2 + 3 + 5 + 10 * 3  # negatives take 10 bytes


def test_round_trip_with_shards_keeps_row_order(tmp_path):
    batches = [rows(7, seed=1), rows(5, seed=2), rows(1, seed=3)]
    writer = write(tmp_path / "out", batches, shards=3)
    expected = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    shards = [f"train-0000{i}-of-00003.tfrecord" for i in range(3)]
    assert names == ["schema.json", "task.json", *shards]
    assert writer.num_rows == 13
    loaded = load_records(tmp_path / "out")
    assert list(loaded) == ["input_ids", "segment_ids", "input_mask", "label_ids"]
    for name, values in expected.items():
        np.testing.assert_array_equal(loaded[name], values)
        assert loaded[name].dtype == np.int32
    # Shard k holds rows k, k+3, ...: the tfrecord package reads one shard independently.
    shard1 = list(tfrecord_loader(str(tmp_path / "out" / "train-00001-of-00003.tfrecord"), None))
    assert [r["input_ids"].tolist() for r in shard1] == expected["input_ids"][1::3].tolist()
    batches_read = list(read_records(tmp_path / "out", batch_size=4, columns=["label_ids"]))
    assert [len(b["label_ids"]) for b in batches_read] == [4, 4, 4, 1]
    assert list(batches_read[0]) == ["label_ids"]
    np.testing.assert_array_equal(
        np.concatenate([b["label_ids"] for b in batches_read]), expected["label_ids"]
    )
    single = load_records(tmp_path / "out" / "train-00002-of-00003.tfrecord")
    np.testing.assert_array_equal(single["segment_ids"], expected["segment_ids"][2::3])


def test_schema_and_task_json(tmp_path, data, uncased_vocab):
    out = tmp_path / "sst2"
    summary = write_task_records(
        "sst2", data / "sst2" / "dev.tsv", uncased_vocab, out, 64, shards=2
    )
    schema = json.loads((out / "schema.json").read_text())
    assert schema == {
        "datasetType": "TF",
        "numRows": 872,
        "columns": {
            "input_ids": {"type": "int64", "rank": 1, "shape": [64]},
            "segment_ids": {"type": "int64", "rank": 1, "shape": [64]},
            "input_mask": {"type": "int64", "rank": 1, "shape": [64]},
            "label_ids": {"type": "int64", "rank": 0, "shape": []},
        },
    }
    task = json.loads((out / "task.json").read_text())
    assert {k: task[k] for k in ("task", "task_type", "labels", "seq_length", "vocab_size")} == {
        "task": "sst2",
        "task_type": "classification",
        "labels": ["0", "1"],
        "seq_length": 64,
        "vocab_size": 30522,
    }
    assert (task["do_lower_case"], task["num_rows"], task["format"]) == (True, 872, "tfrecord")
    assert (
        task["files"]
        == summary.files
        == ["dev-00000-of-00002.tfrecord", "dev-00001-of-00002.tfrecord"]
    )
    assert (out / "vocab.txt").read_bytes() == uncased_vocab.read_bytes()
    assert summary.label_counts == {"0": 428, "1": 444}
    assert validate_records(out)["num_rows"] == 872


def test_validator_finds_disagreements(tmp_path):
    write(tmp_path / "out", [rows(6)], shards=2)
    schema_file = tmp_path / "out" / "schema.json"
    schema = json.loads(schema_file.read_text())
    shards = ["train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord"]
    report = validate_records(tmp_path / "out")
    assert report == {"num_rows": 6, "columns": list(SHAPES), "files": shards}
    bad = dict(schema, numRows=7)
    bad["columns"] = dict(schema["columns"], input_ids={"type": "int64", "rank": 1, "shape": [9]})
    schema_file.write_text(json.dumps(bad))
    with pytest.raises(RecordsError) as info:
        validate_records(tmp_path / "out")
    assert "numRows is 7, the files hold 6 rows" in str(info.value)
    assert "input_ids has 8 values, schema says 9" in str(info.value)


def test_corrupt_and_truncated_files_are_reported(tmp_path):
    write(tmp_path / "out", [rows(4)])
    path = tmp_path / "out" / "train.tfrecord"
    content = bytearray(path.read_bytes())
    path.write_bytes(content[:-3])
    with pytest.raises(RecordsError, match="record 3 is cut short"):
        load_records(path)
    content[20] ^= 0xFF  # inside the first record's data
    path.write_bytes(content)
    with pytest.raises(RecordsError, match="record 0 has corrupt data"):
        load_records(path)


def test_failed_write_leaves_nothing_under_final_names(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), RecordsWriter(out, "train", SHAPES, {}) as writer:
        writer.write(rows(3))
        raise RuntimeError("interrupted")
    assert not out.exists()  # created by the run, removed with it
    write(out, [rows(3)], shards=2)
    before = sorted(p.name for p in out.iterdir())
    with (
        pytest.raises(RuntimeError),
        RecordsWriter(out, "train", SHAPES, {"task": "test"}, num_shards=2) as writer,
    ):
        writer.write(rows(5))
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in out.iterdir()) == before  # the earlier run is intact
    assert len(load_records(out)["input_ids"]) == 3


def test_rerun_replaces_stale_shards(tmp_path):
    write(tmp_path / "out", [rows(6)], shards=3)
    write(tmp_path / "out", [rows(2)], shards=1)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "schema.json",
        "task.json",
        "train.tfrecord",
    ]
    assert len(load_records(tmp_path / "out")["input_ids"]) == 2


def test_overwriting_another_dataset_leaves_none_of_its_files(tmp_path, uncased_vocab):
    out = tmp_path / "out"
    with RecordsWriter(out, "a", SHAPES, {"task": "a"}, uncased_vocab, num_shards=2) as writer:
        writer.write(rows(6))
    (out / "a-00000-of-00002.rowindex").write_bytes(b"index")  # as open_records leaves them
    with pytest.raises(RecordsError, match="holds other records \\(a, from files not named\\)"):
        RecordsWriter(out, "b", SHAPES, {"task": "b"})
    with RecordsWriter(out, "b", SHAPES, {"task": "b"}, overwrite=True) as writer:
        writer.write(rows(2))
    assert sorted(p.name for p in out.iterdir()) == ["b.tfrecord", "schema.json", "task.json"]


def test_writer_rejects_wrong_columns(tmp_path):
    with (
        pytest.raises(ValueError, match="expected columns"),
        RecordsWriter(tmp_path, "x", SHAPES, {}) as w,
    ):
        w.write({"input_ids": rows(2)["input_ids"]})
    with (
        pytest.raises(ValueError, match="rows of shape"),
        RecordsWriter(tmp_path, "x", SHAPES, {}) as w,
    ):
        w.write(rows(2, seq=9))


def test_mindspore_tfrecord_dataset_reads_our_records(tmp_path, data, uncased_vocab):
    ds = pytest.importorskip("mindspore.dataset")
    out = tmp_path / "qnli"
    write_task_records("qnli", data / "qnli" / "dev.tsv", uncased_vocab, out, 64, shards=2)
    ours = load_records(out)
    files = [str(out / f) for f in json.loads((out / "task.json").read_text())["files"]]
    dataset = ds.TFRecordDataset(files, str(out / "schema.json"), shuffle=False)
    assert dataset.get_dataset_size() == 5463
    columns = ["input_ids", "segment_ids", "input_mask", "label_ids"]
    got = {c: [] for c in columns}
    for row in dataset.create_dict_iterator(output_numpy=True):
        for c in columns:
            got[c].append(row[c])
    # MindSpore interleaves the files its own way: match rows by content, every row once.
    key = lambda i, table: b"".join(np.asarray(table[c][i], np.int64).tobytes() for c in columns)  # noqa: E731
    position = {key(i, ours): i for i in range(5463)}
    order = [position[key(i, got)] for i in range(5463)]
    assert sorted(order) == list(range(5463))
    for c in columns:
        np.testing.assert_array_equal(np.stack(got[c]), ours[c][order])
    assert np.stack(got["label_ids"]).shape == (5463,)


def test_mindrecord_round_trip(tmp_path, data, chinese_vocab):
    ds = pytest.importorskip("mindspore.dataset")
    out = tmp_path / "cluener"
    write_task_records(
        "cluener",
        data / "cluener" / "dev.json",
        chinese_vocab,
        out,
        32,
        format="mindrecord",
        shards=2,
    )
    assert json.loads((out / "task.json").read_text())["files"] == [
        "dev.mindrecord0",
        "dev.mindrecord1",
    ]
    assert not (out / "schema.json").exists()
    tf_out = tmp_path / "cluener_tf"
    write_task_records("cluener", data / "cluener" / "dev.json", chinese_vocab, tf_out, 32)
    ours, reference = load_records(out), load_records(tf_out)
    assert list(ours) == list(reference)
    for name in reference:
        np.testing.assert_array_equal(ours[name], reference[name])
    dataset = ds.MindDataset(str(out / "dev.mindrecord0"), shuffle=False)
    first = next(dataset.create_dict_iterator(output_numpy=True))
    np.testing.assert_array_equal(first["label_ids"], reference["label_ids"][0])


def test_mindrecord_without_mindspore_says_what_to_install(tmp_path):
    try:
        import mindspore  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"tinybert-data\[mindrecord\]"):
            write(tmp_path / "out", [rows(2)], format="mindrecord")
    else:
        pytest.skip("mindspore is installed")


def message(field: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (payloads here are under 128 bytes)."""
    return bytes([field << 3 | 2, len(payload)]) + payload


def test_reader_accepts_any_valid_example_encoding():
    # Unpacked values (each its own varint field) and the map entry's value before its key:
    # legal protobuf that our writer never produces, read by the general walk.
    values = b"\x08\x05" + b"\x08\xac\x02"  # value: 5, value: 300
    entry = message(2, message(3, values)) + message(1, b"x")
    example = message(1, message(1, entry))
    parsed = parse_examples([example])
    assert parsed["x"][0].tolist() == [5, 300] and parsed["x"][1].tolist() == [2]
    floats = message(1, message(1, message(1, b"f") + message(2, message(2, b"\x0a\x00"))))
    with pytest.raises(RecordsError, match="'f' is a float_list, not an int64_list"):
        parse_examples([floats])


def test_header_only_or_empty_file_is_refused_and_validate_refuses_zero_rows(
    tmp_path, uncased_vocab
):
    # Issue 14 item 5 (this test replaces one that asserted the 0-row dataset).
    for name, text in [("header.tsv", "sentence\tlabel\n"), ("empty.tsv", "")]:
        empty = tmp_path / name
        empty.write_text(text)
        with pytest.raises(DataError, match=rf"{name}: no examples: the file is empty"):
            write_task_records("sst2", empty, uncased_vocab, tmp_path / name[:-4], 16)
        assert not (tmp_path / name[:-4]).exists()
    # A 0-row directory written before this check still loads (empty), but does not validate.
    write(tmp_path / "old", [])
    assert load_records(tmp_path / "old")["input_ids"].shape == (0, 8)
    with pytest.raises(RecordsError, match="the files hold no rows"):
        validate_records(tmp_path / "old")

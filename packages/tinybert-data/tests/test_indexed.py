"""Random access through row indexes: same rows as the sequential reader, corrupt records
named when read, stale indexes rebuilt, memory bounded below the size of the records."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tinybert_data import (
    IndexedRecords,
    RecordsError,
    RecordsWriter,
    load_records,
    open_records,
    read_records,
    write_task_records,
)
from tinybert_data.indexed import scan_shard
from tinybert_data.records import INDEX_SUFFIX, index_path


def rows(n: int, seq: int = 16, seed: int = 0, vocab: int = 30522) -> dict:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, seq + 1, n)
    mask = (np.arange(seq) < lengths[:, None]).astype(np.int32)
    return {
        "input_ids": rng.integers(1, vocab, (n, seq)).astype(np.int32) * mask,
        "segment_ids": (np.arange(seq) >= lengths[:, None] // 2).astype(np.int32) * mask,
        "input_mask": mask,
        "label_ids": rng.integers(-100, 3, n).astype(np.int32),
    }


def write(directory, batches, shards=1, seq=16):
    shapes = {"input_ids": (seq,), "segment_ids": (seq,), "input_mask": (seq,), "label_ids": ()}
    with RecordsWriter(directory, "train", shapes, {"task": "test"}, num_shards=shards) as w:
        for batch in batches:
            w.write(batch)
    return w


def test_random_access_equals_the_sequential_reader(tmp_path):
    out = tmp_path / "out"
    write(out, [rows(50, seed=1), rows(23, seed=2)], shards=3)  # 73 rows: shards of 25, 24, 24
    everything = load_records(out)
    order = np.random.default_rng(5).permutation(73)
    with open_records(out) as records:
        assert isinstance(records, IndexedRecords)
        assert records.num_rows == len(records) == 73
        assert records.columns == ["input_ids", "segment_ids", "input_mask", "label_ids"]
        np.testing.assert_array_equal(records.lengths, everything["input_mask"].sum(axis=1))
        for start in range(0, 73, 16):  # the batches of an epoch, in a shuffled order
            batch_rows = order[start : start + 16]
            batch = records.read(batch_rows)
            for name, values in everything.items():
                np.testing.assert_array_equal(batch[name], values[batch_rows])
                assert batch[name].dtype == np.int32
        picked = records.read([5, 5, 72, 0], ["input_mask", "input_ids"])  # repeats, columns
        assert list(picked) == ["input_mask", "input_ids"]
        np.testing.assert_array_equal(picked["input_ids"], everything["input_ids"][[5, 5, 72, 0]])
        assert records.read([])["label_ids"].shape == (0,)
        with pytest.raises(IndexError, match="row 73 out of range"):
            records.read([1, 73])
    indexes = sorted(p.name for p in out.iterdir() if p.name.endswith(INDEX_SUFFIX))
    assert indexes == [f"train-0000{i}-of-00003{INDEX_SUFFIX}" for i in range(3)]
    assert not any("tfrecord" in name for name in indexes)  # the zoo globs "*tfrecord*"


def test_shards_of_any_row_counts_are_interleaved_as_read_records_does(tmp_path):
    # A folder from another tool: no task.json, shards of 5, 1 and 3 rows.
    for name, n, seed in [("a", 5, 1), ("b", 1, 2), ("c", 3, 3)]:
        write(tmp_path / name, [rows(n, seed=seed)])
        os.replace(tmp_path / name / "train.tfrecord", tmp_path / f"{name}.tfrecord")
    schema = json.loads((tmp_path / "a" / "schema.json").read_text())
    (tmp_path / "schema.json").write_text(json.dumps(dict(schema, numRows=9)))
    sequential = {k: np.concatenate([b[k] for b in read_records(tmp_path)]) for k in ["input_ids"]}
    with IndexedRecords(tmp_path) as records:
        assert records.num_rows == 9
        np.testing.assert_array_equal(
            records.read(np.arange(9))["input_ids"], sequential["input_ids"]
        )
        reverse = np.arange(9)[::-1]
        np.testing.assert_array_equal(
            records.read(reverse)["input_ids"], sequential["input_ids"][reverse]
        )


def test_task_records_read_by_row(tmp_path, data, uncased_vocab):
    out = tmp_path / "sst2"
    write_task_records("sst2", data / "sst2" / "dev.tsv", uncased_vocab, out, 64, shards=2)
    everything = load_records(out)
    rows_wanted = np.random.default_rng(0).permutation(len(everything["input_ids"]))[:100]
    with open_records(out) as records:
        assert records.task["task"] == "sst2"
        batch = records.read(rows_wanted, ["input_ids", "label_ids"])
        np.testing.assert_array_equal(batch["label_ids"], everything["label_ids"][rows_wanted])
        np.testing.assert_array_equal(records.lengths, everything["input_mask"].sum(axis=1))


def record_start(path, number: int) -> int:
    offsets, _ = scan_shard(path)
    return int(offsets[number])


def test_corrupt_record_mid_shard_fails_with_shard_and_record_when_read(tmp_path):
    out = tmp_path / "out"
    write(out, [rows(100, seed=4)], shards=2)
    shard = out / "train-00001-of-00002.tfrecord"
    content = bytearray(shard.read_bytes())
    content[record_start(shard, 20) + 40] ^= 0x01  # a value inside record 20's input_ids
    shard.write_bytes(content)
    with open_records(out) as records:
        # Row 2k+1 is record k of shard 1: rows away from record 20 read fine.
        records.read(np.arange(0, 100, 2))
        records.read([1, 3, 39, 43])
        with pytest.raises(RecordsError) as error:
            records.read([0, 7, 41, 8])  # row 41 = record 20 of shard 1
        assert str(error.value) == f"{shard}: record 20 has corrupt data (CRC mismatch)"
    # A corrupt length hides where the next records start: indexing fails, naming it.
    content = bytearray((out / "train-00000-of-00002.tfrecord").read_bytes())
    content[record_start(out / "train-00000-of-00002.tfrecord", 7) + 2] ^= 0x10
    (out / "train-00000-of-00002.tfrecord").write_bytes(content)
    with pytest.raises(
        RecordsError, match=r"train-00000-of-00002.tfrecord: record 7 has a corrupt length"
    ):
        open_records(out)


def test_stale_index_is_detected_and_rebuilt(tmp_path):
    out = tmp_path / "out"
    write(out, [rows(40, seed=1)])
    with open_records(out) as records:
        first = records.read(np.arange(40))
    index = index_path(out / "train.tfrecord")
    built = index.stat().st_mtime_ns
    # Rewritten with other rows: another size and time.
    write(out, [rows(30, seed=2)])
    with open_records(out) as records:
        assert records.num_rows == 30
        np.testing.assert_array_equal(
            records.read(np.arange(30))["input_ids"], rows(30, seed=2)["input_ids"]
        )
    assert index.stat().st_mtime_ns != built
    # Rewritten to exactly the same size, modification time put back: the tail checksum sees it.
    write(out, [same_size_rows(seed=4)])
    open_records(out).close()  # indexes seed 4's rows
    shard = out / "train.tfrecord"
    stat = shard.stat()
    write(out, [same_size_rows(seed=5)])
    assert shard.stat().st_size == stat.st_size
    os.utime(shard, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with open_records(out) as records:
        np.testing.assert_array_equal(
            records.read(np.arange(30))["input_ids"], same_size_rows(seed=5)["input_ids"]
        )
    assert first["input_ids"].shape == (40, 16)
    # A damaged index (cut short) is rebuilt too.
    index.write_bytes(index.read_bytes()[:40])
    with open_records(out) as records:
        np.testing.assert_array_equal(
            records.read([29, 0])["input_ids"], same_size_rows(seed=5)["input_ids"][[29, 0]]
        )


def same_size_rows(seed: int) -> dict:
    """Rows whose records have the same byte size whatever the seed: every value one byte."""
    batch = rows(30, seed=seed, vocab=128)
    batch["label_ids"][:] = 1
    return batch


def test_index_of_an_unwritable_folder_stays_in_memory(tmp_path, monkeypatch):
    import tinybert_data.indexed as indexed

    out = tmp_path / "out"
    write(out, [rows(12, seed=1)], shards=2)

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(indexed, "write_index", read_only)
    with open_records(out) as records:
        np.testing.assert_array_equal(
            records.read([11, 0])["input_ids"], load_records(out)["input_ids"][[11, 0]]
        )
    assert not any(p.name.endswith(INDEX_SUFFIX) for p in out.iterdir())


def test_task_json_row_count_is_checked(tmp_path):
    out = tmp_path / "out"
    write(out, [rows(10)])
    task = json.loads((out / "task.json").read_text())
    (out / "task.json").write_text(json.dumps(dict(task, num_rows=11)))
    with pytest.raises(RecordsError, match="task.json says 11 rows, the files hold 10"):
        open_records(out)


def test_mindrecord_is_loaded_into_memory_with_the_same_interface(tmp_path, caplog):
    pytest.importorskip("mindspore")
    out = tmp_path / "mr"
    shapes = {"input_ids": (16,), "segment_ids": (16,), "input_mask": (16,), "label_ids": ()}
    batch = rows(20)
    with RecordsWriter(out, "train", shapes, {"task": "t"}, format="mindrecord") as writer:
        writer.write(batch)
    with open_records(out) as records:
        assert "loaded whole into memory" in caplog.text
        np.testing.assert_array_equal(records.read([3, 1])["input_ids"], batch["input_ids"][[3, 1]])
        np.testing.assert_array_equal(records.lengths, batch["input_mask"].sum(axis=1))


MEMORY_CEILING_CHILD = textwrap.dedent(
    """
    import resource, sys
    import numpy as np
    from tinybert_data import load_records, open_records

    path, headroom, expected_sum = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize"))
    resource.setrlimit(resource.RLIMIT_AS, (vm + headroom, resource.RLIM_INFINITY))
    with open_records(path) as records:  # builds the indexes under the ceiling
        order = np.random.default_rng(0).permutation(records.num_rows)
        total = 0
        for start in range(0, records.num_rows, 64):
            batch = records.read(order[start : start + 64], ["input_ids"])
            total += int(batch["input_ids"].sum(dtype=np.int64))
    print("streamed", total == expected_sum, records.num_rows)
    try:
        load_records(path)
        print("loaded")
    except MemoryError:
        print("load_records: MemoryError")
    """
)


def test_rows_larger_than_a_memory_ceiling_are_read(tmp_path):
    """A process limited to 160 MiB more address space reads 400 MB of records in a random
    order; loading them whole in the same process fails."""
    out = tmp_path / "big"
    seq, n = 2048, 200
    batch = rows(n, seq=seq, seed=7)
    write(out, [batch], seq=seq)
    shard = out / "train.tfrecord"
    one = shard.read_bytes()
    copies = -(-400_000_000 // len(one))  # the records repeated: framing stays valid
    with open(shard, "wb") as f:
        for _ in range(copies):
            f.write(one)
    for file_name, key in [("task.json", "num_rows"), ("schema.json", "numRows")]:
        info = json.loads((out / file_name).read_text())
        (out / file_name).write_text(json.dumps(dict(info, **{key: n * copies})))
    assert shard.stat().st_size > 400_000_000
    expected = int(batch["input_ids"].sum(dtype=np.int64)) * copies
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MALLOC_ARENA_MAX="2")
    result = subprocess.run(
        [sys.executable, "-c", MEMORY_CEILING_CHILD, str(out), str(160 << 20), str(expected)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == [
        f"streamed True {n * copies}",
        "load_records: MemoryError",
    ]


def test_lengths_of_records_written_by_another_writer(tmp_path):
    """The tfrecord package's Examples (its own field layout) are indexed by the general
    parser: lengths are still the input_mask sums; without input_mask, the input_ids count."""
    from tfrecord.writer import TFRecordWriter

    batch = rows(30, seed=9)
    for name, columns in [("with_mask", list(batch)), ("no_mask", ["input_ids", "label_ids"])]:
        path = tmp_path / f"{name}.tfrecord"
        writer = TFRecordWriter(str(path))
        for i in range(30):
            writer.write({c: (batch[c][i].tolist(), "int") for c in columns})
        writer.close()
        with IndexedRecords(path) as records:
            expected = batch["input_mask"].sum(axis=1) if name == "with_mask" else np.full(30, 16)
            np.testing.assert_array_equal(records.lengths, expected)
            np.testing.assert_array_equal(
                records.read([4, 2])["input_ids"], batch["input_ids"][[4, 2]]
            )

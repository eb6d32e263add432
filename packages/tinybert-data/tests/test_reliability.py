"""Issue 14 on real data: readers that check what task.json promises, labelled and unlabelled
files, byte-order marks, stale temporaries and write failures naming the path."""

import json
import os
import resource
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest

from tinybert_data import (
    BertTokenizer,
    DataError,
    RecordsError,
    get_task,
    load_records,
    read_records,
    write_task_records,
)
from tinybert_data.cli import main
from tinybert_data.records import read_task_info
from tinybert_data.tfrecord_format import iter_records

BOM = b"\xef\xbb\xbf"


def record_ends(path) -> list[int]:
    """Byte offset after each record of a TFRecord file (length, CRC, data, CRC)."""
    ends, data = [], path.read_bytes()
    position = 0
    while position < len(data):
        length = int.from_bytes(data[position : position + 8], "little")
        position += 12 + length + 4
        ends.append(position)
    return ends


@pytest.fixture
def sst2_dev(tmp_path, data, uncased_vocab):
    """SST-2 dev (872 rows) in two shards."""
    out = tmp_path / "dev"
    write_task_records("sst2", data / "sst2" / "dev.tsv", uncased_vocab, out, 32, shards=2)
    return out


# ---- item 4: every reader checks the row count ------------------------------------------------


def test_a_shard_cut_at_a_record_boundary_is_refused_by_every_reader(sst2_dev, capsys):
    shard = sst2_dev / read_task_info(sst2_dev)["files"][1]
    assert len(list(iter_records(shard))) == 436
    with open(shard, "r+b") as f:
        f.truncate(record_ends(shard)[299])  # 300 whole records: a valid, shorter file
    expected = rf"{shard}: holds 300 rows, but task.json/schema.json promise 436"
    with pytest.raises(RecordsError, match=expected):
        load_records(sst2_dev)
    with pytest.raises(RecordsError, match=expected):
        for _ in read_records(sst2_dev, batch_size=64):
            pass
    with pytest.raises(RecordsError, match=expected):  # one file, read on its own
        load_records(shard)
    assert main(["inspect", str(sst2_dev)]) == 1
    assert expected.replace("\\", "") in capsys.readouterr().err


def test_a_shard_with_rows_added_or_a_changed_num_rows_is_refused(sst2_dev):
    files = [sst2_dev / f for f in read_task_info(sst2_dev)["files"]]
    first = files[0].read_bytes()
    files[0].write_bytes(first + first[: record_ends(files[0])[0]])  # one record appended
    with pytest.raises(RecordsError, match=rf"{files[0]}: holds more than 436 rows"):
        load_records(sst2_dev)
    files[0].write_bytes(first)
    info = json.loads((sst2_dev / "task.json").read_text())
    (sst2_dev / "task.json").write_text(json.dumps(dict(info, num_rows=871)))
    with pytest.raises(RecordsError, match="task.json promises 871 rows, schema.json 872"):
        load_records(sst2_dev)


# ---- item 5: labelled, unlabelled, empty ----------------------------------------------------


def test_a_file_mixing_labelled_and_unlabelled_rows_is_refused_naming_the_line(
    tmp_path, data, chinese_vocab, uncased_vocab
):
    lines = (data / "tnews" / "dev.json").read_text(encoding="utf-8").splitlines()[:50]
    row = json.loads(lines[19])
    del row["label"], row["label_desc"]
    lines[19] = json.dumps(row, ensure_ascii=False)
    mixed = tmp_path / "tnews.json"
    mixed.write_text("\n".join(lines) + "\n", encoding="utf-8")
    for on_error in ("raise", "skip"):  # not a bad row to skip: the file itself is wrong
        with pytest.raises(DataError, match=r"tnews.json:20: this row has no label but line 1"):
            write_task_records(
                "tnews", mixed, chinese_vocab, tmp_path / "out", 32, on_error=on_error
            )
        assert not (tmp_path / "out").exists()
    # The other way round, in a GLUE TSV: unlabelled first, then a labelled row.
    tsv = (data / "sst2" / "dev.tsv").read_text(encoding="utf-8").splitlines()[:30]
    tsv[1] = tsv[1].rsplit("\t", 1)[0] + "\t"
    sst2 = tmp_path / "sst2.tsv"
    sst2.write_text("\n".join(tsv) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"sst2.tsv:3: this row has a label but line 2 has none"):
        list(get_task("sst2").read(sst2))
    # Several inputs make one dataset: a test file beside a dev file is refused too.
    with pytest.raises(DataError, match=r"test.tsv:2: this file has no labels but .*dev.tsv has"):
        write_task_records(
            "sst2",
            [data / "sst2" / "dev.tsv", data / "sst2" / "test.tsv"],
            uncased_vocab,
            tmp_path / "both",
            32,
        )


def test_a_fully_unlabelled_file_is_marked_as_a_test_file(tmp_path, data, uncased_vocab):
    write_task_records("sst2", data / "sst2" / "test.tsv", uncased_vocab, tmp_path / "test", 32)
    write_task_records("sst2", data / "sst2" / "dev.tsv", uncased_vocab, tmp_path / "dev", 32)
    assert read_task_info(tmp_path / "test")["labelled"] is False
    assert read_task_info(tmp_path / "dev")["labelled"] is True
    assert (load_records(tmp_path / "test")["label_ids"] == -100).all()


# ---- item 11: token ids beyond the vocabulary -------------------------------------------------


def test_records_with_ids_beyond_task_json_vocab_size_are_refused_naming_file_and_record(
    sst2_dev,
):
    ids = load_records(sst2_dev)["input_ids"]
    info = json.loads((sst2_dev / "task.json").read_text())
    assert info["vocab_size"] == 30522
    (sst2_dev / "task.json").write_text(json.dumps(dict(info, vocab_size=2000)))
    row = int(np.flatnonzero((ids >= 2000).any(axis=1))[0])  # rows go to shard row % 2
    value = ids[row][ids[row] >= 2000][0]
    shard = sst2_dev / info["files"][row % 2]
    with pytest.raises(
        RecordsError,
        match=rf"{shard}: record {row // 2}: input_ids holds {value}, outside the vocabulary "
        "of 2000 tokens",
    ):
        load_records(sst2_dev)


# ---- item 12: a UTF-8 byte-order mark ---------------------------------------------------------


def test_a_byte_order_mark_is_accepted_in_task_files_and_vocabularies(
    tmp_path, data, uncased_vocab, chinese_vocab
):
    for task, source, vocab in [
        ("sst2", data / "sst2" / "dev.tsv", uncased_vocab),
        ("tnews", data / "tnews" / "dev.json", chinese_vocab),
        ("cluener", data / "cluener" / "dev.json", chinese_vocab),
    ]:
        with_bom = tmp_path / f"bom-{source.name}"
        with_bom.write_bytes(BOM + source.read_bytes())
        vocab_bom = tmp_path / f"bom-{task}-vocab.txt"
        vocab_bom.write_bytes(BOM + vocab.read_bytes())
        write_task_records(task, source, vocab, tmp_path / f"{task}-plain", 64)
        write_task_records(task, with_bom, vocab_bom, tmp_path / f"{task}-bom", 64)
        plain, bom = (
            load_records(tmp_path / f"{task}-plain"),
            load_records(tmp_path / f"{task}-bom"),
        )
        for column in plain:
            np.testing.assert_array_equal(bom[column], plain[column])
    tokenizer = BertTokenizer.from_vocab(tmp_path / "bom-sst2-vocab.txt")
    assert tokenizer.vocab == BertTokenizer.from_vocab(uncased_vocab).vocab


# ---- item 10: stale temporaries, write failures ------------------------------------------------


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_rerun_removes_only_the_temporaries_of_killed_writers(tmp_path, data, uncased_vocab):
    from tinybert_data.records import remove_stale_temporaries  # new in issue 14

    out = tmp_path / "dev"
    out.mkdir()
    host = socket.gethostname()
    killed = out / f".tinybert-data-{host}-{dead_pid()}-abcd1234"
    running = out / f".tinybert-data-{host}-{os.getpid()}-efgh5678"  # a live writer's
    someone_elses = out / ".cache"
    for folder in (killed, running, someone_elses):
        folder.mkdir()
        (folder / "train.tfrecord").write_bytes(b"x" * 1000)
    write_task_records("sst2", data / "sst2" / "dev.tsv", uncased_vocab, out, 32)
    assert not killed.exists()
    assert running.exists() and someone_elses.exists()
    # A folder named by an older version (no pid) goes once untouched for an hour.
    older = out / ".tinybert-data-k2j4h5g6"
    older.mkdir()
    (older / "train.tfrecord").write_bytes(b"x")
    assert remove_stale_temporaries(out) == []
    two_hours_ago = os.stat(older).st_mtime - 7200
    for item in (older / "train.tfrecord", older):
        os.utime(item, (two_hours_ago, two_hours_ago))
    assert remove_stale_temporaries(out) == [older]


def limited_file_size(limit: int):
    """preexec_fn: files of at most `limit` bytes, and EFBIG instead of death by SIGXFSZ."""

    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return limit_file_size


def test_a_full_disk_removes_the_partial_files_and_names_the_path(tmp_path, data, uncased_vocab):
    out = tmp_path / "train"
    command = [sys.executable, "-m", "tinybert_data.cli", "task", "--task", "sst2"]
    command += ["--input", str(data / "sst2" / "train.tsv"), "--vocab", str(uncased_vocab)]
    command += ["--seq_length", "64", "--output", str(out), "--quiet"]
    result = subprocess.run(
        command, capture_output=True, text=True, preexec_fn=limited_file_size(2_000_000)
    )
    assert result.returncode == 1
    assert result.stderr == (
        f"tinybert-data: error: [Errno 27] File too large (writing records): '{out}'\n"
    )
    assert not out.exists()  # the run created it: nothing is left


def test_a_full_disk_writing_mindrecord_is_one_line_and_leaves_nothing(
    tmp_path, data, uncased_vocab
):
    pytest.importorskip("mindspore")
    out = tmp_path / "dev"
    argv = ["task", "--task", "sst2", "--input", str(data / "sst2" / "dev.tsv"), "--quiet"]
    argv += ["--vocab", str(uncased_vocab), "--output", str(out), "--format", "mindrecord"]
    read_end, write_end = os.pipe()
    pid = os.fork()  # mindspore is imported here already: no 10-30 s start-up in a new process
    if pid == 0:
        code = 2
        try:
            os.dup2(write_end, 2)
            sys.stderr = os.fdopen(write_end, "w", buffering=1)
            limited_file_size(1_000_000)()
            code = main(argv)
        finally:
            os._exit(code)
    os.close(write_end)
    err = os.fdopen(read_end).read()
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 1
    assert err == (
        f"tinybert-data: error: {out}: MindSpore could not write the MindRecord files "
        "([ERROR] [Internal ERROR] Failed to seekp file.); is the disk full?\n"
    )
    assert not out.exists()

"""Issues 14 and 33 on real data: readers that check what task.json promises, labelled and
unlabelled files, byte-order marks, stale temporaries, write failures naming the path; names in
task.json that lead out of its folder, another dataset's records in the output folder, and
hostile inputs (wrong JSON structure, FIFOs, lone carriage returns, numbers out of range)."""

import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest

from tinybert_core import (
    CLOSED_PIPE_STATUS,
    DataError,
    read_task_info,
    remove_stale_temporaries,
)
from tinybert_data import (
    BertTokenizer,
    RecordsError,
    get_task,
    load_records,
    open_records,
    read_records,
    write_row_indexes,
    write_task_records,
)
from tinybert_data.augment import GloVe, augment_task_file
from tinybert_data.cli import main
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


# ---- issue 33, item 1: names in task.json that lead out of its folder ---------------------------


def first_rows(source, rows: int, target):
    """The header and the first `rows` rows of a GLUE TSV, as a new file."""
    lines = source.read_text(encoding="utf-8").splitlines()[: rows + 1]
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target


def task_argv(task, source, vocab, output, *extra):
    argv = ["task", "--task", task, "--input", str(source), "--vocab", str(vocab)]
    return [*argv, "--seq_length", "32", "--output", str(output), "--quiet", *extra]


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.removeprefix("tinybert-data: error: ").rstrip("\n")


@pytest.mark.parametrize("kind", ["relative", "absolute", "dotdot", "symlink"])
def test_files_named_outside_the_folder_by_an_old_task_json_are_never_touched(
    tmp_path, data, uncased_vocab, capsys, kind
):
    # The probe: F/task.json, left by anyone, lists files outside F; a run into F deleted them.
    folder = tmp_path / "a" / "b" / "F"
    folder.mkdir(parents=True)
    outside = tmp_path / "a" / "x.txt"
    outside.write_text("keep")
    (folder / "link.tfrecord").symlink_to(outside)
    entry = {
        "relative": "../../x.txt",
        "absolute": str(outside),
        "dotdot": "..",
        "symlink": "link.tfrecord",
    }[kind]
    task_json = folder / "task.json"
    task_json.write_text(json.dumps({"task": "sst2", "files": [entry]}))
    source = first_rows(data / "sst2" / "dev.tsv", 20, tmp_path / "dev.tsv")
    for extra in ([], ["--overwrite"]):
        assert main(task_argv("sst2", source, uncased_vocab, folder, *extra)) == 1
        assert one_error_line(capsys).startswith(f"{task_json}: lists {entry!r}")
    assert main(["inspect", str(folder)]) == 1  # read through task.json: refused the same way
    assert one_error_line(capsys).startswith(f"{task_json}: lists {entry!r}")
    for read in (load_records, open_records):
        with pytest.raises(DataError, match="lists"):
            read(folder)
    assert outside.read_text() == "keep"
    assert sorted(p.name for p in folder.iterdir()) == ["link.tfrecord", "task.json"]


def test_the_exact_probe_on_the_console_script(tmp_path, data, uncased_vocab):
    folder = tmp_path / "a" / "b" / "F"
    folder.mkdir(parents=True)
    x, y = tmp_path / "a" / "x.txt", tmp_path / "y.txt"
    for path in (x, y):
        path.write_text("keep")
    (folder / "task.json").write_text(json.dumps({"files": ["../../x.txt", str(y)]}))
    source = first_rows(data / "sst2" / "dev.tsv", 20, tmp_path / "dev.tsv")
    command = [
        sys.executable,
        "-m",
        "tinybert_data.cli",
        *task_argv("sst2", source, uncased_vocab, folder),
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr == (
        f"tinybert-data: error: {folder / 'task.json'}: lists '../../x.txt', which is not a "
        "file name in its folder (a path elsewhere is refused)\n"
    )
    assert x.read_text() == y.read_text() == "keep"


# ---- item 6: another dataset's records in the output folder -----------------------------------


def test_another_datasets_records_are_replaced_only_with_overwrite_and_wholly(
    tmp_path, data, uncased_vocab, capsys
):
    sst2 = first_rows(data / "sst2" / "dev.tsv", 40, tmp_path / "sst2.tsv")
    qnli = first_rows(data / "qnli" / "dev.tsv", 30, tmp_path / "qnli.tsv")
    out = tmp_path / "out"
    assert main(task_argv("sst2", sst2, uncased_vocab, out, "--shards", "2")) == 0
    write_row_indexes(out)  # what a trainer's first open_records leaves beside the shards
    # Rerunning the same command replaces its own records, and their stale row indexes.
    assert main(task_argv("sst2", sst2, uncased_vocab, out, "--name", "sst2")) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "schema.json",
        "sst2.tfrecord",
        "task.json",
        "vocab.txt",
    ]
    write_row_indexes(out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    for argv in (
        task_argv("qnli", qnli, uncased_vocab, out),
        task_argv("sst2", first_rows(sst2, 10, tmp_path / "other.tsv"), uncased_vocab, out),
        ["corpus", "--input", str(sst2), "--vocab", str(uncased_vocab), "--output", str(out)],
    ):
        assert main(argv) == 1
        assert one_error_line(capsys) == (
            f"{out} holds other records (sst2, from {sst2}): write to another folder, or "
            "replace them with --overwrite"
        )
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # untouched
    assert main(task_argv("qnli", qnli, uncased_vocab, out, "--overwrite")) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "qnli.tfrecord",
        "schema.json",
        "task.json",
        "vocab.txt",
    ]  # no sst2 shard, no row index left behind
    assert read_task_info(out)["task"] == "qnli" and len(load_records(out)["input_ids"]) == 30
    # --overwrite takes true/false as the trainers' flag does
    assert main(task_argv("sst2", sst2, uncased_vocab, out, "--overwrite", "false")) == 1
    assert "--overwrite" in one_error_line(capsys)
    assert main(task_argv("sst2", sst2, uncased_vocab, out, "--overwrite", "true")) == 0


# ---- items 5 and 7: hostile inputs, each one line naming the file -------------------------------


def cluener_line(label) -> str:
    return json.dumps({"text": "浙商银行企业信贷部", "label": label}, ensure_ascii=False)


@pytest.mark.parametrize(
    "task, line, message",
    [
        (
            "cluener",
            cluener_line({"company": {"浙商银行": None}}),
            "spans of '浙商银行' must be a list",
        ),
        (
            "cluener",
            cluener_line({"company": {"浙商银行": "0,3"}}),
            "spans of '浙商银行' must be a list",
        ),
        ("cluener", cluener_line({"company": {"浙商银行": [[True, 3]]}}), r"span \[True, 3\] of"),
        ("cluener", cluener_line({"company": {"浙商银行": [["0", "3"]]}}), r"span \['0', '3'\]"),
        ("cluener", cluener_line({"company": {"浙商银行": [[0.0, 3]]}}), r"span \[0.0, 3\] of"),
        ("cluener", cluener_line({"company": ["浙商银行"]}), "'company' must be a JSON object"),
        ("cluener", cluener_line(["company"]), "'label' must map entity types to entities"),
        ("cluener", json.dumps({"text": ["浙商银行"], "label": {}}), "'text' missing or not a"),
        ("cluener", '{"text": "a", "label": ' + "[" * 50_000 + "]" * 50_000 + "}", "too deeply"),
        ("tnews", "[" * 50_000 + "]" * 50_000, "not readable JSON: nested too deeply"),
        ("tnews", json.dumps({"sentence": "x", "label": 101}), "label 101 is not a string"),
        ("tnews", json.dumps({"sentence": "x", "label": ["101"]}), r"label \['101'\] is not a"),
    ],
)
def test_json_lines_of_a_wrong_structure_are_one_line_naming_file_and_line(
    tmp_path, chinese_vocab, capsys, task, line, message
):
    good = {"cluener": cluener_line({}), "tnews": json.dumps({"sentence": "x", "label": "101"})}
    source = tmp_path / "dev.json"
    source.write_text(good[task] + "\n" + line + "\n", encoding="utf-8")
    assert main(task_argv(task, source, chinese_vocab, tmp_path / "out")) == 1
    error = one_error_line(capsys)
    assert error.startswith(f"{source}:2: ") and re.search(message, error), error
    assert not (tmp_path / "out").exists()


def test_files_that_cannot_be_read_as_asked_are_named_with_what_they_are(
    tmp_path, data, uncased_vocab, capsys
):
    sst2 = first_rows(data / "sst2" / "dev.tsv", 5, tmp_path / "dev.tsv")
    mac = tmp_path / "mac.tsv"  # classic Mac OS line ends: read as one line, an "empty file"
    mac.write_bytes(sst2.read_bytes().replace(b"\n", b"\r"))
    bad_vocab, mac_vocab = tmp_path / "bad-vocab.txt", tmp_path / "mac-vocab.txt"
    bad_vocab.write_bytes(uncased_vocab.read_bytes()[:5000] + b"\xff\n")
    mac_vocab.write_bytes(uncased_vocab.read_bytes().replace(b"\n", b"\r"))
    fifo, folder = tmp_path / "fifo", tmp_path / "folder"
    os.mkfifo(fifo)  # a reader that opened it would wait for a writer forever
    folder.mkdir()
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    bad_vocab_line = bad_vocab.read_bytes().count(b"\n")
    lone_cr = "its lines end in a lone carriage return (\\r, classic Mac OS)"
    cases = [
        (task_argv("sst2", mac, uncased_vocab, tmp_path / "o"), f"{mac}: {lone_cr}"),
        (task_argv("sst2", sst2, mac_vocab, tmp_path / "o"), f"{mac_vocab}: {lone_cr}"),
        (
            task_argv("sst2", sst2, bad_vocab, tmp_path / "o"),
            f"{bad_vocab}:{bad_vocab_line}: not UTF-8 text (invalid start byte)",
        ),
        (task_argv("sst2", fifo, uncased_vocab, tmp_path / "o"), f"{fifo}: is a FIFO (named pipe)"),
        (task_argv("sst2", sst2, fifo, tmp_path / "o"), f"{fifo}: is a FIFO (named pipe)"),
        (task_argv("sst2", folder, uncased_vocab, tmp_path / "o"), f"{folder}: is a directory"),
        (task_argv("sst2", sst2, uncased_vocab, a_file), f"{a_file}: is a file, not a records"),
        (
            [
                "corpus",
                "--input",
                str(fifo),
                "--vocab",
                str(uncased_vocab),
                "--output",
                str(tmp_path / "o"),
            ],
            f"{fifo}: is a FIFO (named pipe), not a regular file",
        ),
        (
            [
                "corpus",
                "--input",
                str(folder),
                "--vocab",
                str(uncased_vocab),
                "--output",
                str(tmp_path / "o"),
            ],
            f"{folder}: the folder holds no files",
        ),
        (["inspect", str(fifo)], f"{fifo}: is a FIFO (named pipe), not a regular file"),
        (["inspect", str(tmp_path / "none")], f"{tmp_path / 'none'}: file not found"),
        (["validate", str(sst2)], f"{sst2}: is a file; validate checks a records folder"),
        (
            task_argv("sst2", sst2, uncased_vocab, tmp_path / "o", "--name", "../evil"),
            "the records' name must be a file name, not '../evil'",
        ),
    ]
    for argv, message in cases:
        assert main([*argv, "--quiet"] if argv[0] in ("task", "corpus") else argv) == 1
        assert one_error_line(capsys).startswith(message)
        assert not (tmp_path / "o").exists()
    # A shard task.json lists that is a FIFO (inspect would wait forever) or missing.
    records = tmp_path / "records"
    write_task_records("sst2", sst2, uncased_vocab, records, 32, shards=2)
    shard = records / read_task_info(records)["files"][1]
    shard.unlink()
    assert main(["inspect", str(records)]) == 1
    assert one_error_line(capsys) == f"{shard}: file not found (listed in {records / 'task.json'})"
    os.mkfifo(shard)
    assert main(["inspect", str(records)]) == 1
    assert one_error_line(capsys).startswith(f"{shard}: is a FIFO (named pipe), not a regular")
    # The augmentation's inputs (tinybert-augment): a GloVe file and a task file.
    with pytest.raises(DataError, match=f"^{fifo}: is a FIFO"):
        GloVe.load(fifo)
    with pytest.raises(DataError, match=f"^{fifo}: is a FIFO"):
        augment_task_file("sst2", fifo, tmp_path / "aug.tsv", candidates=None)


def test_numbers_outside_their_range_are_refused_before_anything_is_written(
    tmp_path, data, uncased_vocab, capsys
):
    sst2 = first_rows(data / "sst2" / "dev.tsv", 5, tmp_path / "dev.tsv")
    corpus = ["corpus", "--input", str(sst2), "--vocab", str(uncased_vocab), "--quiet"]
    out = tmp_path / "out"
    for argv, message in [
        ([*task_argv("sst2", sst2, uncased_vocab, out), "--seq_length", "100000"], "outside [1,"),
        ([*corpus, "--output", str(out), "--short_seq_prob", "nan"], "in [0, 1], not nan"),
        ([*corpus, "--output", str(out), "--short_seq_prob", "1.5"], "in [0, 1], not 1.5"),
        ([*corpus, "--output", str(out), "--short_seq_prob=-inf"], "in [0, 1], not -inf"),
    ]:
        assert main(argv) == 1
        assert message in one_error_line(capsys)
        assert not out.exists()
    for examples in ("-1", "100000000000", "nan"):
        with pytest.raises(SystemExit) as exit_code:
            main(["inspect", str(out), "--examples", examples])
        assert exit_code.value.code == 2
    # --workers beyond the pieces and CPUs starts no more processes than can work, same rows.
    assert main([*corpus, "--output", str(tmp_path / "many"), "--workers", "100000"]) == 0
    assert main([*corpus, "--output", str(tmp_path / "one")]) == 0
    many, one = load_records(tmp_path / "many"), load_records(tmp_path / "one")
    assert all(np.array_equal(many[c], one[c]) for c in one)


def test_too_many_shards_for_the_open_file_limit_is_one_line(tmp_path, data, uncased_vocab):
    sst2 = first_rows(data / "sst2" / "dev.tsv", 5, tmp_path / "dev.tsv")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "tinybert_data.cli"]
    command += task_argv("sst2", sst2, uncased_vocab, out, "--shards", "500")

    def at_most_64_files() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    done = subprocess.run(command, capture_output=True, text=True, preexec_fn=at_most_64_files)
    assert done.returncode == 1
    assert done.stderr == (
        f"tinybert-data: error: {out}: cannot keep 500 shard files open at once "
        "(Too many open files): write fewer shards\n"
    )
    assert not out.exists()


@pytest.mark.parametrize(
    "file_name, content, message",
    [
        ("task.json", '{"labels": 5}', "'labels' must be a list of strings, found 5"),
        ("task.json", '{"num_rows": "872"}', "'num_rows' must be a whole number >= 0"),
        ("task.json", "[" * 50_000 + "]" * 50_000, "not readable JSON: nested too deeply"),
        ("schema.json", '{"columns": ["input_ids"]}', '"columns" must map each column'),
        ("schema.json", '{"columns": {"input_ids": {"shape": ["x"]}}}', '"columns" must map'),
        ("schema.json", '{"numRows": -1}', '"numRows" must be a whole number, not -1'),
        ("schema.json", '{"datasetType": "TF",', "not valid JSON"),
    ],
)
def test_a_damaged_task_or_schema_json_is_one_line_naming_it(
    tmp_path, data, uncased_vocab, capsys, file_name, content, message
):
    source = first_rows(data / "sst2" / "dev.tsv", 20, tmp_path / "dev.tsv")
    out = tmp_path / "out"
    write_task_records("sst2", source, uncased_vocab, out, 32, shards=2)
    (out / file_name).write_text(content)
    for command in (["inspect", str(out)], ["validate", str(out)]):
        assert main(command) == 1
        error = one_error_line(capsys)
        assert error.startswith(f"{out / file_name}") and message in error, error


def test_output_to_a_closed_pipe_ends_quietly(sst2_dev):
    read_end, write_end = os.pipe()
    os.close(read_end)  # `tinybert-data inspect DIR | head` once head has exited
    try:
        done = subprocess.run(  # 872 examples: more than a buffer, so a print fails
            [sys.executable, "-m", "tinybert_data.cli", "inspect", str(sst2_dev)]
            + ["--examples", "1000"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
        )
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (CLOSED_PIPE_STATUS, "")

"""Issue 14: byte-order marks, the report's file mode, and report paths that cannot be written
(one line, exit 1, nothing left behind). Issue 33: non-finite numbers, lone carriage returns,
JSON nested too deeply or of the wrong structure, FIFOs, and a reader of stdout that goes away."""

import json
import os
import resource
import signal
import stat
import subprocess
import sys

import pytest

from tinybert_core import CLOSED_PIPE_STATUS
from tinybert_eval.cli import main

BOM = b"\xef\xbb\xbf"


def argv(task, predictions, gold, *extra):
    return ["score", "--task", task, "--predictions", str(predictions), "--gold", str(gold), *extra]


def test_a_byte_order_mark_is_accepted_in_every_format(tmp_path, shared_data, capsys):
    tnews = shared_data / "tnews" / "dev.json"
    cluener = shared_data / "cluener" / "dev.json"
    sst2 = shared_data / "sst2" / "dev.tsv"
    labels = tmp_path / "labels.txt"  # SST-2's gold labels, plain text
    labels.write_text(
        "\n".join(row.rsplit("\t", 1)[1] for row in sst2.read_text().splitlines()[1:])
    )
    for task, gold in [("tnews", tnews), ("cluener", cluener), ("sst2", labels), ("sst2", sst2)]:
        with_bom = tmp_path / f"bom-{gold.name}"
        with_bom.write_bytes(BOM + gold.read_bytes())
        assert main(argv(task, gold, gold)) == 0
        plain = capsys.readouterr().out
        for predictions, reference in [(with_bom, gold), (gold, with_bom)]:
            assert main(argv(task, predictions, reference)) == 0, capsys.readouterr().err
            assert capsys.readouterr().out == plain  # the same scores, all examples


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_the_report_honours_the_umask(tmp_path, shared_data, umask_022):
    gold = shared_data / "tnews" / "dev.json"
    assert main(argv("tnews", gold, gold, "--output", str(tmp_path / "report.json"))) == 0
    assert stat.S_IMODE(os.stat(tmp_path / "report.json").st_mode) == 0o644
    assert json.loads((tmp_path / "report.json").read_text())["accuracy"] == 1.0


def test_a_report_path_that_cannot_be_written_is_one_line(tmp_path, shared_data, capsys):
    gold = shared_data / "tnews" / "dev.json"
    (tmp_path / "a_file").write_text("")
    (tmp_path / "a_dir").mkdir()
    for output, reason in [
        (tmp_path / "a_file" / "report.json", "[Errno 17] File exists"),
        (tmp_path / "a_dir", "[Errno 21] Is a directory"),
    ]:
        assert main(argv("tnews", gold, gold, "--output", str(output))) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"tinybert-eval: error: cannot write the report: {reason}")
        assert err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_dir", "a_file"]
    assert list((tmp_path / "a_dir").iterdir()) == []


def test_a_full_disk_writing_the_report_is_one_line_naming_it(tmp_path, shared_data):
    gold = shared_data / "cluener" / "dev.json"
    report = tmp_path / "report.json"

    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100, 100))  # the report is about 2 kB

    command = [sys.executable, "-m", "tinybert_eval.cli", *argv("cluener", gold, gold)]
    result = subprocess.run(
        [*command, "--output", str(report)],
        capture_output=True,
        text=True,
        preexec_fn=limit_file_size,
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert errors == [
        f"tinybert-eval: error: cannot write the report: [Errno 27] File too large: '{report}'"
    ]
    assert list(tmp_path.iterdir()) == []


# ---- issue 33: hostile inputs, each one line naming the file -----------------------------------


@pytest.mark.parametrize(
    "task, predicted, gold, message",
    [
        (
            "stsb",
            b"nan\n2.0\n3.0\n",
            b"1.0\n2.0\n3.0\n",
            "pred.txt:1: 'nan' is not a finite number",
        ),
        ("stsb", b"1.0\n-inf\n3.0\n", b"1.0\n2.0\n3.0\n", "pred.txt:2: '-inf' is not a finite"),
        ("stsb", b'{"score": NaN}\n{"score": 1}\n', b"1.0\n2.0\n", "pred.txt:1: 'nan' is not a"),
        ("stsb", b"1.0\n2.0\n", b"1e999\n2.0\n", "gold.txt:1: '1e999' is not a finite number"),
        ("sst2", b"1\r0\r1\r", b"1\n0\n1\n", "pred.txt: its lines end in a lone carriage return"),
        ("sst2", b"1\n0\n", b"1\n\xff\n", "gold.txt:2: not UTF-8 text (invalid start byte)"),
        (
            "sst2",
            b'{"label": ' + b"[" * 50_000 + b"]" * 50_000 + b"}\n",
            b"1\n",
            "pred.txt:1: not readable JSON: nested too deeply",
        ),
        (
            "cluener",
            b'{"text": "ab", "label": ' + b"[" * 50_000 + b"]" * 50_000 + b"}\n",
            b"O O\n",
            "pred.txt:1: not readable JSON: nested too deeply",
        ),
        (
            "cluener",
            b'{"text": "ab", "label": {"name": {"ab": null}}}\n',
            b"O O\n",
            'pred.txt:1: "label" must be {type: {mention: [[start, end], ...]}}',
        ),
        (
            "cluener",
            b'{"text": "ab", "entities": [{"type": "name", "start": true, "end": 2}]}\n',
            b"O O\n",
            'pred.txt:1: "entities" must be a list of {"type", "start", "end"}',
        ),
    ],
)
def test_hostile_predictions_and_gold_are_one_line(
    tmp_path, capsys, task, predicted, gold, message
):
    (tmp_path / "pred.txt").write_bytes(predicted)
    (tmp_path / "gold.txt").write_bytes(gold)
    report = tmp_path / "report.json"
    argv_ = argv(task, tmp_path / "pred.txt", tmp_path / "gold.txt", "--output", str(report))
    assert main(argv_) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and message in errors[0], errors
    assert not report.exists()


def test_a_path_that_is_not_a_regular_file_says_what_it_is(tmp_path, capsys):
    gold = tmp_path / "gold.txt"
    gold.write_text("1\n0\n")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # a reader that opened it would wait for a writer forever
    for path, what in [(fifo, "is a FIFO (named pipe)"), (tmp_path, "is a directory")]:
        for args in (argv("sst2", path, gold), argv("sst2", gold, gold, "--labels", str(path))):
            assert main(args) == 1
            err = capsys.readouterr().err
            assert f"tinybert-eval: error: {path}: {what}, not a regular file\n" in err


def test_output_to_a_closed_pipe_ends_quietly(tmp_path, shared_data):
    gold = shared_data / "cluener" / "dev.json"
    read_end, write_end = os.pipe()
    os.close(read_end)  # `tinybert-eval score ... | head` once head has exited
    try:
        done = subprocess.run(
            [sys.executable, "-m", "tinybert_eval.cli", *argv("cluener", gold, gold)],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
        )
    finally:
        os.close(write_end)
    assert done.returncode == CLOSED_PIPE_STATUS
    assert "Error" not in done.stderr and "error" not in done.stderr, done.stderr

"""Issue 14: byte-order marks, the report's file mode, and report paths that cannot be written
(one line, exit 1, nothing left behind)."""

import json
import os
import resource
import signal
import stat
import subprocess
import sys

import pytest

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

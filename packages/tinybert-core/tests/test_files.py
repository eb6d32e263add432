"""Atomic writes: all or nothing under the final name, the mode of any new file, no debris,
and the temporaries of killed writers cleaned up by the next write."""

import errno
import os
import socket
import subprocess
import sys

import pytest

from tinybert_core import atomic_path, atomic_write, remove_stale_temporaries, temporary_folder


def mode(path) -> int:
    return os.stat(path).st_mode & 0o777


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_a_written_file_has_the_mode_the_umask_gives(tmp_path, umask, mask, expected):
    umask(mask)
    written = atomic_write(tmp_path / "report.json", "{}\n")
    assert written.read_text() == "{}\n" and mode(written) == expected
    assert os.listdir(tmp_path) == ["report.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "model.onnx"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        temporary.write_bytes(b"half")
        # a writer that makes files of its own from the name (MindSpore: <temporary>.tmp)
        temporary.with_name(temporary.name + ".tmp").write_bytes(b"half")
        raise RuntimeError("the writer failed")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["model.onnx"]


def test_the_temporary_keeps_the_suffix_writers_need(tmp_path):
    with atomic_path(tmp_path / "student.mindir") as temporary:
        assert temporary.parent == tmp_path and temporary.name.startswith(".student.mindir.")
        assert temporary.suffix == ".mindir"
        temporary.write_bytes(b"graph")
    with atomic_path(tmp_path / "m", suffix=".ckpt") as temporary:
        assert temporary.suffix == ".ckpt"
        temporary.write_bytes(b"weights")
    assert sorted(os.listdir(tmp_path)) == ["m", "student.mindir"]


def test_an_error_about_the_temporary_names_the_final_path(tmp_path):
    target = tmp_path / "report.json"
    with pytest.raises(OSError) as caught, atomic_path(target) as temporary:
        raise OSError(errno.ENOSPC, "No space left on device", str(temporary))
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    with pytest.raises(OSError) as caught, atomic_path(target):
        raise OSError(errno.ENOSPC, "No space left on device")  # names no file
    assert caught.value.filename == str(target)
    assert os.listdir(tmp_path) == []


def test_a_write_into_a_missing_folder_creates_it(tmp_path):
    assert atomic_write(tmp_path / "a" / "b" / "x.txt", b"\x00\x01").read_bytes() == b"\x00\x01"


def test_a_write_removes_only_the_temporaries_of_killed_writers(tmp_path):
    host, dead, alive = socket.gethostname(), dead_pid(), os.getpid()
    killed = [
        tmp_path / f".best.ckpt.tinybert-{host}-{dead}-x1y2z3ab.tmp.ckpt",
        tmp_path / f".best.ckpt.tinybert-{host}-{dead}-x1y2z3ab.tmp.tmp",
    ]
    running = [tmp_path / f".last.ckpt.tinybert-{host}-{alive}-a1b2c3d4.tmp.ckpt"]
    not_ours = [tmp_path / ".notes.txt.tmp", tmp_path / "keep.ckpt.tmp"]
    for path in killed + running + not_ours:
        path.write_bytes(b"partial")
    killed_folder = tmp_path / f".tinybert-data-{host}-{dead}-abcd1234"
    running_folder = tmp_path / f".tinybert-data-{host}-{alive}-efgh5678"
    other_folder = tmp_path / ".cache"
    for folder in (killed_folder, running_folder, other_folder):
        folder.mkdir()
        (folder / "train.tfrecord").write_bytes(b"x")
    atomic_write(tmp_path / "summary.json", "{}")
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {p.name for p in running + not_ours} | {
        running_folder.name,
        other_folder.name,
        "summary.json",
    }


def test_temporaries_whose_writer_cannot_be_checked_go_once_untouched_for_an_hour(tmp_path):
    older_file = tmp_path / ".gd.ckpt.k2j4h5g6.tmp.ckpt"  # before the writer was in the name
    other_host = tmp_path / ".gd.ckpt.tinybert-elsewhere-12-k2j4h5g6.tmp.ckpt"
    older_folder = tmp_path / ".tinybert-data-k2j4h5g6"
    older_folder.mkdir()
    (older_folder / "train.tfrecord").write_bytes(b"x")
    for path in (older_file, other_host):
        path.write_bytes(b"partial")
    assert remove_stale_temporaries(tmp_path) == []
    for path in (older_folder / "train.tfrecord", older_folder, older_file, other_host):
        two_hours_ago = path.stat().st_mtime - 7200
        os.utime(path, (two_hours_ago, two_hours_ago))
    removed = remove_stale_temporaries(tmp_path)
    assert sorted(removed) == sorted([older_file, other_host, older_folder])
    assert os.listdir(tmp_path) == []


def test_a_temporary_folder_names_its_writer(tmp_path):
    folder = temporary_folder(tmp_path)
    assert folder.is_dir() and folder.parent == tmp_path
    assert folder.name.startswith(f".tinybert-data-{socket.gethostname()}-{os.getpid()}-")
    assert remove_stale_temporaries(tmp_path) == []  # its writer runs

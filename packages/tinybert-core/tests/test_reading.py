"""Reading what users hand over: what a path is, text that is not UTF-8, JSON that is not an
object or too deep to parse, file names from a file that lead elsewhere; each one line naming
the file."""

import os
import socket

import pytest

from tinybert_core import DataError, folder_file, json_object, read_text, regular_file


def test_a_path_that_is_not_a_regular_file_says_what_it_is(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "sock"))
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    cases = {
        tmp_path / "missing.tsv": "file not found",
        tmp_path / "dangling": "file not found (a symbolic link to a missing file)",
        tmp_path: "is a directory, not a regular file",
        fifo: "is a FIFO (named pipe), not a regular file",  # would block a reader
        tmp_path / "sock": "is a socket, not a regular file",
        "/dev/null": "is a character device, not a regular file",
    }
    for path, message in cases.items():
        with pytest.raises(DataError) as caught:
            read_text(path)
        assert str(caught.value) == f"{path}: {message}"
    server.close()
    (tmp_path / "file.txt").write_text("x")
    assert regular_file(tmp_path / "file.txt") == tmp_path / "file.txt"


def test_text_that_is_not_utf8_names_the_file_and_line(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_bytes(b"[PAD]\n[UNK]\n\xff\xfe\n")
    with pytest.raises(DataError, match=rf"^{vocab}:3: not UTF-8 text \(invalid start byte\)$"):
        read_text(vocab)
    vocab.write_bytes(b"\xef\xbb\xbf[PAD]\r\n[UNK]\n")
    assert read_text(vocab) == "[PAD]\r\n[UNK]\n"  # the byte-order mark is not text
    vocab.write_bytes(b"[PAD]\r[UNK]\r")
    with pytest.raises(DataError, match="lines end in a lone carriage return"):
        read_text(vocab)


@pytest.mark.parametrize(
    "text, line, message",
    [
        ('{"a": [}', 4, "data.json:4: not valid JSON (Expecting value at column 8)"),
        ('{"a": 1,\n "b": }', None, "data.json:2: not valid JSON (Expecting value at column 7)"),
        ("[" * 100_000 + "]" * 100_000, 2, "data.json:2: not readable JSON: nested too deeply"),
        ('{"text": ' + "[" * 5000 + "]" * 5000 + "}", 1, "data.json:1: not readable JSON"),
        ('{"n": ' + "9" * 5000 + "}", 1, "data.json:1: not readable JSON (Exceeds the limit"),
        ('["a"]', 7, "data.json:7: expected a JSON object, found list"),
        ('"text"', None, "data.json: expected a JSON object, found str"),
    ],
)
def test_json_that_is_not_a_readable_object_is_one_line(text, line, message):
    with pytest.raises(DataError) as caught:
        json_object(text, "data.json", line)
    assert str(caught.value).startswith(message)


def test_a_file_name_from_a_file_must_stay_in_its_folder(tmp_path):
    assert folder_file(tmp_path, "train.tfrecord", "task.json") == tmp_path / "train.tfrecord"
    for entry in ["../x", "/etc/passwd", "..", "a/b", None, 3, "a\0b"]:
        with pytest.raises(DataError, match="^task.json: lists .* not a file name in its folder"):
            folder_file(tmp_path, entry, "task.json")

"""text_lines splits where tinybert-data's readers split a file, not where str.splitlines() does."""

import pytest

from tinybert_core import DataError, check_line_ends, text_lines


def test_only_newline_ends_a_line():
    text = "a\u2028b\tpos\nc\x85d\x0ce\rf\tneg\n"
    assert text.splitlines() != text_lines(text)  # what the function is for
    assert text_lines(text) == ["a\u2028b\tpos", "c\x85d\x0ce\rf\tneg"]


def test_windows_line_ends_and_the_last_line():
    assert text_lines("x\r\ny\r\n") == ["x", "y"]
    assert text_lines("x\ny") == ["x", "y"]  # no newline after the last line
    assert text_lines("x\n\n") == ["x", ""]  # a blank line is a line
    assert text_lines("") == []


def test_lone_carriage_returns_as_line_ends_are_refused_naming_the_file():
    for start in ("a\tpos\rb\tneg\r", b"a\tpos\rb\tneg\r", "[PAD]\r[UNK]"):
        with pytest.raises(DataError, match=r"^mac.tsv: its lines end in a lone carriage return"):
            check_line_ends("mac.tsv", start)
    # A "\r" inside a line of a file with "\n" line ends stays text; so does a lone final "\r".
    for start in ("a\rb\tpos\n", b"x\r\n", "one line\r", "", b"no line end"):
        check_line_ends("ok.tsv", start)

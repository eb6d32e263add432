"""text_lines splits where tinybert-data's readers split a file, not where str.splitlines() does."""

from tinybert_core import text_lines


def test_only_newline_ends_a_line():
    text = "a\u2028b\tpos\nc\x85d\x0ce\rf\tneg\n"
    assert text.splitlines() != text_lines(text)  # what the function is for
    assert text_lines(text) == ["a\u2028b\tpos", "c\x85d\x0ce\rf\tneg"]


def test_windows_line_ends_and_the_last_line():
    assert text_lines("x\r\ny\r\n") == ["x", "y"]
    assert text_lines("x\ny") == ["x", "y"]  # no newline after the last line
    assert text_lines("x\n\n") == ["x", ""]  # a blank line is a line
    assert text_lines("") == []

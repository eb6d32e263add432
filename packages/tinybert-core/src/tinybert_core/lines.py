"""How every tinybert package splits a text file into lines."""

from __future__ import annotations

from .errors import DataError


def text_lines(text: str) -> list[str]:
    """The lines of a text file's contents: only "\\n" ends a line, and the "\\r" of a "\\r\\n"
    is dropped. str.splitlines() also breaks at U+2028, U+0085, form feeds and lone "\\r";
    those can sit inside a TSV field (bert-base-chinese's vocabulary holds U+2028), where a
    break would split one row in two and shift every line number after it. The newline ending
    the last line does not start another."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def check_line_ends(path, start: str | bytes) -> None:
    """Refuse a file whose lines end in a lone "\\r" (classic Mac OS), which would otherwise
    read as one line (an empty file, a header only, a one-token vocabulary). `start` is the
    file's first line as read, with its "\\n", or the whole text: with no "\\n" anywhere, a
    "\\r" followed by more text can only be a line end."""
    cr, lf = ("\r", "\n") if isinstance(start, str) else (b"\r", b"\n")
    if lf not in start and cr in start.rstrip(cr):
        raise DataError(
            path,
            None,
            "its lines end in a lone carriage return (\\r, classic Mac OS); only \\n or \\r\\n "
            "end a line: convert the file (e.g. tr '\\r' '\\n')",
        )

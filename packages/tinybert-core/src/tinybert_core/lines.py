"""How every tinybert package splits a text file into lines."""

from __future__ import annotations


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

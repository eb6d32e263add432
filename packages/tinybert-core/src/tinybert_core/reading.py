"""Reading what users hand over: every failure is one DataError that names the file (and the
line) and says what is wrong, never a traceback, a message naming no file, or "not found" said
of something that is there.

A file that lists other files (a records folder's task.json) may have been left by anyone, so
a name read from it must be a file of its own folder (`folder_file`): readers open those names
and a rerun deletes them.
"""

from __future__ import annotations

import json
import os
import reprlib
import stat
from pathlib import Path

from .errors import DataError
from .lines import check_line_ends

# Names in messages: whole, unless absurdly long.
_NAME = reprlib.Repr()
_NAME.maxstring = _NAME.maxother = 300

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def regular_file(path) -> Path:
    """`path`, if it is a regular file (or a link to one); otherwise DataError saying what it
    is. Readers need one: a FIFO blocks them or can be read only once (tinybert-data reads a
    task file twice, counting its lines first), a device never ends."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        dangling = " (a symbolic link to a missing file)" if path.is_symlink() else ""
        raise DataError(path, None, f"file not found{dangling}") from None
    except OSError as error:
        raise DataError(path, None, f"cannot be read ({error.strerror})") from None
    if stat.S_ISREG(mode):
        return path
    kind = next((name for is_kind, name in _KINDS if is_kind(mode)), "not a file")
    raise DataError(path, None, f"is {kind}, not a regular file")


def read_text(path) -> str:
    """The text of a UTF-8 file, without a byte-order mark at its start. DataError naming the
    file when it is not a regular file or cannot be read, naming the line when it is not
    UTF-8, and when its lines end in a lone "\\r" (`check_line_ends`)."""
    try:
        data = regular_file(path).read_bytes()
    except OSError as error:
        raise DataError(path, None, f"cannot be read ({error.strerror})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise DataError(path, line, f"not UTF-8 text ({error.reason})") from None
    check_line_ends(path, text)
    return text


def json_object(text: str, path, line: int | None = None) -> dict:
    """`text` (a whole file, or line `line` of a JSON-lines file) as a JSON object. DataError
    naming the file and line when it is not JSON, is nested too deeply for the parser (which
    would raise RecursionError), or holds another value than an object."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        at = error.lineno if line is None else line
        raise DataError(path, at, f"not valid JSON ({error.msg} at column {error.colno})") from None
    except RecursionError:
        raise DataError(path, line, "not readable JSON: nested too deeply") from None
    except ValueError as error:  # an integer of more digits than Python converts (4300)
        raise DataError(path, line, f"not readable JSON ({error})") from None
    if not isinstance(value, dict):
        raise DataError(path, line, f"expected a JSON object, found {type(value).__name__}")
    return value


def folder_file(folder, name, listed_in) -> Path:
    """`folder / name`, for a file name read from the file `listed_in`. DataError naming
    `listed_in` and the entry unless `name` is a plain file name of `folder`: a string without
    a path separator, not "." or "..", and not a symbolic link that leads out of the folder."""
    folder = Path(folder)
    if not isinstance(name, str) or name in ("", ".", "..") or set(name) & set("/\\\0"):
        raise DataError(
            listed_in,
            None,
            f"lists {_NAME.repr(name)}, which is not a file name in its folder "
            "(a path elsewhere is refused)",
        )
    path = folder / name
    target, root = os.path.realpath(path), os.path.realpath(folder)
    if path.is_symlink() and os.path.commonpath([target, root]) != root:
        raise DataError(
            listed_in,
            None,
            f"lists {name!r}, a symbolic link leading out of its folder (to {target})",
        )
    return path

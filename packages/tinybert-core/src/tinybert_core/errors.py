"""The error classes every package's own errors derive from.

Console scripts catch `TinybertError`, print its message on one line and exit with 1: no stack
trace. So a message says which file (and line, or tensor) is wrong and how.
"""

from __future__ import annotations


class TinybertError(ValueError):
    """Bad input a user can fix: a file, a setting, a model that cannot be used as asked."""


class DataError(TinybertError):
    """Input data that is missing, malformed or does not fit, in one of two forms:
    `DataError(path, line, message)` reads `path:line: message` (line None: the whole file)
    and keeps `.path`, `.line`, `.message`; `DataError(message)` takes a message that names
    its file itself."""

    def __init__(self, path, line: int | None = None, message: str | None = None):
        if message is None and line is None:  # the one-argument form
            path, message = None, str(path)
        self.path = None if path is None else str(path)
        self.line = line
        self.message = message
        if self.path is None:
            super().__init__(message)
        else:
            where = self.path if line is None else f"{self.path}:{line}"
            super().__init__(f"{where}: {message}")


class UnknownTaskError(TinybertError, KeyError):
    """A task name that is not in the table; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError would print the message quoted, as a repr
        return str(self.args[0])

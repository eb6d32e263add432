"""Errors that name the file, and where it applies the line, of what is wrong."""

from __future__ import annotations


class DataError(ValueError):
    """A bad input row: `path:line: what is wrong`."""

    def __init__(self, path, line: int | None, message: str):
        self.path = str(path)
        self.line = line
        self.message = message
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {message}")


class RecordsError(ValueError):
    """Record files that are missing, corrupt, or disagree with their schema."""


class UnknownTaskError(KeyError):
    """A task name that is not in the registry; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError would print the message quoted, as a repr
        return str(self.args[0])

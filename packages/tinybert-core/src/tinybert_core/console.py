"""What every tinybert console script shares."""

from __future__ import annotations

import contextlib
import functools
import os
import sys

# The status a shell reports for a program ended by SIGPIPE (13) (`cat big | head`); a number,
# as Windows has no signal.SIGPIPE.
CLOSED_PIPE_STATUS = 128 + 13


def quiet_on_closed_stdout(main):
    """Decorate a console script's `main` to end quietly when the reader of its standard output
    goes away (`tinybert-data inspect DIR | head`, `--help | head`), with the status the shell
    gives `cat` there, instead of a BrokenPipeError traceback or error line. Python ignores
    SIGPIPE, so the write fails; `main` must let BrokenPipeError through its own handlers."""

    @functools.wraps(main)
    def run(*args, **kwargs):
        try:
            try:
                return main(*args, **kwargs)
            finally:
                sys.stdout.flush()  # the last buffered output fails here, not at exit
        except BrokenPipeError:
            # Point stdout at /dev/null so that the interpreter's own flush at exit stays quiet
            # (unless stdout was replaced by an object without a descriptor).
            with contextlib.suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return CLOSED_PIPE_STATUS

    return run

"""A console script whose reader goes away ends as `cat` does, with nothing on stderr."""

import os
import subprocess
import sys
import textwrap

from tinybert_core import CLOSED_PIPE_STATUS

SCRIPT = textwrap.dedent(
    """
    import argparse, sys
    from tinybert_core import quiet_on_closed_stdout

    @quiet_on_closed_stdout
    def main(argv):
        parser = argparse.ArgumentParser(description="rows")
        args = parser.parse_args(argv)  # --help prints and exits here
        for i in range(100_000):
            print(f"row {i}")
        return 0

    sys.exit(main(sys.argv[1:]))
    """
)


def run(*args, buffered=True, **streams) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("PYTHONUNBUFFERED", None)
    if not buffered:
        env["PYTHONUNBUFFERED"] = "1"
    command = [sys.executable, "-c", SCRIPT, *args]
    return subprocess.run(command, stderr=subprocess.PIPE, text=True, env=env, **streams)


def test_output_to_a_closed_pipe_ends_quietly():
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has gone: every write fails with EPIPE
    try:
        for buffered in (True, False):
            done = run(buffered=buffered, stdout=write_end)
            assert (done.returncode, done.stderr) == (CLOSED_PIPE_STATUS, "")
        # --help: argparse ignores a failed write itself; what stays buffered fails at exit
        done = run("--help", stdout=write_end)
        assert (done.returncode, done.stderr) == (CLOSED_PIPE_STATUS, "")
    finally:
        os.close(write_end)


def test_output_to_an_open_pipe_is_whole():
    done = run(stdout=subprocess.PIPE)
    assert done.returncode == 0 and done.stdout.count("\n") == 100_000

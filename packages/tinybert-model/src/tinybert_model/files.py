"""Atomic file writing: a failed run leaves nothing under the final name, and no debris.

A file is written under a hidden temporary name beside its final one and renamed when
complete. The temporary name records the writer, `.<name>.tinybert-<host>-<pid>-<random>.tmp`,
so that a later write into the same folder can tell a temporary whose writer was killed
(kill -9, a power cut: no clean-up ran) from one being written, and remove it. Final files get
the mode every other tool gives a new file, 0666 minus the umask (MindSpore makes its
checkpoints 0400, tempfile 0600).
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import tempfile
import time
from pathlib import Path

# Temporaries of this module, of any final name: the writer's host and pid are in the name.
_OURS = re.compile(r"\..+\.tinybert-(?P<host>.+)-(?P<pid>\d+)-[a-z0-9_]+\.tmp(\..+)?")
# Checkpoint temporaries of versions before the writer was in the name (and MindSpore's own
# `.tmp` beside them); they are stale once untouched for STALE_AFTER_SECONDS.
_OLDER = re.compile(r"\..+\.ckpt\.[a-z0-9_]{8}\.tmp\.(ckpt|tmp)")
STALE_AFTER_SECONDS = 3600


@contextlib.contextmanager
def atomic_path(path, suffix: str = ""):
    """Yield a temporary path beside `path`; rename it to `path` if the block succeeds.

    `suffix` is kept on the temporary name for writers that insist on an extension
    (MindSpore appends ".ckpt" to names that lack it). Stale temporaries of killed writers in
    the folder are removed first. On failure every file the writer made under the temporary
    name (MindSpore writes its own `<temporary>.tmp` first) is removed, and an OSError that
    names no file (`[Errno 28] No space left on device`) is raised again naming `path`.
    """
    path = Path(path)
    prefix = temporary_prefix(path)
    with _naming(path, prefix):
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path.parent)
        handle, temporary = tempfile.mkstemp(prefix=prefix, suffix=".tmp" + suffix, dir=path.parent)
        os.close(handle)
    stem = Path(temporary.removesuffix(".tmp" + suffix)).name  # every name made from it is ours
    try:
        with _naming(path, prefix):
            yield temporary
            os.chmod(temporary, new_file_mode())
            os.replace(temporary, path)
    finally:
        for leftover in path.parent.glob(stem + ".*"):
            leftover.unlink(missing_ok=True)


def temporary_prefix(path) -> str:
    """How the names of this process's temporaries for `path` begin (a random part and
    `.tmp` follow): `.<name>.tinybert-<host>-<pid>-`."""
    return f".{Path(path).name}.tinybert-{socket.gethostname()}-{os.getpid()}-"


@contextlib.contextmanager
def _naming(path: Path, temporary_prefix: str):
    """Raise an OSError that names no file, or a temporary, again naming `path`."""
    try:
        yield
    except OSError as error:
        if error.filename is None or Path(error.filename).name.startswith(temporary_prefix):
            raise OSError(error.errno, error.strerror, str(path)) from None
        raise


def new_file_mode() -> int:
    """0666 minus the process umask: the mode `open()` gives a new file."""
    try:  # race-free on Linux
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def remove_stale_temporaries(folder) -> list[Path]:
    """Remove the temporaries that killed writers left in `folder`; returns what was removed.

    A temporary is stale when its writer (host and pid in its name) no longer runs on this
    host, or, when that cannot be checked here (another host, an older name), when it has not
    changed for STALE_AFTER_SECONDS.
    """
    removed = []
    for candidate in Path(folder).glob(".*.tmp*"):
        ours = _OURS.fullmatch(candidate.name)
        if ours and ours["host"] == socket.gethostname():
            stale = not _process_alive(int(ours["pid"]))
        elif ours or _OLDER.fullmatch(candidate.name):
            stale = time.time() - _modified(candidate) > STALE_AFTER_SECONDS
        else:
            continue  # not ours
        if stale and candidate.is_file():
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _modified(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:  # removed meanwhile
        return time.time()

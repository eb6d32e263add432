"""Atomic writing: a failed run leaves nothing under the final name, and no debris.

A file is written under a hidden temporary name beside its final one and renamed into place
when complete (`atomic_path`, `atomic_write`); tinybert-data fills a hidden temporary folder
(`temporary_folder`) and moves its files out. Each temporary's name records its writer,

    .<final name>.tinybert-<host>-<pid>-<random>.tmp[<suffix>]     a file
    .tinybert-data-<host>-<pid>-<random>                           a records folder

so that a later write into the same folder can tell the temporary of a writer that was killed
(kill -9, a power cut: no clean-up ran) from one being written, and remove it
(`remove_stale_temporaries`). Final files get the mode any new file gets, 0666 minus the
umask (tempfile's are 0600, MindSpore's checkpoints 0400).
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

FOLDER_PREFIX = ".tinybert-data-"
# A temporary whose writer cannot be checked here (another host, a name from a version that
# did not record it) is stale once nothing in it has changed for this long: a live writer
# writes all the time.
STALE_AFTER_SECONDS = 3600

_WRITER = r"(?P<host>.+)-(?P<pid>\d+)-[a-z0-9_]+"
_TEMPORARY_FILE = re.compile(r"\..+\.tinybert-" + _WRITER + r"\.tmp(\..+)?")
_TEMPORARY_FOLDER = re.compile(re.escape(FOLDER_PREFIX) + _WRITER)
# Names of versions that did not record the writer: checkpoint temporaries (with MindSpore's
# own `.tmp` beside them) and records folders.
_OLDER_FILE = re.compile(r"\..+\.ckpt\.[a-z0-9_]{8}\.tmp\.(ckpt|tmp)")
_OLDER_FOLDER = re.compile(re.escape(FOLDER_PREFIX) + r".+")


@contextlib.contextmanager
def atomic_path(path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write; it becomes `path` if the block succeeds.

    The temporary's name ends with `suffix` (default: the suffix of `path`), for writers that
    insist on an extension (MindSpore appends ".ckpt" to names that lack it). Stale
    temporaries of killed writers in the folder are removed first. On failure every file the
    writer made from the temporary's name (MindSpore writes its own `<temporary>.tmp` first)
    is removed, and an OSError that names no file (`[Errno 28] No space left on device`), or
    the temporary, is raised again naming `path`.
    """
    path = Path(path)
    suffix = path.suffix if suffix is None else suffix
    prefix = temporary_prefix(path)
    with _naming(path, prefix):
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path.parent)
        handle, temporary = tempfile.mkstemp(prefix=prefix, suffix=".tmp" + suffix, dir=path.parent)
        os.close(handle)
    stem = Path(temporary[: -len(".tmp" + suffix)]).name  # every name made from it is ours
    try:
        with _naming(path, prefix):
            yield Path(temporary)
            os.chmod(temporary, new_file_mode())
            os.replace(temporary, path)
    finally:
        for leftover in path.parent.glob(glob.escape(stem) + ".*"):
            leftover.unlink(missing_ok=True)


def atomic_write(path, content: str | bytes) -> Path:
    """Write `content` (text as UTF-8) to `path` atomically (see `atomic_path`)."""
    with atomic_path(path) as temporary:
        if isinstance(content, bytes):
            temporary.write_bytes(content)
        else:
            temporary.write_text(content, encoding="utf-8")
    return Path(path)


def temporary_prefix(path) -> str:
    """How the names of this process's temporaries for `path` begin (a random part and
    `.tmp` follow): `.<name>.tinybert-<host>-<pid>-`."""
    return f".{Path(path).name}.tinybert-{socket.gethostname()}-{os.getpid()}-"


def temporary_folder(directory) -> Path:
    """A new hidden folder in `directory` named after this writer, for files that are moved
    out of it when complete; the caller removes it."""
    prefix = f"{FOLDER_PREFIX}{socket.gethostname()}-{os.getpid()}-"
    return Path(tempfile.mkdtemp(prefix=prefix, dir=directory))


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
    """Remove the temporary files and folders that killed writers left in `folder`; returns
    what was removed.

    A temporary is stale when its writer (host and pid in its name) no longer runs on this
    host, or, when that cannot be checked here (another host, an older name), when nothing in
    it has changed for STALE_AFTER_SECONDS. Files and folders of other names are left alone.
    """
    removed = []
    for candidate in Path(folder).glob(".*"):
        is_folder = candidate.is_dir()
        ours = (_TEMPORARY_FOLDER if is_folder else _TEMPORARY_FILE).fullmatch(candidate.name)
        older = (_OLDER_FOLDER if is_folder else _OLDER_FILE).fullmatch(candidate.name)
        if ours and ours["host"] == socket.gethostname():
            stale = not _process_alive(int(ours["pid"]))
        elif ours or older:
            stale = time.time() - _last_change(candidate) > STALE_AFTER_SECONDS
        else:
            continue  # not ours
        if stale:
            if is_folder:
                shutil.rmtree(candidate, ignore_errors=True)
            else:
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


def _last_change(path: Path) -> float:
    """The latest modification time of a file, or of a folder and anything directly in it."""
    try:
        times = [path.stat().st_mtime]
        if path.is_dir():
            for item in path.iterdir():
                with contextlib.suppress(FileNotFoundError):  # removed meanwhile
                    times.append(item.stat().st_mtime)
    except FileNotFoundError:  # removed meanwhile
        return time.time()
    return max(times)

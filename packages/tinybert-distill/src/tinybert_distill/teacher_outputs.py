"""Teacher logits computed once: phase 2 of task distillation learns from them.

The frozen teacher gives the same logits for a row every time it sees it, so phase 2 runs it
once per row, in inference mode and length-bucketed batches, and keeps the result beside the
run as `teacher_logits.npz`: the logits of every row (per token for tagging), which rows are
done, and fingerprints of the records and of the teacher checkpoint they came from. Phase 2
then runs the student alone. A resumed run reuses the file; one whose records or teacher
changed is refused, because its phase 2 would learn from another teacher.

Phase 1 runs the same frozen teacher, in inference mode, on the same rows: `PhaseLogits`
keeps the logits it computes on the way, and phase 2's pass only computes the rows phase 1
did not see (the rows an epoch's last partial batch drops, or those before a resume). A run
of phase 1 alone (`td_phase2_epoch_size 0`) writes them beside its td_phase1.ckpt, and a
phase-2 run started from that checkpoint (`load_td1_ckpt_path`) begins from that file.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
from mindspore import nn

from tinybert_core import TEXT_COLUMNS, DataError, atomic_path

from .data import Dataset
from .evaluation import predict

log = logging.getLogger("tinybert_distill")

CACHE_FILE = "teacher_logits.npz"


def records_fingerprint(data: Dataset) -> str:
    """sha256 of the columns the teacher reads, over every row."""
    digest = hashlib.sha256()
    for array in data.inputs(np.arange(data.num_rows), TEXT_COLUMNS):
        digest.update(np.ascontiguousarray(array, dtype=np.int32).tobytes())
    return digest.hexdigest()


def file_fingerprint(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class PhaseLogits:
    """The teacher logits of the rows a phase trained on, by row: a `Phase.keep_outputs`
    for a loss network built with `keep_teacher_logits=True`."""

    def __init__(self, num_rows: int, seq_length: int):
        self.num_rows, self.seq_length = num_rows, seq_length
        self.logits = None
        self.done = np.zeros(num_rows, dtype=bool)

    def __call__(self, rows: np.ndarray, extras: list) -> None:
        (logits,) = extras
        if self.logits is None:
            # per-token logits are kept at seq_length, 0 beyond the batch's bucket (as predict)
            shape = (self.seq_length, *logits.shape[2:]) if logits.ndim == 3 else logits.shape[1:]
            self.logits = np.zeros((self.num_rows, *shape), np.float32)
        self.logits[rows, : logits.shape[1]] = logits
        self.done[rows] = True


def teacher_logits(
    build_teacher: Callable[[], nn.Cell],
    teacher_path,
    data: Dataset,
    rows,
    cache: Path,
    batch_size: int = 32,
    length_buckets: bool = True,
    write: bool = True,
    known: PhaseLogits | None = None,
    earlier: Path | None = None,
) -> np.ndarray:
    """The teacher's logits for every row of `data` (rows not in `rows` may be left at 0).
    `build_teacher()` gives the teacher, called only when a row has to be computed.

    Reads `cache` if it exists (refusing one made from other records or another teacher);
    without it, starts from `earlier` (the file a phase-1 run wrote beside td_phase1.ckpt) if
    that was made from the same records and teacher. Takes the rows it still lacks from `known`
    (phase 1's of this run), computes the rest of `rows`, and rewrites `cache` atomically when
    `write` (worker 0).
    """
    source = {
        "records": str(data.path),
        "records_sha256": records_fingerprint(data),
        "teacher": str(teacher_path),
        "teacher_sha256": file_fingerprint(teacher_path),
    }
    logits, done = None, np.zeros(data.num_rows, dtype=bool)
    wanted = np.unique(np.asarray(rows, dtype=np.int64))
    added = 0
    if cache.is_file():
        logits, done = _read(cache, source, data.num_rows)
    elif earlier is not None and earlier.is_file():
        try:
            logits, done = _read(earlier, source, data.num_rows)
            added = int(done[wanted].sum())
            log.info("teacher logits: %d rows from %s", added, earlier)
        except DataError as error:  # another teacher or records: a fresh start, not an error
            log.info("teacher logits: not reusing %s (%s)", earlier, error)
    missing = wanted[~done[wanted]]
    if known is not None and known.done[missing].any():
        handed = missing[known.done[missing]]
        log.info("teacher logits: %d rows from phase 1", len(handed))
        if logits is None:
            logits = np.zeros_like(known.logits)
        logits[handed] = known.logits[handed]
        done[handed] = True
        missing, added = missing[~known.done[missing]], len(handed)
    if len(missing):
        log.info(
            "teacher logits: computing %d rows (%d cached) into %s",
            len(missing),
            int(done.sum()),
            cache,
        )
        new = predict(build_teacher(), data, missing, batch_size, length_buckets)
        if logits is None:
            logits = np.zeros((data.num_rows, *new.shape[1:]), np.float32)
        logits[missing] = new
        done[missing] = True
        added += len(missing)
    if not added:
        log.info("teacher logits: all %d rows from %s", len(wanted), cache)
    elif write:
        _write(cache, logits, done, source)
    return logits


def _read(cache: Path, source: dict, num_rows: int) -> tuple:
    try:
        with np.load(cache) as stored:
            logits, done = stored["logits"], stored["done"]
            made_from = json.loads(str(stored["source"]))
    except (OSError, ValueError, KeyError) as error:
        raise DataError(f"{cache}: not a teacher-logits file ({error}); delete it") from None
    for key, what in (("records_sha256", "records"), ("teacher_sha256", "teacher")):
        if made_from.get(key) != source[key]:
            raise DataError(
                f"{cache}: computed from another {what} ({made_from.get(what)}), not "
                f"{source[what]}; delete it or use another save_ckpt_path"
            )
    if len(done) != num_rows:
        raise DataError(f"{cache}: holds {len(done)} rows, the records {num_rows}; delete it")
    return logits, done


def _write(cache: Path, logits: np.ndarray, done: np.ndarray, source: dict) -> None:
    """Write atomically (tinybert-core's atomic_path): a killed run leaves the old file or none."""
    with atomic_path(cache) as temporary, open(temporary, "wb") as handle:
        np.savez(handle, logits=logits, done=done, source=np.array(json.dumps(source)))

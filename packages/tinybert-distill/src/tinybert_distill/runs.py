"""Which run an output folder's state belongs to, and the checks at the start of a run.

A run is identified by everything that decides its result: every config key except the few
that only change how often it logs, evaluates or saves (`free` in config.KEYS), the number of
workers (it sets the global batch), and the contents of its inputs (records, teacher and
student checkpoints). Every resumable checkpoint carries this identity in its trainer state,
so a run resumes, rotates and deletes only its own checkpoints.

`prepare_output`, called first (the config's values checked already, config.validate),
writes nothing: it refuses
- an output path that is a file or cannot be written;
- a fresh run into a folder that holds an earlier run's checkpoints, models or metrics,
  unless `overwrite` (which deletes them once the run starts);
- `resume` when the saved run's settings differ, naming the keys that do, or when an earlier
  version of tinybert-distill wrote its checkpoints (`--overwrite` starts afresh).
`start_output`, called by a command once its inputs are read and checked, is the first write:
the folder, the `--overwrite` deletions, config.yaml and log.txt. A refused run leaves nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import NamedTuple

import mindspore as ms
import yaml

from tinybert_core import TinybertError

from .config import get, key_of, key_paths
from .data import BUCKET_LENGTHS

log = logging.getLogger("tinybert_distill")

TRAINER_STATE = "trainer_state"  # the checkpoint entry holding the loop's state (JSON)
LOG_TXT = "written_to_log_txt"  # marks log records the trainer already put in log.txt

INPUT_FOLDERS = ("data_dir", "train_data_dir", "eval_data_dir", "schema_dir")

# What a training run writes besides log.txt and config.yaml (which a run that failed at
# the start leaves too, and a rerun may replace).
OUTPUTS = (
    "gd.ckpt",
    "td_phase1.ckpt",
    "td_phase2.ckpt",
    "best.ckpt",
    "last.ckpt",
    "metrics.jsonl",
    "summary.json",
)
CHECKPOINT_NAME = re.compile(r"^(?P<phase>.+)_step(?P<step>\d+)\.ckpt$")


class RunError(TinybertError):
    """An output folder this run cannot use as asked."""


class SavedCheckpoint(NamedTuple):
    phase: str
    step: int
    path: Path


# ---- identity ----------------------------------------------------------------------------


def is_input(path: str) -> bool:
    """Config keys naming files or folders the run reads: their contents count, not the path."""
    leaf = path.split(".")[-1]
    return leaf in INPUT_FOLDERS or (leaf.startswith("load_") and leaf.endswith("_ckpt_path"))


def settings_of(config: dict) -> dict:
    """The keys that decide the data order, the schedule and the models (inputs aside)."""
    values = {
        path: get(config, path)
        for path in key_paths(config)
        if not key_of(path).free and not is_input(path)
    }
    return json.loads(json.dumps(values))  # as they read back from a checkpoint


def run_identity(config: dict, world_size: int = 1) -> dict:
    """{"id", "settings", "inputs"}: what a checkpoint records of the run that wrote it."""
    settings = {**settings_of(config), "world_size": world_size}
    if config.get("length_buckets", True):
        settings["bucket_lengths"] = list(BUCKET_LENGTHS)
    inputs = {
        path: (digest(get(config, path)) if get(config, path) else None)
        for path in key_paths(config)
        if is_input(path)
    }
    text = json.dumps({"settings": settings, "inputs": inputs}, sort_keys=True)
    return {
        "id": hashlib.sha256(text.encode()).hexdigest()[:16],
        "settings": settings,
        "inputs": inputs,
    }


def from_earlier_version(state: dict) -> bool:
    """Whether a checkpoint's trainer state was written by a tinybert-distill that identified
    its run otherwise: before checkpoints recorded their run, or before the run's bucket
    lengths (and the sampled digests of large inputs) were part of it."""
    if "run" not in state:
        return True
    settings = state["run"].get("settings", {})
    return bool(settings.get("length_buckets", True)) and "bucket_lengths" not in settings


def differences(saved: dict, current: dict) -> list:
    """What differs between two identities, one `key old -> new` text per key."""
    changed = []
    before, now = saved.get("settings", {}), current.get("settings", {})
    for key in sorted(set(before) | set(now)):
        if before.get(key) != now.get(key):
            changed.append(f"{key} {_show(before, key)} -> {_show(now, key)}")
    before, now = saved.get("inputs", {}), current.get("inputs", {})
    for key in sorted(set(before) | set(now)):
        if before.get(key) != now.get(key):
            changed.append(f"{key} (other contents)")
    return changed


def _show(values: dict, key: str) -> str:
    return json.dumps(values[key]) if key in values else "(not set)"


# Files above this size are hashed from samples (1 MiB each, whatever their size): whole,
# the 14 GB of an English Wikipedia corpus would take over 40 s at every start (3.3 GB took
# 11-12 s). Records are written whole by tinybert-data (other text, vocabulary or seq_length
# change every part of a shard and its task.json, which is small and hashed whole), and a
# retrained checkpoint differs everywhere, so samples tell runs apart; what they cannot see
# is an edit in place that keeps the size and misses every sample.
SAMPLED_ABOVE = 16 << 20
SAMPLES, SAMPLE_BYTES = 16, 64 << 10


def digest(path) -> str | None:
    """A short hash of a file's contents, or of every file in a folder (with its name);
    None when there is nothing there (the command then reports the missing input)."""
    path = Path(path)
    if path.is_file():
        return _file_digest(path)
    if not path.is_dir():
        return None
    total = hashlib.sha256()
    for file in sorted(path.rglob("*")):
        relative = file.relative_to(path)
        # Row indexes (.rowindex) are derived from the shards and built on first use.
        derived = file.suffix == ".rowindex"
        if file.is_file() and not derived and not any(p.startswith(".") for p in relative.parts):
            total.update(f"{relative.as_posix()}\0{_file_digest(file)}\0".encode())
    return total.hexdigest()[:16]


_digests: dict = {}  # (path, size, mtime, sampled) -> digest: each input is read once


def _file_digest(path: Path) -> str:
    status = path.stat()
    sampled = status.st_size > max(SAMPLED_ABOVE, SAMPLES * SAMPLE_BYTES)
    key = (str(path.resolve()), status.st_size, status.st_mtime_ns, sampled)
    if key not in _digests:
        hasher = hashlib.sha256()
        with open(path, "rb") as handle:
            if sampled:
                hasher.update(f"{status.st_size} bytes, sampled\0".encode())
                last = status.st_size - SAMPLE_BYTES
                for offset in (last * i // (SAMPLES - 1) for i in range(SAMPLES)):
                    handle.seek(offset)
                    hasher.update(handle.read(SAMPLE_BYTES))
            else:
                while block := handle.read(1 << 20):
                    hasher.update(block)
        _digests[key] = hasher.hexdigest()[:16]
    return _digests[key]


# ---- saved checkpoints -------------------------------------------------------------------


def checkpoint_path(output_dir: Path, phase: str, step: int) -> Path:
    return Path(output_dir) / "checkpoints" / f"{phase}_step{step:08d}.ckpt"


def saved_checkpoints(output_dir: Path) -> list:
    """Every resumable checkpoint in the folder, whoever wrote it, by phase and step."""
    found = []
    for file in (Path(output_dir) / "checkpoints").glob("*.ckpt"):
        if match := CHECKPOINT_NAME.match(file.name):
            found.append(SavedCheckpoint(match["phase"], int(match["step"]), file))
    return sorted(found)


_states: dict = {}  # (path, size, mtime) -> trainer state: a checkpoint is read once


def trainer_state(path: Path) -> dict | None:
    """The loop's state stored in a checkpoint; None if it cannot be read."""
    status = path.stat()
    key = (str(path.resolve()), status.st_size, status.st_mtime_ns)
    if key not in _states:
        try:
            entries = ms.load_checkpoint(str(path), choice_func=lambda n: n == TRAINER_STATE)
            _states[key] = json.loads(entries[TRAINER_STATE])
        except (ValueError, RuntimeError, KeyError, TypeError):
            return None
    return _states[key]


def remember_state(path: Path, state: dict) -> None:
    """The state of a checkpoint this process just wrote, so it need not be read back."""
    status = path.stat()
    _states[(str(path.resolve()), status.st_size, status.st_mtime_ns)] = state


def is_own(path: Path, identity: dict | None) -> bool:
    """Whether this run wrote the checkpoint (every one, for a run without an identity)."""
    if identity is None:
        return True
    state = trainer_state(path)
    return state is not None and state.get("run", {}).get("id") == identity["id"]


# ---- the start of a run ------------------------------------------------------------------


def prepare_output(config: dict, rank: int = 0, world_size: int = 1) -> dict:
    """Check the output folder against the run asked for, writing nothing; return the run's
    identity."""
    output_dir = Path(config["save_ckpt_path"])
    if rank == 0:
        _check_writable(output_dir)
    identity = run_identity(config, world_size)
    if config.get("do_train", True):
        resume, overwrite = bool(config["resume"]), bool(config.get("overwrite"))
        if resume and overwrite:
            raise RunError("--resume true and --overwrite true contradict each other: choose one")
        if resume:
            _check_resume(output_dir, identity)
        elif not overwrite:
            _check_fresh(output_dir)
    return identity


def start_output(config: dict, rank: int = 0) -> None:
    """The first write of a run, once its inputs are known good (worker 0): create the
    output folder, delete an earlier run's files (`--overwrite true`), write config.yaml and
    send the log to log.txt."""
    if rank != 0:
        return
    output_dir = Path(config["save_ckpt_path"])
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RunError(
            f"save_ckpt_path {output_dir}: cannot write there ({error.strerror})"
        ) from None
    fresh = config.get("do_train", True) and not config["resume"]
    earlier = _earlier_outputs(output_dir) if fresh and config.get("overwrite") else []
    if earlier:
        for path in earlier + [output_dir / "log.txt", output_dir / "config.yaml"]:
            path.unlink(missing_ok=True)
    _log_to(output_dir / "log.txt")
    log.info("writing to %s", output_dir)
    if earlier:
        log.info(
            "%s: deleted an earlier run's %d files (--overwrite true)", output_dir, len(earlier)
        )
    (output_dir / "config.yaml").write_text(
        yaml.safe_dump(config, sort_keys=False), encoding="utf-8"
    )


class _LogTxt(logging.FileHandler):
    """log.txt of the running command (records the trainer wrote there itself left out)."""


LOGGERS = ("tinybert_distill", "tinybert_model")


def _log_to(path: Path) -> None:
    handler = _LogTxt(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    handler.addFilter(lambda record: not getattr(record, LOG_TXT, False))
    for name in LOGGERS:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if isinstance(h, _LogTxt)]:
            old.close()
            logger.removeHandler(old)
        logger.addHandler(handler)


def log_txt() -> Path | None:
    """The log.txt this process writes to: None until a run has started (start_output)."""
    for handler in logging.getLogger(LOGGERS[0]).handlers:
        if isinstance(handler, _LogTxt):
            return Path(handler.baseFilename)
    return None


def _check_writable(output_dir: Path) -> None:
    """The folder, or the nearest folder above it that exists, must be one we may write in:
    checked without creating anything."""
    if output_dir.exists() and not output_dir.is_dir():
        raise RunError(f"save_ckpt_path {output_dir} is a file, not a folder")
    existing = output_dir.absolute()
    while not existing.exists():
        existing = existing.parent
    problem = None
    if not existing.is_dir():
        problem = "Not a directory"
    elif not os.access(existing, os.W_OK | os.X_OK):
        problem = "Permission denied"
    if problem:
        raise RunError(f"save_ckpt_path {output_dir}: cannot write there ({problem})")


def _earlier_outputs(output_dir: Path) -> list:
    """An earlier run's checkpoints, models and metrics in the folder."""
    earlier = [c.path for c in saved_checkpoints(output_dir)]
    return earlier + [output_dir / name for name in OUTPUTS if (output_dir / name).exists()]


def _check_fresh(output_dir: Path) -> None:
    earlier = _earlier_outputs(output_dir)
    if earlier:
        names = [str(p.relative_to(output_dir)) for p in earlier]
        shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
        raise RunError(
            f"{output_dir} holds an earlier run's {shown}: continue that run with "
            "--resume true, or start afresh with --overwrite true (deletes them)"
        )


def _check_resume(output_dir: Path, identity: dict) -> None:
    """Refuse to resume checkpoints that another run, or an earlier version, wrote."""
    saved = [(c.path, trainer_state(c.path)) for c in saved_checkpoints(output_dir)]
    for path, state in saved:
        if state is not None and from_earlier_version(state):
            raise RunError(
                f"--resume true: {path.relative_to(output_dir)} was written by an earlier "
                "version of tinybert-distill, whose runs this one cannot continue: start "
                "afresh with --overwrite true (deletes that run's checkpoints)"
            )
    others = [(p, s) for p, s in saved if s and s["run"]["id"] != identity["id"]]
    if others:
        path, state = others[-1]
        changed = differences(state["run"], identity) or ["the run's identity"]
        raise RunError(
            f"--resume true: {path.relative_to(output_dir)} was written by a run with other "
            f"settings: {'; '.join(changed)}. Resume with the saved run's settings, or start "
            "afresh in another folder (or with --overwrite true)"
        )

"""Records directories: sharded TFRecord (or MindRecord) files, `schema.json`, `task.json`.

A records directory holds the shard files, `schema.json` (MindSpore's TFRecord schema:
`mindspore.dataset.TFRecordDataset(files, schema_dir)`), `task.json` (what the rows are: task,
labels, seq_length, vocabulary, row count, files) and a copy of the `vocab.txt` they were
tokenized with.

Writing is atomic: everything is written into a hidden temporary folder inside the output
directory and moved to its final name only when complete, `task.json` last; a failed run
removes the temporary folder and leaves no file under a final name. The folder is named
`.tinybert-data-<host>-<pid>-<random>` (tinybert-core's `temporary_folder`), so that a later
run into the same directory can tell the folder of a writer that was killed (its pid no longer
runs) and remove it (`remove_stale_temporaries`). task.json's layout, reader and writer are
tinybert-core's. TFRecord rows go to the shards in turn (row i to shard i mod N); readers
interleave the shards back into row order, and check that the files hold exactly the rows
task.json (or schema.json) promises and that no token id lies outside the vocabulary.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from itertools import islice
from pathlib import Path

import numpy as np

from tinybert_core import (
    COLUMNS,
    TASK_FILE,
    DataError,
    json_object,
    read_task_info,
    read_text,
    regular_file,
    remove_stale_temporaries,
    temporary_folder,
    write_task_info,
)
from tinybert_data.errors import RecordsError
from tinybert_data.mindrecord_format import MindRecordShards, read_mindrecord
from tinybert_data.tfrecord_format import framed_examples, iter_records, parse_examples

FORMATS = ("tfrecord", "mindrecord")
SCHEMA_FILE, VOCAB_FILE = "schema.json", "vocab.txt"
INDEX_SUFFIX = ".rowindex"  # a TFRecord shard's row index (tinybert_data.indexed)


def index_path(shard) -> Path:
    """Where the row index of a TFRecord shard lives: the shard's path, `.rowindex` for
    `.tfrecord`."""
    shard = Path(shard)
    stem = shard.name[: -len(".tfrecord")] if shard.name.endswith(".tfrecord") else shard.name
    return shard.with_name(stem + INDEX_SUFFIX)


def shard_file_names(name: str, num_shards: int, format: str = "tfrecord") -> list[str]:
    """`<name>.tfrecord`, or `<name>-00000-of-00002.tfrecord`, ... for several shards
    (MindRecord: `<name>.mindrecord`, or `<name>.mindrecord0`, ... as MindSpore names them)."""
    if format == "mindrecord":
        base = f"{name}.mindrecord"
        return [base] if num_shards == 1 else [f"{base}{i}" for i in range(num_shards)]
    if num_shards == 1:
        return [f"{name}.tfrecord"]
    return [f"{name}-{i:05d}-of-{num_shards:05d}.tfrecord" for i in range(num_shards)]


def tfrecord_schema(shapes: dict[str, tuple], num_rows: int) -> dict:
    """MindSpore's schema.json for int64 features of the given per-row shapes."""
    columns = {
        name: {"type": "int64", "rank": len(shape), "shape": list(shape)}
        for name, shape in shapes.items()
    }
    return {"datasetType": "TF", "numRows": num_rows, "columns": columns}


class _TFRecordShards:
    """Rows appended to `num_shards` TFRecord files in turn."""

    def __init__(self, paths: list[Path]):
        self._files = [open(p, "wb") for p in paths]  # noqa: SIM115 (closed by close())
        self._next = 0  # shard of the next row

    def write(self, batch: dict[str, np.ndarray]) -> None:
        records, ends = framed_examples(batch)
        if len(self._files) == 1:
            self._files[0].write(records)
            return
        starts = [0, *ends[:-1]]
        n = len(self._files)
        for shard, f in enumerate(self._files):
            first = (shard - self._next) % n  # this shard's first row in the batch
            f.write(b"".join(records[s:e] for s, e in zip(starts[first::n], ends[first::n])))
        self._next = (self._next + len(ends)) % n

    def close(self) -> None:
        for f in self._files:
            f.close()


class RecordsWriter:
    """Writes one records directory; use as a context manager.

        with RecordsWriter(out, "train", shapes, metadata={...}, vocab_file=vocab) as writer:
            writer.write({"input_ids": ..., ...})  # int arrays [n, *shape], as often as needed

    `shapes` maps each column, in record order, to its per-row shape (() for a scalar).
    `metadata` goes into task.json with num_rows, format and files added.

    A folder that already holds records is checked before anything is written: the records of
    the same dataset (task.json's `task` and `inputs` equal to `metadata`'s: a rerun) are
    replaced, another dataset's only with `overwrite` (RecordsError otherwise). The earlier
    run's files and their row indexes go when the new files are in place.
    """

    def __init__(
        self,
        output_dir,
        name: str,
        shapes: dict[str, tuple],
        metadata: dict,
        vocab_file=None,
        format: str = "tfrecord",
        num_shards: int = 1,
        overwrite: bool = False,
    ):
        if format not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, not {format!r}")
        if num_shards < 1:
            raise ValueError(f"num_shards must be at least 1, not {num_shards}")
        if Path(name).name != name or name in ("", ".", ".."):
            raise ValueError(f"the records' name must be a file name, not {name!r}")
        self.output_dir = Path(output_dir)
        self.shapes = {name: tuple(shape) for name, shape in shapes.items()}
        self.metadata = metadata
        self.vocab_file = vocab_file
        self.format = format
        self.num_rows = 0
        self.file_names = shard_file_names(name, num_shards, format)
        if self.output_dir.exists() and not self.output_dir.is_dir():
            raise RecordsError(f"{self.output_dir}: is a file, not a records folder")
        self._earlier_files = _files_to_replace(self.output_dir, metadata, overwrite)
        self._created_output_dir = not self.output_dir.exists()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(self.output_dir)
        self._tmp = temporary_folder(self.output_dir)
        try:
            if format == "mindrecord":
                self._shards = MindRecordShards(
                    self._tmp / f"{name}.mindrecord", num_shards, self.shapes
                )
            else:
                self._shards = _TFRecordShards([self._tmp / f for f in self.file_names])
        except BaseException as error:
            self._remove_temporaries(failed=True)
            if isinstance(error, OSError) and error.errno == errno.EMFILE:
                raise RecordsError(
                    f"{self.output_dir}: cannot keep {num_shards} shard files open at once "
                    f"({error.strerror}): write fewer shards"
                ) from None
            raise

    def write(self, batch: dict[str, np.ndarray]) -> None:
        """Append rows: one array per column (all of them, nothing else), same row count."""
        if list(batch) != list(self.shapes):
            raise ValueError(f"expected columns {list(self.shapes)}, got {list(batch)}")
        for name, values in batch.items():
            if tuple(values.shape[1:]) != self.shapes[name]:
                raise ValueError(
                    f"column {name} has rows of shape {values.shape[1:]}, not {self.shapes[name]}"
                )
        with _naming_output(self.output_dir):
            self._shards.write(batch)
        self.num_rows += len(next(iter(batch.values())))

    def __enter__(self) -> RecordsWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        failed = exc_type is not None
        try:
            with _naming_output(self.output_dir):
                self._shards.close()  # may fail too: the last buffered bytes hit a full disk
                if not failed:
                    self._commit()
        except BaseException:
            failed = True
            raise
        finally:
            self._remove_temporaries(failed)

    def _remove_temporaries(self, failed: bool) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)
        if failed and self._created_output_dir and not any(self.output_dir.iterdir()):
            self.output_dir.rmdir()  # a failed run leaves no trace

    def _commit(self) -> None:
        """Move the complete files to their final names, task.json last."""
        data_files = sorted(p.name for p in self._tmp.iterdir())  # MindRecord adds .db files
        if self.format == "tfrecord":
            schema = tfrecord_schema(self.shapes, self.num_rows)
            (self._tmp / SCHEMA_FILE).write_text(json.dumps(schema, indent=2) + "\n")
        if self.vocab_file is not None:
            shutil.copyfile(self.vocab_file, self._tmp / VOCAB_FILE)
        task = dict(
            self.metadata,
            num_rows=self.num_rows,
            format=self.format,
            columns=list(self.shapes),
            files=self.file_names,
        )
        write_task_info(self._tmp, task)
        # Until the new task.json replaces the old one, the old one still describes a whole
        # dataset (a kill -9 meanwhile leaves the earlier run readable); its files that this
        # run does not rewrite go after that, so the directory never mixes two runs.
        written = [*data_files, SCHEMA_FILE, VOCAB_FILE, TASK_FILE]
        written = [name for name in written if (self._tmp / name).exists()]
        for file_name in written:
            os.replace(self._tmp / file_name, self.output_dir / file_name)
        for file_name in self._earlier_files - set(written):
            (self.output_dir / file_name).unlink(missing_ok=True)


@contextlib.contextmanager
def _naming_output(directory: Path) -> Iterator[None]:
    """Re-raise an OSError that names no file (a full disk: `[Errno 28] No space left on
    device`, a size limit: `[Errno 27] File too large`) as one naming the output directory,
    and MindSpore's MindRecord writer's RuntimeError (pages of text) as one line."""
    try:
        yield
    except OSError as error:
        if error.filename is not None:
            raise
        raise OSError(error.errno, f"{error.strerror} (writing records)", str(directory)) from None
    except RuntimeError as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        reason = next((line for line in lines if line.startswith("[ERROR]")), lines[0])
        raise RecordsError(
            f"{directory}: MindSpore could not write the MindRecord files ({reason}); "
            "is the disk full?"
        ) from None


def _files_to_replace(directory: Path, metadata: dict, overwrite: bool) -> set[str]:
    """The files of the records already in `directory` that a new run replaces: the shards its
    task.json lists (read_task_info refuses names that are not files of the folder), their
    MindRecord .db files and row indexes (stale even where a shard keeps its name), its
    schema.json and vocab.txt. RecordsError if they are another dataset's and not `overwrite`."""
    earlier = read_task_info(directory) if directory.is_dir() else {}
    if not earlier:
        return set()
    if not overwrite and any(earlier.get(key) != metadata.get(key) for key in ("task", "inputs")):
        inputs = earlier.get("inputs") or ["files not named"]
        more = f" and {len(inputs) - 1} more" if len(inputs) > 1 else ""
        raise RecordsError(
            f"{directory} holds other records ({earlier.get('task')}, from {inputs[0]}{more}): "
            "write to another folder, or replace them with --overwrite"
        )
    shards = earlier.get("files") or []
    return {SCHEMA_FILE, VOCAB_FILE} | {
        name for shard in shards for name in (shard, f"{shard}.db", index_path(shard).name)
    }


def record_files(path) -> tuple[str, list[Path]]:
    """(format, data files) of a records directory or of a single record file."""
    path = Path(path)
    if not path.is_dir():
        regular_file(path)  # DataError saying what it is instead: missing, a FIFO, ...
        return ("mindrecord" if ".mindrecord" in path.name else "tfrecord"), [path]
    info = read_task_info(path)
    if info.get("files"):
        files = [path / f for f in info["files"]]
        for file in files:
            try:
                regular_file(file)
            except DataError as error:  # missing, or a FIFO, ...
                raise RecordsError(f"{error} (listed in {path / TASK_FILE})") from None
        return info.get("format", "tfrecord"), files
    tfrecords = sorted(path.glob("*.tfrecord"))
    if tfrecords:
        return "tfrecord", tfrecords
    mindrecords = sorted(p for p in path.glob("*.mindrecord*") if p.suffix != ".db")
    if mindrecords:
        return "mindrecord", mindrecords
    raise RecordsError(f"{path}: no .tfrecord or .mindrecord files")


def read_records(
    path, batch_size: int = 1024, columns: Sequence[str] | None = None
) -> Iterator[dict]:
    """Batches {column: int32 array [batch, ...]} of all rows, in the order they were written.

    `path` is a records directory or one record file; `columns` (default: all, in record
    order) picks columns. Needs no TensorFlow or MindSpore, except for MindRecord files.

    A file holding more or fewer rows than task.json (or schema.json) promises raises
    RecordsError naming it, as does a token id outside task.json's vocab_size (naming the
    file and record): a shard cut at a record boundary is otherwise a valid, shorter file.
    """
    format, files = record_files(path)
    promised, promised_per_file = _promised_rows(path, files)
    vocab_size = read_task_info(path).get("vocab_size")
    if format == "mindrecord":

        def mindrecord_row(row: int) -> str:
            return f"{files[0]}: row {row}"

        batches = read_mindrecord(files[0], batch_size, columns, order=COLUMNS)
        num_rows = 0
        for batch in _check_vocab(batches, vocab_size, mindrecord_row):
            num_rows += len(next(iter(batch.values())))
            yield batch
        if promised is not None:
            _check_count(files[0], num_rows, promised)
        return

    def tfrecord_row(row: int) -> str:  # row i is in shard i % n
        return f"{files[row % len(files)]}: record {row // len(files)}"

    shapes = _column_shapes(path)
    per_file = promised_per_file or {}
    records = _interleave([_counted_records(f, per_file.get(f)) for f in files])

    def batches() -> Iterator[dict]:
        done = 0
        while batch := list(islice(records, batch_size)):
            yield _to_arrays(parse_examples(batch, first_index=done), columns, shapes)
            done += len(batch)
        if promised is not None:
            _check_count(Path(path), done, promised)

    yield from _check_vocab(batches(), vocab_size, tfrecord_row)


def load_records(path, columns: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """All rows of a records directory or file: {column: int32 array [n, ...]}."""
    batches = list(read_records(path, batch_size=65536, columns=columns))
    if not batches:
        shapes = _column_shapes(path) or {}
        names = columns or list(shapes)
        return {c: np.zeros((0, *shapes.get(c, ())), np.int32) for c in names}
    return {c: np.concatenate([b[c] for b in batches]) for c in batches[0]}


def _promised_rows(path, files: list[Path]) -> tuple[int | None, dict[Path, int] | None]:
    """How many rows `files` must hold together (task.json's num_rows, or schema.json's
    numRows), and each of them when task.json lists the shards (row i went to shard i % n)."""
    path = Path(path)
    directory = path if path.is_dir() else path.parent
    info = read_task_info(directory)
    schema = read_schema(directory) or {}
    num_rows = info.get("num_rows", schema.get("numRows"))
    if schema.get("numRows", num_rows) != num_rows:
        raise RecordsError(
            f"{directory}: task.json promises {num_rows} rows, schema.json {schema['numRows']}"
        )
    shards = [directory / f for f in info.get("files", [])]
    if num_rows is None or not shards:  # no task.json list: the total is for all files only
        return (num_rows if path.is_dir() else None), None
    if any(f not in shards for f in files):
        return None, None  # a record file task.json does not list: nothing to check it against
    quotient, remainder = divmod(num_rows, len(shards))
    share = {f: quotient + (i < remainder) for i, f in enumerate(shards)}
    return sum(share[f] for f in files), {f: share[f] for f in files}


def _counted_records(file: Path, promised: int | None) -> Iterator[bytes]:
    """The records of one TFRecord file, checked to be exactly `promised` many (if given)."""
    count = 0
    for record in iter_records(file):
        count += 1
        if promised is not None and count > promised:
            _check_count(file, count, promised, at_least=True)
        yield record
    if promised is not None:
        _check_count(file, count, promised)


def _check_count(file: Path, count: int, promised: int, at_least: bool = False) -> None:
    if count != promised:
        holds = f"more than {promised}" if at_least else str(count)
        raise RecordsError(
            f"{file}: holds {holds} rows, but task.json/schema.json promise {promised} "
            "(a file cut short, replaced or from another run)"
        )


def _check_vocab(batches: Iterator[dict], vocab_size: int | None, where) -> Iterator[dict]:
    """Pass batches through; RecordsError at the first input id outside [0, vocab_size),
    `where(row)` naming the file and record that holds it."""
    done = 0
    for batch in batches:
        ids = batch.get("input_ids")
        if vocab_size is not None and ids is not None and len(ids):
            ids = ids.reshape(len(ids), -1)
            outside = (ids < 0) | (ids >= vocab_size)
            bad_rows = np.flatnonzero(outside.any(axis=1))
            if len(bad_rows):
                row = bad_rows[0]
                value = ids[row][outside[row]][0]
                raise RecordsError(
                    f"{where(done + int(row))}: input_ids holds {value}, outside the "
                    f"vocabulary of {vocab_size} tokens (vocab_size in task.json)"
                )
        done += len(next(iter(batch.values())))
        yield batch


def _interleave(iterators: list) -> Iterator:
    """Items of the iterators in turn (first of each, then second of each, ...)."""
    while iterators:
        alive = []
        for it in iterators:
            item = next(it, None)
            if item is not None:
                alive.append(it)
                yield item
        iterators = alive


def read_schema(directory) -> dict | None:
    """The schema.json of a records folder (None when there is none), checked as far as
    readers rely on it: a JSON object whose "columns" map each name to an object with a
    "shape" of whole numbers, and a whole "numRows" if it has one (DataError naming it)."""
    schema_file = Path(directory) / SCHEMA_FILE
    if not schema_file.exists() and not schema_file.is_symlink():
        return None
    schema = json_object(read_text(schema_file), schema_file)
    columns, num_rows = schema.get("columns", {}), schema.get("numRows")
    if not (
        isinstance(columns, dict)
        and all(isinstance(c, dict) and _is_shape(c.get("shape", [])) for c in columns.values())
    ):
        raise DataError(
            schema_file, None, '"columns" must map each column to {"shape": [whole numbers], ...}'
        )
    if num_rows is not None and not _is_shape([num_rows]):
        raise DataError(schema_file, None, f'"numRows" must be a whole number, not {num_rows!r}')
    return schema


def _is_shape(values) -> bool:
    return isinstance(values, list) and all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values
    )


def _column_shapes(path) -> dict[str, tuple] | None:
    """Per-row column shapes from the schema.json beside the records, if there is one."""
    path = Path(path)
    schema = read_schema(path if path.is_dir() else path.parent)
    if schema is None:
        return None
    columns = schema.get("columns", {})
    return {name: tuple(c.get("shape", ())) for name, c in columns.items()}


def _to_arrays(parsed: dict, columns, shapes) -> dict[str, np.ndarray]:
    """Parsed features as int32 arrays [rows, ...], shaped by the schema when there is one."""
    names = columns or [c for c in COLUMNS if c in parsed] + [c for c in parsed if c not in COLUMNS]
    out = {}
    for name in names:
        if name not in parsed:
            raise RecordsError(f"records have no column {name!r}")
        values, counts = parsed[name]
        if len(counts) and (counts != counts[0]).any():
            raise RecordsError(f"column {name!r} has rows of different lengths")
        width = int(counts[0]) if len(counts) else 0
        shape = shapes[name] if shapes and name in shapes else ((width,) if width != 1 else ())
        if int(np.prod(shape)) != width:
            raise RecordsError(f"column {name!r} has {width} values per row, schema shape {shape}")
        out[name] = values.astype(np.int32).reshape(len(counts), *shape)
    return out


def validate_records(path) -> dict:
    """Check the records of a TFRecord directory against its schema.json.

    Every record must hold exactly the schema's columns as int64 lists of the schema's shape,
    and the row count must equal numRows and be more than 0. Returns {"num_rows", "columns",
    "files"}; raises RecordsError listing what is wrong.
    """
    path = Path(path)
    if not path.is_dir():
        regular_file(path)  # DataError saying what it is: missing, a FIFO, ...
        raise RecordsError(f"{path}: is a file; validate checks a records folder")
    schema = read_schema(path)
    if schema is None:
        raise RecordsError(f"{path}: no {SCHEMA_FILE}")
    problems = []
    if schema.get("datasetType") != "TF":
        problems.append(f"datasetType is {schema.get('datasetType')!r}, not 'TF'")
    columns = schema.get("columns", {})
    for name, column in columns.items():
        if column.get("type") != "int64":
            problems.append(f"column {name}: type {column.get('type')!r}, records hold int64")
        if column.get("rank") != len(column.get("shape", [])):
            problems.append(
                f"column {name}: rank {column.get('rank')} but shape {column.get('shape')}"
            )
    sizes = {name: int(np.prod(c.get("shape", []))) for name, c in columns.items()}
    format, files = record_files(path)
    if format != "tfrecord":
        raise RecordsError(f"{path}: schema.json describes TFRecord files, found {format}")
    num_rows = 0
    for file in files:
        records, seen = iter_records(file), 0  # seen: records of this file so far
        while (batch := list(islice(records, 4096))) and len(problems) <= 20:
            try:
                parsed = parse_examples(batch, first_index=seen)
            except RecordsError as error:
                problems.append(f"{file.name}: {error}")
                break
            if set(parsed) != set(sizes):
                problems.append(
                    f"{file.name}: columns {sorted(parsed)}, schema has {sorted(sizes)}"
                )
            for name in set(parsed) & set(sizes):
                counts = parsed[name][1]
                for index in np.flatnonzero(counts != sizes[name])[:5]:
                    problems.append(
                        f"{file.name} record {seen + index}: {name} has {counts[index]} values, "
                        f"schema says {sizes[name]}"
                    )
            seen += len(batch)
        num_rows += seen
    if schema.get("numRows") != num_rows:
        problems.append(f"numRows is {schema.get('numRows')}, the files hold {num_rows} rows")
    if num_rows == 0:
        problems.append("the files hold no rows: nothing to train or evaluate on")
    if problems:
        raise RecordsError(
            f"{path}: records disagree with {SCHEMA_FILE}:\n  " + "\n  ".join(problems)
        )
    return {"num_rows": num_rows, "columns": list(columns), "files": [f.name for f in files]}

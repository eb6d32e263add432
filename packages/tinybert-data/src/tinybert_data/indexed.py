"""Random access to the rows of a records directory, with memory bounded whatever its size.

    records = open_records("out/corpus")      # IndexedRecords (TFRecord) or LoadedRecords
    records.num_rows, records.lengths         # lengths: real tokens per row (input_mask sum)
    batch = records.read(rows, ["input_ids", "input_mask"])  # {column: int32 [len(rows), ...]}

A TFRecord file is a chain of records (length, CRC of the length, data, CRC of the data), so
row k can only be found by walking the k records before it. The walk is done once per shard
and kept in a row index beside it, `<shard stem>.rowindex` (`train-00000-of-00004.rowindex`
for `train-00000-of-00004.tfrecord`; the name holds no "tfrecord", so tools that take every
file with "tfrecord" in its name, as the model zoo's dataset code does, never see it):

    8 bytes   magic b"TBRIDX1\\n"
    8 bytes   header length h (uint64 little-endian)
    h bytes   header: JSON {"num_rows", "shard_size", "shard_mtime_ns", "shard_tail_crc",
              "lengths_dtype"}, padded with spaces to a multiple of 8 bytes
    8 (n + 1) offsets: uint64, where each record starts, then the shard's size
    2 or 4 n  lengths: real tokens of each record (input_mask sum; without an input_mask
              column, the number of input_ids values)

A reader takes the offsets of the rows it wants with `os.pread` from the index file and the
records with `os.pread` from the shard: nothing but the lengths (2 bytes a row) is held in
memory, and a batch of B rows costs a few reads. Both CRCs of every record read are checked,
so a corrupt record fails when it is read, naming the shard and the record number.

An index is stale when its shard's size, modification time or last 64 KiB changed (the shard
was rewritten); it is then rebuilt. A folder without indexes (written before they existed,
or by another tool) gets them on first use, written atomically (a temporary file renamed into
place), or kept in memory when the folder is read-only. Rows are numbered as `read_records`
yields them: the shards interleaved, row i in shard i mod N for the files `tinybert-data`
writes, any other row counts handled as `read_records` interleaves them.

MindRecord directories have their own `.db` index, but reading it needs MindSpore, which this
package never imports outside the `[mindrecord]` extra: `open_records` loads them whole into
memory (`LoadedRecords`, same interface) and says so in a warning.
"""

from __future__ import annotations

import json
import logging
import os
import struct
from array import array
from collections.abc import Sequence
from pathlib import Path

import crc32c
import numpy as np

from tinybert_core import COLUMNS, atomic_path, read_task_info
from tinybert_data.errors import RecordsError
from tinybert_data.records import (
    _column_shapes,
    _to_arrays,
    index_path,
    load_records,
    record_files,
)
from tinybert_data.tfrecord_format import (
    _read_varint,
    decode_varints,
    feature_ranges,
    masked_crc32c,
    parse_examples,
)

logger = logging.getLogger(__name__)

_MAGIC = b"TBRIDX1\n"
_TAIL_BYTES = 1 << 16  # the shard's last 64 KiB are checksummed to see that it was not rewritten
_SCAN_BLOCK = 8 << 20  # bytes read at a time while walking a shard
_LENGTH = struct.Struct("<Q")
_HEADER = struct.Struct("<QI")  # record length, masked CRC of the length


def _shard_identity(shard: Path) -> dict:
    """What must not change for an index to stay valid: size, mtime, CRC of the tail."""
    stat = shard.stat()
    with open(shard, "rb") as f:
        f.seek(max(0, stat.st_size - _TAIL_BYTES))
        tail_crc = crc32c.crc32c(f.read())
    return {
        "shard_size": stat.st_size,
        "shard_mtime_ns": stat.st_mtime_ns,
        "shard_tail_crc": tail_crc,
    }


def scan_shard(shard) -> tuple[np.ndarray, np.ndarray]:
    """Walk a TFRecord shard once: (offsets uint64 [n + 1], lengths [n]).

    Checks each record's length CRC (a corrupt length makes the rest of the file unreadable,
    so it fails here, with the record number); the data CRCs are checked when rows are read.
    """
    shard = Path(shard)
    offsets, lengths = array("Q"), array("L")  # 8 + 4 bytes a row while walking, not lists
    with open(shard, "rb") as f:
        block, block_start = b"", 0  # block holds the file from byte block_start on
        position, index = 0, 0  # file position and number of the next record
        while True:
            at = position - block_start
            if len(block) - at < 12:  # the next header is not all in the block: read on
                block, block_start, at = block[at:] + f.read(_SCAN_BLOCK), position, 0
                if not block:
                    break
                if len(block) < 12:
                    raise RecordsError(f"{shard}: record {index} is cut short (truncated file)")
            length, length_crc = _HEADER.unpack_from(block, at)
            if masked_crc32c(block[at : at + 8]) != length_crc:
                raise RecordsError(f"{shard}: record {index} has a corrupt length")
            end = at + 16 + length
            if end > len(block):  # the record runs past the block: read the rest of it
                more = f.read(max(_SCAN_BLOCK, end - len(block)))
                block, block_start, at, end = block[at:] + more, position, 0, 16 + length
                if end > len(block):
                    raise RecordsError(f"{shard}: record {index} is cut short (truncated file)")
            offsets.append(position)
            lengths.append(_real_tokens(block, at + 12, end - 4, shard, index))
            position += 16 + length
            index += 1
    offsets.append(position)
    return np.frombuffer(offsets, np.uint64), np.array(lengths, np.int64)


_MASK_KEY = b"\x0a\x0ainput_mask"  # a map entry's key field holding "input_mask"


def _real_tokens(block: bytes, start: int, end: int, shard: Path, index: int) -> int:
    """input_mask sum of the serialized Example in block[start:end]: the common layout walked
    quickly, anything else through the general parser."""
    try:
        ones = _mask_ones_common_layout(block, start, end)
    except IndexError:  # runs past the buffer: malformed, the general parser says how
        ones = None
    return ones if ones is not None else _real_tokens_any_layout(block[start:end], shard, index)


def _mask_ones_common_layout(block: bytes, start: int, end: int) -> int | None:
    """The number of 1s of the input_mask of the Example in block[start:end] when it is laid out
    as ours and TensorFlow's are and the mask is 0/1; None otherwise. Only the entries' headers
    are read until the input_mask entry: the other columns' values are skipped over."""
    if block[start] != 0x0A:  # Example.features
        return None
    _, pos = _read_varint(block, start + 1)
    while pos < end and block[pos] == 0x0A:  # a feature map entry
        length, pos = _read_varint(block, pos + 1)
        if not block.startswith(_MASK_KEY, pos):
            pos += length
            continue
        pos += len(_MASK_KEY)
        # value (2): Feature { int64_list (3): Int64List { packed value (1) } }
        for tag in (0x12, 0x1A, 0x0A):
            if block[pos] != tag:
                return None
            length, pos = _read_varint(block, pos + 1)
        ones = block.count(1, pos, pos + length)
        zeros = block.count(0, pos, pos + length)
        return ones if ones + zeros == length else None  # a 0/1 mask: one byte a value
    return None


def _real_tokens_any_layout(data: bytes, shard: Path, index: int) -> int:
    """input_mask sum of one serialized Example in any valid encoding (the input_ids count
    when there is no input_mask column)."""
    try:
        ranges = feature_ranges(data)
    except (RecordsError, IndexError, UnicodeDecodeError) as error:
        raise RecordsError(
            f"{shard}: record {index} is not a valid tf.train.Example ({error})"
        ) from None
    name = "input_mask" if "input_mask" in ranges else "input_ids"
    if name not in ranges:
        raise RecordsError(f"{shard}: record {index} has neither input_mask nor input_ids")
    values = decode_varints(b"".join(data[s:e] for s, e in ranges[name]))
    return int(values.sum()) if name == "input_mask" else len(values)


def write_index(shard, offsets: np.ndarray, lengths: np.ndarray, identity: dict) -> Path:
    """Write a shard's row index atomically (tinybert-core's atomic_path)."""
    target = index_path(shard)
    dtype = "<u2" if (len(lengths) == 0 or lengths.max() < 1 << 16) else "<u4"
    header = json.dumps(dict(identity, num_rows=len(lengths), lengths_dtype=dtype)).encode()
    header += b" " * (-len(header) % 8)
    with atomic_path(target) as temporary, open(temporary, "wb") as f:
        f.write(_MAGIC + _LENGTH.pack(len(header)) + header)
        f.write(offsets.astype("<u8").tobytes())
        f.write(lengths.astype(dtype).tobytes())
    return target


class ShardIndex:
    """The row index of one shard: offsets read on demand from its file (or held in memory
    when it could not be written), lengths held in memory."""

    def __init__(self, shard: Path, lengths: np.ndarray, index_file=None, offsets=None):
        self.shard = shard
        self.lengths = lengths
        self.num_rows = len(lengths)
        self._index_file = index_file  # (fd, byte position of offsets[0]) or None
        self._offsets = offsets

    @classmethod
    def open(cls, shard, build: bool = True) -> ShardIndex:
        """The shard's index from its `.rowindex` file, (re)built first when missing or
        stale; kept in memory when the folder is not writable."""
        shard = Path(shard)
        identity = _shard_identity(shard)
        path = index_path(shard)
        if path.is_file():
            try:
                opened = cls._read(shard, path, identity)
            except (RecordsError, ValueError, KeyError) as error:  # damaged: build a new one
                logger.warning("%s: unreadable row index (%s)", path, error)
                opened = None
            if opened is not None:
                return opened
            logger.info("%s: row index is stale or damaged; rebuilding it", path)
        if not build:
            raise RecordsError(f"{shard}: no up-to-date row index at {path}")
        logger.info("%s: indexing rows (once; kept in %s)", shard, path.name)
        offsets, lengths = scan_shard(shard)
        try:
            write_index(shard, offsets, lengths, identity)
        except OSError as error:
            logger.warning("%s: cannot write %s (%s); index kept in memory", shard, path, error)
            return cls(shard, lengths.astype(np.uint32), offsets=offsets)
        opened = cls._read(shard, path, identity)
        if opened is None:  # rewritten again while we indexed it
            raise RecordsError(f"{shard}: changed while its rows were being indexed")
        return opened

    @classmethod
    def _read(cls, shard: Path, path: Path, identity: dict) -> ShardIndex | None:
        """An index file, or None when it does not describe the shard as it is now."""
        fd = os.open(path, os.O_RDONLY)
        try:
            start = os.pread(fd, 16, 0)
            if len(start) < 16 or start[:8] != _MAGIC:
                raise RecordsError(f"{path}: not a tinybert-data row index")
            (header_length,) = _LENGTH.unpack(start[8:])
            header = json.loads(os.pread(fd, header_length, 16))
            if any(header.get(key) != value for key, value in identity.items()):
                os.close(fd)
                return None
            n, dtype = header["num_rows"], np.dtype(header["lengths_dtype"])
            offsets_at = 16 + header_length
            raw = os.pread(fd, n * dtype.itemsize, offsets_at + 8 * (n + 1))
            if len(raw) != n * dtype.itemsize:
                raise RecordsError(f"{path}: cut short; delete it to rebuild it")
            return cls(shard, np.frombuffer(raw, dtype), index_file=(fd, offsets_at))
        except (RecordsError, ValueError, KeyError):
            os.close(fd)
            raise

    def offsets(self, start: int, stop: int) -> np.ndarray:
        """offsets[start : stop + 1]: where records start..stop-1 begin, and where the last ends."""
        if self._offsets is not None:
            return self._offsets[start : stop + 1]
        fd, at = self._index_file
        return np.frombuffer(os.pread(fd, 8 * (stop + 1 - start), at + 8 * start), "<u8")

    def close(self) -> None:
        if self._index_file is not None:
            os.close(self._index_file[0])
            self._index_file = None


class _Interleave:
    """Row numbers of interleaved shards <-> (shard, record), for any row counts.

    `read_records` takes one record of each shard still holding records, in shard order,
    round after round. Between two distinct row counts the set of shards still alive is
    fixed, so the rows fall into a few segments of whole rounds over a fixed set of shards.
    """

    def __init__(self, counts: Sequence[int]):
        counts = np.asarray(counts, np.int64)
        self.num_rows = int(counts.sum())
        levels = np.unique(counts[counts > 0])
        self.first_round = np.concatenate([[0], levels[:-1]]).astype(np.int64)
        self.alive = [np.flatnonzero(counts >= level) for level in levels]
        widths = np.array([len(a) for a in self.alive], np.int64)
        self.widths = widths
        self.first_row = np.concatenate([[0], np.cumsum((levels - self.first_round) * widths)])
        self.table = np.zeros((len(levels), len(counts)), np.int64)
        for segment, alive in enumerate(self.alive):
            self.table[segment, : len(alive)] = alive

    def locate(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(shard, record number in that shard) of each row."""
        segment = np.searchsorted(self.first_row, rows, side="right") - 1
        within = rows - self.first_row[segment]
        width = self.widths[segment]
        return self.table[segment, within % width], self.first_round[segment] + within // width

    def gather(self, per_shard: list[np.ndarray]) -> np.ndarray:
        """Per-shard arrays (one value per record) as one array in row order."""
        parts = []
        for segment, alive in enumerate(self.alive):
            start = self.first_round[segment]
            stop = start + (self.first_row[segment + 1] - self.first_row[segment]) // len(alive)
            parts.append(np.stack([per_shard[s][start:stop] for s in alive], axis=1).ravel())
        if not parts:
            return np.zeros(0, per_shard[0].dtype if per_shard else np.uint16)
        return np.concatenate(parts)


class IndexedRecords:
    """Rows of a TFRecord records directory (or one file) read by row number.

    `num_rows`, `lengths` (real tokens per row, from the indexes: no pass over the data),
    `columns` (names, record order), `task` (task.json), `path`, `files`, and
    `read(rows, columns)`. Holds one file descriptor per shard and per index; use as a context
    manager or call `close()`.
    """

    def __init__(self, path, build_index: bool = True):
        self.path = Path(path)
        format, self.files = record_files(self.path)
        if format != "tfrecord":
            raise RecordsError(
                f"{self.path}: random access reads TFRecord files; {format} is read by "
                "load_records (open_records does that for you)"
            )
        self.task = read_task_info(self.path) if self.path.is_dir() else {}
        self._shapes = _column_shapes(self.path)
        self._indexes = []
        self._fds = []
        try:
            for file in self.files:
                self._indexes.append(ShardIndex.open(file, build=build_index))
                self._fds.append(os.open(file, os.O_RDONLY))
        except BaseException:
            self.close()
            raise
        self._rows = _Interleave([index.num_rows for index in self._indexes])
        self.num_rows = self._rows.num_rows
        expected = self.task.get("num_rows")
        if expected is not None and expected != self.num_rows:
            self.close()
            raise RecordsError(
                f"{self.path}: task.json says {expected} rows, the files hold {self.num_rows}"
            )
        self._lengths = None
        self.columns = self._column_names()

    def _column_names(self) -> list[str]:
        if self.task.get("columns"):
            return list(self.task["columns"])
        if self._shapes:
            return list(self._shapes)
        if not self.num_rows:
            return []
        names = list(parse_examples(self._records(np.zeros(1, np.int64))))
        return [c for c in COLUMNS if c in names] + [c for c in names if c not in COLUMNS]

    def __len__(self) -> int:
        return self.num_rows

    @property
    def lengths(self) -> np.ndarray:
        """Real tokens of every row (input_mask sum), in row order; 2 bytes a row."""
        if self._lengths is None:
            self._lengths = self._rows.gather([index.lengths for index in self._indexes])
        return self._lengths

    def read(self, rows, columns: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """{column: int32 array [len(rows), ...]} of the given rows, in the given order
        (repeats allowed); `columns` defaults to all of them."""
        rows = np.asarray(rows, np.int64).reshape(-1)
        if len(rows) and (rows.min() < 0 or rows.max() >= self.num_rows):
            bad = rows[(rows < 0) | (rows >= self.num_rows)][0]
            raise IndexError(f"{self.path}: row {bad} out of range (0..{self.num_rows - 1})")
        columns = list(columns) if columns is not None else self.columns
        if not len(rows):
            shapes = self._shapes or {}
            return {c: np.zeros((0, *shapes.get(c, ())), np.int32) for c in columns}
        records = self._records(rows)
        try:
            parsed = parse_examples(records)
        except (RecordsError, IndexError, UnicodeDecodeError):
            self._raise_for_bad_example(rows, records)
            raise
        return _to_arrays(parsed, columns, self._shapes)

    def _records(self, rows: np.ndarray) -> list[bytes]:
        """The data of the records of `rows`, in that order, CRCs checked. Records next to
        each other in a shard are fetched with one read."""
        shards, numbers = self._rows.locate(rows)
        out: list = [None] * len(rows)
        for shard in np.unique(shards).tolist():
            picked = np.flatnonzero(shards == shard)
            wanted, where = np.unique(numbers[picked], return_inverse=True)
            data = self._read_runs(shard, wanted)
            for i, w in zip(picked.tolist(), where.tolist()):
                out[i] = data[w]
        return out

    def _read_runs(self, shard: int, numbers: np.ndarray) -> list[bytes]:
        """Data of the (sorted, distinct) records `numbers` of one shard."""
        index, fd = self._indexes[shard], self._fds[shard]
        breaks = np.flatnonzero(np.diff(numbers) != 1) + 1
        data = []
        for run in np.split(numbers, breaks):
            first, last = int(run[0]), int(run[-1])
            offsets = index.offsets(first, last + 1)
            start = int(offsets[0])
            blob = os.pread(fd, int(offsets[-1]) - start, start)
            for number, (s, e) in enumerate(zip(offsets[:-1].tolist(), offsets[1:].tolist())):
                data.append(self._check(blob, s - start, e - start, index.shard, first + number))
        return data

    @staticmethod
    def _check(blob: bytes, start: int, end: int, shard: Path, number: int) -> bytes:
        """The data of the record blob[start:end], after checking its framing and CRCs."""
        if end > len(blob):
            raise RecordsError(f"{shard}: record {number} is cut short (truncated file)")
        length, length_crc = _HEADER.unpack_from(blob, start)
        if masked_crc32c(blob[start : start + 8]) != length_crc or length != end - start - 16:
            raise RecordsError(f"{shard}: record {number} has a corrupt length")
        data = blob[start + 12 : end - 4]
        if masked_crc32c(data) != int.from_bytes(blob[end - 4 : end], "little"):
            raise RecordsError(f"{shard}: record {number} has corrupt data (CRC mismatch)")
        return data

    def _raise_for_bad_example(self, rows: np.ndarray, records: list[bytes]) -> None:
        """A batch failed to parse: name the shard and record of the first bad example."""
        shards, numbers = self._rows.locate(rows)
        expected = set(self.columns)
        for shard, number, data in zip(shards.tolist(), numbers.tolist(), records):
            where = f"{self.files[shard]}: record {number}"
            try:
                names = set(parse_examples([data]))
            except (RecordsError, IndexError, UnicodeDecodeError) as error:
                raise RecordsError(f"{where} is not a valid tf.train.Example ({error})") from None
            if expected and names != expected:
                raise RecordsError(
                    f"{where} has columns {sorted(names)}, expected {sorted(expected)}"
                )

    def close(self) -> None:
        for index in self._indexes:
            index.close()
        for fd in self._fds:
            os.close(fd)
        self._indexes, self._fds = [], []

    def __enter__(self) -> IndexedRecords:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LoadedRecords:
    """The IndexedRecords interface over rows loaded whole into memory (MindRecord)."""

    def __init__(self, path):
        self.path = Path(path)
        self.task = read_task_info(self.path) if self.path.is_dir() else {}
        self._columns = load_records(self.path)
        self.columns = list(self._columns)
        first = next(iter(self._columns.values()), np.zeros(0))
        self.num_rows = len(first)
        mask = self._columns.get("input_mask")
        self.lengths = (
            mask.reshape(self.num_rows, -1).sum(axis=1)
            if mask is not None
            else np.full(self.num_rows, first[0].size if self.num_rows else 0)
        )

    def __len__(self) -> int:
        return self.num_rows

    def read(self, rows, columns: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        rows = np.asarray(rows, np.int64).reshape(-1)
        return {c: self._columns[c][rows] for c in (columns or self.columns)}

    def close(self) -> None:
        pass

    def __enter__(self) -> LoadedRecords:
        return self

    def __exit__(self, *exc) -> None:
        pass


def write_row_indexes(path) -> list[Path]:
    """Build (or check) the row index of every TFRecord shard of a records directory; returns
    the index files. `tinybert-data corpus` does this right after writing."""
    _, files = record_files(path)
    for file in files:
        ShardIndex.open(file).close()
    return [index_path(file) for file in files]


def open_records(path, build_index: bool = True) -> IndexedRecords | LoadedRecords:
    """Random access to a records directory or file: TFRecord through row indexes (bounded
    memory); MindRecord loaded into memory, with a warning."""
    format, _ = record_files(path)
    if format == "tfrecord":
        return IndexedRecords(path, build_index=build_index)
    logger.warning(
        "%s: MindRecord rows are loaded whole into memory (random access with bounded memory "
        "reads TFRecord; write the records with --format tfrecord for corpus-size data)",
        path,
    )
    return LoadedRecords(path)

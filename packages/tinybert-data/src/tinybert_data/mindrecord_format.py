"""MindRecord writing and reading; needs the `tinybert-data[mindrecord]` extra (mindspore).

mindspore is imported inside the functions only, so the base install never loads it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np


def _mindrecord():
    try:
        from mindspore import mindrecord
    except ImportError:
        raise ImportError(
            "MindRecord needs mindspore: pip install 'tinybert-data[mindrecord]'"
        ) from None
    return mindrecord


class MindRecordShards:
    """Rows appended to `num_shards` MindRecord files named `<path>` (one shard) or
    `<path>0`, `<path>1`, ... (MindSpore's naming), each with its `.db` index."""

    def __init__(self, path: Path, num_shards: int, shapes: dict[str, tuple]):
        self._writer = _mindrecord().FileWriter(str(path), shard_num=num_shards, overwrite=True)
        schema = {
            name: {"type": "int32", "shape": list(shape)} if shape else {"type": "int32"}
            for name, shape in shapes.items()
        }
        self._writer.add_schema(schema, "tinybert-data")

    def write(self, batch: dict[str, np.ndarray]) -> None:
        n = len(next(iter(batch.values())))
        rows = [{name: values[i] for name, values in batch.items()} for i in range(n)]
        if rows:
            self._writer.write_raw_data(rows)

    def close(self) -> None:
        self._writer.commit()


def read_mindrecord(
    first_file: Path, batch_size: int, columns: Sequence[str] | None, order: Sequence[str]
) -> Iterator[dict[str, np.ndarray]]:
    """Batches of all rows of a MindRecord dataset (every shard, given its first file), with the
    given columns or all of them, those named in `order` first and in that order."""
    columns = list(columns) if columns else None
    reader = _mindrecord().FileReader(str(first_file), num_consumer=1, columns=columns)
    try:
        batch = []
        for row in reader.get_next():
            if columns is None:
                columns = [c for c in order if c in row] + sorted(c for c in row if c not in order)
            batch.append(row)
            if len(batch) == batch_size:
                yield _stack(batch, columns)
                batch = []
        if batch:
            yield _stack(batch, columns)
    finally:
        reader.close()


def _stack(rows: list, columns: Sequence[str]) -> dict[str, np.ndarray]:
    return {c: np.stack([np.asarray(r[c]) for r in rows]).astype(np.int32) for c in columns}

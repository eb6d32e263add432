"""Overlap batched tokenization with Python work on the previous batch."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

Batch = TypeVar("Batch")
Result = TypeVar("Result")


def ahead(function: Callable[[Batch], Result], batches: Iterable[Batch]) -> Iterator[tuple]:
    """(batch, function(batch)) for each batch, in order, with the next batch's function
    running in a worker thread while the caller handles the current one.

    `tokenizers` releases the GIL while it encodes, so tokenizing batch k+1 overlaps with
    reading input and writing records of batch k instead of waiting for it.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        previous = None
        for batch in batches:
            future = pool.submit(function, batch)
            if previous is not None:
                yield previous[0], previous[1].result()
            previous = (batch, future)
        if previous is not None:
            yield previous[0], previous[1].result()

"""Dynamic batching for tinybert-serve: requests wait in one queue and one batcher task turns
them into model calls.

A request is a list of rows (one per input) with their lengths in tokens. The batcher fills a
batch first come, first served, each request's rows shortest first, while
  - padded rows x longest row stays within `max_batch_tokens` (every row of a batch is padded
    to its longest, so that is what the model computes), and
  - the batch holds rows of at most `max_batch_requests` requests;
a request whose rows do not all fit is split, and its other rows open the next batch. A row
longer than the whole budget runs alone. When the model is idle, the first request of a batch
waits up to `max_wait` seconds for company (0: none); while the model runs, the next batch
fills by itself, so batches grow with the load either way.

`run_batch(rows) -> results` runs in `executor`, which should have one thread: one model
session then owns the cores, and the event loop stays free to read and answer requests while
the model computes. A result that is an exception fails its request; so does a batch whose
`run_batch` raises, and the batcher goes on with the next.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor


class Refused(Exception):
    """A request the batcher will not queue: the queue is full, or the batcher has closed."""


class _Request:
    """One client's rows, the results delivered so far, and the future its handler awaits."""

    def __init__(self, rows: Sequence, lengths: Sequence[int], future, arrived: float):
        self.rows = rows
        self.lengths = lengths
        self.order = sorted(range(len(rows)), key=lengths.__getitem__)  # shortest first
        self.taken = 0  # rows of `order` already put into a batch
        self.results = [None] * len(rows)
        self.left = len(rows)
        self.future = future
        self.arrived = arrived

    def deliver(self, row: int, result) -> None:
        if self.future.done():  # failed by an earlier batch, or its client has gone
            return
        if isinstance(result, BaseException):
            self.future.set_exception(result)
            return
        self.results[row] = result
        self.left -= 1
        if not self.left:
            self.future.set_result(self.results)


class Batcher:
    """The queue and the batcher task (`run`); `submit` is called from request handlers."""

    def __init__(
        self,
        run_batch: Callable[[list], list],
        executor: Executor,
        max_batch_tokens: int,
        max_batch_requests: int,
        max_wait: float,
        max_queue: int,
        on_batch: Callable[[int, int, float], None] | None = None,
    ):
        self.run_batch = run_batch
        self.executor = executor
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_requests = max_batch_requests
        self.max_wait = max_wait
        self.max_queue = max_queue
        self.on_batch = on_batch  # (rows, padded tokens, seconds) of every batch run
        self._waiting: deque = deque()
        self._arrival = asyncio.Event()
        self._draining = False  # no more company is coming: run batches without waiting
        self._closed = False  # run() returns once the queue is empty

    @property
    def depth(self) -> int:
        """Requests waiting for (the rest of) their rows to be run."""
        return len(self._waiting)

    async def submit(self, rows: Sequence, lengths: Sequence[int]) -> list:
        """The results of `rows`, in their order, once all have run; `Refused` when
        `max_queue` requests are already waiting."""
        if not rows:
            return []
        if self._closed:
            raise Refused("the server is shutting down")
        if len(self._waiting) >= self.max_queue:
            raise Refused(f"the queue is full ({self.max_queue} requests waiting)")
        loop = asyncio.get_running_loop()
        request = _Request(rows, lengths, loop.create_future(), loop.time())
        self._waiting.append(request)
        self._arrival.set()
        return await request.future

    def drain(self) -> None:
        """Stop waiting for company: the server takes no new connections."""
        self._draining = True
        self._arrival.set()

    async def close(self, task: asyncio.Task) -> None:
        """Run what is queued, then end `task` (the one running `run`)."""
        self._draining = self._closed = True
        self._arrival.set()
        await task

    async def run(self) -> None:
        """The batcher task: forms and runs batches until closed and empty."""
        loop = asyncio.get_running_loop()
        while True:
            while not self._waiting:
                if self._closed:
                    return
                self._arrival.clear()
                await self._arrival.wait()
            deadline = self._waiting[0].arrived + self.max_wait
            while not self._draining and not self._plan()[1]:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                self._arrival.clear()
                try:
                    await asyncio.wait_for(self._arrival.wait(), remaining)
                except asyncio.TimeoutError:
                    break
            batch, _ = self._plan()
            for request, _ in batch:
                request.taken += 1
            self._waiting = deque(
                r for r in self._waiting if r.taken < len(r.order) and not r.future.done()
            )
            if batch:
                await self._run(batch, loop)

    def _plan(self) -> tuple:
        """The next batch as [(request, row)], and whether it is full (the next row waiting
        would not fit)."""
        batch, requests, longest = [], 0, 0
        for request in self._waiting:
            if request.future.done():
                continue
            if requests == self.max_batch_requests:
                return batch, True
            requests += 1
            for row in request.order[request.taken :]:
                length = max(longest, request.lengths[row])
                if batch and (len(batch) + 1) * length > self.max_batch_tokens:
                    return batch, True
                batch.append((request, row))
                longest = length
        return batch, False

    async def _run(self, batch: list, loop) -> None:
        rows = [request.rows[row] for request, row in batch]
        started = loop.time()
        try:
            results = await loop.run_in_executor(self.executor, self.run_batch, rows)
        except Exception as error:  # any failure of one batch fails its requests, not the server
            results = [error] * len(rows)
        if self.on_batch:
            longest = max(request.lengths[row] for request, row in batch)
            self.on_batch(len(rows), len(rows) * longest, loop.time() - started)
        for (request, row), result in zip(batch, results):
            request.deliver(row, result)

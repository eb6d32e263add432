"""The HTTP side of tinybert-serve (extra `tinybert-deploy[serve]`): a Starlette application on
uvicorn around one `Predictor` and one `Batcher`.

    app = InferenceApp(Predictor.from_model("student.onnx"), Limits(2048, 32, 0, 512, 1 << 20))
    make_server(app).run(sockets=[listening_socket])

POST /predict      {"inputs": "text" | ["text", ...] | [["question", "sentence"], ...]}:
                   per input what tinybert-predict prints, plus "truncated"; one object for a
                   string, a list in input order for a list
GET  /health       200 once the model is warmed up; 503 before, and while draining
GET  /info         task, labels, lengths, runtime and precision, version, limits
GET  /metrics      Prometheus text format

Tokenization runs in the request's handler; the batcher runs the model and the post-processing
of `Predictor` in its one worker thread. Errors answer with {"error": "<one line>"}.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
import uvicorn
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tinybert_data import Encoding

from . import __version__
from .batching import Batcher, Refused
from .errors import DeployError
from .runtime import INPUTS, Predictor

log = logging.getLogger("tinybert_deploy.serve")

RETRY_AFTER = "1"  # seconds, for every 503
TOKENIZE_CHUNK = 32  # inputs tokenized between two looks at other requests (~3 ms)
PATHS = ("/predict", "/health", "/info", "/metrics")  # the metrics' path label; others: "other"


class Limits(NamedTuple):
    """What one model call, the queue and a request body may hold (tinybert-serve's flags)."""

    max_batch_tokens: int
    max_batch_requests: int
    max_wait_ms: float
    max_queue: int
    max_body_bytes: int


class HttpError(Exception):
    """A request answered with `status` and {"error": message}."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Row(NamedTuple):
    """One input: its texts (text_a, text_b or None), their encoding, its real tokens."""

    pair: tuple
    encoding: Encoding
    length: int


def _kind(value) -> str:
    return {dict: "an object", list: "a list", str: "a text", bool: "a boolean"}.get(
        type(value), "null" if value is None else "a number"
    )


def _text(value, where: str) -> str:
    if not isinstance(value, str):
        raise HttpError(400, f"{where} is {_kind(value)}, not a text")
    if not value.strip():
        raise HttpError(400, f"{where} is blank: every input needs a text")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise HttpError(400, f"{where} holds a lone surrogate: not valid Unicode text") from None
    return value


def _one_text(value, where: str, pairs: bool | None, model: str) -> tuple:
    if pairs:
        raise HttpError(400, f"{where} is one text, but {model} reads sentence pairs [text, text]")
    return _text(value, where), None


def parse_inputs(body: bytes, pairs: bool | None, model: str = "this model") -> tuple:
    """(list of (text_a, text_b or None), whether one string was sent) from a request body;
    HttpError 400 says what is wrong. `pairs`: whether the model reads sentence pairs
    (`OnnxModel.reads_pairs`; None: it takes both); `model` names it in the messages."""
    try:
        document = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise HttpError(
            400, f"the body is not UTF-8 text (0x{body[error.start]:02x} at offset {error.start})"
        ) from None
    except json.JSONDecodeError as error:
        raise HttpError(
            400, f"the body is not JSON: {error.msg}: line {error.lineno} column {error.colno}"
        ) from None
    if not isinstance(document, dict) or "inputs" not in document:
        raise HttpError(400, 'expected a JSON object {"inputs": ...}')
    unknown = sorted(set(document) - {"inputs"})
    if unknown:
        raise HttpError(400, f'unknown key "{unknown[0]}": the body is {{"inputs": ...}}')
    inputs = document["inputs"]
    if isinstance(inputs, str):
        return [_one_text(inputs, '"inputs"', pairs, model)], True
    if not isinstance(inputs, list):
        raise HttpError(
            400,
            f'"inputs" is {_kind(inputs)}: send a text, a list of texts or a list of '
            "[text, text] pairs",
        )
    if not inputs:
        raise HttpError(400, '"inputs" is an empty list: send at least one text')
    parsed = []
    for index, item in enumerate(inputs):
        where = f"inputs[{index}]"
        if isinstance(item, list):
            if len(item) != 2:
                raise HttpError(400, f"{where} has {len(item)} elements: a pair is [text, text]")
            if pairs is False:
                raise HttpError(400, f"{where} is a sentence pair, but {model} reads one text")
            parsed.append((_text(item[0], f"{where}[0]"), _text(item[1], f"{where}[1]")))
        elif isinstance(item, str):
            parsed.append(_one_text(item, where, pairs, model))
        else:
            raise HttpError(400, f"{where} is {_kind(item)}, not a text or a [text, text] pair")
    return parsed, False


class Metrics:
    """What /metrics reports, in a registry of its own (one per app)."""

    def __init__(self, queue_depth):
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        seconds = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10)
        self.requests = Counter(
            "tinybert_serve_requests",
            "HTTP requests by path and status",
            ["path", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tinybert_serve_request_seconds",
            "Time from a request's arrival to its answer, by path",
            ["path"],
            buckets=seconds,
            registry=self.registry,
        )
        self.tokenize = Histogram(
            "tinybert_serve_tokenize_seconds",
            "Tokenization of one /predict request",
            buckets=seconds,
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "tinybert_serve_batch_seconds",
            "One batch in the model thread: padding, the model, post-processing",
            buckets=seconds,
            registry=self.registry,
        )
        self.batch_rows = Histogram(
            "tinybert_serve_batch_rows",
            "Rows (inputs) per batch",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=self.registry,
        )
        self.batch_tokens = Histogram(
            "tinybert_serve_batch_tokens",
            "Padded tokens per batch (rows x longest row)",
            buckets=(16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384),
            registry=self.registry,
        )
        Gauge(
            "tinybert_serve_queue_depth",
            "Requests waiting for the model",
            registry=self.registry,
        ).set_function(queue_depth)

    def batch(self, rows: int, tokens: int, seconds: float) -> None:
        self.batch_rows.observe(rows)
        self.batch_tokens.observe(tokens)
        self.batch_seconds.observe(seconds)


class InferenceApp:
    """The ASGI application (`.asgi`) serving one predictor within `limits`."""

    def __init__(self, predictor: Predictor, limits: Limits):
        self.predictor = predictor
        self.limits = limits
        self.pairs = predictor.model.reads_pairs
        task = predictor.model.task
        self.described = f"this {task} model" if task else "this model"  # in 400s
        self.state = "warming up"  # then "ready" (or "failed"), then "draining"
        self.batcher = None
        self.loop = None
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="tinybert-model")
        self.metrics = Metrics(lambda: self.batcher.depth if self.batcher else 0)
        routes = [
            Route("/predict", self.predict, methods=["POST"]),
            Route("/health", self.health),
            Route("/info", self.info),
            Route("/metrics", self.prometheus),
        ]
        self.asgi = self._observed(Starlette(routes=routes, lifespan=self._lifespan))

    # ---- life: warm-up, then serving, then draining --------------------------------------

    @contextlib.asynccontextmanager
    async def _lifespan(self, _app):
        self.loop = asyncio.get_running_loop()
        limits = self.limits
        self.batcher = Batcher(
            self.run_batch,
            self.executor,
            limits.max_batch_tokens,
            limits.max_batch_requests,
            limits.max_wait_ms / 1000,
            limits.max_queue,
            self.metrics.batch,
        )
        batching = asyncio.create_task(self.batcher.run())
        warming = asyncio.create_task(self._warm_up())
        try:
            yield
        finally:
            self._drain()
            await self.batcher.close(batching)
            await warming
            self.executor.shutdown()
            log.info("stopped")

    async def _warm_up(self) -> None:
        started = time.perf_counter()
        try:
            await self.loop.run_in_executor(self.executor, self._warm_up_model)
        except Exception as error:  # the model cannot run: stay up, unhealthy, and say why
            self.state = "failed"
            log.error("the model failed to run: %s", error)
            return
        if self.state == "warming up":
            self.state = "ready"
            log.info("ready (warm-up %.2f s)", time.perf_counter() - started)

    def _warm_up_model(self) -> None:
        """Run the largest batch the limits allow and one short row: the first runs of a
        shape allocate memory and pick kernels, which the first clients should not wait for."""
        longest = self.predictor.max_length
        text = " ".join(["a"] * longest)
        rows = max(1, self.limits.max_batch_tokens // longest)
        self.run_batch([self._row((text, None))] * rows)
        self.run_batch([self._row(("a", None))])

    def begin_draining(self) -> None:
        """From a signal handler: stop waiting for company, report unhealthy."""
        self.loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        if self.state != "draining":
            self.state = "draining"
            self.batcher.drain()
            log.info(
                "draining: no new connections; finishing %d queued requests", self.batcher.depth
            )

    # ---- the model, in the batcher's thread ------------------------------------------------

    def run_batch(self, rows: list) -> list:
        """Results of rows padded to their longest, as tinybert-predict computes them."""
        # Cut to the longest before the arrays are made, not after as `trimmed` does: 32 rows
        # padded to 512 positions take 2.5 ms to convert, cut to 40 tokens 0.3 ms.
        longest = max(row.length for row in rows)
        columns = {
            name: np.array([getattr(row.encoding, name)[:longest] for row in rows], np.int32)
            for name in INPUTS
        }
        logits = self.predictor.model.logits(*(columns[name] for name in INPUTS))
        results = []
        for row, row_logits in zip(rows, logits):
            try:
                result = self.predictor.result(row.pair, row.encoding, row_logits)
            except DeployError as error:  # non-finite logits: this row fails, not the batch
                result = error
            else:
                result["truncated"] = row.encoding.truncated
            results.append(result)
        return results

    # ---- endpoints -----------------------------------------------------------------------

    async def predict(self, request: Request) -> Response:
        try:
            if self.state not in ("ready", "draining"):
                raise HttpError(503, f"the model is not ready ({self.state})")
            body = await self._body(request)
            pairs, single = parse_inputs(body, self.pairs, self.described)
            rows = await self._tokenized(pairs)
            try:
                results = await self.batcher.submit(rows, [row.length for row in rows])
            except Refused as refused:
                raise HttpError(503, f"{refused}: retry later") from None
            except Exception as error:  # the model failed on this batch: say so, keep serving
                log.error("inference failed: %s", error)
                raise HttpError(500, f"inference failed: {error}") from None
        except HttpError as error:
            headers = {"Retry-After": RETRY_AFTER} if error.status == 503 else None
            return JSONResponse({"error": str(error)}, error.status, headers)
        except ClientDisconnect:  # nobody is left to answer; 499 as nginx logs it
            return Response(status_code=499)
        return JSONResponse(results[0] if single else results)

    async def _tokenized(self, pairs: list) -> list:
        """Rows of `pairs`, tokenized here on the event loop (a handful of inputs takes less
        than a trip to a thread), TOKENIZE_CHUNK at a time: between chunks other requests
        are read and answered, so a body full of texts does not stall them."""
        rows, seconds = [], 0.0
        for start in range(0, len(pairs), TOKENIZE_CHUNK):
            if start:
                await asyncio.sleep(0)
            started = time.perf_counter()
            rows += [self._row(pair) for pair in pairs[start : start + TOKENIZE_CHUNK]]
            seconds += time.perf_counter() - started
        self.metrics.tokenize.observe(seconds)
        return rows

    def _row(self, pair: tuple) -> Row:
        encoding = self.predictor.tokenizer.encode(*pair, self.predictor.max_length)
        return Row(pair, encoding, sum(encoding.input_mask))

    async def _body(self, request: Request) -> bytes:
        limit = self.limits.max_body_bytes
        too_large = HttpError(413, f"the body is over --max_body_bytes ({limit} bytes)")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise too_large
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise too_large
        return bytes(body)

    async def health(self, _request: Request) -> Response:
        if self.state == "ready":
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": self.state}, 503, {"Retry-After": RETRY_AFTER})

    async def info(self, _request: Request) -> Response:
        model = self.predictor.model
        return JSONResponse(
            {
                "model": str(model.path),
                "task": model.task,
                "task_type": model.task_type,
                "labels": model.labels,
                "pairs": self.pairs,  # sentence pairs: true, false, or null (both taken)
                "seq_length": model.seq_length,  # trained at (None for models before 0.2)
                "max_length": self.predictor.max_length,  # longer inputs are truncated
                "runtime": self.predictor.path,
                "version": __version__,
                "limits": self.limits._asdict(),
                "state": self.state,
            }
        )

    async def prometheus(self, _request: Request) -> Response:
        return Response(
            generate_latest(self.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    def _observed(self, app):
        """`app` counting and timing every request in the metrics, with a debug log line each."""

        async def observed(scope, receive, send):
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            started = time.perf_counter()
            status = 500

            async def send_status(message):
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await app(scope, receive, send_status)
            finally:
                seconds = time.perf_counter() - started
                path = scope["path"] if scope["path"] in PATHS else "other"
                self.metrics.requests.labels(path, str(status)).inc()
                self.metrics.latency.labels(path).observe(seconds)
                log.debug(
                    "%s %s %d %.2f ms", scope["method"], scope["path"], status, seconds * 1000
                )

        return observed


class _Server(uvicorn.Server):
    """uvicorn's server, telling the app when a signal begins the shutdown."""

    def __init__(self, config: uvicorn.Config, app: InferenceApp):
        super().__init__(config)
        self.inference_app = app

    def handle_exit(self, sig, frame) -> None:
        if self.inference_app.loop is not None:
            self.inference_app.begin_draining()
        super().handle_exit(sig, frame)


def make_server(app: InferenceApp) -> uvicorn.Server:
    """A uvicorn server for `app`; run it with `.run(sockets=[a listening socket])`. On SIGTERM
    or Ctrl-C it stops accepting connections, answers what is queued, then returns."""
    config = uvicorn.Config(
        app.asgi,
        lifespan="on",
        log_config=None,  # our logging as configured by the caller
        access_log=False,  # one debug line per request comes from the app
        server_header=False,
    )
    return _Server(config, app)

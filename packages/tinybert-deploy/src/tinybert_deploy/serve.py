"""tinybert-serve: an exported model behind HTTP, with dynamic batching (extra
`tinybert-deploy[serve]`; the application is in server.py, the batcher in batching.py).

    tinybert-serve --model student.onnx [--host 127.0.0.1] [--port 8080]

The model is loaded before the server listens, so a bad model or flag ends with one line and
exit code 1; the warm-up runs once it listens (/health answers 503 until it is done). SIGTERM
or Ctrl-C: no new connections, what is queued is answered, then exit code 0.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket

from tinybert_core import quiet_on_closed_stdout

from .cli import _add_runtime_flags, _run
from .errors import DeployError


def _at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below {minimum}")
        return value

    return parse


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinybert-serve",
        description="Serve an exported ONNX model over HTTP with dynamic batching: POST /predict "
        '{"inputs": "text" | ["text", ...] | [["question", "sentence"], ...]} answers what '
        "tinybert-predict prints per input; GET /health, /info, /metrics (Prometheus). Needs "
        "pip install 'tinybert-deploy[serve]'.",
    )
    parser.add_argument("--model", required=True, help="model.onnx from tinybert-export")
    parser.add_argument(
        "--vocab",
        help="vocab.txt the model's data was tokenized with (only for models exported before "
        "0.2; refused if it is not the model's own)",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1, this machine only; 0.0.0.0 for all)",
    )
    parser.add_argument(
        "--port", type=_at_least(0), default=8080, help="TCP port (default 8080; 0: any free one)"
    )
    parser.add_argument(
        "--max_batch_tokens",
        type=_at_least(1),
        default=2048,
        help="token budget of one model call, counted as padded rows x longest row (default "
        "%(default)s); a longer single input runs alone",
    )
    parser.add_argument(
        "--max_batch_requests",
        type=_at_least(1),
        default=32,
        help="requests whose inputs may share one model call (default %(default)s; 1 turns "
        "batching across requests off)",
    )
    parser.add_argument(
        "--max_wait_ms",
        type=_at_least(0),
        default=0,
        help="how long the first request of a batch may wait for company when the model is "
        "idle (default %(default)s: run at once; batches still grow while the model is busy)",
    )
    parser.add_argument(
        "--max_queue",
        type=_at_least(1),
        default=512,
        help="requests that may wait for the model; more are answered 503 with Retry-After "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--max_body_bytes",
        type=_at_least(1),
        default=1 << 20,
        help="largest request body; larger ones are answered 413 (default %(default)s)",
    )
    parser.add_argument(
        "--max_length",
        type=int,
        help="truncate longer inputs, as tinybert-predict does (default: the model's maximum); "
        'answers say "truncated": true',
    )
    _add_runtime_flags(parser)
    parser.add_argument(
        "--log_level",
        default="info",
        choices=["debug", "info", "warning"],
        help="debug adds one line per request (default info)",
    )
    return parser


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port and listening."""
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        listener = socket.socket(family, kind, protocol)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.listen(2048)
    except OSError as error:
        raise DeployError(
            f"cannot listen on {host} port {port}: {error.strerror or error}"
        ) from None
    return listener


@quiet_on_closed_stdout
def main(argv=None) -> int:
    args = parser().parse_args(argv)

    def work(args):
        try:
            from .server import InferenceApp, Limits, make_server
        except ImportError as error:
            if (error.name or "").startswith("tinybert"):  # ours, not the extra
                raise
            raise DeployError(
                f"tinybert-serve needs the serve extra ({error.name} is missing): "
                "pip install 'tinybert-deploy[serve]'"
            ) from None
        from .runtime import Predictor

        logging.getLogger().setLevel(args.log_level.upper())
        if args.log_level != "debug":  # uvicorn's own start and stop lines
            logging.getLogger("uvicorn").setLevel(logging.WARNING)
        predictor = Predictor.from_model(
            args.model,
            args.vocab,
            args.threads,
            max_length=args.max_length,
            runtime=args.runtime,
            spinning=False,  # the event loop shares the cores with the model's threads
        )
        limits = Limits(**{name: getattr(args, name) for name in Limits._fields})
        app = InferenceApp(predictor, limits)
        listener = listening_socket(args.host, args.port)
        host, port = listener.getsockname()[:2]
        model = predictor.model
        logging.getLogger("tinybert_deploy").info(
            "listening on http://%s:%d (%s: %s %s, %s, inputs up to %d tokens; %s)",
            f"[{host}]" if ":" in host else host,
            port,
            args.model,
            model.task or "unknown task",
            model.task_type,
            predictor.path,
            predictor.max_length,
            ", ".join(f"{name} {value}" for name, value in limits._asdict().items()),
        )
        # uvicorn raises the signal again once it has shut down, which would end the process
        # with the signal's status (143 for SIGTERM); ignored here, a drained server exits 0.
        for handled in (signal.SIGINT, signal.SIGTERM):
            signal.signal(handled, signal.SIG_IGN)
        make_server(app).run(sockets=[listener])

    return _run("tinybert-serve", work, args)


if __name__ == "__main__":
    raise SystemExit(main())

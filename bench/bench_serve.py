"""Does tinybert-serve's dynamic batching pay under load, and what do HTTP and the queue cost
against the model in process? (issue 36) On loopback, in one run:

(a) tinybert-serve with dynamic batching (its defaults);
(b) the same server with batching off (`--max_batch_requests 1`): one model call per request,
    what a hand-written per-request server does;
(c) the same model in this process (tinybert-predict's Python API): at concurrency c, c
    sentences in one `Predictor.predict` call, each waiting the call's time: the model's own
    cost without HTTP, and at concurrency 1 tinybert-predict's in-process latency.

The model is the demo's student, TinyBERT-4 (4 x 312) for SST-2, on bench_deploy's fastest path
for one sentence, int8 dynamic on ONNX Runtime: a random TinyBERT-4 checkpoint (speed does not
depend on the weights) or `--student` (a demo run's td/best.ckpt, or an
exported .onnx used as it is). The load generator is asyncio with one keep-alive HTTP/1.1
connection per client, each sending one SST-2 dev sentence (data/sst2/dev.tsv) per request and
the next once answered; each run is bounded by `--requests` and `--seconds`. It shares the
2 cores with the server, as any client on the same machine would.

Per configuration and concurrency (1, 8, 32, 128): requests/s, p50/p99 latency, failures,
mean batch size (the server's /metrics), and where a request's time goes: HTTP and the client
(client latency minus the server's time), tokenization, waiting in the queue, the model (its
batch). Then the overload check: the highest concurrency against a --max_queue of an eighth of
it (128 against 16) must give only 200s and 503s. Targets: at concurrency 32, (a) at least 3x
the requests/s of (b) with p99 under 100 ms; at concurrency 1, (a)'s p50 within 1 ms of (c)'s.
A PNG (throughput and p99 against concurrency) goes to `--plot`.

`--smoke`: 40 requests at concurrency 1 and 8, the plot in a temporary folder: the code runs;
its figures mean nothing.

    python bench/bench_serve.py [--student td/best.ckpt | student.onnx] [--requests 3000]
        [--seconds 20] [--concurrency 1 8 32 128] [--plot docs/serve_load.png] [--smoke]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

from common import ROOT, SST2_DEV, machine, pyplot, script, tinybert4_checkpoint

CONFIGURATIONS = {
    "(a) tinybert-serve, batching": [],
    "(b) tinybert-serve, --max_batch_requests 1": ["--max_batch_requests", "1"],
}
IN_PROCESS = "(c) in process, Predictor.predict"


def student(folder: Path, given: str | None) -> Path:
    """The int8 file of the student (an .onnx given is used as it is)."""
    if given and given.endswith(".onnx"):
        return Path(given)
    from tinybert_deploy.export import export

    checkpoint = Path(given) if given else tinybert4_checkpoint(folder)
    export(checkpoint, None, folder / "student", quantize="dynamic")
    return folder / "student.int8.onnx"


def sst2_bodies() -> tuple:
    lines = SST2_DEV.read_text(encoding="utf-8").splitlines()[1:]
    sentences = [line.split("\t")[0].strip() for line in lines]
    return sentences, [json.dumps({"inputs": s}).encode() for s in sentences]


# ---- the server and the load generator -------------------------------------------------------


class Server:
    """tinybert-serve in a subprocess on a free loopback port, ready once constructed."""

    def __init__(self, model: Path, flags: list):
        command = [script("tinybert-serve"), "--model", str(model), "--port", "0", *flags]
        self.process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        lines = []
        for line in self.process.stderr:
            lines.append(line)
            found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
            if found:
                self.port = int(found.group(1))
            if "ready" in line:
                return
        raise SystemExit(f"tinybert-serve did not start ({self.process.wait()}):\n{''.join(lines)}")

    def stop(self) -> None:
        self.process.terminate()
        code = self.process.wait(60)
        if code != 0:
            raise SystemExit(f"tinybert-serve exited with {code} on SIGTERM")


class Connection:
    """One keep-alive HTTP/1.1 connection, as little client work per request as possible."""

    async def open(self, port: int) -> Connection:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        return self

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple:
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"Content-Type: application/json\r\n\r\n" + body)
        header = await self.reader.readuntil(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: *(\d+)", header).group(1))
        return int(header.split(b" ", 2)[1]), await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def load(port: int, bodies: list, concurrency: int, requests: int, seconds: float):
    """(latencies of the 200s, status counts, wall seconds) of `requests` requests at most,
    `seconds` at most, from `concurrency` clients."""
    connections = [await Connection().open(port) for _ in range(concurrency)]
    latencies, statuses, sent = [], Counter(), 0
    started = time.perf_counter()
    deadline = started + seconds

    async def client(connection):
        nonlocal sent
        while sent < requests and time.perf_counter() < deadline:
            body = bodies[sent % len(bodies)]
            sent += 1
            begun = time.perf_counter()
            try:
                status, _ = await connection.request("POST", "/predict", body)
            except (asyncio.IncompleteReadError, ConnectionError):  # lost: count it, go on
                status = "lost"
                connection.close()
                connection = await Connection().open(port)
            statuses[status] += 1
            if status == 200:
                latencies.append(time.perf_counter() - begun)

    await asyncio.gather(*(client(c) for c in connections))
    wall = time.perf_counter() - started
    for connection in connections:
        connection.close()
    return latencies, statuses, wall


async def metrics(port: int) -> dict:
    """(sample name, labels) -> value from /metrics."""
    connection = await Connection().open(port)
    _, text = await connection.request("GET", "/metrics")
    connection.close()
    samples = {}
    for name, labels, value in re.findall(r"^(\w+)(\{[^}]*\})? (\S+)$", text.decode(), re.M):
        samples[name, labels] = float(value)
    return samples


def change(before: dict, after: dict, name: str, labels: str = "") -> float:
    return after.get((name, labels), 0.0) - before.get((name, labels), 0.0)


def measure_server(port: int, bodies, concurrency: int, args) -> dict:
    async def run():
        # a short warm-up at this concurrency: connections, the shapes it makes
        await load(port, bodies, concurrency, concurrency * 4, args.seconds)
        before = await metrics(port)
        latencies, statuses, wall = await load(
            port, bodies, concurrency, args.requests, args.seconds
        )
        return latencies, statuses, wall, before, await metrics(port)

    latencies, statuses, wall, before, after = asyncio.run(run())
    predict = '{path="/predict"}'
    requests = change(before, after, "tinybert_serve_request_seconds_count", predict)
    batches = change(before, after, "tinybert_serve_batch_seconds_count")
    figures = summary(latencies, sum(statuses.values()), wall)
    figures.update(
        statuses=dict(statuses),
        batch=change(before, after, "tinybert_serve_batch_rows_sum") / max(batches, 1),
        server=change(before, after, "tinybert_serve_request_seconds_sum", predict)
        / max(requests, 1),
        tokenize=change(before, after, "tinybert_serve_tokenize_seconds_sum") / max(requests, 1),
        model=change(before, after, "tinybert_serve_batch_seconds_sum") / max(batches, 1),
    )
    return figures


def summary(latencies: list, sent: int, wall: float) -> dict:
    ordered = sorted(latencies) or [float("nan")]
    return {
        "rps": len(latencies) / wall,
        "p50": ordered[len(ordered) // 2],
        "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        "mean": statistics.fmean(ordered),
        "failed": sent - len(latencies),
    }


def measure_in_process(model: Path, sentences: list, concurrency: int, args) -> dict:
    from tinybert_deploy import Predictor

    predictor = Predictor.from_model(model, batch_size=max(concurrency, 32))
    for start in range(0, concurrency * 4, concurrency):  # warm-up
        predictor.predict(sentences[start : start + concurrency])
    latencies, done = [], 0
    started = time.perf_counter()
    while done < args.requests and time.perf_counter() - started < args.seconds:
        batch = [sentences[(done + i) % len(sentences)] for i in range(concurrency)]
        begun = time.perf_counter()
        predictor.predict(batch)
        latencies += [time.perf_counter() - begun] * concurrency
        done += concurrency
    figures = summary(latencies, len(latencies), time.perf_counter() - started)
    figures.update(batch=concurrency, path=predictor.path)
    return figures


# ---- report ----------------------------------------------------------------------------------


def report(results: dict) -> None:
    print(
        f"\n{'configuration':<44}{'conc.':>6}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'failed':>8}{'batch':>7}   where the time goes (ms per request)"
    )
    for name, by_concurrency in results.items():
        for concurrency, f in by_concurrency.items():
            where = ""
            if "server" in f:
                queue = f["server"] - f["tokenize"] - f["model"]
                where = (
                    f"HTTP+client {(f['mean'] - f['server']) * 1000:.2f}, tokenize "
                    f"{f['tokenize'] * 1000:.2f}, queue {queue * 1000:.2f}, model (its batch) "
                    f"{f['model'] * 1000:.2f}"
                )
            print(
                f"{name:<44}{concurrency:>6}{f['rps']:>9.0f}{f['p50'] * 1000:>9.2f}"
                f"{f['p99'] * 1000:>9.2f}{f['failed']:>8}{f['batch']:>7.1f}   {where}"
            )


def targets(results: dict) -> None:
    batching, per_request = (results[name] for name in CONFIGURATIONS)
    in_process = results[IN_PROCESS]
    if 32 in batching:
        ratio = batching[32]["rps"] / per_request[32]["rps"]
        p99 = batching[32]["p99"] * 1000
        print(
            f"target, concurrency 32: (a) {ratio:.2f}x the requests/s of (b) (at least 3x: "
            f"{'met' if ratio >= 3 else 'NOT met'}), p99 {p99:.1f} ms (under 100: "
            f"{'met' if p99 < 100 else 'NOT met'})"
        )
        if 32 in in_process:  # what no server can pass: the model alone, batches of 32
            ceiling = in_process[32]["rps"] / per_request[32]["rps"]
            print(
                f"  the model in process, batches of 32, no HTTP: {in_process[32]['rps']:.0f} "
                f"sentences/s, {ceiling:.2f}x (b)'s requests/s; (a) reaches "
                f"{batching[32]['rps'] / in_process[32]['rps']:.0%} of it"
            )
    if 1 in batching:
        gap = (batching[1]["p50"] - in_process[1]["p50"]) * 1000
        print(
            f"target, concurrency 1: (a)'s p50 is {gap:.2f} ms above in-process predict's "
            f"(within 1 ms: {'met' if gap <= 1 else 'NOT met'})"
        )
    failed = sum(f["failed"] for name in CONFIGURATIONS for f in results[name].values())
    print(f"target, below the queue limit: {failed} requests failed (none: {failed == 0})")


def plot(results: dict, model: str, output: Path) -> None:
    from matplotlib.ticker import ScalarFormatter

    plt = pyplot()
    fig, (throughput, latency) = plt.subplots(1, 2, figsize=(11, 4.5))
    for name, by_concurrency in results.items():
        levels = sorted(by_concurrency)
        throughput.plot(levels, [by_concurrency[c]["rps"] for c in levels], "o-", label=name)
        latency.plot(levels, [by_concurrency[c]["p99"] * 1000 for c in levels], "o-", label=name)
    latency.set_yscale("log")
    for axis, title in ((throughput, "requests/s"), (latency, "p99 latency, ms")):
        axis.set_xscale("log", base=2)
        axis.set_xticks(levels, [str(c) for c in levels])
        axis.yaxis.set_major_formatter(ScalarFormatter())
        axis.set_xlabel("concurrent clients")
        axis.set_title(title)
        axis.grid(alpha=0.3)
    latency.axhline(100, color="grey", linestyle=":", linewidth=1)
    throughput.legend(fontsize=8)
    fig.suptitle(f"tinybert-serve on loopback, {model}, SST-2 dev sentences", fontsize=11)
    fig.tight_layout()
    fig.savefig(output, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--student", help="td/best.ckpt or an exported .onnx (default: random)")
    parser.add_argument(
        "--requests", type=int, default=3000, help="requests per run, at most (3000)"
    )
    parser.add_argument("--seconds", type=float, default=20, help="seconds per run, at most (20)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 128])
    parser.add_argument("--plot", default=str(ROOT / "docs" / "serve_load.png"), help="PNG")
    parser.add_argument("--smoke", action="store_true", help="a few requests: runs or not")
    args = parser.parse_args()
    try:
        import prometheus_client  # noqa: F401  (the [serve] extra)
    except ImportError:
        raise SystemExit("bench_serve needs tinybert-deploy[serve] installed") from None
    print(machine())
    sentences, bodies = sst2_bodies()
    with tempfile.TemporaryDirectory() as folder:
        if args.smoke:
            args.requests, args.seconds, args.concurrency = 40, 5, [1, 8]
            args.plot = str(Path(folder) / "serve_load.png")
        model = student(Path(folder), args.student)
        results = {}
        for name, flags in CONFIGURATIONS.items():
            server = Server(model, flags)
            results[name] = {
                c: measure_server(server.port, bodies, c, args) for c in args.concurrency
            }
            server.stop()
        results[IN_PROCESS] = {
            c: measure_in_process(model, sentences, c, args) for c in args.concurrency
        }
        label = f"{model.name} ({results[IN_PROCESS][args.concurrency[0]]['path']})"
        print(f"model: {label}")
        report(results)
        targets(results)
        overload = max(args.concurrency)
        server = Server(model, ["--max_queue", str(overload // 8)])
        statuses = measure_server(server.port, bodies, overload, args)["statuses"]
        server.stop()
        print(
            f"overload, concurrency {overload} against --max_queue {overload // 8}: statuses "
            f"{statuses} (only 200 and 503: {set(statuses) <= {200, 503}})"
        )
        plot(results, label, Path(args.plot))
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()

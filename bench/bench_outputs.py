"""MindSpore inference with and without hidden states and attention scores (issue 15).

Until issue 15 every model returned all of its hidden states and attention scores on every
call; now they are returned only when asked for (`output_hidden_states=True,
output_attentions=True`, what distillation asks). This times the two side by side in one
process: the same weights, one model built each way, GRAPH mode, called from Python as
evaluation and teacher-logit computation call it (`model(...)[0]`). Rounds alternate the two
models; the figure is the median over `--repeats` rounds after one warm-up call each.

all-MiniLM-L6-v2's shape (6 x 384, 12 heads, 1536 FFN) with a classification head and a
tagging head, at batch 32 x 64 and 32 x 128 (random ids: speed does not depend on them).

    python bench/bench_outputs.py [--repeats 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time

import numpy as np

MINILM = dict(
    vocab_size=30522,
    hidden_size=384,
    num_hidden_layers=6,
    num_attention_heads=12,
    intermediate_size=1536,
    max_position_embeddings=512,
)
SHAPES = [(32, 64), (32, 128)]


def cpu_model() -> str:
    for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
        if line.startswith("Model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def twin_models(head: str):
    """(logits only, with every layer's outputs): one head class, the same weights."""
    import mindspore as ms

    import tinybert_model
    from tinybert_model import BertConfig

    labels, task_type = (["0", "1"], "classification")
    if head == "BertForTokenClassification":
        labels, task_type = (["O", "B-x", "I-x", "B-y", "I-y"], "ner")
    config = BertConfig.from_dict(dict(MINILM, labels=labels, task_type=task_type))
    model_class = getattr(tinybert_model, head)
    plain = model_class(config)
    layers = model_class(config, output_hidden_states=True, output_attentions=True)
    for mine, theirs in zip(layers.get_parameters(), plain.get_parameters()):
        mine.set_data(ms.Tensor(theirs.asnumpy()))
    plain.set_train(False)
    layers.set_train(False)
    return plain, layers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()

    import mindspore as ms

    ms.set_context(mode=ms.GRAPH_MODE)
    print(f"CPU: {cpu_model()}; MindSpore {ms.__version__}; GRAPH mode; {args.repeats} rounds")
    print("| head | batch x seq | logits only | with hidden states + attentions | ratio |")
    print("|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for head in ("BertForSequenceClassification", "BertForTokenClassification"):
        plain, layers = twin_models(head)
        for batch, seq in SHAPES:
            ids = ms.Tensor(rng.integers(1000, 30000, (batch, seq)).astype(np.int32))
            inputs = (ids, ms.ops.zeros_like(ids), ms.ops.ones_like(ids))
            expected = plain(*inputs)[0].asnumpy()  # warm-up (compiles) and a check
            assert np.array_equal(layers(*inputs)[0].asnumpy(), expected)
            times = {"plain": [], "layers": []}
            for _ in range(args.repeats):
                for name, model in (("plain", plain), ("layers", layers)):
                    started = time.perf_counter()
                    model(*inputs)[0].asnumpy()
                    times[name].append(time.perf_counter() - started)
            fast = statistics.median(times["plain"]) * 1000
            slow = statistics.median(times["layers"]) * 1000
            print(
                f"| {head} | {batch} x {seq} | {fast:.1f} ms | {slow:.1f} ms | {slow / fast:.2f} |"
            )


if __name__ == "__main__":
    main()

"""Make the small committed fixtures the base test session (no MindSpore) runs on.

    python tests/make_fixtures.py        # needs tinybert-deploy[export] (tinybert-model, onnx)

- vocab_en.txt: BERT's special tokens and the 2,000 commonest word pieces of SST-2 dev
  (tokenized with the real uncased vocabulary); vocab_zh.txt: the same from CLUENER dev.
- sst2_tiny.onnx, cluener_tiny.onnx: 2-layer, 32-wide random models over those vocabularies,
  exported with tinybert-export's ONNX writer (weights don't matter for what the tests check:
  shapes, batching, decoding, metrics plumbing).
- sst2_tiny.static.int8.onnx: sst2_tiny.onnx in static int8 (QDQ), calibrated on 64 SST-2
  train rows, for the OpenVINO int8 path (the [openvino] session has no onnx to quantize with).
- wrong_inputs.onnx: a graph whose inputs are not ours.

    python tests/make_fixtures.py static_int8   # that one file alone, from the committed model
"""

import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

import mindspore as ms
import onnx
from onnx import TensorProto, helper

from tinybert_data import BertTokenizer, get_task
from tinybert_deploy import OnnxModel, task_columns
from tinybert_deploy.export import export
from tinybert_deploy.quantize import quantize_model
from tinybert_model import (
    BertForSequenceClassification,
    BertForTokenClassification,
    save_checkpoint,
    tiny_config,
)

HERE = Path(__file__).parent / "fixtures"
SHARED = Path(
    os.environ.get(
        "TINYBERT_SHARED_DATA", Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
    )
)
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def small_vocab(task: str, data: Path, full_vocab: Path, output: Path, size: int = 2000) -> Path:
    tokenizer = BertTokenizer.from_vocab(full_vocab)
    counts = Counter()
    for example in get_task(task).read(data):
        counts.update(tokenizer.tokenize(example.text_a))
    pieces = [p for p, _ in counts.most_common() if p not in SPECIAL][:size]
    output.write_text("\n".join(SPECIAL + pieces) + "\n", encoding="utf-8")
    return output


def tiny_model(
    model_class, vocab: Path, labels: list, task_type: str, name: str, task: str
) -> None:
    ms.set_seed(0)
    vocab_size = BertTokenizer.from_vocab(vocab).vocab_size
    config = tiny_config(
        vocab_size, max_position_embeddings=128, labels=labels, task_type=task_type
    )
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = Path(folder) / "model.ckpt"
        save_checkpoint(model_class(config), checkpoint)
        export(checkpoint, task, HERE / name, "ONNX")


def static_int8(model: Path, output: Path) -> None:
    train = SHARED / "sst2" / "train.tsv"
    calibration = task_columns("sst2", train, HERE / "vocab_en.txt", OnnxModel(model), rows=64)
    quantize_model(model, output, "static", calibration, rows=64)


def wrong_inputs_model(path: Path) -> None:
    node = helper.make_node("Identity", ["tokens"], ["logits"])
    graph = helper.make_graph(
        [node],
        "wrong",
        [helper.make_tensor_value_info("tokens", TensorProto.INT32, ["b", "s"])],
        [helper.make_tensor_value_info("logits", TensorProto.INT32, ["b", "s"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def main() -> None:
    if sys.argv[1:] == ["static_int8"]:
        static_int8(HERE / "sst2_tiny.onnx", HERE / "sst2_tiny.static.int8.onnx")
        return
    english = small_vocab(
        "sst2",
        SHARED / "sst2" / "dev.tsv",
        SHARED / "vocab" / "bert-base-uncased-vocab.txt",
        HERE / "vocab_en.txt",
    )
    chinese = small_vocab(
        "cluener",
        SHARED / "cluener" / "dev.json",
        SHARED / "vocab" / "bert-base-chinese-vocab.txt",
        HERE / "vocab_zh.txt",
    )
    tiny_model(
        BertForSequenceClassification, english, ["0", "1"], "classification", "sst2_tiny", "sst2"
    )
    tags = get_task("cluener").labels
    tiny_model(BertForTokenClassification, chinese, list(tags), "ner", "cluener_tiny", "cluener")
    static_int8(HERE / "sst2_tiny.onnx", HERE / "sst2_tiny.static.int8.onnx")
    wrong_inputs_model(HERE / "wrong_inputs.onnx")


if __name__ == "__main__":
    main()

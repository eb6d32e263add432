"""BertConfig reads and writes Google, Hugging Face and model-zoo configs."""

import json

import mindspore as ms
import numpy as np
import pytest
from conftest import FIXTURES

from tinybert_model import BertConfig, BertForSequenceClassification, CheckpointError, tiny_config


def test_hf_config_of_the_real_teacher(minilm_dir):
    config = BertConfig.from_json(minilm_dir / "config.json")
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads) == (
        6,
        384,
        12,
    )
    assert (config.intermediate_size, config.vocab_size) == (1536, 30522)
    assert config.labels is None


def test_hf_labels_and_round_trip(tmp_path):
    config = BertConfig.from_json(FIXTURES / "hf_tiny_cls" / "config.json")
    assert config.labels == ["negative", "neutral", "positive"]
    written = tmp_path / "config.json"
    written.write_text(json.dumps(config.to_hf_dict("BertForSequenceClassification")))
    assert BertConfig.from_json(written) == config


def test_google_config_round_trip(tmp_path):
    config = BertConfig.preset("tinybert-4")
    path = tmp_path / "bert_config.json"
    path.write_text(json.dumps(config.to_google_dict()))
    assert set(json.loads(path.read_text())) == {
        "attention_probs_dropout_prob",
        "hidden_act",
        "hidden_dropout_prob",
        "hidden_size",
        "initializer_range",
        "intermediate_size",
        "max_position_embeddings",
        "num_attention_heads",
        "num_hidden_layers",
        "type_vocab_size",
        "vocab_size",
    }
    assert BertConfig.from_json(path) == config


def test_zoo_yaml_sections():
    path = FIXTURES / "zoo_td_config.yaml"
    with pytest.raises(CheckpointError, match="2 network sections"):
        BertConfig.from_zoo_yaml(path)
    teacher = BertConfig.from_zoo_yaml(path, "td_teacher_net_cfg")
    student = BertConfig.from_zoo_yaml(path, "td_student_net_cfg")
    assert (teacher.hidden_size, student.hidden_size) == (32, 24)
    assert teacher.compute_type == "float16"
    assert teacher.task_type == "classification"


def test_zoo_section_read_from_a_dict():
    """The one reading of a zoo network section: tinybert-convert's files, tinybert-gd's
    bert_student_net_cfg block."""
    import dataclasses

    import yaml

    path = FIXTURES / "zoo_td_config.yaml"
    section = next(yaml.safe_load_all(path.read_text()))["td_student_net_cfg"]
    assert section["compute_type"] == "mstype.float16"
    config = BertConfig.from_zoo_section(section)
    assert config.compute_type == "float16"
    from_file = BertConfig.from_zoo_yaml(path, "td_student_net_cfg")
    assert config == dataclasses.replace(from_file, task_type=None)  # task_type: the document's
    with pytest.raises(CheckpointError, match="use_relative_positions is not supported"):
        BertConfig.from_zoo_section({**section, "use_relative_positions": True})


def test_zoo_yaml_round_trip(tmp_path):
    import yaml

    config = BertConfig.preset("zoo-student")
    path = tmp_path / "net.yaml"
    path.write_text(yaml.safe_dump({"td_student_net_cfg": config.to_zoo_dict(seq_length=64)}))
    assert BertConfig.from_zoo_yaml(path) == config


SHAPE = BertConfig.preset("tinybert-4").to_google_dict()


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        (json.dumps({**SHAPE, "hidden_size": 30, "num_attention_heads": 4}), "not a multiple"),
        (json.dumps({**SHAPE, "hidden_act": "swish"}), "hidden_act"),
        (json.dumps({**SHAPE, "position_embedding_type": "relative_key"}), "not supported"),
        # issue 33: what used to be a traceback or a wall of shape mismatches
        ("[1, 2, 3]", "expected a JSON object, found list"),
        ('"a string"', "expected a JSON object, found str"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        (json.dumps({k: v for k, v in SHAPE.items() if k != "hidden_size"}), "no hidden_size"),
        (json.dumps({"model_type": "bert"}), "no vocab_size, hidden_size, num_hidden_layers"),
        (json.dumps({**SHAPE, "num_attention_heads": 0}), "num_attention_heads must be a whole"),
        (json.dumps({**SHAPE, "hidden_size": "312"}), "hidden_size must be a whole number"),
        (json.dumps({**SHAPE, "num_hidden_layers": True}), "num_hidden_layers must be a whole"),
        (json.dumps({**SHAPE, "num_hidden_layers": 4.5}), "num_hidden_layers must be a whole"),
        (json.dumps({**SHAPE, "id2label": ["neg", "pos"]}), "id2label is a list, not an object"),
        (json.dumps({**SHAPE, "id2label": {"0": "neg", "2": "pos"}}), "no label for id 1"),
    ],
)
def test_bad_configs_name_the_problem(tmp_path, content, message):
    path = tmp_path / "config.json"
    path.write_text(content)
    with pytest.raises(CheckpointError, match=message) as error:
        BertConfig.from_json(path)
    assert str(error.value).startswith(f"{path}:") and "\n" not in str(error.value)


def test_a_config_that_is_not_utf8_or_a_folder_is_named(tmp_path):
    path = tmp_path / "config.json"
    path.write_bytes(json.dumps(SHAPE).encode("utf-16"))
    with pytest.raises(
        CheckpointError, match=r"config.json:1: not UTF-8 text \(invalid start byte"
    ):
        BertConfig.from_json(path)
    yaml_file = tmp_path / "td_config.yaml"
    yaml_file.write_bytes("hidden_size: 312 # caf\u00e9\n".encode("latin-1"))
    with pytest.raises(CheckpointError, match=r"td_config.yaml:1: not UTF-8 text"):
        BertConfig.from_zoo_yaml(yaml_file)
    with pytest.raises(CheckpointError, match="is a directory, not a regular file"):
        BertConfig.from_json(tmp_path)


def test_whole_floats_are_read_as_whole_numbers(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**SHAPE, "hidden_size": 312.0}))
    assert BertConfig.from_json(path) == BertConfig.preset("tinybert-4")


def test_missing_config_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        BertConfig.from_file(tmp_path / "nope.json")
    with pytest.raises(CheckpointError, match="unknown preset"):
        BertConfig.preset("bert-huge")


def test_tiny_config_trains_without_dropout():
    """tiny_config, the tests' model: no dropout, so training-mode outputs repeat exactly (what
    resume tests compare), and any field can be changed; a misspelt one is refused."""
    config = tiny_config(99, hidden_size=48, labels=["a", "b"], task_type="classification")
    assert (config.hidden_size, config.num_hidden_layers, config.labels) == (48, 2, ["a", "b"])
    model = BertForSequenceClassification(config)
    model.set_train(True)
    rng = np.random.default_rng(0)
    ids = ms.Tensor(rng.integers(1, 99, (3, 9)).astype(np.int32))
    ones = ms.Tensor(np.ones((3, 9), np.int32))
    first, second = (model(ids, ones, ones).logits.asnumpy() for _ in range(2))
    np.testing.assert_array_equal(first, second)
    with pytest.raises(TypeError):
        tiny_config(99, hidden_units=48)

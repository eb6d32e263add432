"""Configs: packaged YAML files, `--key value` overrides, and errors that say what was meant."""

import pytest
import yaml

from tinybert_data import TASK_READERS
from tinybert_distill.cli import general_distill, task_distill
from tinybert_distill.config import (
    ConfigError,
    apply_overrides,
    find_config,
    load_config,
    packaged_config,
)
from tinybert_model import read_checkpoint

TASKS = list(TASK_READERS)


@pytest.mark.parametrize(
    "name", ["gd_config", "finetune_config"] + [f"td_config/{t}" for t in TASKS]
)
def test_packaged_configs_load(name):
    config = load_config(packaged_config(name))
    assert config["device_target"] == "CPU"
    assert config["ms_mode"] == "GRAPH"


@pytest.mark.parametrize("task", TASKS)
def test_task_configs_name_their_task(task):
    config = load_config(packaged_config(f"td_config/{task}"))
    assert config["task_name"] == task
    assert config["td_phase1_epoch_size"] > 0 and config["td_phase2_epoch_size"] > 0


def test_overrides_by_full_and_shortened_paths():
    config = load_config(packaged_config("td_config/sst2"))
    apply_overrides(
        config,
        [
            "--td_phase1_epoch_size",
            "2",
            "--phase2_cfg.learning_rate",
            "3e-5",
            "--phase1_cfg.optimizer_cfg.AdamWeightDecay.weight_decay=0.5",
            "--do_eval",
            "false",
            "--hidden_layer_map",
            "[0, 2, 3, 5, 6]",
            "--load_gd_ckpt_path",
            "gd/gd.ckpt",
        ],
    )
    assert config["td_phase1_epoch_size"] == 2
    assert config["phase2_cfg"]["optimizer_cfg"]["AdamWeightDecay"]["learning_rate"] == 3e-5
    assert config["phase1_cfg"]["optimizer_cfg"]["AdamWeightDecay"]["weight_decay"] == 0.5
    assert config["do_eval"] is False
    assert config["hidden_layer_map"] == [0, 2, 3, 5, 6]
    assert config["load_gd_ckpt_path"] == "gd/gd.ckpt"


def test_unknown_key_suggests_the_closest():
    config = load_config(packaged_config("td_config/sst2"))
    with pytest.raises(
        ConfigError,
        match="unknown config key --td_phase1_epoch.*did you mean --td_phase1_epoch_size",
    ):
        apply_overrides(config, ["--td_phase1_epoch", "3"])
    with pytest.raises(ConfigError, match="did you mean --load_teacher_ckpt_path"):
        apply_overrides(config, ["--load_teacher_ckpt", "t.ckpt"])


def test_ambiguous_key_lists_the_candidates():
    config = load_config(packaged_config("td_config/sst2"))
    with pytest.raises(
        ConfigError, match="ambiguous.*phase1_cfg.batch_size.*phase2_cfg.batch_size"
    ):
        apply_overrides(config, ["--batch_size", "8"])


def test_values_keep_their_type():
    config = load_config(packaged_config("gd_config"))
    with pytest.raises(ConfigError, match="takes a number"):
        apply_overrides(config, ["--epoch_size", "three"])
    with pytest.raises(ConfigError, match="true or false"):
        apply_overrides(config, ["--do_shuffle", "7"])
    with pytest.raises(ConfigError, match="needs a value"):
        apply_overrides(config, ["--epoch_size"])


def test_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_cli_unknown_key_exits_1_with_suggestion(capsys):
    assert task_distill(["--task_name", "sst2", "--td_phase2_epoch", "1"]) == 1
    error = capsys.readouterr().err
    assert "did you mean --td_phase2_epoch_size" in error
    assert "Traceback" not in error


def test_cli_help_lists_every_key_with_its_meaning(capsys):
    assert task_distill(["--task_name", "qnli", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--td_phase1_epoch_size 10" in out or "--td_phase1_epoch_size" in out
    assert "--phase2_cfg.optimizer_cfg.AdamWeightDecay.learning_rate" in out
    assert "epochs of phase 1" in out
    assert "td_config/qnli.yaml" in out


def test_td_without_task_or_config_says_what_to_pass(capsys):
    assert task_distill([]) == 1
    assert "--task_name" in capsys.readouterr().err


# ---- one task-distillation config, per-task defaults -----------------------------------------


def test_every_task_config_is_td_config_with_its_task_name():
    shared = load_config(packaged_config("td_config"))
    assert shared["task_name"] is None  # the task comes from the data's task.json
    for task in TASKS:
        assert load_config(packaged_config(f"td_config/{task}")) == {**shared, "task_name": task}


def test_config_flag_takes_packaged_names_from_anywhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no td_config/ folder here
    for text in ("td_config/qnli.yaml", "td_config/qnli", "gd_config.yaml", "td_config"):
        assert find_config(text).is_file()
    assert load_config(find_config("td_config/qnli.yaml"))["task_name"] == "qnli"
    with pytest.raises(ConfigError, match="nope.yaml: config file not found"):
        find_config("nope.yaml")


def test_a_file_of_ones_own_may_start_from_another(tmp_path):
    own = tmp_path / "mine.yaml"
    own.write_text("based_on: td_config/mnli\nphase1_cfg:\n  batch_size: 8\ntemperature: 2.0\n")
    config = load_config(own)
    base = load_config(packaged_config("td_config/mnli"))
    assert config["phase1_cfg"]["batch_size"] == 8
    # the rest of the nested block is the base's
    assert config["phase1_cfg"]["optimizer_cfg"] == base["phase1_cfg"]["optimizer_cfg"]
    assert config["temperature"] == 2.0 and config["task_name"] == "mnli"
    assert "based_on" not in config
    (tmp_path / "a.yaml").write_text("based_on: b.yaml\n")
    (tmp_path / "b.yaml").write_text("based_on: a.yaml\n")
    with pytest.raises(ConfigError, match="based_on leads back"):
        load_config(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("based_on: missing.yaml\n")
    with pytest.raises(ConfigError, match="missing.yaml: config file not found"):
        load_config(tmp_path / "c.yaml")


# ---- zoo YAML: its layout and its mstype values ------------------------------------------------

ZOO_STUDENT = """\
bert_student_net_cfg:
    seq_length: 32
    vocab_size: 30522
    hidden_size: 16
    num_hidden_layers: 2
    num_attention_heads: 2
    intermediate_size: 32
    hidden_act: "gelu"
    hidden_dropout_prob: 0.0
    attention_probs_dropout_prob: 0.0
    max_position_embeddings: 64
    type_vocab_size: 2
    initializer_range: 0.02
    use_relative_positions: False
    dtype: mstype.float32
    compute_type: mstype.float16
---
# the zoo's help texts and choices
device_target: "device where the code will be implemented"
---
device_target: ["Ascend", "GPU", "CPU"]
"""


def test_gd_reads_a_zoo_student_section(tmp_path, pretrained_tiny, sst2_train):
    """bert_student_net_cfg as the zoo writes it (mstype values, seq_length, dtype,
    use_relative_positions) in a file of the zoo's three YAML documents: tinybert-gd reads it
    as tinybert-convert does (tinybert_model.BertConfig.from_zoo_section)."""
    config = load_config(packaged_config("gd_config"))
    del config["bert_student_net_cfg"]
    zoo = tmp_path / "gd_config.yaml"
    zoo.write_text(yaml.safe_dump(config, sort_keys=False) + ZOO_STUDENT, encoding="utf-8")
    output = tmp_path / "gd"
    code = general_distill(
        [
            "--config",
            str(zoo),
            "--load_teacher_ckpt_path",
            str(pretrained_tiny),
            "--data_dir",
            str(sst2_train),
            "--save_ckpt_path",
            str(output),
            "--train_steps",
            "2",
            "--common_cfg.batch_size",
            "16",
        ]
    )
    assert code == 0
    student = read_checkpoint(output / "gd.ckpt").config
    assert (student.hidden_size, student.num_hidden_layers) == (16, 2)
    assert student.compute_type == "float16"

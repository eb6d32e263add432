"""Configs: packaged YAML files, `--key value` overrides, and errors that say what was meant."""

import pytest

from tinybert_distill.cli import task_distill
from tinybert_distill.config import ConfigError, apply_overrides, load_config, packaged_config

TASKS = ["sst2", "qnli", "mnli", "tnews", "cluener"]


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

"""Configs: packaged YAML files, `--key value` overrides, and errors that say what was meant;
one definition per key (config.KEYS); configs built from Python with keyword arguments."""

import json

import numpy as np
import pytest
import yaml

from tinybert_data import TASK_READERS
from tinybert_distill import make_config
from tinybert_distill.cli import general_distill, task_distill
from tinybert_distill.config import (
    KEYS,
    NO_DEFAULT,
    ConfigError,
    Key,
    apply_overrides,
    find_config,
    key_of,
    key_paths,
    load_config,
    packaged_config,
    validate,
    whole,
)
from tinybert_distill.runs import (
    TRAINER_STATE,
    RunError,
    checkpoint_path,
    prepare_output,
    run_identity,
    settings_of,
)
from tinybert_model import read_checkpoint, write_checkpoint

TASKS = list(TASK_READERS)
COMMANDS = ["gd_config", "td_config", "finetune_config"]  # the files the task configs build on
PACKAGED = COMMANDS + [f"td_config/{t}" for t in TASKS]


@pytest.mark.parametrize("name", PACKAGED)
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
    assert "--td_phase1_epoch_size 10\n        epochs of phase 1" in out
    assert "--phase2_cfg.optimizer_cfg.AdamWeightDecay.learning_rate 2e-05" in out
    assert "--matches None\n        layer matches of general distillation" in out
    # the evaluation batch has its own help; the keys every command has are listed too
    assert "--eval_cfg.batch_size 32\n        examples per evaluation step" in out
    assert "--gradient_accumulation_steps 'auto'\n        micro-batches per step" in out
    assert "--overwrite False\n        start afresh" in out
    assert "td_config/qnli.yaml" in out
    config = load_config(packaged_config("td_config/qnli"))
    assert [line.split()[0] for line in out.splitlines() if line.startswith("  --")] == [
        f"--{path}" for path in key_paths(config)
    ]


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


# ---- one definition per key: config.KEYS ----------------------------------------------------


def test_every_key_of_the_packaged_configs_has_help_and_every_definition_a_key():
    paths = {path for name in PACKAGED for path in key_paths(load_config(packaged_config(name)))}
    assert [path for path in sorted(paths) if not key_of(path).help] == []
    # no definition outlives its key: each names the tail of a packaged config's key
    unused = [n for n in KEYS if not any(p == n or p.endswith(f".{n}") for p in paths)]
    assert unused == []


def test_a_key_is_found_by_its_longest_defined_tail():
    assert key_of("eval_cfg.batch_size").free  # evaluation covers every row whatever its batch
    assert key_of("common_cfg.batch_size") is KEYS["batch_size"]
    assert not key_of("phase1_cfg.batch_size").free
    assert key_of("phase2_cfg.optimizer_cfg.AdamWeightDecay.eps") is KEYS["eps"]
    # a key no definition names (a zoo key this package ignores): no help, part of the run
    assert key_of("bert_teacher_net_cfg.hidden_size").help == ""
    assert not key_of("description").free
    settings = settings_of(load_config(packaged_config("td_config")))
    assert "phase1_cfg.batch_size" in settings and "phase2_cfg.batch_size" in settings
    assert "eval_cfg.batch_size" not in settings and "log_every" not in settings
    assert "seed" in settings and "matches" in settings


def test_keys_every_command_has_take_their_default_from_their_definition(tmp_path):
    defaults = {n: key.default for n, key in KEYS.items() if key.default is not NO_DEFAULT}
    assert defaults["gradient_accumulation_steps"] == "auto" and defaults["overwrite"] is False
    for name in COMMANDS:
        written = yaml.safe_load(packaged_config(name).read_text(encoding="utf-8"))
        assert not set(defaults) & set(written), f"{name} repeats a default of config.KEYS"
        assert load_config(packaged_config(name)).items() >= defaults.items()
    own = tmp_path / "own.yaml"
    own.write_text("epoch_size: 1\ngradient_accumulation_steps: 2\n", encoding="utf-8")
    assert load_config(own) == {**defaults, "epoch_size": 1, "gradient_accumulation_steps": 2}


def test_values_are_checked_by_their_definition(tmp_path):
    own = tmp_path / "own.yaml"
    own.write_text(
        "based_on: finetune_config\ncommon_cfg:\n  AdamWeightDecay:\n    learning_rate: fast\n",
        encoding="utf-8",
    )
    # a word where a number belongs is refused by name, not a TypeError
    with pytest.raises(ConfigError) as error:
        validate(load_config(own))
    assert str(error.value) == (
        "--common_cfg.AdamWeightDecay.learning_rate is 'fast'; it must be a finite number > 0"
    )
    for path, value, wording in [
        ("bert_student_net_cfg.vocab_size", "big", "a whole number >= 1, or null"),
        ("seed", None, "a whole number in [0, 2**32)"),
        ("hidden_layer_map", 3, "a list of layer numbers, or null"),
        ("gradient_accumulation_steps", "some", "auto or a whole number >= 1"),
    ]:
        config = load_config(packaged_config("gd_config"))
        block, _, leaf = path.rpartition(".")
        (config[block] if block else config)[leaf] = value
        with pytest.raises(ConfigError) as error:
            validate(config)
        assert str(error.value) == f"--{path} is {value!r}; it must be {wording}"
    config = load_config(packaged_config("gd_config"))
    apply_overrides(config, ["--vocab_size", "null", "--epoch_size", "2.0", "--train_steps", "-1"])
    validate(config)  # vocab_size may be null (the teacher's); 2.0 is read as 2
    assert config["epoch_size"] == 2 and isinstance(config["epoch_size"], int)


def test_a_free_key_added_to_the_table_is_accepted_on_resume(tmp_path, monkeypatch):
    """A key defined in KEYS as free (here a new one that only changes how a run logs) leaves
    the run's identity alone: a run begun before the key existed resumes with it, at any value.
    Left in the identity, it would refuse every such run."""
    output = tmp_path / "run"

    def gd_config(**values) -> dict:
        config = load_config(packaged_config("gd_config"))
        config.update(save_ckpt_path=str(output), **values)
        return config

    began = run_identity(gd_config())
    state = {"phase": "gd", "step": 2, "run": began}
    write_checkpoint(
        checkpoint_path(output, "gd", 2),
        {"w": np.zeros(1, np.float32)},
        extra={TRAINER_STATE: json.dumps(state)},
    )
    progress = Key("steps between progress lines", whole(1), free=True, default=10)
    monkeypatch.setitem(KEYS, "progress_every", progress)
    resumed = gd_config(resume=True)
    assert resumed["progress_every"] == 10  # the default, added to a file without the key
    resumed["progress_every"] = 5
    assert prepare_output(resumed)["id"] == began["id"]
    # the same key as part of the run's identity: the earlier run is not resumed
    monkeypatch.setitem(KEYS, "progress_every", Key(progress.help, whole(1), default=10))
    with pytest.raises(RunError, match=r"other settings: progress_every \(not set\) -> 10\."):
        prepare_output(gd_config(resume=True))


# ---- Python callers: make_config --------------------------------------------------------------


def test_python_callers_name_keys_as_the_command_line_does(tmp_path):
    teacher = tmp_path / "teacher.ckpt"
    config = make_config(
        "td_config/sst2",
        load_teacher_ckpt_path=teacher,  # a Path, kept as text (config.yaml is YAML)
        td_phase1_epoch_size=2,
        do_eval=False,
        hidden_layer_map=(0, 2, 3, 5, 6),
        phase1_cfg={"batch_size": 8, "optimizer_cfg": {"AdamWeightDecay": {"eps": 1e-8}}},
        **{"phase2_cfg.learning_rate": 3e-5},
    )
    flags = [
        *("--load_teacher_ckpt_path", str(teacher), "--td_phase1_epoch_size", "2"),
        *("--do_eval", "false", "--hidden_layer_map", "[0, 2, 3, 5, 6]"),
        *("--phase1_cfg.batch_size", "8", "--phase1_cfg.eps", "1e-8"),
        *("--phase2_cfg.learning_rate", "3e-5"),
    ]
    assert config == validate(
        apply_overrides(load_config(packaged_config("td_config/sst2")), flags)
    )
    assert config["phase1_cfg"]["batch_size"] == 8 and config["phase2_cfg"]["batch_size"] == 32
    assert yaml.safe_load(yaml.safe_dump(config)) == config
    own = tmp_path / "mine.yaml"
    own.write_text("based_on: gd_config\nepoch_size: 2\n", encoding="utf-8")
    gd = make_config(own, batch_size=8, bert_student_net_cfg={"num_hidden_layers": 2})
    assert (gd["epoch_size"], gd["common_cfg"]["batch_size"]) == (2, 8)
    assert gd["bert_student_net_cfg"]["num_hidden_layers"] == 2


@pytest.mark.parametrize(
    "name, values, message",
    [
        ("td_config", {"batch_size": 8}, "--batch_size is ambiguous: say one of --phase1_cfg"),
        ("gd_config", {"epoch_size": "2"}, "--epoch_size takes a number, not '2'"),
        ("gd_config", {"do_shuffle": "false"}, "--do_shuffle takes true or false, not 'false'"),
        ("gd_config", {"batch_size": 0}, "--common_cfg.batch_size is 0; it must be a whole"),
        ("td_config", {"phase1_cfg": {"batch_sise": 8}}, "unknown config key --phase1_cfg.batch_s"),
        ("nope", {}, "nope: config file not found"),
    ],
)
def test_python_callers_get_the_command_lines_errors(name, values, message):
    with pytest.raises(ConfigError, match=message):
        make_config(name, **values)

"""Configs: YAML files with the model zoo's keys, overridden by `--key value` pairs.

A config is a nested dict. On the command line a key is its dotted path
(`--phase1_cfg.batch_size 16`); inner parts may be left out as long as what remains names
one key (`--phase2_cfg.learning_rate 3e-5` for
`phase2_cfg.optimizer_cfg.AdamWeightDecay.learning_rate`, `--epoch_size 1`). An unknown
or ambiguous key is an error that says what was meant.

A config file may start from another one: `based_on: td_config.yaml` (a path relative to the
file, or a packaged config's name) reads that one first, and the file's own keys replace its
values, nested blocks key by key. The packaged td_config/TASK.yaml files are td_config.yaml
with one task's defaults this way.
"""

from __future__ import annotations

import difflib
from importlib import resources
from pathlib import Path

import yaml

from tinybert_core import TinybertError
from tinybert_data import TASK_READERS

CONFIG_PACKAGE = "tinybert_distill.configs"

# What each key does, for --help. Keys are leaf names; the zoo's own where it had one.
KEY_HELP = {
    "device_target": "where to run: CPU, GPU or Ascend",
    "device_id": "device number on a multi-device host (set per worker by tinybert-launch)",
    "ms_mode": "GRAPH (compiled, fast) or PYNATIVE (eager, for debugging)",
    "epoch_size": "epochs over the data",
    "train_steps": "stop after this many steps (-1: run all epochs)",
    "td_phase1_epoch_size": "epochs of phase 1 (attention and hidden-state losses)",
    "td_phase2_epoch_size": "epochs of phase 2 (prediction loss)",
    "do_train": "train (false: only evaluate load_td1_ckpt_path / load_ckpt_path)",
    "do_eval": "evaluate on eval_data_dir and keep the best checkpoint",
    "eval_step": "evaluate every N steps (0: at the end of each epoch)",
    "do_shuffle": "shuffle the rows each epoch (the order depends only on seed and epoch)",
    "length_buckets": "pad each batch only to the smallest bucket length (8, 16, 24, 32, 48, "
    "64, 96, 128, ...) holding its longest row, not to seq_length (false: the zoo's fixed padding)",
    "enable_data_sink": "GPU/Ascend: feed the device through mindspore.dataset's device queue, "
    "batches padded to seq_length (default false, the zoo's true; CPU: no effect, see the README)",
    "data_sink_steps": "with enable_data_sink: steps per sink (the loss is read back, logged "
    "and checked once per sink)",
    "save_ckpt_step": "write a resumable checkpoint every N steps",
    "max_ckpt_num": "resumable checkpoints kept per phase (oldest deleted)",
    "save_ckpt_path": "output folder: checkpoints, log.txt, metrics.jsonl, final models",
    "load_teacher_ckpt_path": "teacher checkpoint (tinybert-convert output; fine-tuned "
    "for task distillation)",
    "allow_weak_teacher": "distil from a task teacher that scores no better than a guess (the "
    "majority label) on eval_data_dir, or training rows without it (false: such a run stops "
    "before it writes anything)",
    "load_gd_ckpt_path": "general-distillation student: tinybert-gd's gd.ckpt, or a downloaded "
    "general TinyBERT folder (huawei-noah's, pytorch_model.bin or safetensors)",
    "load_td1_ckpt_path": "a phase-1 student: skip phase 1 and start phase 2 from it",
    "load_ckpt_path": "the model to fine-tune (any tinybert checkpoint; a new head is added)",
    "data_dir": "corpus records from `tinybert-data corpus`",
    "train_data_dir": "training records from `tinybert-data task`",
    "eval_data_dir": "evaluation records from `tinybert-data task`",
    "schema_dir": "schema.json (default: the one beside the records)",
    "dataset_type": "tfrecord or mindrecord",
    "task_name": f"one of {', '.join(TASK_READERS)} (default: from the data's task.json)",
    "task_type": "classification, regression or ner (default: from the data's task.json)",
    "assessment_method": "metric that picks the best checkpoint (default: the task's own)",
    "seed": "seed for initial weights and data order",
    "resume": "continue this run from its newest checkpoint in save_ckpt_path (refused if a "
    "setting that changes the data order or the schedule differs from the saved run's)",
    "overwrite": "start afresh in a save_ckpt_path that holds an earlier run's checkpoints, "
    "models and metrics, deleting them first (without it such a folder is refused)",
    "log_every": "steps between lines in log.txt and metrics.jsonl",
    "hidden_layer_map": "teacher hidden state for each student one, embedding output first "
    "(null: spread evenly)",
    "attention_layer_map": "teacher layer whose attention each student layer learns (null: evenly)",
    "attention_loss_weight": "weight of the attention-score loss",
    "hidden_loss_weight": "weight of the hidden-state loss",
    "prediction_loss_weight": "weight of the prediction loss",
    "temperature": "softmax temperature of the prediction loss",
    "init_student_from_teacher_layers": "build the student from these teacher layers (0-based) "
    "instead of load_gd_ckpt_path / random (needs equal widths)",
    "batch_size": "examples per step on each worker",
    "gradient_accumulation_steps": "micro-batches per step: each step's batch_size rows are run as "
    "N micro-batches of batch_size/N rows whose gradients are added up, then one update (the "
    "same update, the memory of the micro-batch); auto (default): on the CPU, micro-batches of "
    "at most 2048 tokens (16 rows of 128), 1 on GPU/Ascend",
    "loss_scale_value": "initial loss scale",
    "scale_factor": "loss scale multiplier/divisor",
    "scale_window": "finite steps before the loss scale grows",
    "learning_rate": "peak learning rate",
    "end_learning_rate": "learning rate at the last step",
    "power": "power of the polynomial decay",
    "weight_decay": "AdamW weight decay (not on LayerNorm or biases)",
    "eps": "Adam epsilon",
    "warmup_ratio": "share of the steps spent warming up linearly from 0",
    "num_hidden_layers": "student layers",
    "hidden_size": "student width",
    "num_attention_heads": "student attention heads",
    "intermediate_size": "student feed-forward width",
    "vocab_size": "vocabulary size (null: the teacher's)",
}


# Keys every command has, added when a config file leaves them out (configs written
# before the key existed, or a user's own).
# enable_data_sink is off by default (the zoo's default is on): the device-queue path has not
# yet run on a GPU or Ascend device; `--enable_data_sink true` asks for it.
COMMON_DEFAULTS = {
    "overwrite": False,
    "enable_data_sink": False,
    "data_sink_steps": 1,
    "gradient_accumulation_steps": "auto",
}

# The most steps a run may plan: its learning-rate schedule holds one value per step
# (optimization.learning_rates), so `epoch_size 1e9` would allocate tens of GB before the
# first step. Ten million is ten times BERT's pre-training.
MAX_STEPS = 10_000_000
INT32_MAX = 2**31 - 1  # counters kept in int32 parameters (the loss scale's finite steps)
FLOAT32_MAX = 3.4028234e38  # every real number ends up in a float32 tensor


def _whole(low, also=None, high=None):
    """A whole number >= low (or exactly `also`: train_steps -1, "auto"), at most `high`."""
    text = f"a whole number {f'>= {low}' if high is None else f'from {low} to {high}'}"
    return (
        True,
        lambda v: v == also or (_is_number(v) and v >= low and (high is None or v <= high)),
        text if also is None else f"{also} or {text}",
    )


def _number(test, text):
    """A finite number for which `test` holds: within float32's range, so not inf (nor NaN,
    which fails every comparison)."""
    return False, lambda v: abs(v) <= FLOAT32_MAX and test(v), f"a finite number {text}"


# Allowed values of every numeric key, by leaf name: (whole numbers only, test, wording).
# Checked when a config is loaded, so that a bad value stops before anything is read or built.
# Counts of steps are bounded by MAX_STEPS; what they plan together (steps per epoch times
# epochs) is checked once the data's size is known (trainer.check_plan).
RANGES = {
    "epoch_size": _whole(1, high=MAX_STEPS),
    # 0 skips that phase (run phase 1 and phase 2 as two commands); not both, see validate
    "td_phase1_epoch_size": _whole(0, high=MAX_STEPS),
    "td_phase2_epoch_size": _whole(0, high=MAX_STEPS),
    "train_steps": _whole(1, also=-1, high=MAX_STEPS),
    "batch_size": _whole(1),
    "gradient_accumulation_steps": _whole(1, also="auto"),
    "save_ckpt_step": _whole(1),
    "data_sink_steps": _whole(1),
    "max_ckpt_num": _whole(1),
    "log_every": _whole(1),
    "eval_step": _whole(0),
    "device_id": _whole(0, high=4095),
    "seed": (True, lambda v: 0 <= v < 2**32, "a whole number in [0, 2**32)"),
    "scale_window": _whole(1, high=INT32_MAX),
    "loss_scale_value": _number(lambda v: v > 0, "> 0"),
    "scale_factor": _number(lambda v: v >= 1, ">= 1 (1: a fixed loss scale)"),
    "learning_rate": _number(lambda v: v > 0, "> 0"),
    "end_learning_rate": _number(lambda v: v >= 0, ">= 0"),
    "power": _number(lambda v: v > 0, "> 0"),
    "weight_decay": _number(lambda v: v >= 0, ">= 0"),
    "eps": _number(lambda v: v > 0, "> 0"),
    "warmup_ratio": _number(lambda v: 0 <= v < 1, "in [0, 1)"),
    "attention_loss_weight": _number(lambda v: v >= 0, ">= 0"),
    "hidden_loss_weight": _number(lambda v: v >= 0, ">= 0"),
    "prediction_loss_weight": _number(lambda v: v >= 0, ">= 0"),
    "temperature": _number(lambda v: v > 0, "> 0"),
    # the general student's shape (bert_student_net_cfg)
    "vocab_size": _whole(1),
    "hidden_size": _whole(1),
    "num_hidden_layers": _whole(1),
    "num_attention_heads": _whole(1),
    "intermediate_size": _whole(1),
    "max_position_embeddings": _whole(1),
    "type_vocab_size": _whole(1),
    "initializer_range": _number(lambda v: v > 0, "> 0"),
    "hidden_dropout_prob": _number(lambda v: 0 <= v < 1, "in [0, 1)"),
    "attention_probs_dropout_prob": _number(lambda v: 0 <= v < 1, "in [0, 1)"),
}
NULLABLE = ("vocab_size",)  # null: the teacher's
TRAINING_BLOCKS = ("common_cfg", "phase1_cfg", "phase2_cfg")  # each with its batch_size
LAYER_LISTS = ("hidden_layer_map", "attention_layer_map", "init_student_from_teacher_layers")


class ConfigError(TinybertError):
    """A config file or override that cannot be used."""


def packaged_config(name: str) -> Path:
    """A config shipped with the package: "gd_config", "finetune_config", "td_config" (the
    task from the data), "td_config/sst2" (td_config with sst2's defaults); ".yaml" may follow."""
    path = resources.files(CONFIG_PACKAGE).joinpath(f"{name.removesuffix('.yaml')}.yaml")
    if not path.is_file():
        raise ConfigError(f"no packaged config {name!r}")
    return Path(str(path))


def find_config(text, relative_to: Path = Path(".")) -> Path:
    """The file `--config` or `based_on` names: a path (relative to `relative_to`) if there
    is such a file, else a packaged config's name (`td_config/sst2.yaml`, `gd_config`)."""
    path = relative_to / text
    if path.is_file():
        return path
    try:
        return packaged_config(str(text))
    except ConfigError:
        raise ConfigError(f"{path}: config file not found") from None


def load_config(path, _chain: tuple = ()) -> dict:
    path = Path(path)
    try:
        # the zoo's files hold three YAML documents (values, help texts, choices): the first
        config = next(yaml.safe_load_all(path.read_text(encoding="utf-8")), None)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{error.object[error.start]:02x} at offset "
            f"{error.start}); save the config as UTF-8"
        ) from None
    except OSError as error:  # a folder, a file that cannot be read
        raise ConfigError(f"{path}: cannot read the config ({error.strerror})") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({_one_line(error)})") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a config") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values")
    base = config.pop("based_on", None)
    if base is not None:
        if path.resolve() in _chain:
            raise ConfigError(f"{path}: based_on leads back to this file")
        base_path = find_config(base, path.parent)
        config = _replace(load_config(base_path, (*_chain, path.resolve())), config)
    for key, value in COMMON_DEFAULTS.items():
        config.setdefault(key, value)
    return config


def _one_line(error: yaml.YAMLError) -> str:
    """A YAML error's message without the excerpt of the file it prints below it."""
    return " ".join(str(error).split())


def _replace(config: dict, changes: dict) -> dict:
    """`config` with the values of `changes`, nested blocks key by key."""
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            _replace(config[key], value)
        else:
            config[key] = value
    return config


def validate(config: dict) -> dict:
    """Check every numeric key against its range, and the layer lists; raise ConfigError
    naming the first key that is wrong. Whole numbers written as 2.0 become 2."""
    for path in key_paths(config):
        leaf = path.split(".")[-1]
        value = get(config, path)
        if leaf in RANGES and not (value is None and leaf in NULLABLE):
            whole, test, wording = RANGES[leaf]
            if not _is_number(value):
                if isinstance(value, str) and test(value):  # the word it may take ("auto")
                    continue
                raise ConfigError(f"--{path} is {value!r}; it must be {wording}")
            if whole and isinstance(value, float) and value.is_integer():
                value = int(value)
                _put(config, path, value)
            if (whole and not isinstance(value, int)) or not test(value):
                raise ConfigError(f"--{path} is {value!r}; it must be {wording}")
        if leaf in LAYER_LISTS and not (value is None or _is_layer_list(value)):
            raise ConfigError(f"--{path} is {value!r}; it must be a list of layer numbers, or null")
    if config.get("td_phase1_epoch_size") == 0 and config.get("td_phase2_epoch_size") == 0:
        raise ConfigError(
            "--td_phase1_epoch_size and --td_phase2_epoch_size are both 0: nothing to train"
        )
    micro_batches = config.get("gradient_accumulation_steps", 1)
    for block in TRAINING_BLOCKS:
        settings = config.get(block)
        batch_size = settings.get("batch_size") if isinstance(settings, dict) else None
        if isinstance(batch_size, int) and micro_batches != "auto" and batch_size % micro_batches:
            raise ConfigError(
                f"--{block}.batch_size {batch_size} is not a multiple of "
                f"--gradient_accumulation_steps {micro_batches}: each step's batch is split into "
                f"{micro_batches} micro-batches of equal size"
            )
    return config


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_layer_list(value) -> bool:
    return isinstance(value, list) and all(_is_number(v) and isinstance(v, int) for v in value)


def _put(config: dict, path: str, value) -> None:
    *parents, leaf = path.split(".")
    node = config
    for part in parents:
        node = node[part]
    node[leaf] = value


def key_paths(config: dict, prefix: str = "") -> list:
    """Every leaf key as a dotted path."""
    paths = []
    for key, value in config.items():
        path = f"{prefix}{key}"
        paths.extend(key_paths(value, path + ".") if isinstance(value, dict) else [path])
    return paths


def resolve_key(config: dict, key: str) -> str:
    """The one full path `key` names: itself, or a path whose parts contain it in order."""
    paths = key_paths(config)
    if key in paths:
        return key
    wanted = key.split(".")
    matches = [
        p for p in paths if p.split(".")[-1] == wanted[-1] and _in_order(wanted, p.split("."))
    ]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ConfigError(
            f"--{key} is ambiguous: say one of {', '.join('--' + m for m in matches)}"
        )
    leaves = {p.split(".")[-1]: p for p in paths}
    close = difflib.get_close_matches(key, paths, n=1) or [
        leaves[m] for m in difflib.get_close_matches(wanted[-1], list(leaves), n=1)
    ]
    hint = f"; did you mean --{close[0]}?" if close else ""
    raise ConfigError(f"unknown config key --{key}{hint}")


def _in_order(wanted: list, parts: list) -> bool:
    remaining = iter(parts)
    return all(any(part == w for part in remaining) for w in wanted)


def parse_value(text: str):
    """Command-line text to a value: int, float (1e-4 too), bool, null, list, or string."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def set_key(config: dict, path: str, value) -> None:
    node = config
    *parents, leaf = path.split(".")
    for part in parents:
        node = node[part]
    old = node[leaf]
    if isinstance(old, bool) and not isinstance(value, bool):
        raise ConfigError(f"--{path} takes true or false, not {value!r}")
    if isinstance(old, (int, float)) and not isinstance(old, bool):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ConfigError(f"--{path} takes a number, not {value!r}")
        value = float(value) if isinstance(old, float) else value
    node[leaf] = value


def apply_overrides(config: dict, arguments: list) -> dict:
    """Apply `--key value` pairs (or `--key=value`) to a config, in place."""
    pending = list(arguments)
    while pending:
        argument = pending.pop(0)
        if not argument.startswith("--"):
            raise ConfigError(f"expected --key value, got {argument!r}")
        key, has_value, value = argument[2:].partition("=")
        if not has_value:
            if not pending:
                raise ConfigError(f"--{key} needs a value")
            value = pending.pop(0)
        set_key(config, resolve_key(config, key), parse_value(value))
    return config


def get(config: dict, path: str):
    node = config
    for part in path.split("."):
        node = node[part]
    return node


def describe(config: dict) -> str:
    """Every key with its value and what it does, for --help."""
    lines = []
    for path in key_paths(config):
        leaf = path.split(".")[-1]
        value = get(config, path)
        lines.append(f"  --{path} {value!r}")
        if leaf in KEY_HELP:
            lines.append(f"        {KEY_HELP[leaf]}")
    return "\n".join(lines)

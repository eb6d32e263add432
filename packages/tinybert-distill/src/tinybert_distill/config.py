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

Every key is defined once, in `KEYS`: what it does (--help), the values it takes (checked
when a config is loaded), whether it is part of the run's identity (runs.settings_of), and,
for the keys every command has, the value a file that leaves it out gets. The other keys'
defaults are the packaged YAML files', which differ per command. From Python, `make_config`
builds a config with keyword arguments.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from tinybert_core import TinybertError
from tinybert_data import TASK_READERS

CONFIG_PACKAGE = "tinybert_distill.configs"

# The most steps a run may plan: its learning-rate schedule holds one value per step
# (optimization.learning_rates), so `epoch_size 1e9` would allocate tens of GB before the
# first step. Ten million is ten times BERT's pre-training.
MAX_STEPS = 10_000_000
INT32_MAX = 2**31 - 1  # counters kept in int32 parameters (the loss scale's finite steps)
FLOAT32_MAX = 3.4028234e38  # every real number ends up in a float32 tensor


@dataclass(frozen=True)
class Check:
    """The values a key takes: those for which `test` holds, once a whole number written as
    2.0 is read as 2 (`whole`); `wording` names them in the error."""

    test: Callable[[object], bool]
    wording: str
    whole: bool = False


def whole(low: int, high: int | None = None, also=None) -> Check:
    """A whole number >= low (at most `high`), or exactly `also` (train_steps -1, "auto")."""
    text = f"a whole number {f'>= {low}' if high is None else f'from {low} to {high}'}"
    return Check(
        lambda v: (
            (also is not None and v == also)
            or (is_whole(v) and v >= low and (high is None or v <= high))
        ),
        text if also is None else f"{also} or {text}",
        whole=True,
    )


def number(test: Callable[[float], bool], text: str) -> Check:
    """A finite number for which `test` holds: within float32's range, so not inf (nor NaN,
    which fails every comparison)."""
    return Check(
        lambda v: is_number(v) and abs(v) <= FLOAT32_MAX and test(v), f"a finite number {text}"
    )


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


LAYER_LIST = Check(
    lambda v: isinstance(v, list) and all(is_whole(layer) for layer in v),
    "a list of layer numbers",
)
NO_DEFAULT = object()  # the key's default is in the packaged YAML files, per command


@dataclass(frozen=True)
class Key:
    """One config key: what it does, for --help; `check`, the values it takes (None: any),
    and null besides if `nullable`; `free`, whether it may change between a run and its resume
    (how often the run logs, evaluates or saves, where it runs: not part of the run's identity;
    every other key is); `default`, the value a config file that leaves it out gets (the keys
    every command has, top-level)."""

    help: str
    check: Check | None = None
    nullable: bool = False
    free: bool = False
    default: object = NO_DEFAULT

    @property
    def wording(self) -> str:
        """What the values it takes are, for the error that refuses another."""
        return f"{self.check.wording}, or null" if self.nullable else self.check.wording


STUDENT = "bert_student_net_cfg"  # the general student's shape (tinybert-gd)

# Every config key, by leaf name, or by its block's name and leaf where the block matters
# (eval_cfg.batch_size is free, the training blocks' batch sizes are not). A key the table
# does not know (a zoo key this package ignores, a user's own) has no help, takes any value
# and is part of the run's identity. Counts of steps are bounded by MAX_STEPS; what they plan
# together (steps per epoch times epochs) is checked once the data's size is known
# (trainer.check_plan).
KEYS = {
    # where the run goes and what it writes: free
    "device_target": Key("where to run: CPU, GPU or Ascend", free=True),
    "device_id": Key(
        "device number on a multi-device host (set per worker by tinybert-launch)",
        whole(0, high=4095),
        free=True,
    ),
    "ms_mode": Key("GRAPH (compiled, fast) or PYNATIVE (eager, for debugging)", free=True),
    "save_ckpt_path": Key(
        "output folder: checkpoints, log.txt, metrics.jsonl, final models", free=True
    ),
    "save_ckpt_step": Key("write a resumable checkpoint every N steps", whole(1), free=True),
    "max_ckpt_num": Key(
        "resumable checkpoints kept per phase (oldest deleted)", whole(1), free=True
    ),
    "log_every": Key("steps between lines in log.txt and metrics.jsonl", whole(1), free=True),
    "do_eval": Key("evaluate on eval_data_dir and keep the best checkpoint", free=True),
    "eval_step": Key("evaluate every N steps (0: at the end of each epoch)", whole(0), free=True),
    # evaluation covers every row whatever its batch
    "eval_cfg.batch_size": Key("examples per evaluation step on each worker", whole(1), free=True),
    "resume": Key(
        "continue this run from its newest checkpoint in save_ckpt_path (refused if a "
        "setting that changes the data order or the schedule differs from the saved run's)",
        free=True,
    ),
    "overwrite": Key(
        "start afresh in a save_ckpt_path that holds an earlier run's checkpoints, "
        "models and metrics, deleting them first (without it such a folder is refused)",
        free=True,
        default=False,
    ),
    # how batches reach the device, not which ones (sink.py). Off by default (the zoo's
    # default is on): the device-queue path has not yet run on a GPU or Ascend device.
    "enable_data_sink": Key(
        "GPU/Ascend: feed the device through mindspore.dataset's device queue, batches padded "
        "to seq_length (default false, the zoo's true; CPU: no effect, see the README)",
        free=True,
        default=False,
    ),
    "data_sink_steps": Key(
        "with enable_data_sink: steps per sink (the loss is read back, logged and checked "
        "once per sink)",
        whole(1),
        free=True,
        default=1,
    ),
    # how a step's batch is run, not which rows it holds or the update it makes (the same up
    # to float rounding): a run that ran out of memory may resume with more micro-batches. A
    # checkpoint written mid-update holds partial sums of its own micro-batches; it resumes
    # only with the same number (the trainer checks). Hugging Face Trainer's name.
    "gradient_accumulation_steps": Key(
        "micro-batches per step: each step's batch_size rows are run as N micro-batches of "
        "batch_size/N rows whose gradients are added up, then one update (the same update, "
        "the memory of the micro-batch); auto (default): on the CPU, micro-batches of at most "
        "2048 tokens (16 rows of 128), 1 on GPU/Ascend",
        whole(1, also="auto"),
        free=True,
        default="auto",
    ),
    # whether a weak teacher may teach: a resumed run's teacher is the one it began with
    "allow_weak_teacher": Key(
        "distil from a task teacher that scores no better than a guess (the majority label) "
        "on eval_data_dir, or training rows without it (false: such a run stops before it "
        "writes anything)",
        free=True,
    ),
    # what the run trains on and how long
    "do_train": Key("train (false: only evaluate load_td1_ckpt_path / load_ckpt_path)"),
    "epoch_size": Key("epochs over the data", whole(1, high=MAX_STEPS)),
    # 0 skips that phase (run phase 1 and phase 2 as two commands); not both, see validate
    "td_phase1_epoch_size": Key(
        "epochs of phase 1 (attention and hidden-state losses)", whole(0, high=MAX_STEPS)
    ),
    "td_phase2_epoch_size": Key("epochs of phase 2 (prediction loss)", whole(0, high=MAX_STEPS)),
    "train_steps": Key(
        "stop after this many steps (-1: run all epochs)", whole(1, high=MAX_STEPS, also=-1)
    ),
    "do_shuffle": Key("shuffle the rows each epoch (the order depends only on seed and epoch)"),
    "length_buckets": Key(
        "pad each batch only to the smallest bucket length (8, 16, 24, 32, 48, 64, 96, 128, "
        "...) holding its longest row, not to seq_length (false: the zoo's fixed padding)"
    ),
    "seed": Key(
        "seed for initial weights and data order",
        Check(lambda v: is_whole(v) and 0 <= v < 2**32, "a whole number in [0, 2**32)", True),
    ),
    # inputs (their contents are part of the run's identity, runs.is_input)
    "load_teacher_ckpt_path": Key(
        "teacher checkpoint (tinybert-convert output; fine-tuned for task distillation)"
    ),
    "load_gd_ckpt_path": Key(
        "general-distillation student: tinybert-gd's gd.ckpt, or a downloaded general "
        "TinyBERT folder (huawei-noah's, pytorch_model.bin or safetensors)"
    ),
    "load_td1_ckpt_path": Key("a phase-1 student: skip phase 1 and start phase 2 from it"),
    "load_ckpt_path": Key("the model to fine-tune (any tinybert checkpoint; a new head is added)"),
    "data_dir": Key("corpus records from `tinybert-data corpus`"),
    "train_data_dir": Key("training records from `tinybert-data task`"),
    "eval_data_dir": Key("evaluation records from `tinybert-data task`"),
    "schema_dir": Key("schema.json (default: the one beside the records)"),
    "dataset_type": Key("tfrecord or mindrecord"),
    "task_name": Key(f"one of {', '.join(TASK_READERS)} (default: from the data's task.json)"),
    "task_type": Key("classification, regression or ner (default: from the data's task.json)"),
    "assessment_method": Key("metric that picks the best checkpoint (default: the task's own)"),
    # what the student learns from the teacher
    "matches": Key(
        "layer matches of general distillation and task-distillation phase 1: null (from "
        "hidden_layer_map / attention_layer_map), a preset's name, or a list of matches; see "
        "the README's Matches"
    ),
    "hidden_layer_map": Key(
        "teacher hidden state for each student one, embedding output first (null: spread evenly)",
        LAYER_LIST,
        nullable=True,
    ),
    "attention_layer_map": Key(
        "teacher layer whose attention each student layer learns (null: evenly)",
        LAYER_LIST,
        nullable=True,
    ),
    "attention_loss_weight": Key(
        "weight of the attention-score loss", number(lambda v: v >= 0, ">= 0")
    ),
    "hidden_loss_weight": Key("weight of the hidden-state loss", number(lambda v: v >= 0, ">= 0")),
    "prediction_loss_weight": Key(
        "weight of the prediction loss", number(lambda v: v >= 0, ">= 0")
    ),
    "temperature": Key(
        "softmax temperature of the prediction loss", number(lambda v: v > 0, "> 0")
    ),
    "init_student_from_teacher_layers": Key(
        "build the student from these teacher layers (0-based) instead of load_gd_ckpt_path / "
        "random (needs equal widths)",
        LAYER_LIST,
        nullable=True,
    ),
    # the training blocks: common_cfg, phase1_cfg, phase2_cfg (optimizer in AdamWeightDecay)
    "batch_size": Key("examples per step on each worker", whole(1)),
    "loss_scale_value": Key("initial loss scale", number(lambda v: v > 0, "> 0")),
    "scale_factor": Key(
        "loss scale multiplier/divisor", number(lambda v: v >= 1, ">= 1 (1: a fixed loss scale)")
    ),
    "scale_window": Key("finite steps before the loss scale grows", whole(1, high=INT32_MAX)),
    "learning_rate": Key("peak learning rate", number(lambda v: v > 0, "> 0")),
    "end_learning_rate": Key("learning rate at the last step", number(lambda v: v >= 0, ">= 0")),
    "power": Key("power of the polynomial decay", number(lambda v: v > 0, "> 0")),
    "weight_decay": Key(
        "AdamW weight decay (not on LayerNorm or biases)", number(lambda v: v >= 0, ">= 0")
    ),
    "eps": Key("Adam epsilon", number(lambda v: v > 0, "> 0")),
    "warmup_ratio": Key(
        "share of the steps spent warming up linearly from 0",
        number(lambda v: 0 <= v < 1, "in [0, 1)"),
    ),
    # the general student's shape
    f"{STUDENT}.vocab_size": Key("vocabulary size (null: the teacher's)", whole(1), nullable=True),
    f"{STUDENT}.hidden_size": Key("student width", whole(1)),
    f"{STUDENT}.num_hidden_layers": Key("student layers", whole(1)),
    f"{STUDENT}.num_attention_heads": Key("student attention heads", whole(1)),
    f"{STUDENT}.intermediate_size": Key("student feed-forward width", whole(1)),
    f"{STUDENT}.hidden_act": Key(
        "student activation: gelu (exact), gelu_tanh (the tanh approximation) or relu"
    ),
    f"{STUDENT}.hidden_dropout_prob": Key(
        "dropout on the student's hidden states", number(lambda v: 0 <= v < 1, "in [0, 1)")
    ),
    f"{STUDENT}.attention_probs_dropout_prob": Key(
        "dropout on the student's attention probabilities",
        number(lambda v: 0 <= v < 1, "in [0, 1)"),
    ),
    f"{STUDENT}.max_position_embeddings": Key("longest input the student takes", whole(1)),
    f"{STUDENT}.type_vocab_size": Key("segment (token type) embeddings of the student", whole(1)),
    f"{STUDENT}.initializer_range": Key(
        "standard deviation of the student's initial weights", number(lambda v: v > 0, "> 0")
    ),
    f"{STUDENT}.compute_type": Key(
        "float32, or float16 on GPU/Ascend (LayerNorm, softmax and the losses stay float32)"
    ),
}
OTHER_KEY = Key("")  # a key KEYS does not know: no help, any value, part of the run's identity
TRAINING_BLOCKS = ("common_cfg", "phase1_cfg", "phase2_cfg")  # each with its batch_size


def key_of(path: str) -> Key:
    """The definition of the key at a dotted path: its entry by the longest tail of the path
    that KEYS holds (`eval_cfg.batch_size` before `batch_size`)."""
    parts = path.split(".")
    for start in range(len(parts)):
        if (key := KEYS.get(".".join(parts[start:]))) is not None:
            return key
    return OTHER_KEY


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
    """A config file as a dict: what its `based_on` names first, then the file's keys, then the
    defaults of the keys every command has (KEYS) that neither sets."""
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
    for name, key in KEYS.items():
        if key.default is not NO_DEFAULT:
            config.setdefault(name, key.default)
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
    """Check every key against its definition in KEYS; raise ConfigError naming the first
    key that is wrong. Whole numbers written as 2.0 become 2."""
    for path in key_paths(config):
        key, value = key_of(path), get(config, path)
        if key.check is None or (value is None and key.nullable):
            continue
        if key.check.whole and isinstance(value, float) and value.is_integer():
            value = int(value)
            _put(config, path, value)
        if not key.check.test(value):
            raise ConfigError(f"--{path} is {value!r}; it must be {key.wording}")
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


def make_config(name, /, **values) -> dict:
    """A config for Python callers: the packaged config or file `name` names (as --config
    takes it), with each keyword a key named as on the command line and its value a Python
    value, not command-line text; checked once (validate). Raises ConfigError.

        config = make_config("gd_config", load_teacher_ckpt_path="t.ckpt", data_dir="corpus/",
                             batch_size=8, bert_student_net_cfg={"num_hidden_layers": 2})

    A keyword is a leaf name if one key has it; a dict sets keys of that block, nested blocks
    key by key (`phase1_cfg={"batch_size": 8}`); a dotted name goes through **
    (`**{"phase2_cfg.learning_rate": 3e-5}`). A path may be a Path, a list a tuple."""
    config = load_config(find_config(name))
    for key, value in _dotted(values):
        set_key(config, resolve_key(config, key), _plain(value))
    return validate(config)


def _dotted(values: dict, prefix: str = "") -> list:
    """(dotted key, value) for every leaf of nested dicts."""
    pairs = []
    for key, value in values.items():
        if isinstance(value, dict):
            pairs.extend(_dotted(value, f"{prefix}{key}."))
        else:
            pairs.append((f"{prefix}{key}", value))
    return pairs


def _plain(value):
    """A value as YAML holds it (config.yaml is written with yaml.safe_dump)."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return list(value) if isinstance(value, tuple) else value


def get(config: dict, path: str):
    node = config
    for part in path.split("."):
        node = node[part]
    return node


def describe(config: dict) -> str:
    """Every key with its value and what it does, for --help."""
    lines = []
    for path in key_paths(config):
        lines.append(f"  --{path} {get(config, path)!r}")
        if help_text := key_of(path).help:
            lines.append(f"        {help_text}")
    return "\n".join(lines)

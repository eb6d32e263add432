"""BertConfig: the shape of a BERT model, read from and written to the formats users bring.

One dataclass covers Google's `bert_config.json`, Hugging Face's `config.json` (same key
names, plus a few extras) and the network section of the MindSpore model zoo's YAML files
(`td_student_net_cfg:` and friends). Task heads add `labels` and `task_type`, as HF's
`id2label` and `problem_type` do, so a checkpoint that embeds its config is self-describing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tinybert_core import DataError, json_object, read_text

from .errors import CheckpointError

TASK_TYPES = ("classification", "regression", "ner")
ACTIVATIONS = ("gelu", "gelu_tanh", "relu")
# Hugging Face's names for the tanh approximation of GELU.
HF_TANH_GELUS = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")
# The model's shape: every config file a model is converted with states them all (Google's
# bert_config.json and every BERT config.json do); a default would be a guess.
SHAPE_KEYS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
    "type_vocab_size",
)


@dataclass
class BertConfig:
    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"  # exact erf GELU; "gelu_tanh" for the tanh approximation
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    # "float16" runs the dense layers in half precision (GPU/Ascend); LayerNorm, softmax
    # and all outputs stay float32.
    compute_type: str = "float32"
    # Task head, if any: label names in id order and the kind of task.
    labels: list | None = field(default=None)
    task_type: str | None = None

    def __post_init__(self):
        for key in SHAPE_KEYS:
            value = getattr(self, key)
            if isinstance(value, float) and value.is_integer():
                value = int(value)  # 312.0 from a YAML or JSON writer that writes floats
                setattr(self, key, value)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise CheckpointError(f"{key} must be a whole number >= 1, not {value!r}")
        if self.hidden_size % self.num_attention_heads:
            raise CheckpointError(
                f"hidden_size {self.hidden_size} is not a multiple of "
                f"num_attention_heads {self.num_attention_heads}"
            )
        if self.hidden_act not in ACTIVATIONS:
            raise CheckpointError(
                f"hidden_act must be one of {ACTIVATIONS}, not {self.hidden_act!r}"
            )
        if self.compute_type not in ("float32", "float16"):
            raise CheckpointError(
                f"compute_type must be float32 or float16, not {self.compute_type!r}"
            )
        if self.task_type is not None and self.task_type not in TASK_TYPES:
            raise CheckpointError(f"task_type must be one of {TASK_TYPES}, not {self.task_type!r}")

    @property
    def num_labels(self) -> int:
        return len(self.labels) if self.labels else 0

    # ---- presets -------------------------------------------------------------------------

    @classmethod
    def preset(cls, name: str, **overrides) -> BertConfig:
        """A named architecture: tinybert-4, tinybert-6, zoo-student or bert-base."""
        if name not in PRESETS:
            raise CheckpointError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
        return dataclasses.replace(PRESETS[name], **overrides)

    # ---- JSON: Google's bert_config.json, HF's config.json, our own ----------------------

    @classmethod
    def from_dict(cls, values: dict) -> BertConfig:
        """Keep the keys BertConfig knows; HF's id2label becomes `labels`."""
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in values.items() if k in known}
        if "labels" not in kwargs and values.get("id2label"):
            kwargs["labels"] = _labels_of(values["id2label"])
        if kwargs.get("hidden_act") in HF_TANH_GELUS:
            kwargs["hidden_act"] = "gelu_tanh"
        if "task_type" not in kwargs and values.get("problem_type") == "regression":
            kwargs["task_type"] = "regression"
        if values.get("position_embedding_type", "absolute") != "absolute":
            raise CheckpointError(
                f"position_embedding_type {values['position_embedding_type']!r} is not supported "
                "(only absolute position embeddings)"
            )
        return cls(**kwargs)

    @classmethod
    def from_json(cls, path) -> BertConfig:
        """A model's config file (Google's bert_config.json, HF's config.json): a JSON object
        that states every shape key; anything else is a CheckpointError naming the file."""
        path = Path(path)
        values = read_json_object(path)
        missing = [key for key in SHAPE_KEYS if key not in values]
        if missing:
            raise CheckpointError(
                f"{path}: no {', '.join(missing)} (a BERT config states the model's shape: "
                f"{', '.join(SHAPE_KEYS)})"
            )
        try:
            return cls.from_dict(values)
        except TypeError as error:
            raise CheckpointError(f"{path}: {error}") from None
        except CheckpointError as error:
            raise CheckpointError(f"{path}: {error}") from None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_google_dict(self) -> dict:
        """The eleven keys of Google's bert_config.json."""
        keys = [
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
        ]
        return {k: getattr(self, k) for k in keys}

    def to_hf_dict(self, architecture: str) -> dict:
        """A config.json that transformers' BertModel / BertFor* classes load."""
        values = self.to_google_dict()
        values.update(
            model_type="bert",
            architectures=[architecture],
            layer_norm_eps=self.layer_norm_eps,
            pad_token_id=0,
            position_embedding_type="absolute",
            hidden_act="gelu_new" if self.hidden_act == "gelu_tanh" else self.hidden_act,
        )
        if self.labels:
            values["id2label"] = {str(i): label for i, label in enumerate(self.labels)}
            values["label2id"] = {label: i for i, label in enumerate(self.labels)}
            if self.task_type == "regression":
                values["problem_type"] = "regression"
        return values

    # ---- the model zoo's YAML network section --------------------------------------------

    @classmethod
    def from_zoo_yaml(cls, path, section: str | None = None) -> BertConfig:
        """Read a `*_net_cfg:` section of a model-zoo YAML file (gd_config.yaml, td_config_*.yaml).

        With no `section`, the file must hold exactly one such section, or be the section
        itself, read as `from_zoo_section` reads it; a document-level `task_type` becomes the
        config's.
        """
        path = Path(path)
        try:
            # The zoo's files hold three YAML documents: values, help texts, choices.
            document = next(yaml.safe_load_all(read_text(path)))
        except DataError as error:
            raise CheckpointError(str(error)) from None
        except yaml.YAMLError as error:
            raise CheckpointError(f"{path}: not valid YAML ({error})") from None
        if not isinstance(document, dict):
            raise CheckpointError(f"{path}: expected a YAML mapping")
        sections = [k for k, v in document.items() if k.endswith("net_cfg") and isinstance(v, dict)]
        if section is not None:
            if section not in document:
                raise CheckpointError(f"{path}: no section {section!r}; it has {sections}")
            values = document[section]
        elif "hidden_size" in document:
            values = document
        elif len(sections) == 1:
            values = document[sections[0]]
        else:
            raise CheckpointError(
                f"{path}: holds {len(sections)} network sections {sections}; say which one"
            )
        values = dict(values)
        if document.get("task_type") in TASK_TYPES and "task_type" not in values:
            values["task_type"] = document["task_type"]
        try:
            return cls.from_zoo_section(values)
        except CheckpointError as error:
            raise CheckpointError(f"{path}: {error}") from None

    @classmethod
    def from_zoo_section(cls, values: dict) -> BertConfig:
        """A network section of a model-zoo YAML file (`bert_student_net_cfg:`,
        `td_teacher_net_cfg:`, ...), already read into a dict.

        `compute_type: mstype.float16` becomes "float16"; `seq_length`, `dtype` and
        `use_relative_positions` (always False in the zoo's TinyBERT) are not model shape.
        The one reading of these sections: tinybert-convert's and tinybert-gd's.
        """
        values = dict(values)
        if values.pop("use_relative_positions", False):
            raise CheckpointError("use_relative_positions is not supported")
        values["compute_type"] = str(values.pop("compute_type", "float32")).replace("mstype.", "")
        return cls.from_dict(values)

    def to_zoo_dict(self, seq_length: int = 128) -> dict:
        """A network section in the zoo's YAML layout."""
        values = self.to_google_dict()
        values.update(
            seq_length=seq_length,
            use_relative_positions=False,
            dtype="mstype.float32",
            compute_type=f"mstype.{self.compute_type}",
        )
        return values

    # ---- any of the above, by file name ---------------------------------------------------

    @classmethod
    def from_file(cls, path) -> BertConfig:
        """A .json (Google or HF) or .yaml/.yml (model zoo) config."""
        suffix = Path(path).suffix.lower()
        if suffix in (".yaml", ".yml"):
            return cls.from_zoo_yaml(path)
        return cls.from_json(path)


def read_json_object(path) -> dict:
    """A JSON file that must hold an object (config.json and friends), read as tinybert-core
    reads every file a user hands over; its errors as CheckpointError, one line naming it."""
    try:
        return json_object(read_text(path), path)
    except DataError as error:
        raise CheckpointError(str(error)) from None


def _labels_of(id2label) -> list:
    """HF's id2label ({"0": "negative", ...}) as names in id order."""
    if not isinstance(id2label, dict):
        raise CheckpointError(f"id2label is a {type(id2label).__name__}, not an object")
    ids = {str(key): value for key, value in id2label.items()}
    missing = [i for i in range(len(ids)) if str(i) not in ids]
    if missing:
        raise CheckpointError(f"id2label has no label for id {missing[0]}")
    return [ids[str(i)] for i in range(len(ids))]


def tiny_config(vocab_size: int, **changes) -> BertConfig:
    """A BertConfig small enough to build, train and export in a unit test, for tests and
    examples: 2 layers 32 wide, 2 heads, a feed-forward of 64, 64 positions, and no dropout
    (MindSpore's dropout masks cannot be replayed, so with it the same weights and data give
    other numbers each run). `changes` sets any other field: `labels`, `task_type`, a wider
    `hidden_size`, BERT's 0.1 dropout back."""
    values = dict(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return BertConfig(**{**values, **changes})


PRESETS = {
    "tinybert-4": BertConfig(num_hidden_layers=4, hidden_size=312, intermediate_size=1200),
    "tinybert-6": BertConfig(num_hidden_layers=6, hidden_size=768, intermediate_size=3072),
    "zoo-student": BertConfig(num_hidden_layers=4, hidden_size=384, intermediate_size=1536),
    "bert-base": BertConfig(),
}

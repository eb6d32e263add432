"""Running an exported model: the inference engine, the model's own description, and raw text
to predictions.

    predictor = Predictor.from_model("student.onnx")   # tokenizer and task from the model
    predictor.predict(["a gripping film", "a mess"])
    # [{"text": ..., "label": "1", "probabilities": {"0": 0.03, "1": 0.97}}, ...]
    predictor.path                                      # which engine and precision runs it

A model exported by this version carries its task.json (`task_info`) and its vocabulary
(`vocab`) in the ONNX metadata, so one file is all a user ships. Older models (no `vocab`
entry) still run when the vocabulary is given.

Engines: ONNX Runtime (always there) and OpenVINO (extra `tinybert-deploy[openvino]`).
`runtime="auto"` takes the fastest for this model on this CPU (see `choose_runtime`).
Texts are sorted by length and run in batches padded only to the longest text of the batch
(the graph's batch and sequence axes are dynamic), then returned in input order.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from functools import partial

import numpy as np
import onnxruntime

from tinybert_core import (
    TASK_TYPES,
    TinybertError,
    UnknownTaskError,
    check_task_info,
    json_object,
    read_text,
    regular_file,
)
from tinybert_core import TEXT_COLUMNS as INPUTS  # the model's inputs, in argument order
from tinybert_data import BertTokenizer, get_task, vocab_tokens
from tinybert_eval import spans_from_tags

from .errors import DeployError

log = logging.getLogger("tinybert_deploy")

RUNTIMES = ("auto", "onnxruntime", "openvino")
QUANTIZATIONS = ("none", "dynamic", "static")  # a model's `quantization` metadata
# Rows per model call. A CPU runs no faster beyond a few dozen (docs/RESULTS.md), while memory
# grows with the rows: 1,024 rows of 512 tokens hold ~13 GB of attention scores in a 12-head
# model. A larger value is a typo, refused before anything runs.
MAX_BATCH_SIZE = 1024
# ONNX Runtime starts every intra-op thread when it loads the model; threads beyond the cores
# only take turns. 256 is far beyond any CPU this runs on; more is a typo.
MAX_THREADS = 256


def in_range(name: str, value, low: int, high: int, why: str = "") -> int:
    """`value` if it is a whole number in [low, high]; otherwise one line naming the setting
    (`why`: what sets the bound, e.g. the model's positions)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or not (low <= value <= high)
    ):
        raise DeployError(f"{name} must be a whole number from {low} to {high}{why}, not {value!r}")
    return int(value)


def reads_pairs(task_name, task_type=None) -> bool | None:
    """Whether a task takes sentence pairs: False for taggers and one-text tasks, True for pair
    tasks, None for a task tinybert-data has no reader for (then both are taken)."""
    if task_type == "ner":
        return False
    try:
        task = get_task(task_name)
    except UnknownTaskError:
        return None
    # GLUE readers name their text columns; the CLUE ones (tnews, cluener) read one text
    return len(getattr(task, "text_columns", ("text",))) == 2


def shortest_length(task_name, task_type=None) -> int:
    """The fewest tokens per row: [CLS], the [SEP]s and one token of each text."""
    return 3 if reads_pairs(task_name, task_type) is False else 4


def cpu_flags() -> set:
    """The instruction-set flags of this CPU (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            for line in info:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def has_fast_bf16(flags=None) -> bool:
    """True where bf16 matrix products run in hardware: AVX512-BF16 or AMX-BF16."""
    flags = cpu_flags() if flags is None else flags
    return bool({"avx512_bf16", "amx_bf16"} & flags)


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def choose_runtime(quantization: str = "none", flags=None, openvino: bool | None = None) -> tuple:
    """(runtime, precision) that runs a model of this `quantization` ("none", "dynamic" or
    "static": `OnnxModel.quantization`) fastest here, as measured in bench/bench_deploy.py
    (docs/RESULTS.md). Where the CPU has bf16 hardware and OpenVINO is installed, an fp32 model
    runs on OpenVINO in bf16 and a static int8 (QDQ) model on OpenVINO in int8 with the rest of
    its work in bf16 ("int8 + bf16": 1.3x ONNX Runtime's dynamic int8 at 32 x 128 on an AMD EPYC
    with AVX512-BF16); everything else on ONNX Runtime, int8 models as quantized (ONNX Runtime's
    dynamic int8 stays the fastest for one sentence). On an AVX2 CPU, ORT fp32 was 1.16-1.28x
    faster than OpenVINO fp32 at batch 1 and OpenVINO 1.25x faster at batch 32 x 128 (choose it
    for bulk scoring with runtime="openvino")."""
    if quantization not in QUANTIZATIONS:
        raise DeployError(
            f"quantization must be one of {', '.join(QUANTIZATIONS)}, not {quantization!r}"
        )
    openvino = openvino_available() if openvino is None else openvino
    if quantization != "dynamic" and openvino and has_fast_bf16(flags):
        return "openvino", "bf16"
    return "onnxruntime", "fp32" if quantization == "none" else "int8"


class OnnxModel:
    """An exported model with our three inputs: its metadata, and an engine that runs it.

    `runtime`: "onnxruntime", "openvino" or "auto"; `precision` (OpenVINO only): "fp32" or
    "bf16" (refused on a CPU without bf16 hardware; `quantize.bf16_emulated` measures bf16's
    accuracy there).
    """

    def __init__(
        self, path, threads: int | None = None, runtime: str = "onnxruntime", spinning=True
    ):
        path = regular_file(path)
        if runtime not in RUNTIMES:
            raise DeployError(f"runtime must be one of {', '.join(RUNTIMES)}, not {runtime}")
        options = onnxruntime.SessionOptions()
        if not spinning:
            # ONNX Runtime's threads busy-wait between ops by default; beside other work on the
            # same cores (tinybert-serve's event loop and its clients) that time is stolen from
            # it: tinybert-serve handled 2x the requests at concurrency 32 without (RESULTS).
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads is not None:
            options.intra_op_num_threads = in_range("threads", threads, 1, MAX_THREADS)
        try:
            session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises its own exception types
            raise DeployError(f"{path}: not a model ONNX Runtime can load ({error})") from None
        inputs = {i.name: i for i in session.get_inputs()}
        if set(inputs) != set(INPUTS):
            raise DeployError(
                f"{path}: the model's inputs are {sorted(inputs)}; expected {', '.join(INPUTS)}"
            )
        outputs = [o.name for o in session.get_outputs()]
        if "logits" not in outputs:
            raise DeployError(f"{path}: the model's outputs are {outputs}; expected logits")
        self.dtypes = {
            name: np.int64 if "int64" in i.type else np.int32 for name, i in inputs.items()
        }
        self.path = path
        meta = session.get_modelmeta().custom_metadata_map
        self.metadata = dict(meta)
        entry = partial(metadata_entry, path, meta)
        # the data's task.json, of the layout tinybert-core checks
        source = f"{path} (its metadata's task_info)"
        self.task_info = check_task_info(json_object(meta.get("task_info") or "{}", source), source)
        self.task = meta.get("task") or self.task_info.get("task")
        self.task_type = meta.get("task_type", "classification")
        self.labels = entry("labels", list, None)
        self.vocab_size = entry("vocab_size", int, None)
        self.do_lower_case = entry("do_lower_case", bool, True)
        self.max_length = entry("max_position_embeddings", int, 512)
        # the length the model was trained at; older models did not record it
        self.seq_length = entry("seq_length", int, None)
        self.vocab_text = meta.get("vocab")
        self.quantization = meta.get("quantization", "none")
        self.session = session
        self._check_metadata()
        self._check_graph()
        self.runtime, self.precision = "onnxruntime", "int8" if self.quantized else "fp32"
        if runtime == "auto":
            runtime, precision = choose_runtime(self.quantization)
            if runtime == "openvino":
                self.use_openvino(precision, threads)
        elif runtime == "openvino":
            self.use_openvino("fp32", threads)

    def _check_metadata(self) -> None:
        """What the metadata says must hold together: export writes it so, an edited or
        damaged model would otherwise tokenize or label wrongly without a word."""
        wrong = partial(_wrong_metadata, self.path)
        if self.task_type not in TASK_TYPES:
            wrong(f"task_type {self.task_type!r} is none of {', '.join(TASK_TYPES)}")
        if self.quantization not in QUANTIZATIONS:
            wrong(f"quantization {self.quantization!r} is none of {', '.join(QUANTIZATIONS)}")
        if self.labels is not None:
            if not all(isinstance(label, str) for label in self.labels):
                wrong(f"labels {self.labels!r} are not all names (strings)")
            if len(set(self.labels)) != len(self.labels):
                wrong(f"labels {self.labels} name a label twice")
        if self.task_type == "ner" and not self.labels:
            wrong("a tagger (task_type ner) lists no tags in labels")
        if self.vocab_size is not None and self.vocab_size < 1:
            wrong(f"vocab_size {self.vocab_size} is not a vocabulary's size")
        if self.max_length < 4:
            wrong(f"max_position_embeddings {self.max_length} leaves no room for text")
        if self.seq_length is not None and not 1 <= self.seq_length <= self.max_length:
            wrong(
                f"seq_length {self.seq_length} is not within the model's "
                f"max_position_embeddings {self.max_length}"
            )
        if self.vocab_text is not None and self.vocab_size is not None:
            count = len(vocab_tokens(self.vocab_text))
            if count != self.vocab_size:
                wrong(f"its vocab holds {count} tokens but vocab_size says {self.vocab_size}")
        # task_info is the data's task.json, which the top-level entries were written from
        top_level = {
            "task": self.task,
            "labels": self.labels,
            "seq_length": self.seq_length,
            "do_lower_case": self.do_lower_case,
        }
        for key, value in top_level.items():
            recorded = self.task_info.get(key)
            if recorded is not None and value is not None and recorded != value:
                wrong(f"its {key} entry is {value!r} but its task_info's {key} is {recorded!r}")

    def _check_graph(self) -> None:
        """Run one 2-token row holding the last token id the metadata allows: an embedding
        table smaller than vocab_size fails here rather than on some later text; and the
        logits' shape must fit task_type and the labels."""
        wrong = partial(_wrong_metadata, self.path)
        top_id = (self.vocab_size or 1) - 1
        ids = np.array([[top_id, top_id]])
        feed = {
            "input_ids": ids,
            "segment_ids": np.zeros_like(ids),
            "input_mask": np.ones_like(ids),
        }
        try:
            logits = self.session.run(
                ["logits"], {name: feed[name].astype(self.dtypes[name]) for name in INPUTS}
            )[0]
        except Exception as error:  # onnxruntime raises its own exception types
            wrong(
                f"token id {top_id}, the last below its vocab_size {self.vocab_size}, fails in "
                f"the graph ({_first_line(error)})"
            )
        dimensions = 3 if self.task_type == "ner" else 2  # [batch, (sequence,) labels]
        if logits.ndim != dimensions:
            wrong(
                f"task_type {self.task_type} means logits of {dimensions} dimensions but the "
                f"graph gives {logits.ndim}"
            )
        width = logits.shape[-1]
        if self.task_type == "regression" and width != 1:
            wrong(f"task_type regression means one score but the graph gives {width}")
        if self.labels is not None and self.task_type != "regression" and width != len(self.labels):
            wrong(f"it names {len(self.labels)} labels but the graph scores {width}")

    def length_in_range(self, name: str, length) -> int:
        """A tokens-per-row setting, refused beyond the model's positions and below what
        [CLS], the [SEP]s and one token of each text need."""
        why = f" ({self.path} has {self.max_length} positions)"
        return in_range(
            name, length, shortest_length(self.task, self.task_type), self.max_length, why
        )

    @property
    def reads_pairs(self) -> bool | None:
        """Whether the model's task takes sentence pairs (see `reads_pairs`)."""
        return reads_pairs(self.task, self.task_type)

    @property
    def quantized(self) -> bool:
        return self.quantization != "none"

    def use_openvino(self, precision: str = "fp32", threads=None) -> None:
        """Run the model with OpenVINO (extra `tinybert-deploy[openvino]`) in fp32 or bf16: of
        an int8 model, the work that is not quantized (the attention products, norms,
        activations, the task head) runs in that precision, the quantized products in int8.

        bf16 needs AVX512-BF16 or AMX; OpenVINO would silently compute in fp32 elsewhere, so bf16
        is refused there."""
        if precision not in ("fp32", "bf16"):
            raise DeployError(f"precision must be fp32 or bf16, not {precision}")
        if precision == "bf16" and not has_fast_bf16():
            raise DeployError(
                "bf16 needs a CPU with AVX512-BF16 or AMX (this one has neither): use fp32 or int8"
            )
        try:
            import openvino
        except ImportError:
            raise DeployError(
                "the openvino runtime needs: pip install tinybert-deploy[openvino]"
            ) from None
        core = openvino.Core()
        config = {"INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        config["PERFORMANCE_HINT"] = "LATENCY"
        compiled = core.compile_model(core.read_model(str(self.path)), "CPU", config)
        request = compiled.create_infer_request()
        output = compiled.output("logits")

        def run(feed):
            return request.infer(feed)[output]

        self._run = run
        self.runtime = "openvino"
        if self.quantized:
            self.precision = "int8 + bf16" if precision == "bf16" else "int8"
        else:
            self.precision = precision

    def _run(self, feed):
        return self.session.run(["logits"], feed)[0]

    @property
    def description(self) -> str:
        """Which engine and precision run the model, e.g. "onnxruntime 1.32.0, fp32"."""
        if self.runtime == "openvino":
            import openvino

            version = openvino.__version__.split("-")[0]
        else:
            version = onnxruntime.__version__
        return f"{self.runtime} {version}, {self.precision}"

    def logits(self, input_ids, segment_ids, input_mask) -> np.ndarray:
        feed = {
            name: np.asarray(value, self.dtypes[name])
            for name, value in zip(INPUTS, (input_ids, segment_ids, input_mask))
        }
        if (
            self.vocab_size
            and feed["input_ids"].size
            and feed["input_ids"].max() >= self.vocab_size
        ):
            raise DeployError(
                f"token id {int(feed['input_ids'].max())} is beyond {self.path}'s embedding table "
                f"({self.vocab_size} tokens): the data was tokenized with another vocabulary"
            )
        if feed["input_ids"].size and feed["input_ids"].min() < 0:
            raise DeployError(f"negative token id {int(feed['input_ids'].min())} in the input")
        try:
            return self._run(feed)
        except Exception as error:  # the engines raise their own exception types
            rows, length = feed["input_ids"].shape
            raise DeployError(
                f"{self.path}: the graph failed on {rows} x {length} tokens, within its "
                f"metadata's max_position_embeddings {self.max_length} and vocab_size "
                f"{self.vocab_size} ({_first_line(error)})"
            ) from None

    def tokenizer(self, vocab_path=None) -> BertTokenizer:
        """The model's own tokenizer, or one from `vocab_path` (older models need it); a
        vocabulary that is not the one the model was trained with is refused."""
        if vocab_path is None:
            if self.vocab_text is None:
                raise DeployError(
                    f"{self.path} does not carry its vocabulary (exported before tinybert-deploy "
                    "0.2): pass --vocab, the vocab.txt the model's data was tokenized with"
                )
            return tokenizer_from_text(
                self.vocab_text, self.do_lower_case, f"{self.path}'s vocabulary"
            )
        self.check_vocab(read_text(vocab_path), vocab_path)
        return tokenizer_from_file(vocab_path, self.do_lower_case)

    def check_vocab(self, text: str, source) -> None:
        """Refuse a vocabulary (the text of a vocab.txt, read from `source`) that is not the one
        the model was trained with: another size, or (for models that carry theirs) another
        token on some line."""
        given = vocab_tokens(text)
        if self.vocab_size and len(given) != self.vocab_size:
            raise DeployError(
                f"{source} has {len(given)} tokens but {self.path} was trained with "
                f"{self.vocab_size}: use the vocabulary the model's data was tokenized with"
            )
        if self.vocab_text is not None:
            own = vocab_tokens(self.vocab_text)
            for line, (ours, theirs) in enumerate(zip(own, given), start=1):
                if ours != theirs:
                    raise DeployError(
                        f"{source} line {line} is {theirs!r} but the vocabulary {self.path} "
                        f"was trained with has {ours!r}: leave out --vocab to use the model's own"
                    )


def tokenizer_from_file(path, do_lower_case: bool, source=None) -> BertTokenizer:
    """tinybert-data's tokenizer of a vocab.txt; a vocabulary it cannot use (one without BERT's
    special tokens) is one line naming `source` (default: the file)."""
    try:
        return BertTokenizer.from_vocab(path, do_lower_case=do_lower_case)
    except ValueError as error:
        if isinstance(error, TinybertError):  # names the file it read: say which one that was
            if source is None:
                raise
            raise DeployError(str(error).replace(str(path), str(source))) from None
        raise DeployError(f"{source or path}: {error}") from None


def tokenizer_from_text(vocab_text: str, do_lower_case: bool, source=None) -> BertTokenizer:
    """A tokenizer from the text of a vocab.txt (through a temporary file: the tokenizer is
    built from a file in one place only, tinybert_data); `source` names it in errors."""
    handle, temporary = tempfile.mkstemp(suffix=".txt", prefix="tinybert-vocab-")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(vocab_text)
        return tokenizer_from_file(temporary, do_lower_case, source or "the vocabulary")
    finally:
        os.unlink(temporary)


def metadata_entry(path, meta: dict, key: str, kind: type, default=None):
    """Metadata entry `key` of the model at `path`, parsed as JSON and of type `kind` (a JSON
    null counts as absent); one line naming the model and the entry when it is not."""
    if key not in meta:
        return default
    try:
        value = json.loads(meta[key])
    except json.JSONDecodeError as error:
        _wrong_metadata(path, f"{key} is not valid JSON ({error.msg}: {meta[key][:40]!r})")
    except (RecursionError, ValueError):  # nested too deeply; an integer of 4,300+ digits
        _wrong_metadata(path, f"{key} is not readable JSON ({meta[key][:40]!r}...)")
    if value is None:
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        expected = {dict: "a JSON object", list: "a JSON list", int: "a whole number"}
        _wrong_metadata(path, f"{key} is {value!r}, not {expected.get(kind, 'true or false')}")
    return value


def _wrong_metadata(path, what: str):
    raise DeployError(
        f"{path}: the model's metadata does not fit: {what} (re-export it with tinybert-export)"
    )


def _first_line(error: Exception) -> str:
    """The first line of an engine's message, cut to a readable length."""
    lines = str(error).strip().splitlines()
    return (lines[0] if lines else type(error).__name__)[:300]


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)


def trimmed(columns: dict) -> dict:
    """Columns cut to the longest real row: padding beyond it changes nothing but the time."""
    length = max(int(columns["input_mask"].sum(1).max()), 1)
    return {
        name: value[:, :length] if value.ndim == 2 else value for name, value in columns.items()
    }


class Predictor:
    """Raw text in, labels (or entities with character offsets) out."""

    def __init__(
        self, model: OnnxModel, tokenizer: BertTokenizer, batch_size: int = 32, max_length=None
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = in_range("batch_size", batch_size, 1, MAX_BATCH_SIZE)
        self.max_length = model.max_length
        if max_length is not None:
            self.max_length = model.length_in_range("max_length", max_length)

    @classmethod
    def from_model(
        cls,
        model_path,
        vocab_path=None,
        threads=None,
        batch_size: int = 32,
        max_length=None,
        runtime: str = "auto",
        spinning: bool = True,
    ):
        """A predictor for an exported model; the vocabulary comes from the model unless given.
        `runtime="auto"` picks the fastest engine here; `predictor.path` says which.
        `spinning=False`: ONNX Runtime's threads sleep between ops instead of busy-waiting
        (for a process that does other work on the same cores)."""
        model = OnnxModel(model_path, threads, runtime, spinning)
        return cls(model, model.tokenizer(vocab_path), batch_size, max_length)

    @property
    def path(self) -> str:
        return self.model.description

    def predict(self, texts) -> list:
        """One result per text; a text is a string or a (text_a, text_b) pair, as the model's
        task reads them (`model.reads_pairs`)."""
        pairs = [(t, None) if isinstance(t, str) else tuple(t) for t in texts]
        reads_pairs = self.model.reads_pairs
        for number, pair in enumerate(pairs, start=1):
            if len(pair) != 2:
                raise DeployError(f"input {number} holds {len(pair)} texts: give a text or a pair")
            paired = pair[1] is not None
            if reads_pairs is not None and paired != reads_pairs:
                raise DeployError(
                    f"input {number} is {'a sentence pair' if paired else 'one text'}, but "
                    f"{self.model.path} ({self.model.task}) reads "
                    f"{'sentence pairs' if reads_pairs else 'one text'}"
                )
        encodings = [self.tokenizer.encode(a, b, self.max_length) for a, b in pairs]
        for index, encoding in enumerate(encodings):
            if encoding.truncated:
                log.warning(
                    "input %d is longer than %d tokens: truncated", index + 1, self.max_length
                )
        order = sorted(range(len(encodings)), key=lambda i: sum(encodings[i].input_mask))
        results = [None] * len(encodings)
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            columns = trimmed(
                {
                    name: np.array([getattr(encodings[i], name) for i in batch], np.int32)
                    for name in INPUTS
                }
            )
            logits = self.model.logits(*(columns[name] for name in INPUTS))
            for row, index in enumerate(batch):
                results[index] = self.result(pairs[index], encodings[index], logits[row])
        return results

    def result(self, pair, encoding, logits) -> dict:
        """What tinybert-predict prints for one input: its label and probabilities, or its
        entities with character spans; `logits` is the model's output row for `encoding`."""
        text = pair[0] if pair[1] is None else list(pair)
        if not np.all(np.isfinite(logits)):
            raise DeployError(
                f"{self.model.path} computed non-finite logits for {text!r}: the model's weights "
                "are corrupt (re-export it from a good checkpoint)"
            )
        labels = self.model.labels
        if self.model.task_type == "regression":
            return {"text": text, "score": float(np.ravel(logits)[0])}
        if self.model.task_type == "ner":
            return {"text": text, "entities": self._entities(pair[0], encoding, logits)}
        probabilities = softmax(logits)
        names = labels or [str(i) for i in range(len(probabilities))]
        best = int(probabilities.argmax())
        return {
            "text": text,
            "label": names[best],
            "probabilities": {name: round(float(p), 6) for name, p in zip(names, probabilities)},
        }

    def _entities(self, text: str, encoding, logits) -> list:
        """Token tags -> entities with character offsets [start, end) into `text`."""
        real = [
            i
            for i, token in enumerate(encoding.tokens[: len(logits)])
            if encoding.offsets[i] != (0, 0)
        ]
        tags = [self.model.labels[int(logits[i].argmax())] for i in real]
        entities = []
        for kind, first, last in spans_from_tags(tags):
            start, end = encoding.offsets[real[first]][0], encoding.offsets[real[last]][1]
            entities.append({"type": kind, "start": start, "end": end, "text": text[start:end]})
        return entities

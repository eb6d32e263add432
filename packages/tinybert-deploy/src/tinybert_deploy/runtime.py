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
from pathlib import Path

import numpy as np
import onnxruntime

from tinybert_core import TEXT_COLUMNS as INPUTS  # the model's inputs, in argument order
from tinybert_data import BertTokenizer, vocab_tokens
from tinybert_eval import spans_from_tags

from .errors import DeployError

log = logging.getLogger("tinybert_deploy")

RUNTIMES = ("auto", "onnxruntime", "openvino")


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


def choose_runtime(quantized: bool, flags=None, openvino: bool | None = None) -> tuple:
    """(runtime, precision) that runs this model fastest here, as measured in
    bench/bench_deploy.py (docs/RESULTS.md): an fp32 model goes to OpenVINO in bf16 where the CPU
    has bf16 hardware and OpenVINO is installed; everything else to ONNX Runtime, int8 models as
    quantized. On an AVX2 CPU, ORT fp32 was 1.16-1.28x faster than OpenVINO fp32 at batch 1
    (what prediction needs) and OpenVINO 1.25x faster at batch 32 x 128 (choose it for bulk
    scoring with runtime="openvino")."""
    openvino = openvino_available() if openvino is None else openvino
    if not quantized and openvino and has_fast_bf16(flags):
        return "openvino", "bf16"
    return "onnxruntime", "int8" if quantized else "fp32"


class OnnxModel:
    """An exported model with our three inputs: its metadata, and an engine that runs it.

    `runtime`: "onnxruntime", "openvino" or "auto"; `precision` (OpenVINO only): "fp32" or
    "bf16" (bf16 is refused on a CPU without bf16 hardware unless `emulate_bf16`, see below).
    """

    def __init__(self, path, threads: int | None = None, runtime: str = "onnxruntime"):
        path = Path(path)
        if not path.is_file():
            raise DeployError(f"{path}: model file not found")
        if runtime not in RUNTIMES:
            raise DeployError(f"runtime must be one of {', '.join(RUNTIMES)}, not {runtime}")
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
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
        self.dtypes = {
            name: np.int64 if "int64" in i.type else np.int32 for name, i in inputs.items()
        }
        self.path = path
        meta = session.get_modelmeta().custom_metadata_map
        self.metadata = dict(meta)
        self.task_info = json.loads(meta["task_info"]) if meta.get("task_info") else {}
        self.task = meta.get("task") or self.task_info.get("task")
        self.task_type = meta.get("task_type", "classification")
        self.labels = json.loads(meta["labels"]) if meta.get("labels") else None
        self.vocab_size = int(meta["vocab_size"]) if "vocab_size" in meta else None
        self.do_lower_case = json.loads(meta.get("do_lower_case", "true"))
        self.max_length = int(meta.get("max_position_embeddings", 512))
        # the length the model was trained at; older models did not record it
        self.seq_length = int(meta["seq_length"]) if "seq_length" in meta else None
        self.vocab_text = meta.get("vocab")
        self.quantization = meta.get("quantization", "none")
        self.session = session
        self.runtime, self.precision = "onnxruntime", "int8" if self.quantized else "fp32"
        if runtime == "auto":
            runtime, precision = choose_runtime(self.quantized)
            if runtime == "openvino":
                self.use_openvino(precision, threads)
        elif runtime == "openvino":
            self.use_openvino("fp32", threads)

    @property
    def quantized(self) -> bool:
        return self.quantization != "none"

    def use_openvino(self, precision: str = "fp32", threads=None, emulate_bf16=False) -> None:
        """Run the model with OpenVINO (extra `tinybert-deploy[openvino]`) in fp32 or bf16.

        bf16 needs AVX512-BF16 or AMX; OpenVINO would silently compute in fp32 elsewhere, so bf16
        is refused there. `emulate_bf16` (for accuracy checks on such CPUs) instead keeps ONNX
        Runtime and rounds every matrix product's inputs to bf16, as bf16 hardware does."""
        if precision not in ("fp32", "bf16"):
            raise DeployError(f"precision must be fp32 or bf16, not {precision}")
        if precision == "bf16" and emulate_bf16:
            self._emulate_bf16(threads)
            return
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
        self.runtime, self.precision = "openvino", precision

    def _emulate_bf16(self, threads) -> None:
        from .quantize import bf16_emulation

        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        emulated = bf16_emulation(self.path)
        self.session = onnxruntime.InferenceSession(
            emulated, options, providers=["CPUExecutionProvider"]
        )
        self.runtime, self.precision = "onnxruntime", "bf16 (emulated)"

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
        return self._run(feed)

    def tokenizer(self, vocab_path=None) -> BertTokenizer:
        """The model's own tokenizer, or one from `vocab_path` (older models need it); a
        vocabulary that is not the one the model was trained with is refused."""
        if vocab_path is None:
            if self.vocab_text is None:
                raise DeployError(
                    f"{self.path} does not carry its vocabulary (exported before tinybert-deploy "
                    "0.2): pass --vocab, the vocab.txt the model's data was tokenized with"
                )
            return tokenizer_from_text(self.vocab_text, self.do_lower_case)
        vocab_path = Path(vocab_path)
        if not vocab_path.is_file():
            raise DeployError(f"{vocab_path}: vocabulary file not found")
        tokenizer = BertTokenizer.from_vocab(vocab_path, do_lower_case=self.do_lower_case)
        self.check_tokenizer(tokenizer, vocab_path)
        return tokenizer

    def check_tokenizer(self, tokenizer: BertTokenizer, vocab_path) -> None:
        if self.vocab_size and tokenizer.vocab_size != self.vocab_size:
            raise DeployError(
                f"{vocab_path} has {tokenizer.vocab_size} tokens but {self.path} was trained with "
                f"{self.vocab_size}: use the vocabulary the model's data was tokenized with"
            )
        if self.vocab_text is not None:
            own = vocab_tokens(self.vocab_text)
            given = vocab_tokens(Path(vocab_path).read_text(encoding="utf-8"))
            for line, (ours, theirs) in enumerate(zip(own, given), start=1):
                if ours != theirs:
                    raise DeployError(
                        f"{vocab_path} line {line} is {theirs!r} but the vocabulary {self.path} "
                        f"was trained with has {ours!r}: leave out --vocab to use the model's own"
                    )


def tokenizer_from_text(vocab_text: str, do_lower_case: bool) -> BertTokenizer:
    """A tokenizer from the text of a vocab.txt (through a temporary file: the tokenizer is
    built from a file in one place only, tinybert_data)."""
    handle, temporary = tempfile.mkstemp(suffix=".txt", prefix="tinybert-vocab-")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(vocab_text)
        return BertTokenizer.from_vocab(temporary, do_lower_case=do_lower_case)
    finally:
        os.unlink(temporary)


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
        self.batch_size = batch_size
        self.max_length = min(max_length or model.max_length, model.max_length)

    @classmethod
    def from_model(
        cls,
        model_path,
        vocab_path=None,
        threads=None,
        batch_size: int = 32,
        max_length=None,
        runtime: str = "auto",
    ):
        """A predictor for an exported model; the vocabulary comes from the model unless given.
        `runtime="auto"` picks the fastest engine here; `predictor.path` says which."""
        model = OnnxModel(model_path, threads, runtime)
        return cls(model, model.tokenizer(vocab_path), batch_size, max_length)

    @classmethod
    def from_files(
        cls, model_path, vocab_path, threads=None, batch_size: int = 32, max_length=None
    ):
        """The 0.1 signature, kept: ONNX Runtime, vocabulary given."""
        return cls.from_model(
            model_path, vocab_path, threads, batch_size, max_length, "onnxruntime"
        )

    @property
    def path(self) -> str:
        return self.model.description

    def predict(self, texts) -> list:
        """One result per text; a text is a string or a (text_a, text_b) pair."""
        pairs = [(t, None) if isinstance(t, str) else tuple(t) for t in texts]
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
                results[index] = self._result(pairs[index], encodings[index], logits[row])
        return results

    def _result(self, pair, encoding, logits) -> dict:
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

"""Running an exported model with ONNX Runtime: the session, and raw text to predictions.

    predictor = Predictor.from_files("student.onnx", "vocab.txt")
    predictor.predict(["a gripping film", "a mess"])
    # [{"text": ..., "label": "1", "probabilities": {"0": 0.03, "1": 0.97}}, ...]

Texts are sorted by length and run in batches padded only to the longest text of the batch
(the graph's batch and sequence axes are dynamic), then returned in input order.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import onnxruntime

from tinybert_data import BertTokenizer
from tinybert_eval import spans_from_tags

from .errors import DeployError

log = logging.getLogger("tinybert_deploy")

INPUTS = ("input_ids", "segment_ids", "input_mask")


class OnnxModel:
    """An ONNX Runtime session over a model with our three inputs, and its metadata."""

    def __init__(self, path, threads: int | None = None):
        path = Path(path)
        if not path.is_file():
            raise DeployError(f"{path}: model file not found")
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises its own exception types
            raise DeployError(f"{path}: not a model ONNX Runtime can load ({error})") from None
        inputs = {i.name: i for i in self.session.get_inputs()}
        if set(inputs) != set(INPUTS):
            raise DeployError(
                f"{path}: the model's inputs are {sorted(inputs)}; expected {', '.join(INPUTS)}"
            )
        self.dtypes = {
            name: np.int64 if "int64" in i.type else np.int32 for name, i in inputs.items()
        }
        self.path = path
        meta = self.session.get_modelmeta().custom_metadata_map
        self.task = meta.get("task")
        self.task_type = meta.get("task_type", "classification")
        self.labels = json.loads(meta["labels"]) if meta.get("labels") else None
        self.vocab_size = int(meta["vocab_size"]) if "vocab_size" in meta else None
        self.do_lower_case = json.loads(meta.get("do_lower_case", "true"))
        self.max_length = int(meta.get("max_position_embeddings", 512))

    def logits(self, input_ids, segment_ids, input_mask) -> np.ndarray:
        feed = {
            name: np.asarray(value, self.dtypes[name])
            for name, value in zip(INPUTS, (input_ids, segment_ids, input_mask))
        }
        return self.session.run(["logits"], feed)[0]

    def check_tokenizer(self, tokenizer: BertTokenizer, vocab_path) -> None:
        if self.vocab_size and tokenizer.vocab_size != self.vocab_size:
            raise DeployError(
                f"{vocab_path} has {tokenizer.vocab_size} tokens but {self.path} was trained with "
                f"{self.vocab_size}: use the vocabulary the model's data was tokenized with"
            )


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
    def from_files(
        cls, model_path, vocab_path, threads=None, batch_size: int = 32, max_length=None
    ):
        model = OnnxModel(model_path, threads)
        if not Path(vocab_path).is_file():
            raise DeployError(f"{vocab_path}: vocabulary file not found")
        tokenizer = BertTokenizer.from_vocab(vocab_path, do_lower_case=model.do_lower_case)
        model.check_tokenizer(tokenizer, vocab_path)
        return cls(model, tokenizer, batch_size, max_length)

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

"""Task readers: raw GLUE/CLUE files to `Example`s, and `Example`s to fixed-length features.

A task's reader is one small class in `TASK_READERS`; its type and labels are its entry in
tinybert-core's task table (`tinybert_core.TASKS`), where the task is defined. GLUE tasks read
tab-separated files with a header row (no quote handling: GLUE text contains bare quotes); CLUE
tasks read JSON lines.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from tinybert_core import (
    CLUENER_TYPES,
    IGNORE_INDEX,
    TASKS,
    DataError,
    UnknownTaskError,
    check_line_ends,
    json_object,
    regular_file,
)
from tinybert_data.tokenization import BertTokenizer

logger = logging.getLogger(__name__)

ON_ERROR = ("raise", "skip")


@dataclass
class Example:
    """One input row. `label` is a label string (None when the file has no labels) or, for NER,
    the list of BIO tags, one per character of `text_a`; `spans` keeps NER's raw span dict."""

    text_a: str
    text_b: str | None
    label: str | list[str] | None
    source: str
    line: int
    spans: dict | None = None


class Task:
    """Base of all tasks: reading with error policy, and feature building.

    A task class names its task. A task of tinybert-core's task table takes its type and
    labels (label strings in id order) from there; a task of your own declares them."""

    name: ClassVar[str]
    task_type: ClassVar[str]  # "classification" | "regression" | "ner"
    labels: ClassVar[list[str]]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        spec = TASKS.get(vars(cls).get("name"))
        if spec is not None:
            cls.task_type, cls.labels = spec.task_type, list(spec.labels)

    def read(self, path, on_error: str = "raise", skipped: list | None = None) -> Iterator[Example]:
        """Examples of the file at `path`, in file order.

        A bad row raises `DataError` (file, line, what is wrong) or, with `on_error="skip"`, is
        logged, appended to `skipped` when given, and left out. A file is labelled throughout
        (train, dev) or not at all (a test file): a row whose label is there, or missing,
        unlike the first row's always raises `DataError`, whatever `on_error` says, because
        the unlabelled rows would otherwise train with label IGNORE_INDEX.
        """
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, not {on_error!r}")
        parse_line = self.line_parser(path)
        first = None  # the first example, which decides whether the file is labelled
        for line_number, text in _lines(path):
            try:
                example = parse_line(text, line_number)
            except DataError as error:
                if on_error == "raise":
                    raise
                logger.warning("skipped %s", error)
                if skipped is not None:
                    skipped.append(error)
                continue
            if example is None:
                continue
            if first is None:
                first = example
            elif (example.label is None) != (first.label is None):
                raise DataError(path, line_number, _mixed_labels(example, first))
            yield example

    def line_parser(self, path) -> Callable[[str, int], Example | None]:
        """A fresh parser for one file: (line text, line number) -> the example on that line,
        or None for a line holding none (a header)."""
        raise NotImplementedError

    def label_id(self, label: str | None) -> int:
        return IGNORE_INDEX if label is None else self.labels.index(label)

    def features(
        self, examples: Iterable[Example], tokenizer: BertTokenizer, seq_length: int
    ) -> dict[str, np.ndarray]:
        """int32 arrays input_ids, segment_ids, input_mask [n, seq_length] and label_ids [n]."""
        examples = list(examples)
        texts_b = (
            [e.text_b for e in examples] if examples and examples[0].text_b is not None else None
        )
        features = tokenizer.encode_batch([e.text_a for e in examples], texts_b, seq_length)
        features["label_ids"] = np.array([self.label_id(e.label) for e in examples], np.int32)
        return features


def _mixed_labels(example: Example, first: Example) -> str:
    """The error for a row labelled unlike the first row of its file."""
    this, other = ("no label", "one") if example.label is None else ("a label", "none")
    return (
        f"this row has {this} but line {first.line} has {other}: a file is labelled "
        "throughout (train, dev) or not at all (a test file)"
    )


def _lines(path) -> Iterator[tuple[int, str]]:
    """(line number, text) of every non-blank line; only "\\n" ends a line, "\\r\\n" is fine,
    a file whose lines end in a lone "\\r" is refused (`check_line_ends`), and a UTF-8
    byte-order mark before the first line is skipped."""
    with open(regular_file(path), "rb") as f:
        for number, raw in enumerate(f, start=1):
            if number == 1:
                check_line_ends(path, raw)
            try:
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8").rstrip("\r\n")
            except UnicodeDecodeError as error:
                raise DataError(path, number, f"not UTF-8 text ({error.reason})") from None
            if text.strip():
                yield number, text


class GlueTask(Task):
    """A GLUE TSV: header row naming the columns, then one example per line."""

    task_type = "classification"  # unless the task table says otherwise
    text_columns: ClassVar[tuple[str, ...]]  # text_a, and text_b for pair tasks
    label_column: ClassVar[str] = "label"

    def line_parser(self, path) -> Callable[[str, int], Example | None]:
        columns: list[int] = []  # where text_a, (text_b), label are, from the header line
        num_fields = 0

        def parse_line(text: str, line: int) -> Example | None:
            nonlocal num_fields
            fields = text.split("\t")
            if not num_fields:
                missing = [c for c in self.text_columns if c not in fields]
                if missing:
                    raise DataError(path, line, f"header {fields} lacks the column(s) {missing}")
                columns.extend(fields.index(c) for c in self.text_columns)
                # Test files have no label column.
                columns.append(
                    fields.index(self.label_column) if self.label_column in fields else -1
                )
                num_fields = len(fields)
                return None
            if len(fields) != num_fields:
                raise DataError(
                    path, line, f"expected {num_fields} tab-separated columns, found {len(fields)}"
                )
            label = None if columns[-1] < 0 or not fields[columns[-1]] else fields[columns[-1]]
            if label is not None and label not in self.labels:
                raise DataError(
                    path, line, f"unknown label {label!r}, expected one of {self.labels}"
                )
            text_b = fields[columns[1]] if len(columns) == 3 else None
            return Example(fields[columns[0]], text_b, label, str(path), line)

        return parse_line


class JsonLinesTask(Task):
    """A CLUE JSON-lines file: one JSON object per line."""

    def line_parser(self, path) -> Callable[[str, int], Example | None]:
        return lambda text, line: self.parse_line(text, path, line)

    def parse_line(self, text: str, path, line: int) -> Example:
        return self.parse_record(json_object(text, path, line), path, line)

    def parse_record(self, record: dict, path, line: int) -> Example:
        raise NotImplementedError

    @staticmethod
    def field(record: dict, key: str, path, line: int) -> str:
        value = record.get(key)
        if not isinstance(value, str):
            raise DataError(path, line, f"field {key!r} missing or not a string")
        return value


class Sst2(GlueTask):
    name = "sst2"
    text_columns = ("sentence",)


class Qnli(GlueTask):
    name = "qnli"
    text_columns = ("question", "sentence")


class Mnli(GlueTask):
    """MNLI train, dev_matched and dev_mismatched: the same columns, the label in `gold_label`."""

    name = "mnli"
    text_columns = ("sentence1", "sentence2")
    label_column = "gold_label"


class Tnews(JsonLinesTask):
    """TNEWS news-title classification: 15 labels, in the order of the dataset's labels.json."""

    name = "tnews"

    def parse_record(self, record: dict, path, line: int) -> Example:
        sentence = self.field(record, "sentence", path, line)
        label = record.get("label")  # the test file has none
        label = None if label == "" else label
        if label is not None and not isinstance(label, str):
            raise DataError(path, line, f"label {label!r} is not a string (the labels are)")
        if label is not None and label not in self.labels:
            raise DataError(path, line, f"unknown label {label!r}, expected one of {self.labels}")
        return Example(sentence, None, label, str(path), line)


class Cluener(JsonLinesTask):
    """CLUENER2020: spans {type: {entity: [[start, end], ...]}} (end inclusive) to character-level
    BIO tags. Each token is labelled with the tag of its first character; the later pieces of a
    word split into several, [CLS], [SEP] and padding get IGNORE_INDEX."""

    name = "cluener"  # labels: O, then B- and I- of each entity type (CLUENER_TAGS)

    def parse_record(self, record: dict, path, line: int) -> Example:
        text = self.field(record, "text", path, line)
        spans = record.get("label")
        tags = None if spans is None else char_tags(text, spans, path, line)
        return Example(text, None, tags, str(path), line, spans=spans)

    def features(
        self, examples: Iterable[Example], tokenizer: BertTokenizer, seq_length: int
    ) -> dict[str, np.ndarray]:
        """As for classification, but label_ids is [n, seq_length]."""
        examples = list(examples)
        pieces = tokenizer.encode_pieces([e.text_a for e in examples])
        features = tokenizer.layout([p.ids for p in pieces], None, seq_length)
        label_ids = np.full((len(examples), seq_length), IGNORE_INDEX, np.int32)
        tag_id = {tag: i for i, tag in enumerate(self.labels)}
        budget = seq_length - 2
        for row, (example, encoding) in enumerate(zip(examples, pieces)):
            if example.label is None:
                continue
            previous_word = None
            word_ids = encoding.word_ids[:budget]
            for position, (word, (start, _)) in enumerate(zip(word_ids, encoding.offsets), 1):
                if word != previous_word:
                    label_ids[row, position] = tag_id[example.label[start]]
                previous_word = word
        features["label_ids"] = label_ids
        return features


def char_tags(text: str, spans, path, line: int) -> list[str]:
    """BIO tag of every character of `text` from CLUENER spans; bad spans raise DataError."""
    if not isinstance(spans, dict):
        raise DataError(path, line, "field 'label' must map entity types to entities")
    tags = ["O"] * len(text)
    owner = [None] * len(text)  # which entity tagged each character, to report overlaps
    for entity_type, entities in spans.items():
        if entity_type not in CLUENER_TYPES:
            raise DataError(
                path,
                line,
                f"unknown entity type {entity_type!r}, expected one of {list(CLUENER_TYPES)}",
            )
        if not isinstance(entities, dict):
            raise DataError(path, line, f"entities of type {entity_type!r} must be a JSON object")
        for entity, positions in entities.items():
            if not isinstance(positions, list):
                raise DataError(
                    path, line, f"spans of {entity!r} must be a list of [start, end] pairs"
                )
            for position in positions:
                if not (
                    isinstance(position, list)
                    and len(position) == 2
                    and all(isinstance(p, int) and not isinstance(p, bool) for p in position)
                ):
                    raise DataError(
                        path, line, f"span {position!r} of {entity!r} is not [start, end]"
                    )
                start, end = position  # end is inclusive
                where = f"{entity_type} {entity!r} at [{start}, {end}]"
                if not 0 <= start <= end < len(text):
                    raise DataError(
                        path, line, f"span {where} is outside the text (length {len(text)})"
                    )
                if text[start : end + 1] != entity:
                    raise DataError(
                        path, line, f"span {where} covers {text[start : end + 1]!r}, not the entity"
                    )
                for i in range(start, end + 1):
                    if owner[i] is not None:
                        raise DataError(path, line, f"span {where} overlaps {owner[i]}")
                    owner[i] = where
                    tags[i] = ("B-" if i == start else "I-") + entity_type
    return tags


# The tasks this package has a reader for, each an entry of tinybert-core's table: the tasks
# the command lines offer (tinybert-data task, tinybert-td, tinybert-augment, tinybert-eval-onnx).
TASK_READERS: dict[str, type[Task]] = {
    reader.name: reader for reader in (Sst2, Qnli, Mnli, Tnews, Cluener)
}


def get_task(name: str) -> Task:
    """The reader of the task `name`."""
    try:
        return TASK_READERS[name]()
    except KeyError:
        raise UnknownTaskError(
            f"unknown task {name!r}; known tasks: {', '.join(sorted(TASK_READERS))}"
        ) from None

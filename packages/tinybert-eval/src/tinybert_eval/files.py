"""Prediction and gold files for `tinybert-eval score`, read with errors that name file and line.

Labels (classification and regression), one example per line, in any of:
- plain text, one label (or number) per line;
- JSON lines with a "label" field (TNEWS, tinybert-predict) or a "score" field (tinybert-predict
  for regression);
- a GLUE TSV whose header names a "label", "gold_label" (MNLI) or "score" (STS-B) column.

Entities (NER), one sentence per line, in any of:
- CLUENER JSON lines: {"text": ..., "label": {type: {mention: [[start, end], ...]}}}, end
  inclusive;
- tinybert-predict JSON lines: {"text": ..., "entities": [{"type", "start", "end"}]}, end
  exclusive (Python slice offsets), as tinybert-predict writes them;
- tag sequences: tags separated by spaces; an empty line is a sentence without tags.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tinybert_core import DataError, TinybertError, json_object, read_text, text_lines

from .spans import spans_from_tags

LABEL_COLUMNS = ("label", "gold_label", "score")


class InputError(TinybertError):
    """A file that cannot be scored: the message names the file and line."""


def read_lines(path: Path) -> list:
    """(line number, text) of every line up to the last non-blank one; an empty file is an error.
    A UTF-8 byte-order mark at the start (Windows editors write one) is not part of line 1.
    Lines end where tinybert-data's readers end them (`text_lines`: not at a lone "\\r"), so
    line numbers agree; a file that is not a regular file, not UTF-8 (naming the line) or
    ends its lines in a lone "\\r" is refused (tinybert-core's `read_text`)."""
    try:
        text = read_text(path)
    except DataError as error:
        raise InputError(str(error)) from None
    lines = list(enumerate(text_lines(text), 1))
    while lines and not lines[-1][1].strip():
        lines.pop()
    if not lines:
        raise InputError(f"{path}: the file is empty")
    return lines


def _is_json(lines: list) -> bool:
    return lines[0][1].lstrip().startswith("{")


def _json_object(path: Path, number: int, line: str) -> dict:
    if not line.strip():
        raise InputError(f"{path}:{number}: empty line in a JSON lines file")
    try:
        return json_object(line, path, number)  # not JSON, nested too deeply, not an object
    except DataError as error:
        raise InputError(str(error)) from None


# ---- labels --------------------------------------------------------------------------------


def read_labels(path: Path) -> list:
    """(line number, label text) per example."""
    lines = read_lines(path)
    if _is_json(lines):
        return [(n, _label_field(path, n, _json_object(path, n, line))) for n, line in lines]
    if "\t" in lines[0][1]:
        return _tsv_labels(path, lines)
    for number, line in lines:
        if not line.strip():
            raise InputError(f"{path}:{number}: empty line, expected a label")
    return [(number, line.strip()) for number, line in lines]


def _label_field(path: Path, number: int, record: dict) -> str:
    for field in ("label", "score"):
        if field in record:
            return str(record[field])
    raise InputError(f'{path}:{number}: no "label" (or "score") field')


def _tsv_labels(path: Path, lines: list) -> list:
    header = lines[0][1].split("\t")
    found = [name for name in LABEL_COLUMNS if name in header]
    if not found:
        raise InputError(
            f"{path}:{lines[0][0]}: a TSV needs a header with a "
            f"{' or '.join(LABEL_COLUMNS)} column, found {header}"
        )
    column = header.index(found[0])
    labels = []
    for number, line in lines[1:]:
        fields = line.split("\t")
        if len(fields) <= column or not fields[column].strip():
            raise InputError(f"{path}:{number}: no value in column {found[0]!r}")
        labels.append((number, fields[column].strip()))
    if not labels:
        raise InputError(f"{path}: the file has a header and no rows")
    return labels


# ---- entities ------------------------------------------------------------------------------


@dataclass
class Sentence:
    """One line of an entities file: its spans, and its text or tags when the file has them."""

    line: int
    spans: list
    text: str | None = None
    tags: list | None = None

    @property
    def length(self) -> int | None:
        """Positions the spans index: characters of the text, or tags."""
        if self.tags is not None:
            return len(self.tags)
        return None if self.text is None else len(self.text)


def read_sentences(path: Path, scheme: str, types) -> list:
    """The sentences of a CLUENER / tinybert-predict JSON lines file or a tag-sequence file.
    Entity types outside `types` are an error."""
    lines = read_lines(path)
    if _is_json(lines):
        read = [_json_sentence(path, n, _json_object(path, n, line)) for n, line in lines]
    else:
        read = [_tag_sentence(path, n, line, scheme) for n, line in lines]
    for sentence in read:
        for kind, _, _ in sentence.spans:
            if kind not in types:
                raise InputError(
                    f"{path}:{sentence.line}: unknown entity type {kind!r}; the types are "
                    f"{sorted(types)}"
                )
    return read


def _tag_sentence(path: Path, number: int, line: str, scheme: str) -> Sentence:
    tags = line.split()
    try:
        spans = spans_from_tags(tags, scheme)
    except ValueError as error:
        raise InputError(f"{path}:{number}: {error}") from None
    return Sentence(number, spans, tags=tags)


def _json_sentence(path: Path, number: int, record: dict) -> Sentence:
    text = record.get("text")
    if text is not None and not isinstance(text, str):
        raise InputError(f'{path}:{number}: "text" must be a string')
    if "label" in record:
        spans = _cluener_spans(path, number, record["label"], text)
    elif "entities" in record:
        spans = _predicted_spans(path, number, record["entities"], text)
    else:
        raise InputError(f'{path}:{number}: no "label" (CLUENER spans) or "entities" field')
    return Sentence(number, sorted(spans, key=lambda s: (s[1], s[2], s[0])), text=text)


def _cluener_spans(path: Path, number: int, label, text) -> list:
    """{type: {mention: [[start, end], ...]}}, end inclusive."""
    shape = '"label" must be {type: {mention: [[start, end], ...]}}'
    if label is None:
        return []
    if not isinstance(label, dict) or not all(isinstance(m, dict) for m in label.values()):
        raise InputError(f"{path}:{number}: {shape}")
    spans = []
    for kind, mentions in label.items():
        for mention, positions in mentions.items():
            if not isinstance(positions, list):
                raise InputError(f"{path}:{number}: {shape}")
            for position in positions:
                start, end = _start_end(path, number, position, shape)
                _check_span(path, number, kind, mention, start, end, text)
                spans.append((kind, start, end))
    return spans


def _predicted_spans(path: Path, number: int, entities, text) -> list:
    """[{"type", "start", "end"}, ...], end exclusive: made inclusive here."""
    shape = '"entities" must be a list of {"type", "start", "end"} (end exclusive)'
    if not isinstance(entities, list):
        raise InputError(f"{path}:{number}: {shape}")
    spans = []
    for entity in entities:
        if not isinstance(entity, dict) or not isinstance(entity.get("type"), str):
            raise InputError(f"{path}:{number}: {shape}")
        start, end = _start_end(path, number, [entity.get("start"), entity.get("end")], shape)
        _check_span(path, number, entity["type"], entity.get("text"), start, end - 1, text)
        spans.append((entity["type"], start, end - 1))
    return spans


def _start_end(path: Path, number: int, position, shape: str) -> tuple:
    if not (
        isinstance(position, list)
        and len(position) == 2
        and all(isinstance(p, int) and not isinstance(p, bool) for p in position)
    ):
        raise InputError(f"{path}:{number}: {shape}, found {position!r}")
    return position[0], position[1]


def _check_span(path: Path, number: int, kind: str, mention, start: int, end: int, text) -> None:
    """The span lies inside the text and covers the mention it names (end inclusive here)."""
    where = f"{path}:{number}: {kind} span [{start}, {end}] (end inclusive)"
    if not 0 <= start <= end:
        raise InputError(f"{where} is empty or negative")
    if text is None:
        return
    if end >= len(text):
        raise InputError(f"{where} ends outside the text of {len(text)} characters")
    if mention is not None and text[start : end + 1] != mention:
        raise InputError(f"{where} covers {text[start : end + 1]!r}, not {mention!r}")

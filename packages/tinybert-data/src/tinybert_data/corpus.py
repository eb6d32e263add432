"""Text corpora to packed sequences for general distillation, streaming.

Input formats (detected per file):
- plain text as for Google's create_pretraining_data: one sentence (or paragraph) per line,
  a blank line between documents;
- WikiExtractor output: documents between `<doc ...>` and `</doc>` lines; blank lines inside
  a document separate paragraphs, not documents.
Each file also ends a document.

Packing (Google BERT's strategy, without masking and without random next sentences):
- With `max_tokens = seq_length - 3` (room for [CLS] a [SEP] b [SEP]), each sequence picks a
  target length: `max_tokens`, or with probability `short_seq_prob` a uniform length in
  [2, max_tokens], so the student also sees short inputs.
- Consecutive sentences of one document are gathered until they reach the target or the
  document ends. A sentence longer than `max_tokens` is first cut into pieces of `max_tokens`
  tokens, so no text is lost to truncation.
- The gathered sentences are split at a random sentence boundary into segment A and segment B
  (a single sentence is split at a random token), so segment ids 0 and 1 both occur, as in
  task data with sentence pairs. B is always the true continuation of A: distillation has no
  next-sentence task, and random B segments would need random access to other documents.
- If A + B exceed `max_tokens` (the last sentence overshot), tokens are dropped one at a time
  from the longer segment, from its front or back at random, as Google does.

Only the current document chunk and a batch of lines are in memory, so the corpus can be many
GB. The same input and seed give the same sequences.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from tinybert_data.errors import DataError
from tinybert_data.prefetch import ahead

DOCUMENT_END = None  # marks a document boundary in the stream of lines


@dataclass
class Line:
    text: str
    source: str
    number: int
    num_bytes: int


def corpus_lines(
    path, on_error: str = "raise", skipped: list | None = None
) -> Iterator[Line | None]:
    """The non-empty lines of one corpus file, and DOCUMENT_END at every document boundary."""
    wiki = _is_wikiextractor(path)
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8").strip()
            except UnicodeDecodeError as error:
                problem = DataError(path, number, f"not UTF-8 text ({error.reason})")
                if on_error == "raise":
                    raise problem from None
                if skipped is not None:
                    skipped.append(problem)
                continue
            if wiki and (text.startswith("<doc ") or text == "</doc>"):
                yield DOCUMENT_END
            elif not text:
                if not wiki:
                    yield DOCUMENT_END
            else:
                yield Line(text, str(path), number, len(raw))
    yield DOCUMENT_END


def _is_wikiextractor(path) -> bool:
    """Whether the first non-blank line opens a WikiExtractor `<doc ...>` block."""
    with open(path, "rb") as f:
        for raw in f:
            if raw.strip():
                return raw.lstrip().startswith(b"<doc ")
    return False


class SequencePacker:
    """Packs the tokenized sentences of documents into (segment A, segment B) id lists."""

    def __init__(self, seq_length: int, short_seq_prob: float = 0.1, seed: int = 12345):
        self.max_tokens = seq_length - 3  # [CLS] A [SEP] B [SEP]
        if self.max_tokens < 2:
            raise ValueError(f"seq_length {seq_length} is too short to pack sentence pairs")
        self.short_seq_prob = short_seq_prob
        self.rng = random.Random(seed)
        self._chunk: list[list[int]] = []
        self._chunk_length = 0
        self._target = self._pick_target()

    def _pick_target(self) -> int:
        if self.rng.random() < self.short_seq_prob:
            return self.rng.randint(2, self.max_tokens)
        return self.max_tokens

    def add_sentence(self, ids: list[int]) -> Iterator[tuple[list[int], list[int]]]:
        """Add one sentence of the current document; yields the sequences it completes."""
        for start in range(0, len(ids), self.max_tokens):
            self._chunk.append(ids[start : start + self.max_tokens])
            self._chunk_length += len(self._chunk[-1])
            if self._chunk_length >= self._target:
                yield from self._emit()

    def end_document(self) -> Iterator[tuple[list[int], list[int]]]:
        """The document ended: its last sentences make a sequence of their own."""
        yield from self._emit()

    def _emit(self) -> Iterator[tuple[list[int], list[int]]]:
        chunk, length = self._chunk, self._chunk_length
        self._chunk, self._chunk_length = [], 0
        if length < 2:  # nothing, or a single token: no pair to make
            return
        if len(chunk) >= 2:
            a_end = self.rng.randint(1, len(chunk) - 1)
            a = [t for sentence in chunk[:a_end] for t in sentence]
            b = [t for sentence in chunk[a_end:] for t in sentence]
        else:
            cut = self.rng.randint(1, length - 1)
            a, b = chunk[0][:cut], chunk[0][cut:]
        self._truncate(a, b)
        self._target = self._pick_target()
        yield a, b

    def _truncate(self, a: list[int], b: list[int]) -> None:
        while len(a) + len(b) > self.max_tokens:
            longer = a if len(a) > len(b) else b
            if self.rng.random() < 0.5:
                del longer[0]
            else:
                longer.pop()


def pack_corpus(
    lines: Iterable[Line | None],
    tokenize_batch: Callable[[list[str]], list[list[int]]],
    packer: SequencePacker,
    batch_lines: int = 4096,
    on_line: Callable[[Line], None] | None = None,
) -> Iterator[tuple[list[int], list[int]]]:
    """Sequences packed from a stream of lines, tokenizing `batch_lines` lines at a time with
    `tokenize_batch(texts) -> list of id lists` (the next batch while this one is packed);
    `on_line` sees each line once packed."""

    def tokenize(items: list) -> list[list[int]]:
        return tokenize_batch([item.text for item in items if item is not DOCUMENT_END])

    for items, token_ids in ahead(tokenize, _batches(lines, batch_lines)):
        ids = iter(token_ids)
        for item in items:
            if item is DOCUMENT_END:
                yield from packer.end_document()
            else:
                yield from packer.add_sentence(next(ids))
                if on_line is not None:
                    on_line(item)


def _batches(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def input_files(paths: Iterable) -> list[Path]:
    """Corpus files: the given files, and the files under given directories, sorted."""
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            files.extend(
                sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
            )
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(path, None, "no such file or directory")
    return files

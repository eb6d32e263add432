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

In parallel (`pack_pieces`): the input, all files one after the other, is cut into pieces of
about PIECE_BYTES at document boundaries (where a piece ends depends only on the input, never
on the number of workers). Each piece is packed on its own, with its own random generator
seeded from (seed, piece number), by a pool of worker processes; the parent takes the pieces
back in input order. So the rows are the same for any number of workers, one included, and a
corpus of one piece (under 16 MiB) packs exactly as it did before pieces existed.
"""

from __future__ import annotations

import codecs
import logging
import multiprocessing
import os
import random
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache, partial
from itertools import islice
from pathlib import Path

import numpy as np

from tinybert_core import DataError, check_line_ends, regular_file
from tinybert_data.prefetch import ahead
from tinybert_data.tokenization import BertTokenizer

logger = logging.getLogger(__name__)

DOCUMENT_END = None  # marks a document boundary in the stream of lines


@dataclass
class Line:
    text: str
    source: str
    number: int
    num_bytes: int


def corpus_lines(
    path,
    on_error: str = "raise",
    skipped: list | None = None,
    span: tuple[int, int] | None = None,
    wiki: bool | None = None,
) -> Iterator[Line | None]:
    """The non-empty lines of one corpus file, and DOCUMENT_END at every document boundary.

    `span` (start, end byte) reads part of the file; line numbers then count from the span's
    start. `wiki` says whether the file is WikiExtractor output (default: look at it)."""
    wiki = _is_wikiextractor(path) if wiki is None else wiki
    start, end = span or (0, None)
    with open(path, "rb") as f:
        f.seek(start)
        raw_lines = f if end is None else _lines_until(f, end - start)
        for number, raw in enumerate(raw_lines, start=1):
            try:
                # utf-8-sig: a byte order mark opening the file is not text
                text = raw.decode("utf-8-sig").strip()
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


def _lines_until(f, num_bytes: int) -> Iterator[bytes]:
    """Lines of an open file until `num_bytes` bytes have been read (a line boundary)."""
    for raw in f:
        yield raw
        num_bytes -= len(raw)
        if num_bytes <= 0:
            return


def _is_wikiextractor(path) -> bool:
    """Whether the first non-blank line opens a WikiExtractor `<doc ...>` block. A file whose
    lines end in a lone "\\r" is refused here, before packing (`check_line_ends`)."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if number == 1:
                check_line_ends(path, raw)
            raw = raw.removeprefix(codecs.BOM_UTF8).strip()
            if raw:
                return raw.startswith(b"<doc ")
    return False


class SequencePacker:
    """Packs the tokenized sentences of documents into (segment A, segment B) id lists."""

    def __init__(self, seq_length: int, short_seq_prob: float = 0.1, seed: int = 12345):
        self.max_tokens = seq_length - 3  # [CLS] A [SEP] B [SEP]
        if self.max_tokens < 2:
            raise ValueError(f"seq_length {seq_length} is too short to pack sentence pairs")
        if not 0 <= short_seq_prob <= 1:  # NaN too
            raise ValueError(f"short_seq_prob is a probability, in [0, 1], not {short_seq_prob}")
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
    """Corpus files: the given files, and the (not hidden) files under given directories,
    sorted. DataError for a path that is neither a folder nor a regular file (saying what it
    is), and for a folder that holds no such file."""
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
            if not found:
                raise DataError(path, None, "the folder holds no files (hidden ones are skipped)")
            files.extend(found)
        else:
            files.append(regular_file(path))
    return files


# Parallel packing ------------------------------------------------------------------------------

PIECE_BYTES = 16 << 20  # input packed as one unit of work; its boundaries never move with workers


@dataclass(frozen=True)
class Span:
    """Whole documents of one file: bytes [start, end), and whether it is WikiExtractor output."""

    path: str
    start: int
    end: int
    wiki: bool


@dataclass
class PackedPiece:
    """The rows packed from one piece of the input, and what was read to make them."""

    rows: dict  # input_ids, segment_ids, input_mask: int32 [n, seq_length]
    num_bytes: int = 0
    num_lines: int = 0
    num_documents: int = 0
    skipped: list = field(default_factory=list)  # DataError of lines left out (on_error skip)


def plan_pieces(files: Iterable, piece_bytes: int = PIECE_BYTES) -> list[list[Span]]:
    """Cut the input (the files one after the other) into pieces of about `piece_bytes` bytes,
    each a list of spans; every cut is at a document boundary at or after a multiple of
    `piece_bytes` into the piece, so the pieces depend on the input alone."""
    pieces, spans, size = [], [], 0
    for path in map(Path, files):
        wiki, file_size, start = _is_wikiextractor(path), path.stat().st_size, 0
        while start < file_size:
            wanted = start + piece_bytes - size
            end = file_size if wanted >= file_size else _next_document(path, wanted, wiki)
            spans.append(Span(str(path), start, end, wiki))
            size += end - start
            start = end
            if size >= piece_bytes:
                pieces.append(spans)
                spans, size = [], 0
    if spans:
        pieces.append(spans)
    return pieces


def _next_document(path: Path, at: int, wiki: bool) -> int:
    """The byte position of the first document start after byte `at` (the file size if none):
    after a blank line for plain text, at a `<doc ...>` line for WikiExtractor output."""
    with open(path, "rb") as f:
        f.seek(at)
        f.readline()  # the rest of the line `at` falls in
        while True:
            position = f.tell()
            raw = f.readline()
            if not raw:
                return position
            if wiki and raw.strip().startswith(b"<doc "):
                return position
            if not wiki and not raw.strip():
                return f.tell()


def piece_seed(seed: int, piece: int) -> int | str:
    """The packer's seed for a piece: the seed itself for the first (so a one-piece corpus packs
    as it always did), a string of both for the others (random.Random hashes it)."""
    return seed if piece == 0 else f"{seed}/{piece}"


@lru_cache(maxsize=2)
def _tokenizer(vocab: str, do_lower_case: bool) -> BertTokenizer:
    return BertTokenizer.from_vocab(vocab, do_lower_case=do_lower_case)


def pack_piece(
    numbered_piece: tuple[int, list[Span]],
    vocab: str,
    do_lower_case: bool,
    seq_length: int,
    short_seq_prob: float,
    seed: int,
    on_error: str,
) -> PackedPiece:
    """Pack one piece: its spans' lines, tokenized, packed, laid out as rows."""
    number, spans = numbered_piece
    tokenizer = _tokenizer(vocab, do_lower_case)
    packer = SequencePacker(seq_length, short_seq_prob, piece_seed(seed, number))
    packed = PackedPiece(rows={}, num_bytes=sum(s.end - s.start for s in spans))
    in_document = False

    def lines() -> Iterator[Line | None]:
        nonlocal in_document
        for span in spans:
            for item in corpus_lines(
                span.path, on_error, packed.skipped, (span.start, span.end), span.wiki
            ):
                if item is DOCUMENT_END:
                    packed.num_documents += in_document
                    in_document = False
                else:
                    in_document = True
                    packed.num_lines += 1
                yield item

    try:
        pairs = list(pack_corpus(lines(), tokenizer.encode_ids, packer))
    except DataError as error:
        raise _LineInSpan.of(error) from None
    if pairs:
        ids_a, ids_b = zip(*pairs)
        packed.rows = tokenizer.layout(ids_a, ids_b, seq_length)
    else:
        empty = np.zeros((0, seq_length), np.int32)
        packed.rows = {name: empty for name in ("input_ids", "segment_ids", "input_mask")}
    packed.skipped = [_LineInSpan.of(error) for error in packed.skipped]
    return packed


class _LineInSpan(Exception):
    """A DataError whose line counts from its span's start, as (path, line, message): a form
    that crosses processes (DataError's own args are not its constructor's); `in_file` gives
    the DataError with the line counted from the start of the file."""

    @classmethod
    def of(cls, error: DataError) -> _LineInSpan:
        return cls(error.path, error.line, error.message)

    def in_file(self, spans: list[Span]) -> DataError:
        path, line, message = self.args
        span = next(s for s in spans if s.path == path)
        if line is not None:
            line += _newlines_before(Path(path), span.start)
        return DataError(path, line, message)


def _newlines_before(path: Path, position: int) -> int:
    count = 0
    with open(path, "rb") as f:
        while position > 0:
            block = f.read(min(1 << 20, position))
            count += block.count(b"\n")
            position -= len(block)
    return count


def _quiet_worker() -> None:
    """In a worker process: one thread for the tokenizer, the other workers have the cores."""
    os.environ["TOKENIZERS_PARALLELISM"] = "false"


def pack_pieces(
    files: Iterable,
    vocab,
    seq_length: int,
    *,
    do_lower_case: bool = True,
    short_seq_prob: float = 0.1,
    seed: int = 12345,
    on_error: str = "raise",
    workers: int = 1,
    piece_bytes: int = PIECE_BYTES,
) -> Iterator[PackedPiece]:
    """The input files packed piece by piece, in input order; `workers` processes pack pieces
    in parallel (1: in this process). The rows are the same for any number of workers.

    At most two pieces per worker are in flight, so memory stays bounded on any input. No
    more processes start than there are pieces and CPUs."""
    pieces = plan_pieces(files, piece_bytes)
    cpus = os.cpu_count() or 1
    if workers > min(len(pieces), cpus):  # more processes would have nothing to do
        logger.info("%d piece(s) on %d CPU(s): packing with fewer workers", len(pieces), cpus)
        workers = min(len(pieces), cpus)
    job = partial(
        pack_piece,
        vocab=str(vocab),
        do_lower_case=do_lower_case,
        seq_length=seq_length,
        short_seq_prob=short_seq_prob,
        seed=seed,
        on_error=on_error,
    )

    def in_file(spans: list[Span], packed: PackedPiece) -> PackedPiece:
        packed.skipped = [error.in_file(spans) for error in packed.skipped]
        return packed

    if workers <= 1:
        for numbered in enumerate(pieces):
            try:
                yield in_file(numbered[1], job(numbered))
            except _LineInSpan as error:
                raise error.in_file(numbered[1]) from None
        return
    # fork: workers start at once and a caller's script needs no `if __name__ == "__main__"`
    # guard; the parent never tokenizes here, so no tokenizer thread pool is forked.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_quiet_worker) as pool:
        pending = deque()
        numbered_pieces = iter(enumerate(pieces))
        for numbered in islice(numbered_pieces, 2 * workers):
            pending.append((numbered[1], pool.submit(job, numbered)))
        while pending:
            spans, future = pending.popleft()
            try:
                packed = future.result()
            except _LineInSpan as error:
                for _, other in pending:
                    other.cancel()
                raise error.in_file(spans) from None
            for numbered in islice(numbered_pieces, 1):
                pending.append((numbered[1], pool.submit(job, numbered)))
            yield in_file(spans, packed)

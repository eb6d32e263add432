"""BERT WordPiece tokenization on the `tokenizers` library, with Google BERT's behaviour.

The normalizer, pre-tokenizer and WordPiece model of `tokenizers` reproduce Google's
BasicTokenizer + WordpieceTokenizer: control characters removed, whitespace unified, CJK
characters split one per token, lower-casing followed by accent stripping when uncased,
punctuation split, greedy longest-match-first WordPiece, `[UNK]` for words over 100
characters. What `tokenizers` does differently is truncation of pairs, so this module does
truncation and the `[CLS] a [SEP] b [SEP]` layout itself, on whole batches with numpy.

Special tokens written in the text (say a literal "[SEP]") are tokenized as ordinary text,
as Google's tokenizer does, so raw text can never inject a separator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

from tinybert_core import read_text, text_lines

MAX_INPUT_CHARS_PER_WORD = 100  # longer words become a single [UNK], as in Google BERT
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


@dataclass
class Encoding:
    """One example laid out at a fixed length: `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]`, padded.

    `offsets[i]` is the (start, end) character span of position i in the text it came from
    (text_a or text_b); special tokens and padding have (0, 0).
    """

    input_ids: list[int]
    segment_ids: list[int]
    input_mask: list[int]
    tokens: list[str]
    offsets: list[tuple[int, int]]
    truncated: bool


def truncated_lengths(len_a: np.ndarray, len_b: np.ndarray, budget: int) -> tuple:
    """Lengths kept by longest-first truncation of the pair (a, b) to `budget` tokens in all.

    Google BERT removes one token at a time from the end of the longer sequence, from b when
    both are equally long. This is the same result in closed form, for whole arrays.
    """
    len_a = np.asarray(len_a, dtype=np.int64)
    len_b = np.asarray(len_b, dtype=np.int64)
    excess = np.maximum(len_a + len_b - budget, 0)
    # First the longer one loses its lead over the shorter one...
    from_a = np.minimum(np.maximum(len_a - len_b, 0), excess)
    from_b = np.minimum(np.maximum(len_b - len_a, 0), excess)
    # ...then both lose tokens in turn, starting with b.
    rest = excess - from_a - from_b
    from_a += rest // 2
    from_b += rest - rest // 2
    return len_a - from_a, len_b - from_b


def vocab_tokens(text: str) -> list[str]:
    """The tokens of a `vocab.txt`'s text in id order, read as `tokenizers` reads them: lines
    end at "\\n" only (`text_lines`: bert-base-chinese's vocabulary holds U+2028), trailing
    whitespace is dropped, a byte-order mark is not part of the first."""
    return [line.rstrip() for line in text_lines(text.removeprefix("\ufeff"))]


def read_vocab(path: str | Path) -> dict[str, int]:
    """token -> id of a `vocab.txt` (see vocab_tokens; a repeated token keeps its last id).
    A file that cannot be read as UTF-8 text is a DataError naming it (tinybert-core's
    read_text)."""
    tokens = vocab_tokens(read_text(path))
    return {token: index for index, token in enumerate(tokens)}


class BertTokenizer:
    """BERT WordPiece tokenizer; build it with `BertTokenizer.from_vocab(vocab_path)`."""

    def __init__(self, tokenizer: Tokenizer, do_lower_case: bool):
        self._tokenizer = tokenizer
        self.do_lower_case = do_lower_case
        self.vocab = tokenizer.get_vocab()
        self.vocab_size = tokenizer.get_vocab_size()
        missing = [t for t in SPECIAL_TOKENS if t not in self.vocab]
        if missing:
            raise ValueError(f"vocabulary lacks the special tokens {missing}")
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = (
            self.vocab[t] for t in SPECIAL_TOKENS
        )
        self._inverse_vocab = {i: t for t, i in self.vocab.items()}

    @classmethod
    def from_vocab(cls, path: str | Path, do_lower_case: bool = True) -> BertTokenizer:
        """Tokenizer for a BERT `vocab.txt` (one token per line, line number = id).

        A UTF-8 byte-order mark at the start of the file is not part of the first token.
        """
        model = models.WordPiece(
            read_vocab(path), unk_token="[UNK]", max_input_chars_per_word=MAX_INPUT_CHARS_PER_WORD
        )
        tokenizer = Tokenizer(model)
        # strip_accents=None follows lowercase: uncased strips accents after lower-casing,
        # cased keeps them, exactly as Google's BasicTokenizer.
        tokenizer.normalizer = normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=do_lower_case
        )
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer.decoder = decoders.WordPiece(prefix="##")
        return cls(tokenizer, do_lower_case)

    def tokenize(self, text: str) -> list[str]:
        """WordPiece tokens of `text`, without special tokens."""
        return self._tokenizer.encode(text, add_special_tokens=False).tokens

    def convert_tokens_to_ids(self, tokens: Sequence[str]) -> list[int]:
        return [self.vocab.get(t, self.unk_id) for t in tokens]

    def convert_ids_to_tokens(self, ids: Sequence[int]) -> list[str]:
        return [self._inverse_vocab.get(int(i), "[UNK]") for i in ids]

    def decode(self, ids: Sequence[int]) -> str:
        """Text of `ids`, special tokens and padding left out, `##` pieces joined."""
        special = {self.pad_id, self.cls_id, self.sep_id, self.mask_id}
        return self._tokenizer.decode([int(i) for i in ids if int(i) not in special])

    def encode_pieces(self, texts: Sequence[str]):
        """`tokenizers` encodings (ids, tokens, offsets, word ids) of `texts`, without special
        tokens or truncation; batched over threads."""
        return self._tokenizer.encode_batch(list(texts), add_special_tokens=False)

    def encode_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of `texts`, without special tokens or truncation: the fastest batched
        path (no offsets tracked)."""
        encodings = self._tokenizer.encode_batch_fast(list(texts), add_special_tokens=False)
        return [e.ids for e in encodings]

    def encode(self, text_a: str, text_b: str | None = None, seq_length: int = 128) -> Encoding:
        """One example at `seq_length`, with tokens and character offsets."""
        pieces_a = self._tokenizer.encode(text_a, add_special_tokens=False)
        pieces_b = (
            None if text_b is None else self._tokenizer.encode(text_b, add_special_tokens=False)
        )
        budget = _token_budget(seq_length, paired=text_b is not None)
        len_b = 0 if pieces_b is None else len(pieces_b.ids)
        keep_a, keep_b = (int(n) for n in truncated_lengths(len(pieces_a.ids), len_b, budget))
        ids = [self.cls_id, *pieces_a.ids[:keep_a], self.sep_id]
        tokens = ["[CLS]", *pieces_a.tokens[:keep_a], "[SEP]"]
        offsets = [(0, 0), *pieces_a.offsets[:keep_a], (0, 0)]
        segments = [0] * len(ids)
        if pieces_b is not None:
            ids += [*pieces_b.ids[:keep_b], self.sep_id]
            tokens += [*pieces_b.tokens[:keep_b], "[SEP]"]
            offsets += [*pieces_b.offsets[:keep_b], (0, 0)]
            segments += [1] * (keep_b + 1)
        padding = seq_length - len(ids)
        return Encoding(
            input_ids=ids + [self.pad_id] * padding,
            segment_ids=segments + [0] * padding,
            input_mask=[1] * len(ids) + [0] * padding,
            tokens=tokens + ["[PAD]"] * padding,
            offsets=[tuple(o) for o in offsets] + [(0, 0)] * padding,
            truncated=keep_a < len(pieces_a.ids) or keep_b < len_b,
        )

    def encode_batch(
        self,
        texts_a: Sequence[str],
        texts_b: Sequence[str] | None = None,
        seq_length: int = 128,
    ) -> dict[str, np.ndarray]:
        """Many examples at `seq_length`: int32 arrays `input_ids`, `segment_ids`, `input_mask`."""
        ids_a = self.encode_ids(texts_a)
        ids_b = None if texts_b is None else self.encode_ids(texts_b)
        return self.layout(ids_a, ids_b, seq_length)

    def layout(
        self,
        ids_a: Sequence[Sequence[int]],
        ids_b: Sequence[Sequence[int]] | None,
        seq_length: int,
    ) -> dict[str, np.ndarray]:
        """Truncate and lay out token-id lists as `[CLS] a [SEP] (b [SEP])` rows, padded."""
        n = len(ids_a)
        len_a = np.fromiter(map(len, ids_a), dtype=np.int64, count=n)
        len_b = (
            np.zeros(n, np.int64) if ids_b is None else np.fromiter(map(len, ids_b), np.int64, n)
        )
        keep_a, keep_b = truncated_lengths(
            len_a, len_b, _token_budget(seq_length, ids_b is not None)
        )
        input_ids = np.full((n, seq_length), self.pad_id, dtype=np.int32)
        input_ids[:, 0] = self.cls_id
        rows = np.arange(n)
        _place(input_ids, ids_a, len_a, keep_a, start=np.ones(n, np.int64))
        input_ids[rows, 1 + keep_a] = self.sep_id
        length = keep_a + 2
        segment_ids = np.zeros((n, seq_length), dtype=np.int32)
        if ids_b is not None:
            _place(input_ids, ids_b, len_b, keep_b, start=length)
            input_ids[rows, length + keep_b] = self.sep_id
            positions = np.arange(seq_length)
            segment_ids[
                (positions >= length[:, None]) & (positions < (length + keep_b + 1)[:, None])
            ] = 1
            length = length + keep_b + 1
        input_mask = (np.arange(seq_length) < length[:, None]).astype(np.int32)
        return {"input_ids": input_ids, "segment_ids": segment_ids, "input_mask": input_mask}


def _token_budget(seq_length: int, paired: bool) -> int:
    """Room left for text tokens once [CLS] and the [SEP]s are in."""
    budget = seq_length - (3 if paired else 2)
    if budget < 1:
        raise ValueError(f"seq_length {seq_length} leaves no room for text")
    return budget


def _place(out: np.ndarray, ids, lengths, keep, start) -> None:
    """Write the first keep[i] ids of row i into out[i, start[i]:], for all rows at once."""
    flat = np.fromiter(chain.from_iterable(ids), dtype=np.int32, count=int(lengths.sum()))
    # Position of every token inside its own row; keep the first keep[i] of each row.
    row_of = np.repeat(np.arange(len(lengths)), lengths)
    within = np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    kept = within < keep[row_of]
    out[row_of[kept], (start[row_of] + within)[kept]] = flat[kept]

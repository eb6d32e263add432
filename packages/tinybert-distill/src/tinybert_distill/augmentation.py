"""Masked-LM candidates for TinyBERT's data augmentation, batched, on MindSpore.

TinyBERT's augmentation asks a BERT masked-LM for the top K words at each single-piece word of
a sentence, with that word masked (the rest of the method, and GloVe for words of several
pieces, is in `tinybert_data.augment`). The original runs one forward pass per word, the
whole vocabulary's logits at every position, then sorts them. Here one forward pass takes
many masked copies at once (every target word of a sentence, and many sentences, sorted
into a few bucket lengths), and only the masked positions go through the decoder, straight
into a top-k (`tinybert_model.MaskedLMTopK`):

    [CLS] it 's a [MASK] and often affecting journey . [SEP]    row 1: mask "charming"
    [CLS] it 's a charming and [MASK] affecting journey . [SEP] row 2: mask "often"
    ...                                                          one batch, one pass

The model is any checkpoint with a masked-LM head that our converters write: a
`BertForMaskedLM` (`tinybert-convert hf2ms` of a Hugging Face BertForMaskedLM: no pooler, no
next-sentence head) or a `BertForPreTraining` (`tf2ms` of Google's BERT, `hf2ms` of a Hugging
Face BertForPreTraining, whose next-sentence head is unused).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import mindspore as ms
import numpy as np

from tinybert_data import BertTokenizer
from tinybert_data.augment import GloveCandidates, Sentence
from tinybert_model import BertForMaskedLM, BertForPreTraining, MaskedLMTopK, load_model

from .students import ModelError

BUCKETS = (16, 32, 64, 128, 256, 512)  # row lengths: one graph compile per (batch, bucket)

MASKED_LM_MODELS = (BertForMaskedLM, BertForPreTraining)  # the models with a masked-LM head


def load_masked_lm(path) -> BertForMaskedLM | BertForPreTraining:
    """The masked-LM of our checkpoint (a BertForMaskedLM or a BertForPreTraining), in
    inference mode; ModelError for a checkpoint without a masked-LM head."""
    if Path(path).is_dir():
        raise ModelError(
            f"{path} is a folder, not a checkpoint: convert a Hugging Face masked-LM first "
            f"(tinybert-convert hf2ms --input {path} --output mlm.ckpt)"
        )
    model = load_model(path)
    if not isinstance(model, MASKED_LM_MODELS):
        raise ModelError(
            f"{path} is a {type(model).__name__}, without a masked-LM head; augmentation needs "
            "a BertForMaskedLM or BertForPreTraining checkpoint (tinybert-convert hf2ms of a "
            "Hugging Face BertForMaskedLM, tf2ms of Google's pre-trained BERT)"
        )
    model.set_train(False)
    return model


def bucket_length(length: int, max_seq_length: int) -> int:
    return next((b for b in BUCKETS if b >= length), max_seq_length)


def word_pieces(tokenizer: BertTokenizer, sentences: Sequence[Sentence]) -> list[list[list[int]]]:
    """WordPiece ids of every word of every sentence (one batched tokenizer call). BERT
    tokenizes word by word after splitting, so their concatenation is the sentence's ids."""
    words = [w for s in sentences for w in s.words]
    ids = tokenizer.encode_ids(words) if words else []
    out, start = [], 0
    for sentence in sentences:
        out.append(ids[start : start + len(sentence.words)])
        start += len(sentence.words)
    return out


def is_whole_word(token: str) -> bool:
    """A vocabulary entry that can replace a word: not a `##` continuation, not `[UNK]` etc."""
    return not token.startswith("##") and not (token.startswith("[") and token.endswith("]"))


class MaskedLMCandidates:
    """Candidates for `tinybert_data.augment.augment_task_file`, as TinyBERT chooses them: the
    masked-LM's top `k` for a target word of one WordPiece, GloVe's `k` nearest for the others.

    Candidate tokens that are `##` pieces or special tokens are dropped, so a word can get
    fewer than `k`. Sentences longer than `max_seq_length` are cut for the masked-LM; their
    words past the cut go to GloVe.
    """

    def __init__(
        self,
        model: BertForMaskedLM | BertForPreTraining,
        tokenizer: BertTokenizer,
        glove: GloveCandidates | None,
        k: int = 15,
        batch_size: int = 64,
        max_seq_length: int = 128,
    ):
        if model.config.vocab_size != tokenizer.vocab_size:
            raise ModelError(
                f"the masked-LM has {model.config.vocab_size} tokens, the vocabulary "
                f"{tokenizer.vocab_size}: give the --vocab the model was trained with"
            )
        self.top_k = MaskedLMTopK(model, k)
        self.tokenizer, self.glove, self.k = tokenizer, glove, k
        self.batch_size = batch_size
        self.max_seq_length = min(max_seq_length, model.config.max_position_embeddings)
        self.vocabulary = tokenizer.convert_ids_to_tokens(range(tokenizer.vocab_size))

    def masked_rows(self, sentences: Sequence[Sentence]) -> tuple[list, list]:
        """(masked-LM rows, GloVe words): a row is (sentence, target, ids with [MASK], position)
        and a GloVe word is (sentence, target)."""
        rows, by_glove = [], []
        budget = self.max_seq_length - 2
        for s, (sentence, pieces) in enumerate(
            zip(sentences, word_pieces(self.tokenizer, sentences))
        ):
            starts = np.cumsum([0] + [len(p) for p in pieces]) + 1  # position after [CLS]
            ids = [self.tokenizer.cls_id, *(i for p in pieces for i in p)][: budget + 1]
            ids.append(self.tokenizer.sep_id)
            for t, word in enumerate(sentence.targets):
                position = int(starts[word])
                if len(pieces[word]) == 1 and position <= budget:
                    masked = list(ids)
                    masked[position] = self.tokenizer.mask_id
                    rows.append((s, t, masked, position))
                else:
                    by_glove.append((s, t))
        return rows, by_glove

    def top_k_ids(self, rows: Sequence[tuple]) -> list[np.ndarray]:
        """The masked-LM's top-k token ids for each row, in batches of one bucket length."""
        results: list = [None] * len(rows)
        by_length: dict[int, list[int]] = {}
        for r, (_, _, ids, _) in enumerate(rows):
            by_length.setdefault(bucket_length(len(ids), self.max_seq_length), []).append(r)
        for length, members in sorted(by_length.items()):
            for start in range(0, len(members), self.batch_size):
                batch = members[start : start + self.batch_size]
                for r, token_ids in zip(batch, self.run_batch([rows[r] for r in batch], length)):
                    results[r] = token_ids
        return results

    def top_tokens(self, rows: Sequence[tuple]) -> list[list[str]]:
        """The whole words among each row's top k."""
        return [
            [token for token in (self.vocabulary[i] for i in ids) if is_whole_word(token)]
            for ids in self.top_k_ids(rows)
        ]

    def run_batch(self, rows: Sequence[tuple], length: int) -> np.ndarray:
        """One forward pass; the batch is padded to `batch_size` rows so every batch of a
        bucket has the same shape (one compile)."""
        input_ids = np.full((self.batch_size, length), self.tokenizer.pad_id, np.int32)
        input_mask = np.zeros((self.batch_size, length), np.int32)
        input_mask[:, 0] = 1  # padding rows: a lone [PAD] that attends to itself
        positions = np.zeros(self.batch_size, np.int32)
        for r, (_, _, ids, position) in enumerate(rows):
            input_ids[r, : len(ids)] = ids
            input_mask[r, : len(ids)] = 1
            positions[r] = r * length + position
        top = self.top_k(
            ms.Tensor(input_ids),
            ms.Tensor(np.zeros_like(input_ids)),
            ms.Tensor(input_mask),
            ms.Tensor(positions),
        )
        return top.asnumpy()[: len(rows)]

    def __call__(self, sentences: Sequence[Sentence]) -> list[list[list[str]]]:
        out = [[[] for _ in s.targets] for s in sentences]
        rows, by_glove = self.masked_rows(sentences)
        for (s, t, _, _), tokens in zip(rows, self.top_tokens(rows)):
            out[s][t] = tokens
        if self.glove is not None and by_glove:
            words = [sentences[s].words[sentences[s].targets[t]] for s, t in by_glove]
            for (s, t), neighbours in zip(by_glove, self.glove.words(words)):
                out[s][t] = neighbours
        return out

"""BertTokenizer behaviour beyond id parity: layout, truncation, offsets, decode."""

import random

import numpy as np
import pytest

from tinybert_data import BertTokenizer, vocab_tokens
from tinybert_data.tokenization import truncated_lengths


def google_truncation(len_a: int, len_b: int, budget: int) -> tuple:
    """Google BERT's _truncate_seq_pair, one token at a time, as the reference."""
    while len_a + len_b > budget:
        if len_a > len_b:
            len_a -= 1
        else:
            len_b -= 1
    return len_a, len_b


def test_truncated_lengths_match_one_at_a_time_removal():
    grid = [(a, b, m) for a in range(0, 30) for b in range(0, 30) for m in range(1, 40)]
    got_a, got_b = truncated_lengths(*map(np.array, zip(*grid)))
    assert list(zip(got_a.tolist(), got_b.tolist())) == [google_truncation(*g) for g in grid]


def test_attributes(uncased, chinese):
    assert (uncased.vocab_size, uncased.do_lower_case) == (30522, True)
    assert chinese.vocab_size == 21128
    assert (uncased.cls_id, uncased.sep_id, uncased.pad_id, uncased.unk_id) == (101, 102, 0, 100)


def test_basic_tokenizer_rules(uncased, chinese, uncased_vocab):
    assert uncased.tokenize("Héllo,WORLD!") == ["hello", ",", "world", "!"]
    assert chinese.tokenize("北京abc") == ["北", "京", "abc"]
    assert uncased.tokenize("a\x00b\x7f c") == ["ab", "c"]  # control characters removed
    assert uncased.tokenize("x" * 100) != ["[UNK]"]
    assert uncased.tokenize("x" * 101) == ["[UNK]"]
    cased = BertTokenizer.from_vocab(uncased_vocab, do_lower_case=False)
    assert cased.do_lower_case is False
    assert cased.tokenize("café") == ["[UNK]"]  # no lower-casing, accents kept: not in vocab
    assert uncased.tokenize("[SEP]") == ["[", "sep", "]"]  # special tokens in text are text


def test_encode_matches_encode_batch(data, uncased):
    lines = (data / "qnli" / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:201]
    pairs = [line.split("\t")[1:3] for line in lines]
    for seq_length in (16, 64):
        batch = uncased.encode_batch(*zip(*pairs), seq_length=seq_length)
        for i, (a, b) in enumerate(pairs):
            one = uncased.encode(a, b, seq_length=seq_length)
            for name in ("input_ids", "segment_ids", "input_mask"):
                assert len(getattr(one, name)) == seq_length
                assert getattr(one, name) == batch[name][i].tolist()
    assert all(v.dtype == np.int32 and v.shape == (200, 64) for v in batch.values())


def test_encode_layout_offsets_and_truncation(uncased):
    a, b = "Héllo, world!", "Unaffable cats."
    enc = uncased.encode(a, b, seq_length=12)
    assert enc.tokens == [
        "[CLS]",
        "hello",
        ",",
        "world",
        "!",
        "[SEP]",
        "una",
        "##ffa",
        "##ble",
        "cats",
        ".",
        "[SEP]",
    ]
    assert enc.segment_ids == [0] * 6 + [1] * 6
    assert enc.input_mask == [1] * 12
    assert enc.truncated is False
    assert [a[s:e] for s, e in enc.offsets[1:5]] == ["Héllo", ",", "world", "!"]
    assert [b[s:e] for s, e in enc.offsets[6:11]] == ["Una", "ffa", "ble", "cats", "."]
    assert enc.offsets[0] == enc.offsets[5] == enc.offsets[11] == (0, 0)

    short = uncased.encode(a, b, seq_length=8)  # 5 text tokens left: a keeps 3, b keeps 2
    assert short.truncated is True
    assert short.tokens == ["[CLS]", "hello", ",", "world", "[SEP]", "una", "##ffa", "[SEP]"]

    padded = uncased.encode("cats", seq_length=6)
    assert padded.tokens == ["[CLS]", "cats", "[SEP]", "[PAD]", "[PAD]", "[PAD]"]
    assert padded.input_mask == [1, 1, 1, 0, 0, 0]
    assert padded.offsets[3:] == [(0, 0)] * 3


def test_empty_text_and_too_short_seq_length(uncased):
    assert uncased.encode("", seq_length=4).input_ids == [101, 102, 0, 0]
    with pytest.raises(ValueError, match="no room"):
        uncased.encode("a", "b", seq_length=3)


def test_decode_round_trip(data, uncased):
    sentences = (data / "sst2" / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:50]
    rng = random.Random(0)
    for sentence in rng.sample(sentences, 20):
        text = sentence.split("\t")[0]
        ids = uncased.encode(text, seq_length=128).input_ids
        assert uncased.tokenize(uncased.decode(ids)) == uncased.tokenize(text)


def test_vocab_without_special_tokens_is_rejected(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\nhello\n")
    with pytest.raises(ValueError, match=r"\[UNK\]"):
        BertTokenizer.from_vocab(vocab)


def test_vocab_tokens_split_only_at_newlines(chinese_vocab, chinese):
    """bert-base-chinese's vocabulary holds U+2028 (id 343), where str.splitlines() also breaks."""
    text = chinese_vocab.read_text(encoding="utf-8")
    tokens = vocab_tokens(text)
    assert len(tokens) == chinese.vocab_size == 21128 != len(text.splitlines())
    assert text.split("\n")[343] == "\u2028" and tokens[343] == ""  # whitespace, trimmed
    assert vocab_tokens("\ufeff[PAD]\nthe  \n") == ["[PAD]", "the"]  # BOM and trailing blanks

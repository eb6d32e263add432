"""Token ids identical to transformers' slow BertTokenizer (fixture made by
make_tokenizer_reference.py), on real GLUE/CLUE text and on edge cases."""

import json

import numpy as np
import pytest
from conftest import FIXTURES
from tokenization_cases import EDGE_CASES, PAIR_SEQ_LENGTH, qnli_pairs, sst2_sentences, tnews_titles

from tinybert_data import BertTokenizer

REFERENCE = np.load(FIXTURES / "tokenizer_reference.npz")


def reference_rows(name: str) -> list:
    ids, lengths = REFERENCE[f"{name}_ids"], REFERENCE[f"{name}_lengths"]
    return [row.tolist() for row in np.split(ids.astype(np.int64), np.cumsum(lengths)[:-1])]


def unpadded(batch: dict) -> list:
    return [row[mask == 1].tolist() for row, mask in zip(batch["input_ids"], batch["input_mask"])]


def long_enough(rows) -> int:
    return max(len(r) for r in rows) + 1


def test_fixture_holds_the_current_edge_cases():
    stored = json.loads(REFERENCE["edge_cases"].tobytes().decode())
    assert stored == EDGE_CASES, "edge cases changed: rerun tests/make_tokenizer_reference.py"


def test_sst2_dev_every_sentence(data, uncased):
    expected = reference_rows("sst2")
    sentences = sst2_sentences(data)
    assert len(sentences) == len(expected) == 872
    assert unpadded(uncased.encode_batch(sentences, seq_length=long_enough(expected))) == expected


def test_qnli_dev_pairs(data, uncased):
    pairs = qnli_pairs(data)
    expected = reference_rows("qnli")
    questions, sentences = zip(*pairs)
    batch = uncased.encode_batch(questions, sentences, seq_length=long_enough(expected))
    assert unpadded(batch) == expected


def test_qnli_dev_pairs_truncated_longest_first(data, uncased):
    questions, sentences = zip(*qnli_pairs(data))
    expected = reference_rows("qnli_truncated")
    batch = uncased.encode_batch(questions, sentences, seq_length=PAIR_SEQ_LENGTH)
    assert sum(len(r) == PAIR_SEQ_LENGTH for r in expected) > 100  # truncation really happens
    assert unpadded(batch) == expected


def test_tnews_dev_titles_chinese_vocab(data, chinese):
    expected = reference_rows("tnews")
    batch = chinese.encode_batch(tnews_titles(data), seq_length=long_enough(expected))
    assert unpadded(batch) == expected


@pytest.mark.parametrize("name", ["uncased", "cased", "chinese"])
def test_edge_cases(data, name):
    vocab = "bert-base-chinese-vocab.txt" if name == "chinese" else "bert-base-uncased-vocab.txt"
    tokenizer = BertTokenizer.from_vocab(data / "vocab" / vocab, do_lower_case=name != "cased")
    expected = reference_rows(f"edge_{name}")
    got = [
        unpadded(tokenizer.encode_batch([text], seq_length=long_enough(expected)))[0]
        for text in EDGE_CASES
    ]
    for text, want, have in zip(EDGE_CASES, expected, got):
        assert have == want, text

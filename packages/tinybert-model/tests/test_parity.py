"""Our BertModel on real weights (all-MiniLM-L6-v2) and real sentences (SST-2 dev) matches
transformers' BertModel within 1e-4 on every hidden state and on the pooled output.

CI compares against tests/fixtures/hf_reference.npz (made by make_hf_reference.py); the
`parity` nox session recomputes the reference live at every token position and points
TINYBERT_HF_REFERENCE at it, and also loads our ms2hf output back into transformers.
"""

import os
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
from conftest import FIXTURES

from tinybert_model import hf_to_ms, load_model, ms_to_hf

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def reference():
    path = os.environ.get("TINYBERT_HF_REFERENCE", FIXTURES / "hf_reference.npz")
    return dict(np.load(path))


@pytest.mark.parametrize("mode", [ms.PYNATIVE_MODE, ms.GRAPH_MODE], ids=["pynative", "graph"])
def test_minilm_matches_transformers(minilm_ckpt, reference, mode):
    ms.set_context(mode=mode)
    model = load_model(minilm_ckpt, output_hidden_states=True, output_attentions=True)
    model.set_train(False)
    inputs = [ms.Tensor(reference[k]) for k in ("input_ids", "segment_ids", "input_mask")]
    _, pooled_output, hidden_states, attention_scores = model(*inputs)

    assert reference["input_ids"].shape[0] >= 32
    ours = np.stack([h.asnumpy() for h in hidden_states])
    if "positions" in reference:  # the committed file keeps four positions per sentence
        rows = np.arange(ours.shape[1])[:, None]
        ours = ours[:, rows, reference["positions"]]
    assert ours.shape == reference["hidden_states"].shape  # embedding output + 6 layers
    for layer, (mine, theirs) in enumerate(zip(ours, reference["hidden_states"])):
        assert np.abs(mine - theirs).max() < TOLERANCE, f"hidden state {layer}"
    assert np.abs(pooled_output.asnumpy() - reference["pooled_output"]).max() < TOLERANCE
    assert len(attention_scores) == 6


def test_pooled_only_matches_transformers(minilm_ckpt, reference):
    """The last layer computing [CLS] alone gives transformers' pooled output."""
    ms.set_context(mode=ms.GRAPH_MODE)
    model = load_model(minilm_ckpt)
    model.set_train(False)
    inputs = [ms.Tensor(reference[k]) for k in ("input_ids", "segment_ids", "input_mask")]
    outputs = model(*inputs, pooled_only=True)
    assert outputs.sequence_output.shape[1] == 1
    assert np.abs(outputs.pooled_output.asnumpy() - reference["pooled_output"]).max() < TOLERANCE


def test_ms2hf_output_loads_in_transformers(minilm_ckpt, minilm_dir, reference, tmp_path):
    """Runs where transformers is installed (the `parity` nox session)."""
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    ms_to_hf(minilm_ckpt, tmp_path, vocab=Path(minilm_dir) / "vocab.txt")
    model = transformers.BertModel.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        outputs = model(
            input_ids=torch.from_numpy(reference["input_ids"].astype(np.int64)),
            token_type_ids=torch.from_numpy(reference["segment_ids"].astype(np.int64)),
            attention_mask=torch.from_numpy(reference["input_mask"].astype(np.int64)),
        )
    assert np.abs(outputs.pooler_output.numpy() - reference["pooled_output"]).max() < 1e-5

    classifier_dir = FIXTURES / "hf_tiny_cls"
    hf_to_ms(classifier_dir, tmp_path / "cls.ckpt")
    ms_to_hf(tmp_path / "cls.ckpt", tmp_path / "cls")
    classifier = transformers.BertForSequenceClassification.from_pretrained(tmp_path / "cls")
    assert classifier.config.id2label == {0: "negative", 1: "neutral", 2: "positive"}
    fixture = np.load(classifier_dir / "reference.npz")
    with torch.no_grad():
        logits = classifier.eval()(
            input_ids=torch.from_numpy(fixture["input_ids"].astype(np.int64)),
            token_type_ids=torch.from_numpy(fixture["segment_ids"].astype(np.int64)),
            attention_mask=torch.from_numpy(fixture["input_mask"].astype(np.int64)),
        ).logits
    assert np.abs(logits.numpy() - fixture["logits_0"]).max() < 1e-5

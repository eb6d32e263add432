"""MaskedLMTopK: the top-k tokens at chosen positions are those of transformers' full
masked-LM logits at those positions (the committed tiny BertForMaskedLM and
BertForPreTraining, and the logits transformers computed for them)."""

import mindspore as ms
import numpy as np
import pytest
from conftest import FIXTURES

from tinybert_model import MaskedLMTopK, hf_to_ms, load_model

K = 5


@pytest.mark.parametrize("mode", [ms.PYNATIVE_MODE, ms.GRAPH_MODE])
@pytest.mark.parametrize("folder", ["hf_tiny_mlm", "hf_tiny_pretraining"])
def test_top_k_at_chosen_positions_is_transformers_top_k_there(folder, mode, tmp_path):
    ms.set_context(mode=mode)
    hf_to_ms(FIXTURES / folder, tmp_path / "mlm.ckpt")
    model = load_model(tmp_path / "mlm.ckpt")
    model.set_train(False)
    reference = np.load(FIXTURES / folder / "reference.npz")
    inputs = [ms.Tensor(reference[k]) for k in ("input_ids", "segment_ids", "input_mask")]
    rows, seq = np.nonzero(reference["input_mask"])  # every real token of the 3 rows
    order = np.random.default_rng(0).permutation(len(rows))  # rows interleaved
    rows, seq = rows[order], seq[order]
    flat_positions = ms.Tensor((rows * reference["input_ids"].shape[1] + seq).astype(np.int32))

    top = MaskedLMTopK(model, K)(*inputs, flat_positions).asnumpy()

    expected = np.argsort(-reference["logits_0"][rows, seq], axis=-1, kind="stable")[:, :K]
    assert top.shape == (len(rows), K) and len(set(rows)) == 3
    np.testing.assert_array_equal(top, expected)

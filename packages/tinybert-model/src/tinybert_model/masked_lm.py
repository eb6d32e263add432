"""A masked-LM's most likely tokens at chosen positions, in one compiled graph.

The masked-LM head's decoder is a [hidden, vocab] product (30522 columns for BERT's uncased
vocabulary): per token, over a quarter of BERT-base's twelve layers and more than a 6-layer,
384-wide encoder's, with a [batch, seq, vocab] result. A caller that asks about a few masked
positions per row would throw nearly all of it away, so `MaskedLMTopK` gathers the encoder's
output at those positions first: the decoder and the top-k run once per asked position
(tinybert-distill's data augmentation asks for one per row).
"""

from __future__ import annotations

from mindspore import nn, ops

from .modeling import BertForMaskedLM, BertForPreTraining


class MaskedLMTopK(nn.Cell):
    """The masked-LM head of a BertForMaskedLM or BertForPreTraining read at chosen positions
    only.

    Call it with `(input_ids, segment_ids, input_mask, flat_positions)`: `flat_positions`
    indexes the flattened [batch * seq] positions (row * seq + position), any number of them.
    Returns the ids of the `k` most likely tokens at each, most likely first: [positions, k].
    """

    def __init__(self, model: BertForMaskedLM | BertForPreTraining, k: int):
        super().__init__()
        self.model = model
        self.k = k

    def construct(self, input_ids, segment_ids, input_mask, flat_positions):
        sequence_output = self.model.bert(input_ids, segment_ids, input_mask)[0]
        hidden = ops.reshape(sequence_output, (-1, sequence_output.shape[-1]))
        logits = self.model.masked_lm_logits(ops.gather(hidden, flat_positions, 0))
        return ops.topk(logits, self.k)[1]

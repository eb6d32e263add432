"""The cells' outputs: shapes, the attention-score contract, modes, heads, the student."""

import dataclasses

import mindspore as ms
import numpy as np
import pytest

from tinybert_model import (
    MASK_PENALTY,
    BertConfig,
    BertForMaskedLM,
    BertForPreTraining,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
    BertOutput,
    ClassifierOutput,
    MaskedLMOutput,
    PreTrainingOutput,
    StudentOutput,
    TinyBertStudent,
    named_parameters,
)

# what distillation asks for; inference leaves both out (test_outputs_are_named_and_optional)
LAYERS = dict(output_hidden_states=True, output_attentions=True)


def make_inputs(batch=3, seq=9, vocab=99, padded_from=(9, 6, 4)):
    rng = np.random.default_rng(0)
    input_ids = rng.integers(1, vocab, (batch, seq)).astype(np.int32)
    segment_ids = np.zeros((batch, seq), np.int32)
    segment_ids[:, seq // 2 :] = 1
    input_mask = np.zeros((batch, seq), np.int32)
    for row, length in enumerate(padded_from[:batch]):
        input_mask[row, :length] = 1
    return input_ids, segment_ids, input_mask


def run(model, inputs):
    model.set_train(False)
    return model(*[ms.Tensor(x) for x in inputs])


def test_bert_model_outputs(tiny_config):
    inputs = make_inputs()
    sequence_output, pooled_output, hidden_states, attention_scores = run(
        BertModel(tiny_config, **LAYERS), inputs
    )
    assert sequence_output.shape == (3, 9, 32)
    assert pooled_output.shape == (3, 32)
    assert len(hidden_states) == 3  # embedding output, then one per layer
    assert np.array_equal(hidden_states[-1].asnumpy(), sequence_output.asnumpy())
    assert len(attention_scores) == 2
    assert attention_scores[0].shape == (3, 4, 9, 9)
    # the pooler reads position 0 of the last layer
    assert np.all(np.abs(pooled_output.asnumpy()) <= 1.0)


def test_attention_scores_are_scaled_and_masked_before_softmax(tiny_config):
    inputs = make_inputs()
    _, _, _, attention_scores = run(BertModel(tiny_config, **LAYERS), inputs)
    scores = attention_scores[0].asnumpy()
    key_is_padding = inputs[2][:, None, None, :] == 0
    # TinyBERT's attention loss relies on masked positions being <= -100, real ones far above
    assert np.all(scores[np.broadcast_to(key_is_padding, scores.shape)] < MASK_PENALTY / 2)
    assert np.all(np.abs(scores[~np.broadcast_to(key_is_padding, scores.shape)]) < 100)


def test_padding_does_not_change_real_positions(tiny_config):
    """Appending padding leaves every real token's hidden state as it was."""
    model = BertModel(tiny_config)
    short = make_inputs(batch=1, seq=6, padded_from=(6,))
    long = tuple(np.pad(x, ((0, 0), (0, 5))) for x in short)
    hidden_short = run(model, short)[0].asnumpy()
    hidden_long = run(model, long)[0].asnumpy()
    np.testing.assert_allclose(hidden_long[:, :6], hidden_short, atol=1e-5)


def test_graph_and_pynative_agree_across_shapes(tiny_config):
    model = BertModel(tiny_config)
    expected = {}
    for shape in [(1, 5), (4, 12)]:
        inputs = make_inputs(batch=shape[0], seq=shape[1], padded_from=(shape[1],) * shape[0])
        expected[shape] = run(model, inputs)[1].asnumpy()
    ms.set_context(mode=ms.GRAPH_MODE)
    for shape, pooled in expected.items():
        inputs = make_inputs(batch=shape[0], seq=shape[1], padded_from=(shape[1],) * shape[0])
        np.testing.assert_allclose(run(model, inputs)[1].asnumpy(), pooled, atol=1e-5)


def test_dropout_only_in_training(tiny_config):
    model = BertModel(tiny_config)
    inputs = [ms.Tensor(x) for x in make_inputs()]
    model.set_train(True)
    first, second = model(*inputs)[0].asnumpy(), model(*inputs)[0].asnumpy()
    assert not np.allclose(first, second)
    model.set_train(False)
    np.testing.assert_array_equal(model(*inputs)[0].asnumpy(), model(*inputs)[0].asnumpy())


def test_heads(tiny_config):
    inputs = make_inputs()
    labelled = dataclasses.replace(tiny_config, labels=["a", "b", "c"], task_type="classification")
    logits, hidden_states, attention_scores = run(
        BertForSequenceClassification(labelled, **LAYERS), inputs
    )
    assert logits.shape == (3, 3) and len(hidden_states) == 3 and len(attention_scores) == 2

    tags = dataclasses.replace(tiny_config, labels=["O", "B-x", "I-x"], task_type="ner")
    logits, _, _ = run(BertForTokenClassification(tags), inputs)
    assert logits.shape == (3, 9, 3)

    regression = dataclasses.replace(tiny_config, labels=["score"], task_type="regression")
    logits, _, _ = run(BertForSequenceClassification(regression), inputs)
    assert logits.shape == (3, 1)

    prediction_logits, nsp_logits, _, _ = run(BertForPreTraining(tiny_config), inputs)
    assert prediction_logits.shape == (3, 9, 99) and nsp_logits.shape == (3, 2)


def test_masked_lm_is_the_pre_training_model_without_pooler_and_next_sentence(tiny_config):
    """Same weights, same masked-LM logits; the masked-LM has no pooler and no NSP head, and
    its head computes the same logits on gathered rows as on the whole sequence."""
    inputs = make_inputs()
    pretraining = BertForPreTraining(tiny_config)
    masked_lm = BertForMaskedLM(tiny_config, **LAYERS)
    weights = named_parameters(pretraining)
    for name, parameter in named_parameters(masked_lm).items():
        parameter.set_data(weights[name].data.copy())
    assert set(weights) - set(named_parameters(masked_lm)) == {
        "bert.pooler.weight", "bert.pooler.bias", "nsp.weight", "nsp.bias"
    }  # fmt: skip
    outputs = run(masked_lm, inputs)
    assert type(outputs) is MaskedLMOutput and outputs.prediction_logits.shape == (3, 9, 99)
    assert len(outputs.hidden_states) == 3 and len(outputs.attention_scores) == 2
    expected = run(pretraining, inputs).prediction_logits.asnumpy()
    np.testing.assert_allclose(outputs.prediction_logits.asnumpy(), expected, atol=1e-6)
    rows = masked_lm.masked_lm_logits(outputs.hidden_states[-1][1, 2:4]).asnumpy()
    np.testing.assert_allclose(rows, expected[1, 2:4], atol=1e-5)


def test_head_without_labels_is_refused(tiny_config):
    with pytest.raises(ValueError, match="labels"):
        BertForSequenceClassification(tiny_config)


def test_student_maps_hidden_states_to_teacher_size(tiny_config):
    labelled = dataclasses.replace(tiny_config, labels=["a", "b"], task_type="classification")
    student = TinyBertStudent(BertForSequenceClassification(labelled), teacher_hidden_size=48)
    logits, fitted, attention_scores = run(student, make_inputs())
    assert logits.shape == (3, 2)
    assert [h.shape for h in fitted] == [(3, 9, 48)] * 3
    assert len(attention_scores) == 2
    names = list(named_parameters(student))
    assert (
        "fit_dense.weight" in names and "bert.embeddings.word_embeddings.embedding_table" in names
    )


def test_float16_compute_keeps_float32_outputs(tiny_config):
    half = dataclasses.replace(tiny_config, compute_type="float16")
    model = BertModel(half, **LAYERS)
    full = BertModel(tiny_config)
    # same weights in both
    for mine, theirs in zip(model.get_parameters(), full.get_parameters()):
        mine.set_data(theirs.data.copy())
    inputs = make_inputs()
    sequence_half, pooled_half, _, scores_half = run(model, inputs)
    assert sequence_half.dtype == ms.float32 and scores_half[0].dtype == ms.float32
    np.testing.assert_allclose(pooled_half.asnumpy(), run(full, inputs)[1].asnumpy(), atol=2e-2)


def test_presets():
    assert BertConfig.preset("tinybert-4").hidden_size == 312
    assert BertConfig.preset("tinybert-4").intermediate_size == 1200
    assert BertConfig.preset("zoo-student").hidden_size == 384
    assert BertConfig.preset("tinybert-6").num_hidden_layers == 6
    assert BertConfig.preset("bert-base").num_hidden_layers == 12
    assert BertConfig.preset("tinybert-4", vocab_size=21128).vocab_size == 21128


def test_outputs_are_named_and_optional(tiny_config):
    """Without asking, no hidden states or attention scores leave the model; fields have names
    and keep their positions, in both modes."""
    inputs = make_inputs()
    labelled = dataclasses.replace(tiny_config, labels=["a", "b"], task_type="classification")
    for mode in (ms.PYNATIVE_MODE, ms.GRAPH_MODE):
        ms.set_context(mode=mode)
        encoder = run(BertModel(tiny_config), inputs)
        assert type(encoder) is BertOutput
        assert encoder.hidden_states == () and encoder.attention_scores == ()
        assert encoder.sequence_output.shape == (3, 9, 32) and encoder[1].shape == (3, 32)
        outputs = run(BertForSequenceClassification(labelled), inputs)
        assert type(outputs) is ClassifierOutput and outputs.logits.shape == (3, 2)
        assert outputs[1:] == ((), ())
        hidden_only = run(BertModel(tiny_config, output_hidden_states=True), inputs)
        assert len(hidden_only.hidden_states) == 3 and hidden_only.attention_scores == ()
        pretraining = run(BertForPreTraining(tiny_config, output_attentions=True), inputs)
        assert type(pretraining) is PreTrainingOutput
        assert pretraining.hidden_states == () and len(pretraining.attention_scores) == 2


def test_asking_for_layers_changes_no_value(tiny_config):
    inputs = make_inputs()
    plain = BertModel(tiny_config)
    asking = BertModel(tiny_config, **LAYERS)
    for mine, theirs in zip(asking.get_parameters(), plain.get_parameters()):
        mine.set_data(theirs.data.copy())
    np.testing.assert_array_equal(run(plain, inputs)[0].asnumpy(), run(asking, inputs)[0].asnumpy())


@pytest.mark.parametrize("mode", [ms.PYNATIVE_MODE, ms.GRAPH_MODE], ids=["pynative", "graph"])
def test_logits_only_gives_the_same_logits_without_layer_outputs(tiny_config, mode):
    """A caller that reads the logits alone gets the same logits, no layer outputs, and a
    sequence classifier's last layer computes [CLS] alone (pooled_only)."""
    ms.set_context(mode=mode)
    inputs = make_inputs()
    encoder = BertModel(tiny_config, **LAYERS)
    full = run(encoder, inputs)
    pooled = encoder(*[ms.Tensor(x) for x in inputs], pooled_only=True)
    assert pooled.sequence_output.shape == (3, 1, 32)
    assert pooled.hidden_states == () and pooled.attention_scores == ()
    np.testing.assert_allclose(
        pooled.sequence_output.asnumpy()[:, 0], full.sequence_output.asnumpy()[:, 0], atol=1e-6
    )
    np.testing.assert_allclose(
        pooled.pooled_output.asnumpy(), full.pooled_output.asnumpy(), atol=1e-6
    )
    for head, task_type in (
        (BertForSequenceClassification, "classification"),
        (BertForTokenClassification, "ner"),
    ):
        config = dataclasses.replace(tiny_config, labels=["O", "B-x", "I-x"], task_type=task_type)
        model = head(config, **LAYERS)
        model.set_train(False)
        full = model(*[ms.Tensor(x) for x in inputs])
        alone = model(*[ms.Tensor(x) for x in inputs], logits_only=True)
        assert len(full.hidden_states) == 3 and alone[1:] == ((), ())
        np.testing.assert_allclose(alone.logits.asnumpy(), full.logits.asnumpy(), atol=1e-6)


def test_graphs_compile_without_python_fallback(tiny_config):
    """Inside a graph the outputs are plain tuples: STRICT syntax (no interpreted Python) compiles
    every model, and a loss cell reading them by position differentiates and trains."""
    ms.set_context(mode=ms.GRAPH_MODE, jit_syntax_level=ms.STRICT)
    try:
        inputs = [ms.Tensor(x) for x in make_inputs()]
        tags = dataclasses.replace(tiny_config, labels=["O", "B-x"], task_type="ner")
        assert type(run(BertForTokenClassification(tags), make_inputs())) is ClassifierOutput
        assert type(run(BertForPreTraining(tiny_config), make_inputs())) is PreTrainingOutput
        assert type(run(BertForMaskedLM(tiny_config), make_inputs())) is MaskedLMOutput
        labelled = dataclasses.replace(tiny_config, labels=["a", "b"], task_type="classification")
        classifier = BertForSequenceClassification(labelled)
        assert classifier(*inputs, logits_only=True).logits.shape == (3, 2)
        student = TinyBertStudent(classifier, teacher_hidden_size=48)

        class Loss(ms.nn.Cell):
            def __init__(self, student):
                super().__init__()
                self.student = student

            def construct(self, input_ids, segment_ids, input_mask):
                logits, hidden_states, attention_scores = self.student(
                    input_ids, segment_ids, input_mask
                )
                loss = ms.ops.mean(ms.ops.square(logits))
                for hidden in hidden_states:
                    loss += ms.ops.mean(ms.ops.square(hidden))
                return loss + ms.ops.mean(ms.ops.square(attention_scores[-1])) * 1e-6

        loss = Loss(student)
        gradients = ms.ops.GradOperation(get_by_list=True)(loss, loss.trainable_params())(*inputs)
        assert all(float(ms.ops.abs(g).sum()) > 0 for g in gradients[:5])
        step = ms.nn.TrainOneStepCell(loss, ms.nn.SGD(loss.trainable_params(), 0.05))
        step.set_train(True)
        first = float(step(*inputs))
        for _ in range(5):
            last = float(step(*inputs))
        assert last < first
    finally:
        ms.set_context(jit_syntax_level=ms.LAX)


def test_student_outputs(tiny_config):
    inputs = make_inputs()
    encoder_student = TinyBertStudent(BertModel(tiny_config), teacher_hidden_size=48)
    outputs = run(encoder_student, inputs)
    assert type(outputs) is StudentOutput and outputs.sequence_output.shape == (3, 9, 32)
    assert [h.shape for h in outputs.hidden_states] == [(3, 9, 48)] * 3
    tags = dataclasses.replace(tiny_config, labels=["O", "B-x", "I-x"], task_type="ner")
    outputs = run(TinyBertStudent(BertForTokenClassification(tags), 48), inputs)
    assert type(outputs) is ClassifierOutput and outputs.logits.shape == (3, 9, 3)
    assert len(outputs.attention_scores) == 2

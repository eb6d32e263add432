"""Feeding through mindspore.dataset (enable_data_sink) and reading one batch ahead, on CPU.

MindSpore 2.10 has no device queue on CPU (`mindspore.data_sink` refuses it, `Model.train`
trains without sinking), so `SinkFeed` here iterates its GeneratorDataset on the host: these
tests check everything of the sink path but the queue itself (batches, order, sink ends,
checkpoints, errors, weights) against the host path on real SST-2 records.
"""

import json
import shutil

import mindspore as ms
import numpy as np
import pytest
from conftest import ENGLISH_VOCAB, SHARED_DATA, distill_config, write_records

from tinybert_core import COLUMNS
from tinybert_data import BertTokenizer, RecordsError
from tinybert_data.indexed import scan_shard
from tinybert_distill import load_config, packaged_config
from tinybert_distill.config import ConfigError, validate
from tinybert_distill.data import load_dataset
from tinybert_distill.distillers import FineTuneLoss
from tinybert_distill.recipes import run_settings
from tinybert_distill.runs import run_identity
from tinybert_distill.sink import SinkFeed, sink_requested, use_sink
from tinybert_distill.students import head_class, with_task
from tinybert_distill.trainer import Phase, Run, StepBatches, run_phase
from tinybert_model import named_parameters, tiny_config

OPTIMIZER = {"learning_rate": 1e-3, "weight_decay": 1e-4, "warmup_ratio": 0.1}


@pytest.fixture(scope="module")
def sst2_records(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sink")
    return write_records(
        SHARED_DATA / "sst2" / "train.tsv", 160, "sst2", ENGLISH_VOCAB, folder / "train", 64
    )


def train(data, output, epochs=2, **run_settings_) -> tuple:
    """A tiny classifier fine-tuned with run_phase from the same initial weights each time;
    (its weights, the steps logged in metrics.jsonl)."""
    ms.set_seed(7)
    vocab_size = BertTokenizer.from_vocab(ENGLISH_VOCAB).vocab_size
    config = with_task(tiny_config(vocab_size), data.task["labels"], "classification")
    model = head_class("classification")(config)
    phase = Phase(
        "finetune",
        FineTuneLoss(model, "classification"),
        model,
        COLUMNS,
        epochs=epochs,
        batch_size=16,
        optimizer=OPTIMIZER,
    )
    output.mkdir(parents=True, exist_ok=True)
    run_phase(phase, data, Run(output, seed=3, **run_settings_))
    weights = {n: p.asnumpy() for n, p in named_parameters(model).items()}
    lines = (output / "metrics.jsonl").read_text().splitlines()
    return weights, [json.loads(line)["step"] for line in lines]


@pytest.mark.parametrize("length_buckets", [False, True])
def test_dataset_feed_trains_the_weights_of_the_host_path(tmp_path, sst2_records, length_buckets):
    """Same rows in the same order: identical weights with fixed padding; with length buckets
    the host path cuts each batch to its bucket and the sink path pads it to seq_length, which
    the losses ignore up to float rounding."""
    data = load_dataset(sst2_records)
    host, host_steps = train(data, tmp_path / "host", length_buckets=length_buckets)
    sunk, sunk_steps = train(data, tmp_path / "sink", length_buckets=length_buckets, data_sink=True)
    assert host_steps == sunk_steps == list(range(1, 21))
    for name in host:
        if length_buckets:
            np.testing.assert_allclose(sunk[name], host[name], rtol=1e-4, atol=1e-6, err_msg=name)
        else:
            np.testing.assert_array_equal(sunk[name], host[name], err_msg=name)


def test_a_sink_ends_at_checkpoints_and_epochs_and_reads_the_loss_once(tmp_path, sst2_records):
    """data_sink_steps 3, a checkpoint every 4 steps, 10 steps per epoch: the host hears back
    after steps 3, 4, 7, 8, 10, 12, ...; the checkpoints fall where the host path's do."""
    data = load_dataset(sst2_records)
    output = tmp_path / "sink"
    sunk, steps = train(
        data, output, data_sink=True, data_sink_steps=3, save_ckpt_step=4, max_ckpt_num=10
    )
    assert steps == [3, 4, 7, 8, 10, 12, 15, 16, 19, 20]
    names = sorted(p.name for p in (output / "checkpoints").iterdir())
    assert names == [f"finetune_step{n:08d}.ckpt" for n in (4, 8, 12, 16, 20)]
    host, _ = train(data, tmp_path / "host", length_buckets=True)
    for name in host:
        np.testing.assert_allclose(sunk[name], host[name], rtol=1e-4, atol=1e-6, err_msg=name)


def test_each_worker_dataset_holds_only_its_rows_at_seq_length(sst2_records):
    """Two workers' sources together give the one-worker batch, at one shape, in order."""
    data = load_dataset(sst2_records)
    phase = Phase("t", None, None, COLUMNS, epochs=1, batch_size=8, optimizer={})
    whole = Phase("t", None, None, COLUMNS, epochs=1, batch_size=16, optimizer={})
    alone = StepBatches(whole, data, Run(".", seed=5), fixed_shape=True)
    workers = [
        StepBatches(phase, data, Run(".", seed=5, rank=r, world_size=2), fixed_shape=True)
        for r in (0, 1)
    ]
    for step in (0, 3, 9, 10, 15):  # epoch 1 starts at step 10
        together = [np.concatenate(parts) for parts in zip(*(w(step) for w in workers))]
        for mine, theirs in zip(alone(step), together):
            np.testing.assert_array_equal(mine, theirs)
        assert alone(step)[0].shape == (16, data.seq_length)


def test_a_corrupt_record_fails_naming_shard_and_record_through_the_dataset(tmp_path, sst2_records):
    folder = tmp_path / "records"
    shutil.copytree(sst2_records, folder)
    data = load_dataset(folder)
    shard = data.records.files[0]
    content = bytearray(shard.read_bytes())
    content[int(scan_shard(shard)[0][30]) + 20] ^= 0x01  # inside record 30's data
    shard.write_bytes(content)
    data = load_dataset(folder)  # the row index is rebuilt: the shard changed
    with pytest.raises(RecordsError, match=rf"{shard}: record 30 has corrupt data"):
        train(data, tmp_path / "run", epochs=1, data_sink=True)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_cpu_keeps_the_host_path_and_the_zoo_values_are_read(tmp_path, sst2_records):
    config = distill_config("finetune_config", tmp_path / "run", train_data_dir=str(sst2_records))
    assert config["enable_data_sink"] is False and config["data_sink_steps"] == 1
    run = run_settings(config, 0, 1)
    assert run.data_sink is False and run.read_ahead
    assert use_sink(True, "GPU") and use_sink("true", "Ascend") and not use_sink("false", "GPU")
    assert sink_requested("True") and not sink_requested(False)
    with pytest.raises(ConfigError, match="--enable_data_sink is 'yes'"):
        sink_requested("yes")


def test_sink_feed_stops_its_pipeline(sst2_records):
    data = load_dataset(sst2_records)
    phase = Phase("t", None, None, COLUMNS, epochs=1, batch_size=16, optimizer={})
    batch_of = StepBatches(phase, data, Run(".", seed=5), fixed_shape=True)
    seen = []
    feed = SinkFeed(lambda *arrays: seen.append(arrays[0].asnumpy()), batch_of, 2, 6, COLUMNS)
    feed.run(3)
    feed.close()
    assert len(seen) == 3
    for step, got in zip((2, 3, 4), seen):
        np.testing.assert_array_equal(got, batch_of(step)[0])


def test_sink_keys_are_checked_and_free_on_resume(tmp_path):
    """data_sink_steps is range-checked like every number; neither key is part of a run's
    identity (they decide how batches reach the device, not which), so runs saved before
    the keys existed, or with other values, resume."""
    config = load_config(packaged_config("gd_config"))
    config["data_sink_steps"] = 0
    with pytest.raises(ConfigError, match=r"--data_sink_steps is 0; it must be a whole number"):
        validate(config)
    config["data_sink_steps"] = 100
    settings = run_identity(config)["settings"]
    assert "enable_data_sink" not in settings and "data_sink_steps" not in settings
    before = {k: v for k, v in config.items() if k not in ("enable_data_sink", "data_sink_steps")}
    assert run_identity(before)["id"] == run_identity(config)["id"]

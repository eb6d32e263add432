"""Data parallel on CPU: two msrun workers end with identical weights, equal to one process
trained on the combined batches (with gradient accumulation on the workers too)."""

import subprocess
import sys

import numpy as np
import pytest
from conftest import console_script, distill_config, free_port, write_yaml

from tinybert_distill.launch import build_command, main
from tinybert_model import read_checkpoint


@pytest.mark.parametrize("micro_batches", [1, 2])
def test_two_workers_match_one_process(tmp_path, pretrained_tiny, sst2_train, micro_batches):
    settings = dict(
        load_ckpt_path=str(pretrained_tiny),
        train_data_dir=str(sst2_train),
        do_eval=False,
        train_steps=6,
    )
    single = distill_config("finetune_config", tmp_path / "single", **settings)
    single["common_cfg"]["batch_size"] = 16
    parallel = distill_config("finetune_config", tmp_path / "parallel", **settings)
    parallel["common_cfg"]["batch_size"] = 8  # per worker: 2 x 8 = the single process's 16
    # 2: each worker runs its 8 rows as 2 micro-batches of 4, then all-reduces and updates once
    parallel["gradient_accumulation_steps"] = micro_batches

    subprocess.run(
        [
            console_script("tinybert-finetune"),
            "--config",
            str(write_yaml(single, tmp_path / "single.yaml")),
        ],
        check=True,
        capture_output=True,
    )
    launch = [
        console_script("tinybert-launch"),
        "--nproc",
        "2",
        "--master_port",
        str(free_port()),
        "--log_dir",
        str(tmp_path / "msrun_log"),
        "--",
        "tinybert-finetune",
        "--config",
        str(write_yaml(parallel, tmp_path / "parallel.yaml")),
    ]
    done = subprocess.run(launch, capture_output=True, text=True, timeout=600)
    logs = "\n".join(
        p.read_text(errors="replace")[-3000:] for p in (tmp_path / "msrun_log").glob("*.log")
    )
    assert done.returncode == 0, logs

    one = read_checkpoint(tmp_path / "single" / "last.ckpt").tensors
    two = read_checkpoint(tmp_path / "parallel" / "last.ckpt").tensors
    assert one.keys() == two.keys()
    for name in one:
        np.testing.assert_allclose(two[name], one[name], atol=1e-5, rtol=0, err_msg=name)
    # only worker 0 writes: one line per step in the shared log, not two
    assert len((tmp_path / "parallel" / "metrics.jsonl").read_text().splitlines()) == 6
    assert "worker 1 of 2" in logs or "worker 1" in logs


def test_launch_builds_an_msrun_command(tmp_path):
    class Args:
        nproc, nnodes, node_rank, master_addr, master_port, log_dir = (
            4,
            2,
            1,
            "10.0.0.1",
            9000,
            "logs",
        )

    command = build_command(Args, ["tinybert-gd", "--data_dir", "corpus"])
    assert command[0].endswith("msrun")
    assert (
        "--worker_num=8" in command
        and "--local_worker_num=4" in command
        and "--node_rank=1" in command
    )
    assert command[-3].endswith("tinybert-gd") and command[-2:] == ["--data_dir", "corpus"]


@pytest.mark.parametrize("command", [[], ["python", "train.py"]])
def test_launch_rejects_other_commands(command, capsys):
    with pytest.raises(SystemExit, match="tinybert-launch: error"):
        main(["--nproc", "2", "--", *command])


def test_launch_help_explains_flags():
    out = subprocess.run(
        [sys.executable, "-m", "tinybert_distill.launch", "--help"], capture_output=True, text=True
    )
    assert "--nproc" in out.stdout and "workers on this machine" in out.stdout

"""General distillation at corpus scale (issue 16): the training data read by row number with
bounded memory, against MindSpore's TFRecordDataset and today's in-memory load, and corpus
packing with 1 and 2 workers.

1. Synthetic corpus records at seq 128 (random ids and lengths, real TFRecord framing, 4
   shards): 0.5M distinct rows, and 5M rows (the 0.5M shards each written 10 times over; the
   reader cannot tell). The one-time row-index build is timed on each.
2. For each size, in a fresh process per reader, alternating readers for `--rounds` rounds:
   time from opening the folder to the first batch of 32 (lengths and the epoch's order
   included), then 20 general-distillation steps of a tiny teacher and student (MindSpore
   GRAPH, batch 32, seq 128) fed from the reader, with the time spent getting each batch, and
   the process's peak RSS. Readers: ours (`tinybert_data.open_records`, rows of the permutation
   `tinybert_distill.data.epoch_order(seed, epoch)`), read when the step needs them or one
   batch ahead in a thread (`ours_prefetch`: the time is then the wait for the batch),
   MindSpore's `TFRecordDataset` with global shuffle (its own order), and at 0.5M rows
   today's `load_records` into memory.
3. One GD step of a BERT-base-size teacher and TinyBERT-4 student at B32 S128, fed from our
   reader (the step time docs/GD_AT_SCALE.md builds its estimate on).
4. `tinybert-data corpus` on the shared English wiki sample copied into a folder of files
   (WikiExtractor-like) to >= 200 MB, --workers 1 and 2, alternating, MB of text per second;
   beside them --workers 1 held to one tokenizer thread (TOKENIZERS_PARALLELISM=false: one
   core, as the issue's 1.9 MB/s was measured), since one default worker's tokenizer already
   encodes on every core.
5. `trainer`: the whole GD trainer (`tinybert_distill.general_distillation`, what tinybert-gd
   runs: run identity, data, teacher, student, 20 steps, checkpoint) of a tiny teacher and
   student at B32 S128 on the 0.5M and 5M rows, in a fresh process each: time from the call to
   the end of step 1, steady step time (median of steps 3-20), peak RSS. Beside it the
   previous behaviour, every row loaded into memory first (`load_dataset` before the row
   indexes: emulated with tinybert-data's LoadedRecords, what MindRecord folders still use),
   at 0.5M rows only (at 5M it would need about 10x its RSS, more than this shared machine has
   to spare).
6. `read_ahead`: the trainer's step with the next batch read in a thread, against reading it
   when the step starts (`Run.read_ahead`), on the demo's SST-2 (all 67,349 train rows, seq 64,
   length buckets) with a TinyBERT-4-size classifier at B32 (the demo's phase-2 step size,
   the one where data time weighs most), alternating, steady step time.

    python bench/bench_scale.py [--rounds 2] [--corpus_mb 200] [--work DIR] [--skip ...]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tinybert_core import TEXT_COLUMNS, read_task_info, write_task_info

BATCH, SEQ, STEPS = 32, 128, 20
VOCAB = 30522
COLUMNS = list(TEXT_COLUMNS)  # corpus rows: no labels
SIZES = {"0.5M": 500_000, "5M": 5_000_000}  # --rows changes them (the larger is 10x)
TINY_TEACHER = dict(hidden=128, layers=4, heads=4, ffn=512)
TINY_STUDENT = dict(hidden=64, layers=2, heads=4, ffn=256)
BASE_TEACHER = dict(hidden=768, layers=12, heads=12, ffn=3072)
TINYBERT_4 = dict(hidden=312, layers=4, heads=12, ffn=1200)
SHARED_DATA = Path(
    os.environ.get("TINYBERT_SHARED_DATA", Path(__file__).parents[2] / "shared/data")
)


# ---- synthetic records ------------------------------------------------------------------------


def write_synthetic(directory: Path, num_rows: int, shards: int = 4) -> None:
    """`num_rows` random rows of seq 128 in `shards` TFRecord shards, as `tinybert-data
    corpus` lays them out (the length of each row random, 90% of them full)."""
    import numpy as np

    from tinybert_data import RecordsWriter

    rng = np.random.default_rng(0)
    shapes = {c: (SEQ,) for c in COLUMNS}
    metadata = {"task": "corpus", "task_type": "pretraining", "labels": [], "seq_length": SEQ}
    with RecordsWriter(directory, "corpus", shapes, metadata, num_shards=shards) as writer:
        while writer.num_rows < num_rows:
            n = min(50_000, num_rows - writer.num_rows)
            lengths = np.where(rng.random(n) < 0.9, SEQ, rng.integers(5, SEQ, n))
            mask = (np.arange(SEQ) < lengths[:, None]).astype(np.int32)
            ids = rng.integers(1000, VOCAB, (n, SEQ)).astype(np.int32) * mask
            segments = (np.arange(SEQ) >= lengths[:, None] // 2).astype(np.int32) * mask
            writer.write({"input_ids": ids, "segment_ids": segments, "input_mask": mask})


def repeat_records(source: Path, target: Path, times: int) -> None:
    """A records folder whose every shard is `source`'s written `times` times over: the row
    order stays that of interleaved shards, row counts scale by `times`."""
    target.mkdir(parents=True, exist_ok=True)
    task = read_task_info(source)
    for name in task["files"]:
        with open(source / name, "rb") as f:
            content = f.read()
        with open(target / name, "wb") as f:
            for _ in range(times):
                f.write(content)
    schema = json.loads((source / "schema.json").read_text())
    schema["numRows"] *= times
    (target / "schema.json").write_text(json.dumps(schema))
    task["num_rows"] *= times
    write_task_info(target, task)


# ---- one reader in its own process --------------------------------------------------------------


def tiny_or_base_step(teacher_shape: dict, student_shape: dict):
    """A compiled GD step (attention + hidden-state losses, AdamW) of the given sizes."""
    import mindspore as ms

    from tinybert_distill.distillers import DistillationLoss
    from tinybert_distill.losses import uniform_layer_map
    from tinybert_distill.optimization import TrainStep, build_optimizer, learning_rates
    from tinybert_model import BertConfig, BertModel, TinyBertStudent

    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_device("CPU")

    def config(shape):
        return BertConfig.from_dict(
            dict(
                vocab_size=VOCAB,
                hidden_size=shape["hidden"],
                num_hidden_layers=shape["layers"],
                num_attention_heads=shape["heads"],
                intermediate_size=shape["ffn"],
            )
        )

    teacher = BertModel(config(teacher_shape))
    student = TinyBertStudent(BertModel(config(student_shape)), teacher_shape["hidden"])
    hidden_map, attention_map = uniform_layer_map(student_shape["layers"], teacher_shape["layers"])
    loss = DistillationLoss(teacher, student, hidden_map, attention_map, layers=True)
    settings = {"learning_rate": 5e-5, "weight_decay": 1e-4, "warmup_ratio": 0.0}
    optimizer = build_optimizer(
        student.trainable_params(), learning_rates(1000, settings), settings
    )
    return TrainStep(loss, optimizer, loss_scale_value=1.0)


def open_reader(kind: str, path: Path):
    """(next_batch(step) -> [input_ids, segment_ids, input_mask] numpy, rows) for one reader."""
    import numpy as np

    if kind in ("ours", "ours_prefetch"):
        from tinybert_data import open_records
        from tinybert_data.prefetch import ahead
        from tinybert_distill.data import batch_rows, epoch_order

        records = open_records(path)
        lengths = records.lengths  # what length bucketing needs, from the index
        assert len(lengths) == records.num_rows
        order = epoch_order(records.num_rows, seed=1, epoch=0)

        def read(step):
            batch = records.read(batch_rows(order, step, BATCH), COLUMNS)
            return [batch[c] for c in COLUMNS]

        if kind == "ours":
            return read, records.num_rows
        # The next batch is read in a thread while the step runs (MindSpore releases the GIL).
        batches = ahead(read, range(1_000_000))
        return (lambda step: next(batches)[1]), records.num_rows
    if kind == "memory":
        from tinybert_data import load_records
        from tinybert_distill.data import batch_rows, epoch_order

        columns = load_records(path)
        order = epoch_order(len(columns["input_ids"]), seed=1, epoch=0)

        def next_batch(step):
            rows = batch_rows(order, step, BATCH)
            return [columns[c][rows] for c in COLUMNS]

        return next_batch, len(order)
    import mindspore.dataset as ds

    task = read_task_info(path)
    dataset = ds.TFRecordDataset(
        [str(path / f) for f in task["files"]],
        str(path / "schema.json"),
        columns_list=COLUMNS,
        shuffle=ds.Shuffle.GLOBAL,
        num_shards=1,
        shard_id=0,
    ).batch(BATCH, drop_remainder=True)
    iterator = dataset.create_tuple_iterator(output_numpy=True, num_epochs=1)

    def next_batch(step):
        return [np.asarray(x, np.int32) for x in next(iterator)]

    return next_batch, task["num_rows"]


def reader_worker(kind: str, path: str, model: str, steps: int) -> dict:
    # A trainer has these imported before it opens its data: not part of the time to a batch.
    import mindspore.dataset  # noqa: F401
    from mindspore import Tensor

    import tinybert_data  # noqa: F401
    import tinybert_distill.data  # noqa: F401

    started = time.perf_counter()
    next_batch, num_rows = open_reader(kind, Path(path))
    first = next_batch(0)
    first_batch_s = time.perf_counter() - started
    shapes = (TINY_TEACHER, TINY_STUDENT) if model == "tiny" else (BASE_TEACHER, TINYBERT_4)
    step = tiny_or_base_step(*shapes)
    step(*[Tensor(x) for x in first])[0].asnumpy()  # compiles
    data_times, step_times = [], []
    for number in range(1, steps + 1):
        t0 = time.perf_counter()
        inputs = [Tensor(x) for x in next_batch(number)]
        t1 = time.perf_counter()
        step(*inputs)[0].asnumpy()
        t2 = time.perf_counter()
        data_times.append(t1 - t0)
        step_times.append(t2 - t1)
    return {
        "rows": num_rows,
        "first_batch_s": first_batch_s,
        "data_s": statistics.median(data_times),
        "data_mean_s": statistics.fmean(data_times),
        "step_s": statistics.median(step_times),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def measure_reader(kind: str, path: Path, model: str = "tiny", steps: int = STEPS) -> dict:
    command = [sys.executable, __file__, "--worker", kind, str(path), model, str(steps)]
    env = dict(os.environ, GLOG_v="3")
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        return {"error": result.stderr.strip().splitlines()[-1:]}
    return json.loads(result.stdout.strip().splitlines()[-1])


# ---- the whole trainer in its own process ------------------------------------------------------


def _watch(path: Path, times: list, stop) -> None:
    """Append the time at which each new line of `path` appears (polled every 5 ms)."""
    seen = 0
    while not stop.is_set():
        if path.is_file():
            lines = path.read_bytes().count(b"\n")
            times.extend([time.perf_counter()] * (lines - seen))
            seen = lines
        time.sleep(0.005)


def trainer_worker(kind: str, path: str, teacher: str, output: str) -> dict:
    """general_distillation on `path` (kind "ours" or "memory"), timed from the call."""
    import threading

    import mindspore as ms

    import tinybert_distill.data
    import tinybert_distill.runs
    from tinybert_data.indexed import LoadedRecords
    from tinybert_distill import general_distillation, load_config, packaged_config

    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_device("CPU")
    if kind == "memory":  # the previous behaviour: every row parsed into memory first
        tinybert_distill.data.open_records = LoadedRecords
    config = load_config(packaged_config("gd_config"))
    config.update(
        load_teacher_ckpt_path=teacher,
        data_dir=path,
        save_ckpt_path=output,
        train_steps=STEPS,
        save_ckpt_step=1000,
        overwrite=True,
    )
    config["common_cfg"]["batch_size"] = BATCH
    config["bert_student_net_cfg"].update(
        hidden_size=TINY_STUDENT["hidden"],
        num_hidden_layers=TINY_STUDENT["layers"],
        num_attention_heads=TINY_STUDENT["heads"],
        intermediate_size=TINY_STUDENT["ffn"],
    )
    times, stop = [], threading.Event()
    watcher = threading.Thread(target=_watch, args=(Path(output) / "metrics.jsonl", times, stop))
    watcher.start()
    started = time.perf_counter()
    general_distillation(config)
    stop.set()
    watcher.join()
    steps = [b - a for a, b in zip(times, times[1:])][1:]  # steps 3..20
    tinybert_distill.runs._digests.clear()  # hash again what the run identity hashed
    hashing = time.perf_counter()
    tinybert_distill.runs.digest(path)
    hashing = time.perf_counter() - hashing
    return {
        "first_step_s": times[0] - started,
        "identity_hash_s": hashing,
        "step_s": statistics.median(steps),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def tiny_teacher(path: Path) -> Path:
    import mindspore as ms

    from tinybert_model import BertConfig, BertModel, save_checkpoint

    ms.set_seed(0)
    shape = TINY_TEACHER
    config = BertConfig.from_dict(
        dict(
            vocab_size=VOCAB,
            hidden_size=shape["hidden"],
            num_hidden_layers=shape["layers"],
            num_attention_heads=shape["heads"],
            intermediate_size=shape["ffn"],
        )
    )
    save_checkpoint(BertModel(config), path)
    return path


def trainers(folders: dict, work: Path, rounds: int) -> None:
    teacher = tiny_teacher(work / "tiny_teacher.ckpt")
    plan = [("ours", "0.5M"), ("memory", "0.5M"), ("ours", "5M")]
    results = {}
    for round_number in range(rounds):
        for kind, size in plan if round_number % 2 == 0 else plan[::-1]:
            command = [sys.executable, __file__, "--trainer_worker", kind, str(folders[size])]
            command += [str(teacher), str(work / f"gd_{kind}_{size}")]
            done = subprocess.run(
                command, capture_output=True, text=True, env=dict(os.environ, GLOG_v="3")
            )
            if done.returncode != 0:
                result = {"error": done.stderr.strip().splitlines()[-1:]}
            else:
                result = json.loads(done.stdout.strip().splitlines()[-1])
            results.setdefault((kind, size), []).append(result)
            load = os.getloadavg()[0]
            print(
                f"  round {round_number + 1} trainer {kind:6s} {size:4s} load {load:.1f} {result}"
            )
    print(
        f"\nGD trainer (general_distillation), tiny teacher {TINY_TEACHER} and student "
        f"{TINY_STUDENT}, B{BATCH} S{SEQ}, {STEPS} steps, medians over rounds:\n"
        "| data | rows | call to end of step 1 | of it: run-identity hash of the data "
        "| steady step | peak RSS |\n|---|---|---|---|---|---|"
    )
    for (kind, size), runs in results.items():
        good = [r for r in runs if "error" not in r]
        if not good:
            print(f"| {kind} | {size} | failed: {runs[0]['error']} | | | |")
            continue
        row = {key: statistics.median(r[key] for r in good) for key in good[0]}
        label = "row indexes (ours)" if kind == "ours" else "all rows in memory (previous)"
        print(
            f"| {label} | {size} | {row['first_step_s']:.1f} s | {row['identity_hash_s']:.1f} s "
            f"| {1e3 * row['step_s']:.0f} ms | {row['peak_rss_mib']:.0f} MiB |"
        )


# ---- reading one batch ahead ------------------------------------------------------------------


def read_ahead(work: Path, rounds: int, steps: int) -> None:
    """run_phase with and without read_ahead on the demo's SST-2, in one process per run."""
    records = work / "sst2_train_64"
    if not (records / "task.json").is_file():
        command = [
            *[shutil.which("tinybert-data") or "tinybert-data", "task", "--task", "sst2"],
            *["--input", str(Path(__file__).parents[1] / "data" / "sst2" / "train.tsv")],
            *["--vocab", str(SHARED_DATA / "vocab" / "bert-base-uncased-vocab.txt")],
            *["--seq_length", "64", "--output", str(records)],
        ]
        subprocess.run(command, check=True, capture_output=True)
    times = {True: [], False: []}
    for round_number in range(rounds):
        for ahead_on in (True, False) if round_number % 2 == 0 else (False, True):
            code = READ_AHEAD_RUN.format(
                records=str(records), output=str(work / "read_ahead"), ahead=ahead_on, steps=steps
            )
            done = subprocess.run(
                [sys.executable, "-c", code],
                capture_output=True,
                text=True,
                env=dict(os.environ, GLOG_v="3"),
            )
            if done.returncode != 0:
                print(f"  read_ahead {ahead_on} failed: {done.stderr.strip().splitlines()[-1:]}")
                continue
            result = json.loads(done.stdout.strip().splitlines()[-1])
            times[ahead_on].append(result)
            load = os.getloadavg()[0]
            print(f"  round {round_number + 1} read_ahead {ahead_on!s:5s} load {load:.1f} {result}")
    if times[True] and times[False]:
        on = statistics.median(r["step_s"] for r in times[True])
        off = statistics.median(r["step_s"] for r in times[False])
        data = statistics.median(r["read_s"] for r in times[False])
        print(
            f"\nread ahead, SST-2 67,349 rows S64 B32, TinyBERT-4-size classifier, {steps} steps: "
            f"steady step {1e3 * on:.1f} ms with, {1e3 * off:.1f} ms without "
            f"(ratio {off / on:.3f}; a batch read takes {1e3 * data:.1f} ms)"
        )


# Runs in its own process: a fine-tuning phase through the trainer, the time of each step from
# the trainer's own metrics (examples_per_s is the running mean since the loop started).
READ_AHEAD_RUN = """
import json, shutil, statistics, time
from pathlib import Path
import mindspore as ms
import numpy as np
ms.set_context(mode=ms.GRAPH_MODE)
ms.set_device("CPU")
from tinybert_distill.data import load_dataset
from tinybert_distill.distillers import FineTuneLoss
from tinybert_distill.students import head_class, with_task
from tinybert_distill.trainer import Phase, Run, StepBatches, run_phase
from tinybert_model import BertConfig
output = Path({output!r})
shutil.rmtree(output, ignore_errors=True)
output.mkdir(parents=True)
data = load_dataset({records!r})
config = BertConfig.from_dict(dict(vocab_size=30522, hidden_size=312, num_hidden_layers=4,
    num_attention_heads=12, intermediate_size=1200, hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0))
ms.set_seed(0)
model = head_class("classification")(with_task(config, data.task["labels"], "classification"))
optimizer = dict(learning_rate=1e-4, weight_decay=1e-4, warmup_ratio=0.1)
phase = Phase("finetune", FineTuneLoss(model, "classification"), model,
    ("input_ids", "segment_ids", "input_mask", "label_ids"), epochs=1, batch_size=32,
    optimizer=optimizer, max_steps={steps})
run = Run(output, seed=0, read_ahead={ahead}, save_ckpt_step=100000)
run_phase(phase, data, run)
records = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
elapsed = [r["step"] * 32 / r["examples_per_s"] for r in records]
steps = [b - a for a, b in zip(elapsed, elapsed[1:])][20:]  # past the first graphs' compiling
batches = StepBatches(phase, data, run)
started = time.perf_counter()
for step in range(50):
    batches(step)
read = (time.perf_counter() - started) / 50
print(json.dumps(dict(step_s=statistics.median(steps), read_s=read)))
"""


# ---- corpus throughput ------------------------------------------------------------------------


def corpus_folder(directory: Path, megabytes: int) -> int:
    """The English wiki sample copied into files of a folder until `megabytes` MB; its size."""
    sample = (SHARED_DATA / "corpus" / "en_wiki_sample.txt").read_bytes()
    directory.mkdir(parents=True, exist_ok=True)
    copies = -(-megabytes * 1_000_000 // len(sample))
    for i in range(copies):
        (directory / f"wiki_{i:03d}").write_bytes(sample)
    return copies * len(sample)


def corpus_seconds(inputs: Path, output: Path, workers: int, one_thread: bool = False) -> float:
    command = [
        *[shutil.which("tinybert-data") or "tinybert-data", "corpus", "--input", str(inputs)],
        *["--vocab", str(SHARED_DATA / "vocab" / "bert-base-uncased-vocab.txt")],
        *["--seq_length", str(SEQ), "--output", str(output), "--shards", "4"],
        *["--workers", str(workers), "--quiet"],
    ]
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false") if one_thread else None
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=env)
    return time.perf_counter() - started


# ---- driver ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (default 2)")
    parser.add_argument("--corpus_mb", type=int, default=200, help="corpus text, MB (200)")
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    parser.add_argument(
        "--rows", type=int, default=500_000, help="rows of the smaller records (500000); x10"
    )
    parser.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=["readers", "base_step", "corpus", "trainer", "read_ahead"],
        help="parts to leave out",
    )
    parser.add_argument(
        "--ahead_steps", type=int, default=120, help="steps of each read_ahead run (120)"
    )
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--trainer_worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, path, model, steps = args.worker
        print(json.dumps(reader_worker(kind, path, model, int(steps))))
        return
    if args.trainer_worker:
        print(json.dumps(trainer_worker(*args.trainer_worker)))
        return
    SIZES.update({"0.5M": args.rows, "5M": 10 * args.rows})

    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    print(next((line for line in cpu.splitlines() if "Model name" in line), "CPU: unknown"))
    print(f"cores: {os.cpu_count()}, date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"load average at start: {os.getloadavg()[0]:.1f} (other sessions share the machine)")
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if {"readers", "base_step", "trainer"} - set(args.skip):
            # the index build is timed from nothing when the readers are measured
            folders = records_folders(work, rebuild_indexes="readers" not in args.skip)
        if "readers" not in args.skip:
            readers(folders, args.rounds)
        if "base_step" not in args.skip:
            result = measure_reader("ours", folders["5M"], model="base", steps=3)
            print(
                f"\nGD step, BERT-base teacher + TinyBERT-4, B{BATCH} S{SEQ}, fed by ours from "
                f"5M rows: step {result.get('step_s', float('nan')):.2f} s, data "
                f"{1e3 * result.get('data_s', float('nan')):.2f} ms "
                f"({100 * result.get('data_s', 0) / result.get('step_s', 1):.3f}% of the step), "
                f"peak RSS {result.get('peak_rss_mib', float('nan')):.0f} MiB {result}"
            )
        if "trainer" not in args.skip:
            trainers(folders, work, args.rounds)
        if "read_ahead" not in args.skip:
            read_ahead(work, args.rounds, args.ahead_steps)
        if "corpus" not in args.skip:
            corpus(work, args.corpus_mb, args.rounds)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


def records_folders(work: Path, rebuild_indexes: bool = True) -> dict:
    from tinybert_data import write_row_indexes

    folders = {name: work / f"records_{name}" for name in SIZES}
    if not (folders["0.5M"] / "task.json").is_file():
        started = time.perf_counter()
        write_synthetic(folders["0.5M"], SIZES["0.5M"])
        print(f"wrote 0.5M rows in {time.perf_counter() - started:.1f} s")
    if not (folders["5M"] / "task.json").is_file():
        repeat_records(folders["0.5M"], folders["5M"], SIZES["5M"] // SIZES["0.5M"])
    for name, folder in folders.items():
        size = sum(f.stat().st_size for f in folder.glob("*.tfrecord")) / 1e9
        if not rebuild_indexes and any(folder.glob("*.rowindex")):
            continue
        for index in folder.glob("*.rowindex"):
            index.unlink()  # time the build from nothing
        started = time.perf_counter()
        write_row_indexes(folder)
        seconds = time.perf_counter() - started
        print(
            f"{name} rows ({size:.2f} GB of records): row indexes built in {seconds:.1f} s "
            f"({1e6 * seconds / SIZES[name]:.2f} us/row, once per folder)"
        )
    return folders


def readers(folders: dict, rounds: int) -> None:
    results = {}  # (reader, size) -> list of results
    plan = [("ours", "0.5M"), ("mindspore", "0.5M"), ("ours", "5M"), ("mindspore", "5M")]
    plan += [("ours_prefetch", "5M"), ("memory", "0.5M")]
    for round_number in range(rounds):
        for kind, size in plan if round_number % 2 == 0 else plan[::-1]:
            result = measure_reader(kind, folders[size])
            results.setdefault((kind, size), []).append(result)
            load = os.getloadavg()[0]
            print(f"  round {round_number + 1} {kind:13s} {size:4s} load {load:.1f} {result}")
    print(
        "\n| reader | rows | first batch | data / step (median) | tiny GD step | data share "
        "| peak RSS |\n|---|---|---|---|---|---|---|"
    )
    summary = {}
    for (kind, size), runs in results.items():
        good = [r for r in runs if "error" not in r]
        if not good:
            print(f"| {kind} | {size} | failed: {runs[0]['error']} | | | | |")
            continue
        row = {key: statistics.median(r[key] for r in good) for key in good[0] if key != "rows"}
        summary[(kind, size)] = row
        print(
            f"| {kind} | {size} | {row['first_batch_s']:.2f} s | {1e3 * row['data_s']:.2f} ms "
            f"| {1e3 * row['step_s']:.1f} ms | {100 * row['data_s'] / row['step_s']:.1f}% "
            f"| {row['peak_rss_mib']:.0f} MiB |"
        )
    for kind in ("ours", "mindspore"):
        if (kind, "0.5M") in summary and (kind, "5M") in summary:
            small, large = summary[(kind, "0.5M")], summary[(kind, "5M")]
            growth = large["peak_rss_mib"] / small["peak_rss_mib"] - 1
            print(
                f"{kind}: peak RSS 0.5M -> 5M rows {100 * growth:+.1f}% (target < 10%), first "
                f"batch at 5M {large['first_batch_s']:.2f} s (target < 10 s), data share at 5M "
                f"{100 * large['data_s'] / large['step_s']:.1f}% of the tiny step (target < 5%)"
            )


def corpus(work: Path, megabytes: int, rounds: int) -> None:
    inputs = work / "wiki_text"
    size = corpus_folder(inputs, megabytes)
    print(f"\ncorpus: {size / 1e6:.0f} MB of text in {len(list(inputs.iterdir()))} files")
    variants = {"1": (1, False), "2": (2, False), "1, one thread": (1, True)}
    times = {name: [] for name in variants}
    for round_number in range(rounds):
        order = list(variants) if round_number % 2 == 0 else list(variants)[::-1]
        for name in order:
            workers, one_thread = variants[name]
            seconds = corpus_seconds(inputs, work / f"corpus_w{workers}", workers, one_thread)
            times[name].append(seconds)
            load = os.getloadavg()[0]
            print(f"  round {round_number + 1} workers {name}: {seconds:.1f} s, load {load:.1f}")
    rates = {name: size / 1e6 / statistics.median(t) for name, t in times.items()}
    print(
        f"corpus throughput: 1 worker {rates['1']:.2f} MB/s, 2 workers {rates['2']:.2f} MB/s, "
        f"1 worker on one tokenizer thread {rates['1, one thread']:.2f} MB/s; 2 workers are "
        f"{rates['2'] / rates['1']:.2f}x one worker and {rates['2'] / rates['1, one thread']:.2f}x "
        "one worker on one thread (target >= 1.8x)"
    )
    from tinybert_data import load_records

    same = all(
        (a == b).all()
        for a, b in zip(
            load_records(work / "corpus_w1", columns=["input_ids"]).values(),
            load_records(work / "corpus_w2", columns=["input_ids"]).values(),
        )
    )
    print(f"identical rows with 1 and 2 workers: {same}")


if __name__ == "__main__":
    main()

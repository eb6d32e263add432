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
   (WikiExtractor-like) to >= 200 MB, --workers 1 and 2, alternating, MB of text per second.

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

BATCH, SEQ, STEPS = 32, 128, 20
VOCAB = 30522
COLUMNS = ["input_ids", "segment_ids", "input_mask"]
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
    task = json.loads((source / "task.json").read_text())
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
    (target / "task.json").write_text(json.dumps(task))


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

    task = json.loads((path / "task.json").read_text())
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


# ---- corpus throughput ------------------------------------------------------------------------


def corpus_folder(directory: Path, megabytes: int) -> int:
    """The English wiki sample copied into files of a folder until `megabytes` MB; its size."""
    sample = (SHARED_DATA / "corpus" / "en_wiki_sample.txt").read_bytes()
    directory.mkdir(parents=True, exist_ok=True)
    copies = -(-megabytes * 1_000_000 // len(sample))
    for i in range(copies):
        (directory / f"wiki_{i:03d}").write_bytes(sample)
    return copies * len(sample)


def corpus_seconds(inputs: Path, output: Path, workers: int) -> float:
    command = [
        *[shutil.which("tinybert-data") or "tinybert-data", "corpus", "--input", str(inputs)],
        *["--vocab", str(SHARED_DATA / "vocab" / "bert-base-uncased-vocab.txt")],
        *["--seq_length", str(SEQ), "--output", str(output), "--shards", "4"],
        *["--workers", str(workers), "--quiet"],
    ]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
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
        choices=["readers", "base_step", "corpus"],
        help="parts to leave out",
    )
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, path, model, steps = args.worker
        print(json.dumps(reader_worker(kind, path, model, int(steps))))
        return
    SIZES.update({"0.5M": args.rows, "5M": 10 * args.rows})

    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    print(next((line for line in cpu.splitlines() if "Model name" in line), "CPU: unknown"))
    print(f"cores: {os.cpu_count()}, date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"load average at start: {os.getloadavg()[0]:.1f} (other sessions share the machine)")
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if "readers" not in args.skip or "base_step" not in args.skip:
            folders = records_folders(work)
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
        if "corpus" not in args.skip:
            corpus(work, args.corpus_mb, args.rounds)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


def records_folders(work: Path) -> dict:
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
    times = {1: [], 2: []}
    for round_number in range(rounds):
        for workers in (1, 2) if round_number % 2 == 0 else (2, 1):
            seconds = corpus_seconds(inputs, work / f"corpus_w{workers}", workers)
            times[workers].append(seconds)
            load = os.getloadavg()[0]
            print(f"  round {round_number + 1} workers {workers}: {seconds:.1f} s, load {load:.1f}")
    rates = {w: size / 1e6 / statistics.median(t) for w, t in times.items()}
    print(
        f"corpus throughput: 1 worker {rates[1]:.2f} MB/s, 2 workers {rates[2]:.2f} MB/s, "
        f"speed-up {rates[2] / rates[1]:.2f}x (target >= 1.8x)"
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

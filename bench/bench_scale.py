"""General distillation at corpus scale (issue 16): do memory and the time to the first step stay
bounded as the corpus grows 10x? Parts (`--parts`):

- readers: synthetic corpus records at seq 128 (random ids and lengths, real TFRecord framing, 4
  shards), `--rows` distinct rows (0.5M) and 10x as many (the shards written 10 times over; a
  reader cannot tell), the one-time row-index build timed on each. For each size, in a fresh
  process per reader, alternating for `--rounds` rounds: time from opening the folder to the
  first batch of 32 (the rows' lengths and the epoch's order included), the median time of the
  next batches, peak RSS. Readers: ours (`tinybert_data.open_records`, rows in a random
  permutation, as the trainer reads them) and MindSpore's `TFRecordDataset` with global shuffle.
- trainer: `tinybert-gd` as a user runs it on each size, a tiny random teacher and student, B32
  S128, `--steps` steps: time from the command's start to the end of step 1, a step's time,
  peak RSS; and what share of a step the reading of its batch is.

The records take about 4 GB of disk (`--work DIR` keeps them for the next run).

`--smoke`: 2,000 and 20,000 rows, 3 steps, one round, in a temporary folder: the code runs;
its figures mean nothing.

    python bench/bench_scale.py [--rounds 2] [--parts readers trainer] [--work DIR]
        [--rows 500000] [--steps 20] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from common import (
    in_fresh_process,
    machine,
    measured,
    options,
    random_bert,
    script,
    step_times,
)

from tinybert_core import TEXT_COLUMNS, read_task_info, write_task_info

BATCH, SEQ = 32, 128
PARTS = ["readers", "trainer"]
COLUMNS = list(TEXT_COLUMNS)  # corpus rows: no labels
TINY_TEACHER = dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=4)
TINY_TEACHER.update(intermediate_size=512)
TINY_STUDENT = dict(TINY_TEACHER, hidden_size=64, num_hidden_layers=2, intermediate_size=256)


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
            ids = rng.integers(1000, 30522, (n, SEQ)).astype(np.int32) * mask
            segments = (np.arange(SEQ) >= lengths[:, None] // 2).astype(np.int32) * mask
            writer.write({"input_ids": ids, "segment_ids": segments, "input_mask": mask})


def repeat_records(source: Path, target: Path, times: int) -> None:
    """A records folder whose every shard is `source`'s written `times` times over: the row
    order stays that of interleaved shards, row counts scale by `times`."""
    target.mkdir(parents=True, exist_ok=True)
    task = read_task_info(source)
    for name in task["files"]:
        content = (source / name).read_bytes()
        with open(target / name, "wb") as f:
            for _ in range(times):
                f.write(content)
    schema = json.loads((source / "schema.json").read_text())
    schema["numRows"] *= times
    (target / "schema.json").write_text(json.dumps(schema))
    task["num_rows"] *= times
    write_task_info(target, task)


def records_folders(work: Path, rows: int, rebuild_indexes: bool) -> dict:
    from tinybert_data import write_row_indexes

    sizes = {"1x": rows, "10x": 10 * rows}
    folders = {name: work / f"records_{name}" for name in sizes}
    if not (folders["1x"] / "task.json").is_file():
        started = time.perf_counter()
        write_synthetic(folders["1x"], rows)
        print(f"wrote {rows} rows in {time.perf_counter() - started:.1f} s")
    if not (folders["10x"] / "task.json").is_file():
        repeat_records(folders["1x"], folders["10x"], 10)
    for name, folder in folders.items():
        if not rebuild_indexes and any(folder.glob("*.rowindex")):
            continue
        for index in folder.glob("*.rowindex"):
            index.unlink()  # time the build from nothing
        started = time.perf_counter()
        write_row_indexes(folder)
        seconds = time.perf_counter() - started
        size = sum(f.stat().st_size for f in folder.glob("*.tfrecord")) / 1e9
        print(
            f"{sizes[name]} rows ({size:.2f} GB of records): row indexes built in {seconds:.1f} s "
            f"({1e6 * seconds / sizes[name]:.2f} us/row, once per folder)"
        )
    return folders


def reader_worker(kind: str, path: str, batches: str) -> dict:
    """Open the records, read a first batch, then `batches` more: the times and peak RSS."""
    import mindspore.dataset as ds  # a trainer has it imported before it opens its data
    import numpy as np

    from tinybert_data import open_records

    started = time.perf_counter()
    if kind == "ours":
        records = open_records(path)
        assert len(records.lengths) == records.num_rows  # what length buckets need
        order = np.random.default_rng([1, 0]).permutation(records.num_rows)

        def next_batch(step):
            return records.read(order[step * BATCH : (step + 1) * BATCH], COLUMNS)

    else:
        files = [str(Path(path) / f) for f in read_task_info(path)["files"]]
        dataset = ds.TFRecordDataset(
            files, str(Path(path) / "schema.json"), columns_list=COLUMNS, shuffle=ds.Shuffle.GLOBAL
        ).batch(BATCH, drop_remainder=True)
        iterator = dataset.create_tuple_iterator(output_numpy=True, num_epochs=1)

        def next_batch(step):
            return next(iterator)

    next_batch(0)
    first_batch_s = time.perf_counter() - started
    times = []
    for step in range(1, int(batches) + 1):
        begun = time.perf_counter()
        next_batch(step)
        times.append(time.perf_counter() - begun)
    return {
        "first_batch_s": first_batch_s,
        "batch_s": statistics.median(times),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def alternating(plan: list, rounds: int, measure) -> dict:
    """(kind, size) -> medians over rounds of each figure, measuring the plan forwards, then
    backwards, ..."""
    results = {}
    for round_number in range(rounds):
        for kind, size in plan if round_number % 2 == 0 else plan[::-1]:
            result = measure(kind, size)
            results.setdefault((kind, size), []).append(result)
            load = os.getloadavg()[0]
            print(f"  round {round_number + 1} {kind:9s} {size:4s} load {load:.1f} {result}")
    return {
        key: {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        for key, runs in results.items()
    }


def readers(folders: dict, args) -> dict:
    plan = [(kind, size) for size in folders for kind in ("ours", "mindspore")]
    summary = alternating(
        plan,
        args.rounds,
        lambda kind, size: in_fresh_process(__file__, kind, folders[size], args.steps),
    )
    print("\n| reader | rows | first batch | a batch (median) | peak RSS |\n|---|---|---|---|---|")
    for (kind, size), row in summary.items():
        print(
            f"| {kind} | {size} | {row['first_batch_s']:.2f} s | {1e3 * row['batch_s']:.2f} ms "
            f"| {row['peak_rss_mib']:.0f} MiB |"
        )
    for kind in ("ours", "mindspore"):
        small, large = summary[(kind, "1x")], summary[(kind, "10x")]
        growth = large["peak_rss_mib"] / small["peak_rss_mib"] - 1
        print(
            f"{kind}: peak RSS 1x -> 10x rows {growth:+.1%} (target < 10%), first batch at 10x "
            f"{large['first_batch_s']:.2f} s (target < 10 s)"
        )
    return summary


def trainer(folders: dict, work: Path, args, reading: dict | None) -> dict:
    teacher = random_bert(TINY_TEACHER, work / "tiny_teacher.ckpt")

    def measure(_, size):
        output = work / f"gd_{size}"
        shutil.rmtree(output, ignore_errors=True)
        values = dict(load_teacher_ckpt_path=teacher, data_dir=folders[size])
        values.update(save_ckpt_path=output, train_steps=args.steps, save_ckpt_step=100000)
        values.update({f"bert_student_net_cfg.{k}": v for k, v in TINY_STUDENT.items()})
        values["common_cfg.batch_size"] = BATCH
        result = measured([script("tinybert-gd"), *options(values)], output)
        ((times, _),) = step_times(output / "metrics.jsonl", BATCH).values()
        return dict(first_step_s=result["first_step_s"], step_s=statistics.median(times),
                    peak_rss_mib=result["peak_rss_mb"])  # fmt: skip

    summary = alternating([("tinybert-gd", size) for size in folders], args.rounds, measure)
    print(
        f"\ntinybert-gd, tiny teacher {TINY_TEACHER} and student {TINY_STUDENT}, B{BATCH} "
        f"S{SEQ}, {args.steps} steps, medians over rounds:\n"
        "| rows | start to end of step 1 | a step | peak RSS | reading a batch |\n"
        "|---|---|---|---|---|"
    )
    for (_, size), row in summary.items():
        share = f"{reading[('ours', size)]['batch_s'] / row['step_s']:.1%}" if reading else ""
        print(
            f"| {size} | {row['first_step_s']:.1f} s | {1e3 * row['step_s']:.0f} ms "
            f"| {row['peak_rss_mib']:.0f} MiB | {share} |"
        )
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (default 2)")
    parser.add_argument("--parts", nargs="+", default=PARTS, choices=PARTS)
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    parser.add_argument("--rows", type=int, default=500_000, help="rows of the smaller records")
    parser.add_argument("--steps", type=int, default=20, help="batches read, trainer steps (20)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: runs or not")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(reader_worker(*args.worker)))
        return
    if args.smoke:
        args.rounds, args.rows, args.steps, args.work = 1, 2000, 3, None
    print(f"{machine()}; load average at start {os.getloadavg()[0]:.1f}")
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        # the index build is timed from nothing when the readers are measured
        folders = records_folders(work, args.rows, rebuild_indexes="readers" in args.parts)
        reading = readers(folders, args) if "readers" in args.parts else None
        if "trainer" in args.parts:
            trainer(folders, work, args, reading)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

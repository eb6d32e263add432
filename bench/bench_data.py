"""tinybert-data against the usual way to the same records, and its corpus packing as the input
grows (`nox -s bench -- data`; prints its figures):

1. All of SST-2 train (67,349 rows) to TFRecord at seq_length 64: ours, the `tinybert-data
   task` command, wall time of the whole process (median of 3); the peer, transformers' slow
   (pure-Python) BertTokenizer and the `tfrecord` package's writer, one row at a time, in this
   process. The same token ids must come out of both.
2. `tinybert-data corpus` (seq 128, 4 shards) on 2 and on 20 copies of the shared corpus files,
   with `--workers 1` (the default) and `--workers 2`: MB of text a second (target: 2 workers
   1.8x one) and peak RSS of its largest process, which should stay flat while the input grows
   10x (two copies, not one, as the base: the tokenizer's caches take a few seconds to reach
   their steady size). Both worker counts must write the same rows.

`--smoke`: 500 rows, one run of ours, 1 and 2 copies of the corpus: the code runs; its
figures mean nothing.

    python bench/bench_data.py [--smoke]
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from common import (
    SHARED_DATA,
    SST2_TRAIN,
    UNCASED_VOCAB,
    head_rows,
    machine,
    measured,
    run_script,
    script,
)

from tinybert_data import load_records

CORPUS = sorted((SHARED_DATA / "corpus").iterdir())
SEQ_LENGTH = 64


def peer_sst2(source: Path, output: Path) -> tuple:
    """SST-2 to TFRecord with transformers' slow BertTokenizer, row by row: (seconds, ids)."""
    from tfrecord.writer import TFRecordWriter
    from transformers import BertTokenizer

    start = time.perf_counter()
    tokenizer = BertTokenizer(vocab_file=str(UNCASED_VOCAB), do_lower_case=True)
    writer = TFRecordWriter(str(output))
    all_ids = []
    for line in filter(None, source.read_text(encoding="utf-8").split("\n")[1:]):
        sentence, label = line.split("\t")
        encoded = tokenizer(sentence, max_length=SEQ_LENGTH, truncation=True, padding="max_length")
        writer.write(
            {
                "input_ids": (encoded["input_ids"], "int"),
                "segment_ids": (encoded["token_type_ids"], "int"),
                "input_mask": (encoded["attention_mask"], "int"),
                "label_ids": (int(label), "int"),
            }
        )
        all_ids.append(encoded["input_ids"])
    writer.close()
    return time.perf_counter() - start, np.array(all_ids, np.int32)


def sst2(folder: Path, source: Path, runs: int) -> bool:
    """Part 1; whether both ways wrote the same token ids."""
    seconds = []
    for run in range(runs):  # the machine is shared: the median counts
        started = time.perf_counter()
        run_script(
            "tinybert-data", "task", "--task", "sst2", "--input", source, "--vocab", UNCASED_VOCAB,
            "--seq_length", SEQ_LENGTH, "--output", folder / f"ours{run}", "--quiet",
        )  # fmt: skip
        seconds.append(time.perf_counter() - started)
    ours = sorted(seconds)[len(seconds) // 2]
    ours_ids = load_records(folder / "ours0", columns=["input_ids"])["input_ids"]
    print(
        f"SST-2 train {len(ours_ids)} rows -> TFRecord, tinybert-data CLI (whole process): "
        f"median {ours:.2f} s of {', '.join(f'{s:.2f}' for s in seconds)}"
    )
    peer, peer_ids = peer_sst2(source, folder / "peer.tfrecord")
    same = np.array_equal(ours_ids, peer_ids)
    print(f"  same job, transformers slow BertTokenizer + tfrecord writer: {peer:.2f} s")
    print(f"  speed-up {peer / ours:.1f}x; identical input_ids: {same}")
    return same


def corpus(folder: Path, copies: int) -> bool:
    """Part 2 on `copies` copies of the shared corpus files (each copy a file of its own, so
    documents stay as they are); whether both worker counts wrote the same rows."""
    inputs = folder / f"corpus_x{copies}"
    inputs.mkdir()
    for copy in range(copies):
        for path in CORPUS:
            (inputs / f"{copy:02d}_{path.name}").write_bytes(path.read_bytes())
    megabytes = sum(p.stat().st_size for p in inputs.iterdir()) / 2**20
    for workers in (1, 2):
        output = folder / f"records_x{copies}_w{workers}"
        command = [script("tinybert-data"), "corpus", "--input", str(inputs)]
        command += ["--vocab", str(UNCASED_VOCAB), "--seq_length", "128", "--shards", "4"]
        command += ["--workers", str(workers), "--output", str(output), "--quiet"]
        result = measured(command, folder / f"log_x{copies}_w{workers}")
        print(
            f"corpus x{copies:<2} ({megabytes:5.1f} MiB of text), {workers} worker(s): "
            f"{megabytes / result['seconds']:.2f} MiB/s, peak RSS {result['peak_rss_mb']:.0f} MiB"
        )
    one, two = (load_records(folder / f"records_x{copies}_w{w}", ["input_ids"]) for w in (1, 2))
    return np.array_equal(one["input_ids"], two["input_ids"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny run: runs or not")
    args = parser.parse_args()
    print(f"tinybert-data benchmark, {machine()}")
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        source = head_rows(SST2_TRAIN, 500, folder / "train.tsv") if args.smoke else SST2_TRAIN
        same = sst2(folder, source, 1 if args.smoke else 3)
        same_rows = [corpus(folder, copies) for copies in ((1, 2) if args.smoke else (2, 20))]
        if not same or not all(same_rows):
            raise SystemExit("different rows: SST-2 ours and the peer's, or corpus 1 and 2 workers")


if __name__ == "__main__":
    main()

"""tinybert-data benchmark (run by `nox -s bench -- data`; prints its figures).

1. All of SST-2 train (67,349 rows) to TFRecord at seq_length 64:
   - ours: the `tinybert-data task` command, wall time of the whole process;
   - peer: the same job with transformers' slow (pure-Python) BertTokenizer and the `tfrecord`
     package's writer, one row at a time, measured in this process.
   Both outputs are compared: the same token ids must come out.
2. Streaming: peak memory (max RSS) of `tinybert-data corpus` on 2 and on 20 copies of the
   shared corpus files; it should stay flat while the input grows 10x. (Two copies, not one,
   as the base: the tokenizer's caches take a few seconds to reach their steady size.)
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tinybert_data import load_records

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("TINYBERT_SHARED_DATA", ROOT.parent / "shared" / "data"))
SST2_TRAIN = DATA / "sst2" / "train.tsv"
UNCASED_VOCAB = DATA / "vocab" / "bert-base-uncased-vocab.txt"
CORPUS = sorted((DATA / "corpus").iterdir())
SEQ_LENGTH = 64


# Runs the CLI, then prints its own peak RSS (VmHWM counts only this program, not the parent
# process it was forked from, unlike wait4's ru_maxrss).
CLI_WITH_PEAK_RSS = """
import sys
from tinybert_data.cli import main
code = main(sys.argv[1:])
peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(int(peak.split()[1]) / 1024, file=sys.stderr)
sys.exit(code)
"""


def run_cli(*args: str) -> tuple[float, float]:
    """Run `tinybert-data ARGS` in a fresh process: (wall seconds, peak RSS in MiB)."""
    command = [sys.executable, "-c", CLI_WITH_PEAK_RSS, *args, "--quiet"]
    start = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"failed: tinybert-data {' '.join(args)}\n{done.stderr}")
    return seconds, float(done.stderr.split()[-1])


def ours_sst2(output: Path) -> float:
    seconds, _ = run_cli(
        "task", "--task", "sst2", "--input", str(SST2_TRAIN), "--vocab", str(UNCASED_VOCAB),
        "--seq_length", str(SEQ_LENGTH), "--output", str(output),
    )  # fmt: skip
    return seconds


def peer_sst2(output: Path) -> tuple[float, np.ndarray]:
    """SST-2 train to TFRecord with transformers' slow BertTokenizer, row by row."""
    from tfrecord.writer import TFRecordWriter
    from transformers import BertTokenizer

    start = time.perf_counter()
    tokenizer = BertTokenizer(vocab_file=str(UNCASED_VOCAB), do_lower_case=True)
    writer = TFRecordWriter(str(output))
    all_ids = []
    lines = SST2_TRAIN.read_text(encoding="utf-8").split("\n")[1:]
    for line in filter(None, lines):
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


def corpus_memory(workdir: Path, copies: int) -> tuple[int, float, float]:
    """(input bytes, seconds, peak RSS MiB) of `tinybert-data corpus` on `copies` copies of
    the shared corpus files (each copy a separate file, so documents stay as they are)."""
    inputs = workdir / f"corpus_x{copies}"
    inputs.mkdir()
    for copy in range(copies):
        for path in CORPUS:
            (inputs / f"{copy:02d}_{path.name}").write_bytes(path.read_bytes())
    size = sum(p.stat().st_size for p in inputs.iterdir())
    seconds, rss = run_cli(
        "corpus", "--input", str(inputs), "--vocab", str(UNCASED_VOCAB), "--seq_length", "128",
        "--output", str(workdir / f"records_x{copies}"), "--shards", "4",
    )  # fmt: skip
    return size, seconds, rss


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print(f"tinybert-data benchmark, {os.cpu_count()} CPUs, seq_length {SEQ_LENGTH}")
        # The machine is shared: three runs, the median counts.
        runs = sorted(ours_sst2(tmp / f"ours{run}") for run in range(3))
        ours_seconds = runs[1]
        ours_ids = load_records(tmp / "ours0", columns=["input_ids"])["input_ids"]
        print(
            f"SST-2 train {len(ours_ids)} rows -> TFRecord, tinybert-data CLI (whole process): "
            f"median {ours_seconds:.2f} s of {', '.join(f'{r:.2f}' for r in runs)}"
        )
        peer_seconds, peer_ids = peer_sst2(tmp / "peer.tfrecord")
        print(
            f"  same job, transformers slow BertTokenizer + tfrecord writer: {peer_seconds:.2f} s"
        )
        same = np.array_equal(ours_ids, peer_ids)
        print(f"  speed-up {peer_seconds / ours_seconds:.1f}x; identical input_ids: {same}")
        for copies in (2, 20):
            size, seconds, rss = corpus_memory(tmp, copies)
            print(
                f"corpus x{copies:<2} ({size / 2**20:5.1f} MiB of text) -> seq 128: "
                f"{seconds:.2f} s, peak RSS {rss:.0f} MiB"
            )
        if not same:
            raise SystemExit("the two jobs produced different token ids")


if __name__ == "__main__":
    main()

"""Manual check, not run by CI: TensorFlow reads our TFRecords exactly as tinybert-data does.

    /work/tfvenv/bin/python tests/check_with_tensorflow.py RECORDS_DIR [RECORDS_DIR ...] \
        [--ours /work/venv/bin/python]

RECORDS_DIR is a directory written by `tinybert-data task` or `tinybert-data corpus`. The
records are parsed with `tf.io.parse_single_example`, feature specs built from schema.json,
and compared row by row with `tinybert_data.load_records`, which runs in the interpreter given
by --ours (an environment with tinybert-data; default: this one), so TensorFlow and
tinybert-data need not share an environment.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf

SRC = Path(__file__).parents[1] / "src"
CORE_SRC = Path(__file__).parents[2] / "tinybert-core" / "src"
DUMP = (
    "import sys, numpy, tinybert_data; "
    "numpy.savez(sys.argv[2], **tinybert_data.load_records(sys.argv[1]))"
)


def load_ours(directory: Path, python: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ours.npz"
        env = {"PYTHONPATH": f"{SRC}{os.pathsep}{CORE_SRC}"}
        subprocess.run([python, "-c", DUMP, str(directory), str(out)], check=True, env=env)
        return dict(np.load(out))


def check(directory: Path, python: str) -> None:
    schema = json.loads((directory / "schema.json").read_text())
    spec = {
        name: tf.io.FixedLenFeature(column["shape"], tf.int64)
        for name, column in schema["columns"].items()
    }
    files = [str(directory / f) for f in json.loads((directory / "task.json").read_text())["files"]]
    # Rows go to the shards in turn; interleaving the files one record at a time restores order.
    dataset = tf.data.Dataset.from_tensor_slices(files).interleave(
        tf.data.TFRecordDataset, cycle_length=len(files), block_length=1
    )
    rows = [tf.io.parse_single_example(record, spec) for record in dataset]
    ours = load_ours(directory, python)
    assert len(rows) == schema["numRows"] == len(ours["input_ids"]), (len(rows), schema["numRows"])
    for name in schema["columns"]:
        theirs = np.stack([row[name].numpy() for row in rows])
        np.testing.assert_array_equal(theirs, ours[name], err_msg=name)
    print(f"{directory}: TensorFlow {tf.__version__} reads {len(rows)} rows identical to ours")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directories", nargs="+", type=Path, help="records directories")
    parser.add_argument("--ours", default=sys.executable, help="python that has tinybert-data")
    args = parser.parse_args()
    for directory in args.directories:
        check(directory, args.ours)

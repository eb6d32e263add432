"""The TF1 checkpoint (tensor bundle) reader and writer, checked against files TensorFlow wrote.

The fixtures under fixtures/tf_bert_tiny were written by real TensorFlow (make_tf_fixture.py),
with the values TensorFlow reads back stored in expected.npz, so these tests compare our
reader with TensorFlow's without needing TensorFlow. fixtures/check_with_tensorflow.py is
the other direction (TensorFlow reading what we write); it is run by hand.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from tinybert_model.convert import tf_checkpoint
from tinybert_model.convert.tf_checkpoint import read_tf_checkpoint, write_tf_checkpoint
from tinybert_model.errors import CheckpointError

FIXTURES = Path(__file__).parent / "fixtures"
BERT = FIXTURES / "tf_bert_tiny"
SHARDED = BERT / "sharded"
SINGLE_DATA = "model.ckpt.data-00000-of-00001"


def expected(folder: Path) -> dict[str, np.ndarray]:
    with np.load(folder / "expected.npz") as npz:
        return {name: npz[name] for name in npz.files}


def assert_bit_exact(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert sorted(got) == sorted(want)
    for name, value in want.items():
        value = np.asarray(value)
        assert got[name].dtype == value.dtype.newbyteorder("="), name
        assert got[name].shape == value.shape, name
        assert got[name].tobytes() == np.ascontiguousarray(value, dtype=got[name].dtype).tobytes()


def copy_fixture(folder: Path, tmp_path: Path) -> Path:
    target = tmp_path / folder.name
    shutil.copytree(folder, target, ignore=shutil.ignore_patterns("sharded"))
    return target


def crafted_index(prefix: Path, entries: dict[str, bytes]) -> None:
    """Write an index whose entries are the given raw BundleEntryProto bytes."""
    records = [(b"", tf_checkpoint._encode_header(num_shards=1))]
    records += sorted((name.encode(), value) for name, value in entries.items())
    Path(f"{prefix}.index").write_bytes(tf_checkpoint._build_sstable(records))
    Path(f"{prefix}.data-00000-of-00001").write_bytes(b"\0" * 64)


def entry(dtype_enum: int, shape=(2,), size=8) -> bytes:
    """A BundleEntryProto for ``size`` zero bytes at offset 0 of shard 0."""
    crc = tf_checkpoint._masked_crc32c(b"\0" * size)
    return tf_checkpoint._encode_entry(dtype_enum, shape, 0, 0, size, masked_crc=crc)


# --- Reading what TensorFlow wrote --------------------------------------------------------


@pytest.mark.parametrize("folder", [BERT, SHARDED], ids=["bert", "two_shards"])
def test_reads_tensorflow_fixture_bit_exact(folder):
    assert_bit_exact(read_tf_checkpoint(folder / "model.ckpt"), expected(folder))


def test_bert_fixture_has_googles_names_and_shapes():
    tensors = read_tf_checkpoint(BERT)
    assert len(tensors) == 5 + 2 * 16 + 9 + 1
    assert tensors["bert/embeddings/word_embeddings"].shape == (99, 32)
    assert tensors["bert/encoder/layer_1/intermediate/dense/kernel"].shape == (32, 37)
    assert tensors["bert/encoder/layer_1/output/dense/kernel"].shape == (37, 32)
    assert tensors["cls/seq_relationship/output_weights"].shape == (2, 32)
    assert tensors["global_step"].dtype == np.int64 and tensors["global_step"].shape == ()
    assert all(t.dtype == np.float32 for n, t in tensors.items() if n != "global_step")
    config = json.loads((BERT / "bert_config.json").read_text())
    assert (config["vocab_size"], config["hidden_size"], config["intermediate_size"]) == (
        99,
        32,
        37,
    )
    assert (config["num_hidden_layers"], config["num_attention_heads"]) == (2, 4)


def test_sharded_fixture_spreads_tensors_over_two_data_shards():
    records = tf_checkpoint._read_sstable(str(SHARDED / "model.ckpt.index"))
    num_shards, _ = tf_checkpoint._decode_header(records[0][1], "index")
    shard_ids = {tf_checkpoint._decode_entry(v, k, "index")["shard_id"] for k, v in records[1:]}
    assert num_shards == 2 and shard_ids == {0, 1}
    assert_bit_exact(read_tf_checkpoint(SHARDED), expected(SHARDED))


def test_accepts_prefix_index_file_data_shard_and_directory(tmp_path):
    want = expected(BERT)
    for path in (
        BERT / "model.ckpt",
        str(BERT / "model.ckpt"),
        BERT / "model.ckpt.index",
        BERT / SINGLE_DATA,
        BERT,  # with its "checkpoint" state file
    ):
        assert_bit_exact(read_tf_checkpoint(path), want)
    folder = copy_fixture(BERT, tmp_path)
    (folder / "checkpoint").unlink()  # a directory with exactly one *.index
    assert_bit_exact(read_tf_checkpoint(folder), want)


def test_directory_state_file_with_a_stale_absolute_path(tmp_path):
    folder = copy_fixture(BERT, tmp_path)
    (folder / "checkpoint").write_text('model_checkpoint_path: "/gone/elsewhere/model.ckpt"\n')
    assert_bit_exact(read_tf_checkpoint(folder), expected(BERT))


def test_directory_without_one_clear_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match=r"missing index: no TF checkpoint .* in .*"):
        read_tf_checkpoint(tmp_path)
    write_tf_checkpoint(tmp_path / "a.ckpt", {"x": np.zeros(2)})
    write_tf_checkpoint(tmp_path / "b.ckpt", {"x": np.ones(2)})
    with pytest.raises(CheckpointError, match=r"holds 2 checkpoints \(a\.ckpt\.index, b\.ck"):
        read_tf_checkpoint(tmp_path)
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "b.ckpt"\n')
    assert read_tf_checkpoint(tmp_path)["x"].tolist() == [1.0, 1.0]
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "c.ckpt"\n')
    with pytest.raises(CheckpointError, match=r"names checkpoint 'c\.ckpt'.*c\.ckpt\.index"):
        read_tf_checkpoint(tmp_path)


# --- Writing ------------------------------------------------------------------------------


def test_writer_reproduces_tensorflows_files_byte_for_byte(tmp_path):
    write_tf_checkpoint(tmp_path / "model.ckpt", read_tf_checkpoint(BERT))
    for name in ("model.ckpt.index", SINGLE_DATA):
        assert (tmp_path / name).read_bytes() == (BERT / name).read_bytes(), name
    assert sorted(os.listdir(tmp_path)) == ["model.ckpt.data-00000-of-00001", "model.ckpt.index"]


@pytest.mark.parametrize("folder", [BERT, SHARDED], ids=["bert", "two_shards"])
def test_rewritten_fixture_reads_identically(folder, tmp_path):
    write_tf_checkpoint(tmp_path / "model.ckpt", read_tf_checkpoint(folder))
    assert_bit_exact(read_tf_checkpoint(tmp_path / "model.ckpt"), expected(folder))


@pytest.mark.parametrize(
    "dtype",
    [
        *("float16", "float32", "float64", "complex64", "complex128", "bool"),
        *("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"),
    ],
)
def test_round_trip_every_dtype(dtype, tmp_path):
    rng = np.random.default_rng(0)
    values = rng.normal(size=(3, 4)) * 1000
    if np.dtype(dtype).kind in "iub":  # integers wrap around, as in C
        values = values.astype(np.int64)
    values = values.astype(dtype)
    tensors = {
        "matrix": values,
        "scalar": values[1, 2],
        "empty": np.zeros((0, 5), dtype=dtype),
        "empty_middle": np.zeros((2, 0, 3), dtype=dtype),
        "ones": np.ones((1, 1, 1), dtype=dtype),
    }
    write_tf_checkpoint(tmp_path / "model.ckpt", tensors)
    got = read_tf_checkpoint(tmp_path / "model.ckpt")
    assert_bit_exact(got, tensors)
    assert list(got) == sorted(tensors)


def test_round_trip_special_values_layouts_and_names(tmp_path):
    floats = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40, -1.5, 3e38], dtype=np.float32)
    tensors = {
        "special": floats,
        "nan_payloads": np.array([0x7FC00001, 0xFFFFFFFF], dtype=np.uint32).view(np.float32),
        "big_endian": np.arange(12, dtype=">f8").reshape(3, 4),
        "transposed": np.arange(12, dtype=np.int32).reshape(3, 4).T,
        "strided": np.arange(20, dtype=np.int16)[::3],
        "python_scalar": 7,
        "numpy_scalar": np.float32(2.5),
        "nested_list": [[1.0, 2.0], [3.0, 4.0]],
        "unicode/naïve/日本語": np.array([True, False]),
        "a" * 300: np.zeros(1),
    }
    write_tf_checkpoint(tmp_path / "model.ckpt", tensors)
    got = read_tf_checkpoint(tmp_path / "model.ckpt")
    assert_bit_exact(got, tensors)
    assert got["big_endian"].dtype == np.float64 and got["big_endian"].dtype.isnative
    assert got["python_scalar"].shape == () and got["numpy_scalar"].shape == ()
    assert got["special"].flags.writeable


def test_round_trip_index_of_many_blocks(tmp_path, monkeypatch):
    # Small SSTable blocks so the index block holds many entries with shortened keys.
    monkeypatch.setattr(tf_checkpoint, "_BLOCK_SIZE", 200)
    tensors = read_tf_checkpoint(BERT)
    tensors.update({f"extra/{i:03d}/" + "ÿ" * (i % 3): np.full(i % 4, i) for i in range(300)})
    write_tf_checkpoint(tmp_path / "model.ckpt", tensors)

    index = (tmp_path / "model.ckpt.index").read_bytes()
    _, index_handle = tf_checkpoint._read_footer(index, "index")
    index_block = tf_checkpoint._read_block(index, index_handle, "index")
    assert len(tf_checkpoint._parse_block(index_block, "index")) > 20
    assert_bit_exact(read_tf_checkpoint(tmp_path / "model.ckpt"), tensors)


def test_index_keys_between_blocks():
    # The index key of a block must be >= its last key and < the next block's first key.
    separator, successor = tf_checkpoint._shortest_separator, tf_checkpoint._short_successor
    assert separator(b"bert/encoder/layer_0/a", b"bert/encoder/layer_9") == b"bert/encoder/layer_1"
    assert separator(b"abc", b"abd") == b"abc"  # no room between c and d
    assert separator(b"ab", b"abc") == b"ab"  # a prefix of the limit
    assert separator(b"a\xff\xff", b"b") == b"a\xff\xff"
    assert successor(b"global_step") == b"h" and successor(b"\xff\xffa") == b"\xff\xffb"
    assert successor(b"\xff\xff") == b"\xff\xff"
    rng = np.random.default_rng(1)
    for _ in range(2000):
        a, b = sorted(bytes(rng.integers(0, 256, rng.integers(0, 4)).tolist()) for _ in "ab")
        if a < b:
            assert a <= separator(a, b) < b
        assert successor(a) >= a


def test_overwriting_a_checkpoint(tmp_path):
    write_tf_checkpoint(tmp_path / "model.ckpt", {"a": np.zeros(3), "b": np.ones(2)})
    write_tf_checkpoint(tmp_path / "model.ckpt", {"c": np.arange(4)})
    assert_bit_exact(read_tf_checkpoint(tmp_path / "model.ckpt"), {"c": np.arange(4)})
    assert sorted(os.listdir(tmp_path)) == [SINGLE_DATA, "model.ckpt.index"]


def test_writer_creates_the_parent_directory(tmp_path):
    write_tf_checkpoint(str(tmp_path / "new" / "dir" / "model.ckpt.index"), {"x": np.zeros(1)})
    assert sorted(os.listdir(tmp_path / "new" / "dir")) == [SINGLE_DATA, "model.ckpt.index"]


# --- Bad input: a clear CheckpointError naming the file (and tensor) ----------------------


def test_truncated_data_shard(tmp_path):
    folder = copy_fixture(BERT, tmp_path)
    data = folder / SINGLE_DATA
    data.write_bytes(data.read_bytes()[:-4])
    with pytest.raises(CheckpointError) as error:
        read_tf_checkpoint(folder)
    message = str(error.value)
    assert message.startswith("truncated data shard: ") and str(data) in message
    # TensorFlow stores tensors in key order, so the last one (8 bytes) is the one cut short.
    assert "is 81984 bytes, but tensor 'global_step' is stored at bytes 81980..81988" in message


def test_flipped_byte_in_data_names_the_tensor(tmp_path):
    write_tf_checkpoint(tmp_path / "model.ckpt", {"a": np.zeros(4), "b": np.ones(4)})
    data = tmp_path / SINGLE_DATA
    raw = bytearray(data.read_bytes())
    raw[4 * 8 + 5] ^= 0x10  # inside "b", which follows the 32 bytes of "a"
    data.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=r"checksum mismatch for tensor 'b' in .*data-0"):
        read_tf_checkpoint(tmp_path / "model.ckpt")


def test_flipped_byte_in_tensorflow_data(tmp_path):
    folder = copy_fixture(BERT, tmp_path)
    data = folder / SINGLE_DATA
    raw = bytearray(data.read_bytes())
    raw[0] ^= 0x01
    data.write_bytes(bytes(raw))
    first = sorted(expected(BERT))[0]
    with pytest.raises(CheckpointError, match=f"checksum mismatch for tensor '{first}'"):
        read_tf_checkpoint(folder)


def test_index_that_is_not_an_sstable(tmp_path):
    index = tmp_path / "model.ckpt.index"
    index.write_text("model_checkpoint_path: 'model.ckpt'\n" * 3)
    with pytest.raises(CheckpointError, match=r"model\.ckpt\.index is not a TF checkpoint index"):
        read_tf_checkpoint(index)
    with pytest.raises(CheckpointError, match="bad magic number"):
        read_tf_checkpoint(index)
    index.write_text("too short\n")
    with pytest.raises(CheckpointError, match=r"10 bytes, shorter than the 48-byte table footer"):
        read_tf_checkpoint(index)


def test_flipped_byte_in_index(tmp_path):
    folder = copy_fixture(BERT, tmp_path)
    index = folder / "model.ckpt.index"
    raw = bytearray(index.read_bytes())
    raw[100] ^= 0x01  # inside the one data block
    index.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=r"corrupt index file .*index: checksum mismatch"):
        read_tf_checkpoint(folder)


def test_compressed_index_block(tmp_path):
    # Mark the data block as snappy-compressed, with a valid checksum over the new type byte.
    folder = copy_fixture(BERT, tmp_path)
    index = folder / "model.ckpt.index"
    raw = bytearray(index.read_bytes())
    _, index_handle = tf_checkpoint._read_footer(bytes(raw), "index")
    index_block = tf_checkpoint._read_block(bytes(raw), index_handle, "index")
    (_, handle), *_ = tf_checkpoint._parse_block(index_block, "index")
    (offset, size), _ = tf_checkpoint._decode_block_handle(handle, 0, "index")
    raw[offset + size] = 1
    struct.pack_into(
        "<I", raw, offset + size + 1, tf_checkpoint._masked_crc32c(raw[offset:][: size + 1])
    )
    index.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=r"index: block at offset 0 is compressed \(type 1"):
        read_tf_checkpoint(folder)


def test_missing_data_shard(tmp_path):
    folder = tmp_path / "sharded"
    shutil.copytree(SHARDED, folder)
    shard = folder / "model.ckpt.data-00001-of-00002"
    shard.unlink()
    with pytest.raises(CheckpointError, match=re.escape(f"missing data shard: {shard} does not")):
        read_tf_checkpoint(folder)


def test_missing_index(tmp_path):
    shutil.copy(BERT / SINGLE_DATA, tmp_path)
    message = f"missing index: {tmp_path / 'model.ckpt.index'} does not exist"
    with pytest.raises(CheckpointError, match=re.escape(message)):
        read_tf_checkpoint(tmp_path / "model.ckpt")
    with pytest.raises(CheckpointError, match="missing index: no TF checkpoint"):
        read_tf_checkpoint(tmp_path)


@pytest.mark.parametrize(
    ("dtype_enum", "name"), [(7, "DT_STRING"), (14, "DT_BFLOAT16"), (99, "DataType 99")]
)
def test_unsupported_dtype_names_the_tensor(dtype_enum, name, tmp_path):
    crafted_index(tmp_path / "model.ckpt", {"ok": entry(1), "words": entry(dtype_enum)})
    with pytest.raises(CheckpointError, match=f"tensor 'words' has dtype {name}, which is not sup"):
        read_tf_checkpoint(tmp_path / "model.ckpt")


def test_partitioned_variable_and_inconsistent_entry(tmp_path):
    sliced = entry(1) + b"\x3a\x00"  # field 7 (slices), one empty TensorSliceProto
    crafted_index(tmp_path / "model.ckpt", {"part": sliced})
    with pytest.raises(CheckpointError, match=r"tensor 'part' in .* saved as 1 slices"):
        read_tf_checkpoint(tmp_path / "model.ckpt")
    crafted_index(tmp_path / "model.ckpt", {"w": entry(1, shape=(3,), size=8)})
    with pytest.raises(
        CheckpointError, match=r"tensor 'w' .* 8 bytes .* \(3,\) of float32 needs 12"
    ):
        read_tf_checkpoint(tmp_path / "model.ckpt")


@pytest.mark.parametrize(
    ("tensors", "message"),
    [
        (
            {"ok": np.zeros(3), "bad": np.array([{}, None], dtype=object)},
            "'bad' has numpy dtype object",
        ),
        ({"ok": np.zeros(3), "text": np.array(["a", "b"])}, "'text' has numpy dtype <U1"),
        ({"ok": np.zeros(3), "ragged": [[1, 2], [3]]}, "'ragged' is not an array"),
        ({"": np.zeros(3)}, "tensor names must be non-empty strings"),
        ({3: np.zeros(3)}, "tensor names must be non-empty strings"),
    ],
)
def test_writer_rejects_bad_tensors_and_leaves_nothing(tensors, message, tmp_path):
    with pytest.raises(CheckpointError, match=message) as error:
        write_tf_checkpoint(tmp_path / "out" / "model.ckpt", tensors)
    assert "cannot write checkpoint" in str(error.value) and "model.ckpt" in str(error.value)
    assert os.listdir(tmp_path) == []


def test_failed_write_leaves_nothing_and_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    old = {"old": np.arange(3)}
    write_tf_checkpoint(tmp_path / "model.ckpt", old)
    with pytest.raises(CheckpointError):
        write_tf_checkpoint(tmp_path / "model.ckpt", {"new": np.array([object()])})
    assert_bit_exact(read_tf_checkpoint(tmp_path / "model.ckpt"), old)

    # A failure after the data shard is in place (here: renaming the index) removes it again.
    real_replace = os.replace

    def failing_replace(source, target):
        if str(target).endswith(".index"):
            raise OSError(28, "No space left on device")
        real_replace(source, target)

    monkeypatch.setattr(tf_checkpoint.os, "replace", failing_replace)
    with pytest.raises(CheckpointError, match=r"cannot write checkpoint .*No space left"):
        write_tf_checkpoint(tmp_path / "new" / "model.ckpt", {"x": np.zeros(4)})
    assert os.listdir(tmp_path / "new") == []


def test_writer_refuses_a_directory_as_prefix(tmp_path):
    with pytest.raises(CheckpointError, match="is a directory, not a checkpoint prefix"):
        write_tf_checkpoint(tmp_path, {"x": np.zeros(1)})
    assert os.listdir(tmp_path) == []


def test_module_imports_only_numpy_crc32c_tinybert_core_and_the_standard_library():
    # Converting checkpoints must not need MindSpore (or TensorFlow, or protobuf).
    tree = ast.parse(Path(tf_checkpoint.__file__).read_text(encoding="utf-8"))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom)) and not getattr(node, "level", 0)
        for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module)])
    }
    allowed = {"__future__", "contextlib", "os", "re", "struct", "typing", "uuid"}
    # tinybert_core (atomic writes) depends on nothing
    assert imported <= allowed | {"crc32c", "numpy", "tinybert_core"}, imported

"""Read and write TensorFlow 1 checkpoints (the "tensor bundle" format) without TensorFlow.

A checkpoint saved with prefix ``dir/model.ckpt`` is two kinds of file:

- ``model.ckpt.data-00000-of-00001`` (one file per shard): the raw bytes of every tensor,
  little-endian, back to back, nothing else.
- ``model.ckpt.index``: a LevelDB-style SSTable mapping keys to small protobuf messages.
  The empty key holds a ``BundleHeaderProto`` (number of shards, endianness, version); every
  other key is a tensor name whose ``BundleEntryProto`` says dtype, shape, which shard, the
  byte offset and size there, and a masked crc32c of those bytes.

An SSTable (LevelDB's ``doc/table_format.md``; TensorFlow's copy lives in
``tensorflow/core/lib/io/``) is laid out as::

    [data block 1] ... [data block N] [metaindex block] [index block] [footer: 48 bytes]

Each block is followed by a 5-byte trailer: a compression-type byte (0 = none) and the
masked crc32c of the block plus that byte. The footer holds two block handles (varint
offset + varint size) for the metaindex and the index block, zero padding to 40 bytes, and
the 8-byte magic number. Each index-block entry maps a key that is >= every key of one data
block (and < every key of the next) to that block's handle. The metaindex is empty in
TensorFlow's files (it would list filter blocks, which TensorFlow never writes).

The protobufs are decoded by hand from the wire format, so this module needs nothing but
numpy and the ``crc32c`` package, and never imports TensorFlow or MindSpore.

Public API: :func:`read_tf_checkpoint` and :func:`write_tf_checkpoint`.
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
import uuid
from typing import BinaryIO, Union

import crc32c
import numpy as np

from tinybert_core import remove_stale_temporaries, temporary_prefix

from ..errors import CheckpointError

__all__ = ["read_tf_checkpoint", "write_tf_checkpoint"]

PathLike = Union[str, "os.PathLike[str]"]

# --- Format constants ---------------------------------------------------------------------

# LevelDB's table magic number, stored little-endian in the last 8 bytes of the file.
_TABLE_MAGIC = 0xDB4775248B80FB57
# The footer: two block handles padded to 2 * 20 bytes (a handle is two varint64s, at most
# 10 bytes each), then the 8-byte magic number.
_FOOTER_SIZE = 48
_BLOCK_TRAILER_SIZE = 5  # 1 compression-type byte + 4-byte masked crc32c
_NO_COMPRESSION = 0

# What TensorFlow's table writer uses (table_options.h): blocks of about 256 KiB, a restart
# point every 16 keys in data blocks; the index block restarts at every key, as in LevelDB.
# A BERT-base index (~200 tensors) fits in one data block.
_BLOCK_SIZE = 262144
_DATA_RESTART_INTERVAL = 16
_INDEX_RESTART_INTERVAL = 1

# tensor_bundle.h: kTensorBundleVersion. We write the version TensorFlow writes.
_BUNDLE_VERSION = 1

# DataType enum values from tensorflow/core/framework/types.proto that map onto numpy dtypes.
# These are stored in the data shards as the plain little-endian array bytes.
_NUMPY_DTYPES = {
    1: ("DT_FLOAT", np.dtype(np.float32)),
    2: ("DT_DOUBLE", np.dtype(np.float64)),
    3: ("DT_INT32", np.dtype(np.int32)),
    4: ("DT_UINT8", np.dtype(np.uint8)),
    5: ("DT_INT16", np.dtype(np.int16)),
    6: ("DT_INT8", np.dtype(np.int8)),
    8: ("DT_COMPLEX64", np.dtype(np.complex64)),
    9: ("DT_INT64", np.dtype(np.int64)),
    10: ("DT_BOOL", np.dtype(np.bool_)),
    17: ("DT_UINT16", np.dtype(np.uint16)),
    18: ("DT_COMPLEX128", np.dtype(np.complex128)),
    19: ("DT_HALF", np.dtype(np.float16)),
    22: ("DT_UINT32", np.dtype(np.uint32)),
    23: ("DT_UINT64", np.dtype(np.uint64)),
}
# Types a checkpoint can hold that have no numpy equivalent (or, for strings, a different
# on-disk layout); named so the error message can say which one was found.
_UNSUPPORTED_DTYPES = {
    7: "DT_STRING",
    11: "DT_QINT8",
    12: "DT_QUINT8",
    13: "DT_QINT32",
    14: "DT_BFLOAT16",
    15: "DT_QINT16",
    16: "DT_QUINT16",
    20: "DT_RESOURCE",
    21: "DT_VARIANT",
}
_DTYPE_ENUM_OF_NUMPY = {dtype: enum for enum, (_, dtype) in _NUMPY_DTYPES.items()}
_SUPPORTED = ", ".join(str(dtype) for _, dtype in _NUMPY_DTYPES.values())


# --- Public API ---------------------------------------------------------------------------


def read_tf_checkpoint(path: PathLike) -> dict[str, np.ndarray]:
    """Read every tensor of a TensorFlow checkpoint into numpy arrays.

    ``path`` is the checkpoint prefix (``dir/model.ckpt``), its ``.index`` file, one of its
    data shards, or a directory holding one checkpoint (its ``checkpoint`` state file, if
    present, says which). Returns ``{tensor name: array}`` in the index's (sorted) order,
    each array with the dtype and shape the checkpoint records. Every tensor's crc32c is
    checked. Raises :class:`CheckpointError` for anything missing, corrupt or unsupported.
    """
    prefix = _resolve_prefix(path)
    index_path = prefix + ".index"
    records = _read_sstable(index_path)

    # The header sits under the empty key, which sorts first.
    if not records or records[0][0] != b"":
        raise CheckpointError(f"{index_path}: no bundle header (the entry with the empty key)")
    num_shards, big_endian = _decode_header(records[0][1], index_path)
    shard_paths = [_data_path(prefix, shard, num_shards) for shard in range(num_shards)]
    for shard, shard_path in enumerate(shard_paths):
        if not os.path.isfile(shard_path):
            raise CheckpointError(
                f"missing data shard: {shard_path} does not exist "
                f"(the index {index_path} says the checkpoint has {num_shards} shard(s), "
                f"this is shard {shard})"
            )

    tensors: dict[str, np.ndarray] = {}
    with contextlib.ExitStack() as stack:
        shards = [stack.enter_context(open(p, "rb")) for p in shard_paths]
        for key, value in records[1:]:
            name = key.decode("utf-8", errors="backslashreplace")
            entry = _decode_entry(value, name, index_path)
            tensors[name] = _read_tensor(name, entry, big_endian, shards, shard_paths)
    return tensors


def write_tf_checkpoint(prefix: PathLike, tensors: dict[str, np.ndarray]) -> None:
    """Write ``tensors`` as a single-shard TensorFlow checkpoint at ``prefix``.

    Creates ``<prefix>.index`` and ``<prefix>.data-00000-of-00001`` (and the parent directory
    if needed), laid out exactly as TensorFlow's own writer lays them out, so
    ``tf.train.load_checkpoint(prefix)`` reads every tensor back bit-exact. Values may be any
    array-likes of a dtype listed in ``_NUMPY_DTYPES``. Both files are written under temporary
    names and renamed at the end; if anything fails, nothing is left behind.
    """
    prefix = os.fspath(prefix)
    if prefix.endswith(".index"):
        prefix = prefix[: -len(".index")]
    if not os.path.basename(prefix) or os.path.isdir(prefix):
        raise CheckpointError(
            f"{prefix!r} is a directory, not a checkpoint prefix: pass e.g. "
            f"{os.path.join(prefix, 'model.ckpt')!r}"
        )
    # Validate and convert everything before touching the file system.
    arrays = _prepare_tensors(tensors, prefix)

    data_path = _data_path(prefix, 0, 1)
    index_path = prefix + ".index"
    temporaries: list[str] = []
    finished: list[str] = []
    try:
        os.makedirs(os.path.dirname(prefix) or ".", exist_ok=True)
        remove_stale_temporaries(os.path.dirname(prefix) or ".")
        data_tmp = _temporary_file(data_path, temporaries)
        records = [(b"", _encode_header(num_shards=1))]
        with open(data_tmp, "wb") as data_file:
            offset = 0
            for name, dtype_enum, array in arrays:
                raw = _raw_bytes(array)
                data_file.write(raw)
                entry = _encode_entry(
                    dtype_enum=dtype_enum,
                    shape=array.shape,
                    shard_id=0,
                    offset=offset,
                    size=raw.nbytes,
                    masked_crc=_masked_crc32c(raw),
                )
                records.append((name.encode("utf-8"), entry))
                offset += raw.nbytes
        index_tmp = _temporary_file(index_path, temporaries)
        with open(index_tmp, "wb") as index_file:
            index_file.write(_build_sstable(records))
        # The index goes last: a checkpoint "exists" for readers once its index does.
        for tmp, final in ((data_tmp, data_path), (index_tmp, index_path)):
            os.replace(tmp, final)
            temporaries.remove(tmp)
            finished.append(final)
    except BaseException as error:
        for leftover in temporaries + finished:
            with contextlib.suppress(OSError):
                os.remove(leftover)
        if isinstance(error, OSError):
            raise CheckpointError(f"cannot write checkpoint {prefix}: {error}") from error
        raise


# --- Where the files are -------------------------------------------------------------------


def _resolve_prefix(path: PathLike) -> str:
    """Turn what the user passed (prefix, .index, data shard or directory) into the prefix."""
    path = os.fspath(path)
    if os.path.isdir(path):
        return _prefix_in_directory(path)
    if path.endswith(".index"):
        path = path[: -len(".index")]
    else:
        # Someone passing a data shard means the checkpoint it belongs to.
        path = re.sub(r"\.data-\d{5}-of-\d{5}$", "", path)
    if not os.path.isfile(path + ".index"):
        raise CheckpointError(
            f"missing index: {path}.index does not exist (a TF checkpoint is "
            "<prefix>.index plus <prefix>.data-NNNNN-of-NNNNN; pass the prefix, the .index "
            "file or the directory holding them)"
        )
    return path


def _prefix_in_directory(directory: str) -> str:
    # TensorFlow's Saver records the latest checkpoint in a text-format CheckpointState proto
    # named "checkpoint": `model_checkpoint_path: "model.ckpt-1000"`, relative to the directory
    # or absolute. Absolute paths go stale when a directory is copied, so fall back to the
    # same file name in this directory.
    state_path = os.path.join(directory, "checkpoint")
    if os.path.isfile(state_path):
        with open(state_path, encoding="utf-8", errors="replace") as f:
            match = re.search(r'^model_checkpoint_path:\s*"(.*)"\s*$', f.read(), re.MULTILINE)
        if match:
            recorded = match.group(1)
            candidates = [os.path.join(directory, recorded)]
            if os.path.isabs(recorded):
                candidates.append(os.path.join(directory, os.path.basename(recorded)))
            for prefix in candidates:
                if os.path.isfile(prefix + ".index"):
                    return prefix
            raise CheckpointError(
                f"missing index: {state_path} names checkpoint {recorded!r}, "
                f"but {candidates[-1]}.index does not exist"
            )
    indexes = sorted(name for name in os.listdir(directory) if name.endswith(".index"))
    if len(indexes) == 1:
        return os.path.join(directory, indexes[0][: -len(".index")])
    if not indexes:
        raise CheckpointError(f"missing index: no TF checkpoint (*.index file) in {directory}")
    raise CheckpointError(
        f"{directory} holds {len(indexes)} checkpoints ({', '.join(indexes)}) and no "
        "'checkpoint' state file naming one: pass a prefix such as "
        f"{os.path.join(directory, indexes[-1][: -len('.index')])}"
    )


def _data_path(prefix: str, shard: int, num_shards: int) -> str:
    # tensor_bundle.cc: DataFilename() is "<prefix>.data-%05d-of-%05d".
    return f"{prefix}.data-{shard:05d}-of-{num_shards:05d}"


def _temporary_file(final_path: str, temporaries: list[str]) -> str:
    """Create an empty temporary file beside ``final_path`` (same file system, so the final
    rename is atomic) and remember it for clean-up. Unlike tempfile.mkstemp (always mode
    0600) this honours the umask, so the checkpoint gets the permissions of any new file."""
    folder = os.path.dirname(final_path)
    # A name remove_stale_temporaries recognises once this process is gone.
    tmp = os.path.join(folder, f"{temporary_prefix(final_path)}{uuid.uuid4().hex}.tmp")
    with open(tmp, "xb"):
        pass
    temporaries.append(tmp)
    return tmp


# --- Tensors: BundleEntryProto <-> numpy ----------------------------------------------------


def _read_tensor(
    name: str, entry: dict, big_endian: bool, shards: list[BinaryIO], shard_paths: list[str]
) -> np.ndarray:
    dtype = _numpy_dtype(entry["dtype"], name)
    if big_endian:
        dtype = dtype.newbyteorder(">")
    shard_id, offset, size = entry["shard_id"], entry["offset"], entry["size"]
    if not 0 <= shard_id < len(shards):
        raise CheckpointError(
            f"tensor '{name}': the index puts it in shard {shard_id}, "
            f"but the checkpoint has {len(shards)} shard(s)"
        )
    data_path = shard_paths[shard_id]
    count = int(np.prod(entry["shape"], dtype=np.int64))
    if offset < 0 or size != count * dtype.itemsize:
        raise CheckpointError(
            f"tensor '{name}' in {data_path}: the index says {size} bytes at offset {offset}, "
            f"but shape {tuple(entry['shape'])} of {dtype.name} needs {count * dtype.itemsize}"
        )
    data_file = shards[shard_id]
    file_size = os.fstat(data_file.fileno()).st_size
    if offset + size > file_size:
        raise CheckpointError(
            f"truncated data shard: {data_path} is {file_size} bytes, but tensor '{name}' "
            f"is stored at bytes {offset}..{offset + size}"
        )

    # Read straight into the array's memory: no second copy of a large embedding table.
    array = np.empty(entry["shape"], dtype=dtype)
    raw = _raw_bytes(array)
    data_file.seek(offset)
    if data_file.readinto(raw) != size:
        raise CheckpointError(f"truncated data shard: short read of tensor '{name}' in {data_path}")
    computed = _masked_crc32c(raw)
    if computed != entry["crc32c"]:
        raise CheckpointError(
            f"checksum mismatch for tensor '{name}' in {data_path} (bytes "
            f"{offset}..{offset + size}): stored crc32c 0x{entry['crc32c']:08x}, computed "
            f"0x{computed:08x}; the file is corrupt"
        )
    if big_endian:
        array = array.astype(dtype.newbyteorder("="))
    return array


def _numpy_dtype(dtype_enum: int, name: str) -> np.dtype:
    if dtype_enum in _NUMPY_DTYPES:
        return _NUMPY_DTYPES[dtype_enum][1]
    type_name = _UNSUPPORTED_DTYPES.get(dtype_enum, f"DataType {dtype_enum}")
    raise CheckpointError(
        f"tensor '{name}' has dtype {type_name}, which is not supported "
        f"(supported: {', '.join(n for n, _ in _NUMPY_DTYPES.values())})"
    )


def _prepare_tensors(
    tensors: dict[str, np.ndarray], prefix: str
) -> list[tuple[str, int, np.ndarray]]:
    """Check names and dtypes; return (name, DataType enum, C-contiguous little-endian array)
    sorted the way the SSTable needs its keys: bytewise by UTF-8 name."""
    prepared = []
    for name, value in tensors.items():
        if not isinstance(name, str) or not name:
            raise CheckpointError(
                f"cannot write checkpoint {prefix}: tensor names must be non-empty strings, "
                f"got {name!r}"
            )
        try:
            array = np.asarray(value)
        except ValueError as error:  # e.g. a ragged nested list
            raise CheckpointError(
                f"cannot write checkpoint {prefix}: tensor '{name}' is not an array: {error}"
            ) from error
        # Byte order aside, the dtype must be one TensorFlow has (object arrays, strings,
        # datetimes and structured dtypes are not).
        native = array.dtype.newbyteorder("=") if array.dtype.byteorder != "|" else array.dtype
        if native not in _DTYPE_ENUM_OF_NUMPY:
            raise CheckpointError(
                f"cannot write checkpoint {prefix}: tensor '{name}' has numpy dtype "
                f"{array.dtype}, which a TF checkpoint cannot hold (supported: {_SUPPORTED})"
            )
        # (Not np.ascontiguousarray: it turns a 0-d array into shape (1,).)
        little_endian = np.asarray(array, dtype=native.newbyteorder("<"), order="C")
        prepared.append((name, _DTYPE_ENUM_OF_NUMPY[native], little_endian))
    prepared.sort(key=lambda item: item[0].encode("utf-8"))
    return prepared


def _raw_bytes(array: np.ndarray) -> np.ndarray:
    """The bytes of a C-contiguous array as a writable uint8 view (works for 0-d too)."""
    return array.reshape(-1).view(np.uint8)


def _masked_crc32c(data) -> int:
    # TensorFlow and LevelDB store crc32c "masked" (crc32c.h: rotate right by 15 bits, add a
    # constant), because a crc of data that itself contains crcs is easy to get wrong.
    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


# --- The protobuf messages (tensor_bundle.proto), by field number ---------------------------
#
# BundleHeaderProto: 1 num_shards (int32), 2 endianness (enum: 0 LITTLE, 1 BIG),
#                    3 version (VersionDef: 1 producer, 2 min_consumer, 3 bad_consumers).
# BundleEntryProto:  1 dtype (DataType enum), 2 shape (TensorShapeProto), 3 shard_id (int32),
#                    4 offset (int64), 5 size (int64), 6 crc32c (fixed32, masked),
#                    7 slices (repeated TensorSliceProto; set only for partitioned variables).
# TensorShapeProto:  2 dim (repeated Dim: 1 size (int64), 2 name), 3 unknown_rank (bool).


def _decode_header(data: bytes, index_path: str) -> tuple[int, bool]:
    fields = _decode_message(data, "the bundle header", index_path)
    num_shards = _int_field(fields, 1, "the bundle header", index_path)
    endianness = _int_field(fields, 2, "the bundle header", index_path)
    version = _decode_message(
        _bytes_field(fields, 3, "the bundle header", index_path), "its version", index_path
    )
    min_consumer = _int_field(version, 2, "the bundle header", index_path)
    if min_consumer > _BUNDLE_VERSION:
        raise CheckpointError(
            f"{index_path}: this checkpoint needs a reader of bundle version {min_consumer}; "
            f"this one reads version {_BUNDLE_VERSION}"
        )
    if num_shards < 1 or endianness not in (0, 1):
        raise CheckpointError(
            f"{index_path}: invalid bundle header (num_shards={num_shards}, "
            f"endianness={endianness})"
        )
    return num_shards, endianness == 1


def _decode_entry(data: bytes, name: str, index_path: str) -> dict:
    what = f"the entry of tensor '{name}'"
    fields = _decode_message(data, what, index_path)
    if fields.get(7):
        raise CheckpointError(
            f"tensor '{name}' in {index_path} is saved as {len(fields[7])} slices (a partitioned "
            "variable), which is not supported"
        )
    shape_fields = _decode_message(_bytes_field(fields, 2, what, index_path), what, index_path)
    if _int_field(shape_fields, 3, what, index_path):
        raise CheckpointError(f"tensor '{name}' in {index_path} has unknown rank")
    shape = []
    for dim in shape_fields.get(2, []):
        dim_fields = _decode_message(_as_bytes(dim, what, index_path), what, index_path)
        size = _int_field(dim_fields, 1, what, index_path)
        if size < 0:
            raise CheckpointError(f"tensor '{name}' in {index_path} has an unknown dimension")
        shape.append(size)
    return {
        "dtype": _int_field(fields, 1, what, index_path),
        "shape": tuple(shape),
        "shard_id": _int_field(fields, 3, what, index_path),
        "offset": _int_field(fields, 4, what, index_path),
        "size": _int_field(fields, 5, what, index_path),
        "crc32c": _int_field(fields, 6, what, index_path),
    }


def _encode_header(num_shards: int) -> bytes:
    # Little-endian (0) is the default, and proto3 leaves default values out.
    version = _varint_field(1, _BUNDLE_VERSION)
    return _varint_field(1, num_shards) + _bytes_field_encoded(3, version)


def _encode_entry(
    dtype_enum: int,
    shape: tuple[int, ...],
    shard_id: int,
    offset: int,
    size: int,
    masked_crc: int,
) -> bytes:
    # The shape message is always present (a scalar has an empty one); a Dim of size 0 is an
    # empty Dim message. TensorFlow's C++ serializer writes exactly this.
    shape_proto = b"".join(_bytes_field_encoded(2, _varint_field(1, d)) for d in shape)
    return (
        _varint_field(1, dtype_enum)
        + _bytes_field_encoded(2, shape_proto)
        + _varint_field(3, shard_id)
        + _varint_field(4, offset)
        + _varint_field(5, size)
        + (_key(6, 5) + struct.pack("<I", masked_crc) if masked_crc else b"")
    )


# --- Protobuf wire format --------------------------------------------------------------------
#
# A message is a sequence of (key, value) pairs; key = varint(field_number << 3 | wire_type).
# Wire types: 0 varint, 1 fixed 64-bit, 2 length-delimited (varint length + bytes: strings
# and sub-messages), 5 fixed 32-bit. Varints are little-endian groups of 7 bits with the high
# bit set on every byte but the last; negative int32/int64 are 10-byte two's complement.


def _read_varint(data: bytes, pos: int, what: str, path: str) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise CheckpointError(f"corrupt index file {path}: bad varint in {what}")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, pos


def _decode_message(data: bytes, what: str, path: str) -> dict[int, list]:
    """Decode one message into {field number: [values]}: ints for varint and fixed fields,
    bytes for length-delimited ones. Fields we don't know are kept but ignored."""
    fields: dict[int, list] = {}
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos, what, path)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, pos = _read_varint(data, pos, what, path)
        elif wire_type in (1, 5):
            width = 8 if wire_type == 1 else 4
            if pos + width > len(data):
                raise CheckpointError(f"corrupt index file {path}: {what} is cut short")
            value = int.from_bytes(data[pos : pos + width], "little")
            pos += width
        elif wire_type == 2:
            length, pos = _read_varint(data, pos, what, path)
            if pos + length > len(data):
                raise CheckpointError(f"corrupt index file {path}: {what} is cut short")
            value = bytes(data[pos : pos + length])
            pos += length
        else:  # 3 and 4 are the long-deprecated groups; nothing in a bundle uses them
            raise CheckpointError(f"corrupt index file {path}: wire type {wire_type} in {what}")
        fields.setdefault(number, []).append(value)
    return fields


def _int_field(fields: dict[int, list], number: int, what: str, path: str) -> int:
    """The last value of a scalar field (proto semantics), 0 when absent (proto3 default);
    int64 values >= 2**63 are negative numbers in two's complement."""
    value = fields.get(number, [0])[-1]
    if not isinstance(value, int):
        raise CheckpointError(
            f"corrupt index file {path}: field {number} of {what} is not a number"
        )
    return value - (1 << 64) if value >= 1 << 63 else value


def _bytes_field(fields: dict[int, list], number: int, what: str, path: str) -> bytes:
    return _as_bytes(fields.get(number, [b""])[-1], what, path)


def _as_bytes(value, what: str, path: str) -> bytes:
    if not isinstance(value, bytes):
        raise CheckpointError(f"corrupt index file {path}: expected a sub-message in {what}")
    return value


def _encode_varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # two's complement, as protobuf encodes negative int64
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _key(number: int, wire_type: int) -> bytes:
    return _encode_varint(number << 3 | wire_type)


def _varint_field(number: int, value: int) -> bytes:
    return _key(number, 0) + _encode_varint(value) if value else b""


def _bytes_field_encoded(number: int, value: bytes) -> bytes:
    return _key(number, 2) + _encode_varint(len(value)) + value


# --- SSTable reading -------------------------------------------------------------------------


def _read_sstable(path: str) -> list[tuple[bytes, bytes]]:
    """All (key, value) records of the table at ``path``, in key order."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as error:
        raise CheckpointError(f"cannot read index file {path}: {error}") from error
    _metaindex_handle, index_handle = _read_footer(data, path)
    records: list[tuple[bytes, bytes]] = []
    for _separator, handle in _parse_block(_read_block(data, index_handle, path), path):
        block_handle, _ = _decode_block_handle(handle, 0, path)
        for key, value in _parse_block(_read_block(data, block_handle, path), path):
            if records and key <= records[-1][0]:
                raise CheckpointError(f"corrupt index file {path}: keys are not in sorted order")
            records.append((key, value))
    return records


def _read_footer(data: bytes, path: str) -> tuple[tuple[int, int], tuple[int, int]]:
    if len(data) < _FOOTER_SIZE:
        raise CheckpointError(
            f"{path} is not a TF checkpoint index (an SSTable): it is {len(data)} bytes, "
            f"shorter than the {_FOOTER_SIZE}-byte table footer"
        )
    footer = data[-_FOOTER_SIZE:]
    magic = int.from_bytes(footer[-8:], "little")
    if magic != _TABLE_MAGIC:
        raise CheckpointError(
            f"{path} is not a TF checkpoint index (an SSTable): bad magic number "
            f"0x{magic:016x} at the end of the file, expected 0x{_TABLE_MAGIC:016x}"
        )
    metaindex, pos = _decode_block_handle(footer, 0, path)
    index, _ = _decode_block_handle(footer, pos, path)
    return metaindex, index


def _decode_block_handle(data: bytes, pos: int, path: str) -> tuple[tuple[int, int], int]:
    """A BlockHandle is varint64 offset + varint64 size (size excludes the 5-byte trailer)."""
    offset, pos = _read_varint(data, pos, "a block handle", path)
    size, pos = _read_varint(data, pos, "a block handle", path)
    return (offset, size), pos


def _read_block(data: bytes, handle: tuple[int, int], path: str) -> bytes:
    """The contents of one block, after checking its trailer (compression type and crc)."""
    offset, size = handle
    end = offset + size
    if end + _BLOCK_TRAILER_SIZE > len(data) - _FOOTER_SIZE:
        raise CheckpointError(
            f"corrupt index file {path}: block at {offset} (+{size} bytes) runs past the end "
            "of the file"
        )
    block, compression = data[offset:end], data[end]
    (stored_crc,) = struct.unpack_from("<I", data, end + 1)
    # The crc covers the block contents and the compression-type byte.
    if _masked_crc32c(data[offset : end + 1]) != stored_crc:
        raise CheckpointError(
            f"corrupt index file {path}: checksum mismatch in the block at offset {offset}"
        )
    if compression != _NO_COMPRESSION:
        raise CheckpointError(
            f"{path}: block at offset {offset} is compressed (type {compression}, 1 = snappy), "
            "which TensorFlow never writes for checkpoints and this reader does not support"
        )
    return block


def _parse_block(block: bytes, path: str) -> list[tuple[bytes, bytes]]:
    """Decode a block's prefix-compressed records.

    A block is a run of records, then the restart array (uint32 offsets of records whose
    key is stored whole) and its length (uint32). Each record is varint32 shared (bytes taken
    from the previous key), varint32 non_shared, varint32 value_length, the non-shared key
    bytes and the value. Reading front to back needs the restart points only to know where
    the records end.
    """
    if len(block) < 4:
        raise CheckpointError(f"corrupt index file {path}: a block is shorter than 4 bytes")
    (num_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    records_end = len(block) - 4 - 4 * num_restarts
    if records_end < 0:
        raise CheckpointError(f"corrupt index file {path}: bad restart count in a block")
    records = []
    key = b""
    pos = 0
    while pos < records_end:
        shared, pos = _read_varint(block, pos, "a block record", path)
        non_shared, pos = _read_varint(block, pos, "a block record", path)
        value_length, pos = _read_varint(block, pos, "a block record", path)
        value_start = pos + non_shared
        value_end = value_start + value_length
        if shared > len(key) or value_end > records_end:
            raise CheckpointError(f"corrupt index file {path}: bad record in a block")
        key = key[:shared] + block[pos:value_start]
        records.append((key, block[value_start:value_end]))
        pos = value_end
    return records


# --- SSTable writing -------------------------------------------------------------------------


class _BlockBuilder:
    """Builds one block: records with keys prefix-compressed against the previous key, a
    full key at every ``restart_interval``-th record, then the restart array."""

    def __init__(self, restart_interval: int):
        self.restart_interval = restart_interval
        self.buffer = bytearray()
        self.restarts = [0]  # an empty block still has one restart point, like LevelDB's
        self.count_since_restart = 0
        self.last_key = b""
        self.empty = True

    def add(self, key: bytes, value: bytes) -> None:
        shared = 0
        if self.count_since_restart < self.restart_interval:
            while (
                shared < min(len(key), len(self.last_key)) and key[shared] == self.last_key[shared]
            ):
                shared += 1
        else:
            self.restarts.append(len(self.buffer))
            self.count_since_restart = 0
        self.buffer += _encode_varint(shared) + _encode_varint(len(key) - shared)
        self.buffer += _encode_varint(len(value)) + key[shared:] + value
        self.count_since_restart += 1
        self.last_key = key
        self.empty = False

    def size_estimate(self) -> int:
        return len(self.buffer) + 4 * len(self.restarts) + 4

    def finish(self) -> bytes:
        restarts = b"".join(struct.pack("<I", r) for r in self.restarts)
        return bytes(self.buffer) + restarts + struct.pack("<I", len(self.restarts))


def _build_sstable(records: list[tuple[bytes, bytes]]) -> bytes:
    """An SSTable holding ``records`` (sorted, unique keys), laid out as TensorFlow does."""
    out = bytearray()

    def append_block(builder: _BlockBuilder) -> bytes:
        contents = builder.finish() + bytes([_NO_COMPRESSION])
        handle = _encode_varint(len(out)) + _encode_varint(len(contents) - 1)
        out.extend(contents + struct.pack("<I", _masked_crc32c(contents)))
        return handle

    index = _BlockBuilder(_INDEX_RESTART_INTERVAL)
    block = _BlockBuilder(_DATA_RESTART_INTERVAL)
    pending_handle = None  # a finished data block waiting for its index key
    last_key = b""
    for key, value in records:
        if pending_handle is not None:
            # Now that the next key is known, index the finished block under a short key
            # between its last key and this one (what LevelDB does, so our bytes match TF's).
            index.add(_shortest_separator(last_key, key), pending_handle)
            pending_handle = None
        block.add(key, value)
        last_key = key
        if block.size_estimate() >= _BLOCK_SIZE:
            pending_handle = append_block(block)
            block = _BlockBuilder(_DATA_RESTART_INTERVAL)
    if not block.empty:
        pending_handle = append_block(block)
    if pending_handle is not None:
        index.add(_short_successor(last_key), pending_handle)

    metaindex_handle = append_block(_BlockBuilder(_INDEX_RESTART_INTERVAL))  # no filters
    index_handle = append_block(index)
    footer = (metaindex_handle + index_handle).ljust(_FOOTER_SIZE - 8, b"\0")
    out.extend(footer + struct.pack("<Q", _TABLE_MAGIC))
    return bytes(out)


def _shortest_separator(start: bytes, limit: bytes) -> bytes:
    """A short key k with start <= k < limit: bump the first differing byte of ``start`` if
    that stays below ``limit`` and cut the rest; otherwise ``start`` itself."""
    common = 0
    while common < min(len(start), len(limit)) and start[common] == limit[common]:
        common += 1
    if common < min(len(start), len(limit)):
        byte = start[common]
        if byte < 0xFF and byte + 1 < limit[common]:
            return start[:common] + bytes([byte + 1])
    return start


def _short_successor(key: bytes) -> bytes:
    """A short key >= ``key``: bump its first byte that is not 0xff and cut the rest."""
    for i, byte in enumerate(key):
        if byte != 0xFF:
            return key[:i] + bytes([byte + 1])
    return key

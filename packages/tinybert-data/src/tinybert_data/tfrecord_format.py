"""TFRecord files of `tf.train.Example`s with int64 features, written and read without TensorFlow.

A TFRecord file is a sequence of records, each framed as: length (uint64 little-endian), masked
CRC-32C of the length, the data, masked CRC-32C of the data. Each record's data here is a
serialized `tf.train.Example` whose features are all `int64_list`s.

The protobuf bytes are written and read directly, without protobuf classes: writing
varint-encodes the int64 values of a whole batch at once with numpy and assembles each example
from slices of that buffer and cached headers; reading walks each example's few fields in Python
to find where the values are, then decodes all values of a batch at once with numpy. Both are
several times faster than one protobuf message per row, and need neither TensorFlow nor the
`tfrecord` package (whose import loads torch when torch is installed). Readers check both CRCs.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import crc32c
import numpy as np

from tinybert_data.errors import RecordsError

_CRC_MASK_DELTA = 0xA282EAD8
_LENGTH = struct.Struct("<Q")
_CRC = struct.Struct("<I")


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC-32C: rotate right by 15 bits and add a constant."""
    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _CRC_MASK_DELTA) & 0xFFFFFFFF


def _varint(value: int) -> bytes:
    """Protobuf base-128 varint of a non-negative int."""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _varints(values: np.ndarray) -> tuple[bytes, np.ndarray]:
    """Varint encoding of every int64 in the 2-D `values`, concatenated row after row, and the
    byte length of each row. Negative numbers take 10 bytes (two's complement), as in protobuf."""
    flat = values.astype(np.int64).ravel()
    # Token ids and masks are small and non-negative: 32-bit arithmetic is faster there.
    small = len(flat) == 0 or (flat.min() >= 0 and flat.max() < 2**32)
    unsigned = flat.astype(np.uint32) if small else flat.view(np.uint64)
    largest = int(unsigned.max()) if len(unsigned) else 0
    width = max(1, (largest.bit_length() + 6) // 7)  # bytes of the longest varint
    if width == 1:
        return unsigned.astype(np.uint8).tobytes(), np.full(len(values), values[0].size)
    # Bytes per value: one per 7-bit group, at least one.
    sizes = np.ones(unsigned.shape, np.uint8)
    for k in range(1, width):
        sizes += unsigned >= unsigned.dtype.type(1 << (7 * k))
    # Byte k of every value (low group first, high bit set when more bytes follow), as a
    # [values, width] matrix; keeping the bytes each value really has, in row-major order,
    # concatenates the varints.
    groups = np.empty((len(unsigned), width), np.uint8)
    for k in range(width):
        groups[:, k] = (unsigned >> unsigned.dtype.type(7 * k)).astype(np.uint8) & 0x7F
        groups[:, k] |= (sizes > k + 1).astype(np.uint8) << 7
    out = groups[sizes[:, None] > np.arange(width, dtype=np.uint8)]
    row_bytes = sizes.reshape(values.shape[0], -1).sum(axis=1, dtype=np.int64)
    return out.tobytes(), row_bytes


def _entry_header(key: bytes, packed_length: int) -> bytes:
    """The bytes of one feature-map entry before its packed values: { key (1): name,
    value (2): Feature { int64_list (3): Int64List { value (1): packed values } } }."""
    int64_list = b"\x0a" + _varint(packed_length)
    feature = b"\x1a" + _varint(len(int64_list) + packed_length) + int64_list
    entry = b"\x0a" + _varint(len(key)) + key + b"\x12" + _varint(len(feature) + packed_length)
    entry += feature
    return b"\x0a" + _varint(len(entry) + packed_length) + entry


def _entry_headers(name: str, packed_lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The entry header of every row (concatenated) and its length. A header depends only on
    the byte length of the row's packed values, which takes few distinct values: each distinct
    header is built once, then picked per row."""
    distinct, which = np.unique(packed_lengths, return_inverse=True)
    headers = [_entry_header(name.encode(), int(n)) for n in distinct]
    lengths = np.array([len(h) for h in headers])
    table = np.zeros((len(headers), lengths.max()), np.uint8)
    for i, header in enumerate(headers):
        table[i, : len(header)] = np.frombuffer(header, np.uint8)
    row_lengths = lengths[which]
    return table[which][np.arange(table.shape[1]) < row_lengths[:, None]], row_lengths


def _scatter(source: np.ndarray, lengths: np.ndarray, starts: np.ndarray, out: np.ndarray) -> None:
    """Copy the consecutive pieces of `source` (lengths[i] bytes each) to out[starts[i]:]."""
    offsets = np.arange(len(source)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    out[np.repeat(starts, lengths) + offsets] = source


def framed_examples(columns: dict[str, np.ndarray]) -> tuple[memoryview, list[int]]:
    """Every row as a TFRecord record holding a `tf.train.Example` with one int64_list feature
    per column: the records back to back, and where each one ends.

    A record is: data length (uint64), its masked CRC, data, masked CRC of the data, where
    data = Example { features (1): Features { feature (1): map<string, Feature> } }. All rows
    are laid out at once: each piece (length, headers, values) is scattered into one buffer.
    """
    n = len(next(iter(columns.values())))
    if n == 0:
        return memoryview(b""), []
    pieces = []  # (bytes of all rows, length per row), in their order inside the data
    for name, values in columns.items():
        packed, packed_lengths = _varints(values.reshape(n, -1))
        pieces.append(_entry_headers(name, packed_lengths))
        pieces.append((np.frombuffer(packed, np.uint8), packed_lengths))
    features_length = sum(lengths for _, lengths in pieces)
    features_varint, features_varint_length = _varints(features_length[:, None])
    data_length = 1 + features_varint_length + features_length
    ends = np.cumsum(data_length + 16)
    starts = ends - data_length - 16
    out = np.empty(int(ends[-1]), np.uint8)
    eight, four = np.full(n, 8), np.full(n, 4)
    _scatter(data_length.astype("<u8").view(np.uint8), eight, starts, out)
    out[starts + 12] = 0x0A  # Example.features
    position = starts + 13
    for source, lengths in [
        (np.frombuffer(features_varint, np.uint8), features_varint_length),
        *pieces,
    ]:
        _scatter(source, lengths, position, out)
        position = position + lengths
    # CRCs: the length's from a small cache (few distinct lengths), the data's one by one.
    length_crcs = {}
    for length in np.unique(data_length).tolist():
        length_crcs[length] = masked_crc32c(_LENGTH.pack(length))
    _scatter(
        np.array([length_crcs[d] for d in data_length.tolist()], "<u4").view(np.uint8),
        four,
        starts + 8,
        out,
    )
    buffer = memoryview(out)
    data_crcs = [
        masked_crc32c(buffer[s + 12 : e - 4]) for s, e in zip(starts.tolist(), ends.tolist())
    ]
    _scatter(np.array(data_crcs, "<u4").view(np.uint8), four, ends - 4, out)
    return buffer, ends.tolist()


def iter_records(path) -> Iterator[bytes]:
    """The data of every record of a TFRecord file, CRCs checked."""
    with open(path, "rb") as f:
        index = 0
        while True:
            header = f.read(12)
            if not header:
                return
            if len(header) < 12:
                raise RecordsError(f"{path}: record {index} is cut short (truncated file)")
            length_bytes, (length_crc,) = header[:8], _CRC.unpack(header[8:])
            if masked_crc32c(length_bytes) != length_crc:
                raise RecordsError(f"{path}: record {index} has a corrupt length")
            (length,) = _LENGTH.unpack(length_bytes)
            data = f.read(length)
            crc = f.read(4)
            if len(data) < length or len(crc) < 4:
                raise RecordsError(f"{path}: record {index} is cut short (truncated file)")
            if masked_crc32c(data) != _CRC.unpack(crc)[0]:
                raise RecordsError(f"{path}: record {index} has corrupt data (CRC mismatch)")
            yield data
            index += 1


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """The varint at data[pos:] and the position after it."""
    byte = data[pos]
    if byte < 0x80:  # the common case: one byte
        return byte, pos + 1
    result, shift = byte & 0x7F, 7
    while True:
        pos += 1
        byte = data[pos]
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos + 1
        shift += 7


def _fields(data: bytes, pos: int, end: int) -> list[tuple[int, int, int]]:
    """(field number, start, end) of each field of the message in data[pos:end]; the span of
    a length-delimited field is its payload, of a varint field the varint itself."""
    fields = []
    while pos < end:
        key, pos = _read_varint(data, pos)
        wire_type = key & 7
        if wire_type == 2:  # length-delimited
            length, pos = _read_varint(data, pos)
            start, pos = pos, pos + length
        elif wire_type == 0:  # varint
            start = pos
            _, pos = _read_varint(data, pos)
        elif wire_type in (1, 5):  # fixed 64 / 32 bits
            start, pos = pos, pos + (8 if wire_type == 1 else 4)
        else:
            raise RecordsError(f"unsupported protobuf wire type {wire_type}")
        fields.append((key >> 3, start, pos))
    if pos != end:
        raise RecordsError("malformed tf.train.Example (a field runs past its message)")
    return fields


def feature_ranges(data: bytes) -> dict[str, list[tuple[int, int]]]:
    """Where the varint-encoded int64 values of each feature of one serialized
    `tf.train.Example` are: byte ranges whose concatenation is the values' varints (packed and
    unpacked encodings alike)."""
    return _canonical_feature_ranges(data) or _any_feature_ranges(data)


def _canonical_feature_ranges(data: bytes) -> dict[str, list[tuple[int, int]]] | None:
    """feature_ranges of an Example laid out as protobuf writers (ours, TensorFlow's) lay it
    out: fields in number order, one packed value list per feature. A straight walk, about
    three times faster than the general one; None when the layout is any different."""
    if not data or data[0] != 0x0A:
        return None
    length, pos = _read_varint(data, 1)
    if pos + length != len(data):
        return None
    features = {}
    while pos < len(data):
        if data[pos] != 0x0A:  # map entry
            return None
        length, pos = _read_varint(data, pos + 1)
        entry_end = pos + length
        if data[pos] != 0x0A:  # key
            return None
        length, pos = _read_varint(data, pos + 1)
        name, pos = data[pos : pos + length].decode(), pos + length
        if data[pos] != 0x12:  # value: a Feature
            return None
        _, pos = _read_varint(data, pos + 1)
        if data[pos] != 0x1A:  # its int64_list
            return None
        length, pos = _read_varint(data, pos + 1)
        if length == 0:
            ranges = []
        elif data[pos] != 0x0A:  # packed values
            return None
        else:
            length, pos = _read_varint(data, pos + 1)
            ranges, pos = [(pos, pos + length)], pos + length
        if pos != entry_end:
            return None
        features[name] = ranges
    return features


def _any_feature_ranges(data: bytes) -> dict[str, list[tuple[int, int]]]:
    """feature_ranges for any valid encoding: field order free, unpacked values allowed."""
    features = {}
    for field, start, end in _fields(data, 0, len(data)):
        if field != 1:  # Example.features
            continue
        for _, entry_start, entry_end in _fields(data, start, end):  # Features.feature map
            name, ranges = "", []
            for key, s, e in _fields(data, entry_start, entry_end):
                if key == 1:
                    name = data[s:e].decode()
                elif key == 2:
                    ranges = _int64_ranges(data, s, e, name)
            features[name] = ranges
    return features


def _int64_ranges(data: bytes, start: int, end: int, name: str) -> list[tuple[int, int]]:
    ranges = []
    for kind, s, e in _fields(data, start, end):  # Feature: one of its lists
        if kind != 3:
            other = {1: "bytes_list", 2: "float_list"}.get(kind, f"field {kind}")
            raise RecordsError(f"feature {name!r} is a {other}, not an int64_list")
        ranges.extend((vs, ve) for value_field, vs, ve in _fields(data, s, e) if value_field == 1)
    return ranges


def decode_varints(buffer: bytes) -> np.ndarray:
    """All varints of a buffer as int64 (two's complement for 10-byte negatives)."""
    data = np.frombuffer(buffer, np.uint8)
    if len(data) and data[-1] >= 0x80:
        raise RecordsError("malformed varint (cut short)")
    last = data < 0x80  # the final byte of each varint
    ends = np.flatnonzero(last)
    starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)
    lengths = ends - starts + 1
    shifts = (np.arange(len(data)) - np.repeat(starts, lengths)) * 7
    groups = (data & 0x7F).astype(np.uint64) << shifts.astype(np.uint64)
    if not len(groups):
        return np.zeros(0, np.int64)
    return np.add.reduceat(groups, starts).view(np.int64)


def parse_examples(
    records: list[bytes], first_index: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The int64 features of serialized `tf.train.Example`s, decoded together:
    {name: (all values concatenated, number of values of each record)}.

    Every record must have the same feature names; `first_index` numbers them in errors.
    """
    pieces: dict[str, list[bytes]] = {}
    byte_counts: dict[str, list[int]] = {}
    names = None
    for index, data in enumerate(records, start=first_index):
        features = feature_ranges(data)
        if names is None:
            names = list(features)
            pieces = {n: [] for n in names}
            byte_counts = {n: [] for n in names}
        elif features.keys() != set(names):
            raise RecordsError(
                f"record {index} has columns {sorted(features)}, expected {sorted(names)}"
            )
        for name, ranges in features.items():
            chunk = b"".join(data[s:e] for s, e in ranges)
            pieces[name].append(chunk)
            byte_counts[name].append(len(chunk))
    out = {}
    for name in names or []:
        buffer = b"".join(pieces[name])
        values = decode_varints(buffer)
        # Values per record: varint ends up to each record's last byte.
        ends_so_far = np.concatenate([[0], np.cumsum(np.frombuffer(buffer, np.uint8) < 0x80)])
        record_ends = np.cumsum(byte_counts[name])
        counts = np.diff(np.concatenate([[0], ends_so_far[record_ends]]))
        out[name] = (values, counts)
    return out

"""PyTorch checkpoints (`pytorch_model.bin`) read without torch, and without running them.

A `.bin` file is a pickle, and unpickling calls whatever globals the pickle names: `torch.load`
without `weights_only` runs a downloaded file's code. Here the pickle is read by an Unpickler
that resolves only the names a saved dictionary of tensors uses, each to a function of ours:

    collections.OrderedDict                   the state dict itself
    torch._utils._rebuild_tensor_v2           a tensor: (storage, offset, size, stride, ...)
    torch._utils._rebuild_parameter           an nn.Parameter around such a tensor
    torch._utils._rebuild_parameter_with_state
    torch.FloatStorage, torch.HalfStorage, ... the element type of a storage

Any other global (`os.system`, `builtins.eval`, torch's own `_load_from_bytes`, ...) stops
the read with a CheckpointError naming the file and the global, before anything is called.

The two layouts torch writes:
- zip (torch >= 1.6): `<name>/data.pkl` is the pickle, `<name>/data/<key>` holds storage
  `key`'s raw bytes, `<name>/byteorder` says "little" or "big" (absent: little);
- legacy (`_use_new_zipfile_serialization=False`, and every file torch < 1.6 wrote): in one
  stream, the pickled magic number 0x1950a86a20f9469cfc6c, the protocol version (1001) and
  a dict of system information, then the pickle, then the pickled list of storage keys, then
  for each key in that order its element count (int64, little-endian) and its bytes
  (little-endian). A storage id there may name a view: (root key, offset, size).

A tensor is (storage, element offset, size, stride): it is cut from its storage with those
strides (so transposed and offset views come out as torch gives them) and copied, so tensors
that share one storage (tied embeddings) come out as equal, separate arrays. Every offset,
stride and size is checked against its storage before a byte is read.

dtypes: float32, float16, float64 and the integer types come out as the same numpy dtype, in
native byte order, bit for bit. numpy has no bfloat16: bfloat16 tensors come out as float32,
each value's 16 bits as the upper half of the float32 (what torch's `.float()` does), so
every value is exactly the one stored.
"""

from __future__ import annotations

import _compat_pickle
import io
import math
import pickle
import reprlib
import tarfile
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import NamedTuple

import numpy as np

from tinybert_core import DataError, folder_file, regular_file

from ..config import read_json_object
from ..errors import CheckpointError, name_some

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
BFLOAT16 = "bfloat16"
# torch.<name>Storage -> element type; every one torch's tensor pickles name.
STORAGE_DTYPES = {
    "FloatStorage": "f4",
    "DoubleStorage": "f8",
    "HalfStorage": "f2",
    "BFloat16Storage": BFLOAT16,
    "LongStorage": "i8",
    "IntStorage": "i4",
    "ShortStorage": "i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "b1",
}


class StorageType(NamedTuple):
    """What `torch.FloatStorage` and friends resolve to: a name and an element type."""

    name: str
    dtype: str  # a numpy type code, or "bfloat16"

    @property
    def itemsize(self) -> int:
        return 2 if self.dtype == BFLOAT16 else np.dtype(self.dtype).itemsize


class Storage:
    """One storage of the file: its element type and count, its bytes once they are read.
    A legacy view shares its root's bytes from element `start` on."""

    def __init__(self, key: str, kind: StorageType, numel: int, root=None, start: int = 0):
        self.key, self.kind, self.numel = key, kind, numel
        self.root, self.start = root, start
        self.data: bytes | None = None

    def buffer(self) -> memoryview:
        if self.root is not None:
            begin = self.start * self.kind.itemsize
            return self.root.buffer()[begin : begin + self.numel * self.kind.itemsize]
        return memoryview(self.data)


class TensorView(NamedTuple):
    """A tensor as the pickle describes it; made an array once every storage is read."""

    storage: Storage
    offset: int
    size: tuple
    stride: tuple


# ---- the globals a checkpoint may name ---------------------------------------------------


def _whole_numbers(value, what: str) -> tuple:
    if not isinstance(value, tuple) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value
    ):
        raise CheckpointError(
            f"a tensor's {what} is {reprlib.repr(value)}, not a tuple of whole numbers"
        )
    return value


def rebuild_tensor(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    """torch._utils._rebuild_tensor_v2, as data: the arguments are checked, nothing is built."""
    if not isinstance(storage, Storage):
        raise CheckpointError(f"a tensor's storage is a {type(storage).__name__}, not a storage")
    (offset,) = _whole_numbers((offset,), "offset")
    size, stride = _whole_numbers(size, "size"), _whole_numbers(stride, "stride")
    if len(size) != len(stride):
        raise CheckpointError(f"a tensor has size {size} but stride {stride}")
    return TensorView(storage, offset, size, stride)


def rebuild_parameter(data, requires_grad=False, hooks=None, state=None):
    """torch._utils._rebuild_parameter(_with_state): an nn.Parameter is its tensor here."""
    if not isinstance(data, TensorView):
        raise CheckpointError(f"a parameter holds a {type(data).__name__}, not a tensor")
    return data


ALLOWED = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): rebuild_parameter,
    **{("torch", name): StorageType(name, dtype) for name, dtype in STORAGE_DTYPES.items()},
}


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves the ALLOWED globals only; storages come from `storage_for(persistent id)`."""

    def __init__(self, file, source, storage_for=None):
        super().__init__(file)
        self.source, self.storage_for = source, storage_for

    def find_class(self, module, name):
        found = ALLOWED.get((module, name))
        if found is None:
            # Protocol-2 pickles spell some globals as Python 2 did (builtins.exec is
            # __builtin__.exec): name them as Python 3 would import them.
            module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)
            raise CheckpointError(
                f"{self.source}: refused: the pickle calls {module}.{name}, which a checkpoint "
                "of tensors never needs (loading it could run code; nothing was run)"
            )
        return found

    def persistent_load(self, pid):
        if self.storage_for is None:
            raise CheckpointError(f"{self.source}: a storage where none belongs")
        return self.storage_for(pid)


def _unpickle(stream, source, storage_for=None):
    try:
        return RestrictedUnpickler(stream, source, storage_for).load()
    except CheckpointError as error:
        message = str(error)
        raise CheckpointError(
            message if message.startswith(str(source)) else f"{source}: {message}"
        ) from None
    except Exception as error:  # a damaged pickle raises anything: report it in one line
        raise CheckpointError(
            f"{source}: not a readable PyTorch checkpoint ({type(error).__name__}: {error})"
        ) from None


def _storage_id(pid, length: int) -> tuple:
    """The fields of a storage id: ('storage', type, key, location, numel[, view])."""
    if not (isinstance(pid, tuple) and len(pid) == length and pid[0] in ("storage", b"storage")):
        raise CheckpointError(f"unexpected persistent id {reprlib.repr(pid)}")
    _, kind, key, _location, numel, *view = pid
    if not isinstance(kind, StorageType):
        raise CheckpointError(f"storage type {reprlib.repr(kind)} is not a torch storage type")
    if isinstance(key, bytes):
        key = key.decode("ascii", "replace")
    if not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
        raise CheckpointError(f"storage id {reprlib.repr(pid)} is malformed")
    return kind, key, numel, (view[0] if view else None)


class _Storages:
    """The storages a pickle names, one object per key (shared storages stay shared)."""

    def __init__(self, legacy: bool):
        self.legacy = legacy
        self.by_key: dict = {}
        self.views: dict = {}

    def __call__(self, pid):
        kind, key, numel, view = _storage_id(pid, 6 if self.legacy else 5)
        storage = self.by_key.get(key)
        if storage is None:
            storage = self.by_key[key] = Storage(key, kind, numel)
        elif storage.kind.dtype != kind.dtype or storage.numel != numel:
            raise CheckpointError(
                f"storage {key} is named as {storage.numel} x {storage.kind.name} and as "
                f"{numel} x {kind.name}"
            )
        if view is None:
            return storage
        if not (isinstance(view, tuple) and len(view) == 3):
            raise CheckpointError(f"storage view {reprlib.repr(view)} is malformed")
        view_key, start, length = view
        _whole_numbers((start, length), "storage view")
        if start + length > numel:
            raise CheckpointError(f"storage view {view_key} runs past its storage {key}")
        if view_key not in self.views:
            self.views[view_key] = Storage(str(view_key), kind, length, storage, start)
        return self.views[view_key]


# ---- from a view to an array -------------------------------------------------------------


def _array(name: str, view: TensorView, big_endian: bool) -> np.ndarray:
    kind = view.storage.kind
    raw = "u2" if kind.dtype == BFLOAT16 else kind.dtype
    order = ">" if big_endian and kind.itemsize > 1 else "<"
    flat = np.frombuffer(view.storage.buffer(), dtype=np.dtype(order + raw))
    # Bounds from the bytes actually read, never from numbers in the pickle; and a view with
    # zero strides may not ask for more elements than its storage holds (a few bytes of
    # pickle could otherwise ask for gigabytes).
    count = math.prod(view.size)
    if count:
        last = view.offset + sum((s - 1) * st for s, st in zip(view.size, view.stride))
        if last >= flat.size:
            raise CheckpointError(
                f"tensor {name} (offset {view.offset}, size {view.size}, stride {view.stride}) "
                f"reaches past its storage of {flat.size} elements"
            )
        if count > flat.size:
            raise CheckpointError(
                f"tensor {name} repeats elements of its storage ({count} from {flat.size})"
            )
    strided = np.lib.stride_tricks.as_strided(
        flat[view.offset :] if count else flat[:0],
        shape=view.size,
        strides=tuple(st * flat.itemsize for st in view.stride),
        writeable=False,
    )
    array = np.array(strided, dtype=strided.dtype.newbyteorder("="), order="C")
    if kind.dtype == BFLOAT16:  # bfloat16 is the upper half of a float32
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return array


def _tensors(result, storages: _Storages, big_endian: bool, source) -> dict:
    if not isinstance(result, dict):
        raise CheckpointError(
            f"{source}: holds a {type(result).__name__}, not a dictionary of tensors"
        )
    not_tensors = [
        f"{name} ({type(value).__name__})"
        for name, value in result.items()
        if not (isinstance(name, str) and isinstance(value, TensorView))
    ]
    if not_tensors:
        raise CheckpointError(
            f"{source}: entries that are not named tensors: {name_some(not_tensors)} (a model's "
            "state dict, name -> tensor, is expected)"
        )
    try:
        return {name: _array(name, view, big_endian) for name, view in result.items()}
    except CheckpointError as error:
        raise CheckpointError(f"{source}: {error}") from None
    except Exception as error:  # storages a hostile pickle tampered with
        raise CheckpointError(f"{source}: a tensor cannot be read ({error})") from None


# ---- the two file layouts ----------------------------------------------------------------


def _read_zip(path: Path) -> dict:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n == "data.pkl" or n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise CheckpointError(
                f"{path}: a zip archive with {len(pickles)} data.pkl records; not a PyTorch "
                "checkpoint"
            )
        prefix = pickles[0][: -len("data.pkl")]
        storages = _Storages(legacy=False)
        result = _unpickle(io.BytesIO(archive.read(pickles[0])), path, storages)
        byteorder = b"little"
        if prefix + "byteorder" in names:
            byteorder = archive.read(prefix + "byteorder").strip()
            if byteorder not in (b"little", b"big"):
                raise CheckpointError(f"{path}: unknown byte order {byteorder!r}")
        for key, storage in storages.by_key.items():
            record = f"{prefix}data/{key}"
            expected = storage.numel * storage.kind.itemsize
            try:
                info = archive.getinfo(record)
            except KeyError:
                raise CheckpointError(f"{path}: storage {key} is missing (no {record})") from None
            if info.file_size != expected:
                raise CheckpointError(
                    f"{path}: storage {key} holds {info.file_size} bytes, not the {expected} "
                    f"of {storage.numel} x {storage.kind.name}"
                )
            storage.data = archive.read(record)
    return _tensors(result, storages, byteorder == b"big", path)


def _read_legacy(path: Path) -> dict:
    size = path.stat().st_size
    with open(path, "rb") as stream:
        magic = _unpickle(stream, path)
        if magic != LEGACY_MAGIC:
            raise CheckpointError(f"{path}: not a PyTorch checkpoint (wrong magic number)")
        protocol = _unpickle(stream, path)
        if protocol != LEGACY_PROTOCOL:
            raise CheckpointError(f"{path}: unknown legacy protocol version {protocol!r}")
        _unpickle(stream, path)  # system information: byte order and C type sizes
        storages = _Storages(legacy=True)
        result = _unpickle(stream, path, storages)
        keys = _unpickle(stream, path)
        if not isinstance(keys, list) or sorted(map(str, keys)) != sorted(storages.by_key):
            raise CheckpointError(
                f"{path}: the list of stored storages does not match the ones the tensors use"
            )
        for key in keys:
            storage = storages.by_key[str(key)]
            header = stream.read(8)
            numel = int.from_bytes(header, "little") if len(header) == 8 else -1
            length = storage.numel * storage.kind.itemsize
            if numel != storage.numel or stream.tell() + length > size:
                raise CheckpointError(
                    f"{path}: storage {key} is damaged or cut short (the file is {size} bytes)"
                )
            storage.data = stream.read(length)
    return _tensors(result, storages, False, path)


def _read_file(path: Path) -> dict:
    try:
        regular_file(path)
    except DataError as error:
        raise CheckpointError(str(error)) from None
    with open(path, "rb") as stream:
        head = stream.read(4)
    if head == b"PK\x03\x04":
        try:
            return _read_zip(path)
        except zipfile.BadZipFile as error:
            raise CheckpointError(f"{path}: a damaged zip archive ({error})") from None
    if head[:1] != b"\x80" and tarfile.is_tarfile(path):
        raise CheckpointError(
            f"{path}: a tar-format checkpoint of PyTorch before 0.4, which this reader does not "
            "read: load it with that torch and save it again"
        )
    return _read_legacy(path)


def _read_sharded(index: Path) -> dict:
    """pytorch_model.bin.index.json: {"weight_map": {tensor name: shard file name}}."""
    weight_map = read_json_object(index).get("weight_map")
    if not isinstance(weight_map, dict) or not all(
        isinstance(n, str) and isinstance(f, str) for n, f in weight_map.items()
    ):
        raise CheckpointError(f"{index}: no weight_map of tensor names to shard files")
    tensors: dict = {}
    for shard_name in dict.fromkeys(weight_map.values()):
        # Shards are files beside the index: a name from the file is never a path elsewhere.
        try:
            shard = _read_file(folder_file(index.parent, shard_name, index))
        except DataError as error:
            raise CheckpointError(str(error)) from None
        listed = {n for n, f in weight_map.items() if f == shard_name}
        missing = sorted(listed - set(shard))
        if missing:
            raise CheckpointError(
                f"{index}: {shard_name} lacks tensors the index puts there: {name_some(missing)}"
            )
        twice = sorted(set(shard) & set(tensors))
        if twice:
            raise CheckpointError(f"{index}: tensors in two shards: {name_some(twice)}")
        tensors.update(shard)
    return tensors


def read_torch_checkpoint(path) -> dict:
    """The tensors of a PyTorch checkpoint as numpy arrays, name -> array, in file order.

    `path` is a `pytorch_model.bin` (zip or legacy layout) or the `pytorch_model.bin.index.json`
    of a sharded one. CheckpointError (one line naming the file) for a file that is damaged,
    holds something other than a dictionary of tensors, or names any global outside the
    allow-list; nothing in the file is ever called.
    """
    path = Path(path)
    if path.name.endswith(".json"):
        return _read_sharded(path)
    return _read_file(path)

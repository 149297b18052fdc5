import os
import pickle

import numpy as np
import pytest

from dnr_jax.nn import safe_pickle
from tests import torch_writers


class _Evil:
  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_raises_and_runs_nothing(tmp_path):
  marker = tmp_path / "pwned"
  payload = pickle.dumps({"x": _Evil(marker)}, protocol=2)
  with pytest.raises(safe_pickle.UnsafePickleError, match="system"):
    safe_pickle.load_numpy_pickle(payload)
  assert not marker.exists()


@pytest.mark.parametrize("module,name", [("builtins", "eval"), ("subprocess", "Popen"),
                                         ("numpy", "load"), ("torch", "load")])
def test_every_unlisted_global_is_refused(module, name):
  payload = b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"q\x00."
  with pytest.raises(safe_pickle.UnsafePickleError):
    safe_pickle.load_numpy_pickle(payload)


def test_malicious_main_pickle_in_legacy_torch_stream(tmp_path):
  marker = tmp_path / "pwned"
  good = torch_writers.legacy_torch_bytes({"a": np.zeros(3, np.float32)})
  header_end = 0
  import io
  import pickletools
  f = io.BytesIO(good)
  for _ in range(3):
    list(pickletools.genops(f))
  header_end = f.tell()
  evil = good[:header_end] + pickle.dumps(_Evil(marker), protocol=2)
  with pytest.raises(safe_pickle.UnsafePickleError):
    safe_pickle.load_torch_legacy(evil)
  assert not marker.exists()


def test_legacy_torch_roundtrip():
  state = {"w": np.arange(24, dtype=np.float32).reshape(2, 3, 4),
           "q": np.arange(10, dtype=np.uint8)}
  out = safe_pickle.load_torch_legacy(torch_writers.legacy_torch_bytes(state))
  assert set(out) == {"w", "q"}
  np.testing.assert_array_equal(out["w"], state["w"])
  np.testing.assert_array_equal(out["q"], state["q"])
  assert out["q"].dtype == np.uint8


def test_zip_torch_roundtrip(tmp_path):
  state = {"features.0.weight": np.random.RandomState(0).randn(4, 3, 3, 3).astype(np.float32)}
  p = tmp_path / "m.pth"
  p.write_bytes(torch_writers.zip_torch_bytes(state))
  out = safe_pickle.load_torch_zip(p)
  np.testing.assert_array_equal(out["features.0.weight"], state["features.0.weight"])


def test_numpy_pickle_roundtrip():
  tree = {"VGG16_0": {"Conv_0": {"kernel": np.ones((3, 3, 3, 2), np.float32),
                                 "bias": np.arange(2, dtype=np.float32)}}}
  out = safe_pickle.load_numpy_pickle(pickle.dumps(tree, protocol=4))
  np.testing.assert_array_equal(out["VGG16_0"]["Conv_0"]["bias"], [0, 1])


def test_truncated_legacy_stream_is_an_error():
  data = torch_writers.legacy_torch_bytes({"a": np.zeros(100, np.float32)})
  with pytest.raises(pickle.UnpicklingError):
    safe_pickle.load_torch_legacy(data[:-50])

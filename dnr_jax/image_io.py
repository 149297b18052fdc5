"""Reading and writing images (the only module of the core that touches files).

``load_image`` always returns RGB uint8 (H, W, 3) with the EXIF orientation applied.
Other modes are converted deliberately and the conversion is logged:
- grayscale (L, I, I;16, F): replicated to three channels, 16-bit/float scaled to 0..255;
- palette (P) and CMYK: converted by Pillow;
- alpha (RGBA, LA, PA, P with transparency): composited over white, because the
  network has no notion of transparency and a black matte would invent dark content.
"""

from __future__ import annotations

import os
import pathlib
import tempfile

import numpy as np
from absl import logging
from PIL import Image, ImageOps, UnidentifiedImageError

# block5_pool needs five 2x poolings to leave at least one position.
MIN_SIDE = 32
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm")


class ImageError(Exception):
  """An input image cannot be used (unreadable, too small) or an output cannot be written."""


def to_rgb8(im: Image.Image, name: str = "image") -> np.ndarray:
  """Converts any Pillow image to an RGB uint8 array, logging what was converted."""
  mode = im.mode
  if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
    arr = np.asarray(im, dtype=np.float64)
    hi = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
    arr = np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
    logging.info("%s: %s image scaled from 0..%d to 8-bit RGB", name, mode, int(hi))
    return np.repeat(arr[..., None], 3, axis=-1)
  has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
      mode == "P" and "transparency" in im.info)
  if has_alpha:
    rgba = im.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    im = Image.alpha_composite(white, rgba).convert("RGB")
    logging.info("%s: %s image with alpha composited over white", name, mode)
  elif mode != "RGB":
    logging.info("%s: %s image converted to RGB", name, mode)
    im = im.convert("RGB")
  return np.asarray(im, dtype=np.uint8).copy()


def load_image(path: str | os.PathLike) -> np.ndarray:
  """Loads an image file as RGB uint8 (H, W, 3), EXIF orientation applied."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise ImageError(f"{path}: no such image file")
  try:
    with Image.open(path) as im:
      im.load()
      im = ImageOps.exif_transpose(im)
      arr = to_rgb8(im, str(path))
  except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
    raise ImageError(f"{path}: cannot read image ({e})") from None
  check_size(arr.shape[0], arr.shape[1], str(path))
  return arr


def check_size(height: int, width: int, what: str = "image") -> None:
  if min(height, width) < MIN_SIDE:
    raise ImageError(
        f"{what} is {width}x{height}; VGG19 needs at least {MIN_SIDE} px per side")


def save_image(image: np.ndarray, path: str | os.PathLike,
               protect: tuple[str | os.PathLike, ...] = ()) -> pathlib.Path:
  """Writes an RGB uint8 image atomically (temp file + rename); refuses to overwrite inputs."""
  path = pathlib.Path(path)
  for p in protect:
    if path.exists() and pathlib.Path(p).exists() and path.resolve() == pathlib.Path(p).resolve():
      raise ImageError(f"refusing to overwrite the input image {p}")
  arr = np.asarray(image)
  if arr.dtype != np.uint8:
    arr = np.clip(np.round(arr), 0, 255).astype(np.uint8)
  path.parent.mkdir(parents=True, exist_ok=True)
  fmt = Image.registered_extensions().get(path.suffix.lower())
  if fmt is None:
    raise ImageError(f"{path}: unknown image file extension {path.suffix!r}")
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp_", suffix=path.suffix)
  try:
    with os.fdopen(fd, "wb") as f:
      Image.fromarray(arr).save(f, format=fmt)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual file mode
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise
  return path


def list_images(folder: str | os.PathLike) -> list[pathlib.Path]:
  folder = pathlib.Path(folder)
  return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def sample_image_path() -> pathlib.Path:
  """The bundled sample photograph (see dnr_jax/samples/README.md)."""
  return pathlib.Path(__file__).resolve().parent / "samples" / "coffee.png"

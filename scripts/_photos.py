"""Real photographs nobody here made, from packages that ship them (and the bundled one).

scikit-image: astronaut (NASA, public domain), chelsea (CC0), coffee (CC0; also the
bundled sample), rocket (SpaceX, public domain), motorcycle_left (Middlebury stereo).
scikit-learn: china.jpg and flower.jpg (CC BY 2.0, Flickr).
"""

from __future__ import annotations

import pathlib

import numpy as np
from PIL import Image

from dnr_jax.io import image_io


def _fit(img: np.ndarray, max_side: int) -> np.ndarray:
  h, w = img.shape[:2]
  s = min(1.0, max_side / max(h, w))
  if s == 1.0:
    return img
  return np.asarray(Image.fromarray(img).resize((round(w * s), round(h * s)), Image.LANCZOS))


def package_photos(max_side: int = 640) -> dict[str, np.ndarray]:
  """{name: RGB uint8} for every photo the installed packages ship."""
  photos = {"coffee": image_io.load_image(image_io.sample_image_path())}
  try:
    import skimage.data as skd  # pylint: disable=g-import-not-at-top
    for name in ("astronaut", "chelsea", "rocket"):
      photos[name] = np.asarray(getattr(skd, name)())
    photos["motorcycle"] = np.asarray(skd.stereo_motorcycle()[0])
  except ImportError:
    pass
  try:
    from sklearn.datasets import load_sample_image  # pylint: disable=g-import-not-at-top
    for name in ("china.jpg", "flower.jpg"):
      photos[name.split(".")[0]] = load_sample_image(name)
  except ImportError:
    pass
  return {k: _fit(v[..., :3].astype(np.uint8), max_side) for k, v in photos.items()}


def folder_photos(folder: str, max_side: int = 640) -> dict[str, np.ndarray]:
  return {p.stem: _fit(image_io.load_image(p), max_side)
          for p in image_io.list_images(pathlib.Path(folder))}


def crop_resize(img: np.ndarray, height: int, width: int) -> np.ndarray:
  """``img`` centre-cropped to the aspect ratio of (height, width) and resized to it."""
  h, w = img.shape[:2]
  target = width / height
  if w / h > target:
    cw = round(h * target)
    img = img[:, (w - cw) // 2:(w - cw) // 2 + cw]
  else:
    ch = round(w / target)
    img = img[(h - ch) // 2:(h - ch) // 2 + ch]
  return np.asarray(Image.fromarray(img).resize((width, height), Image.LANCZOS))


def benchmark_photo(height: int = 480, width: int = 640) -> np.ndarray:
  """A real photo at exactly (height, width): the bundled one, centre-cropped and scaled."""
  return crop_resize(image_io.load_image(image_io.sample_image_path()), height, width)

"""Pictures for ``--save_debug`` (paper figures 4, 5 and 9): NumPy in, uint8 RGB out."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw

# A perceptually ordered blue -> yellow ramp (viridis anchor colours).
_ANCHORS = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]],
                    np.float32)


def colormap(x: np.ndarray) -> np.ndarray:
  """Maps values to RGB uint8 with a viridis-like ramp after min-max normalisation."""
  x = np.asarray(x, np.float32)
  lo, hi = np.percentile(x, 1), np.percentile(x, 99)
  t = np.clip((x - lo) / max(hi - lo, 1e-12), 0, 1) * (len(_ANCHORS) - 1)
  i = np.minimum(t.astype(int), len(_ANCHORS) - 2)
  f = (t - i)[..., None]
  return (_ANCHORS[i] * (1 - f) + _ANCHORS[i + 1] * f).astype(np.uint8)


def resize_nearest(img: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
  return np.asarray(Image.fromarray(img).resize((hw[1], hw[0]), Image.NEAREST))


def resize_linear(img: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
  return np.asarray(Image.fromarray(np.asarray(img, np.uint8)).resize((hw[1], hw[0]),
                                                                     Image.BILINEAR))


def _label(img: np.ndarray, text: str) -> np.ndarray:
  im = Image.fromarray(img)
  d = ImageDraw.Draw(im)
  d.rectangle([0, 0, 7 * len(text) + 6, 14], fill=(0, 0, 0))
  d.text((3, 1), text, fill=(255, 255, 255))
  return np.asarray(im)


def panel(images: Sequence[np.ndarray], labels: Sequence[str] | None = None,
          height: int | None = None, gap: int = 4) -> np.ndarray:
  """Side-by-side panel of RGB images scaled to a common height."""
  height = height or max(i.shape[0] for i in images)
  tiles = []
  for k, img in enumerate(images):
    w = max(1, round(img.shape[1] * height / img.shape[0]))
    tile = np.asarray(Image.fromarray(np.asarray(img, np.uint8)).resize((w, height), Image.BILINEAR))
    if labels:
      tile = _label(tile, labels[k])
    tiles.append(tile)
  total = sum(t.shape[1] for t in tiles) + gap * (len(tiles) - 1)
  out = np.full((height, total, 3), 255, np.uint8)
  x = 0
  for t in tiles:
    out[:, x:x + t.shape[1]] = t
    x += t.shape[1] + gap
  return out


def importance_panel(maps: Mapping[str, np.ndarray], image_hw: tuple[int, int],
                     effective: np.ndarray | None = None) -> np.ndarray:
  """Figure 4/9: each layer's Eq. 1 map (upsampled, nearest) and the effective map."""
  tiles, labels = [], []
  for name, m in maps.items():
    tiles.append(resize_nearest(colormap(m), image_hw))
    labels.append(name)
  if effective is not None:
    tiles.append(colormap(effective))
    labels.append("effective")
  return panel(tiles, labels, height=image_hw[0])


def seams_overlay(image: np.ndarray, removed: np.ndarray, colour=(255, 40, 40)) -> np.ndarray:
  """Figure 5: removed positions of a layer drawn over the image (upsampled, nearest)."""
  mask = resize_nearest((np.asarray(removed) * 255).astype(np.uint8), image.shape[:2]) > 127
  out = np.asarray(image, np.uint8).copy()
  out[mask] = (0.35 * out[mask] + 0.65 * np.array(colour)).astype(np.uint8)
  return out


def crop_overlay(image: np.ndarray, span: tuple[int, int], axis: str = "width") -> np.ndarray:
  """The columns (``axis`` "width") or rows outside ``span`` = (start, stop), greyed."""
  out = np.asarray(image, np.uint8).copy()
  view = out if axis == "width" else out.transpose(1, 0, 2)
  start, stop = span
  for sl in (slice(0, max(0, start)), slice(max(0, stop), None)):
    view[:, sl] = (0.3 * view[:, sl] + 0.7 * 128).astype(np.uint8)
  return out


def plot_curve(values: Sequence[float], size=(480, 240), title: str = "") -> np.ndarray:
  """A small log-scale line plot (no matplotlib at run time)."""
  w, h = size
  im = Image.new("RGB", size, (255, 255, 255))
  d = ImageDraw.Draw(im)
  v = np.log10(np.maximum(np.asarray(values, np.float64), 1e-12))
  if len(v) >= 2:
    lo, hi = v.min(), v.max()
    xs = 40 + (w - 50) * np.arange(len(v)) / (len(v) - 1)
    ys = 20 + (h - 40) * (1 - (v - lo) / max(hi - lo, 1e-12))
    d.line(list(zip(xs, ys)), fill=(30, 60, 200), width=2)
    d.text((2, 14), f"{10 ** hi:.3g}", fill=(0, 0, 0))
    d.text((2, h - 26), f"{10 ** lo:.3g}", fill=(0, 0, 0))
  d.text((40, 2), title + " (log scale)", fill=(0, 0, 0))
  return np.asarray(im)

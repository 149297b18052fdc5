"""What the web page asks for, without the page: sizes, masks, the preview, the full
result, the comparisons, the overlays, the report and the download.

One :class:`Engine` per server process keeps the weights and every compiled program
warm; a lock lets one job use the device at a time (the page's queue also runs one
event at a time). Nothing here imports the web framework: tests call it directly.

- The **preview** is the video layer's plan for one frame (:mod:`dnr_jax.video`): Eq. 1
  column importance at 144 px high (cached per photo and axis), the crop window and
  Eq. 3's warp of its cells, sampled with NumPy. No Eq. 4 and no compilation per size,
  so a slider move costs tens of milliseconds once the photo's importance is known.
  Only the axis the aspect changes is content-aware; a free size changing both axes is
  scaled linearly on the other (the full result does both).
- The **full result** is :func:`dnr_jax.retarget` with the server's configuration and
  the painted keep/remove masks; a cancel raises :class:`Cancelled` at the next
  progress report.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import pathlib
import threading
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from dnr_jax import resizing
from dnr_jax.cli import report as report_lib
from dnr_jax.config import RetargetConfig
from dnr_jax.config import VideoConfig
from dnr_jax.io import image_io
from dnr_jax.nn import vgg
from dnr_jax.resizing import baselines
from dnr_jax.video import plan as plan_lib
from dnr_jax.video import saliency

ASPECTS = ("free", "1:1", "4:5", "3:2", "16:9", "9:16")
KEEP_COLOUR, REMOVE_COLOUR = "#00c853", "#ff1744"  # the two brushes
MAX_SHRINK, MAX_GROW = 0.25, 2.0  # the sliders' range (the method's own limits: 2x)


class Cancelled(Exception):
  """The user pressed Cancel: the job stopped at its next progress report."""


def target_hw(in_hw: tuple[int, int], width_pct: float, height_pct: float,
              aspect: str = "free") -> tuple[int, int]:
  """The output (h, w): each side a percentage of the input's, or an aspect ratio
  ``W:H`` reached by changing one side (narrower: the width; wider: the height)."""
  h, w = in_hw
  if aspect and aspect != "free":
    aw, ah = (int(v) for v in aspect.split(":"))
    (oh, ow), _ = plan_lib.content_aware_size((h, w), (ah, aw))
    return oh, ow
  return (max(1, round(h * float(height_pct) / 100.0)),
          max(1, round(w * float(width_pct) / 100.0)))


def _hex(colour: str) -> np.ndarray:
  return np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)], np.float32)


def masks_from_layers(layers: list[np.ndarray], hw: tuple[int, int]
                      ) -> tuple[np.ndarray | None, np.ndarray | None]:
  """(keep, remove) bool (h, w) masks from the editor's painted RGBA layers: a painted
  pixel (alpha > 0) is keep or remove by the nearer of the two brush colours. None
  where nothing was painted."""
  keep = np.zeros(hw, bool)
  remove = np.zeros(hw, bool)
  for layer in layers or []:
    layer = np.asarray(layer)
    if layer.ndim != 3 or layer.shape[-1] != 4:
      continue
    if layer.shape[:2] != tuple(hw):  # the editor's canvas at another scale
      layer = np.asarray(Image.fromarray(layer).resize((hw[1], hw[0]), Image.NEAREST))
    painted = layer[..., 3] > 0
    rgb = layer[..., :3].astype(np.float32)
    near_keep = (np.sum((rgb - _hex(KEEP_COLOUR)) ** 2, -1)
                 < np.sum((rgb - _hex(REMOVE_COLOUR)) ** 2, -1))
    keep |= painted & near_keep
    remove |= painted & ~near_keep
  return (keep if keep.any() else None), (remove if remove.any() else None)


@dataclasses.dataclass
class Outcome:
  """A finished full result, and what the page shows of it."""
  result: resizing.Result
  seconds: float
  summary: str
  report: dict
  overlays: dict[str, np.ndarray]


class Engine:
  """The server's one model: weights, configuration, caches and the device lock."""

  def __init__(self, weights: vgg.VGGWeights, config: RetargetConfig = RetargetConfig(),
               max_pixels: int = image_io.DEFAULT_MAX_PIXELS):
    self.weights, self.config, self.max_pixels = weights, config, max_pixels
    self.preview_config = VideoConfig(batch=1)
    self.lock = threading.Lock()
    self._profiles: collections.OrderedDict = collections.OrderedDict()

  # -------------------------------------------------------------------- inputs

  def load(self, path: str | pathlib.Path) -> np.ndarray:
    """An uploaded file as RGB uint8: the header checked against ``max_pixels`` and the
    method's minimum size before any pixel is decoded (ImageError: one line)."""
    return image_io.load_image(path, self.max_pixels)

  # -------------------------------------------------------------------- preview

  def _profile(self, image: np.ndarray, axis: int) -> np.ndarray:
    key = (hashlib.sha1(np.ascontiguousarray(image).data).hexdigest(), image.shape, axis)
    if key not in self._profiles:
      cfg = self.preview_config
      wk = saliency.work_size(image.shape[:2], cfg.work_height)
      thumb = saliency.thumbnail(image, wk)[None]
      with self.lock:
        prof = saliency.column_profiles(self.weights, jnp.asarray(thumb), cfg.layers, axis,
                                        image.shape[axis])
      self._profiles[key] = np.asarray(prof)
      while len(self._profiles) > 8:
        self._profiles.popitem(last=False)
    return self._profiles[key]

  def preview(self, image: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """The fast plan's picture at ``out_hw`` (see the module docstring)."""
    image = np.asarray(image)[..., :3]
    in_hw = image.shape[:2]
    aspect_hw, axis = plan_lib.content_aware_size(in_hw, out_hw)
    cfg = self.preview_config
    x = image if axis == 1 else np.swapaxes(image, 0, 1)
    length, out_length = in_hw[axis], aspect_hw[axis]
    if out_length < length:
      prof = self._profile(image, axis)
      p = plan_lib.make_plan(in_hw, aspect_hw, 1, [0], np.array([0]), prof, 1.0, cfg)
      widths = shrink_cell_widths(p.cells[0], p.crop, out_length, cfg.min_cell_scale,
                                  cfg.warp_power)
      u = float(p.starts[0]) + warp_coords(widths, p.crop, out_length)
      x = _sample_columns(x, u)
    else:  # enlarging: the preview scales; the full result inserts seams
      x = np.asarray(Image.fromarray(x).resize((out_length, x.shape[0]), Image.BICUBIC))
    out = x if axis == 1 else np.swapaxes(x, 0, 1)
    if out.shape[:2] != tuple(out_hw):
      out = np.asarray(Image.fromarray(np.ascontiguousarray(out)).resize(
          (out_hw[1], out_hw[0]), Image.LANCZOS))
    return np.ascontiguousarray(out)

  # -------------------------------------------------------------------- full result

  def retarget(self, image: np.ndarray, out_hw: tuple[int, int],
               keep: np.ndarray | None = None, remove: np.ndarray | None = None,
               progress: Callable[[str, float], None] | None = None,
               cancel: threading.Event | None = None) -> Outcome:
    """The method itself, masks included. ``progress(phase, fraction)``; ``cancel``
    set: :class:`Cancelled` at the next report. ValueError/KeyInfeasible: the message
    is for the user."""
    image = np.asarray(image)[..., :3]

    def report(phase, done, total, info=None):
      del info
      if cancel is not None and cancel.is_set():
        raise Cancelled
      if progress:
        progress(phase, done / max(total, 1))

    with self.lock:
      if cancel is not None and cancel.is_set():
        raise Cancelled
      t0 = time.perf_counter()
      res = resizing.retarget(self.weights, image, tuple(out_hw), self.config, report,
                              keep=keep, remove=remove)
      seconds = time.perf_counter() - t0
    painted = {k: m for k, m in (("keep", keep), ("remove", remove)) if m is not None}
    panels = report_lib.debug_panels(image, res, painted or None)
    overlays = {k: v for k, v in panels.items()
                if k in ("importance", "seams_width", "seams_height", "masks")}
    rep = self.report(image, res, seconds, keep, remove)
    return Outcome(res, seconds, summary(rep), rep, overlays)

  def report(self, image: np.ndarray, res: resizing.Result, seconds: float,
             keep: np.ndarray | None, remove: np.ndarray | None) -> dict:
    """The JSON report of a full result (the CLI report's decisions and timings)."""
    return {
        "input_size": {"height": image.shape[0], "width": image.shape[1]},
        "output_size": {"height": res.output.shape[0], "width": res.output.shape[1]},
        "work_size": {"height": res.work_hw[0], "width": res.work_hw[1]},
        "operator": res.operator,
        "operator_merits": res.operator_scores,
        "operator_merit_parts": res.operator_features,
        "axis_order": res.axis_order,
        "seams_removed": res.seams_removed,
        "kept_span": {k: list(v) for k, v in res.kept_span.items()},
        "masks": {"keep_pixels": int(keep.sum()) if keep is not None else 0,
                  "remove_pixels": int(remove.sum()) if remove is not None else 0,
                  "kept_pixels_copied": res.keep_held, "removal_axis": res.removal_axis},
        "timings_s": {**{k: round(v, 3) for k, v in res.timings.items()},
                      "total": round(seconds, 3)},
        "device": jax.default_backend(),
        "config": dataclasses.asdict(self.config),
    }

  # -------------------------------------------------------------------- the rest

  @staticmethod
  def compare(image: np.ndarray, out_hw: tuple[int, int]) -> dict[str, np.ndarray]:
    """What people compare with: linear scaling and image-space seam carving."""
    image = np.asarray(image)[..., :3]
    return {"linear scaling": baselines.linear(image, out_hw),
            "seam carving": baselines.seam_carve(image, out_hw)}

  @staticmethod
  def save(output: np.ndarray, source: str | pathlib.Path | None, folder: pathlib.Path,
           name: str) -> pathlib.Path:
    """The download: ``name`` in ``folder``, the source's EXIF and ICC profile kept."""
    meta = image_io.read_metadata(source) if source else {}
    return image_io.save_image(output, folder / name, metadata=meta)


def shrink_cell_widths(mu: np.ndarray, width_in: float, width_out: float, min_scale: float,
                       power: float) -> np.ndarray:
  """NumPy twin of :func:`dnr_jax.ops.column_maps.warp_cell_widths` for shrinking
  (Eq. 3 with the same power and water-filling clip), so that a preview of a new size
  costs no compilation; tests/test_web.py checks that the two agree."""
  mu = np.maximum(np.asarray(mu, np.float64), 1e-6)
  mu = np.maximum((mu / mu.mean()) ** power, 1e-6)
  a = width_in / len(mu)
  base = a / mu.mean()
  lo, hi = -30.0, 30.0
  for _ in range(60):
    m = 0.5 * (lo + hi)
    if np.clip(base * np.exp(m) * mu, min_scale * a, a).sum() > width_out:
      hi = m
    else:
      lo = m
  widths = np.clip(base * np.exp(0.5 * (lo + hi)) * mu, min_scale * a, a)
  return widths * (width_out / widths.sum())


def warp_coords(widths: np.ndarray, num_src: int, w_out: int) -> np.ndarray:
  """NumPy twin of :func:`dnr_jax.ops.column_maps.warp_coords` (no padding)."""
  n = len(widths)
  edges = np.concatenate([[0.0], np.cumsum(widths)])
  edges = edges / edges[-1]
  v = (np.arange(w_out) + 0.5) / w_out
  cell = np.clip(np.searchsorted(edges, v, side="right") - 1, 0, n - 1)
  frac = (v - edges[cell]) / np.maximum(edges[cell + 1] - edges[cell], 1e-12)
  return (cell + np.clip(frac, 0.0, 1.0)) / n * num_src - 0.5


def _sample_columns(x: np.ndarray, u: np.ndarray) -> np.ndarray:
  """(h, w, c) sampled at fractional columns ``u`` (w',), a 3-tap box over each output
  column's footprint where it shrinks (as the video render pass does)."""
  w = x.shape[1]
  step = np.maximum(np.gradient(u) if len(u) > 1 else np.ones_like(u), 1.0)
  xf = x.astype(np.float32)
  acc = np.zeros((x.shape[0], len(u), x.shape[2]), np.float32)
  for k in (-1, 0, 1):
    c = np.clip(u + k * step / 3, 0, w - 1)
    i0 = np.floor(c).astype(int)
    i1 = np.minimum(i0 + 1, w - 1)
    f = (c - i0)[None, :, None]
    acc += xf[:, i0] * (1 - f) + xf[:, i1] * f
  return np.clip(np.round(acc / 3), 0, 255).astype(np.uint8)


def summary(rep: dict) -> str:
  """Which operator won and why, in a few lines of Markdown."""
  o = rep["output_size"]
  lines = [f"**{rep['operator'] or 'operator'}**: {rep['input_size']['width']}x"
           f"{rep['input_size']['height']} -> {o['width']}x{o['height']} in "
           f"{rep['timings_s']['total']:.1f} s ({rep['device']})"]
  if rep["operator_merits"]:
    lines.append("Audition (each candidate's merit under the human-calibrated criterion, "
                 "higher wins; the salient content it squeezes and loses):")
    parts = rep["operator_merit_parts"]
    for k, v in rep["operator_merits"].items():
      why = ", ".join(f"{p} {parts[p][k]:.3f}" for p in ("squeeze", "lost")
                      if k in parts.get(p, {}))
      lines.append(f"- {k}: {v:.3f}" + (f" ({why})" if why else "")
                   + (" **(chosen)**" if k == rep["operator"] else ""))
  work = rep["work_size"]
  crops = [f"{a} {s[0]}-{s[1]} of {work[a]}" for a, s in rep["kept_span"].items()
           if tuple(s) != (0, work[a])]
  if crops:
    lines.append("Cropped (working-size pixels): " + ", ".join(crops))
  if any(rep["seams_removed"].values()):
    lines.append("Seams per layer: " + "; ".join(
        f"{axis}: " + ", ".join(f"{l} {n}" for l, n in per.items())
        for axis, per in rep["seams_removed"].items() if isinstance(per, dict)))
  m = rep["masks"]
  if m["keep_pixels"]:
    held = m["kept_pixels_copied"]
    lines.append(f"Keep mask: {m['keep_pixels']} px painted, "
                 + (f"{100 * held:.1f}% of them copied unchanged" if held is not None
                    else "held"))
  if m["remove_pixels"]:
    lines.append(f"Remove mask: {m['remove_pixels']} px painted, carved along the "
                 f"{m['removal_axis']}")
  return "\n\n".join(lines).replace("\n\n- ", "\n- ")

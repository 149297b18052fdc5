"""Moving other data with an image: points, boxes and label masks through a Result's maps.

Retargeting moves pixels; users who retarget training images must move their
annotations (keypoints, box corners, segmentation labels) the same way. Every run
keeps, per axis, the pixel map of the plan at the working size: the shallow layer's
:class:`~dnr_jax.ops.column_maps.ColumnMap`, i.e. for every output position the source
coordinate ``index0 + weight1 * (index1 - index0)`` along that axis (the width map on
(h, w'), the height map on the transposed width-resized image, as in the plan). A
:class:`MapStage` stores them with the four sizes; object removal has two stages.

- :func:`source_coords` / :func:`map_labels`: output -> input (backward, every output
  pixel gets its source; labels by nearest source pixel).
- :func:`map_points`: input -> output (forward): per row the source coordinates are
  non-decreasing, so a point's output position is their inverse (linear between
  neighbours); a point on a removed seam lands between its neighbours' positions.

At full resolution the maps are the working-size maps scaled, so positions agree with
the rendered output to about one working pixel (``input / work_size`` full pixels).
Host-side NumPy: nothing here compiles.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from dnr_jax.resizing import deep_carving


class MapStage(NamedTuple):
  image_hw: tuple  # full-resolution input (H, W)
  out_hw: tuple  # full-resolution output (H', W')
  work_hw: tuple  # working input (h, w)
  work_out_hw: tuple  # working output (h', w')
  width_src: np.ndarray | None  # (h, w') source column of each output column, per row
  height_src: np.ndarray | None  # (w', h') source row of each output row, per column
  height_first: bool = False  # the height pass came first: height_src is (w, h') and
  # width_src (h', w'), each on the other pass's output

  @classmethod
  def from_plan(cls, sizes, plan, work_out_hw) -> "MapStage":
    """From a :class:`~dnr_jax.resizing.plan.Sizes` and a ``ResizePlan`` (one image)."""

    def coords(axis_plan):
      if axis_plan is None:
        return None
      # the shallow (stride-1) layer's map is the largest one
      cm = max(axis_plan.maps.values(), key=lambda m: np.asarray(m.index0).size)
      i0, i1, t = (np.asarray(a) for a in (cm.index0, cm.index1, cm.weight1))
      # across a removed seam (i1 - i0 > 1) the nearer kept column, never the removed one
      return np.where(i1 - i0 > 1, np.where(t < 0.5, i0, i1), i0 + t * (i1 - i0)).astype(
          np.float32)

    return cls(tuple(sizes.image), tuple(sizes.out), tuple(sizes.work), tuple(work_out_hw),
               coords(plan.width), coords(plan.height), deep_carving.height_first(plan))


def _to(scale_from: int, scale_to: int, x):
  """Pixel-centre coordinates from a size-``scale_from`` axis to a size-``scale_to`` one."""
  return (np.asarray(x, np.float64) + 0.5) * (scale_to / scale_from) - 0.5


def _sample(grid: np.ndarray, r, c) -> np.ndarray:
  """``grid`` (R, C) of source coordinates at float (r, c): the nearest row, and along
  the row linear between neighbours whose sources are adjacent, nearest across a
  removed seam (interpolating there would land on the removed column)."""
  rows, cols = grid.shape
  r = np.clip(np.round(r), 0, rows - 1).astype(np.int64)
  c = np.clip(c, 0, cols - 1)
  c0 = np.floor(c).astype(np.int64)
  c1 = np.minimum(c0 + 1, cols - 1)
  t = c - c0
  v0, v1 = grid[r, c0], grid[r, c1]
  return np.where(v1 - v0 > 1.0, np.where(t < 0.5, v0, v1), v0 + t * (v1 - v0))


def stage_backward(stage: MapStage, x, y) -> tuple[np.ndarray, np.ndarray]:
  """Output (x, y) full-resolution positions -> input positions, for one stage."""
  (H, W), (Ho, Wo) = stage.image_hw, stage.out_hw
  (h, w), (ho, wo) = stage.work_hw, stage.work_out_hw
  xw, yw = _to(Wo, wo, x), _to(Ho, ho, y)
  if stage.height_first:  # the width map (on the height-resized image) was applied last
    xs = _sample(stage.width_src, yw, xw) if stage.width_src is not None else _to(wo, w, xw)
    ym = _sample(stage.height_src, xs, yw) if stage.height_src is not None else _to(ho, h, yw)
    return _to(w, W, xs), _to(h, H, ym)
  # Height map first (it was applied last): rows of the width-resized working image.
  ym = _sample(stage.height_src, xw, yw) if stage.height_src is not None else _to(ho, h, yw)
  xs = _sample(stage.width_src, ym, xw) if stage.width_src is not None else _to(wo, w, xw)
  return _to(w, W, xs), _to(h, H, ym)


def _invert_rows(src: np.ndarray, pos, line) -> np.ndarray:
  """Where positions ``pos`` along each map line ``line`` land: the inverse of the
  non-decreasing source coordinates of that line (linear between outputs)."""
  lines = np.clip(np.round(line), 0, src.shape[0] - 1).astype(np.int64)
  out_axis = np.arange(src.shape[1])
  return np.array([np.interp(p, src[l], out_axis) for p, l in zip(pos, lines)])


def stage_forward(stage: MapStage, x, y) -> tuple[np.ndarray, np.ndarray]:
  """Input (x, y) full-resolution positions -> output positions, for one stage."""
  (H, W), (Ho, Wo) = stage.image_hw, stage.out_hw
  (h, w), (ho, wo) = stage.work_hw, stage.work_out_hw
  xw = np.atleast_1d(_to(W, w, x))
  yw = np.atleast_1d(_to(H, h, y))

  def width(px, py):
    return _invert_rows(stage.width_src, px, py) if stage.width_src is not None else _to(w, wo, px)

  def height(px, py):
    return _invert_rows(stage.height_src, py, px) if stage.height_src is not None else _to(
        h, ho, py)

  if stage.height_first:
    yo = height(xw, yw)
    xo = width(xw, yo)
  else:
    xo = width(xw, yw)
    yo = height(xo, yw)
  return _to(wo, Wo, xo), _to(ho, Ho, yo)


def map_points(result, points_xy) -> np.ndarray:
  """(N, 2) input (x, y) pixel positions (keypoints, box corners) -> output positions."""
  pts = np.asarray(points_xy, np.float64).reshape(-1, 2)
  x, y = pts[:, 0], pts[:, 1]
  for stage in result.stages:
    x, y = stage_forward(stage, x, y)
  return np.stack([x, y], axis=1)


def source_coords(result, rows: slice | None = None) -> np.ndarray:
  """(H', W', 2) input (x, y) of every output pixel (or of the output ``rows``)."""
  last = result.stages[-1]
  Ho, Wo = last.out_hw
  ys = np.arange(Ho)[rows if rows is not None else slice(None)]
  y, x = np.meshgrid(ys.astype(np.float64), np.arange(Wo, dtype=np.float64), indexing="ij")
  for stage in reversed(result.stages):
    x, y = stage_backward(stage, x, y)
  return np.stack([x, y], axis=-1).astype(np.float32)


def map_labels(result, labels, block: int = 256) -> np.ndarray:
  """(H, W) label mask (any dtype) of the input -> (H', W') labels of the output, each
  output pixel taking its nearest source pixel's label (row blocks: bounded memory)."""
  labels = np.asarray(labels)
  H, W = result.stages[0].image_hw
  if labels.shape[:2] != (H, W):
    raise ValueError(f"labels are {labels.shape[1]}x{labels.shape[0]}, the input {W}x{H}")
  Ho, Wo = result.stages[-1].out_hw
  out = np.empty((Ho, Wo) + labels.shape[2:], labels.dtype)
  for start in range(0, Ho, block):
    c = source_coords(result, slice(start, start + block))
    xi = np.clip(np.round(c[..., 0]), 0, W - 1).astype(np.int64)
    yi = np.clip(np.round(c[..., 1]), 0, H - 1).astype(np.int64)
    out[start:start + block] = labels[yi, xi]
  return out

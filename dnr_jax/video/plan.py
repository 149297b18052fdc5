"""The plan of a clip, per shot: a crop window's path and the warp's cells over time.

All in the shrinking axis's input pixels (a clip made taller is planned on its
transpose). Inputs are the column importance profiles of sampled frames
(:mod:`dnr_jax.video.saliency`, Eq. 1 summed over layers as in section 4.1); outputs
are small per-frame arrays, whatever the frame size:

- ``starts`` (T,): the crop window's left edge, fractional (a pan moves sub-pixel);
- ``cells`` (T, n): the importance of the window's n warp cells, smoothed in time, from
  which the render pass computes Eq. 3's cell widths per frame.

Camera: a shot where one window holds ``still_keep`` of the best window's importance on
every sampled frame gets a locked-off camera there (the best over the whole shot);
otherwise the path follows
the best windows through a smoothing least squares (first and second differences, time
scale ``smooth_seconds``) and a speed clamp (``max_speed`` crop widths per second),
like AutoFlip's still / pan / track camera but on Eq. 1's importance.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import sparse
from scipy.sparse import linalg as sparse_linalg

from dnr_jax.config import VideoConfig


@dataclasses.dataclass(frozen=True)
class ClipPlan:
  """Everything the render pass needs: decided once, before any output frame."""
  in_hw: tuple[int, int]  # upright input frames
  out_hw: tuple[int, int]  # the frames written
  axis: int  # 1: the width changes (crop/warp along x); 0: the height (on the transpose)
  aspect_hw: tuple[int, int]  # the content-aware size; out_hw differs: a linear scale after
  crop: int  # crop window length along the axis (the input's length: no crop)
  num_cells: int
  shot_starts: tuple[int, ...]
  starts: np.ndarray  # (T,) float32
  cells: np.ndarray  # (T, num_cells) float32
  still: tuple[bool, ...]  # per shot: a locked-off camera

  @property
  def frames(self) -> int:
    return int(self.starts.shape[0])


def crop_length(length: int, out_length: int, cfg: VideoConfig) -> int:
  """The crop window for a shrink to ``out_length``: the warp takes at most
  ``max_warp``x, the crop the rest; an enlargement warps the whole frame."""
  if out_length >= length:
    return length
  return int(min(length, math.ceil(out_length * cfg.max_warp)))


def window_scores(profile: np.ndarray, crop: int) -> np.ndarray:
  """(len - crop + 1,) importance inside each window start (integer starts)."""
  c = np.concatenate([[0.0], np.cumsum(np.asarray(profile, np.float64))])
  return c[crop:] - c[:-crop]


def _smooth(target: np.ndarray, weight: np.ndarray, lam1: float, lam2: float) -> np.ndarray:
  """argmin_x sum w (x - target)^2 + lam1 |D1 x|^2 + lam2 |D2 x|^2 (banded, small T)."""
  t = len(target)
  if t < 3:
    return target.astype(np.float64)
  d1 = sparse.diags([-np.ones(t - 1), np.ones(t - 1)], [0, 1], shape=(t - 1, t))
  d2 = sparse.diags([np.ones(t - 2), -2 * np.ones(t - 2), np.ones(t - 2)], [0, 1, 2],
                    shape=(t - 2, t))
  a = sparse.diags(weight) + lam1 * (d1.T @ d1) + lam2 * (d2.T @ d2)
  return sparse_linalg.spsolve(a.tocsc(), weight * target)


def _clamp_speed(x: np.ndarray, max_step: float) -> np.ndarray:
  """Limits |x[t+1] - x[t]| by max_step, forward then backward (stays near x)."""
  y = x.copy()
  for t in range(1, len(y)):
    y[t] = np.clip(y[t], y[t - 1] - max_step, y[t - 1] + max_step)
  for t in range(len(y) - 2, -1, -1):
    y[t] = np.clip(y[t], y[t + 1] - max_step, y[t + 1] + max_step)
  return y


def camera_path(sample_t: np.ndarray, profiles: np.ndarray, frames: int, crop: int,
                fps: float, cfg: VideoConfig) -> tuple[np.ndarray, bool]:
  """A shot's crop starts (frames,) from the profiles (S, L) of its sampled frames."""
  length = profiles.shape[1]
  if crop >= length:
    return np.zeros(frames, np.float32), True
  scores = np.stack([window_scores(p, crop) for p in profiles])  # (S, n_starts)
  best = scores.argmax(axis=1).astype(np.float64)
  overall = float(scores.sum(axis=0).argmax())
  kept = scores[:, int(overall)] / np.maximum(scores.max(axis=1), 1e-12)
  if kept.min() >= cfg.still_keep:
    return np.full(frames, overall, np.float32), True
  t = np.arange(frames)
  target = np.interp(t, sample_t, best)
  span = max(1.0, cfg.smooth_seconds * fps)
  x = _smooth(target, np.ones(frames), lam1=span, lam2=span ** 3 / 8.0)
  x = _clamp_speed(x, cfg.max_speed * crop / fps)
  return np.clip(x, 0, length - crop).astype(np.float32), False


def cell_importance(profile: np.ndarray, start: float, crop: int, num_cells: int) -> np.ndarray:
  """(num_cells,) mean importance of the equal cells of the window at ``start``."""
  edges = start + np.linspace(0.0, crop, num_cells + 1)
  c = np.concatenate([[0.0], np.cumsum(profile)])
  at = np.interp(edges, np.arange(len(profile) + 1), c)
  return (np.diff(at) / np.maximum(np.diff(edges), 1e-6)).astype(np.float32)


def _smooth_in_time(values: np.ndarray, sample_t: np.ndarray, sigma: float) -> np.ndarray:
  """Gaussian-weighted mean over the samples (S, n) at their times, sigma in frames."""
  if len(values) < 2 or sigma <= 0:
    return values
  dt = sample_t[:, None] - sample_t[None, :]
  w = np.exp(-0.5 * (dt / sigma) ** 2)
  return (w @ values) / w.sum(axis=1, keepdims=True)


def make_plan(in_hw: tuple[int, int], out_hw: tuple[int, int], frames: int,
              shot_starts: list[int], sample_t: np.ndarray, profiles: np.ndarray,
              fps: float, cfg: VideoConfig) -> ClipPlan:
  """The clip's plan from its shots and the sampled frames' column profiles.

  ``out_hw`` is the final size; the content-aware size ``aspect_hw`` changes one axis
  only (the one whose relative change is larger, the other keeps the input's length
  scaled to the output's aspect), and a linear scale takes it to ``out_hw``.
  ``profiles`` (S, L) are along the changing axis at the input's resolution, sampled
  at frames ``sample_t`` (S,), which hold each shot's first and last frame.
  """
  aspect_hw, axis = content_aware_size(in_hw, out_hw)
  length, out_length = in_hw[axis], aspect_hw[axis]
  ends = list(shot_starts[1:]) + [frames]
  crop = crop_length(length, out_length, cfg)
  num_cells = max(2, round(crop / cfg.grid_cell))
  starts = np.zeros(frames, np.float32)
  cells = np.ones((frames, num_cells), np.float32)
  still = []
  for s0, s1 in zip(shot_starts, ends):
    sel = (sample_t >= s0) & (sample_t < s1)
    ts, ps = sample_t[sel] - s0, profiles[sel]
    path, is_still = camera_path(ts, ps, s1 - s0, crop, fps, cfg)
    starts[s0:s1] = path
    still.append(is_still)
    mu = np.stack([cell_importance(p, float(np.interp(t, np.arange(s1 - s0), path)), crop,
                                   num_cells) for t, p in zip(ts, ps)])
    mu = _smooth_in_time(mu, ts.astype(np.float64), cfg.smooth_seconds * fps / 2)
    for j in range(num_cells):
      cells[s0:s1, j] = np.interp(np.arange(s1 - s0), ts, mu[:, j])
  return ClipPlan(tuple(in_hw), tuple(out_hw), axis, aspect_hw, crop, num_cells,
                  tuple(shot_starts), starts, cells, tuple(still))


def content_aware_size(in_hw: tuple[int, int], out_hw: tuple[int, int]
                       ) -> tuple[tuple[int, int], int]:
  """(size, axis): the output's aspect reached by changing one axis of the input.

  A narrower aspect changes the width (axis 1), a wider one the height (axis 0); the
  other axis keeps the input's length. Equal aspects: the width, unchanged.
  """
  (h, w), (oh, ow) = in_hw, out_hw
  if ow * h <= oh * w:  # narrower (or equal): the width shrinks to h * ow / oh
    return (h, max(1, round(h * ow / oh))), 1
  return (max(1, round(w * oh / ow)), w), 0


def samples_of_shot(s0: int, s1: int, every: int) -> list[int]:
  """The sampled frames of a shot [s0, s1): every ``every``-th and its last."""
  t = list(range(s0, s1, every))
  if t[-1] != s1 - 1:
    t.append(s1 - 1)
  return t

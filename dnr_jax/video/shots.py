"""Shot (cut) detection from small colour histograms of every frame.

A hard cut changes the colour distribution of the whole frame at once, a pan or a
moving subject changes it a little per frame. The distance between consecutive frames'
histograms is compared with a fixed floor and with the clip's own recent motion (an
adaptive threshold: a fast handheld shot has large distances everywhere, a cut stands
out of its neighbours).
"""

from __future__ import annotations

import numpy as np

BINS = 8  # per channel: 512-bin joint RGB histogram


def signature(image: np.ndarray) -> np.ndarray:
  """(BINS**3,) float32 normalised joint RGB histogram of a frame (every 4th pixel)."""
  rgb = np.asarray(image)[::4, ::4, :3].astype(np.int32) * BINS // 256
  codes = (rgb[..., 0] * BINS + rgb[..., 1]) * BINS + rgb[..., 2]
  hist = np.bincount(codes.ravel(), minlength=BINS ** 3).astype(np.float32)
  return hist / max(1.0, hist.sum())


FLOOR = 0.3  # a histogram distance below this is never a cut


def distance(a: np.ndarray, b: np.ndarray) -> float:
  """Half the L1 distance of two frames' signatures, in [0, 1]."""
  return 0.5 * float(np.abs(np.asarray(a) - np.asarray(b)).sum())


def distances(signatures: np.ndarray) -> np.ndarray:
  """(T,) each frame's :func:`distance` to the previous one (0 for the first frame)."""
  s = np.asarray(signatures, np.float32)
  d = np.zeros(len(s), np.float32)
  if len(s) > 1:
    d[1:] = 0.5 * np.abs(np.diff(s, axis=0)).sum(axis=1)
  return d


def shot_starts(d: np.ndarray, floor: float = FLOOR, contrast: float = 3.0,
                window: int = 12, min_length: int = 6) -> list[int]:
  """The first frame of each shot (always 0).

  A cut at t: d[t] above ``floor`` and above ``contrast`` times the median distance of
  the ``window`` frames either side (t excluded), and at least ``min_length`` frames
  after the previous cut (a flash or a dissolve is not a shot per frame).
  ``d`` (T,): :func:`distances` (a clip's plan pass keeps only these, 4 bytes a frame).
  """
  d = np.asarray(d, np.float32)
  starts = [0]
  for t in range(1, len(d)):
    around = np.concatenate([d[max(1, t - window):t], d[t + 1:t + 1 + window]])
    local = float(np.median(around)) if around.size else 0.0
    if d[t] > floor and d[t] > contrast * local and t - starts[-1] >= min_length:
      starts.append(t)
  return starts

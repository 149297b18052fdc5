"""Which source column each output column shows: a monotone alignment per row band.

Every width-only retargeting people compare with (crop, seam carving, warps, shift-maps,
the multi-operator, dnr itself) is close to a per-row monotone column map: output column
``i`` of row ``y`` shows source column ``x(y, i)`` with ``x`` increasing in ``i``. This
module recovers that map from the two images alone, so that any method's output can be
measured the same way (``quality.human``): what was cut at the borders, where content
was squeezed or removed, where vertical structure was sheared.

The images are shrunk by area averaging so that the source is ``width`` columns wide
(the alignment is coarse on purpose: warps and seams blend neighbouring columns) and cut
into ``bands`` horizontal bands. Per band, the descriptor of a column is its pixels (RGB
in 0..1 and the vertical gradient), and dynamic programming finds the strictly increasing
source column for each output column that minimises the summed squared descriptor
distance, plus ``skip_cost`` per source column skipped between two matched ones (a tie
breaker for flat regions: it prefers the contiguous explanation). Skipping at the two
borders is free, so a crop is explained exactly.

Height-only changes are aligned on the transposed images. Enlarging is not aligned (a
column may repeat): ``align`` raises ``ValueError``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image


WIDTH = 160  # the source's columns at the analysis resolution
BANDS = 8  # horizontal bands of rows, each with its own map


@dataclasses.dataclass(frozen=True)
class Alignment:
  """The recovered map, in the working resolution.

  source: (H, W, 3) float32 source in 0..1 (the axis that changed is the width).
  output: (H, W', 3) float32 output at the same height.
  columns: (bands, W') int: the source column each output column shows, per band.
  residual: (bands, W') float: that match's descriptor distance per pixel and channel.
  """
  source: np.ndarray
  output: np.ndarray
  columns: np.ndarray
  residual: np.ndarray
  transposed: bool

  @property
  def bands(self) -> int:
    return self.columns.shape[0]

  @property
  def band_rows(self) -> np.ndarray:
    """(bands + 1,) row edges of the bands in the working resolution."""
    return np.linspace(0, self.source.shape[0], self.bands + 1).round().astype(int)


def _shrink(img: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
  pil = Image.fromarray(np.asarray(img, np.uint8))
  return np.asarray(pil.resize((hw[1], hw[0]), Image.BOX), np.float32) / 255.0


def _descriptors(img: np.ndarray, rows: np.ndarray) -> list[np.ndarray]:
  """Per band, (W, D) column descriptors: the band's pixels and their vertical gradient."""
  grad = np.zeros_like(img)
  grad[1:] = img[1:] - img[:-1]
  out = []
  for r0, r1 in zip(rows[:-1], rows[1:]):
    d = np.concatenate([img[r0:r1], grad[r0:r1]], axis=0)      # (2h, W, 3)
    out.append(d.transpose(1, 0, 2).reshape(img.shape[1], -1))
  return out


def _monotone_paths(cost: np.ndarray, skip_cost: float) -> np.ndarray:
  """Per band, the strictly increasing j(i) minimising
  sum_i cost[b, i, j(i)] + skip_cost * (interior columns skipped).

  cost: (B, W', W). D[i, j] = cost[i, j] + min_{k<j} (D[i-1, k] + skip_cost (j - k - 1)),
  computed with a running minimum of D[i-1, k] - skip_cost k, all bands at once.
  """
  bands, n_out, n_src = cost.shape
  j = np.arange(n_src, dtype=np.float64)
  back = np.zeros((n_out, bands, n_src), np.int32)
  d = cost[:, 0].astype(np.float64)
  for i in range(1, n_out):
    shifted = d - skip_cost * j
    run_min = np.minimum.accumulate(shifted, axis=1)
    # where the running minimum was last set = the argmin of shifted[:k + 1]
    is_new = np.concatenate([np.ones((bands, 1), bool), shifted[:, 1:] < run_min[:, :-1]], 1)
    run_arg = np.maximum.accumulate(np.where(is_new, j.astype(np.int32), 0), axis=1)
    prev = np.full((bands, n_src), np.inf)
    prev[:, 1:] = run_min[:, :-1] + skip_cost * (j[1:] - 1)
    back[i, :, 1:] = run_arg[:, :-1]
    d = cost[:, i] + prev
  paths = np.zeros((bands, n_out), np.int32)
  paths[:, -1] = np.argmin(d, axis=1)
  rows = np.arange(bands)
  for i in range(n_out - 1, 0, -1):
    paths[:, i - 1] = back[i, rows, paths[:, i]]
  return paths


def align(source: np.ndarray, output: np.ndarray, width: int = WIDTH, bands: int = BANDS,
          skip_cost: float = 0.002) -> Alignment:
  """The per-band monotone column map from ``output`` back to ``source`` (uint8 RGB)."""
  (sh, sw), (oh, ow) = source.shape[:2], output.shape[:2]
  transposed = False
  if abs(oh - sh) > abs(ow - sw):
    source, output = source.transpose(1, 0, 2), output.transpose(1, 0, 2)
    (sh, sw), (oh, ow) = (sw, sh), (ow, oh)
    transposed = True
  if ow > sw:
    raise ValueError(f"align: the output is wider than the source ({ow} > {sw})")
  f = min(1.0, width / sw)
  h = max(bands * 2, round(sh * f))
  w_src = max(2, round(sw * f))
  w_out = max(1, min(w_src, round(ow * f)))
  src = _shrink(source, (h, w_src))
  out = _shrink(output, (h, w_out))            # a small height change is absorbed here
  rows = np.linspace(0, h, bands + 1).round().astype(int)
  costs = []
  for ds, do in zip(_descriptors(src, rows), _descriptors(out, rows)):
    cost = (np.sum(do * do, 1)[:, None] + np.sum(ds * ds, 1)[None, :] - 2.0 * do @ ds.T)
    costs.append(np.maximum(cost / ds.shape[1], 0.0))
  costs = np.stack(costs)
  cols = _monotone_paths(costs, skip_cost)
  res = np.take_along_axis(costs, cols[:, :, None], 2)[:, :, 0].astype(np.float32)
  return Alignment(src, out, cols, res, transposed)

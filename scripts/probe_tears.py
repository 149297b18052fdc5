"""Three candidate tear scores for the operator choice, per RetargetMe set (dev half only).

For every operator :func:`dnr_jax.resizing.plan.candidate_operators` plans for a set
(with ``--alternatives``, default ``warp,seams``), at the working size:

- ``shear``: the invented vertical edges of its pixel map (width sets; height sets
  transposed). Seams shift each row by its own amount, so an output pixel's lower
  neighbour comes from another source column than the pixel below its own source. Per
  pixel: the colour step to the lower neighbour in the output, less the larger of the
  two steps the source has at those columns, clipped at 0 (grey levels, 0-255); a
  resampling of whole columns (crop, warp) scores 0. Printed: the mean over the output
  and ``band``, the largest mean over a strip 1/24 of the width wide.
- ``squeeze``: squeezed texture. Where a band of seams crowds, the source under a few
  output columns is many columns wide; a pattern there is squeezed into slivers. Per
  output pixel: how much wider than 1 its source span is past 1.5 (over 4 output
  columns) x the source's grey-level contrast (the mean absolute step to the right and
  downward neighbours over that span). Printed: the mean and ``squeeze_band`` (the
  largest mean over a strip 1/24 of the width). A crop scores 0.
- ``loss10``: the Eq. 4 loss after 10 Adam steps from its initial image (what the
  audition of ``pipeline`` runs), divided by the configured operator's: a target the
  image cannot meet (a tear) should leave more loss.

docs/history/LAB_LOG.md compares them with the tears seen by eye ("What does not tell a torn
seams image": shear and loss10; "Why the seams tear": squeeze): none ranks them. Tune and look on the dev half only.

  python scripts/probe_tears.py --retargetme DIR --sets 2,10,13 [--tasks width75]
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import jax.numpy as jnp
import numpy as np

import _retargetme
from dnr_jax.ops import column_maps
from dnr_jax.io import compilation
from dnr_jax import config
from dnr_jax.resizing import deep_carving
from dnr_jax import resizing
from dnr_jax.nn import weights as weights_lib


def invented_vertical_edges(source: np.ndarray, cmap: column_maps.ColumnMap) -> np.ndarray:
  """(h - 1, w_out) the colour step from each output pixel to the one below it, less the
  larger of the source's own steps below the two pixels' source positions, >= 0."""
  s = jnp.asarray(source, jnp.float32)
  out = column_maps.apply(s, cmap)
  rows = lambda a, b: column_maps.ColumnMap(cmap.index0[a:b], cmap.index1[a:b],  # noqa: E731
                                            cmap.weight1[a:b])
  norm = lambda x: jnp.linalg.norm(x, axis=-1)  # noqa: E731
  below_top = norm(column_maps.apply(s[1:], rows(0, -1)) - out[:-1])
  above_bottom = norm(out[1:] - column_maps.apply(s[:-1], rows(1, None)))
  step = norm(out[1:] - out[:-1])
  return np.asarray(jnp.maximum(step - jnp.maximum(below_top, above_bottom), 0.0))


def squeezed_texture(source: np.ndarray, cmap: column_maps.ColumnMap,
                     threshold: float = 1.5, reach: int = 2) -> np.ndarray:
  """(h, w_out) how far each output pixel's source span (over ``reach`` output columns
  either side, per output column) exceeds ``threshold`` source columns, times the
  mean grey-level contrast of the source over that span; >= 0."""
  x = (np.asarray(cmap.index0, np.float32)
       + np.asarray(cmap.weight1) * (np.asarray(cmap.index1) - np.asarray(cmap.index0)))
  grey = np.asarray(source, np.float32).mean(axis=-1)
  contrast = (np.abs(np.diff(grey, axis=1, append=grey[:, -1:]))
              + np.abs(np.diff(grey, axis=0, append=grey[-1:, :])))
  h, w = grey.shape
  padded = np.pad(x, ((0, 0), (reach, reach)), mode="edge")
  left, right = padded[:, :-2 * reach], padded[:, 2 * reach:]
  span = (right - left) / (2 * reach)  # source columns per output column
  summed = np.cumsum(np.pad(contrast, ((0, 0), (1, 0))), axis=1)
  lo = np.clip(np.floor(left).astype(int), 0, w - 1)
  hi = np.clip(np.ceil(right).astype(int) + 1, 1, w)
  rows = np.arange(h)[:, None]
  mean_contrast = (summed[rows, hi] - summed[rows, lo]) / np.maximum(hi - lo, 1)
  return np.maximum(span - threshold, 0.0) * mean_contrast


def probe(w, src: np.ndarray, out_hw: tuple[int, int], cfg: config.RetargetConfig) -> dict:
  s = resizing.sizes(src.shape[:2], out_hw, cfg.work_size, cfg.work_multiple)
  image = resizing.downscale(src, s.work, on_host=True)
  width = s.work_out[1] != s.work[1]
  row, first_loss = {}, None
  for name, op in resizing.candidate_operators(cfg.operator, s.work, s.work_out):
    c = dataclasses.replace(cfg, operator=op)
    prep = resizing.prepare(w, image, s.work_out, c)
    plan = prep.plan.width if width else prep.plan.height
    cmap = deep_carving.pixel_map(plan, deep_carving.sort_layers(op.layers)[0])
    source = np.asarray(image, np.float32)
    if not width:  # a height plan's maps are of the transposed image
      source = np.swapaxes(source, 0, 1)
    inv = invented_vertical_edges(source, cmap)
    strip = max(1, inv.shape[1] // 24)
    band = float(np.convolve(inv.mean(axis=0), np.ones(strip) / strip, "same").max())
    sq = squeezed_texture(source, cmap)
    sq_band = float(np.convolve(sq.mean(axis=0), np.ones(strip) / strip, "same").max())
    state = resizing.reconstruction_init(prep.init, c)
    _, losses = resizing.reconstruction_chunk(w, prep.targets, state, c, 10)
    loss = float(np.asarray(losses)[-1])
    first_loss = loss if first_loss is None else first_loss
    row[name] = {"shear": float(inv.mean()), "band": band, "squeeze": float(sq.mean()),
                 "squeeze_band": sq_band, "loss10": loss / first_loss}
  return row


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--retargetme", required=True)
  ap.add_argument("--sets", default="", help="comma list of dev set ids")
  ap.add_argument("--tasks", default="width75")
  ap.add_argument("--alternatives", default="warp,seams")
  args = ap.parse_args()
  w = weights_lib.load_vgg19()
  cfg = config.RetargetConfig(operator=config.OperatorConfig(
      alternatives=tuple(a for a in args.alternatives.split(",") if a)))
  ids = tuple(int(i) for i in args.sets.split(",") if i)
  for set_id, task, src, published in _retargetme.sets(
      args.retargetme, "dev", tuple(args.tasks.split(",")), ids):
    row = probe(w, src, published["CR"].shape[:2], cfg)
    print(json.dumps({"set": set_id, "task": task, **row}), flush=True)
    compilation.release_if_crowded()


if __name__ == "__main__":
  main()

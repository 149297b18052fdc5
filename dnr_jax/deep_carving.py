"""The deep multi-operator (section 3.1): seams in feature space, then grid warping.

For one axis (width; height is the same on transposed maps):

1. Importance S_l of every chosen layer (Eq. 1).
2. Deepest layer L first: remove its minimum seams, always at least one, and more
   only while the next seam's mean importance is within the ``percentile`` of S_L.
   This sets the removed fraction r = k_L / w_L.
3. Each shallower layer l removes round(r * w_l) seams from its map damped by
   ``alpha`` inside the receptive field of the seams of the next deeper layer (Eq. 2).
4. The rest of the width change is column-cell grid warping (Eq. 3) with one set of
   cell widths (importance of all layers, in the carved domain) shared by every layer
   in normalised coordinates, so layer l ends at the width its feature map has for
   the output image.

Departure from the paper's order: the paper warps the *reconstructed* image; here
the warp is composed with the seams in feature space, so the reconstruction (Eq. 4)
also repairs the warp's stretching and the pipeline has a single static-shape
optimisation at the final size.

All outputs are :class:`~dnr_jax.column_maps.ColumnMap` per layer plus pictures'
raw material (removed masks, seam counts, importance maps), with static shapes.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple

import jax
import jax.numpy as jnp

from dnr_jax import column_maps
from dnr_jax import importance
from dnr_jax import receptive
from dnr_jax import seams
from dnr_jax import vgg
from dnr_jax.config import OperatorConfig


class AxisPlan(NamedTuple):
  """How one axis of every chosen layer is resized (width convention: (h, w) maps)."""

  maps: dict  # layer -> ColumnMap, (h_l, w_l') each
  removed: dict  # layer -> (h_l, w_l) bool, positions removed by seams
  num_removed: dict  # layer -> () int32
  importance: dict  # layer -> (h_l, w_l) Eq. 1 importance (undamped)
  damped: dict  # layer -> (h_l, w_l) Eq. 2 importance the seams were found on
  cell_widths: jax.Array  # (n_cells,) output widths of the warp cells, image pixels
  kept: dict  # layer -> (h_l, w_l) int32 source column of each carved position


def sort_layers(layers, arch: str = "vgg19") -> tuple[str, ...]:
  """Layers ordered shallow to deep (validated)."""
  return tuple(sorted(set(layers), key=lambda n: vgg.layer_index(n, arch)))


def plan_width(feats: Mapping[str, jax.Array], image_width: int, out_width: int,
               cfg: OperatorConfig, arch: str = "vgg19") -> AxisPlan:
  """Deep multi-operator along the width for one image's features {layer: (h, w, c)}."""
  layers = sort_layers(cfg.layers, arch)
  if out_width > image_width:
    raise ValueError(f"cannot enlarge with seam removal: {image_width} -> {out_width}")
  maps, removed, num_removed, imps, damped, kept_all = {}, {}, {}, {}, {}, {}
  fraction = jnp.float32(0.0)
  deeper = None
  for layer in reversed(layers):
    f = feats[layer]
    h, w = f.shape[:2]
    w_out = vgg.layer_size(out_width, layer, arch)
    max_k = w - w_out
    s = importance.importance_map(f)
    imps[layer] = s
    m = s
    if deeper is not None:
      rf = receptive.receptive_field_mask(removed[deeper], layer, deeper, (h, w), arch)
      m = jnp.where(rf, cfg.alpha * s, s)
    damped[layer] = m
    if not cfg.use_seams or max_k <= 0:
      res = seams.CarveResult(column_maps.identity_kept(h, w), jnp.int32(0),
                              jnp.zeros((1, h), jnp.int32), jnp.full((1,), jnp.inf))
    elif deeper is None:  # the deepest layer decides how much seam carving can do
      threshold = jnp.percentile(s, cfg.percentile)
      res = seams.carve(m, max_k, max_k, seams.fixed_energy_fn, stop_threshold=threshold)
      fraction = res.num_removed.astype(jnp.float32) / w
    else:
      k = jnp.clip(jnp.round(fraction * w).astype(jnp.int32), 0, max_k)
      batch = cfg.seams_per_pass or seams.default_batch(w)
      if batch <= 1:
        res = seams.carve(m, k, max_k, seams.fixed_energy_fn)
      else:
        res = seams.carve_batched(m, k, max_k, seams.fixed_energy_fn, batch)
    removed[layer] = seams.removed_mask(res, w)
    num_removed[layer] = res.num_removed
    kept_all[layer] = res.kept
    deeper = layer

  # Eq. 3: cell importance from every layer's carved map, in normalised coordinates.
  n_cells = max(1, round(image_width / cfg.grid_cell))
  mu = jnp.zeros((n_cells,), jnp.float32)
  for layer in layers:
    n_valid = imps[layer].shape[1] - num_removed[layer]
    carved = jnp.take_along_axis(imps[layer], kept_all[layer], axis=1)
    profile = carved.mean(axis=0)
    cells = column_maps.cell_profile(profile, n_valid, n_cells)
    mu = mu + cells / (jnp.mean(cells) + 1e-8)
  shallow = layers[0]
  width_in = image_width * (1.0 - num_removed[shallow] / imps[shallow].shape[1])
  cell_widths = column_maps.warp_cell_widths(mu, width_in, out_width, cfg.min_cell_scale)

  for layer in layers:
    w = imps[layer].shape[1]
    n_valid = w - num_removed[layer]
    w_out = vgg.layer_size(out_width, layer, arch)
    coords = column_maps.warp_coords(cell_widths, n_valid, w_out)
    maps[layer] = column_maps.from_kept(kept_all[layer], n_valid, coords)
  return AxisPlan(maps, removed, num_removed, imps, damped, cell_widths, kept_all)


def _transpose_hw(x: jax.Array) -> jax.Array:
  return jnp.swapaxes(x, 0, 1)


class ResizePlan(NamedTuple):
  width: AxisPlan | None  # maps (h, w) -> (h, w')
  height: AxisPlan | None  # on transposed maps: (w', h) -> (w', h')
  targets: dict  # layer -> F'_l (h_l', w_l', c) target feature maps


def apply_plan_to_layer(x: jax.Array, plan: ResizePlan, layer: str) -> jax.Array:
  """Resizes an (h_l, w_l, ...) array of ``layer`` with the plan's column/row maps."""
  if plan.width is not None:
    x = column_maps.apply(x, plan.width.maps[layer])
  if plan.height is not None:
    x = _transpose_hw(column_maps.apply(_transpose_hw(x), plan.height.maps[layer]))
  return x


def plan_resize(feats: Mapping[str, jax.Array], image_hw: tuple[int, int],
                out_hw: tuple[int, int], cfg: OperatorConfig,
                arch: str = "vgg19") -> ResizePlan:
  """Width pass, then height pass on the width-resized maps; returns target maps F'.

  Args:
    feats: {layer: (h_l, w_l, c_l)} features of one image (no batch axis).
    image_hw, out_hw: input and output image sizes (static).
  """
  (h, w), (oh, ow) = image_hw, out_hw
  layers = sort_layers(cfg.layers, arch)
  cur = {l: feats[l] for l in layers}
  width_plan = height_plan = None
  if ow != w:
    width_plan = plan_width(cur, w, ow, cfg, arch)
    cur = {l: column_maps.apply(cur[l], width_plan.maps[l]) for l in layers}
  if oh != h:
    height_plan = plan_width({l: _transpose_hw(cur[l]) for l in layers}, h, oh, cfg, arch)
    cur = {l: _transpose_hw(column_maps.apply(_transpose_hw(cur[l]), height_plan.maps[l]))
           for l in layers}
  return ResizePlan(width_plan, height_plan, cur)

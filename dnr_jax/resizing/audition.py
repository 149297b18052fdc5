"""The decisions made by looking at pixels: the audition of the crop shares, the axis order.

**The audition** (a shrink of one axis without masks: :attr:`Plan.crop_shares`). For
each share, the crop takes that share of the shrink and Eq. 3's warp alone does the rest
on the crop. The crop's window is, of the windows of its width (every
:data:`WINDOW_STEP` pixels), the one that loses the least of the source's most salient
content (``quality.human``'s ``lost``), then the least saliency, near-ties to the
centred window. Each candidate's pixel map is then scored by the human-calibrated
criterion on that map, known exactly here (:func:`dnr_jax.quality.human.map_features`
at the criterion's analysis resolution: the salient content it squeezes and loses),
with lost content priced ``crop_lost_weight`` higher than the criterion prices it (a
crop must not cut the subject when the warp can take that width), and the best is
kept. One forward pass of the image serves every candidate: a crop's features are the
image's, sliced (a deep layer's slice starts at the nearest position at or before the
window's edge).

Departs from the paper, whose operator is the seams and the warp alone: people prefer
a crop to a squeeze unless the crop cuts the subject (the RetargetMe survey: the crop
won 58% of its pairs, the warps 35-37%; ``quality.human``), and the seams tear what
they cross.

**The order phase** of a two-axis job under ``axis_order="auto"``: both orders are
planned and the one whose pixel map keeps more deep features (Eq. 5) wins
(:func:`order_scores`). Both are pure and vmappable.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dnr_jax.config import OperatorConfig
from dnr_jax.nn import vgg
from dnr_jax.ops import column_maps
from dnr_jax.ops import importance
from dnr_jax.quality import human
from dnr_jax.quality import metrics
from dnr_jax.resizing import deep_carving

WINDOW_STEP = 4  # crop window offsets tried, in working pixels


def crop_pixels(share: float, n: int, n_out: int) -> int:
  """The pixels a crop share takes of an ``n`` -> ``n_out`` shrink (static)."""
  return int(round(share * (n - n_out)))


def lost_weight(operator: OperatorConfig) -> float:
  """The audition's price of lost salient content: the criterion's, plus
  ``operator.crop_lost_weight``."""
  return -human.WEIGHTS["lost"] + operator.crop_lost_weight


def _orient(x, axis: int):
  """(h, w, ...) with the changing axis last of the two (height: transposed)."""
  return x if axis == 1 else jnp.swapaxes(x, 0, 1)


def analysis_columns(cmap: column_maps.ColumnMap, n_src: int,
                     bands: int = human.BANDS) -> jax.Array:
  """(bands, W') int32: the source column each output column of a block1 column map
  (h, w') shows at the criterion's analysis resolution (``human.ANALYSIS_WIDTH``
  source columns; the middle row of each band), as
  :func:`dnr_jax.quality.correspondence.align` recovers it from images."""
  h, w_out = cmap.index0.shape
  f = min(1.0, human.ANALYSIS_WIDTH / n_src)
  a_src, a_out = max(2, round(n_src * f)), max(1, min(round(n_src * f), round(w_out * f)))
  rows = ((np.arange(bands) + 0.5) * h / bands).astype(np.int32)
  i0, i1 = cmap.index0[rows].astype(jnp.float32), cmap.index1[rows].astype(jnp.float32)
  pos = i0 + cmap.weight1[rows] * (i1 - i0)  # (bands, w') source pixel of each output one
  x = (np.arange(a_out) + 0.5) * w_out / a_out - 0.5
  at = jax.vmap(lambda p: jnp.interp(x, np.arange(w_out, dtype=np.float32), p))(pos)
  return jnp.clip(jnp.floor((at + 0.5) * a_src / n_src), 0, a_src - 1).astype(jnp.int32)


def _analysis_profiles(sal_maps: dict, hw: tuple[int, int]):
  """:func:`human.band_profiles` of the image (oriented, (h, n)) at the analysis size."""
  h, n = hw
  f = min(1.0, human.ANALYSIS_WIDTH / n)
  size = (max(2 * human.BANDS, round(h * f)), max(2, round(n * f)))
  return human.band_profiles(human.deep_saliency(sal_maps, size), xp=jnp)


def _window(hot: jax.Array, saliency: jax.Array, n: int, n_out: int, crop: jax.Array,
            lost_weight: float) -> jax.Array:
  """The offset of a ``crop``-pixel crop (traced) of a width-``n`` image: the window that
  loses the least hot saliency ``hot`` (n,) at ``lost_weight`` (criterion units) and then
  the least saliency ``saliency`` (n,) at a tenth of it, near-ties to the centred
  window. Offsets every :data:`WINDOW_STEP` pixels (and ``crop`` itself)."""
  starts = jnp.minimum(jnp.arange((n - n_out) // WINDOW_STEP + 2) * WINDOW_STEP, crop)
  end = starts + n - crop

  def lost(p):
    total = jnp.concatenate([jnp.zeros((1,), jnp.float32), jnp.cumsum(p)])
    return total[-1] - (total[end] - total[starts])

  centred = jnp.abs(starts - 0.5 * crop) / jnp.maximum(crop, 1)
  merit = -lost_weight * (lost(hot) + 0.1 * lost(saliency)) - 1e-6 * centred
  return starts[jnp.argmax(merit)]


def crop_warp_plan(imps: dict, n: int, n_out: int, operator: OperatorConfig,
                   crop: jax.Array, offset: jax.Array, arch: str = "vgg19"
                   ) -> deep_carving.AxisPlan:
  """The width plan (on the whole image) of ``crop`` pixels cropped from ``offset`` on
  (both traced) and Eq. 3's warp alone on the rest, from every layer's Eq. 1 map
  ``imps`` {layer: (h_l, w_l)} (oriented: the width changes). The crop is the kept
  columns of a seam plan (``kept`` starts at the window, ``num_valid`` is its width at
  each layer), so every crop has the same shapes and the candidates vmap."""
  layers = deep_carving.sort_layers(operator.layers, arch)
  op = dataclasses.replace(operator, use_seams=False, crop_shares=())
  kept, valid = {}, {}
  for l in layers:
    st, (h_l, w_l) = vgg.layer_stride(l, arch), imps[l].shape
    valid[l] = jnp.maximum(vgg.layer_size(n_out, l, arch), (n - crop) // st).astype(jnp.int32)
    start = jnp.minimum(offset // st, w_l - valid[l])
    kept[l] = jnp.broadcast_to(jnp.minimum(start + jnp.arange(w_l), w_l - 1), (h_l, w_l)
                               ).astype(jnp.int32)
  cell_widths, n_cells = deep_carving.warp_cells(op, layers, imps, kept, valid, n, n_out)
  maps = {l: column_maps.from_kept(kept[l], valid[l], column_maps.warp_coords(
      cell_widths, valid[l], vgg.layer_size(n_out, l, arch))) for l in layers}
  return deep_carving.AxisPlan(maps, {l: jnp.zeros(imps[l].shape, bool) for l in layers},
                               {l: jnp.int32(0) for l in layers}, dict(imps), dict(imps),
                               cell_widths, kept, valid, jnp.asarray(n_cells, jnp.int32))


class Candidates(NamedTuple):
  """The audition's candidates of one image, stacked (axis 0: the plan's crop shares)."""

  plans: deep_carving.AxisPlan  # each on the whole image, oriented (height: transposed)
  merits: jax.Array  # (k,) the criterion, lost content priced higher; higher wins
  parts: dict  # {"squeeze", "lost"}: (k,) each
  features: dict  # {layer: (h_l, w_l, c)} the image's features (the plan's layers)


def candidates(weights, image, plan) -> Candidates:
  """Every crop + warp candidate of the plan's crop shares (:attr:`Plan.crop_shares`)
  for one (working-size) ``image``, planned from one forward pass and scored (module
  docstring), vmapped over the shares. Static shapes: one executable, vmappable."""
  layers, out_hw = plan.layers, plan.sizes.work_out
  (h, w), (oh, ow) = image.shape[:2], out_hw
  axis, n, n_out = (1, w, ow) if oh == h else (0, h, oh)
  wanted = tuple(dict.fromkeys((*layers, *human.SALIENCY_LAYERS)))
  feats = {k: v[0] for k, v in vgg.features(weights, image[None], wanted).items()}
  imps = {l: _orient(importance.importance_map(f), axis) for l, f in feats.items()}
  sal_maps = {l: imps[l] for l in human.SALIENCY_LAYERS}
  hw = (h, n) if axis == 1 else (w, n)
  sal = human.deep_saliency(sal_maps, hw)  # (h, n) at the working size, sums to 1
  hot = jnp.sum(jnp.where(sal > jnp.quantile(sal, human.HOT_QUANTILE), sal, 0.0), 0)
  band_sal, band_hot = _analysis_profiles(sal_maps, hw)
  operator = plan.operator_config()
  price = lost_weight(operator)

  def one(crop):
    offset = _window(hot, jnp.sum(sal, 0), n, n_out, crop, price)
    p = crop_warp_plan({l: imps[l] for l in layers}, n, n_out, operator, crop, offset,
                       weights.arch)
    f = human.map_features(band_sal, band_hot, analysis_columns(p.maps[plan.shallow], n),
                           None, xp=jnp)
    merit = human.score(f) - operator.crop_lost_weight * f["lost"]
    return p, merit.astype(jnp.float32), {k: f[k].astype(jnp.float32)
                                          for k in ("squeeze", "lost")}

  crops = jnp.asarray([crop_pixels(s, n, n_out) for s in plan.crop_shares], jnp.int32)
  plans, merits, parts = jax.vmap(one)(crops)
  return Candidates(plans, merits, parts, {l: feats[l] for l in layers})


def chosen_plan(weights, image, plan):
  """(ResizePlan, index, merits (k,), parts {squeeze, lost: (k,)}): of the
  :func:`candidates`, the crop + warp whose merit is highest (the first of equals),
  with its target features."""
  c = candidates(weights, image, plan)
  best = jnp.argmax(c.merits).astype(jnp.int32)
  chosen = jax.tree_util.tree_map(lambda x: x[best], c.plans)
  resize_plan = as_resize_plan(chosen, c.features, image.shape[:2], plan.sizes.work_out)
  return resize_plan, best, c.merits, c.parts


def as_resize_plan(axis_plan: deep_carving.AxisPlan, feats: dict, image_hw, out_hw
                   ) -> deep_carving.ResizePlan:
  """A one-axis plan as a :class:`deep_carving.ResizePlan` with the target features
  ``feats`` resized by its maps (``feats`` empty: no targets)."""
  width = image_hw[0] == out_hw[0]
  t = (lambda x: x) if width else (lambda x: jnp.swapaxes(x, 0, 1))
  targets = {l: t(column_maps.apply(t(f), axis_plan.maps[l])) for l, f in feats.items()}
  return deep_carving.ResizePlan(axis_plan if width else None,
                                 None if width else axis_plan, targets)


def deep_plan(weights, image, out_hw, operator: OperatorConfig, keep=None, remove=None
              ) -> deep_carving.ResizePlan:
  """The configured operator's plan of one (working-size) image: its features (one
  forward pass) -> :func:`deep_carving.plan_resize` (the seams and the warp, masks), in
  the order ``operator.axis_order`` (resolved by the plan)."""
  layers = deep_carving.sort_layers(operator.layers, weights.arch)
  order = operator.axis_order if operator.axis_order != "auto" else "width_first"
  feats = {k: v[0] for k, v in vgg.features(weights, image[None], layers).items()}
  return deep_carving.plan_resize(feats, image.shape[:2], out_hw, operator, weights.arch,
                                  keep=keep, remove=remove, order=order)


def order_scores(weights, image, plan, keep=None) -> jax.Array:
  """(2,) the semantic score (Eq. 5) of the pixel map (seams and warp) of a two-axis
  job planned width first and height first, on the (working-size) image: the order
  phase keeps the higher (ties to width first). Measured on the 7 package photos at
  75% x 75% (docs/history/LAB_LOG.md, "Editing"): this criterion chose the order with
  the better output on all 5 photos where both orders were run. Cost: one forward
  pass, two plans and two forward passes of the small images."""
  operator = plan.operator
  feats = {k: v[0] for k, v in vgg.features(weights, image[None], plan.layers).items()}
  keep = None if keep is None else keep > 0.5
  scores = []
  for o in ("width_first", "height_first"):
    p = deep_carving.plan_resize(feats, image.shape[:2], plan.sizes.work_out, operator,
                                 weights.arch, keep=keep, order=o)
    seams_image = deep_carving.apply_plan_to_layer(image, p, plan.shallow)
    scores.append(metrics.semantic_score(weights, seams_image, image))
  return jnp.stack(scores)


def order_from_scores(scores) -> str:
  """The order :func:`order_scores` chose: height first only when strictly better."""
  return "height_first" if float(scores[1]) > float(scores[0]) else "width_first"

"""The deep multi-operator (section 3.1): seams in feature space, then grid warping.

For one axis (width; height is the same on transposed maps):

0. Departure from the paper (one shrinking axis, no masks; ``resizing.audition``): a
   share of the shrink is first cropped from the border and the warp of step 4 alone
   does the rest: the crop is a plan whose kept columns start at the window.
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

All outputs are :class:`~dnr_jax.ops.column_maps.ColumnMap` per layer plus pictures'
raw material (removed masks, seam counts, importance maps), with static shapes.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dnr_jax.ops import column_maps
from dnr_jax.ops import importance
from dnr_jax.ops import receptive
from dnr_jax.ops import seams
from dnr_jax.nn import vgg
from dnr_jax.config import OperatorConfig


class AxisPlan(NamedTuple):
  """How one axis of every chosen layer is resized (width convention: (h, w) maps).

  Shrinking removes seams; enlarging inserts them (``kept`` is then float: the source
  coordinate of every position of the widened map, see
  :func:`dnr_jax.ops.seams.insertion_coords`). ``removed`` and ``num_removed`` count the
  carved seams either way.
  """

  maps: dict  # layer -> ColumnMap, (h_l, w_l') each
  removed: dict  # layer -> (h_l, w_l) bool, source positions of the carved seams
  num_removed: dict  # layer -> () int32 seams removed (or inserted)
  importance: dict  # layer -> (h_l, w_l) Eq. 1 importance (undamped)
  damped: dict  # layer -> (h_l, w_l) Eq. 2 importance the seams were found on
  cell_widths: jax.Array  # (n_cells,) output widths of the warp cells, image pixels
  kept: dict  # layer -> (h_l, w_l or w_l + inserted) source column of each position
  num_valid: dict  # layer -> () int32 valid positions of ``kept`` (w_l -/+ seams)
  # () int32: the real cells of ``cell_widths`` (any past it are zero padding).
  num_cells: jax.Array


def sort_layers(layers, arch: str = "vgg19") -> tuple[str, ...]:
  """Layers ordered shallow to deep (validated)."""
  return tuple(sorted(set(layers), key=lambda n: vgg.layer_index(n, arch)))


def forbidden_positions(keep: jax.Array, layer: str, arch: str = "vgg19") -> jax.Array:
  """(h_l, w_l) bool: positions of ``layer`` whose receptive field touches a kept pixel.

  ``keep`` is the (h, w) image-size keep mask. The mask is pushed forward along the
  real VGG path (a conv: 3x3 dilation; a pool: 2x2 max, stride 2), which is exactly
  the set of feature positions that see a kept pixel.
  """
  mask = receptive.dilate3(keep.astype(bool))  # the first conv
  for kind in vgg.path_between(vgg.layer_names(arch)[0], layer, arch):
    if kind == "pool":
      h, w = mask.shape[0] // 2 * 2, mask.shape[1] // 2 * 2
      mask = mask[:h, :w].reshape(h // 2, 2, w // 2, 2).any(axis=(1, 3))
    else:
      mask = receptive.dilate3(mask)
  return mask


def seams_needed(forbid: jax.Array, width: int, out_width: int, min_scale: float) -> jax.Array:
  """Seams a layer must remove so that the warp, which may not squeeze cells holding
  forbidden positions, can do the rest: the warp shrinks a free column to at least
  ``min_scale``, and each seam may cost a free column, so k seams leave it
  (1 - min_scale) (free - k) to give; k >= (w - w' - (1 - min_scale) free) / min_scale."""
  free = jnp.sum(~jnp.any(forbid, axis=0)).astype(jnp.float32)
  need = (width - out_width - (1.0 - min_scale) * free) / min_scale
  return jnp.clip(jnp.ceil(need), 0, width - out_width).astype(jnp.int32)


# The "straight" seam style (``OperatorConfig.seam_style``): each shallower layer's energy adds the deeper layers' importance at this
# weight (x the layer's mean), and every sideways step of a seam costs this many times
# the layer's mean energy, one seam per DP pass, so that many seams do not remove a
# cheap diagonal valley as a slanted band (docs/history/LAB_LOG.md, "Seams that run
# straight" and "The operator choice with the seams guarded by the deep layers").
STRAIGHT_DEEP_WEIGHT = 4.0
STRAIGHT_DIAGONAL_COST = 1.0


def _layer_energy(cfg: OperatorConfig, s: jax.Array, imps: Mapping[str, jax.Array],
                  rf: jax.Array | None, forbid: jax.Array | None,
                  remove_here: jax.Array | None, band: int, enlarge: bool):
  """(damped, energy, hard_limit) of one layer: Eq. 2's damping of its importance ``s``
  inside ``rf`` (the receptive field of the deeper layer's seams), the deeper layers'
  importance added for straight seams, then the keep mask's forbidden positions, the
  border band and object removal's bonus on the energy the DP sees."""
  m = s
  if rf is not None:
    m = jnp.where(rf, cfg.alpha * s, s)
    if cfg.seam_style == "straight":  # what the deeper layers found important
      h, w = s.shape
      sem = sum(jax.image.resize(importance.normalise(imps[d]), (h, w), "linear")
                for d in imps) / len(imps)
      m = m + STRAIGHT_DEEP_WEIGHT * jnp.mean(s) * sem
  damped = m
  hard = forbid is not None
  if forbid is not None:
    m = jnp.where(forbid, seams.FORBIDDEN, m)
  if band:
    w = s.shape[1]
    edge = (jnp.arange(w) < band) | (jnp.arange(w) >= w - band)
    if enlarge:
      m = jnp.where(edge[None, :], m + 2.0 * s.shape[0] * jnp.max(s) + 1.0, m)
    else:  # a hard limit: a batched pass could push a path into the band otherwise
      m = jnp.where(edge[None, :], seams.FORBIDDEN, m)
      hard = True
  if remove_here is not None:
    bonus = 2.0 * s.shape[0] * jnp.max(s) + 1.0  # one more removed position beats any path
    m = jnp.where(remove_here, m - bonus, m)
  return damped, m, hard


def _border_band(w: int, enlarge: bool, shallowest: bool, masked: bool) -> int:
  """Positions kept free of seams at each border of a layer ``w`` wide. Near the border
  the positions saw the zero padding: an inserted copy there shifts them against the
  border, and removing the border column puts an interior feature at the edge --
  targets no image can meet (a coloured line along the edge, measured on coffee: the
  target's last block1 column had 1.5x the border's energy). Seams keep 3 positions
  (block1_conv2's reach and more) away; when shrinking only the image-level layer
  needs it. Not with masks: object removal may carve an object that touches the
  border, and a keep mask's largest shrink (masks.keep_limits) counts on every free
  column, the border ones included."""
  if enlarge or (shallowest and not masked):
    return min(3, max(1, (w - 1) // 4))
  return 0


def warp_cells(cfg: OperatorConfig, layers, imps, kept_all, valid, image_width: int,
               out_width: int, forbid_shallow=None, enlarge: bool = False,
               masked: bool = False):
  """Eq. 3: (cell_widths, n_cells), the warp's output cell widths from every layer's
  carved importance in normalised coordinates. With a keep mask the cells are 4x
  finer, so that a large kept region still leaves free cells beside it."""
  cell = cfg.grid_cell if forbid_shallow is None else max(2, cfg.grid_cell // 4)
  n_cells = max(1, round(image_width / cell))
  mu = jnp.zeros((n_cells,), jnp.float32)

  def carved(x, layer):  # x (h, w) at the source positions -> at the carved positions
    src = jnp.clip(jnp.floor(kept_all[layer]).astype(jnp.int32), 0, x.shape[1] - 1)
    return jnp.take_along_axis(x, src, axis=1)

  for layer in layers:
    profile = carved(imps[layer], layer).mean(axis=0)
    cells = column_maps.cell_profile(profile, valid[layer], n_cells)
    mu = mu + cells / (jnp.mean(cells) + 1e-8)
  shallow = layers[0]
  protected = None
  if forbid_shallow is not None:
    held = carved(forbid_shallow, shallow).any(axis=0)
    protected = column_maps.cells_holding(held, valid[shallow], n_cells)
  if not enlarge and n_cells > 2 and not masked:
    # The border cells keep their width: a compressed cell would sample its outermost
    # output column from 0.5/scale - 0.5 columns inside the source (2 columns at the
    # 0.2 limit), putting interior features where the output's features see the zero
    # padding -- a target no image meets, which Eq. 4 answered with a coloured line
    # along the border.
    edge = (jnp.arange(n_cells) == 0) | (jnp.arange(n_cells) == n_cells - 1)
    protected = edge if protected is None else protected | edge
  width_in = image_width * (valid[shallow] / imps[shallow].shape[1])
  widths = column_maps.warp_cell_widths(mu, width_in, out_width, cfg.min_cell_scale,
                                        protected=protected, power=cfg.warp_power)
  return widths, n_cells


def plan_width(feats: Mapping[str, jax.Array], image_width: int, out_width: int,
               cfg: OperatorConfig, arch: str = "vgg19",
               keep: jax.Array | None = None, remove: jax.Array | None = None) -> AxisPlan:
  """Deep multi-operator along the width for one image's features {layer: (h, w, c)}.

  Shrinking removes seams, enlarging (``out_width > image_width``, up to 2x) inserts
  the same seams (the lowest-importance ones, deepest layer first, steered by Eq. 2);
  the warp (Eq. 3) does the rest either way. ``keep`` (h, w) bool image mask: no seam
  at any layer passes through a position whose receptive field touches it
  (:func:`forbidden_positions`), and the warp does not resize cells that hold one.
  ``remove`` (h, w) bool image mask (object removal): every layer removes all of its
  width change by seams, drawn first through the positions that see the masked
  pixels (a bonus larger than any path's importance), so with ``out_width`` from
  :func:`removal_seams` the object is carved out entirely.
  """
  layers = sort_layers(cfg.layers, arch)
  enlarge = out_width > image_width
  if enlarge and out_width > 2 * image_width:
    raise ValueError(f"cannot enlarge more than 2x: {image_width} -> {out_width}")
  masked = keep is not None or remove is not None
  straight = cfg.seam_style == "straight"
  diagonal = STRAIGHT_DIAGONAL_COST if straight else 0.0
  maps, removed, num_removed, imps, damped, kept_all, valid = {}, {}, {}, {}, {}, {}, {}
  forbid = {}
  fraction = jnp.float32(0.0)
  deeper = None
  for layer in reversed(layers):
    f = feats[layer]
    h, w = f.shape[:2]
    w_out = vgg.layer_size(out_width, layer, arch)
    max_k = min(abs(w_out - w), w - 1)
    s = importance.importance_map(f)
    rf = (None if deeper is None else
          receptive.receptive_field_mask(removed[deeper], layer, deeper, (h, w), arch))
    if keep is not None:
      forbid[layer] = forbidden_positions(keep, layer, arch)
    band = _border_band(w, enlarge, layer == layers[0], masked)
    damped[layer], m, hard = _layer_energy(
        cfg, s, imps, rf, forbid.get(layer),
        None if remove is None else forbidden_positions(remove, layer, arch), band, enlarge)
    imps[layer] = s
    limit = seams.FORBIDDEN_LIMIT if hard else None
    # An enlarging plan's band pays a finite penalty: the diagonal step cost leaves it out
    # of the mean it is priced from (a shrink's band is forbidden, out of it already).
    step_border = band if enlarge else 0
    if remove is not None and max_k > 0:  # object removal: seams only, every layer, one
      # per DP pass (a batched pass pushes merging paths aside, out of the object)
      res = seams.carve(m, max_k, max_k, seams.fixed_energy_fn, limit=limit)
    elif not cfg.use_seams or max_k <= 0:
      res = seams.CarveResult(column_maps.identity_kept(h, w), jnp.int32(0),
                              jnp.zeros((1, h), jnp.int32), jnp.full((1,), jnp.inf))
    elif deeper is None:  # the deepest layer decides how much seam carving can do
      threshold = jnp.percentile(s, cfg.percentile)
      deep_energy_fn = seams.with_diagonal_cost(seams.fixed_energy_fn, diagonal, step_border)
      res = seams.carve(m, max_k, max_k, deep_energy_fn, stop_threshold=threshold,
                        limit=limit, force_first=True)
      fraction = res.num_removed.astype(jnp.float32) / w
      if keep is not None:  # a keep mask blocks most deep positions (their receptive
        # fields are large): the fraction for the shallower layers is the one the
        # threshold stop gives without it, and each layer carves what it can of it
        free = seams.carve(damped[layer], max_k, max_k, deep_energy_fn,
                           stop_threshold=threshold)
        fraction = free.num_removed.astype(jnp.float32) / w
    else:
      k = jnp.clip(jnp.round(fraction * w).astype(jnp.int32), 0, max_k)
      if keep is not None and not enlarge:
        k = jnp.maximum(k, seams_needed(forbid[layer], w, w_out, cfg.min_cell_scale))
      payload, energy_fn = m, seams.fixed_energy_fn
      if cfg.forward_weight > 0:
        payload = (m, f)
        energy_fn = seams.feature_forward_energy_fn(cfg.forward_weight)
      energy_fn = seams.with_diagonal_cost(energy_fn, diagonal, step_border)
      if straight:
        res = seams.carve(payload, k, max_k, energy_fn, limit=limit, force_first=False)
      else:
        res = seams.carve_batched(payload, k, max_k, energy_fn, seams.default_batch(w),
                                  limit=limit)
    removed[layer] = seams.removed_mask(res, w)
    num_removed[layer] = res.num_removed
    if enlarge:
      kept_all[layer] = seams.insertion_coords(res, w, w + max(max_k, 0))
      valid[layer] = w + res.num_removed
    else:
      kept_all[layer] = res.kept
      valid[layer] = w - res.num_removed
    deeper = layer

  shallow = layers[0]
  cell_widths, n_cells = warp_cells(cfg, layers, imps, kept_all, valid, image_width,
                                    out_width, forbid.get(shallow), enlarge, masked)
  for layer in layers:
    w_out = vgg.layer_size(out_width, layer, arch)
    coords = column_maps.warp_coords(cell_widths, valid[layer], w_out)
    maps[layer] = column_maps.from_kept(kept_all[layer], valid[layer], coords)
  if keep is not None:
    # Kept pixels are copied, not resampled: inside a protected cell the warp is a
    # translation by a fraction of a pixel, so rounding the blend weight there copies
    # every source column exactly once.
    cm, fb = maps[shallow], forbid[shallow]
    near = (jnp.take_along_axis(fb, cm.index0, axis=1)
            | jnp.take_along_axis(fb, cm.index1, axis=1))
    maps[shallow] = cm._replace(weight1=jnp.where(near, jnp.round(cm.weight1), cm.weight1))
  return AxisPlan(maps, removed, num_removed, imps, damped, cell_widths, kept_all, valid,
                  jnp.asarray(n_cells, jnp.int32))


def _transpose_hw(x: jax.Array) -> jax.Array:
  return jnp.swapaxes(x, 0, 1)


class ResizePlan(NamedTuple):
  width: AxisPlan | None  # maps (h, w) -> (h, w')
  height: AxisPlan | None  # on transposed maps: (w', h) -> (w', h')
  targets: dict  # layer -> F'_l (h_l', w_l', c) target feature maps


def height_first(plan: ResizePlan) -> bool:
  """Whether the plan's height pass came first (static: read from the map shapes).

  Width first, the width maps have the input's rows; height first, the output's."""
  if plan.width is None or plan.height is None:
    return False
  layer = next(iter(plan.width.maps))
  return plan.width.maps[layer].index0.shape[0] == plan.height.maps[layer].index0.shape[1]


def _apply_width(x, cmap):
  return column_maps.apply(x, cmap)


def _apply_height(x, cmap):
  return _transpose_hw(column_maps.apply(_transpose_hw(x), cmap))


def apply_plan_to_layer(x: jax.Array, plan: ResizePlan, layer: str) -> jax.Array:
  """Resizes an (h_l, w_l, ...) array of ``layer`` with the plan's column/row maps."""
  steps = [(_apply_width, plan.width), (_apply_height, plan.height)]
  if height_first(plan):
    steps.reverse()
  for fn, axis_plan in steps:
    if axis_plan is not None:
      x = fn(x, axis_plan.maps[layer])
  return x


def pixel_map(plan: AxisPlan, shallow: str):
  """The shallow (stride-1) layer's column map: how the plan moves image pixels."""
  return plan.maps[shallow]


def plan_resize(feats: Mapping[str, jax.Array], image_hw: tuple[int, int],
                out_hw: tuple[int, int], cfg: OperatorConfig,
                arch: str = "vgg19", keep: jax.Array | None = None,
                remove: jax.Array | None = None, order: str = "width_first") -> ResizePlan:
  """One pass per changing axis (``order``), each on the maps the other left; returns
  target maps F'.

  Args:
    feats: {layer: (h_l, w_l, c_l)} features of one image (no batch axis).
    image_hw, out_hw: input and output image sizes (static); each axis may shrink or
      enlarge (up to 2x).
    keep, remove: optional (h, w) bool keep / remove masks of the image (see
      :func:`plan_width`).
    order: "width_first" (the height pass then works on the width-resized maps) or
      "height_first"; :func:`height_first` reads it back from the plan.
  """
  (h, w), (oh, ow) = image_hw, out_hw
  layers = sort_layers(cfg.layers, arch)
  cur = {l: feats[l] for l in layers}
  if order not in ("width_first", "height_first"):
    raise ValueError(f"order must be width_first or height_first, got {order!r}")
  axes = [("width", w, ow), ("height", h, oh)]
  if order == "height_first":
    axes.reverse()
  plans = {}
  for axis, n, n_out in axes:
    if n_out == n:
      continue
    t = (lambda x: x) if axis == "width" else _transpose_hw  # height: transposed maps
    plans[axis] = plan_width({l: t(cur[l]) for l in layers}, n, n_out, cfg, arch,
                             None if keep is None else t(keep),
                             None if remove is None else t(remove))
    shallow_map = pixel_map(plans[axis], layers[0])
    move = lambda m: None if m is None else t(column_maps.apply(  # noqa: E731
        t(m).astype(jnp.float32), shallow_map) > 0.0)
    keep, remove = move(keep), move(remove)
    cur = {l: t(column_maps.apply(t(cur[l]), plans[axis].maps[l])) for l in layers}
  return ResizePlan(plans.get("width"), plans.get("height"), cur)


def block1_footprint(mask: np.ndarray) -> np.ndarray:
  """(h, w) bool: the pixels whose block1_conv2 feature sees ``mask`` (a 5x5 dilation),
  on the host (NumPy)."""
  m = np.pad(np.asarray(mask, bool), 2)
  h, w = m.shape[0] - 4, m.shape[1] - 4
  out = np.zeros((h, w), bool)
  for dy in range(5):
    for dx in range(5):
      out |= m[dy:dy + h, dx:dx + w]
  return out


def removal_seams(remove: np.ndarray) -> tuple[str, int]:
  """(axis, seams): object removal carves out ``remove`` (h, w) bool along the axis that
  needs fewer seams, one per masked position of the fullest row (or column) of its
  block1 footprint, since every seam takes one position per row."""
  foot = block1_footprint(remove)
  rows, cols = int(foot.sum(axis=1).max(initial=0)), int(foot.sum(axis=0).max(initial=0))
  return ("width", rows) if rows <= cols else ("height", cols)

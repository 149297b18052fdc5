"""Deep Network Resizing end to end, as one sequence of public phases.

    downscale to the working size -> prepare (features, Eq. 1-3 plan, targets, init)
    -> reconstruction chunks (Eq. 4) -> refinement chunks (section 3.3, optional)
    -> full resolution (lifted maps + low-frequency correction, :mod:`dnr_jax.fullres`)

Each phase is a jitted function whose static arguments are exactly the configuration
fields it reads, so e.g. another step count compiles nothing. Two entry points run
the *same* sequence (:func:`_run_phases`) with different runners:

- :func:`retarget_pure`: one pure function of arrays, rolled loops, one tile; ``jit``
  it once per (input size, output size) and ``vmap`` it over a batch.
- :func:`retarget`: the host call. Unrolled chunks with progress and ETA, a NaN stop,
  Ctrl-C keeps the best image so far, row tiles at full resolution (bounded memory),
  timings per phase; returns a :class:`Result`.

Both take ``(weights, image, out_hw, config)`` in that order.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from dnr_jax import deep_carving
from dnr_jax import fullres
from dnr_jax import importance
from dnr_jax import mapping
from dnr_jax import metrics
from dnr_jax import reconstruct
from dnr_jax import refine
from dnr_jax import resample
from dnr_jax import seams
from dnr_jax import vgg
from dnr_jax import config as config_lib
from dnr_jax.config import OperatorConfig
from dnr_jax.config import RefinementConfig
from dnr_jax.config import RetargetConfig

MIN_SIDE = 32  # block5_pool needs five 2x poolings to leave one position
MAX_ENLARGE = 2  # seam insertion duplicates each position at most once per run


class NumericalError(RuntimeError):
  """The loss became NaN or infinite."""


class Prepared(NamedTuple):
  plan: deep_carving.ResizePlan
  targets: dict  # loss layer -> F'_l (h', w', c)
  init: jax.Array  # (h', w', 3) float32 initial O at the working size
  # layer -> (h_l', w_l') Eq. 1 importance of every target F'_l, computed on the device so
  # that the host never has to fetch the target features themselves (~100 MB per image).
  target_importance: dict
  # () int32: which of deep_carving.candidate_operators made the plan, and (k,) float32
  # the semantic score (Eq. 5) of each candidate's pixel map after its audition steps
  # of Eq. 4 (:func:`_chosen_plan`; (1,) ones when there was nothing to choose).
  operator: jax.Array
  operator_scores: jax.Array
  # (k,) float32: the completeness (metrics.completeness, lower keeps more of the image)
  # of each candidate's audition image ((1,) zeros when there was nothing to choose).
  operator_completeness: jax.Array
  # (k,) float32: the fine coherence (metrics.fine_coherence at half size, lower invents
  # less) of each candidate's audition image ((1,) zeros when nothing to choose).
  operator_fine_coherence: jax.Array


# ----------------------------------------------------------------------------- sizes


class Sizes(NamedTuple):
  """The four sizes of one job (height, width) each."""

  image: tuple[int, int]
  out: tuple[int, int]
  work: tuple[int, int]  # the image at the working size (== image if small enough)
  work_out: tuple[int, int]  # the output at the working size

  @property
  def full_resolution(self) -> bool:
    """True when the method runs at a working size and the output is lifted back."""
    return self.work != self.image


def sizes(image_hw: tuple[int, int], out_hw: tuple[int, int], work_size: int,
          multiple: int = 1) -> Sizes:
  """Working sizes: the long side scaled to ``work_size`` (0 = no working size).

  With ``multiple > 1`` each working side is then rounded to a multiple of it (small
  images too), so photos of nearly the same aspect ratio share a working shape: one
  compilation and one vmapped batch (:mod:`dnr_jax.batching`). An axis that does not
  change at full resolution does not change at the working size; one that does changes
  by at least one working pixel.
  """
  (h, w), (oh, ow) = image_hw, out_hw
  scale = 1.0
  if work_size > 0 and max(h, w) > work_size:
    scale = work_size / max(h, w)
  if scale == 1.0 and multiple <= 1:
    return Sizes((h, w), (oh, ow), (h, w), (oh, ow))

  def axis(full, out):
    n = round(full * scale)
    if multiple > 1:
      n = multiple * max(1, round(n / multiple))
    n = max(MIN_SIDE, n)
    if out == full:
      return n, n
    per_px = n / full if multiple > 1 else scale  # (anisotropic once rounded)
    if out > full:  # enlarging: at least one working pixel, at most 2x
      return n, min(2 * n, max(n + 1, round(out * per_px)))
    return n, min(n - 1, max(MIN_SIDE, round(out * per_px)))

  (wh, woh), (ww, wow) = axis(h, oh), axis(w, ow)
  return Sizes((h, w), (oh, ow), (wh, ww), (woh, wow))


def validate(image_hw: tuple[int, int], out_hw: tuple[int, int], cfg: RetargetConfig,
             arch: str = "vgg19") -> Sizes:
  """The one place where sizes and configurations are checked; returns the job's sizes.

  Raises ValueError with a message that names the problem.
  """
  (h, w), (oh, ow) = image_hw, out_hw
  if min(h, w) < MIN_SIDE:
    raise ValueError(f"input {w}x{h} is below VGG19's {MIN_SIDE} px per side")
  if oh < MIN_SIDE or ow < MIN_SIDE:
    raise ValueError(f"target size {ow}x{oh} is below VGG19's {MIN_SIDE} px per side")
  if oh > MAX_ENLARGE * h or ow > MAX_ENLARGE * w:
    raise ValueError(f"target {ow}x{oh} is more than {MAX_ENLARGE}x the input {w}x{h} on an "
                     "axis: enlarge in several runs")
  if cfg.work_size and cfg.work_size < 2 * MIN_SIDE:
    raise ValueError(f"work_size must be 0 (off) or at least {2 * MIN_SIDE}, got "
                     f"{cfg.work_size}")
  layers = deep_carving.sort_layers(cfg.operator.layers, arch)
  missing = [l for l, lam in cfg.reconstruction.loss_layers if lam > 0 and l not in layers]
  if missing:
    raise ValueError(f"loss layers {missing} are not among the operator layers {layers}")
  if cfg.reconstruction.init == "seams" and vgg.layer_stride(layers[0], arch) != 1:
    raise ValueError(f"init='seams' needs a block1 layer among the operator layers "
                     f"(the shallowest is {layers[0]})")
  s = sizes(image_hw, out_hw, cfg.work_size, cfg.work_multiple)
  if s.full_resolution and vgg.layer_stride(layers[0], arch) != 1:
    raise ValueError("a working size needs a block1 layer among the operator layers, to "
                     "lift its plan to full resolution")
  return s


# ----------------------------------------------------------------------------- phases


def downscale(image, work_hw: tuple[int, int], size_classes: bool = False) -> jax.Array:
  """The image at the working size (antialiased linear, sparse taps), float32 0..255.

  ``size_classes=True`` (host callers): the same resize in NumPy on the host
  (:func:`resample.resize_host`), so photos of any size compile nothing here; the
  result equals the jitted one up to float rounding.
  """
  if tuple(image.shape[:2]) == tuple(work_hw):
    if isinstance(image, np.ndarray):  # no eager convert (one compilation per shape)
      return jax.device_put(image.astype(np.float32))
    return jnp.asarray(image).astype(jnp.float32)
  if not size_classes:
    return _resize(image, tuple(work_hw), "linear")
  return jax.device_put(resample.resize_host(np.asarray(image), tuple(work_hw), "linear"))


def _lambdas(loss_layers) -> dict[str, float]:
  return dict(loss_layers)


def initial_image(image: jax.Array, plan: deep_carving.ResizePlan, out_hw, init: str,
                  seed: int, shallow: str) -> jax.Array:
  """Section 4.3 initialisations: linear scale, the block1 seams (+ warp), or noise."""
  if init == "linear":
    return jax.image.resize(image, (*out_hw, 3), "linear", antialias=True)
  if init == "seams":
    return deep_carving.apply_plan_to_layer(image, plan, shallow)
  key = jax.random.PRNGKey(seed)
  return jax.random.uniform(key, (*out_hw, 3), jnp.float32, 0.0, 255.0)


def _order(operator: OperatorConfig, image_hw, out_hw) -> str:
  """The static order a plan is built in ("auto" is resolved by :func:`choose_order`)."""
  if operator.axis_order == "auto":
    return "width_first"
  return operator.axis_order


def _semantic_crop(weights, image, sem_energy, axis: int, crop: int, layers, count: int):
  """``crop_choice`` "semantic": (offset, the kept crop's features {layer: (h, w, c)}).

  ``sem_energy`` (h, w) is the uncropped image's Eq. 5 summand (``metrics.SEMANTIC_LAYER``
  energy per position); its column sums rank the windows
  (:func:`deep_carving.crop_candidates`). The ``count`` best crops go through VGG as one
  batch, and the crop whose own Eq. 5 numerator is highest is kept (the crop's border
  features see its edge, which the ranking cannot), its features reused for the plan.
  Cost: ``count`` forward passes of the crop instead of one."""
  n = image.shape[axis]
  sem = metrics.SEMANTIC_LAYER
  starts = deep_carving.crop_candidates(sem_energy if axis == 1 else sem_energy.T, n, crop,
                                        vgg.layer_stride(layers[-1], weights.arch), sem,
                                        count, weights.arch)
  windows = jax.vmap(lambda s: jax.lax.dynamic_slice_in_dim(image, s, n - crop, axis=axis))(
      starts)
  feats = vgg.features(weights, windows, tuple(dict.fromkeys((*layers, sem))))
  # Ties (to float rounding) go to the better-ranked window: argmax takes the first.
  best = jnp.argmax(jnp.sum(jnp.square(feats[sem]), axis=(1, 2, 3)))
  return starts[best], {k: feats[k][best] for k in layers}


def _deep_plan(weights, image, out_hw, operator: OperatorConfig, keep=None, remove=None,
               feats=None) -> deep_carving.ResizePlan:
  """The deep operator's plan of one (working-size) image: its features (one forward
  pass) -> :func:`deep_carving.plan_resize`. With ``operator.crop_share`` (one shrinking
  axis, no masks) a window is cropped first (:func:`deep_carving.crop_size`; chosen by
  :func:`_semantic_crop` or :func:`deep_carving.crop_offset`), the crop
  gets its own forward pass (its border features then see the zero padding, like the
  output's) and plan (by default the warp alone, ``operator.crop_remainder``), and the
  plan is shifted back onto the whole image (:func:`deep_carving.uncrop`), so every
  later phase sees an ordinary plan. ``feats``: the image's features {layer: (h, w, c)}
  when already computed (they must hold ``operator.layers`` and
  ``metrics.SEMANTIC_LAYER``; :func:`_chosen_plan` shares one forward pass)."""
  layers = deep_carving.sort_layers(operator.layers, weights.arch)
  order = _order(operator, image.shape[:2], out_hw)
  axis, crop = deep_carving.crop_size(operator, image.shape[:2], out_hw, weights.arch,
                                      masked=keep is not None or remove is not None)
  semantic = bool(crop) and operator.crop_choice == "semantic"
  sem = metrics.SEMANTIC_LAYER
  wanted = tuple(dict.fromkeys((*layers, sem))) if semantic else layers
  if feats is None:
    feats = {k: v[0] for k, v in vgg.features(weights, image[None], wanted).items()}
  feats = {k: feats[k] for k in wanted}
  if semantic:  # Eq. 5's summand of the uncropped image, computed on the way down
    sem_energy = jnp.sum(jnp.square(feats[sem]), axis=-1)
    feats = {k: feats[k] for k in layers}
  if not crop:
    return deep_carving.plan_resize(feats, image.shape[:2], out_hw, operator, weights.arch,
                                    keep=keep, remove=remove, order=order)
  orient = (lambda x: x) if axis == 1 else (lambda x: jnp.swapaxes(x, 0, 1))
  full_imp = {l: orient(importance.importance_map(f)) for l, f in feats.items()}
  if semantic:
    offset, feats = _semantic_crop(weights, image, sem_energy, axis, crop, layers,
                                   operator.crop_candidates)
  else:
    offset = deep_carving.crop_offset(full_imp[layers[-1]], image.shape[axis], crop,
                                      layers[-1], weights.arch)
    window = jax.lax.dynamic_slice_in_dim(image, offset, image.shape[axis] - crop, axis=axis)
    feats = {k: v[0] for k, v in vgg.features(weights, window[None], layers).items()}
  window_hw = list(image.shape[:2])
  window_hw[axis] -= crop
  thresholds = None
  if operator.crop_remainder == "global_stop":
    pct = deep_carving.stop_percentile(operator, image.shape[axis], out_hw[axis])
    thresholds = {l: jnp.percentile(full_imp[l], pct) for l in layers}
  elif operator.crop_remainder == "warp":
    operator = dataclasses.replace(operator, use_seams=False)
  plan = deep_carving.plan_resize(feats, tuple(window_hw), out_hw, operator, weights.arch,
                                  order=order, stop_thresholds=thresholds)
  name = "width" if axis == 1 else "height"
  cells = max(1, round(image.shape[axis] / operator.grid_cell))  # a whole-image plan's
  return plan._replace(**{name: deep_carving.uncrop(getattr(plan, name), offset, full_imp,
                                                    weights.arch, cells)})


def _chosen_plan(weights, image, out_hw, operator: OperatorConfig, loss_layers,
                 learning_rate: float, keep=None, remove=None):
  """(plan, index, scores, lost, torn): of the operators
  :func:`deep_carving.candidate_operators` lists (the configured one, then
  ``operator.alternatives`` for a one-axis shrink without masks), the plan whose image
  keeps the most of the input's deep features: the highest semantic score (Eq. 5) less
  ``operator.alternative_completeness_weight`` x the image's completeness
  (:func:`metrics.completeness`: the input's patches it lost) and
  ``operator.alternative_fine_coherence_weight`` x its fine coherence
  (:func:`metrics.fine_coherence`, half size: what it invented, a torn object), an
  alternative only by more than ``operator.alternative_margin``, ties to the configured
  operator; ``scores``, ``lost`` and ``torn`` (k,) hold each candidate's. Each
  candidate's image is its pixel map applied to the image (the reconstruction's
  starting point) after ``operator.alternative_steps`` steps of Eq. 4 (all candidates
  as one vmapped batch) when any candidate carves seams
  (:func:`deep_carving.candidates_carve_seams`): a seams image's tears raise its deep
  energy, which the reconstruction then smooths away (on RetargetMe the raw pixel map
  picked the seams where they ended lower). A choice among resamplings (crop, warp)
  scores the raw pixel maps: on the RetargetMe dev half it chose about as well without
  the steps. Eq. 5 is also the criterion of :func:`choose_order` and the semantic crop.
  All plans are built (static shapes: one executable, vmappable); cost per alternative:
  a plan, the audition steps, a forward pass of an output-size image, a completeness at
  96 px high (~0.07 s at 640x480), a fine coherence at half size (~0.3 s; the full
  image's forward pass is computed once, here)."""
  masked = keep is not None or remove is not None
  cands = deep_carving.candidate_operators(operator, image.shape[:2], out_hw, masked,
                                          weights.arch)
  if len(cands) == 1:
    return (_deep_plan(weights, image, out_hw, cands[0][1], keep, remove),
            jnp.zeros((), jnp.int32), jnp.ones((1,), jnp.float32),
            jnp.zeros((1,), jnp.float32), jnp.zeros((1,), jnp.float32))
  # One forward pass of the image for every candidate's plan and the score's denominator.
  sem = metrics.SEMANTIC_LAYER
  layers = deep_carving.sort_layers(operator.layers, weights.arch)
  feats = {k: v[0] for k, v in vgg.features(
      weights, image[None], tuple(dict.fromkeys((*layers, sem)))).items()}
  plans = [_deep_plan(weights, image, out_hw, op, keep, remove, feats) for _, op in cands]
  shallow = layers[0]
  pictures = jnp.stack([deep_carving.apply_plan_to_layer(image, p, shallow) for p in plans])
  if operator.alternative_steps and deep_carving.candidates_carve_seams(
      operator, image.shape[:2], out_hw, masked, weights.arch):
    lossy = tuple(l for l, lam in loss_layers if lam > 0)
    targets = {l: jnp.stack([p.targets[l] for p in plans]) for l in lossy}

    def audition(t, start):
      state = reconstruct.init_state(start, learning_rate)
      state, _ = reconstruct.run_chunk(_recon_step(weights, t, loss_layers, learning_rate),
                                       state, operator.alternative_steps,
                                       unroll=reconstruct.default_unroll())
      return final_image(state)

    pictures = jax.vmap(audition)(targets, pictures)
  kept = jnp.sum(jnp.square(vgg.features(weights, pictures, (sem,))[sem]), axis=(1, 2, 3))
  scores = kept / jnp.sum(jnp.square(feats[sem]))
  # What each picture lost of the image's patches (metrics.completeness, at 96 px high):
  # Eq. 5 does not see a cut object whose neighbours carry as much deep energy.
  lost = jax.vmap(lambda p: metrics.completeness(p, image))(pictures)
  # What each picture invented at half size (metrics.fine_coherence): the seams' tears
  # through an object (a cup's wall in a jagged step) are too fine for the 96-px scores.
  torn = jax.vmap(lambda p: metrics.fine_coherence(jnp.clip(p, 0.0, 255.0), image))(pictures)
  # An alternative must beat the configured operator by alternative_margin; the first
  # of equals wins (the configured one).
  handicap = jnp.where(jnp.arange(scores.shape[0]) > 0, operator.alternative_margin, 0.0)
  merit = (scores - operator.alternative_completeness_weight * lost
           - operator.alternative_fine_coherence_weight * torn - handicap)
  best = jnp.argmax(merit).astype(jnp.int32)
  plan = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs)[best], *plans)
  return (plan, best, scores.astype(jnp.float32), lost.astype(jnp.float32),
          torn.astype(jnp.float32))


@functools.partial(jax.jit, static_argnames=("out_hw", "operator", "loss_layers", "init", "seed",
                                             "learning_rate"))
def _prepare(weights, image, out_hw, operator: OperatorConfig, loss_layers, init, seed,
             learning_rate, keep=None, remove=None):
  layers = deep_carving.sort_layers(operator.layers, weights.arch)
  plan, choice, choice_scores, choice_lost, choice_torn = _chosen_plan(
      weights, image, out_hw, operator, loss_layers, learning_rate,
      None if keep is None else keep > 0.5, None if remove is None else remove > 0.5)
  targets = {l: plan.targets[l] for l, lam in loss_layers if lam > 0}
  target_imp = {l: importance.importance_map(t) for l, t in plan.targets.items()}
  start = initial_image(image, plan, out_hw, init, seed, layers[0])
  if keep is not None:
    # Kept pixels are copied by the pixel map (snapped to whole columns) and the Eq. 4
    # loop holds them there (reconstruct.FROZEN); the init must carry them too.
    frozen = deep_carving.apply_plan_to_layer(keep.astype(jnp.float32), plan, layers[0]) > 0.999
    copied = (start if init == "seams"  # (the seams init is that very image)
              else deep_carving.apply_plan_to_layer(image, plan, layers[0]))
    start = jnp.where(frozen[..., None], copied, start)
    targets[reconstruct.FROZEN] = (frozen[..., None], copied)
  return Prepared(plan, targets, start, target_imp, choice, choice_scores, choice_lost,
                  choice_torn)


def prepare(weights: vgg.VGGWeights, image: jax.Array, out_hw: tuple[int, int],
            cfg: RetargetConfig, keep: jax.Array | None = None,
            remove: jax.Array | None = None) -> Prepared:
  """One forward pass of the (working-size) image, the deep plan, targets and init.

  ``keep`` / ``remove``: optional (h, w) masks at the working size (nonzero = masked;
  see :func:`working_mask`): kept pixels are copied unchanged and held by the Eq. 4
  loop; ``remove`` makes the plan an object removal (``out_hw`` from
  :func:`removal_size`). Jitted per (image size, ``out_hw``, operator config, loss
  layers, init, seed, which masks are given).
  """
  chex.assert_rank(image, 3)
  for m in (keep, remove):
    if m is not None:
      chex.assert_shape(m, image.shape[:2])
  rc = cfg.reconstruction
  as_mask = lambda m: None if m is None else jnp.asarray(m, jnp.float32)  # noqa: E731
  return _prepare(weights, image.astype(jnp.float32), tuple(out_hw), cfg.operator,
                  rc.loss_layers, rc.init, rc.seed, rc.learning_rate, as_mask(keep),
                  as_mask(remove))


@functools.partial(jax.jit, static_argnames=("out_hw", "operator"))
def _order_scores(weights, image, out_hw, operator: OperatorConfig, keep=None):
  layers = deep_carving.sort_layers(operator.layers, weights.arch)
  feats = {k: v[0] for k, v in vgg.features(weights, image[None], layers).items()}
  keep = None if keep is None else keep > 0.5
  scores = []
  for o in ("width_first", "height_first"):
    plan = deep_carving.plan_resize(feats, image.shape[:2], out_hw, operator, weights.arch,
                                    keep=keep, order=o)
    seams_image = deep_carving.apply_plan_to_layer(image, plan, layers[0])
    scores.append(metrics.semantic_score(weights, seams_image, image))
  return tuple(scores)


def choose_order(weights: vgg.VGGWeights, image: jax.Array, out_hw: tuple[int, int],
                 cfg: RetargetConfig, keep=None) -> tuple[str, dict]:
  """The axis order for a job that changes both axes: both plans are built on the
  (working-size) image, each plan's pixel map (its seams and warp, the
  reconstruction's starting point) is applied to the image, and the order whose image
  keeps more of the input's deep features wins: the semantic score (Eq. 5,
  ``metrics.semantic_score``) of the two, ties to width first. Returns (order, scores).
  Measured on the 7 package photos at 75% x 75% (docs/RESULTS.md, "Editing"): the
  importance kept by the targets (``deep_carving.kept_importance``) chose height first
  on 3 photos, 2 of which then scored lower than width first; this criterion chose the
  order with the better output on all 5 photos where both orders were run. Cost: one forward pass,
  two plans and two forward passes of the small images; nothing when one axis is
  unchanged or ``cfg.operator.axis_order`` is fixed."""
  h, w = image.shape[:2]
  if cfg.operator.axis_order != "auto" or out_hw[0] == h or out_hw[1] == w:
    return _order(cfg.operator, (h, w), out_hw), {}
  wf, hf = (float(x) for x in _order_scores(
      weights, jnp.asarray(image, jnp.float32), tuple(out_hw), cfg.operator,
      None if keep is None else jnp.asarray(keep, jnp.float32)))
  return ("height_first" if hf > wf else "width_first"), {"width_first": wf,
                                                          "height_first": hf}


def working_mask(mask, work_hw: tuple[int, int]):
  """A full-size mask at the working size, conservatively: a working pixel is in the
  mask if any full-size pixel it covers is (float32 0/1; NumPy in, NumPy out, on the
  host; a jax array is resized with jax, for :func:`retarget_pure`)."""
  if isinstance(mask, np.ndarray):
    m = mask.astype(bool)
    if tuple(m.shape) == tuple(work_hw):
      return m.astype(np.float32)
    small = resample.resize_host(m.astype(np.float32)[..., None], tuple(work_hw),
                                 "linear")[..., 0]
    return (small > 1e-3).astype(np.float32)
  m = (jnp.asarray(mask) != 0).astype(jnp.float32)
  if tuple(m.shape) == tuple(work_hw):
    return m
  return (resample.resize(m[..., None], tuple(work_hw), "linear")[..., 0] > 1e-3).astype(
      jnp.float32)


class KeepInfeasible(ValueError):
  """The keep mask leaves too little to remove for the requested size."""


def keep_limits(keep: np.ndarray, image_hw: tuple[int, int], cfg: RetargetConfig
                ) -> tuple[int, int]:
  """The smallest (H, W) to which ``keep`` (H, W) can shrink the image: at the working
  size, the most disjoint 8-connected seams that avoid every block1 position that sees
  a kept pixel (the same DP and batching as the plan), per axis; scaled back. The warp
  adds nothing once those seams are gone: every remaining column then holds a kept
  pixel. Host function; one small compilation per working shape."""
  s = sizes(image_hw, image_hw, cfg.work_size, cfg.work_multiple)
  foot = deep_carving.block1_footprint(working_mask(np.asarray(keep), s.work) > 0)
  out = []
  for axis, full in ((0, image_hw[0]), (1, image_hw[1])):
    m = foot if axis == 1 else foot.T
    n = int(_free_seams(jax.device_put(m.astype(np.float32)),
                        batch=seams.default_batch(m.shape[1])))
    work_min = m.shape[1] - n
    out.append(min(full, int(np.ceil(work_min * full / m.shape[1]))))
  return tuple(out)


@functools.partial(jax.jit, static_argnames=("batch",))
def _free_seams(forbidden, batch):
  energy = forbidden * seams.FORBIDDEN
  w = forbidden.shape[1]
  return seams.carve_batched(energy, w - 1, w - 1, seams.fixed_energy_fn, batch,
                             limit=seams.FORBIDDEN_LIMIT).num_removed


def removal_size(remove: np.ndarray, image_hw: tuple[int, int], cfg: RetargetConfig
                 ) -> tuple[str, tuple[int, int]]:
  """(axis, size): the size to which object removal carves ``remove`` (H, W) out, along
  the axis that needs fewer seams (:func:`deep_carving.removal_seams` at the working
  size, scaled back to full resolution)."""
  s = sizes(image_hw, image_hw, cfg.work_size, cfg.work_multiple)
  axis, k = deep_carving.removal_seams(working_mask(np.asarray(remove), s.work) > 0)
  h, w = image_hw
  if axis == "width":
    return axis, (h, w - int(np.ceil(k * w / s.work[1])))
  return axis, (h - int(np.ceil(k * h / s.work[0])), w)


def _recon_step(weights, targets, loss_layers, learning_rate):
  loss = functools.partial(reconstruct.feature_loss, weights, targets=targets,
                           lambdas=_lambdas(loss_layers))
  return reconstruct.make_step(loss, learning_rate, project=reconstruct.projection(targets))


@functools.partial(jax.jit, static_argnames=("loss_layers", "learning_rate", "n", "unroll"))
def _reconstruction_chunk(weights, targets, state, loss_layers, learning_rate, n, unroll):
  return reconstruct.run_chunk(_recon_step(weights, targets, loss_layers, learning_rate),
                               state, n, unroll=unroll)


def reconstruction_init(image: jax.Array, cfg: RetargetConfig) -> reconstruct.ReconState:
  return reconstruct.init_state(image, cfg.reconstruction.learning_rate)


def reconstruction_chunk(weights: vgg.VGGWeights, targets: dict, state, cfg: RetargetConfig,
                         n: int, unroll: bool = True):
  """``n`` Adam steps of Eq. 4: returns (state, losses (n,)). Jitted per (loss layers,
  learning rate, n, unroll); ``unroll=False`` is a rolled loop (accelerators)."""
  rc = cfg.reconstruction
  return _reconstruction_chunk(weights, targets, state, rc.loss_layers, rc.learning_rate, n,
                               unroll)


def _refine_step(weights, targets, image, loss_layers, rcfg: RefinementConfig):
  feat_loss = functools.partial(reconstruct.feature_loss, weights, targets=targets,
                                lambdas=_lambdas(loss_layers))
  loss = refine.make_loss(feat_loss, image, rcfg)
  return reconstruct.make_step(loss, rcfg.learning_rate, project=lambda t: t)


@functools.partial(jax.jit, static_argnames=("loss_layers", "rcfg", "n", "unroll"))
def _refinement_chunk(weights, targets, image, state, loss_layers, rcfg, n, unroll):
  return reconstruct.run_chunk(_refine_step(weights, targets, image, loss_layers, rcfg),
                               state, n, unroll=unroll)


def refinement_init(image: jax.Array, cfg: RetargetConfig) -> reconstruct.ReconState:
  h, w = image.shape[:2]
  theta = jnp.zeros(refine.control_shape(h, w, cfg.refinement.control_cell), jnp.float32)
  return reconstruct.init_state(theta, cfg.refinement.learning_rate)


def refinement_chunk(weights: vgg.VGGWeights, targets: dict, image: jax.Array, state,
                     cfg: RetargetConfig, n: int, unroll: bool = True):
  """``n`` Adam steps of the grid refinement of ``image``: (state, losses (n,))."""
  rcfg = dataclasses.replace(cfg.refinement, steps=0)  # the step count is not read here
  return _refinement_chunk(weights, targets, image, state, cfg.reconstruction.loss_layers,
                           rcfg, n, unroll)


@functools.partial(jax.jit, static_argnames=("max_shift",))
def _apply_refinement(image, theta, max_shift):
  return refine.warp_image(image, theta, max_shift)


def apply_refinement(image: jax.Array, state, cfg: RetargetConfig) -> jax.Array:
  return _apply_refinement(image, final_image(state), cfg.refinement.max_shift)


def final_image(state: reconstruct.ReconState) -> jax.Array:
  """The best iterate, or the last one if no step ran yet."""
  return jnp.where(jnp.isfinite(state.best_loss), state.best_image, state.image)


# ----------------------------------------------------------------------------- batched phases
# The same phases over a leading batch axis (vmap inside one jit). Inputs placed with a
# NamedSharding over a device mesh keep it: XLA partitions the batch over the devices
# (see dnr_jax/batching.py), the same code on one CPU or eight GPUs.


@functools.partial(jax.jit, static_argnames=("out_hw", "operator", "loss_layers", "init", "seed",
                                             "learning_rate"))
def _prepare_batch(weights, images, out_hw, operator, loss_layers, init, seed, learning_rate):
  def one(im):
    prep = _prepare(weights, im, out_hw, operator, loss_layers, init, seed, learning_rate)
    return prep, reconstruct.init_state(prep.init, learning_rate)
  return jax.vmap(one)(images)


def prepare_batch(weights: vgg.VGGWeights, images: jax.Array, out_hw: tuple[int, int],
                  cfg: RetargetConfig) -> tuple[Prepared, reconstruct.ReconState]:
  """:func:`prepare` of (B, h, w, 3) working-size images, and the Eq. 4 loop's initial
  state (:func:`reconstruction_init` of each), in one executable; every leaf gains
  axis 0."""
  chex.assert_rank(images, 4)
  rc = cfg.reconstruction
  return _prepare_batch(weights, images.astype(jnp.float32), tuple(out_hw), cfg.operator,
                        rc.loss_layers, rc.init, rc.seed, rc.learning_rate)


@functools.partial(jax.jit, static_argnames=("loss_layers", "learning_rate", "n", "unroll"))
def _reconstruction_chunk_batch(weights, targets, state, loss_layers, learning_rate, n, unroll):
  return jax.vmap(lambda t, st: reconstruct.run_chunk(
      _recon_step(weights, t, loss_layers, learning_rate), st, n, unroll=unroll))(targets, state)


def reconstruction_chunk_batch(weights: vgg.VGGWeights, targets: dict, state, cfg: RetargetConfig,
                               n: int, unroll: bool = True):
  """:func:`reconstruction_chunk` over a batch: (state, losses (B, n))."""
  rc = cfg.reconstruction
  return _reconstruction_chunk_batch(weights, targets, state, rc.loss_layers, rc.learning_rate,
                                     n, unroll)


@functools.partial(jax.jit, static_argnames=("control_cell", "learning_rate"))
def _refinement_init_batch(images, control_cell, learning_rate):
  h, w = images.shape[1:3]
  theta = jnp.zeros((images.shape[0], *refine.control_shape(h, w, control_cell)), jnp.float32)
  return jax.vmap(lambda t: reconstruct.init_state(t, learning_rate))(theta)


def refinement_init_batch(images: jax.Array, cfg: RetargetConfig) -> reconstruct.ReconState:
  return _refinement_init_batch(images, cfg.refinement.control_cell, cfg.refinement.learning_rate)


@functools.partial(jax.jit, static_argnames=("loss_layers", "rcfg", "n", "unroll"))
def _refinement_chunk_batch(weights, targets, images, state, loss_layers, rcfg, n, unroll):
  return jax.vmap(lambda t, im, st: reconstruct.run_chunk(
      _refine_step(weights, t, im, loss_layers, rcfg), st, n, unroll=unroll))(targets, images,
                                                                            state)


def refinement_chunk_batch(weights: vgg.VGGWeights, targets: dict, images: jax.Array, state,
                           cfg: RetargetConfig, n: int, unroll: bool = True):
  """:func:`refinement_chunk` over a batch: (state, losses (B, n))."""
  rcfg = dataclasses.replace(cfg.refinement, steps=0)
  return _refinement_chunk_batch(weights, targets, images, state,
                                 cfg.reconstruction.loss_layers, rcfg, n, unroll)


@functools.partial(jax.jit, static_argnames=("max_shift",))
def _apply_refinement_batch(images, states, max_shift):
  return jax.vmap(lambda im, st: refine.warp_image(im, final_image(st), max_shift))(images,
                                                                                    states)


def apply_refinement_batch(images: jax.Array, states, cfg: RetargetConfig) -> jax.Array:
  return _apply_refinement_batch(images, states, cfg.refinement.max_shift)


def final_image_batch(state: reconstruct.ReconState) -> np.ndarray:
  """:func:`final_image` of a batched state, on the host (no compilation per shape)."""
  best_loss, best, last = jax.device_get((state.best_loss, state.best_image, state.image))
  return np.where(np.isfinite(best_loss)[:, None, None, None], best, last)


# ----------------------------------------------------------------------------- full resolution


def _lift(plan: deep_carving.AxisPlan, shallow: str) -> fullres.AxisLift:
  kept = plan.kept[shallow]
  source_hw = plan.importance[shallow].shape  # (kept is wider when enlarging)
  return fullres.AxisLift(kept, plan.num_valid[shallow], plan.cell_widths,  # (NumPy sizes:
                          np.asarray(source_hw, np.int32),  # no eager op)
                          plan.num_cells if isinstance(plan.num_cells, jax.Array)  # (traced
                          else np.asarray(plan.num_cells, np.int32))  # in retarget_pure)


@functools.partial(jax.jit, static_argnames=("out_len", "tile"))
def _correction_tile(final, init, out_hw, start, tile, out_len):
  return fullres.upsampled_tile(final - init, out_hw, start, tile, out_len)


def full_resolution(image: jax.Array, prep: Prepared, work_final: jax.Array, s: Sizes,
                    cfg: RetargetConfig, shallow: str, tile: int | None = None,
                    progress: Callable[[int, int], None] | None = None):
  """The output at full resolution: lifted maps on the full pixels + ``up(final - init)``.

  ``tile=None`` computes everything in one piece (pure, jit/vmap-able, returns a jax
  array); an integer runs host loops over row tiles of that many rows (memory bounded
  by the tile) on arrays padded to :func:`fullres.size_class` sizes (one compilation
  per size class, not per photo size) and returns a NumPy array. Both return float32
  0..255, (H', W', 3).
  """
  (h, w), (oh, ow) = s.image, s.out
  plan, init = prep.plan, prep.init
  if deep_carving.height_first(plan):
    total = w + oh + oh
  else:
    total = (h if plan.width is not None else 0) + (ow if plan.height is not None else 0) + oh
  done = [0]
  host = tile is not None
  cls = fullres.size_class if host else (lambda n: n)

  def run(fn, rows, cols, length):
    """``fn(start, n)`` -> rows [start, start + n) of a (rows, length, 3) result whose
    first ``cols`` columns are real; returns (rows, cols, 3)."""
    if not host:
      return fn(np.int32(0), rows)[:, :cols]
    report = (lambda d, _: progress(done[0] + d, total)) if progress else None
    out = fullres.tiled(lambda start: fn(start, tile), rows, tile, length, progress=report)
    done[0] += rows
    return out[:, :cols]

  def lift_axis(src, axis_plan, out_cols):
    """``src`` (R, C, 3) -> (R, out_cols, 3) through one axis's lifted plan."""
    rows, cols = src.shape[:2]
    lift, length = _lift(axis_plan, shallow), cls(out_cols)
    size = (np.int32(rows), np.int32(cols))
    if not host:
      return run(lambda st, n: fullres.lifted_tile(src, lift, st, size, np.int32(out_cols),
                                                   length), rows, out_cols, length)
    # Host: each call sees one band of rows padded to the width's size class, and the
    # plan padded to a square of its long side, so the compilation depends on neither
    # the photo's height nor the working shape (a folder of photos shares it).
    src = np.asarray(src)
    lift = fullres.pad_lift(jax.device_get(lift))
    band = lambda st: jax.device_put(fullres.pad_to(src[st:st + tile], (tile, cls(cols))))
    return run(lambda st, n: fullres.lifted_tile(band(int(st)), lift, st, size,
                                                 np.int32(out_cols), length),
               rows, out_cols, length)

  xp = np if host else jnp
  if cfg.reconstruction.init == "seams":
    base = image
    steps = [(plan.width, False, ow), (plan.height, True, oh)]
    if deep_carving.height_first(plan):
      steps.reverse()
    for axis_plan, transposed, n_out in steps:
      if axis_plan is None:
        continue
      if transposed:
        base = xp.swapaxes(lift_axis(xp.swapaxes(base, 0, 1), axis_plan, n_out), 0, 1)
      else:
        base = lift_axis(base, axis_plan, n_out)
  elif cfg.reconstruction.init == "linear":
    base = _resize(image, (oh, ow), "linear")
  else:  # noise init: the input's detail has no place to go; upsample the result
    base = _resize(init, (oh, ow), "cubic")
  if not host:
    out_size = (np.int32(oh), np.int32(ow))
    corr = run(lambda st, n: _correction_tile(work_final, init, out_size, st, n, (oh, ow)),
               oh, ow, ow)
    return jnp.clip(base + corr, 0.0, 255.0)
  # Host: the low-frequency correction is a small image upsampled: NumPy, no compilation.
  fresh = base is not image and isinstance(base, np.ndarray) and base.flags.writeable
  out = base if fresh and base.dtype == np.float32 else np.array(base, np.float32)
  resample.resize_host(np.asarray(work_final, np.float32) - np.asarray(init, np.float32),
                       (oh, ow), "cubic", add_to=out)
  if progress:
    progress(total, total)
  return np.clip(out, 0.0, 255.0, out=out)


def full_resolution_tiled(image, prep: Prepared, work_final, s: Sizes, cfg: RetargetConfig,
                          shallow: str, progress: Callable[[int, int], None] | None = None
                          ) -> np.ndarray:
  """:func:`full_resolution` in row tiles sized for a 64 MB budget (the host path)."""
  cls = fullres.size_class
  tile = fullres.tile_rows(max(cls(s.out[1]), cls(s.image[1])), cls(s.image[1]))
  return full_resolution(np.asarray(image), prep, jax.device_put(work_final), s, cfg, shallow,
                         tile=tile, progress=progress)


@functools.partial(jax.jit, static_argnames=("out_hw", "kind"))
def _resize(image, out_hw, kind):
  return resample.resize(image, out_hw, kind)


# ----------------------------------------------------------------------------- the sequence


class _Runner(NamedTuple):
  """How :func:`_run_phases` executes: pure/rolled or host/chunked."""

  phase: Callable[[str, Callable[[], Any]], Any]  # (name, thunk) -> value (timed, progress)
  optimise: Callable  # (name, chunk_fn, state, steps, finish) -> (state, losses, stopped)
  full_resolution: Callable  # (image, prep, work_final, sizes, shallow) -> output
  unroll: bool  # unrolled chunks or rolled loops (reconstruct.default_unroll)
  size_classes: bool  # host: full-size arrays padded to size classes (fewer compilations)


class _Outcome(NamedTuple):
  sizes: Sizes
  prep: Prepared
  recon: jax.Array
  work_output: jax.Array
  output: Any
  recon_losses: list
  refine_losses: list
  interrupted: bool
  order_scores: dict  # kept importance of both axis orders, when both axes change


def _run_phases(weights: vgg.VGGWeights, image: jax.Array, out_hw: tuple[int, int],
                cfg: RetargetConfig, runner: _Runner, keep=None, remove=None) -> _Outcome:
  """The one sequence of phases behind :func:`retarget` and :func:`retarget_pure`."""
  s = validate(tuple(image.shape[:2]), tuple(out_hw), cfg, weights.arch)
  for name, m in (("keep", keep), ("remove", remove)):
    if m is not None and tuple(m.shape) != tuple(image.shape[:2]):
      raise ValueError(f"the {name} mask is {m.shape[1]}x{m.shape[0]}, the image "
                       f"{image.shape[1]}x{image.shape[0]}: they must be the same size")
  weights = weights.replace(compute_dtype=config_lib.resolve_compute_dtype(
      cfg.compute_dtype, jax.default_backend()))
  shallow = deep_carving.sort_layers(cfg.operator.layers, weights.arch)[0]
  work = runner.phase("downscale", lambda: downscale(image, s.work, runner.size_classes))
  keep_w = None if keep is None else working_mask(keep, s.work)
  remove_w = None if remove is None else working_mask(remove, s.work)
  if runner.size_classes:  # the host call chooses the axis order by measurement; the pure
    # function cannot branch on data for a static order: width first unless fixed
    order, order_scores = choose_order(weights, work, s.work_out, cfg, keep_w)
  else:
    order, order_scores = _order(cfg.operator, s.work, s.work_out), {}
  cfg = dataclasses.replace(cfg, operator=dataclasses.replace(cfg.operator, axis_order=order))
  prep = runner.phase("prepare", lambda: prepare(weights, work, s.work_out, cfg, keep_w,
                                                 remove_w))

  def finish(work_final):
    if not s.full_resolution:
      return work_final
    return runner.full_resolution(image, prep, work_final, s, shallow)

  state, recon_losses, stopped = runner.optimise(
      "reconstruction",
      lambda st, n: reconstruction_chunk(weights, prep.targets, st, cfg, n, runner.unroll),
      reconstruction_init(prep.init, cfg),
      reconstruction_steps(s, cfg, keep is not None or remove is not None, weights.arch),
      lambda st: finish(final_image(st)))
  recon = final_image(state)
  work_out, refine_losses = recon, []
  if cfg.refinement.steps and not stopped:
    rstate, refine_losses, stopped = runner.optimise(
        "refinement",
        lambda st, n: refinement_chunk(weights, prep.targets, recon, st, cfg, n, runner.unroll),
        refinement_init(recon, cfg), cfg.refinement.steps,
        lambda st: finish(apply_refinement(recon, st, cfg)))
    work_out = apply_refinement(recon, rstate, cfg)
  output = runner.phase("full resolution", lambda: finish(work_out))
  return _Outcome(s, prep, recon, work_out, output, recon_losses, refine_losses, stopped,
                  order_scores)


def retarget_pure(weights: vgg.VGGWeights, image: jax.Array, out_hw: tuple[int, int],
                  config: RetargetConfig = RetargetConfig(),
                  keep: jax.Array | None = None) -> tuple[jax.Array, dict]:
  """The whole method as one pure function: (H, W, 3) 0..255 -> (H', W', 3) float32.

  ``jax.jit(retarget_pure, static_argnames=("out_hw", "config"))`` compiles once per
  (input size, output size); ``jax.vmap`` over ``image`` retargets a batch. Large
  inputs run at ``config.work_size`` and are lifted back to full resolution in one
  piece (device memory grows with the pixel count; :func:`retarget` tiles instead).
  ``keep`` (H, W), nonzero = keep, traces and vmaps like the image (see
  :func:`retarget`; object removal changes the size with the data, so it is host-only).
  With both axes changing, ``axis_order="auto"`` means width first here.
  Returns the output and a dict of scalars (final loss, seams removed per axis).
  """
  image = jnp.asarray(image)
  chex.assert_rank(image, 3)

  def optimise(name, chunk_fn, state, steps, finish):
    del name, finish
    state, losses = chunk_fn(state, steps) if steps else (state, jnp.zeros((0,)))
    return state, losses, False

  runner = _Runner(
      phase=lambda name, thunk: thunk(), optimise=optimise,
      full_resolution=lambda im, prep, fin, s, shallow: full_resolution(
          im, prep, fin, s, config, shallow), unroll=False, size_classes=False)
  res = _run_phases(weights, image, out_hw, config, runner, keep)
  aux = {"loss": reconstruct.feature_loss(weights, res.work_output, res.prep.targets,
                                          _lambdas(config.reconstruction.loss_layers))}
  if res.prep.plan.width is not None:
    aux["seams_width"] = res.prep.plan.width.num_removed
  if res.prep.plan.height is not None:
    aux["seams_height"] = res.prep.plan.height.num_removed
  return jnp.clip(res.output, 0, 255), aux


# ----------------------------------------------------------------------------- host API


@dataclasses.dataclass
class Result:
  """Everything :func:`retarget` produced (NumPy arrays, host side)."""

  output: np.ndarray  # (H', W', 3) uint8 at full resolution, the final G(O)
  reconstructed: np.ndarray  # (h', w', 3) uint8, O before refinement (working size)
  initial: np.ndarray  # (h', w', 3) uint8, the initialisation (working size)
  work_hw: tuple  # (h, w): the working size the method ran at (== input if small)
  importance: dict  # layer -> (h, w) Eq. 1 map of the (working-size) input
  removed: dict  # "width"/"height" -> {layer: (h, w) bool} removed positions
  seams_removed: dict  # "width"/"height" -> {layer: int}
  target_shapes: dict  # layer -> (h', w', c) target feature map shape
  target_importance: dict  # layer -> (h', w') Eq. 1 map of the target features F'
  cell_widths: dict  # "width"/"height" -> (n_cells,) warp output widths
  recon_losses: list
  refine_losses: list
  timings: dict  # seconds per phase
  interrupted: bool = False
  batch_size: int = 1  # images that shared the working-size phases (dnr_jax.batching)
  # How output pixels come from input pixels, one MapStage per run (two for object
  # removal); dnr_jax.mapping moves points and label masks with them.
  stages: list = dataclasses.field(default_factory=list)
  keep_held: float | None = None  # fraction of the kept (working) pixels copied unchanged
  removal_axis: str | None = None  # "width"/"height" when a remove mask was carved out
  stage_input: np.ndarray | None = None  # the last run's input (after a removal)
  axis_order: str | None = None  # "width_first"/"height_first" when both axes change
  order_scores: dict = dataclasses.field(default_factory=dict)  # kept importance of each
  # "width"/"height" -> (start, stop): the working-size columns (rows) the pixel map
  # samples, [0, w) unless the operator cropped (OperatorConfig.crop_share).
  kept_span: dict = dataclasses.field(default_factory=dict)
  # The operator whose plan was kept (deep_carving.candidate_operators: "crop+warp",
  # "seams+warp", "crop", "seams", ...) and, when there were alternatives, the semantic
  # score (Eq. 5) each candidate's image reached in its audition (Prepared).
  operator: str | None = None
  operator_scores: dict = dataclasses.field(default_factory=dict)
  # ... and the completeness of each candidate's image (lower kept more; Prepared).
  operator_completeness: dict = dataclasses.field(default_factory=dict)
  # ... and the fine coherence of each candidate's image (lower invented less; Prepared).
  operator_fine_coherence: dict = dataclasses.field(default_factory=dict)

  def map_points(self, points_xy) -> np.ndarray:
    """(N, 2) input (x, y) pixel positions -> where they are in the output."""
    return mapping.map_points(self, points_xy)

  def map_labels(self, labels) -> np.ndarray:
    """(H, W) label mask of the input -> (H', W') of the output (nearest source)."""
    return mapping.map_labels(self, labels)

  def source_coords(self) -> np.ndarray:
    """(H', W', 2) input (x, y) position of every output pixel."""
    return mapping.source_coords(self)


# progress(phase, done, total, info): info may hold "loss", "it_s", and "best", a
# thunk returning the best output so far (uint8, full resolution) once one exists.
ProgressFn = Callable[[str, int, int, dict], None]


def to_uint8(x) -> np.ndarray:
  """0..255 floats -> uint8 (rounded, clipped), on the host."""
  return np.clip(np.round(np.asarray(x)), 0, 255).astype(np.uint8)


def _host_optimise(progress: ProgressFn | None, chunk: int):
  """Host loop over jitted chunks: progress, NaN check, Ctrl-C keeps the best so far."""

  def optimise(phase, chunk_fn, state, steps, finish):
    losses: list[float] = []
    done = 0
    if progress and steps:  # the first chunk also compiles: show the phase now; the
      # starting point (e.g. the seams init) is already the best image so far
      progress(phase, 0, steps, {"best": functools.partial(lambda st: to_uint8(finish(st)), state)})
    try:
      while done < steps:
        n = min(chunk, steps - done)
        t0 = time.perf_counter()
        state, chunk_losses = chunk_fn(state, n)
        chunk_losses = np.asarray(chunk_losses)  # one host transfer per chunk
        dt = time.perf_counter() - t0
        if not np.all(np.isfinite(chunk_losses)):
          bad = done + int(np.argmin(np.isfinite(chunk_losses)))
          raise NumericalError(f"{phase}: the loss became {chunk_losses[bad - done]} at step "
                               f"{bad}; try a lower learning rate")
        losses.extend(float(x) for x in chunk_losses)
        done += n
        if progress:
          best = functools.partial(lambda st: to_uint8(finish(st)), state)
          progress(phase, done, steps, {"loss": losses[-1], "it_s": n / dt, "best": best})
    except KeyboardInterrupt:
      return state, losses, True
    return state, losses, False

  return optimise


def _retarget_one(weights: vgg.VGGWeights, image: np.ndarray, out_hw: tuple[int, int],
                  config: RetargetConfig, progress: ProgressFn | None, keep=None,
                  remove=None) -> Result:
  """:func:`retarget` of one stage (masks already checked)."""
  timings: dict[str, float] = {}  # (sizes and config are validated in _run_phases)

  def phase(name, thunk):
    if progress:
      progress(name, 0, 1, {})
    t0 = time.perf_counter()
    value = jax.block_until_ready(thunk())
    timings[name] = timings.get(name, 0.0) + time.perf_counter() - t0
    if progress:
      progress(name, 1, 1, {})
    return value

  optimise = _host_optimise(progress, config.reconstruction.chunk)

  def timed_optimise(name, chunk_fn, state, steps, finish):
    t0 = time.perf_counter()
    out = optimise(name, chunk_fn, state, steps, finish)
    if steps:  # (no phase to time when reconstruction_steps is 0)
      timings[name] = time.perf_counter() - t0
    return out

  def full_res(im, prep, fin, s, shallow):
    report = (lambda d, t: progress("full resolution", d, t, {})) if progress else None
    return full_resolution_tiled(im, prep, fin, s, config, shallow, report)

  runner = _Runner(phase=phase, optimise=timed_optimise, full_resolution=full_res,
                   unroll=reconstruct.default_unroll(), size_classes=True)
  res = _run_phases(weights, image, out_hw, config, runner, keep, remove)
  if not res.sizes.full_resolution:  # nothing happened in these two
    timings.pop("full resolution", None)
    timings.pop("downscale", None)

  result = make_result(res.sizes, res.prep, res.recon, res.output, res.recon_losses,
                       res.refine_losses, timings, res.interrupted,
                       operator_names=operator_names(
                           res.sizes, config, keep is not None or remove is not None,
                           weights.arch))
  result.order_scores = res.order_scores
  if keep is not None:
    kept = float(np.sum(working_mask(keep, res.sizes.work)))
    held = float(np.sum(np.asarray(res.prep.targets[reconstruct.FROZEN][0])))
    result.keep_held = held / max(kept, 1.0)
  return result


def retarget(weights: vgg.VGGWeights, image: np.ndarray, out_hw: tuple[int, int],
             config: RetargetConfig = RetargetConfig(),
             progress: ProgressFn | None = None, keep: np.ndarray | None = None,
             remove: np.ndarray | None = None) -> Result:
  """Retargets one RGB uint8 image (H, W, 3) to ``out_hw`` = (H', W').

  Each axis shrinks or enlarges (up to 2x: seam insertion in feature space). Inputs
  larger than ``config.work_size`` run at that size and are delivered at full
  resolution (:mod:`dnr_jax.fullres`), in row tiles so the memory stays bounded.

  Masks, (H, W), nonzero = masked:
    keep: a hard constraint: no seam at any layer crosses a position that sees a kept
      pixel and the warp does not resize the cells that hold them; kept pixels are
      copied and held fixed by the reconstruction. :class:`KeepInfeasible` (before
      any compute) when the size asks for more than :func:`keep_limits` allows.
    remove: object removal: first the masked region is carved out (seams only, along
      the axis that needs fewer, :func:`removal_size`), then the result is retargeted
      to ``out_hw`` (enlarging back if needed). ``Result.stages`` has both stages.

  Raises:
    ValueError: sizes/config/masks the method cannot run (message names them).
    NumericalError: the loss became NaN/Inf.
  """
  image = np.asarray(image)
  chex.assert_rank(image, 3)
  chex.assert_axis_dimension(image, 2, 3)
  out_hw = (int(out_hw[0]), int(out_hw[1]))
  masks = {}
  for name, m in (("keep", keep), ("remove", remove)):
    if m is not None:
      m = np.asarray(m)
      if m.shape != image.shape[:2]:
        raise ValueError(f"the {name} mask is {m.shape[1] if m.ndim > 1 else '?'}x"
                         f"{m.shape[0]}, the image {image.shape[1]}x{image.shape[0]}: they "
                         "must be the same size")
      masks[name] = m != 0
  keep, remove = masks.get("keep"), masks.get("remove")
  if remove is None:
    check_keep(keep, image.shape[:2], out_hw, config)
    return _retarget_one(weights, image, out_hw, config, progress, keep)
  if keep is not None and np.any(keep & remove):
    raise ValueError("the keep and remove masks overlap")
  axis, mid_hw = removal_size(remove, image.shape[:2], config)
  if not remove.any():
    mid_hw = image.shape[:2]
  if min(mid_hw) < MIN_SIDE:
    raise ValueError(f"the remove mask spans the image: removing it leaves "
                     f"{mid_hw[1]}x{mid_hw[0]}")
  validate(tuple(mid_hw), out_hw, config)
  check_keep(keep, image.shape[:2], mid_hw, config)
  first = _retarget_one(weights, image, mid_hw, config, progress, keep, remove)
  first.removal_axis = axis
  first.stage_input = image
  if first.interrupted or tuple(mid_hw) == out_hw:
    return first
  keep_mid = None if keep is None else mapping.map_labels(first, keep.astype(np.uint8)) > 0
  check_keep(keep_mid, mid_hw, out_hw, config)
  second = _retarget_one(weights, first.output, out_hw, config, progress, keep_mid)
  second.stages = first.stages + second.stages
  second.removal_axis = axis
  second.stage_input = first.output
  second.timings = {k: first.timings.get(k, 0.0) + second.timings.get(k, 0.0)
                    for k in {**first.timings, **second.timings}}
  second.seams_removed = {"removal": first.seams_removed, **second.seams_removed}
  return second


def check_keep(keep, image_hw, out_hw, cfg: RetargetConfig) -> None:
  """:class:`KeepInfeasible` with the largest feasible shrink, if ``out_hw`` asks for
  more than ``keep`` allows (:func:`keep_limits`)."""
  if keep is None or not np.any(keep):
    return
  if out_hw[0] >= image_hw[0] and out_hw[1] >= image_hw[1]:
    return
  min_h, min_w = keep_limits(keep, tuple(image_hw), cfg)
  if out_hw[0] < min_h or out_hw[1] < min_w:
    h, w = image_hw
    raise KeepInfeasible(
        f"the keep mask allows shrinking {w}x{h} to at least "
        f"{min(w, max(min_w, out_hw[1]))}x{min(h, max(min_h, out_hw[0]))} for this job "
        f"(width >= {min_w} px = ratio {min_w / w:.3f}, height >= {min_h} px = ratio "
        f"{min_h / h:.3f}); asked for {out_hw[1]}x{out_hw[0]}")


def _kept_span(plan: deep_carving.AxisPlan, n: int) -> tuple[int, int]:
  """(start, stop) of the working-size positions an axis plan's pixel map samples."""
  cm = plan.maps[max(plan.maps, key=lambda l: plan.maps[l].index0.shape[1])]  # block1's
  lo, hi = int(np.min(np.asarray(cm.index0))), int(np.max(np.asarray(cm.index1)))
  return max(0, lo), min(n, hi + 1)


def make_result(s: Sizes, prep: Prepared, recon, output, recon_losses: list,
                refine_losses: list, timings: dict, interrupted: bool = False,
                target_shapes: dict | None = None,
                operator_names: tuple[str, ...] | None = None) -> Result:
  """The host-side :class:`Result` of one image from its (unbatched) phase outputs.

  Only small arrays are read from ``prep`` (maps, importance, the initial image), never
  the target features: ``target_shapes`` gives their shapes where ``prep.plan.targets``
  was left on the device (the batch path); default: read from ``prep.plan.targets``.
  ``operator_names``: the names of the candidate operators (:func:`operator_names`).
  """
  plan = prep.plan
  stage = mapping.MapStage.from_plan(s, plan, prep.init.shape[:2])
  if target_shapes is None:
    target_shapes = {l: tuple(t.shape) for l, t in plan.targets.items()}
  axes = {k: p for k, p in (("width", plan.width), ("height", plan.height)) if p is not None}
  if plan.width is not None and not deep_carving.height_first(plan):
    imp = {l: np.asarray(m) for l, m in plan.width.importance.items()}
  elif plan.height is not None:  # the height plan works on transposed maps
    imp = {l: np.asarray(m).T for l, m in plan.height.importance.items()}
  else:
    imp = {}
  return Result(
      output=to_uint8(output), reconstructed=to_uint8(recon), initial=to_uint8(prep.init),
      work_hw=s.work, importance=imp,
      removed={a: {l: np.asarray(m) for l, m in p.removed.items()} for a, p in axes.items()},
      seams_removed={a: {l: int(k) for l, k in p.num_removed.items()} for a, p in axes.items()},
      target_shapes=dict(target_shapes),
      target_importance={l: np.asarray(m, np.float32) for l, m in prep.target_importance.items()},
      cell_widths={a: np.asarray(p.cell_widths)[:int(p.num_cells)] for a, p in axes.items()},
      recon_losses=list(recon_losses), refine_losses=list(refine_losses), timings=timings,
      interrupted=interrupted, stages=[stage],
      kept_span={a: _kept_span(p, s.work[1] if a == "width" else s.work[0])
                 for a, p in axes.items()},
      axis_order=(("height_first" if deep_carving.height_first(plan) else "width_first")
                  if len(axes) == 2 else None),
      operator=None if operator_names is None else operator_names[int(prep.operator)],
      operator_scores=_per_operator(operator_names, prep.operator_scores),
      operator_completeness=_per_operator(operator_names, prep.operator_completeness),
      operator_fine_coherence=_per_operator(operator_names, prep.operator_fine_coherence))


def _per_operator(names, values) -> dict:
  if names is None or len(names) < 2:
    return {}
  return dict(zip(names, (float(x) for x in np.asarray(values))))


def reconstruction_steps(s: Sizes, cfg: RetargetConfig, masked: bool = False,
                         arch: str = "vgg19") -> int:
  """The Eq. 4 steps a job of sizes ``s`` runs (static, known before any compute).

  ``cfg.reconstruction.steps``, except 0 when the output is lifted to full resolution
  (``s.full_resolution``) from a plan that carves no seams (every candidate operator a
  crop and/or Eq. 3's warp: :func:`deep_carving.candidates_carve_seams`), init
  "seams", and not ``cfg.reconstruction.reconstruct_resamplings``. The output is then
  the pixel map applied to the full-resolution image (:func:`full_resolution` with no
  correction). Eq. 4 heals seams; a resampling has none, and what the working-size steps add to it
  (sharper detail at the working size) reaches the full-size output only as
  ``up(final - init)``: on the RetargetMe dev half a blotchy low-frequency tone drift
  that lowered the warp's mean SS (docs/RESULTS.md). At the input's own size the steps
  run (there they sharpen the warp's interpolated columns). ``masked``: a keep or
  remove mask is given.
  """
  rc = cfg.reconstruction
  if rc.reconstruct_resamplings or rc.init != "seams" or not s.full_resolution:
    return rc.steps
  if deep_carving.candidates_carve_seams(cfg.operator, s.work, s.work_out, masked, arch):
    return rc.steps
  return 0


def operator_names(s: Sizes, cfg: RetargetConfig, masked: bool = False,
                   arch: str = "vgg19") -> tuple[str, ...]:
  """The names of the operators :func:`prepare` plans for a job of sizes ``s``
  (``Prepared.operator`` indexes them; :func:`deep_carving.candidate_operators`)."""
  return tuple(n for n, _ in deep_carving.candidate_operators(cfg.operator, s.work, s.work_out,
                                                              masked, arch))

"""The working-size phases, each a jitted function of arrays and a static plan.

    prepare (features, the audition of the plan's operators, Eq. 1-3, targets, init)
    -> Eq. 4 reconstruction chunks -> section 3.3 refinement chunks

Each phase exists for one image and, vmapped inside one jit, for a batch (a leading
axis): the run (:mod:`dnr_jax.resizing.run`) always calls the batched ones, one image
being a batch of one. Static arguments are exactly what a phase reads (a plan stripped
of its step counts for ``prepare``), so e.g. another step count compiles nothing.
Inputs placed with a ``NamedSharding`` over a device mesh keep it: XLA partitions the
batch over the devices (:mod:`dnr_jax.resizing.batching`).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from dnr_jax.config import RefinementConfig
from dnr_jax.config import RetargetConfig
from dnr_jax.io import compilation
from dnr_jax.nn import vgg
from dnr_jax.ops import importance
from dnr_jax.ops import resample
from dnr_jax.resizing import audition
from dnr_jax.resizing import deep_carving
from dnr_jax.resizing import plan as plan_lib
from dnr_jax.resizing import reconstruct
from dnr_jax.resizing import refine


class Prepared(NamedTuple):
  plan: deep_carving.ResizePlan
  targets: dict  # loss layer -> F'_l (h', w', c)
  init: jax.Array  # (h', w', 3) float32 initial O at the working size
  # layer -> (h_l', w_l') Eq. 1 importance of every target F'_l, computed on the device so
  # that the host never has to fetch the target features themselves (~100 MB per image).
  target_importance: dict
  # () int32: which of the plan's crop shares made the plan (audition.chosen_plan; 0
  # without an audition), (k,) float32 each candidate's merit (the human-calibrated
  # criterion less its edges' price; (1,) zeros without an audition), and its parts
  # {"squeeze", "lost": (k,)} (empty without an audition).
  operator: jax.Array
  operator_scores: jax.Array
  operator_features: dict
  # () float32: kept (working) pixels held unchanged, 0 without a keep mask.
  kept_held: jax.Array


def downscale(image, work_hw: tuple[int, int], on_host: bool = False) -> jax.Array:
  """The image at the working size (antialiased linear, sparse taps), float32 0..255.

  ``on_host=True``: the same resize in NumPy (:func:`resample.resize_host`), so photos
  of any size compile nothing here; the result equals the jitted one up to float
  rounding.
  """
  if tuple(image.shape[:2]) == tuple(work_hw):
    if isinstance(image, np.ndarray):  # no eager convert (one compilation per shape)
      return jax.device_put(image.astype(np.float32))
    return jnp.asarray(image).astype(jnp.float32)
  if not on_host:
    return resize(image, tuple(work_hw), "linear")
  return jax.device_put(resample.resize_host(np.asarray(image), tuple(work_hw), "linear"))


@functools.partial(jax.jit, static_argnames=("out_hw", "kind"))
def resize(image, out_hw, kind):
  return resample.resize(image, out_hw, kind)


def initial_image(image: jax.Array, plan: deep_carving.ResizePlan, out_hw, init: str,
                  seed: int, shallow: str) -> jax.Array:
  """Section 4.3 initialisations: linear scale, the block1 seams (+ warp), or noise."""
  if init == "linear":
    return jax.image.resize(image, (*out_hw, 3), "linear", antialias=True)
  if init == "seams":
    return deep_carving.apply_plan_to_layer(image, plan, shallow)
  key = jax.random.PRNGKey(seed)
  return jax.random.uniform(key, (*out_hw, 3), jnp.float32, 0.0, 255.0)


def _prepare_one(weights, image, plan, loss_layers, init, seed, learning_rate, keep=None,
                 remove=None):
  if plan.crop_shares:
    deep, choice, merits, parts = audition.chosen_plan(weights, image, plan)
  else:
    deep = audition.deep_plan(weights, image, plan.sizes.work_out, plan.operator_config(),
                              None if keep is None else keep > 0.5,
                              None if remove is None else remove > 0.5)
    choice, merits, parts = jnp.zeros((), jnp.int32), jnp.zeros((1,), jnp.float32), {}
  targets = {l: deep.targets[l] for l, lam in loss_layers if lam > 0}
  target_imp = {l: importance.importance_map(t) for l, t in deep.targets.items()}
  start = initial_image(image, deep, plan.sizes.work_out, init, seed, plan.shallow)
  held = jnp.float32(0.0)
  if keep is not None:
    # Kept pixels are copied by the pixel map (snapped to whole columns) and the Eq. 4
    # loop holds them there (reconstruct.FROZEN); the init must carry them too.
    frozen = deep_carving.apply_plan_to_layer(keep.astype(jnp.float32), deep,
                                              plan.shallow) > 0.999
    copied = (start if init == "seams"  # (the seams init is that very image)
              else deep_carving.apply_plan_to_layer(image, deep, plan.shallow))
    start = jnp.where(frozen[..., None], copied, start)
    targets[reconstruct.FROZEN] = (frozen[..., None], copied)
    held = jnp.sum(frozen.astype(jnp.float32)) / jnp.maximum(jnp.sum(keep > 0.5), 1.0)
  return Prepared(deep, targets, start, target_imp, choice, merits, parts, held)


_PREPARE_STATIC = ("plan", "loss_layers", "init", "seed", "learning_rate")


@functools.partial(jax.jit, static_argnames=_PREPARE_STATIC)
def _prepare(weights, image, plan, loss_layers, init, seed, learning_rate, keep=None,
             remove=None):
  return _prepare_one(weights, image, plan, loss_layers, init, seed, learning_rate, keep,
                      remove)


@functools.partial(jax.jit, static_argnames=_PREPARE_STATIC)
def _prepare_batch(weights, images, keeps, removes, plan, loss_layers, init, seed,
                   learning_rate):
  def one(im, keep, remove):
    prep = _prepare_one(weights, im, plan, loss_layers, init, seed, learning_rate, keep,
                        remove)
    return prep, reconstruct.init_state(prep.init, learning_rate)
  return jax.vmap(one)(images, keeps, removes)


def _static_plan(plan: plan_lib.Plan) -> plan_lib.Plan:
  """What ``prepare`` reads of a plan: not its step counts, nor the full-resolution
  sizes (the working ones fix every shape), so photos of other sizes with one working
  shape share the compilation (a folder of 20 sizes compiled 15 prepare programs for 4
  working shapes before)."""
  s = plan.sizes
  return dataclasses.replace(plan, steps=0, refine_steps=0,
                             sizes=plan_lib.Sizes(s.work, s.work_out, s.work, s.work_out))


def _as_mask(m):
  return None if m is None else jnp.asarray(m, jnp.float32)


def prepare(weights: vgg.VGGWeights, image: jax.Array, out_hw: tuple[int, int],
            cfg: RetargetConfig, keep: jax.Array | None = None,
            remove: jax.Array | None = None, plan: plan_lib.Plan | None = None) -> Prepared:
  """One forward pass of the (working-size) image, the deep plan, targets and init.

  ``keep`` / ``remove``: optional (h, w) masks at the working size (nonzero = masked;
  see :func:`masks.working_mask`): kept pixels are copied unchanged and held by the
  Eq. 4 loop; ``remove`` makes the plan an object removal. ``plan``: the job's plan
  (default: made here for an image already at its working size).
  """
  chex.assert_rank(image, 3)
  for m in (keep, remove):
    if m is not None:
      chex.assert_shape(m, image.shape[:2])
  if plan is None:
    plan = plan_lib.make_plan(image.shape[:2], out_hw, dataclasses.replace(cfg, work_size=0),
                              weights.arch, keep is not None, remove is not None)
  rc = cfg.reconstruction
  return _prepare(weights, image.astype(jnp.float32), _static_plan(plan), rc.loss_layers,
                  rc.init, rc.seed, rc.learning_rate, _as_mask(keep), _as_mask(remove))


def prepare_batch(weights: vgg.VGGWeights, images: jax.Array, plan: plan_lib.Plan,
                  cfg: RetargetConfig, keeps=None, removes=None
                  ) -> tuple[Prepared, reconstruct.ReconState]:
  """:func:`prepare` of (B, h, w, 3) working-size images of one plan (and (B, h, w)
  masks), and the Eq. 4 loop's initial state, in one executable; every leaf gains
  axis 0."""
  chex.assert_rank(images, 4)
  rc = cfg.reconstruction
  return compilation.call(_prepare_batch, weights, images.astype(jnp.float32),
                          _as_mask(keeps), _as_mask(removes), plan=_static_plan(plan),
                          loss_layers=rc.loss_layers, init=rc.init, seed=rc.seed,
                          learning_rate=rc.learning_rate)


@functools.partial(jax.jit, static_argnames=("plan",))
def _order_scores_batch(weights, images, keeps, plan):
  return jax.vmap(lambda im, k: audition.order_scores(weights, im, plan, k))(images, keeps)


def order_scores_batch(weights: vgg.VGGWeights, images: jax.Array, plan: plan_lib.Plan,
                       keeps=None) -> jax.Array:
  """(B, 2): :func:`audition.order_scores` of (B, h, w, 3) working-size images."""
  return compilation.call(_order_scores_batch, weights, images.astype(jnp.float32),
                          _as_mask(keeps), plan=_static_plan(plan))


# ----------------------------------------------------------------------------- Eq. 4


def reconstruction_init(image: jax.Array, cfg: RetargetConfig) -> reconstruct.ReconState:
  return reconstruct.init_state(image, cfg.reconstruction.learning_rate)


@functools.partial(jax.jit, static_argnames=("loss_layers", "learning_rate", "n", "unroll"))
def _reconstruction_chunk(weights, targets, state, loss_layers, learning_rate, n, unroll):
  return reconstruct.run_chunk(reconstruct.eq4_step(weights, targets, loss_layers,
                                                    learning_rate), state, n, unroll=unroll)


def reconstruction_chunk(weights: vgg.VGGWeights, targets: dict, state, cfg: RetargetConfig,
                         n: int, unroll: bool = True):
  """``n`` Adam steps of Eq. 4: returns (state, losses (n,)). Jitted per (loss layers,
  learning rate, n, unroll); ``unroll=False`` is a rolled loop (accelerators)."""
  rc = cfg.reconstruction
  return _reconstruction_chunk(weights, targets, state, rc.loss_layers, rc.learning_rate, n,
                               unroll)


@functools.partial(jax.jit, static_argnames=("loss_layers", "learning_rate", "n", "unroll"))
def _reconstruction_chunk_batch(weights, targets, state, loss_layers, learning_rate, n, unroll):
  return jax.vmap(lambda t, st: reconstruct.run_chunk(
      reconstruct.eq4_step(weights, t, loss_layers, learning_rate), st, n, unroll=unroll))(
          targets, state)


def reconstruction_chunk_batch(weights: vgg.VGGWeights, targets: dict, state,
                               cfg: RetargetConfig, n: int, unroll: bool = True):
  """:func:`reconstruction_chunk` over a batch: (state, losses (B, n))."""
  rc = cfg.reconstruction
  return compilation.call(_reconstruction_chunk_batch, weights, targets, state,
                          loss_layers=rc.loss_layers, learning_rate=rc.learning_rate, n=n,
                          unroll=unroll)


final_image = reconstruct.final_image


def final_image_batch(state: reconstruct.ReconState) -> np.ndarray:
  """:func:`final_image` of a batched state, on the host (no compilation per shape)."""
  best_loss, best, last = jax.device_get((state.best_loss, state.best_image, state.image))
  return np.where(np.isfinite(best_loss)[:, None, None, None], best, last)


# ----------------------------------------------------------------------------- section 3.3


def _refine_step(weights, targets, image, loss_layers, rcfg: RefinementConfig):
  def feat_loss(x):
    return reconstruct.feature_loss(weights, x, targets, dict(loss_layers))
  loss = refine.make_loss(feat_loss, image, rcfg)
  return reconstruct.make_step(loss, rcfg.learning_rate, project=lambda t: t)


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
  """``n`` Adam steps of the grid refinement of (B, h', w', 3) ``images``: (state,
  losses (B, n))."""
  rcfg = dataclasses.replace(cfg.refinement, steps=0)  # the step count is not read here
  return _refinement_chunk_batch(weights, targets, images, state,
                                 cfg.reconstruction.loss_layers, rcfg, n, unroll)


@functools.partial(jax.jit, static_argnames=("max_shift",))
def _apply_refinement_batch(images, states, max_shift):
  return jax.vmap(lambda im, st: refine.warp_image(im, reconstruct.final_image(st),
                                                   max_shift))(images, states)


def apply_refinement_batch(images: jax.Array, states, cfg: RetargetConfig) -> jax.Array:
  return _apply_refinement_batch(images, states, cfg.refinement.max_shift)

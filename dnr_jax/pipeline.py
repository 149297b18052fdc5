"""Deep Network Resizing end to end: features -> deep multi-operator -> Eq. 4 -> refinement.

Two entry points over the same pure pieces:

- :func:`retarget_pure` is one pure function of arrays (no host work at all), to
  ``jit`` once per (input size, output size) and ``vmap`` over a batch of images.
- :func:`retarget` is the library call a user makes: it runs the same pieces as
  jitted chunks so that it can report progress, stop cleanly on Ctrl-C (keeping
  the best image so far) and time each phase; it returns a :class:`Result`.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from dnr_jax import deep_carving
from dnr_jax import importance
from dnr_jax import reconstruct
from dnr_jax import refine
from dnr_jax import vgg
from dnr_jax.config import ReconstructionConfig
from dnr_jax.config import RetargetConfig


class NumericalError(RuntimeError):
  """The loss became NaN or infinite."""


class Prepared(NamedTuple):
  plan: deep_carving.ResizePlan
  targets: dict  # loss layer -> F'_l (h', w', c)
  init: jax.Array  # (H', W', 3) float32 initial O


def _lambdas(cfg: RetargetConfig) -> dict[str, float]:
  return dict(cfg.reconstruction.loss_layers)


def validate(image_hw: tuple[int, int], out_hw: tuple[int, int], cfg: RetargetConfig,
             arch: str = "vgg19") -> None:
  """Raises ValueError for sizes or configurations the pipeline cannot run."""
  (h, w), (oh, ow) = image_hw, out_hw
  if oh < 32 or ow < 32:
    raise ValueError(f"target size {ow}x{oh} is below VGG19's 32 px per side")
  if oh > h or ow > w:
    raise ValueError(f"target {ow}x{oh} is larger than the input {w}x{h}: only shrinking "
                     "is supported")
  layers = deep_carving.sort_layers(cfg.operator.layers, arch)
  missing = [l for l, lam in cfg.reconstruction.loss_layers if lam > 0 and l not in layers]
  if missing:
    raise ValueError(f"loss layers {missing} are not among the operator layers {layers}")
  if cfg.reconstruction.init == "seams" and vgg.layer_stride(layers[0], arch) != 1:
    raise ValueError(f"init='seams' needs a block1 layer among the operator layers "
                     f"(the shallowest is {layers[0]})")


def initial_image(image: jax.Array, plan: deep_carving.ResizePlan, out_hw, cfg: RetargetConfig,
                  arch: str = "vgg19") -> jax.Array:
  """Section 4.3 initialisations: linear scale, the block1 seams (+ warp), or noise."""
  init = cfg.reconstruction.init
  if init == "linear":
    return jax.image.resize(image, (*out_hw, 3), "linear", antialias=True)
  if init == "seams":
    shallow = deep_carving.sort_layers(cfg.operator.layers, arch)[0]
    return deep_carving.apply_plan_to_layer(image, plan, shallow)
  key = jax.random.PRNGKey(cfg.reconstruction.seed)
  return jax.random.uniform(key, (*out_hw, 3), jnp.float32, 0.0, 255.0)


def prepare(weights: vgg.VGGWeights, image: jax.Array, out_hw: tuple[int, int],
            cfg: RetargetConfig) -> Prepared:
  """One forward pass of the input, the deep multi-operator plan, targets and init."""
  chex.assert_rank(image, 3)
  image = image.astype(jnp.float32)
  layers = deep_carving.sort_layers(cfg.operator.layers, weights.arch)
  feats = {k: v[0] for k, v in vgg.features(weights, image[None], layers).items()}
  plan = deep_carving.plan_resize(feats, image.shape[:2], out_hw, cfg.operator, weights.arch)
  targets = {l: plan.targets[l] for l, lam in _lambdas(cfg).items() if lam > 0}
  return Prepared(plan, targets, initial_image(image, plan, out_hw, cfg, weights.arch))


def _recon_step(weights, targets, cfg: RetargetConfig):
  loss = functools.partial(reconstruct.feature_loss, weights, targets=targets,
                           lambdas=_lambdas(cfg))
  return reconstruct.make_step(loss, cfg.reconstruction.learning_rate)


def _refine_step(weights, targets, image, cfg: RetargetConfig):
  feat_loss = functools.partial(reconstruct.feature_loss, weights, targets=targets,
                                lambdas=_lambdas(cfg))
  loss = refine.make_loss(feat_loss, image, cfg.refinement)
  return reconstruct.make_step(loss, cfg.refinement.learning_rate, project=lambda t: t)


def _refine_init(image, cfg: RetargetConfig):
  h, w = image.shape[:2]
  theta = jnp.zeros(refine.control_shape(h, w, cfg.refinement.control_cell), jnp.float32)
  return reconstruct.init_state(theta, cfg.refinement.learning_rate)


def retarget_pure(weights: vgg.VGGWeights, image: jax.Array, out_hw: tuple[int, int],
                  cfg: RetargetConfig = RetargetConfig()) -> tuple[jax.Array, dict]:
  """The whole method as one pure function: (H, W, 3) 0..255 -> (H', W', 3) float32.

  ``jax.jit(retarget_pure, static_argnames=("out_hw", "cfg"))`` compiles once per
  (input size, output size); ``jax.vmap`` over ``image`` retargets a batch.
  Returns the output and a dict of scalars (final losses, seams removed per layer).
  """
  validate(image.shape[:2], out_hw, cfg, weights.arch)
  prep = prepare(weights, image, out_hw, cfg)
  rc = cfg.reconstruction
  state = reconstruct.init_state(prep.init, rc.learning_rate)
  state, _ = reconstruct.run_chunk(_recon_step(weights, prep.targets, cfg), state, rc.steps,
                                  unroll=False)
  recon = _final_image(state)
  out = recon
  if cfg.refinement.steps:
    rstate = _refine_init(recon, cfg)
    rstate, _ = reconstruct.run_chunk(_refine_step(weights, prep.targets, recon, cfg), rstate,
                                      cfg.refinement.steps, unroll=False)
    out = refine.warp_image(recon, _final_image(rstate), cfg.refinement.max_shift)
  aux = {"loss": reconstruct.feature_loss(weights, out, prep.targets, _lambdas(cfg))}
  if prep.plan.width is not None:
    aux["seams_width"] = prep.plan.width.num_removed
  if prep.plan.height is not None:
    aux["seams_height"] = prep.plan.height.num_removed
  return jnp.clip(out, 0, 255), aux


def _final_image(state: reconstruct.ReconState) -> jax.Array:
  """The best iterate, or the last one if no step ran yet."""
  return jnp.where(jnp.isfinite(state.best_loss), state.best_image, state.image)


# ----------------------------------------------------------------------------- host API


@dataclasses.dataclass
class Result:
  """Everything :func:`retarget` produced (NumPy arrays, host side)."""

  output: np.ndarray  # (H', W', 3) uint8, the final G(O)
  reconstructed: np.ndarray  # (H', W', 3) uint8, O before refinement
  initial: np.ndarray  # (H', W', 3) uint8, the initialisation
  importance: dict  # layer -> (h, w) Eq. 1 map of the input (width pass)
  removed: dict  # "width"/"height" -> {layer: (h, w) bool} removed positions
  seams_removed: dict  # "width"/"height" -> {layer: int}
  target_shapes: dict  # layer -> (h', w', c) target feature map shape
  target_importance: dict  # layer -> (h', w') Eq. 1 map of the target features F'
  cell_widths: dict  # "width"/"height" -> (n_cells,) warp output widths
  recon_losses: list
  refine_losses: list
  timings: dict  # seconds per phase
  interrupted: bool = False


ProgressFn = Callable[[str, int, int, float, float], None]  # phase, step, total, loss, it/s


def _static_config(cfg: RetargetConfig, phase: str) -> RetargetConfig:
  """Only the fields a jitted phase reads, so e.g. another step count compiles nothing.

  The configs are static jit arguments: any field that differs is a new compilation.
  """
  rc = cfg.reconstruction
  if phase == "prepare":
    return RetargetConfig(operator=cfg.operator, reconstruction=ReconstructionConfig(
        loss_layers=rc.loss_layers, init=rc.init, seed=rc.seed))
  return RetargetConfig(
      reconstruction=ReconstructionConfig(loss_layers=rc.loss_layers,
                                          learning_rate=rc.learning_rate),
      refinement=dataclasses.replace(cfg.refinement, steps=0))


@functools.partial(jax.jit, static_argnames=("out_hw", "cfg"))
def _prepare_jit(weights, image, out_hw, cfg):
  return prepare(weights, image, out_hw, cfg)


# No buffer donation: a Ctrl-C that lands while a chunk is dispatched must still find
# the previous state alive, to return the best image so far. The state is a few
# image-sized arrays, so donating it would save little.
@functools.partial(jax.jit, static_argnames=("cfg", "n"))
def _recon_chunk(weights, targets, state, cfg, n):
  return reconstruct.run_chunk(_recon_step(weights, targets, cfg), state, n)


@functools.partial(jax.jit, static_argnames=("cfg", "n"))
def _refine_chunk(weights, targets, image, state, cfg, n):
  return reconstruct.run_chunk(_refine_step(weights, targets, image, cfg), state, n)


@functools.partial(jax.jit, static_argnames=("max_shift",))
def _apply_refinement(image, theta, max_shift):
  return refine.warp_image(image, theta, max_shift)


def _optimise(chunk_fn, state, steps: int, chunk: int, phase: str,
              progress: ProgressFn | None) -> tuple[object, list, bool]:
  """Host loop over jitted chunks: progress, NaN check, Ctrl-C keeps the best so far."""
  losses: list[float] = []
  done = 0
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
        progress(phase, done, steps, losses[-1], n / dt)
  except KeyboardInterrupt:
    return state, losses, True
  return state, losses, False


def _u8(x) -> np.ndarray:
  return np.clip(np.round(np.asarray(x)), 0, 255).astype(np.uint8)


def retarget(image: np.ndarray, target_hw: tuple[int, int], config: RetargetConfig,
             weights: vgg.VGGWeights, progress: ProgressFn | None = None) -> Result:
  """Retargets one RGB uint8 image (H, W, 3) to ``target_hw`` = (H', W').

  Raises:
    ValueError: sizes/config the method cannot run (message names them).
    NumericalError: the loss became NaN/Inf.
  """
  image = np.asarray(image)
  chex.assert_rank(image, 3)
  chex.assert_axis_dimension(image, 2, 3)
  out_hw = (int(target_hw[0]), int(target_hw[1]))
  validate(image.shape[:2], out_hw, config, weights.arch)
  timings = {}
  t0 = time.perf_counter()
  prep = jax.block_until_ready(_prepare_jit(weights, jnp.asarray(image, jnp.float32),
                                            out_hw, _static_config(config, "prepare")))
  step_cfg = _static_config(config, "step")
  timings["prepare"] = time.perf_counter() - t0

  rc = config.reconstruction
  t0 = time.perf_counter()
  state = reconstruct.init_state(prep.init, rc.learning_rate)
  state, recon_losses, interrupted = _optimise(
      lambda s, n: _recon_chunk(weights, prep.targets, s, step_cfg, n),
      state, rc.steps, rc.chunk, "reconstruction", progress)
  recon = _final_image(state)
  timings["reconstruction"] = time.perf_counter() - t0

  out, refine_losses = recon, []
  if config.refinement.steps and not interrupted:
    t0 = time.perf_counter()
    rstate = _refine_init(recon, config)
    rstate, refine_losses, interrupted = _optimise(
        lambda s, n: _refine_chunk(weights, prep.targets, recon, s, step_cfg, n),
        rstate, config.refinement.steps, rc.chunk, "refinement", progress)
    out = _apply_refinement(recon, _final_image(rstate), config.refinement.max_shift)
    timings["refinement"] = time.perf_counter() - t0

  plan = prep.plan
  axes = {k: p for k, p in (("width", plan.width), ("height", plan.height)) if p is not None}
  first = next(iter(axes.values()), None)
  return Result(
      output=_u8(out), reconstructed=_u8(recon), initial=_u8(prep.init),
      importance={l: np.asarray(s) for l, s in first.importance.items()} if first else {},
      removed={a: {l: np.asarray(m) for l, m in p.removed.items()} for a, p in axes.items()},
      seams_removed={a: {l: int(k) for l, k in p.num_removed.items()} for a, p in axes.items()},
      target_shapes={l: tuple(t.shape) for l, t in plan.targets.items()},
      target_importance={l: np.asarray(importance.importance_map(t))
                         for l, t in plan.targets.items()},
      cell_widths={a: np.asarray(p.cell_widths) for a, p in axes.items()},
      recon_losses=recon_losses, refine_losses=refine_losses, timings=timings,
      interrupted=interrupted)


"""Image reconstruction from target feature maps (section 3.2, Eq. 4).

The output O (RGB, 0..255) is optimised with Adam to minimise

    L(O) = sum_l lambda_l * mean((F_l(O) - F'_l)^2)

Departure: the paper's squared norm is divided by the number of elements of each
map, so lambdas weigh layers of different sizes comparably and the learning rate
does not depend on the image size (Adam is scale-invariant otherwise).

Pixels are kept in range by *projection*: after every Adam update O is clipped to
[0, 255]. A sigmoid/tanh reparameterisation would also keep the range but
flattens gradients near black and white, slowing exactly the saturated pixels
that seam and warp boundaries often need to change; projection leaves the
gradient exact inside the box.

Only the layers with lambda > 0 are computed in the loop (the VGG module stops at
the deepest requested layer), so the paper's default (lambda = 1 on block1_conv2
only) runs two convs per forward pass.

The step is pure: ``step(state) -> (state, loss)``; :func:`run_chunk` runs ``n``
steps in one jitted call so the host can report progress between chunks.
"""

from __future__ import annotations

from typing import Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import optax

from dnr_jax.nn import vgg


def feature_loss(weights: vgg.VGGWeights, image: jax.Array,
                 targets: Mapping[str, jax.Array],
                 lambdas: Mapping[str, float]) -> jax.Array:
  """Eq. 4 for one (H, W, 3) image (per-element mean, see module docstring)."""
  layers = tuple(l for l, lam in lambdas.items() if lam > 0)
  feats = vgg.features(weights, image[None], layers)
  total = jnp.float32(0.0)
  for l in layers:
    diff = feats[l][0] - targets[l]
    total = total + lambdas[l] * jnp.mean(diff * diff)
  return total


# Key of ``targets`` that may hold ``(mask (H, W, 1) bool, values (H, W, 3))``: pixels
# the loop holds fixed (keep masks). The projection puts them back after every step, so
# the free pixels around them are optimised knowing them.
FROZEN = "frozen"


def projection(targets: Mapping) -> Callable[[jax.Array], jax.Array]:
  """The box projection onto [0, 255], then the frozen pixels of ``targets``, if any."""
  frozen = targets.get(FROZEN)

  def project(x):
    x = jnp.clip(x, 0.0, 255.0)
    if frozen is not None:
      x = jnp.where(frozen[0], frozen[1], x)
    return x

  return project


class ReconState(NamedTuple):
  image: jax.Array  # (H, W, 3) float32, 0..255: the current O
  opt_state: optax.OptState
  best_image: jax.Array  # lowest-loss image seen so far
  best_loss: jax.Array  # () float32
  step: jax.Array  # () int32


def optimizer(learning_rate: float) -> optax.GradientTransformation:
  return optax.adam(learning_rate)


def init_state(image: jax.Array, learning_rate: float) -> ReconState:
  image = image.astype(jnp.float32)
  return ReconState(jnp.copy(image), optimizer(learning_rate).init(image), jnp.copy(image),
                    jnp.float32(jnp.inf), jnp.int32(0))


def make_step(loss_fn: Callable[[jax.Array], jax.Array], learning_rate: float,
              project: Callable[[jax.Array], jax.Array] = lambda x: jnp.clip(x, 0.0, 255.0)):
  """A pure Adam step on pixels: returns ``step(state) -> (state, loss_of_state.image)``."""
  opt = optimizer(learning_rate)

  def step(state: ReconState):
    loss, grad = jax.value_and_grad(loss_fn)(state.image)
    updates, opt_state = opt.update(grad, state.opt_state, state.image)
    image = project(optax.apply_updates(state.image, updates))
    better = loss < state.best_loss  # the loss belongs to state.image, not the new one
    best_image = jnp.where(better, state.image, state.best_image)
    best_loss = jnp.where(better, loss, state.best_loss)
    return ReconState(image, opt_state, best_image, best_loss, state.step + 1), loss

  return step


def default_unroll(backend: str | None = None) -> bool:
  """Whether the Adam chunks are unrolled by default on ``backend`` (default: JAX's).

  Measured (docs/history/LAB_LOG.md, "Batches, devices and compilations"):
  - 2-core CPU: a conv inside an XLA while-loop body (``fori_loop``, or a rolled
    ``scan``) ran 3.4x slower than the same conv outside one (0.42 s vs 0.12 s per step
    at 400x450), so the host loops over short unrolled chunks;
  - H100 (jax 0.11.2): rolled and unrolled run at the same speed (rolled / unrolled
    1.00 at batch 1 and 32), and the rolled chunk compiles 10-25x faster (0.18 s vs
    1.7 s at batch 1, 0.34 s vs 8.4 s at batch 32), so accelerators use the rolled loop.
  """
  return (backend or jax.default_backend()) == "cpu"


def run_chunk(step, state, n: int, unroll: bool = True):
  """Runs ``n`` (static) steps; returns (state, losses (n,)).

  ``unroll=True`` unrolls the steps into straight-line code (fast on XLA:CPU);
  ``unroll=False`` is a rolled ``lax.scan`` (as fast on GPUs, and it compiles much
  faster): see :func:`default_unroll`.
  """
  def body(s, _):
    return step(s)

  return jax.lax.scan(body, state, None, length=n, unroll=n if unroll else 1)


def eq4_step(weights: vgg.VGGWeights, targets: Mapping, loss_layers, learning_rate: float):
  """The Adam step of Eq. 4 towards ``targets`` ({layer: F'_l}, maybe :data:`FROZEN`),
  ``loss_layers`` ((layer, lambda), ...): the step of the reconstruction and of the
  operator audition."""
  loss = lambda image: feature_loss(weights, image, targets, dict(loss_layers))  # noqa: E731
  return make_step(loss, learning_rate, project=projection(targets))


def final_image(state: ReconState) -> jax.Array:
  """The best iterate, or the last one if no step ran yet."""
  return jnp.where(jnp.isfinite(state.best_loss), state.best_image, state.image)

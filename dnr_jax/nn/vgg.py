"""VGG19 (and VGG16) convolutional trunks as a Flax linen module.

The paper (section 4) uses the ReLU activations ``blockB_convC`` and the max-pool
outputs ``blockB_pool`` of the ImageNet VGG19, named as in Keras. This module keeps
those names as parameter-tree keys, returns any requested subset of feature maps
by name, and computes nothing past the deepest requested layer (the reconstruction
loss of Eq. 4 only needs ``block1_conv2`` by default, so the loop runs two convs).

Weights and their input convention travel together in :class:`VGGWeights`: callers
give RGB pixels in 0..255 and :func:`features` applies the convention the weights
were trained with (BGR mean-subtracted for the Caffe/Keras weights, RGB mean/std for
torchvision's), so the wrong preprocessing cannot be fed by mistake.

Why linen rather than nnx: parameters are a plain nested dict, which is what the
pure weight converters produce, what ``np.savez`` stores, and what ``jit``/``vmap``
close over without any object state.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

# (name, kind, out_channels). kind is "conv" (3x3, stride 1, SAME, ReLU) or "pool"
# (2x2 max pool, stride 2, VALID: odd sizes are floored, as in Keras and torch).
_VGG19_BLOCKS = (2, 2, 4, 4, 4)
_VGG16_BLOCKS = (2, 2, 3, 3, 3)
_CHANNELS = (64, 128, 256, 512, 512)


def _layer_table(blocks: Sequence[int]) -> tuple[tuple[str, str, int], ...]:
  table = []
  for b, (n_conv, ch) in enumerate(zip(blocks, _CHANNELS), start=1):
    for c in range(1, n_conv + 1):
      table.append((f"block{b}_conv{c}", "conv", ch))
    table.append((f"block{b}_pool", "pool", ch))
  return tuple(table)


ARCHITECTURES: Mapping[str, tuple[tuple[str, str, int], ...]] = {
    "vgg19": _layer_table(_VGG19_BLOCKS),
    "vgg16": _layer_table(_VGG16_BLOCKS),
}


def layer_names(arch: str = "vgg19") -> tuple[str, ...]:
  return tuple(name for name, _, _ in ARCHITECTURES[arch])


def conv_layer_names(arch: str = "vgg19") -> tuple[str, ...]:
  return tuple(name for name, kind, _ in ARCHITECTURES[arch] if kind == "conv")


def layer_index(name: str, arch: str = "vgg19") -> int:
  names = layer_names(arch)
  if name not in names:
    raise ValueError(f"unknown {arch} layer {name!r}; known: {', '.join(names)}")
  return names.index(name)


def layer_stride(name: str, arch: str = "vgg19") -> int:
  """Spatial stride of a layer relative to the input (1, 2, 4, 8, 16 or 32)."""
  table = ARCHITECTURES[arch]
  idx = layer_index(name, arch)
  return 2 ** sum(1 for _, kind, _ in table[: idx + 1] if kind == "pool")


def layer_size(size: int, name: str, arch: str = "vgg19") -> int:
  """Spatial extent of ``name``'s feature map along an input axis of ``size``."""
  table = ARCHITECTURES[arch]
  for _, kind, _ in table[: layer_index(name, arch) + 1]:
    if kind == "pool":
      size //= 2
  return size


def path_between(shallow: str, deep: str, arch: str = "vgg19") -> tuple[str, ...]:
  """Kinds of the layers applied after ``shallow`` up to and including ``deep``."""
  table = ARCHITECTURES[arch]
  i, j = layer_index(shallow, arch), layer_index(deep, arch)
  if j < i:
    raise ValueError(f"{deep} is not deeper than {shallow}")
  return tuple(kind for _, kind, _ in table[i + 1 : j + 1])


@dataclasses.dataclass(frozen=True)
class InputConvention:
  """How RGB 0..255 pixels must be transformed before the first conv."""

  name: str
  bgr: bool  # reverse the channel order to BGR
  scale: float  # multiply the 0..255 pixels by this first
  mean: tuple[float, float, float]  # subtracted after scaling, in the *network's* channel order
  std: tuple[float, float, float] = (1.0, 1.0, 1.0)

  def apply(self, rgb: jax.Array) -> jax.Array:
    x = rgb.astype(jnp.float32) * self.scale
    if self.bgr:
      x = x[..., ::-1]
    return (x - jnp.asarray(self.mean, jnp.float32)) / jnp.asarray(self.std, jnp.float32)

  def to_json(self) -> dict:
    return dataclasses.asdict(self)


CAFFE_BGR = InputConvention(
    name="caffe", bgr=True, scale=1.0, mean=(103.939, 116.779, 123.68))
TORCHVISION_RGB = InputConvention(
    name="torchvision", bgr=False, scale=1.0 / 255.0,
    mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
CONVENTIONS = {c.name: c for c in (CAFFE_BGR, TORCHVISION_RGB)}


class VGG(nn.Module):
  """VGG conv trunk; returns ``{name: NHWC activation}`` for the requested layers."""

  arch: str = "vgg19"

  @nn.compact
  def __call__(self, x: jax.Array, outputs: Sequence[str]) -> dict[str, jax.Array]:
    wanted = set(outputs)
    for name in wanted:
      layer_index(name, self.arch)  # validates the name
    last = max(layer_index(n, self.arch) for n in wanted)
    feats = {}
    for idx, (name, kind, ch) in enumerate(ARCHITECTURES[self.arch]):
      if idx > last:
        break  # nothing past the deepest requested layer is computed
      if kind == "conv":
        x = nn.relu(nn.Conv(ch, (3, 3), padding="SAME", name=name)(x))
      else:
        x = nn.max_pool(x, (2, 2), strides=(2, 2), padding="VALID")
      if name in wanted:
        feats[name] = x
    return feats


@struct.dataclass
class VGGWeights:
  """Flax params of a VGG trunk plus the input convention they were trained with."""

  params: dict
  arch: str = struct.field(pytree_node=False, default="vgg19")
  convention: InputConvention = struct.field(pytree_node=False, default=CAFFE_BGR)
  # The dtype of the convolutions ("float32" or "bfloat16": params and activations
  # cast, features returned as float32). Static: another dtype is another jit.
  compute_dtype: str = struct.field(pytree_node=False, default="float32")


def features(weights: VGGWeights, rgb: jax.Array,
             layers: Sequence[str]) -> dict[str, jax.Array]:
  """Feature maps of RGB images in 0..255, shape (N, H, W, 3) -> {layer: (N, h, w, c)}."""
  chex.assert_rank(rgb, 4)
  chex.assert_axis_dimension(rgb, 3, 3)
  x = weights.convention.apply(rgb)
  if weights.compute_dtype == "float32":
    return VGG(weights.arch).apply({"params": weights.params}, x, tuple(layers))
  dtype = jnp.dtype(weights.compute_dtype)
  params = jax.tree_util.tree_map(lambda a: a.astype(dtype), weights.params)
  feats = VGG(weights.arch).apply({"params": params}, x.astype(dtype), tuple(layers))
  return {k: v.astype(jnp.float32) for k, v in feats.items()}


def random_weights(key: chex.PRNGKey, arch: str = "vgg19",
                   convention: InputConvention = CAFFE_BGR,
                   up_to: str | None = None) -> VGGWeights:
  """Randomly initialised weights (tests, and shape-only work); ``up_to`` limits depth."""
  up_to = up_to or layer_names(arch)[-1]
  variables = VGG(arch).init(key, jnp.zeros((1, 32, 32, 3)), (up_to,))
  params = jax.tree_util.tree_map(lambda a: a, dict(variables["params"]))
  return VGGWeights(params=params, arch=arch, convention=convention)


def feature_shapes(weights: VGGWeights, height: int, width: int,
                   layers: Sequence[str]) -> dict[str, tuple[int, ...]]:
  """Shapes of the requested feature maps for an (height, width) image, without computing."""
  out = jax.eval_shape(
      lambda p, x: features(p, x, layers), weights,
      jax.ShapeDtypeStruct((1, height, width, 3), jnp.float32))
  return {k: v.shape for k, v in out.items()}

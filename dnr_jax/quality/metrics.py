"""Quality measures: the semantic score (Eq. 5) and bidirectional similarity halves.

Semantic score (section 4.6): SS = ||F(O)||^2 / ||F(I)||^2 at block5_conv1.

SS rewards any strong deep activation, including invented structure (noise, halos),
so beside it we report the two halves of bidirectional similarity (Simakov et al.,
CVPR 2008), computed on both images scaled so that their height is ``scale_height``
pixels, with ``patch`` x ``patch`` RGB patches in 0..1:

- coherence: mean over every output patch of the squared distance (per pixel and
  channel) to its nearest input patch -- high when the output has content the input
  does not (artifacts);
- completeness: the same from input patches to output patches -- high when input
  content is missing from the output.

Nearest neighbours are found exactly by blocked matrix products,
||q - p||^2 = ||q||^2 + ||p||^2 - 2 q.p, in float32.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from dnr_jax.nn import vgg

# Eq. 5's layer (section 4.6): the semantic score compares energies here.
SEMANTIC_LAYER = "block5_conv1"


def feature_energy(weights: vgg.VGGWeights, image: jax.Array,
                   layer: str = SEMANTIC_LAYER) -> jax.Array:
  """||F(image)||^2 at ``layer``: Eq. 5's numerator (output) or denominator (original)."""
  f = vgg.features(weights, jnp.asarray(image, jnp.float32)[None], (layer,))[layer]
  return jnp.sum(jnp.square(f))


feature_energy_jit = jax.jit(feature_energy, static_argnames=("layer",))


def semantic_score(weights: vgg.VGGWeights, output: jax.Array, original: jax.Array,
                   layer: str = SEMANTIC_LAYER) -> jax.Array:
  """Eq. 5 for two RGB 0..255 images of any sizes. When one original is scored against
  many outputs, compute its :func:`feature_energy` once and divide."""
  return feature_energy(weights, output, layer) / feature_energy(weights, original, layer)


semantic_score_jit = jax.jit(semantic_score, static_argnames=("layer",))


def extract_patches(image: jax.Array, patch: int) -> jax.Array:
  """All ``patch`` x ``patch`` patches (stride 1, valid) of (H, W, C) -> (N, patch*patch*C)."""
  p = _patch_grid(image, patch)
  return p.reshape(-1, p.shape[-1])


@functools.partial(jax.jit, static_argnames=("block",))
def nearest_patch_distances(queries: jax.Array, refs: jax.Array, block: int = 1024) -> jax.Array:
  """For each query row, the squared L2 distance to its nearest reference row."""
  rn = jnp.sum(refs * refs, axis=1)
  nq = queries.shape[0]
  pad = (-nq) % block
  q = jnp.pad(queries, ((0, pad), (0, 0))).reshape(-1, block, queries.shape[1])

  def one(qb):
    d = jnp.sum(qb * qb, axis=1, keepdims=True) + rn[None, :] - 2.0 * qb @ refs.T
    return jnp.maximum(jnp.min(d, axis=1), 0.0)

  return jax.lax.map(one, q).reshape(-1)[:nq]


def _rescale(image: jax.Array, hw: tuple[int, int]) -> jax.Array:
  image = image.astype(jnp.float32) / 255.0
  return jax.image.resize(image, (*hw, image.shape[2]), "linear", antialias=True)


def _scaled_patches(output, original, patch, o_hw, i_hw):
  """All patches of both images, each scaled to its size (0..1)."""
  return (extract_patches(_rescale(output, o_hw), patch),
          extract_patches(_rescale(original, i_hw), patch))


@functools.partial(jax.jit, static_argnames=("patch", "o_hw", "i_hw"))
def _bidirectional(output, original, patch, o_hw, i_hw):
  po, pi = _scaled_patches(output, original, patch, o_hw, i_hw)
  dim = po.shape[1]
  return (jnp.mean(nearest_patch_distances(po, pi)) / dim,
          jnp.mean(nearest_patch_distances(pi, po)) / dim)


def bidirectional_similarity(output: np.ndarray, original: np.ndarray, patch: int = 7,
                             scale_height: int = 96) -> dict[str, float]:
  """{'coherence': ..., 'completeness': ...}: mean squared patch distances per element.

  Both images are scaled by the same factor (the original to ``scale_height`` px high)
  so patches of the two images cover the same scene extent. One jit per pair of sizes.
  """
  o_hw, i_hw = _scaled_sizes(output.shape, original.shape, patch, scale_height)
  coherence, completeness = _bidirectional(jax.device_put(np.asarray(output)),
                                           jax.device_put(np.asarray(original)), patch,
                                           o_hw, i_hw)
  return {"coherence": float(coherence), "completeness": float(completeness)}


def completeness(output: jax.Array, original: jax.Array, patch: int = 7,
                 scale_height: int = 96) -> jax.Array:
  """The completeness half of :func:`bidirectional_similarity` as a traceable function
  (sizes come from the static shapes): mean over every ``original`` patch of the squared
  distance per element to its nearest ``output`` patch, both images RGB 0..255 scaled
  by the factor that takes the original to ``scale_height`` px high. High when content
  of the original is missing from the output (an object cut out or carved away)."""
  o_hw, i_hw = _scaled_sizes(output.shape, original.shape, patch, scale_height)
  po, pi = _scaled_patches(output, original, patch, o_hw, i_hw)
  return jnp.mean(nearest_patch_distances(pi, po)) / po.shape[1]


def _scaled_sizes(output_shape, original_shape, patch: int, scale_height: int):
  """(output, original) sizes when both are scaled by the factor that takes the
  original to ``scale_height`` px high (the output at least ``patch`` high)."""
  factor = scale_height / original_shape[0]
  (oh, ow), (ih, iw) = output_shape[:2], original_shape[:2]
  o_h = max(patch, round(oh * factor))
  return ((o_h, max(1, round(ow * o_h / oh))),
          (scale_height, max(1, round(iw * scale_height / ih))))


@functools.partial(jax.jit, static_argnames=("patch", "o_hw", "i_hw"))
def _all_scores(weights, output, original, patch, o_hw, i_hw):
  coherence, completeness = _bidirectional(output, original, patch, o_hw, i_hw)
  return semantic_score(weights, output, original), coherence, completeness


def all_scores(weights: vgg.VGGWeights, output: np.ndarray, original: np.ndarray,
               patch: int = 7, scale_height: int = 96) -> dict[str, float]:
  """Eq. 5 and both halves of bidirectional similarity in one compilation per pair of
  sizes: {'semantic_score': ..., 'coherence': ..., 'completeness': ...}."""
  o_hw, i_hw = _scaled_sizes(output.shape, original.shape, patch, scale_height)
  ss, coherence, completeness = _all_scores(
      weights, jax.device_put(np.asarray(output, np.float32)),
      jax.device_put(np.asarray(original, np.float32)), patch, o_hw, i_hw)
  return {"semantic_score": float(ss), "coherence": float(coherence),
          "completeness": float(completeness)}


# --- Fine coherence: a scale at which 1-2 px fringes are visible ---------------------------
#
# At 96 px high a 2-px colour fringe of a 640-px image is a quarter of a pixel: the scores
# above cannot see it. The fine scores compare the images at half the original's size,
# where it is a pixel wide. An exact search over every patch of a half-size photo costs
# minutes (the distance matrix grows with the fourth power of the scale), so each query
# patch is compared only with the reference patches in a band of rows around its
# proportional row (``band`` x the height, either side) -- retargeting along one axis
# keeps rows (width) or scales them (height) -- and queries are taken on a ``stride``
# grid (an unbiased estimate of the mean). What the band misses: content moved
# vertically by more than ``band`` of the height (the 2-D warps scale important objects
# in both directions by a few percent at 75%).


def _patch_grid(image: jax.Array, patch: int) -> jax.Array:
  """(H, W, C) -> (H - patch + 1, W - patch + 1, patch * patch * C) patches, stride 1."""
  p = jax.lax.conv_general_dilated_patches(
      image[None].astype(jnp.float32), (patch, patch), (1, 1), "VALID",
      dimension_numbers=("NHWC", "HWIO", "NHWC"))
  return p[0]


def _banded_distances(queries: jax.Array, refs: jax.Array, band: int, stride: int) -> jax.Array:
  """(query rows, query columns) on a ``stride`` grid: each query patch's squared distance
  to the nearest reference patch whose row lies within ``band`` rows of the query's
  proportional row, per element (divided by the patch dimension)."""
  hq, hr, dim = queries.shape[0], refs.shape[0], queries.shape[2]
  rows = 2 * band + 1
  if rows > hr:  # the band covers every row
    rows = hr
  rn = jnp.sum(refs * refs, axis=2)
  q_rows = jnp.arange(0, hq, stride)
  centres = jnp.round(q_rows * ((hr - 1) / max(hq - 1, 1))).astype(jnp.int32)
  starts = jnp.clip(centres - band, 0, hr - rows)

  def one(args):
    y, start = args
    q = jax.lax.dynamic_index_in_dim(queries, y, 0, keepdims=False)[::stride]
    r = jax.lax.dynamic_slice_in_dim(refs, start, rows, 0).reshape(-1, dim)
    n = jax.lax.dynamic_slice_in_dim(rn, start, rows, 0).reshape(-1)
    d = jnp.sum(q * q, axis=1, keepdims=True) + n[None, :] - 2.0 * q @ r.T
    return jnp.maximum(jnp.min(d, axis=1), 0.0)

  return jax.lax.map(one, (q_rows, starts)) / dim


def _banded_nearest(queries: jax.Array, refs: jax.Array, band: int, stride: int) -> jax.Array:
  """The mean of :func:`_banded_distances`."""
  return jnp.mean(_banded_distances(queries, refs, band, stride))


@functools.partial(jax.jit, static_argnames=("patch", "o_hw", "i_hw", "band", "stride"))
def _fine_bidirectional(output, original, patch, o_hw, i_hw, band, stride):
  o, i = _rescale(output, o_hw), _rescale(original, i_hw)
  po, pi = _patch_grid(o, patch), _patch_grid(i, patch)
  return _banded_nearest(po, pi, band, stride), _banded_nearest(pi, po, band, stride)


def _fine_geometry(output_shape, original_shape, patch: int, scale: float, band: float):
  """(swap, o_hw, i_hw, band_rows) of the fine scores, from the static shapes: ``swap``
  when the height changed more than the width (the band then runs along columns)."""
  (oh, ow), (ih, iw) = output_shape[:2], original_shape[:2]
  swap = abs(np.log(oh / ih)) > abs(np.log(ow / iw))
  if swap:
    output_shape, original_shape = (ow, oh), (iw, ih)
  scale_height = max(patch, round(original_shape[0] * scale))
  o_hw, i_hw = _scaled_sizes(output_shape, original_shape, patch, scale_height)
  return swap, o_hw, i_hw, max(1, round(band * scale_height))


def fine_similarity(output: np.ndarray, original: np.ndarray, patch: int = 7,
                    scale: float = 0.5, band: float = 0.04,
                    stride: int = 3) -> dict[str, float]:
  """{'fine_coherence': ..., 'fine_completeness': ...}: the bidirectional similarity
  halves at ``scale`` x the original's size (half size by default), each patch matched
  within a band of rows (see the comment above) -- of columns when the height changed
  more than the width. Lower is better, as for
  :func:`bidirectional_similarity`; the two are not on the same scale (finer detail
  costs more)."""
  swap, o_hw, i_hw, band_rows = _fine_geometry(output.shape, original.shape, patch, scale,
                                               band)
  if swap:
    output, original = np.swapaxes(output, 0, 1), np.swapaxes(original, 0, 1)
  coherence, completeness = _fine_bidirectional(
      jax.device_put(np.asarray(output, np.float32)),
      jax.device_put(np.asarray(original, np.float32)), patch, o_hw, i_hw, band_rows, stride)
  return {"fine_coherence": float(coherence), "fine_completeness": float(completeness)}


def fine_patch_distances(output: jax.Array, original: jax.Array, patch: int = 7,
                         scale: float = 0.5, band: float = 0.04, stride: int = 3) -> jax.Array:
  """Traceable (sizes from the static shapes; jit and vmap it): each ``output`` patch's
  squared distance per element to the nearest ``original`` patch within the band, at
  ``scale`` x the original's size, on a ``stride`` grid (rows x columns of that grid,
  transposed when the height changed more than the width). Its mean is
  :func:`fine_coherence`; its tail singles out a few badly invented patches, such as a
  seam's tear line, that the mean averages away."""
  swap, o_hw, i_hw, band_rows = _fine_geometry(output.shape, original.shape, patch, scale,
                                               band)
  if swap:
    output, original = jnp.swapaxes(output, 0, 1), jnp.swapaxes(original, 0, 1)
  o, i = _rescale(output, o_hw), _rescale(original, i_hw)
  return _banded_distances(_patch_grid(o, patch), _patch_grid(i, patch), band_rows, stride)


def fine_coherence(output: jax.Array, original: jax.Array, patch: int = 7,
                   scale: float = 0.5, band: float = 0.04, stride: int = 3) -> jax.Array:
  """The ``fine_coherence`` half of :func:`fine_similarity` as a traceable function
  (the mean of :func:`fine_patch_distances`): high where the output has structures
  the original lacks at that scale -- an object torn by seams into a jagged step, a
  smear -- which the 96-px :func:`bidirectional_similarity` is too coarse to see."""
  return jnp.mean(fine_patch_distances(output, original, patch, scale, band, stride))

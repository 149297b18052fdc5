"""A criterion that sees what people see in a retargeted image (issue 34).

The RetargetMe study (Rubinstein et al. 2010) found people most sensitive to salient
content deformed (people, faces, objects squeezed) or lost, and much less to background
cut at the borders: a crop is preferred to a uniform squeeze (the survey's re-run: CR
0.58 against SCL 0.39 and WARP 0.35), unless it cuts the subject. Eq. 5's semantic
score sees none of this (it agrees with the survey's votes less often than a coin), so
this module measures it directly, on a column map from output to source:

- ``squeeze``: the saliency-weighted mean of (log local scale)^2, the local scale being
  how many source columns an output column spans over a short window (objects made
  narrower);
- ``lost``: the share of the source's saliency in its most salient pixels (the top
  ``1 - HOT_QUANTILE`` of them) whose columns the output does not show, in runs of at
  least two columns at the analysis resolution: an object cut at a border or carved
  out (a squeeze of less than 3x skips single columns: that is resolution, not
  content);
- ``residual``: how far the output's columns are from the source columns they show
  (the map's descriptor distance). It is high for the two-dimensional warps (SV, SNS:
  rows move too, which no column map explains), which people like: it is a detector of
  that style rather than of an artifact (its weight is positive).

**Saliency** is deep: Eq. 1's importance at block4_conv4 and block5_conv4 of VGG19
(the source at :data:`SALIENCY_SIDE` px on its long side), each divided by its mean,
summed (:func:`deep_saliency`). On the survey's votes it predicts better than the
colour-contrast saliency of the first version of this criterion (0.608 -> 0.629 leave
one set out), though it covers a subject's core more than its extremities (an eagle's
wing tip).

**The column map** is recovered from the two images for any method
(:mod:`dnr_jax.quality.correspondence`, 160 columns, 8 bands); dnr's audition knows its
own maps exactly and computes the same features on them at the same resolution
(:func:`map_features` runs on NumPy or jax.numpy arrays:
``dnr_jax.resizing.audition``).

:func:`human_preference` combines the features linearly with :data:`WEIGHTS`, fitted by
logistic regression on the survey's votes of sets 1-46 only (``scripts/human_agreement.py``
prints them and the agreement, leave one set out; docs/RESULTS.md); higher = people
prefer.
"""

from __future__ import annotations

import functools
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from dnr_jax.nn import vgg
from dnr_jax.ops import importance
from dnr_jax.quality import correspondence
from dnr_jax.quality import votes as votes_lib

FEATURES = ("squeeze", "lost", "residual")
SALIENCY_LAYERS = ("block4_conv4", "block5_conv4")
SALIENCY_SIDE = 320  # the source's long side for VGG (the audition's working size too)
HOT_QUANTILE = 0.85  # ``lost`` counts the saliency of the pixels above this quantile
ANALYSIS_WIDTH = correspondence.WIDTH  # columns of the analysis resolution
BANDS = correspondence.BANDS

# Fitted by ``scripts/human_agreement.py`` (``fit_weights`` on every vote of the survey's
# sets below 47: 2,753 votes on 14 sets; images scaled so that the source's long side is
# 640 px). Leave one set out they agree with 0.629 [0.602, 0.657] of those votes (the
# method's name alone: 0.607; the pairs' majorities: 0.760; docs/RESULTS.md).
WEIGHTS: Mapping[str, float] = {"squeeze": -2.53, "lost": -2.63, "residual": 30.4}


def deep_saliency(maps: Mapping[str, jax.Array], hw: tuple[int, int]) -> jax.Array:
  """(h, w) saliency summing to 1: the Eq. 1 importance maps ``maps`` {layer: (h_l,
  w_l)} (the :data:`SALIENCY_LAYERS`), each divided by its mean, resized to ``hw`` and
  summed. Traceable (the audition runs it under jit)."""
  total = sum(jax.image.resize(importance.normalise(maps[l].astype(jnp.float32)), hw,
                               "linear") for l in SALIENCY_LAYERS)
  return total / jnp.sum(total)


def band_profiles(saliency, bands: int = BANDS, xp=np):
  """(B, w) per band of rows: the saliency of each column, and that of its pixels above
  the :data:`HOT_QUANTILE` (the bands as :attr:`correspondence.Alignment.band_rows`).
  ``xp``: ``numpy`` or ``jax.numpy``."""
  h = saliency.shape[0]
  rows = np.linspace(0, h, bands + 1).round().astype(int)
  hot = xp.where(saliency > xp.quantile(saliency, HOT_QUANTILE), saliency, 0.0)
  pick = lambda m: xp.stack([m[r0:r1].sum(0) for r0, r1 in zip(rows[:-1], rows[1:])])  # noqa: E731
  return pick(saliency), pick(hot)


def map_features(band_saliency, band_hot, columns, residual=None, xp=np) -> dict:
  """The criterion's features of a column map (higher = worse for each).

  Args:
    band_saliency, band_hot: (B, W) :func:`band_profiles` of the source.
    columns: (B, W') int, the source column each output column shows, per band.
    residual: (B, W') the map's descriptor distance, or None (a known map: 0).
    xp: ``numpy`` or ``jax.numpy`` (the audition traces it).
  """
  bands, n_out = columns.shape
  r = max(1, n_out // 32)
  c = columns.astype(xp.float32)
  pad = xp.concatenate([xp.repeat(c[:, :1], r, 1), c, xp.repeat(c[:, -1:], r, 1)], 1)
  i = np.arange(n_out)
  den = np.maximum(np.minimum(i + r, n_out - 1) - np.maximum(i - r, 0), 1).astype(np.float32)
  span = xp.maximum((pad[:, 2 * r:] - pad[:, :-2 * r]) / den[None], 1.0)
  w = xp.take_along_axis(band_saliency, columns, 1)
  squeeze = xp.sum(w * xp.log(span) ** 2) / xp.maximum(xp.sum(w), 1e-12)
  shown = xp.any(columns[:, :, None] == xp.arange(band_saliency.shape[1])[None, None], 1)
  # Lost: in a run of at least two source columns that no output column shows (a
  # squeeze of less than 3x skips single columns: resolution, not content).
  hidden = ~xp.pad(shown, ((0, 0), (1, 1)))  # (beyond the borders: hidden)
  gone = hidden[:, 1:-1] & (hidden[:, :-2] | hidden[:, 2:])
  lost = xp.sum(xp.where(gone, band_hot, 0.0)) / xp.maximum(xp.sum(band_saliency), 1e-12)
  res = 0.0 if residual is None else xp.mean(residual)
  return {"squeeze": squeeze, "lost": lost, "residual": res}


def score(feats: Mapping[str, float], weights: Mapping[str, float] = WEIGHTS):
  """The criterion from already computed features: sum_k w_k f_k (traceable)."""
  return sum(w * feats[k] for k, w in weights.items())


@functools.partial(jax.jit, static_argnames=("hw",))
def _saliency_map(weights: vgg.VGGWeights, image: jax.Array, hw: tuple[int, int]):
  feats = vgg.features(weights, image[None], SALIENCY_LAYERS)
  return deep_saliency({l: importance.importance_map(f[0]) for l, f in feats.items()}, hw)


@functools.lru_cache(maxsize=1)
def _default_weights() -> vgg.VGGWeights:
  from dnr_jax.nn import weights as weights_lib  # pylint: disable=g-import-not-at-top
  return weights_lib.load_vgg19()


def source_profiles(source: np.ndarray, analysis_hw: tuple[int, int], transposed: bool,
                    weights: vgg.VGGWeights | None = None) -> tuple[np.ndarray, np.ndarray]:
  """:func:`band_profiles` of ``source`` (uint8 RGB, upright) at the analysis size
  ``analysis_hw`` (of the transposed image when ``transposed``: a height change)."""
  weights = weights or _default_weights()
  h, w = source.shape[:2]
  f = min(1.0, SALIENCY_SIDE / max(h, w))
  small = np.asarray(Image.fromarray(np.asarray(source, np.uint8)).resize(
      (max(32, round(w * f)), max(32, round(h * f))), Image.BOX), np.float32)
  hw = tuple(analysis_hw[::-1]) if transposed else tuple(analysis_hw)
  sal = np.asarray(_saliency_map(weights, jnp.asarray(small), hw=hw))
  return band_profiles(sal.T if transposed else sal)  # VGG saw the photo upright


def features(source: np.ndarray, output: np.ndarray,
             weights: vgg.VGGWeights | None = None) -> dict[str, float]:
  """The criterion's features of one (source, output) pair of uint8 RGB images, on
  the column map recovered by :func:`correspondence.align` (higher = worse)."""
  a = correspondence.align(np.asarray(source, np.uint8), np.asarray(output, np.uint8))
  sal, hot = source_profiles(source, a.source.shape[:2], a.transposed, weights)
  return {k: float(v) for k, v in map_features(sal, hot, a.columns, a.residual).items()}


def human_preference(source: np.ndarray, output: np.ndarray,
                     weights: vgg.VGGWeights | None = None) -> float:
  """How much people would prefer ``output`` as a retargeting of ``source`` (uint8 RGB
  arrays of any sizes; higher = preferred). Comparable between outputs of one source
  and one target size (the survey's votes compare those); an output larger than the
  source along the changed axis (enlarging) is not scored (``ValueError``).
  ``weights``: the VGG19 whose deep importance is the saliency (default: the converted
  ImageNet weights, loaded once)."""
  return float(score(features(source, output, weights)))


def fit_weights(votes: Sequence[votes_lib.Vote],
                table: Mapping[tuple[int, str], Mapping[str, float]],
                names: Sequence[str] = FEATURES, l2: float = 1.0) -> dict[str, float]:
  """Logistic regression of each vote on the chosen minus the other image's features
  (no intercept: swapping the sides flips the prediction), on standardised differences
  with an L2 penalty ``l2``; returns the weights in the features' own units."""
  x = np.array([[table[(v.set_id, v.a)][n] - table[(v.set_id, v.b)][n] for n in names]
                for v in votes], np.float64)
  y = np.array([v.chosen == v.a for v in votes], np.float64)
  sd = x.std(0) + 1e-12
  xs = x / sd
  w = np.zeros(len(names))
  for _ in range(100):  # Newton's method: the objective is convex
    p = 1.0 / (1.0 + np.exp(-xs @ w))
    grad = xs.T @ (p - y) + l2 * w
    hess = (xs * (p * (1.0 - p))[:, None]).T @ xs + l2 * np.eye(len(names))
    step = np.linalg.solve(hess, grad)
    w -= step
    if np.max(np.abs(step)) < 1e-10:
      break
  return {n: float(wi / si) for n, wi, si in zip(names, w, sd)}

"""The plan of a job: every decision about it, made once, before any compute.

:func:`make_plan` is a pure function of (input size, target size, which masks are
given, configuration, architecture, backend). It checks the job (ValueError naming
the problem) and fixes everything the phases, the estimate, the dry run and the report
read: the four sizes, the operators auditioned (:func:`candidate_operators`)
and whether their audition runs Eq. 4 steps, the axis-order rule, the Eq. 4 and
refinement step counts, and the convolutions' dtype. No phase re-derives any of these;
one image and a batch get the same plan (:attr:`Plan.batch_key` groups a batch).

The one decision that needs the pixels, the axis order of a two-axis job under
``axis_order="auto"`` (Eq. 5 on both orders' pixel maps), is a phase of its own
(:func:`dnr_jax.resizing.audition.order_scores`); the plan records that it is to be made.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax

from dnr_jax import config as config_lib
from dnr_jax.config import OperatorConfig
from dnr_jax.config import RetargetConfig
from dnr_jax.nn import vgg
from dnr_jax.resizing import deep_carving

MIN_SIDE = 32  # block5_pool needs five 2x poolings to leave one position
MAX_ENLARGE = 2  # seam insertion duplicates each position at most once per run


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
  compilation and one vmapped batch (:mod:`dnr_jax.resizing.batching`). An axis that
  does not change at full resolution does not change at the working size; one that
  does changes by at least one working pixel.
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


def candidate_operators(cfg: OperatorConfig, image_hw: tuple[int, int],
                        out_hw: tuple[int, int], masked: bool = False, arch: str = "vgg19"
                        ) -> tuple[tuple[str, OperatorConfig], ...]:
  """The operators planned for a job, (name, config) each, ``cfg`` itself first (static).

  For a shrink of one axis without masks (``masked``), ``cfg.alternatives`` add: "crop"
  (crop_share 1: the crop window alone, the warp only the remainder below the deepest
  layer's stride) and "seams" (crop_share 0, percentile 100: the hierarchical
  feature-space seams of Eq. 1-2 carve the whole shrink, the warp has nothing left;
  ``seam_style`` "straight": the deeper layers' importance steers each shallower
  layer's seams away from what they found, beside Eq. 2's damping, one seam per DP
  pass, each paying for a sideways step, so that they do not remove a cheap diagonal
  valley as a slanted band) and
  "warp" (crop_share 0, no seams: Eq. 3's warp alone resizes the whole image, each
  column cell by its importance; it never cuts or tears, it squeezes).
  The audition keeps the plan whose pixel map keeps the most deep features (Eq. 5).
  Otherwise (enlarging, both axes, masks, no alternatives): ``cfg`` alone. The
  configured operator is named by what it does to these sizes: "crop+warp" when it
  crops, else "seams+warp" (the paper's)."""
  (h, w), (oh, ow) = image_hw, out_hw
  one_axis_shrink = (oh == h) != (ow == w) and oh <= h and ow <= w
  if deep_carving.crop_size(cfg, image_hw, out_hw, arch, masked)[1] > 0:
    name = "crop+warp"
  else:
    name = "seams+warp"
  own = dataclasses.replace(cfg, alternatives=())
  if masked or not one_axis_shrink or not cfg.alternatives:
    return ((name, own),)
  variants = {
      "crop": dataclasses.replace(own, crop_share=1.0, crop_share_growth=0.0),
      "seams": dataclasses.replace(own, crop_share=0.0, percentile=100.0,
                                   seam_style="straight"),
      "warp": dataclasses.replace(own, crop_share=0.0, crop_share_growth=0.0, use_seams=False),
  }
  return ((name, own), *((a, variants[a]) for a in cfg.alternatives))


def carves_seams(cfg: OperatorConfig, image_hw: tuple[int, int], out_hw: tuple[int, int],
                 arch: str = "vgg19", masked: bool = False) -> bool:
  """Whether the operator removes or inserts seams for these sizes (static): False for
  a resampling of the image (a crop and/or Eq. 3's warp), whose pixel map has no tears."""
  if not cfg.use_seams:
    return False
  # a cropped shrink leaves the rest to the warp alone (audition.deep_plan)
  return deep_carving.crop_size(cfg, image_hw, out_hw, arch, masked)[1] == 0


def candidates_carve_seams(cfg: OperatorConfig, image_hw: tuple[int, int],
                           out_hw: tuple[int, int], masked: bool = False,
                           arch: str = "vgg19") -> bool:
  """Whether any operator :func:`candidate_operators` plans for these sizes
  :func:`carves_seams` (static): False when the kept plan, whichever is chosen, is a
  resampling of the image."""
  return any(carves_seams(op, image_hw, out_hw, arch, masked)
             for _, op in candidate_operators(cfg, image_hw, out_hw, masked, arch))


def reconstruction_steps(s: Sizes, cfg: RetargetConfig, masked: bool = False,
                         arch: str = "vgg19") -> int:
  """The Eq. 4 steps a job of sizes ``s`` runs (static, known before any compute).

  ``cfg.reconstruction.steps``, except 0 when the output is lifted to full resolution
  (``s.full_resolution``) from a plan that carves no seams (every candidate operator a
  crop and/or Eq. 3's warp: :func:`candidates_carve_seams`), init
  "seams", and not ``cfg.reconstruction.reconstruct_resamplings``. The output is then
  the pixel map applied to the full-resolution image. Departs from the paper, which
  always reconstructs: Eq. 4 heals seams; a resampling has none, and what the
  working-size steps add to it reaches the full-size output only as ``up(final -
  init)``: on the RetargetMe dev half a blotchy low-frequency tone drift
  (docs/history/LAB_LOG.md). At the input's own size the steps run. ``masked``: a keep
  or remove mask is given.
  """
  rc = cfg.reconstruction
  if rc.reconstruct_resamplings or rc.init != "seams" or not s.full_resolution:
    return rc.steps
  if candidates_carve_seams(cfg.operator, s.work, s.work_out, masked, arch):
    return rc.steps
  return 0


def operator_names(s: Sizes, cfg: RetargetConfig, masked: bool = False,
                   arch: str = "vgg19") -> tuple[str, ...]:
  """The names of the operators a job of sizes ``s`` auditions (:attr:`Plan.operators`)."""
  return tuple(n for n, _ in candidate_operators(cfg.operator, s.work, s.work_out,
                                                              masked, arch))


class BatchKey(NamedTuple):
  """What jobs must share to run as one vmapped batch (one compilation per batch shape)."""

  work: tuple[int, int]
  work_out: tuple[int, int]
  steps: int  # the Eq. 4 steps (0 for a lifted resampling)
  axis_order: str  # the rule ("auto" splits the batch by the order each image chose)
  keep: bool
  remove: bool


@dataclasses.dataclass(frozen=True)
class Plan:
  """Every decision about one job (one stage of it: object removal has two).

  Frozen and hashable: the jitted phases take it as a static argument.
  """

  sizes: Sizes
  arch: str
  layers: tuple[str, ...]  # the operator's layers, shallow to deep
  keep: bool  # a keep mask is given (a hard constraint)
  remove: bool  # a remove mask is given (this stage carves it out)
  # (name, OperatorConfig) of each operator auditioned, the configured one first
  # (candidate_operators); Prepared.operator indexes them.
  candidates: tuple[tuple[str, OperatorConfig], ...]
  # Eq. 4 steps each candidate's pixel map runs before it is scored (0: the raw maps).
  audition_steps: int
  # "width_first" / "height_first", or "auto": both axes change and the order is chosen
  # per image by the order phase (Eq. 5 of both orders' pixel maps).
  axis_order: str
  steps: int  # Eq. 4 steps (reconstruction_steps)
  refine_steps: int  # section 3.3 refinement steps
  compute_dtype: str  # "float32" / "bfloat16": the VGG convolutions (resolved)

  @property
  def masked(self) -> bool:
    return self.keep or self.remove

  @property
  def shallow(self) -> str:
    """The shallowest operator layer (block1): the pixel map and the lift read it."""
    return self.layers[0]

  @property
  def operators(self) -> tuple[str, ...]:
    return tuple(n for n, _ in self.candidates)

  @property
  def two_axes(self) -> bool:
    (h, w), (oh, ow) = self.sizes.work, self.sizes.work_out
    return oh != h and ow != w

  @property
  def batch_key(self) -> BatchKey:
    """Jobs with equal keys run as one vmapped batch (one compilation per batch shape)."""
    s = self.sizes
    return BatchKey(tuple(s.work), tuple(s.work_out), self.steps, self.axis_order, self.keep,
                    self.remove)

  def with_order(self, order: str) -> "Plan":
    """This plan with the axis order the order phase chose."""
    return dataclasses.replace(self, axis_order=order)

  def operator_config(self) -> OperatorConfig:
    """The configured operator with this plan's (resolved) axis order."""
    op = self.candidates[0][1]
    return dataclasses.replace(op, axis_order="width_first" if self.axis_order == "auto"
                               else self.axis_order)


def make_plan(image_hw: tuple[int, int], out_hw: tuple[int, int], cfg: RetargetConfig,
              arch: str = "vgg19", keep: bool = False, remove: bool = False,
              backend: str | None = None) -> Plan:
  """The plan of retargeting an ``image_hw`` image to ``out_hw`` (ValueError if it
  cannot run). ``keep`` / ``remove``: which masks are given; ``backend``: the JAX
  backend it runs on (default ``jax.default_backend()``; it decides the dtype)."""
  image_hw, out_hw = tuple(int(x) for x in image_hw), tuple(int(x) for x in out_hw)
  return plan_of_sizes(validate(image_hw, out_hw, cfg, arch), cfg, arch, keep, remove,
                       backend)


def plan_of_sizes(s: Sizes, cfg: RetargetConfig, arch: str = "vgg19", keep: bool = False,
                  remove: bool = False, backend: str | None = None) -> Plan:
  """:func:`make_plan` of a job whose sizes are already computed (and validated)."""
  masked = keep or remove
  candidates = candidate_operators(cfg.operator, s.work, s.work_out, masked, arch)
  audition = 0
  if len(candidates) > 1 and candidates_carve_seams(cfg.operator, s.work,
                                                                s.work_out, masked, arch):
    audition = cfg.operator.alternative_steps
  (h, w), (oh, ow) = s.work, s.work_out
  order = cfg.operator.axis_order
  if order == "auto" and (oh == h or ow == w):
    order = "width_first"  # one axis: nothing to choose
  return Plan(
      sizes=s, arch=arch, layers=deep_carving.sort_layers(cfg.operator.layers, arch),
      keep=bool(keep), remove=bool(remove), candidates=tuple(candidates),
      audition_steps=audition, axis_order=order,
      steps=reconstruction_steps(s, cfg, masked, arch), refine_steps=cfg.refinement.steps,
      compute_dtype=config_lib.resolve_compute_dtype(
          cfg.compute_dtype, backend or jax.default_backend()))

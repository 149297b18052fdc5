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


def work_size(cfg: RetargetConfig, image_hw: tuple[int, int], out_hw: tuple[int, int],
              masked: bool = False) -> int:
  """The long side the job's working phases run at (0 = the input's own size):
  ``cfg.plan_size`` for a resampling (its plan only decides where to crop and what to
  squeeze, and no Eq. 4 runs: :func:`reconstruction_steps`), else ``cfg.work_size``."""
  if cfg.plan_size and is_resampling(cfg, image_hw, out_hw, masked):
    return min(cfg.plan_size, cfg.work_size) if cfg.work_size else cfg.plan_size
  return cfg.work_size


def validate(image_hw: tuple[int, int], out_hw: tuple[int, int], cfg: RetargetConfig,
             arch: str = "vgg19", masked: bool = False) -> Sizes:
  """The one place where sizes and configurations are checked; returns the job's sizes
  (``masked``: a keep or remove mask is given).

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
  s = sizes(image_hw, out_hw, work_size(cfg, image_hw, out_hw, masked), cfg.work_multiple)
  if s.full_resolution and vgg.layer_stride(layers[0], arch) != 1:
    raise ValueError("a working size needs a block1 layer among the operator layers, to "
                     "lift its plan to full resolution")
  return s


def crop_shares(cfg: OperatorConfig, image_hw: tuple[int, int], out_hw: tuple[int, int],
                masked: bool = False) -> tuple[float, ...]:
  """The crop shares the audition tries for a job (static): ``cfg.crop_shares`` for a
  shrink of one axis without masks, else () (enlarging, both axes, masks: the
  configured operator's seams and warp; a two-axis plan would have to crop the other
  axis's rows too, a keep mask's pixels may lie at the border)."""
  (h, w), (oh, ow) = image_hw, out_hw
  one_axis_shrink = (oh == h) != (ow == w) and oh <= h and ow <= w
  return tuple(cfg.crop_shares) if one_axis_shrink and not masked else ()


def operator_name(share: float | None) -> str:
  """A candidate's name: "warp" (nothing cropped), "crop" (the crop alone), "crop50+warp"
  (half the shrink cropped), or "seams+warp" (``None``: the configured operator)."""
  if share is None:
    return "seams+warp"
  if share <= 0.0:
    return "warp"
  if share >= 1.0:
    return "crop"
  return f"crop{round(100 * share)}+warp"


def carves_seams(cfg: OperatorConfig, image_hw: tuple[int, int], out_hw: tuple[int, int],
                 masked: bool = False) -> bool:
  """Whether the plan removes or inserts seams for these sizes (static): False for a
  resampling of the image (the audition's crop + warp, or ``use_seams`` off), whose
  pixel map has no tears."""
  return cfg.use_seams and not crop_shares(cfg, image_hw, out_hw, masked)


def is_resampling(cfg: RetargetConfig, image_hw: tuple[int, int], out_hw: tuple[int, int],
                  masked: bool = False) -> bool:
  """Whether the job's output is its plan's pixel map on the input's own pixels, without
  Eq. 4 (static): a plan that carves no seams (a crop and/or Eq. 3's warp:
  :func:`carves_seams`) under the init "seams" (the pixel map), unless
  ``cfg.reconstruction.reconstruct_resamplings``."""
  rc = cfg.reconstruction
  return (rc.init == "seams" and not rc.reconstruct_resamplings
          and not carves_seams(cfg.operator, image_hw, out_hw, masked))


def reconstruction_steps(cfg: RetargetConfig, image_hw: tuple[int, int],
                         out_hw: tuple[int, int], masked: bool = False) -> int:
  """The Eq. 4 steps a job runs (static, known before any compute).

  ``cfg.reconstruction.steps``, except 0 for a resampling (:func:`is_resampling`): the
  output is then the pixel map applied to the input's own pixels (lifted to full
  resolution, :mod:`fullres`).
  Departs from the paper, which always reconstructs: Eq. 4 heals seams; a resampling
  has none, and what the steps add to it is what people see as an artifact (a regular
  diagonal hatch over foliage at 100%, issue 34; a blotchy tone drift once lifted,
  docs/history/LAB_LOG.md), at four fifths of the job's time (issue 37). ``masked``:
  a keep or remove mask is given.
  """
  return 0 if is_resampling(cfg, image_hw, out_hw, masked) else cfg.reconstruction.steps


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
  operator: OperatorConfig  # the configured operator
  # The audition's crop shares (crop_shares): each a crop + warp candidate, the one
  # the human-calibrated criterion prefers is kept (Prepared.operator indexes them);
  # () = the configured operator's seams and warp, no audition.
  crop_shares: tuple[float, ...]
  # "width_first" / "height_first", or "auto": both axes change and the order is chosen
  # per image by the order phase (Eq. 5 of both orders' pixel maps).
  axis_order: str
  # The output is the plan's pixel map on the input's pixels, no Eq. 4 (is_resampling).
  resampling: bool
  steps: int  # Eq. 4 steps (reconstruction_steps; 0 for a resampling)
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
    """The candidates' names (:func:`operator_name`), in the order of their scores."""
    return tuple(operator_name(s) for s in self.crop_shares) or (operator_name(None),)

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
    return dataclasses.replace(self.operator, axis_order="width_first"
                               if self.axis_order == "auto" else self.axis_order)


def make_plan(image_hw: tuple[int, int], out_hw: tuple[int, int], cfg: RetargetConfig,
              arch: str = "vgg19", keep: bool = False, remove: bool = False,
              backend: str | None = None) -> Plan:
  """The plan of retargeting an ``image_hw`` image to ``out_hw`` (ValueError if it
  cannot run). ``keep`` / ``remove``: which masks are given; ``backend``: the JAX
  backend it runs on (default ``jax.default_backend()``; it decides the dtype)."""
  image_hw, out_hw = tuple(int(x) for x in image_hw), tuple(int(x) for x in out_hw)
  return plan_of_sizes(validate(image_hw, out_hw, cfg, arch, keep or remove), cfg, arch,
                       keep, remove, backend)


def plan_of_sizes(s: Sizes, cfg: RetargetConfig, arch: str = "vgg19", keep: bool = False,
                  remove: bool = False, backend: str | None = None) -> Plan:
  """:func:`make_plan` of a job whose sizes are already computed (and validated)."""
  masked = keep or remove
  (h, w), (oh, ow) = s.work, s.work_out
  order = cfg.operator.axis_order
  if order == "auto" and (oh == h or ow == w):
    order = "width_first"  # one axis: nothing to choose
  return Plan(
      sizes=s, arch=arch, layers=deep_carving.sort_layers(cfg.operator.layers, arch),
      keep=bool(keep), remove=bool(remove), operator=cfg.operator,
      crop_shares=crop_shares(cfg.operator, s.work, s.work_out, masked), axis_order=order,
      resampling=is_resampling(cfg, s.work, s.work_out, masked),
      steps=reconstruction_steps(cfg, s.work, s.work_out, masked),
      refine_steps=cfg.refinement.steps,
      compute_dtype=config_lib.resolve_compute_dtype(
          cfg.compute_dtype, backend or jax.default_backend()))

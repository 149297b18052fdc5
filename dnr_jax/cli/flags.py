"""Command-line flags derived from the configuration dataclasses: one table.

Every field of :class:`~dnr_jax.config.RetargetConfig` and its parts becomes a flag of
the same name (the refinement's get a ``refine_`` prefix), its type, default and
choices read from the dataclass, its help from :data:`HELP`; ``--helpfull`` lists them
grouped by concept. ``--preset`` picks the starting configuration
(:data:`dnr_jax.config.PRESETS`); a flag given on the command line or in a
``--flagfile`` overrides the preset's value, the others keep it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator

from absl import flags

from dnr_jax import config

# (attribute of RetargetConfig or "" for its own fields, flag prefix, --helpfull group)
GROUPS = (
    ("", "", "dnr_jax: working size and dtype"),
    ("operator", "", "dnr_jax: the deep operator (Eq. 1-3, the crop, the audition)"),
    ("reconstruction", "", "dnr_jax: reconstruction (Eq. 4)"),
    ("refinement", "refine_", "dnr_jax: refinement (section 3.3)"),
)
# Field names whose flag is not prefix + name.
RENAMED = {("refinement", "control_cell"): "refine_cell"}
CHOICES = {"axis_order": config.AXIS_ORDERS, "seam_style": config.SEAM_STYLES,
           "init": ("linear", "seams", "noise"),
           "compute_dtype": config.COMPUTE_DTYPES}
_SUB = tuple(g for g, _, _ in GROUPS if g)

HELP = {
    'work_size': "Long side, in pixels, at which the deep operator and the reconstruction run; larger inputs are delivered at full resolution (lifted seams and warp + the reconstruction's low frequencies). 0: run at the input's size.",
    'work_multiple': 'Round the working sides to a multiple of this many pixels (e.g. 32), so that photos of nearly the same aspect ratio share one compilation and one batch. 1: keep the exact aspect ratio.',
    'compute_dtype': 'dtype of the VGG convolutions: auto = float32 on CPUs, bfloat16 on accelerators (1.8x faster reconstruction on an H100, same quality).',
    'layers': 'Feature layers of the deep operator.',
    'alpha': "Eq. 2 damping inside deeper seams' receptive fields.",
    'percentile': 'Seams after the first only while their mean importance is within this percentile of the deepest map.',
    'crop_shares': "The audition of a one-axis shrink without masks: for each share (0..1), crop that share of the shrink (the window that loses the least salient content) and warp the rest (Eq. 3); the crop + warp that the human-calibrated criterion (quality.human) prefers is delivered as a resampling of the input, without Eq. 4. Empty = the paper's seams and warp for every job.",
    'crop_lost_weight': "The audition's extra price of salient content a candidate loses (an object cut at the border), beyond the criterion's own: higher leaves more of the shrink to the warp when a crop would cut the subject.",
    'plan_size': "Long side, in pixels, at which a resampling plan (the audition's crop + warp: no seams, no Eq. 4) is made before its pixel map is lifted onto the input's own pixels. 0: --work_size.",
    'grid_cell': 'Column-cell width of the warp (Eq. 3).',
    'seam_style': "fast: below the deepest layer 1/32 of the width's seams per DP pass on Eq. 1/2's energy; straight: one seam per pass, the deeper layers' importance added to each shallower layer's energy and sideways steps charged, so that seams run straight instead of cutting a diagonal band across straight structures.",
    'axis_order': "When both axes change: auto = plan both orders and keep the one whose seams-and-warp image keeps more of the input's deep features (Eq. 5); or a fixed order.",
    'min_cell_scale': 'Smallest scale factor of a warp cell.',
    'warp_power': "Exponent (0-8) on the warp cells' importance (Eq. 3): above 1 the squeeze goes to the least important cells, 1 = Eq. 3 as written.",
    'forward_weight': 'Weight of the feature-space forward energy in the seams below the deepest layer (a seam pays for the feature edge its removal creates; 0 = importance alone).',
    'loss_layers': 'Eq. 4 terms as layer:lambda.',
    'init': 'Initialisation of the reconstruction (section 4.3).',
    'steps': 'Adam steps of the reconstruction (Eq. 4); see --reconstruct_resamplings.',
    'reconstruct_resamplings': "Run the reconstruction also for a plan that carves no seams (the audition's crop + warp, whose pixel map on the input's own pixels is otherwise the output): slower, and at 100% it draws a diagonal hatch over foliage (issue 34); lifted to full resolution its correction only drifted the tones.",
    'learning_rate': 'Adam learning rate of the reconstruction, in 0..255 pixel units.',
    'chunk': 'Steps per jitted call (progress period).',
    'seed': 'Seed of the noise initialisation.',
    'refine_steps': 'Adam steps of the grid refinement.',
    'refine_learning_rate': 'Adam learning rate of the refinement grid.',
    'refine_cell': 'Control-grid spacing of the refinement, pixels.',
    'refine_smoothness': "Weight of the refinement's smoothness term.",
    'refine_max_shift': 'Largest refinement displacement, pixels.',
    "use_seams": "Carve seams at all (False: the warp alone resizes; an ablation).",
}


@dataclasses.dataclass(frozen=True)
class Knob:
  group: str  # "" or the RetargetConfig attribute holding the field
  field: str  # the dataclass field
  flag: str  # the flag's name
  default: Any  # the default preset's value
  module: str  # the --helpfull group


def knobs(cfg: config.RetargetConfig = config.RetargetConfig()) -> Iterator[Knob]:
  """Every configuration field as a :class:`Knob` (the flag table), in field order."""
  for group, prefix, module in GROUPS:
    obj = getattr(cfg, group) if group else cfg
    for f in dataclasses.fields(obj):
      if f.name in _SUB:
        continue
      name = RENAMED.get((group, f.name), prefix + f.name)
      yield Knob(group, f.name, name, getattr(obj, f.name), module)


def _format_loss_layers(value) -> list[str]:
  return [f"{l}:{lam:g}" for l, lam in value]


def parse_loss_layers(items) -> tuple[tuple[str, float], ...]:
  """``["block1_conv2:1", ...]`` -> ((layer, lambda), ...); ValueError names a bad item."""
  out = []
  for item in items:
    name, sep, lam = item.partition(":")
    try:
      out.append((name.strip(), float(lam) if sep else 1.0))
    except ValueError:
      raise ValueError(f"--loss_layers: {item!r} is not layer:lambda") from None
  return tuple(out)


def _flag(k: Knob) -> flags.Flag:
  help_text = HELP[k.flag]
  if k.field in CHOICES:
    return flags.EnumFlag(k.flag, k.default, help_text, list(CHOICES[k.field]))
  if isinstance(k.default, bool):
    return flags.BooleanFlag(k.flag, k.default, help_text)
  if isinstance(k.default, int):
    return flags.Flag(flags.IntegerParser(), flags.ArgumentSerializer(), k.flag, k.default,
                      help_text)
  if isinstance(k.default, float):
    return flags.Flag(flags.FloatParser(), flags.ArgumentSerializer(), k.flag, k.default,
                      help_text)
  if isinstance(k.default, tuple):
    default = _format_loss_layers(k.default) if k.field == "loss_layers" else list(k.default)
    return flags.Flag(flags.ListParser(), flags.CsvListSerializer(","), k.flag, default,
                      help_text)
  return flags.Flag(flags.ArgumentParser(), flags.ArgumentSerializer(), k.flag, k.default,
                    help_text)


def define_config_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """Defines ``--preset`` and one flag per configuration field."""
  flags.DEFINE_enum("preset", "default", list(config.PRESETS),
                    "Starting configuration: default (today's behaviour) or paper (the "
                    "paper's operator as published: feature-space seams to the threshold, "
                    "Eq. 3's warp for the rest, Eq. 4 from linear scale; no crop, no "
                    "audition). The flags below override it.", flag_values=flag_values,
                    module_name=GROUPS[0][2])
  for k in knobs():
    flags.DEFINE_flag(_flag(k), flag_values, module_name=k.module)


def _value(k: Knob, raw):
  if k.field == "loss_layers":
    return parse_loss_layers(raw)
  if k.field == "crop_shares":
    try:
      return tuple(float(x) for x in raw)
    except ValueError:
      raise ValueError(f"--crop_shares: {','.join(raw)!r} is not a list of numbers") from None
  if isinstance(k.default, tuple):
    return tuple(raw)
  return raw


def config_from_flags(flag_values: flags.FlagValues = flags.FLAGS) -> config.RetargetConfig:
  """The preset with every flag given (command line or flagfile) applied; ValueError
  (from the dataclasses' checks) names a bad value."""
  cfg = config.PRESETS[flag_values.preset]
  changes: dict[str, dict] = {g: {} for g, _, _ in GROUPS}
  for k in knobs(cfg):
    if flag_values[k.flag].present:
      changes[k.group][k.field] = _value(k, flag_values[k.flag].value)
  subs = {g: dataclasses.replace(getattr(cfg, g), **changes[g]) for g in _SUB}
  return dataclasses.replace(cfg, **subs, **changes[""])

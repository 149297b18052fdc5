"""Blind pair sheets: dnr against a published method or another dnr variant (issue 34).

Per photo, the source on top and the two results below it side by side, at the same
scale, the sides shuffled (a seeded coin per sheet); the key goes to a separate file,
to be read only after the sheets are judged. Judge each sheet by eye (``L``, ``R`` or
``=``), write the verdicts to a JSON file {"01": "L", ...}, then ``--tally`` it against
the key.

Variants (``--a``, ``--b``): ``dnr`` (the default), a preset (``paper``), a dnr variant
``dnr:section.field=value,...``, ``dir:NAME`` (outputs made elsewhere, e.g. by an older
checkout, as results/blind/outputs/NAME/<photo>.png), or, on RetargetMe, a published
method (``CR``, ``SV``, ``MULTIOP``, ``SC``, ``SCL``, ``SM``, ``SNS``, ``WARP``). Photos: RetargetMe sets of one
task (``--retargetme DIR --task width75``; the development half, sets 1-46, unless
``--i_am_reporting``), or the package photos at ``--widths``.

    python scripts/blind_pairs.py --retargetme DIR --task width75 --a dnr --b MULTIOP
    python scripts/blind_pairs.py --tally results/blind/dnr_vs_MULTIOP_width75/verdicts.json

Writes results/blind/<a>_vs_<b>_<task>/NN.png and key.json; dnr's outputs are cached in
results/blind/outputs/.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import hashlib
import json
import pathlib
import random

import numpy as np
from PIL import Image
from PIL import ImageDraw

import _photos
import _retargetme
from dnr_jax import config
from dnr_jax import resizing
from dnr_jax.nn import weights as weights_lib

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHEET_HEIGHT = 420  # each result's height on the sheet (the source's too)


def variant_config(spec: str) -> config.RetargetConfig:
  """``dnr`` / a preset name, then ``section.field=value`` settings."""
  name, _, sets = spec.partition(":")
  cfg = config.PRESETS.get(name, config.RetargetConfig())
  for item in filter(None, sets.split(";" if ";" in sets else ",")):
    key, value = item.split("=")
    section, field = key.split(".")
    part = getattr(cfg, section)
    old = getattr(part, field)
    if isinstance(old, bool):
      new = value.lower() == "true"
    elif isinstance(old, tuple):
      new = tuple(float(x) for x in value.split("/") if x)
    else:
      new = type(old)(value)
    cfg = dataclasses.replace(cfg, **{section: dataclasses.replace(part, **{field: new})})
  return cfg


def one_axis(src_hw, out_hw) -> tuple[int, int]:
  """The published crop's size on the axis that changed most, the source's on the other."""
  if abs(src_hw[0] - out_hw[0]) > abs(src_hw[1] - out_hw[1]):
    return out_hw[0], src_hw[1]
  return src_hw[0], out_hw[1]


def result(weights, spec: str, name: str, photo: np.ndarray, out_hw, published: dict
           ) -> np.ndarray:
  if spec in _retargetme.METHODS:
    return published[spec]
  if spec.startswith("dir:"):  # outputs made elsewhere (another checkout): <name>.png
    return np.asarray(Image.open(ROOT / "results" / "blind" / "outputs" / spec[4:]
                                 / f"{name}.png").convert("RGB"))
  digest = hashlib.sha256(repr(variant_config(spec)).encode()).hexdigest()[:8]
  cache = (ROOT / "results" / "blind" / "outputs" / f"{spec.replace('/', '_')}_{digest}"
           / f"{name}.png")
  if cache.is_file():
    return np.asarray(Image.open(cache).convert("RGB"))
  out = resizing.retarget(weights, photo, out_hw, variant_config(spec)).output
  cache.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(out).save(cache)
  return out


def _fit(im: np.ndarray, height: int) -> Image.Image:
  return Image.fromarray(im).resize((max(1, round(im.shape[1] * height / im.shape[0])),
                                     height), Image.LANCZOS)


def make_sheet(source: np.ndarray, left: np.ndarray, right: np.ndarray) -> Image.Image:
  """The source above, the two results below it, all at one scale."""
  scale = SHEET_HEIGHT / source.shape[0]
  h = lambda im: max(1, round(im.shape[0] * scale))  # noqa: E731
  src, l, r = _fit(source, SHEET_HEIGHT), _fit(left, h(left)), _fit(right, h(right))
  width = max(src.width, l.width + r.width + 24)
  sheet = Image.new("RGB", (width, src.height + max(l.height, r.height) + 40), "white")
  sheet.paste(src, (0, 0))
  top = src.height + 30
  sheet.paste(l, (0, top))
  sheet.paste(r, (l.width + 24, top))
  draw = ImageDraw.Draw(sheet)
  draw.text((4, top - 14), "L", fill="black")
  draw.text((l.width + 28, top - 14), "R", fill="black")
  return sheet


def tally(verdicts_path: pathlib.Path) -> None:
  """Counts the verdicts {"NN": "L"|"R"|"="} against the folder's key.json."""
  verdicts = json.loads(verdicts_path.read_text())
  key = json.loads((verdicts_path.parent / "key.json").read_text())
  count = collections.Counter()
  for sheet, v in verdicts.items():
    side = {"L": "left", "R": "right"}.get(v.strip().upper())
    count["tie" if side is None else key[sheet][side]] += 1
  print(json.dumps(dict(count)), f"({len(verdicts)} sheets)")


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--a", default="dnr")
  ap.add_argument("--b", default="MULTIOP")
  ap.add_argument("--retargetme", default=None)
  ap.add_argument("--task", default="width75")
  ap.add_argument("--i_am_reporting", action="store_true")
  ap.add_argument("--widths", default="0.75,0.5")
  ap.add_argument("--seed", type=int, default=0)
  ap.add_argument("--tally", default=None, help="a verdicts JSON beside its key.json")
  args = ap.parse_args()
  if args.tally:
    tally(pathlib.Path(args.tally))
    return
  weights = weights_lib.load_vgg19()
  if args.retargetme:
    split = "all" if args.i_am_reporting else "dev"
    jobs = [(f"rtm{s}", src, one_axis(src.shape[:2], pub["CR"].shape[:2]), pub)
            for s, _, src, pub in _retargetme.sets(pathlib.Path(args.retargetme), split,
                                                   tasks=(args.task,))]
    tag = args.task
  else:
    jobs = [(f"{n}_{r:g}", p, (p.shape[0], round(p.shape[1] * r)), {})
            for n, p in _photos.package_photos(640).items()
            for r in map(float, args.widths.split(","))]
    tag = "package"
  out = ROOT / "results" / "blind" / f"{args.a}_vs_{args.b}_{tag}".replace(":", "_").replace(
      "/", "_")
  if (out / "verdicts.json").exists():
    raise SystemExit(f"blind_pairs: {out} holds judged sheets (verdicts.json); move it first")
  out.mkdir(parents=True, exist_ok=True)
  rng = random.Random(args.seed)
  key = {}
  for n, (name, photo, out_hw, published) in enumerate(jobs, 1):
    pair = [result(weights, spec, name, photo, out_hw, published) for spec in (args.a, args.b)]
    swap = rng.random() < 0.5
    left, right = (pair[1], pair[0]) if swap else pair
    make_sheet(photo, left, right).save(out / f"{n:02d}.png")
    key[f"{n:02d}"] = {"photo": name, "left": args.b if swap else args.a,
                       "right": args.a if swap else args.b}
    print(n, name, flush=True)
  (out / "key.json").write_text(json.dumps(key, indent=1))
  print(f"{len(jobs)} sheets in {out}; the key is key.json (read it after judging)")


if __name__ == "__main__":
  main()

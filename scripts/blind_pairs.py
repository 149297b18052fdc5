"""Blind pair sheets of two dnr_jax variants on the package photos (issue 34 item 4,
issue 37's "without losing what people see"): per photo and width, the two outputs side
by side at 100% with the sides shuffled; the key goes to a separate file, to be read only
after the sheets are judged.

Variants are ``--a`` and ``--b``: a preset name, or ``name:section.field=value,...``
over the default, or the built-in ``no_eq4`` (the same plan, its resampling delivered
without Eq. 4: the ``initial`` of the default's own run, so both sides share every
decision but the reconstruction).

    python scripts/blind_pairs.py --a=default --b=no_eq4 [--widths=0.75,0.5] [--seed=0]

Writes results/blind/<a>_vs_<b>/NN.png and key.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import random

import numpy as np
from PIL import Image
from PIL import ImageDraw

import _photos
from dnr_jax import config
from dnr_jax import resizing
from dnr_jax.nn import weights as weights_lib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def variant_config(spec: str) -> config.RetargetConfig:
  name, _, sets = spec.partition(":")
  cfg = config.PRESETS.get(name, config.RetargetConfig()) if name != "no_eq4" else \
      config.RetargetConfig()
  for item in filter(None, sets.split(",")):
    key, value = item.split("=")
    section, field = key.split(".")
    part = getattr(cfg, section)
    old = getattr(part, field)
    new = type(old)(value) if not isinstance(old, bool) else value.lower() == "true"
    cfg = dataclasses.replace(cfg, **{section: dataclasses.replace(part, **{field: new})})
  return cfg


_RUNS: dict = {}


def outputs(weights, spec: str, photo: np.ndarray, out_hw) -> np.ndarray:
  cfg = variant_config(spec)
  key = (repr(cfg), photo.tobytes()[:4096], photo.shape, tuple(out_hw))
  if key not in _RUNS:  # no_eq4 and default share one run
    _RUNS.clear()
    _RUNS[key] = resizing.retarget(weights, photo, out_hw, cfg)
  res = _RUNS[key]
  if spec.startswith("no_eq4"):
    assert res.initial.shape == res.output.shape, "no_eq4 needs an input below work_size"
    return res.initial
  return res.output


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--a", default="default")
  ap.add_argument("--b", default="no_eq4")
  ap.add_argument("--widths", default="0.75,0.5")
  ap.add_argument("--seed", type=int, default=0)
  args = ap.parse_args()
  weights = weights_lib.load_vgg19()
  rng = random.Random(args.seed)
  out = ROOT / "results" / "blind" / f"{args.a}_vs_{args.b}".replace(":", "_")
  out.mkdir(parents=True, exist_ok=True)
  key = {}
  n = 0
  for name, photo in _photos.package_photos(640).items():
    for ratio in map(float, args.widths.split(",")):
      out_hw = (photo.shape[0], round(photo.shape[1] * ratio))
      pair = [outputs(weights, args.a, photo, out_hw), outputs(weights, args.b, photo, out_hw)]
      swap = rng.random() < 0.5
      left, right = (pair[1], pair[0]) if swap else pair
      gap = np.full((photo.shape[0], 16, 3), 255, np.uint8)
      sheet = Image.fromarray(np.concatenate([left, gap, right], 1))
      ImageDraw.Draw(sheet).text((4, 4), "L", fill=(255, 255, 0))
      ImageDraw.Draw(sheet).text((left.shape[1] + 20, 4), "R", fill=(255, 255, 0))
      n += 1
      sheet.save(out / f"{n:02d}.png")
      key[f"{n:02d}"] = {"photo": name, "width": ratio,
                         "left": args.b if swap else args.a, "right": args.a if swap else args.b}
      print(n, name, ratio, flush=True)
  (out / "key.json").write_text(json.dumps(key, indent=1))
  print(f"{n} sheets in {out}; the key is key.json (read it after judging)")


if __name__ == "__main__":
  main()

"""Every candidate of the audition, side by side, with its merit (issue 34: look at what
the criterion chooses).

For each photo and width: the source, then each crop share's crop + warp (lifted onto
the photo's own pixels, as delivered), labelled with its merit (the human-calibrated
criterion, lost content priced higher) and the merit's parts; the chosen one is
marked. Photos: the package photos, or RetargetMe sets (``--retargetme DIR --sets``;
development sets 1-46 only, unless ``--i_am_reporting``).

    python scripts/audition_sheet.py [--widths=0.75,0.5] [--retargetme DIR --sets=1,2,3]
        [--variant=dnr:operator.crop_lost_weight=5]

Writes results/audition/<photo>_<width>.png and parts.json (every candidate's merit and
its parts, to replay other prices by hand).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import types

import jax
import numpy as np
from PIL import Image
from PIL import ImageDraw

import _photos
import _retargetme
import blind_pairs
from dnr_jax import resizing
from dnr_jax.nn import weights as weights_lib
from dnr_jax.resizing import audition
from dnr_jax.resizing import fullres
from dnr_jax.resizing import phases

ROOT = pathlib.Path(__file__).resolve().parents[1]


_candidates = jax.jit(audition.candidates, static_argnames=("plan",))


def candidate_images(w, image: np.ndarray, out_hw, cfg):
  """[(name, merit, parts, uint8 output)] of every candidate, and the chosen index."""
  plan = resizing.make_plan(image.shape[:2], out_hw, cfg)
  if not plan.crop_shares:
    raise ValueError(f"{image.shape[:2]} -> {out_hw}: no audition (not a one-axis shrink)")
  work = phases.downscale(image, plan.sizes.work, on_host=True)
  c = jax.device_get(_candidates(w, work, dataclasses.replace(plan, steps=0)))
  out = []
  for k, name in enumerate(plan.operators):
    axis_plan = jax.tree_util.tree_map(lambda x, k=k: x[k], c.plans)
    rp = audition.as_resize_plan(axis_plan, {}, plan.sizes.work, plan.sizes.work_out)
    img = fullres.full_resolution(image, types.SimpleNamespace(plan=rp, init=None), None,
                                  plan.sizes, cfg, plan.shallow, tile=256, correct=False)
    parts = {p: float(v[k]) for p, v in c.parts.items()}
    out.append((name, float(c.merits[k]), parts, resizing.to_uint8(img)))
  return out, int(np.argmax(c.merits))


def sheet(source: np.ndarray, cands, best: int, height: int = 240) -> Image.Image:
  tiles = [("source", source)] + [
      (f"{'* ' if k == best else ''}{n} {m:.3f} (sq {p['squeeze']:.3f} lost {p['lost']:.3f} "
       f")", im) for k, (n, m, p, im) in enumerate(cands)]
  ims = [(t, Image.fromarray(im).resize((max(1, round(im.shape[1] * height / im.shape[0])),
                                         height), Image.LANCZOS)) for t, im in tiles]
  canvas = Image.new("RGB", (sum(i.width + 6 for _, i in ims), height + 16), "white")
  draw, x = ImageDraw.Draw(canvas), 0
  for t, im in ims:
    canvas.paste(im, (x, 16))
    draw.text((x + 2, 2), t[:48], fill="black")
    x += im.width + 6
  return canvas


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--widths", default="0.75,0.5")
  ap.add_argument("--retargetme", default=None)
  ap.add_argument("--sets", default="")
  ap.add_argument("--i_am_reporting", action="store_true")
  ap.add_argument("--variant", default="dnr",
                  help="dnr, a preset, or dnr:section.field=value,... (blind_pairs.py)")
  ap.add_argument("--out", default=str(ROOT / "results" / "audition"))
  args = ap.parse_args()
  cfg = blind_pairs.variant_config(args.variant)
  w = weights_lib.load_vgg19()
  if args.retargetme:
    ids = tuple(int(x) for x in args.sets.split(",") if x)
    if any(i > 46 for i in ids) and not args.i_am_reporting:
      raise SystemExit("audition_sheet: sets above 46 are the test half (--i_am_reporting)")
    jobs = [(f"rtm{s}_{task}", src, blind_pairs.one_axis(src.shape[:2],
                                                        published["CR"].shape[:2]),
             published) for s, task, src, published in _retargetme.sets(
                 pathlib.Path(args.retargetme), "all", ids=ids)]
  else:
    jobs = [(f"{name}_{r:g}", photo, (photo.shape[0], round(photo.shape[1] * r)), {})
            for name, photo in _photos.package_photos(640).items()
            for r in (float(x) for x in args.widths.split(","))]
  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  parts = {}
  for name, photo, out_hw, published in jobs:
    if not resizing.make_plan(photo.shape[:2], out_hw, cfg).crop_shares:
      print(f"{name}: no audition (not a one-axis shrink)", flush=True)
      continue
    cands, best = candidate_images(w, photo, out_hw, cfg)
    shown = cands + [(m, 0.0, {"squeeze": 0.0, "lost": 0.0}, published[m])
                     for m in ("MULTIOP", "SV") if m in published]
    sheet(photo, shown, best).save(out / f"{name}.png")
    parts[name] = {n: {"merit": m, **p} for n, m, p, _ in cands}
    (out / "parts.json").write_text(json.dumps(parts, indent=1))
    print(f"{name}: {cands[best][0]} " + " ".join(f"{n}={m:.3f}" for n, m, _, _ in cands),
          flush=True)


if __name__ == "__main__":
  main()

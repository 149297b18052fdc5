"""Evaluation against the baselines (section 4, Table 1): scores, table, contact sheets.

Runs every method of ``dnr_jax.baselines`` (DNR with and without refinement from one
run) on real photographs at the given width ratios and writes, under ``--out``:

- ``<photo>/<ratio>/<method>.png``: every output;
- ``scores.csv`` and ``scores.json``: per photo, ratio and method -- semantic score
  (Eq. 5, block5_conv1), coherence and completeness (bidirectional similarity halves,
  7x7 patches on images scaled to 96 px high) and seconds;
- ``table.md``: the averages in the shape of the paper's Table 1;
- ``sheets/<photo>_<ratio>.png``: input, each method and the effective importance map.

    python scripts/evaluate.py                      # photos shipped by packages + bundled
    python scripts/evaluate.py --folder my_photos   # any folder of images
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import pathlib
import time

import numpy as np

import _photos
from dnr_jax import baselines
from dnr_jax import config
from dnr_jax import image_io
from dnr_jax import importance
from dnr_jax import metrics
from dnr_jax import pipeline
from dnr_jax import visualize
from dnr_jax import weights as weights_lib

ORDER = ("linear", "crop", "seam_carving", "seam_carving_forward", "feature_seams_in_image",
         "dnr_no_refine", "dnr")


def run_methods(img, out_hw, ctx, methods):
  """{method: (output, seconds)}; DNR's two variants come from one run."""
  outs = {}
  for m in methods:
    if m in ("dnr", "dnr_no_refine"):
      continue
    t0 = time.perf_counter()
    o = baselines.METHODS[m](img, out_hw, ctx)
    outs[m] = (o, time.perf_counter() - t0)
  if "dnr" in methods or "dnr_no_refine" in methods:
    t0 = time.perf_counter()
    res = pipeline.retarget(ctx.weights, img, out_hw, ctx.config)
    total = time.perf_counter() - t0
    outs["dnr_no_refine"] = (res.reconstructed, total - res.timings.get("refinement", 0.0))
    outs["dnr"] = (res.output, total)
    outs["_importance"] = res.importance
  return outs


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--folder", help="evaluate the images of this folder instead")
  ap.add_argument("--ratios", default="0.75,0.5")
  ap.add_argument("--methods", default=",".join(ORDER))
  ap.add_argument("--photos", default="", help="comma list to restrict the package photos")
  ap.add_argument("--max_side", type=int, default=640)
  ap.add_argument("--refine_steps", type=int, default=None,
                  help="refinement steps for the 'dnr' column (default: the config's)")
  ap.add_argument("--percentile", type=float, default=None, help="override the stop percentile")
  ap.add_argument("--init", default=None, help="override the initialisation")
  ap.add_argument("--out", default="results/eval")
  args = ap.parse_args()

  out = pathlib.Path(args.out)
  (out / "sheets").mkdir(parents=True, exist_ok=True)
  photos = (_photos.folder_photos(args.folder, args.max_side) if args.folder
            else _photos.package_photos(args.max_side))
  if args.photos:
    photos = {k: v for k, v in photos.items() if k in args.photos.split(",")}
  w = weights_lib.load_vgg19()
  cfg = config.RetargetConfig()
  if args.refine_steps is not None:
    cfg = config.RetargetConfig(cfg.operator, cfg.reconstruction, config.RefinementConfig(
        steps=args.refine_steps))
  if args.percentile is not None:
    cfg = dataclasses.replace(cfg, operator=dataclasses.replace(cfg.operator,
                                                                percentile=args.percentile))
  if args.init is not None:
    cfg = dataclasses.replace(cfg, reconstruction=dataclasses.replace(cfg.reconstruction,
                                                                      init=args.init))
  ctx = baselines.Context(w, cfg)
  methods = [m for m in ORDER if m in args.methods.split(",")]
  rows = []
  for name, img in photos.items():
    for ratio in (float(r) for r in args.ratios.split(",")):
      out_hw = (img.shape[0], round(img.shape[1] * ratio))
      outs = run_methods(img, out_hw, ctx, methods)
      imps = outs.pop("_importance", None)
      tiles, labels = [img], ["input"]
      for m in methods:
        o, secs = outs[m]
        image_io.save_image(o, out / name / f"{ratio:g}" / f"{m}.png")
        scores = {"ss": float(metrics.semantic_score_jit(w, o, img)),
                  **metrics.bidirectional_similarity(o, img)}
        rows.append({"photo": name, "ratio": ratio, "method": m, **scores, "seconds": secs})
        tiles.append(o)
        labels.append(m)
        print(f"{name:11s} {ratio:4.2f} {m:24s} SS {scores['ss']:.3f}  coh "
              f"{scores['coherence']:.4f}  compl {scores['completeness']:.4f}  {secs:6.1f} s",
              flush=True)
      if imps:
        eff = np.asarray(importance.effective_importance(imps, *img.shape[:2]))
        tiles.append(visualize.colormap(eff))
        labels.append("importance")
      sheet = visualize.panel(tiles, labels, height=min(img.shape[0], 240))
      image_io.save_image(sheet, out / "sheets" / f"{name}_{ratio:g}.png")
      _write(rows, out, methods, cfg)


def _write(rows, out, methods, cfg):
  with open(out / "scores.csv", "w", newline="") as f:
    wr = csv.DictWriter(f, fieldnames=list(rows[0]))
    wr.writeheader()
    wr.writerows(rows)
  (out / "scores.json").write_text(json.dumps(
      {"config": str(cfg), "date": time.strftime("%Y-%m-%d"), "rows": rows}, indent=1))
  ratios = sorted({r["ratio"] for r in rows}, reverse=True)
  n = len({r["photo"] for r in rows})
  head = "| method | " + " | ".join(
      f"SS @{r:g} | coherence @{r:g} | completeness @{r:g} | s @{r:g}" for r in ratios) + " |"
  lines = [f"Averages over {n} photos (SS: higher is better; coherence/completeness: lower is "
           "better).", "", head, "|---|" + "---|" * (4 * len(ratios))]
  for m in methods:
    cells = []
    for ratio in ratios:
      rs = [r for r in rows if r["method"] == m and r["ratio"] == ratio]
      if not rs:
        cells += ["-"] * 4
        continue
      cells += [f"{np.mean([r['ss'] for r in rs]):.3f}",
                f"{np.mean([r['coherence'] for r in rs]):.4f}",
                f"{np.mean([r['completeness'] for r in rs]):.4f}",
                f"{np.mean([r['seconds'] for r in rs]):.1f}"]
    lines.append(f"| {m} | " + " | ".join(cells) + " |")
  (out / "table.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
  main()

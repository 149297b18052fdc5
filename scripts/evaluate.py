"""Evaluation against the baselines (section 4, Table 1): scores, table, contact sheets.

Runs every method of ``dnr_jax.resizing.baselines`` (DNR with and without refinement from one
run) on real photographs at the given width ratios and writes, under ``--out``:

- ``<photo>/<ratio>/<method>.png``: every output;
- ``scores.csv`` and ``scores.json``: per photo, ratio and method -- semantic score
  (Eq. 5, block5_conv1), coherence and completeness (bidirectional similarity halves,
  7x7 patches on images scaled to 96 px high) and seconds;
- ``table.md``: the averages in the shape of the paper's Table 1;
- ``sheets/<photo>_<ratio>.png``: input, each method and the effective importance map.

    python scripts/evaluate.py                      # photos shipped by packages + bundled
    python scripts/evaluate.py --folder my_photos   # any folder of images

RetargetMe (``--retargetme DIR``, the layout of ``scripts/_retargetme.py``): for every set
of ``--split`` (``dev`` = sets 1-46 for tuning and looking, ``test`` = 47-92, run once
for the reported table) whose task is in ``--tasks``, runs dnr_jax and the in-repo
``--rtm_methods`` at the size of the set's crop result and scores them beside the 8
published results. Every output gets the human-calibrated criterion
(``quality.human.human_preference``), the semantic score (Eq. 5) and coherence and
completeness at 96 px high, all three on both images scaled to dnr's working size (640 px
long side), and the *fine* coherence/completeness at half the source's size
(``metrics.fine_similarity``, where 1-2 px fringes show). Writes ``rows.json``,
``table.md`` (Table 1's shape: methods x tasks, then per-image wins of dnr against each
method), ``outputs/rtm<id>_<method>.png`` (never commit them) and
``sheets/rtm<id>_<task>.jpg``. The published results' scores are cached in
``--published_cache`` (they do not depend on dnr's settings)::

    python scripts/evaluate.py --retargetme /tmp/retargetme --split dev --out /tmp/rtm_dev
    python scripts/evaluate.py --retargetme /tmp/retargetme --split dev \
        --set operator.percentile=50 --out /tmp/rtm_dev_p50
"""

from __future__ import annotations

import argparse
import ast
import csv
import dataclasses
import json
import pathlib
import time

import numpy as np

import _photos
import _retargetme
import blind_pairs
from dnr_jax.resizing import baselines
from dnr_jax.io import compilation
from dnr_jax import config
from dnr_jax.io import image_io
from dnr_jax.ops import importance
from dnr_jax.quality import human
from dnr_jax.quality import metrics
from dnr_jax import resizing
from dnr_jax.cli import visualize
from dnr_jax.nn import weights as weights_lib

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
    res = resizing.retarget(ctx.weights, img, out_hw, ctx.config)
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
  ap.add_argument("--retargetme", default=None, help="RetargetMe folder (see _retargetme.py)")
  ap.add_argument("--split", default="dev", choices=("dev", "test"))
  ap.add_argument("--tasks", default="width75,width50,height75,height50")
  ap.add_argument("--sets", default="", help="comma list of set ids (within the split)")
  ap.add_argument("--rtm_methods", default="dnr,seam_carving",
                  help="methods run here on RetargetMe (dnr and any of baselines.METHODS)")
  ap.add_argument("--published_cache", default=None,
                  help="JSON file caching the published results' scores "
                       "(default: <out>/published_scores.json)")
  ap.add_argument("--no_fine", action="store_true",
                  help="skip the fine (half-size) coherence and completeness (the slow part)")
  ap.add_argument("--cached_only", action="store_true",
                  help="published results only from the cache (score none; for tuning runs "
                       "beside the run that fills it)")
  ap.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                  help="config override, e.g. operator.percentile=50 (repeatable)")
  args = ap.parse_args()
  if args.retargetme:
    run_retargetme(args)
    return

  out = pathlib.Path(args.out)
  (out / "sheets").mkdir(parents=True, exist_ok=True)
  photos = (_photos.folder_photos(args.folder, args.max_side) if args.folder
            else _photos.package_photos(args.max_side))
  if args.photos:
    photos = {k: v for k, v in photos.items() if k in args.photos.split(",")}
  w = weights_lib.load_vgg19()
  cfg = configured(args.set)
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
      compilation.release_if_crowded()  # every photo is a new size (compilation.py)
      out_hw = (img.shape[0], round(img.shape[1] * ratio))
      outs = run_methods(img, out_hw, ctx, methods)
      imps = outs.pop("_importance", None)
      tiles, labels = [img], ["input"]
      for m in methods:
        o, secs = outs[m]
        image_io.save_image(o, out / name / f"{ratio:g}" / f"{m}.png")
        scores = {"ss": float(metrics.semantic_score_jit(w, o, img)),
                  **metrics.bidirectional_similarity(o, img), **metrics.fine_similarity(o, img)}
        rows.append({"photo": name, "ratio": ratio, "method": m, **scores, "seconds": secs})
        tiles.append(o)
        labels.append(m)
        print(f"{name:11s} {ratio:4.2f} {m:24s} SS {scores['ss']:.3f}  coh "
              f"{scores['coherence']:.4f}  fine {scores['fine_coherence']:.4f}  compl "
              f"{scores['completeness']:.4f}  {secs:6.1f} s", flush=True)
      if imps:
        eff = np.asarray(importance.effective_importance(imps, *img.shape[:2]))
        tiles.append(visualize.colormap(eff))
        labels.append("importance")
      sheet = visualize.panel(tiles, labels, height=min(img.shape[0], 240))
      image_io.save_image(sheet, out / "sheets" / f"{name}_{ratio:g}.png")
      _write(rows, out, methods, cfg)


def configured(overrides: list[str]) -> config.RetargetConfig:
  """The default config with ``section.field=value`` overrides (values as Python
  literals; a bare word is a string), e.g. ``operator.percentile=50``."""
  cfg = config.RetargetConfig()
  for item in overrides:
    key, _, text = item.partition("=")
    try:
      value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      value = text
    section, _, field = key.partition(".")
    if not field:
      cfg = dataclasses.replace(cfg, **{section: value})
    else:
      cfg = dataclasses.replace(cfg, **{section: dataclasses.replace(getattr(cfg, section),
                                                                     **{field: value})})
  return cfg


SCORE_SIDE = 640  # RetargetMe outputs are scored at dnr's working size (long side)


def score_all(w, out, src, src_energy=None, fine: bool = True) -> dict:
  """SS (Eq. 5) and coherence/completeness at 96 px high on both images scaled so the
  source's long side is ``SCORE_SIDE`` (dnr's working size: VGG19 on a 1024-px photo
  costs 2.6x more and the scores are ratios), the fine halves at half the source's size.
  ``src_energy``: the scaled source's block5_conv1 energy, computed once per set."""
  f = min(1.0, SCORE_SIDE / max(src.shape[:2]))
  small = lambda x: visualize.resize_linear(x, (max(1, round(x.shape[0] * f)),  # noqa: E731
                                                max(1, round(x.shape[1] * f))))
  out_s, src_s = small(out), small(src)
  if src_energy is None:
    src_energy = float(metrics.feature_energy_jit(w, src_s))
  try:
    criterion = human.human_preference(src_s, out_s, w)
  except ValueError:  # enlarging: not scored by the criterion
    criterion = float("nan")
  return {"human_preference": criterion,
          "semantic_score": float(metrics.feature_energy_jit(w, out_s)) / src_energy,
          **metrics.bidirectional_similarity(out_s, src_s),
          **(metrics.fine_similarity(out, src) if fine else {})}


def run_retargetme(args):
  out = pathlib.Path(args.out)
  (out / "sheets").mkdir(parents=True, exist_ok=True)
  cache_path = pathlib.Path(args.published_cache or out / "published_scores.json")
  cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
  cfg = configured(args.set)
  w = weights_lib.load_vgg19()
  ctx = baselines.Context(w, cfg)
  ids = tuple(int(i) for i in args.sets.split(",") if i)
  ours = [m for m in args.rtm_methods.split(",") if m]
  rows = []
  for set_id, task, src, published in _retargetme.sets(
      args.retargetme, args.split, tuple(args.tasks.split(",")), ids):
    compilation.release_if_crowded()  # every set is a new size (compilation.py)
    out_hw = blind_pairs.one_axis(src.shape[:2], published["CR"].shape[:2])
    energy = None
    outs = {}
    for m in ours:
      t0 = time.perf_counter()
      if m == "dnr":
        o = resizing.retarget(w, src, out_hw, cfg).output
      elif m in config.PRESETS:  # another preset (e.g. "paper"), its own settings
        o = resizing.retarget(w, src, out_hw, config.PRESETS[m]).output
      else:
        o = np.asarray(baselines.METHODS[m](src, out_hw, ctx))
      secs = time.perf_counter() - t0
      outs[m] = o
      image_io.save_image(o, out / "outputs" / f"rtm{set_id}_{m}.png")
      energy = energy or _source_energy(w, src)
      rows.append({"set": set_id, "task": task, "method": m, "seconds": round(secs, 2),
                   **score_all(w, o, src, energy, not args.no_fine)})
      print(json.dumps(rows[-1]), flush=True)
    for m, o in published.items():
      key = f"{set_id}/{m}"
      if key not in cache and args.cached_only:
        continue
      if key not in cache:
        energy = energy or _source_energy(w, src)
        cache[key] = score_all(w, o, src, energy, not args.no_fine)
        cache_path.write_text(json.dumps(cache, indent=0))
      rows.append({"set": set_id, "task": task, "method": m, **cache[key]})
    tiles = {"input": src, **outs, **published}
    images = [visualize.resize_linear(t, (180, max(1, round(t.shape[1] * 180 / t.shape[0]))))
              for t in tiles.values()]
    image_io.save_image(visualize.panel(images, list(tiles), height=180),
                        out / "sheets" / f"rtm{set_id}_{task}.jpg")
    (out / "rows.json").write_text(json.dumps(
        {"config": str(cfg), "overrides": args.set, "split": args.split,
         "date": time.strftime("%Y-%m-%d"), "rows": rows}, indent=0))
    (out / "table.md").write_text(retargetme_table(rows, ours))
  print(retargetme_table(rows, ours))


def _source_energy(w, src) -> float:
  f = min(1.0, SCORE_SIDE / max(src.shape[:2]))
  return float(metrics.feature_energy_jit(w, visualize.resize_linear(
      src, (round(src.shape[0] * f), round(src.shape[1] * f)))))


SCORES = (("human_preference", "criterion", True), ("semantic_score", "SS", True),
          ("coherence", "coh", False),
          ("fine_coherence", "fine coh", False), ("completeness", "compl", False),
          ("fine_completeness", "fine compl", False))


def retargetme_table(rows: list[dict], ours: list[str]) -> str:
  """Table 1's shape (methods x tasks, means), then per-image wins of dnr."""
  tasks = sorted({r["task"] for r in rows}, key=lambda t: (t.rstrip("0123456789"),
                                                          -int(t.lstrip("abcdefghijklmnopqrstuvwxyz"))))
  methods = ours + [m for m in _retargetme.METHODS if any(r["method"] == m for r in rows)]
  by = {(r["task"], r["set"], r["method"]): r for r in rows}
  sets = {t: sorted({r["set"] for r in rows if r["task"] == t}) for t in tasks}
  lines = ["Means per task (SS higher is better; coherence and completeness lower is "
           "better; fine = at half the source's size).", ""]
  for t in tasks:
    lines += [f"**{t}** ({len(sets[t])} sets: {', '.join(map(str, sets[t]))})", "",
              "| method | " + " | ".join(label for _, label, _ in SCORES) + " |",
              "|---|" + "---|" * len(SCORES)]
    for m in methods:
      rs = [by[(t, s, m)] for s in sets[t] if (t, s, m) in by]
      if rs:
        lines.append(f"| {m} | " + " | ".join(
            f"{np.mean([r.get(k, np.nan) for r in rs]):.4f}"
            if k in ("semantic_score", "human_preference")
            else f"{1000 * np.mean([r.get(k, np.nan) for r in rs]):.3f}"
            for k, _, _ in SCORES) + " |")
    lines.append("")
  lines += ["Coherence and completeness are in thousandths.", "",
            "Per-image wins of dnr against each method (images where dnr is better):", "",
            "| task | method | criterion | SS | coherence | fine coherence |",
            "|---|---|---|---|---|---|"]
  for t in tasks:
    for m in methods:
      if m == "dnr":
        continue
      pairs = [(by[(t, s, "dnr")], by[(t, s, m)]) for s in sets[t]
               if (t, s, "dnr") in by and (t, s, m) in by]
      if not pairs:
        continue
      n = len(pairs)
      hp = sum(a.get("human_preference", np.nan) > b.get("human_preference", np.nan)
               for a, b in pairs)
      ss = sum(a["semantic_score"] > b["semantic_score"] for a, b in pairs)
      co = sum(a["coherence"] < b["coherence"] for a, b in pairs)
      fc = sum(a.get("fine_coherence", np.nan) < b.get("fine_coherence", np.nan)
               for a, b in pairs)
      lines.append(f"| {t} | {m} | {hp} of {n} | {ss} of {n} | {co} of {n} | {fc} of {n} |")
  return "\n".join(lines) + "\n"


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
      f"SS @{r:g} | coherence @{r:g} | fine coherence @{r:g} | completeness @{r:g} | s @{r:g}"
      for r in ratios) + " |"
  lines = [f"Averages over {n} photos (SS: higher is better; coherence/completeness: lower is "
           "better).", "", head, "|---|" + "---|" * (5 * len(ratios))]
  for m in methods:
    cells = []
    for ratio in ratios:
      rs = [r for r in rows if r["method"] == m and r["ratio"] == ratio]
      if not rs:
        cells += ["-"] * 5
        continue
      cells += [f"{np.mean([r['ss'] for r in rs]):.3f}",
                f"{np.mean([r['coherence'] for r in rs]):.4f}",
                f"{np.mean([r['fine_coherence'] for r in rs]):.4f}",
                f"{np.mean([r['completeness'] for r in rs]):.4f}",
                f"{np.mean([r['seconds'] for r in rs]):.1f}"]
    lines.append(f"| {m} | " + " | ".join(cells) + " |")
  (out / "table.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
  main()

"""Enlarging, both axes, keep and remove masks against the tools users know (issue 9).

Methods per operation (every output scored against its input with
:func:`dnr_jax.quality.metrics.all_scores`: semantic score Eq. 5, coherence and completeness
at 96 px high, lower coherence = fewer invented structures):

- ``dnr``: dnr_jax defaults (``resizing.retarget``, with the masks where the operation
  has one);
- ``seam_insertion``: our image-space seam carving / insertion (backward energy);
- ``sc_package``: the ``seam-carving`` package (PyPI, 1.1.0, backward energy, its
  ``keep_mask`` / ``drop_mask`` / ``remove_object``);
- ``linear``: Pillow's LANCZOS scale.

Operations: ``enlarge125``, ``enlarge150`` (width), ``both75`` (75% x 75%: dnr's
automatic order and, where it differs, width first), ``keep75`` (75% width with a keep
box over the subject), ``remove`` (an object's box removed, back to the input size).
RetargetMe (``--retargetme DIR`` with ``<id>/src_lrg.jpg`` and ``<id>/<m>_lrg.jpg``):
its enlarging and height sets, dnr beside the 8 published methods; ``--split dev``
(sets 1-46, for looking) or ``test`` (47-92, for the reported table).

    python scripts/evaluate_editing.py --out /tmp/edit --ops enlarge125,both75
    python scripts/evaluate_editing.py --out /tmp/edit_rtm --retargetme /tmp/retargetme --split test
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import time

import numpy as np

import _photos
import _retargetme
from dnr_jax.resizing import baselines
from dnr_jax import config
from dnr_jax.io import image_io
from dnr_jax.quality import metrics
from dnr_jax import resizing
from dnr_jax.cli import visualize
from dnr_jax.nn import weights as weights_lib

# Subject boxes (y0, y1, x0, x1 as fractions of the photo) drawn by eye on the package
# photos: "keep" over the subject, "remove" over an object beside it.
BOXES = {
    "astronaut": {"keep": (0.05, 1.0, 0.18, 0.78), "remove": (0.55, 1.0, 0.80, 1.0)},
    "chelsea": {"keep": (0.08, 1.0, 0.22, 0.78)},
    "coffee": {"keep": (0.0, 0.85, 0.10, 0.72), "remove": (0.12, 0.82, 0.52, 0.70)},
    "motorcycle": {"keep": (0.15, 0.95, 0.25, 0.75)},
    "rocket": {"remove": (0.05, 0.60, 0.06, 0.22)},
}


def box_mask(hw, box) -> np.ndarray:
  h, w = hw
  y0, y1, x0, x1 = box
  m = np.zeros(hw, bool)
  m[round(y0 * h):round(y1 * h), round(x0 * w):round(x1 * w)] = True
  return m


def sc_package(image, out_hw, keep=None, remove=None):
  import seam_carving  # pylint: disable=g-import-not-at-top
  if remove is not None:
    cut = seam_carving.remove_object(image, drop_mask=remove, keep_mask=keep)
    return seam_carving.resize(cut, (out_hw[1], out_hw[0]), energy_mode="backward")
  return seam_carving.resize(image, (out_hw[1], out_hw[0]), energy_mode="backward",
                             keep_mask=keep)


def score(weights, out, src) -> dict:
  return {k: float(v) for k, v in metrics.all_scores(weights, out, src).items()}


def sheet(path, tiles: dict, height=240):
  images = [visualize.resize_linear(t, (height, max(1, round(t.shape[1] * height / t.shape[0]))))
            for t in tiles.values()]
  image_io.save_image(visualize.panel(images, list(tiles), height=height), path)


def run_photo(weights, name, image, op, cfg, out_dir) -> list[dict]:
  h, w = image.shape[:2]
  rows, outs = [], {"input": image}
  masks = {}
  if op == "enlarge125":
    out_hw = (h, round(1.25 * w))
  elif op == "enlarge150":
    out_hw = (h, round(1.5 * w))
  elif op == "both75":
    out_hw = (round(0.75 * h), round(0.75 * w))
  elif op == "keep75":
    masks["keep"] = box_mask((h, w), BOXES[name]["keep"])
    out_hw = (h, round(0.75 * w))
  elif op == "remove":
    masks["remove"] = box_mask((h, w), BOXES[name]["remove"])
    out_hw = (h, w)
  else:
    raise ValueError(op)

  def record(method, fn):
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    outs[method] = out
    image_io.save_image(out, out_dir / f"{name}_{op}_{method}.png")
    row = {"photo": name, "op": op, "method": method, "seconds": round(dt, 2),
           **score(weights, out, image)}
    if method.startswith("dnr") and hasattr(fn, "result"):
      row.update(fn.result)
    rows.append(row)
    print(json.dumps(row), flush=True)

  def dnr_fn(c):
    def fn():
      res = resizing.retarget(weights, image, out_hw, c, keep=masks.get("keep"),
                              remove=masks.get("remove"))
      fn.result = {"axis_order": res.axis_order, "order_scores": res.order_scores,
                   "keep_held": res.keep_held,
                   "removed_left": (int(res.map_labels(masks["remove"].astype(np.uint8)).sum())
                                    if "remove" in masks else None)}
      return res.output
    return fn

  try:
    record("dnr", dnr_fn(cfg))
  except resizing.KeepInfeasible as e:  # the CLI's exit 2: recorded, nothing to compare
    rows.append({"photo": name, "op": op, "method": "dnr", "infeasible": str(e)})
    print(json.dumps(rows[-1]), flush=True)
    return rows
  if op == "both75" and rows[-1]["axis_order"] == "height_first":
    record("dnr_width_first", dnr_fn(dataclasses.replace(cfg, operator=dataclasses.replace(
        cfg.operator, axis_order="width_first"))))
  if not masks:
    record("seam_insertion", lambda: baselines.seam_carving(image, out_hw))
  record("sc_package", lambda: sc_package(image, out_hw, masks.get("keep"), masks.get("remove")))
  if not masks:
    record("linear", lambda: baselines.linear(image, out_hw))
  if masks:
    colour = (40, 220, 80) if "keep" in masks else (255, 40, 40)
    outs["input"] = visualize.seams_overlay(image, next(iter(masks.values())), colour)
  sheet(out_dir / "sheets" / f"{op}_{name}.png", outs)
  return rows


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--out", required=True)
  ap.add_argument("--ops", default="enlarge125,enlarge150,both75,keep75,remove")
  ap.add_argument("--photos", default="", help="comma list of package photos (default all)")
  ap.add_argument("--folder", default=None, help="extra photos (any folder of images)")
  ap.add_argument("--retargetme", default=None)
  ap.add_argument("--split", default="dev", choices=("dev", "test"))
  ap.add_argument("--sets", default="", help="comma list of RetargetMe set ids (default all)")
  ap.add_argument("--steps", type=int, default=config.ReconstructionConfig().steps)
  args = ap.parse_args()
  out_dir = pathlib.Path(args.out)
  (out_dir / "sheets").mkdir(parents=True, exist_ok=True)
  weights = weights_lib.load_vgg19()
  cfg = config.RetargetConfig(reconstruction=dataclasses.replace(
      config.ReconstructionConfig(), steps=args.steps))
  rows = []
  if args.retargetme:
    wanted = {int(s) for s in args.sets.split(",") if s}
    for i, task, src, published in _retargetme.sets(args.retargetme, args.split,
                                                    ids=tuple(wanted)):
      if not task.startswith(("enlarge", "height")):
        continue  # width shrinking: scripts/evaluate.py --retargetme
      out_hw = published["CR"].shape[:2]
      t0 = time.perf_counter()
      res = resizing.retarget(weights, src, out_hw, cfg)
      dt = time.perf_counter() - t0
      outs = {"input": src, "dnr": res.output, **published}
      for m, out in outs.items():
        if m == "input":
          continue
        row = {"set": i, "task": task, "method": m, **score(weights, out, src)}
        if m == "dnr":
          row["seconds"] = round(dt, 2)
        rows.append(row)
        print(json.dumps(row), flush=True)
      sheet(out_dir / "sheets" / f"rtm{i}_{task}.png", outs, height=180)
  else:
    photos = _photos.package_photos()
    if args.folder:
      photos.update(_photos.folder_photos(args.folder))
    names = [p for p in args.photos.split(",") if p] or list(photos)
    for op in args.ops.split(","):
      for name in names:
        if op in ("keep75", "remove") and op.replace("75", "") not in BOXES.get(name, {}):
          continue
        rows += run_photo(weights, name, photos[name], op, cfg, out_dir)
  (out_dir / "rows.json").write_text(json.dumps(rows, indent=1) + "\n")
  summarise(rows, out_dir)


def summarise(rows, out_dir):
  key = "task" if rows and "task" in rows[0] else "op"
  groups = {}
  for r in rows:
    groups.setdefault((r[key], r["method"]), []).append(r)
  lines = [f"| {key} | method | n | SS (Eq. 5) | coherence | completeness |", "|---|---|---|---|---|---|"]
  for (op, m), rs in sorted(groups.items()):
    rs = [r for r in rs if "semantic_score" in r]
    if not rs:
      continue
    mean = lambda k: np.mean([r[k] for r in rs])  # noqa: E731
    lines.append(f"| {op} | {m} | {len(rs)} | {mean('semantic_score'):.4f} | "
                 f"{mean('coherence'):.5f} | {mean('completeness'):.5f} |")
  # per image: on how many does dnr invent fewer structures (lower coherence)
  item = "set" if key == "task" else "photo"
  by = {}
  for r in rows:
    if "coherence" in r:
      by.setdefault((r[key], r[item]), {})[r["method"]] = r["coherence"]
  lines += ["", f"| {key} | method | images where dnr's coherence is lower |", "|---|---|---|"]
  wins = {}
  for (op, _), d in by.items():
    for m, c in d.items():
      if m != "dnr" and "dnr" in d:
        w = wins.setdefault((op, m), [0, 0])
        w[0] += d["dnr"] < c
        w[1] += 1
  for (op, m), (won, n) in sorted(wins.items()):
    lines.append(f"| {op} | {m} | {won} of {n} |")
  (out_dir / "table.md").write_text("\n".join(lines) + "\n")
  print("\n".join(lines))


if __name__ == "__main__":
  main()

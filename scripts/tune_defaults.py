"""Chooses the reconstruction defaults by measurement (the paper gives none).

For several real photos at 75% width, runs the reconstruction from each
initialisation and learning rate, records the loss curve and, at checkpoints, the
semantic score and patch coherence/completeness of the image so far. Writes
``results/tune/curves.json``, ``results/tune/summary.md`` and per-checkpoint images.

    python scripts/tune_defaults.py [--steps 200] [--photos astronaut,chelsea,...]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import jax.numpy as jnp
import numpy as np

import _photos
from dnr_jax import config
from dnr_jax.io import image_io
from dnr_jax.quality import metrics
from dnr_jax import resizing
from dnr_jax.resizing import reconstruct
from dnr_jax.nn import weights as weights_lib


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--steps", type=int, default=200)
  ap.add_argument("--ratio", type=float, default=0.75)
  ap.add_argument("--photos", default="astronaut,chelsea,rocket,china,flower")
  ap.add_argument("--runs", default="seams:1,seams:2,seams:4,linear:2,linear:4",
                  help="init:learning_rate pairs")
  ap.add_argument("--checkpoints", default="0,25,50,100,150,200")
  ap.add_argument("--out", default="results/tune")
  args = ap.parse_args()
  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  w = weights_lib.load_vgg19()
  photos = _photos.package_photos()
  checkpoints = sorted(int(c) for c in args.checkpoints.split(","))
  if any(c % 25 for c in checkpoints):
    ap.error("checkpoints must be multiples of 25")
  records = []
  for name in args.photos.split(","):
    img = photos[name]
    out_hw = (img.shape[0], round(img.shape[1] * args.ratio))
    for run in args.runs.split(","):
      init, lr = run.split(":")
      cfg = config.RetargetConfig(reconstruction=config.ReconstructionConfig(
          init=init, learning_rate=float(lr), steps=args.steps, chunk=25))
      prep = resizing.prepare(w, jnp.asarray(img, jnp.float32), out_hw, cfg)
      state = reconstruct.init_state(prep.init, cfg.reconstruction.learning_rate)
      losses, scores, done, t0 = [], {}, 0, time.perf_counter()
      for cp in checkpoints:
        while done < cp:  # fixed-size chunks: each new chunk size would compile again
          state, l = resizing.reconstruction_chunk(w, prep.targets, state, cfg, 25)
          losses += [float(x) for x in np.asarray(l)]
          done += 25
        cur = np.clip(np.round(np.asarray(state.image)), 0, 255).astype(np.uint8)
        scores[cp] = {"ss": float(metrics.semantic_score_jit(w, cur, img)),
                      **metrics.bidirectional_similarity(cur, img)}
        image_io.save_image(cur, out / f"{name}_{init}_lr{lr}_{cp:03d}.png")
      rec = {"photo": name, "init": init, "lr": float(lr), "losses": losses,
             "scores": scores, "seconds": time.perf_counter() - t0}
      records.append(rec)
      print(f"{name:11s} {init:6s} lr={lr:>3s}  loss {losses[0]:9.1f} -> {losses[-1]:8.1f}  "
            + "  ".join(f"@{cp}: coh {s['coherence']:.4f} ss {s['ss']:.3f}"
                        for cp, s in scores.items() if cp in (0, 100, checkpoints[-1])),
            flush=True)
      (out / "curves.json").write_text(json.dumps(records))
  _summary(records, checkpoints, out)


def _summary(records, checkpoints, out):
  runs = sorted({(r["init"], r["lr"]) for r in records})
  lines = ["| init | lr | " + " | ".join(f"loss@{c}" for c in checkpoints[1:]) +
           " | " + " | ".join(f"coh@{c}" for c in checkpoints) + " |",
           "|---|---|" + "---|" * (2 * len(checkpoints) - 1)]
  for init, lr in runs:
    rs = [r for r in records if r["init"] == init and r["lr"] == lr]
    # losses are normalised per photo by the seam-init lr=2 loss at step 0 where present
    rel = []
    for c in checkpoints[1:]:
      rel.append(np.mean([r["losses"][c - 1] / r["losses"][0] for r in rs]))
    coh = [np.mean([r["scores"][c]["coherence"] for r in rs]) for c in checkpoints]
    lines.append(f"| {init} | {lr:g} | " + " | ".join(f"{x:.3f}" for x in rel) + " | " +
                 " | ".join(f"{x:.4f}" for x in coh) + " |")
  abs_lines = ["", "Mean absolute loss (Eq. 4, per-element mean) at each checkpoint:", "",
               "| init | lr | " + " | ".join(f"@{c}" for c in checkpoints[1:]) + " |",
               "|---|---|" + "---|" * (len(checkpoints) - 1)]
  for init, lr in runs:
    rs = [r for r in records if r["init"] == init and r["lr"] == lr]
    abs_lines.append(f"| {init} | {lr:g} | " + " | ".join(
        f"{np.mean([r['losses'][c - 1] for r in rs]):.1f}" for c in checkpoints[1:]) + " |")
  text = ("Loss relative to each run's first step, and mean coherence (lower is better), "
          f"over {len({r['photo'] for r in records})} photos.\n\n" + "\n".join(lines)
          + "\n" + "\n".join(abs_lines) + "\n")
  (out / "summary.md").write_text(text)
  print(text)


if __name__ == "__main__":
  main()

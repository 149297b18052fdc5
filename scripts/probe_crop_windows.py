"""How much a crop window keeps: every pure-crop window of the RetargetMe width sets.

For each set (the source scaled so its long side is 640 px, like the evaluation), every
window of the crop result's width (starts every 8 px) is scored by its own semantic
score (Eq. 5, ``metrics.feature_energy`` of the crop over the source's). Printed per set
and as means per task: the best window, the centred one, and the windows the column
profiles of the uncropped image's deep features would choose (block5_conv1 norm and
energy, block5_pool norm and energy). This is the probe behind the semantic crop window
(``crop_candidates``; docs/history/LAB_LOG.md, "The crop window by the semantic score");
tune on the dev half only.

  python scripts/probe_crop_windows.py --retargetme DIR --split dev [--sets 3,4,...]
"""

from __future__ import annotations

import argparse
import json

import jax.numpy as jnp
import numpy as np

import _retargetme
from dnr_jax.quality import metrics
from dnr_jax.cli import visualize
from dnr_jax.nn import vgg
from dnr_jax.nn import weights as weights_lib

PROFILES = (("block5_conv1", "norm"), ("block5_conv1", "energy"),
            ("block5_pool", "norm"), ("block5_pool", "energy"))


def probe_set(w, src, out_w_src: int, step: int = 8) -> dict:
  f = min(1.0, 640 / max(src.shape[:2]))
  s = visualize.resize_linear(src, (round(src.shape[0] * f), round(src.shape[1] * f)))
  width = s.shape[1]
  ow = round(out_w_src * f)
  e0 = float(metrics.feature_energy_jit(w, s))
  starts = list(range(0, width - ow + 1, step))
  ss = [float(metrics.feature_energy_jit(w, s[:, a:a + ow])) / e0 for a in starts]
  feats = vgg.features(w, jnp.asarray(s, jnp.float32)[None], ("block5_conv1", "block5_pool"))
  row = {"best": max(ss), "centre": ss[len(ss) // 2]}
  for layer, kind in PROFILES:
    fl = np.asarray(feats[layer][0])
    sq = (fl ** 2).sum(-1)
    col = (np.sqrt(sq) if kind == "norm" else sq).mean(0)
    stride = width / fl.shape[1]
    cs = np.concatenate([[0.0], np.cumsum(col)])
    kept = [cs[min(len(col), round((a + ow) / stride))] - cs[round(a / stride)] for a in starts]
    row[f"{layer}_{kind}"] = ss[int(np.argmax(kept))]
  return row


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--retargetme", required=True)
  p.add_argument("--split", default="dev", choices=("dev", "test", "all"))
  p.add_argument("--sets", default="")
  args = p.parse_args()
  w = weights_lib.load_vgg19()
  ids = tuple(int(i) for i in args.sets.split(",") if i)
  rows = {}
  for set_id, task, src, published in _retargetme.sets(args.retargetme, args.split, (), ids):
    if not task.startswith("width"):
      continue
    rows[set_id] = {"task": task, **probe_set(w, src, published["CR"].shape[1])}
    print(json.dumps({"set": set_id, **rows[set_id]}), flush=True)
  keys = ["best", "centre"] + [f"{l}_{k}" for l, k in PROFILES]
  for task in sorted({r["task"] for r in rows.values()}):
    rs = [r for r in rows.values() if r["task"] == task]
    print(f"{task} ({len(rs)} sets): " + ", ".join(
        f"{k} {np.mean([r[k] for r in rs]):.4f}" for k in keys))


if __name__ == "__main__":
  main()

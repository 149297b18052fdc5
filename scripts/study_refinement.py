"""Does the grid refinement (section 3.3) earn its place? Measures it.

For each photo at 75% width: reconstruct for ``--recon`` steps from the default
initialisation, then either (a) continue the pixel optimisation for ``--extra``
steps, or (b) refine a sampling grid for the same number of steps with each
parameterisation in ``--variants`` (control cell : smoothness : max shift : lr).
Reports loss, coherence, completeness, SS, the mean pixel displacement, and writes
before/after crops of the region the refinement changed most.

    python scripts/study_refinement.py [--photos astronaut,rocket] [--recon 100 --extra 40]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib

import jax.numpy as jnp
import jax
import numpy as np

import _photos
from dnr_jax import config
from dnr_jax.io import image_io
from dnr_jax.quality import metrics
from dnr_jax import resizing
from dnr_jax.resizing import reconstruct
from dnr_jax.resizing import refine
from dnr_jax.cli import visualize
from dnr_jax.nn import weights as weights_lib


def _u8(x):
  return np.clip(np.round(np.asarray(x)), 0, 255).astype(np.uint8)


def _scores(w, img, out, targets, cfg):
  loss = float(reconstruct.feature_loss(w, jnp.asarray(out, jnp.float32), targets,
                                        dict(cfg.reconstruction.loss_layers)))
  return {"loss": loss, "ss": float(metrics.semantic_score_jit(w, out, img)),
          **metrics.bidirectional_similarity(out, img)}


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--photos", default="astronaut,rocket,china,chelsea")
  ap.add_argument("--init", default=None, help="override the default initialisation")
  ap.add_argument("--recon", type=int, default=None, help="default: the config's steps")
  ap.add_argument("--extra", type=int, default=40)
  ap.add_argument("--variants", default="8:1.0:2.0:0.05,4:0.1:1.0:0.05,16:0.0:3.0:0.1")
  ap.add_argument("--out", default="results/refinement")
  args = ap.parse_args()
  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  w = weights_lib.load_vgg19()
  photos = _photos.package_photos()
  base = config.RetargetConfig()
  rc = base.reconstruction
  if args.init:
    rc = dataclasses.replace(rc, init=args.init)
  if args.recon is not None:
    rc = dataclasses.replace(rc, steps=args.recon)
  records = []
  for name in args.photos.split(","):
    img = photos[name]
    out_hw = (img.shape[0], round(img.shape[1] * 0.75))
    cfg = dataclasses.replace(base, reconstruction=rc)
    res = resizing.retarget(w, img, out_hw, cfg)
    prep = resizing.prepare(w, jnp.asarray(img, jnp.float32), out_hw, cfg)
    recon = jnp.asarray(res.reconstructed, jnp.float32)
    rec = {"photo": name, "recon_steps": rc.steps, "init": rc.init,
           "before": _scores(w, img, res.reconstructed, prep.targets, cfg)}
    # (a) more pixel steps
    more = dataclasses.replace(cfg, reconstruction=dataclasses.replace(rc, steps=args.extra))
    state = reconstruct.init_state(recon, rc.learning_rate)
    state, _ = resizing.reconstruction_chunk(w, prep.targets, state, more, args.extra)
    rec["more_pixel_steps"] = _scores(w, img, _u8(resizing.final_image(state)), prep.targets, cfg)
    # (b) grid refinement variants
    panels = []
    for v in args.variants.split(","):
      cell, smooth, shift, lr = v.split(":")
      rcfg = config.RefinementConfig(steps=args.extra, control_cell=int(cell),
                                     smoothness=float(smooth), max_shift=float(shift),
                                     learning_rate=float(lr))
      vcfg = dataclasses.replace(cfg, refinement=rcfg)
      # (the batched phases on a batch of one, as the run calls them)
      one = lambda tree: jax.tree_util.tree_map(lambda x: x[None], tree)  # noqa: E731
      rstate = resizing.refinement_init_batch(recon[None], vcfg)
      rstate, _ = resizing.refinement_chunk_batch(w, one(prep.targets), recon[None], rstate,
                                                  vcfg, args.extra)
      theta = resizing.final_image(jax.tree_util.tree_map(lambda x: x[0], rstate))
      refined = _u8(refine.warp_image(recon, theta, rcfg.max_shift))
      d = np.asarray(refine.displacement(theta, *out_hw, rcfg.max_shift))
      mag = np.sqrt((d ** 2).sum(-1))
      rec[f"grid_{v}"] = {**_scores(w, img, refined, prep.targets, cfg),
                          "mean_shift_px": float(mag.mean()), "max_shift_px": float(mag.max())}
      # crop of the most-changed 96x96 region, before | after | |difference| x4
      diff = np.abs(refined.astype(float) - res.reconstructed.astype(float)).sum(-1)
      k = 96
      ys, xs = np.unravel_index(np.argmax(_box(diff, k)), _box(diff, k).shape)
      crop = lambda a: a[ys:ys + k, xs:xs + k]  # noqa: E731
      dimg = np.clip(np.repeat(crop(diff)[..., None], 3, -1) * 4, 0, 255).astype(np.uint8)
      panels.append(visualize.panel([crop(res.reconstructed), crop(refined), dimg],
                                    ["before", f"after {v}", "|diff|x4"], height=192))
    image_io.save_image(np.concatenate(panels, 0) if len({p.shape[1] for p in panels}) == 1
                        else panels[0], out / f"{name}_crops.png")
    records.append(rec)
    print(json.dumps(rec, indent=1), flush=True)
    (out / "refinement.json").write_text(json.dumps(records, indent=1))


def _box(a, k):
  c = np.cumsum(np.cumsum(np.pad(a, ((1, 0), (1, 0))), 0), 1)
  return c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]


if __name__ == "__main__":
  main()

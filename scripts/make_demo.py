"""The README's picture: the bundled photo at 75% and 50% width, four ways.

Rows: 75% and 50% width; columns: the input, linear scaling, image-space seam carving
(``resizing.baselines``), dnr_jax's default (the audition of crop shares) and the
paper's preset. Writes docs/demo.png (and prints which operator the default chose).

    python scripts/make_demo.py
"""

from __future__ import annotations

import pathlib

import numpy as np

from dnr_jax import config
from dnr_jax import resizing
from dnr_jax.cli import visualize
from dnr_jax.io import image_io
from dnr_jax.nn import weights as weights_lib
from dnr_jax.resizing import baselines

ROOT = pathlib.Path(__file__).resolve().parents[1]


def main():
  w = weights_lib.load_vgg19()
  photo = image_io.load_image(image_io.sample_image_path())
  rows = []
  for ratio in (0.75, 0.5):
    out_hw = (photo.shape[0], round(photo.shape[1] * ratio))
    default = resizing.retarget(w, photo, out_hw, config.RetargetConfig())
    paper = resizing.retarget(w, photo, out_hw, config.PAPER)
    print(f"{ratio:g}: the default chose {default.operator}")
    tiles = [photo, np.asarray(baselines.linear(photo, out_hw)),
             np.asarray(baselines.seam_carving(photo, out_hw)), default.output, paper.output]
    labels = ["input", "linear", "seam carving", f"dnr ({default.operator})",
              "dnr --preset=paper"]
    rows.append(visualize.panel(tiles, labels, height=240))
  width = max(r.shape[1] for r in rows)
  sheet = np.full((sum(r.shape[0] for r in rows) + 8, width, 3), 255, np.uint8)
  y = 0
  for r in rows:
    sheet[y:y + r.shape[0], :r.shape[1]] = r
    y += r.shape[0] + 8
  image_io.save_image(sheet, ROOT / "docs" / "demo.png")
  print("wrote docs/demo.png")


if __name__ == "__main__":
  main()

"""The RetargetMe benchmark (Rubinstein et al., SIGGRAPH Asia 2010), read from disk.

Layout (the copy in the public repository ``FlyingGoblin/Servey_Extend_RetargetMe``,
``data/<id>/``): ``<DIR>/<id>/src_lrg.jpg`` and ``<DIR>/<id>/<k>_lrg.jpg`` for the 8
published methods in the release's order (k = 1..8 below; 1 and 5 check out as crop and
linear scaling by pixel comparison). The official release's layout
(``<name>/<name>.png`` and ``<name>_<method>.png``) is read too.

Each set's task comes from the size of its crop result: ``width75``, ``width50``,
``height75``, ``height50``, ``enlarge125``... **Split**: tune and look only on sets 1-46
(``dev``); sets 47-92 (``test``) are run once for the reported table. The images are
evaluation data with an unclear licence: never commit them.

To extract the copy: ``git show HEAD:data/<id>/<file>`` from a clone of that repository.
"""

from __future__ import annotations

import pathlib
from typing import Iterator

import numpy as np

from dnr_jax.io import image_io

METHODS = ("CR", "SV", "MULTIOP", "SC", "SCL", "SM", "SNS", "WARP")
OFFICIAL_SUFFIX = {"CR": "cr", "SV": "sv", "MULTIOP": "multiop", "SC": "sc", "SCL": "scl",
                   "SM": "sm", "SNS": "sns", "WARP": "warp"}


def task_of(src_hw, out_hw) -> str:
  """'width75', 'height50', 'enlarge125', ... from the input and the crop result's sizes."""
  rh, rw = out_hw[0] / src_hw[0], out_hw[1] / src_hw[1]
  if rw > 1.0 or rh > 1.0:
    return f"enlarge{round(100 * max(rw, rh))}"
  if rh < 0.99 and rw < 0.99:
    return f"both{round(100 * rw)}x{round(100 * rh)}"
  if rh < 0.99:
    return f"height{round(100 * rh)}"
  return f"width{round(100 * rw)}"


def in_split(set_id: int, split: str) -> bool:
  if split == "all":
    return True
  if not 1 <= set_id <= 92:
    return False
  return (set_id <= 46) == (split == "dev")


def _files(d: pathlib.Path):
  if (d / "src_lrg.jpg").is_file():
    return d / "src_lrg.jpg", {m: d / f"{k}_lrg.jpg" for k, m in enumerate(METHODS, 1)}
  src = d / f"{d.name}.png"
  if src.is_file():
    return src, {m: d / f"{d.name}_{OFFICIAL_SUFFIX[m]}.png" for m in METHODS}
  return None, {}


def sets(root, split: str = "dev", tasks: tuple[str, ...] = (), ids: tuple[int, ...] = ()
         ) -> Iterator[tuple[int, str, np.ndarray, dict[str, np.ndarray]]]:
  """(set id, task, source RGB, {method: published result RGB}) in id order.

  Numbered folders only (the official release's named folders get ids in sorted order).
  """
  root = pathlib.Path(root)
  dirs = sorted(p for p in root.iterdir() if p.is_dir())
  numbered = [p for p in dirs if p.name.isdigit()]
  numbered = (sorted(numbered, key=lambda p: int(p.name)) if numbered
              else list(dirs))
  for n, d in enumerate(numbered, 1):
    set_id = int(d.name) if d.name.isdigit() else n
    if (ids and set_id not in ids) or not in_split(set_id, split):
      continue
    src_path, result_paths = _files(d)
    if src_path is None:
      continue
    published = {m: p for m, p in result_paths.items() if p.is_file()}
    if "CR" not in published:
      continue
    src = image_io.load_image(src_path)
    crop = image_io.load_image(published["CR"])
    task = task_of(src.shape[:2], crop.shape[:2])
    if tasks and task not in tasks:
      continue
    yield set_id, task, src, {m: (crop if m == "CR" else image_io.load_image(p))
                              for m, p in published.items()}

"""Pre-flight of every file a job will write, before any compute.

A job is a list of :class:`Task` (one input image, one output image, its debug
pictures) plus an optional report. :func:`plan_tasks` names the outputs (folder mode:
colliding stems such as ``x.png`` and ``x.jpg`` get a deterministic suffix,
``x_png.png`` / ``x_jpg.png``, and the rename is reported); :func:`check_paths` then
refuses, one line per problem, any output that

- is one of the inputs (same path, a symlink or a hard link to it),
- is planned twice (two outputs, or an output and a debug picture, on one path),
- already exists, unless ``overwrite``; or is a folder,
- cannot be created (its folder is not writable, or a parent is a file).
"""

from __future__ import annotations

import collections
import dataclasses
import os
import pathlib

from dnr_jax.io import atomic_write
from dnr_jax.io import image_io

# Every debug picture app.py may write, "<output stem>_<name>.png".
DEBUG_PICTURES = ("importance", "seams_width", "seams_height", "targets", "stages", "loss")


class PathError(Exception):
  """An input or output path cannot be used; the message names it."""


@dataclasses.dataclass
class Task:
  source: pathlib.Path
  output: pathlib.Path
  renamed: bool = False  # the output name got a suffix to avoid a collision
  debug: dict = dataclasses.field(default_factory=dict)  # picture name -> path


def debug_paths(output: pathlib.Path, names=DEBUG_PICTURES) -> dict[str, pathlib.Path]:
  stem = output.with_suffix("")
  return {n: pathlib.Path(f"{stem}_{n}.png") for n in names}


def debug_names(width_changes: bool, height_changes: bool, has_loss: bool,
                has_masks: bool = False) -> tuple[str, ...]:
  """The debug pictures a run writes, known from the sizes and the config up front."""
  names = ["importance"] + (["masks"] if has_masks else [])
  if width_changes:
    names.append("seams_width")
  if height_changes:
    names.append("seams_height")
  names += ["targets", "stages"]
  if has_loss:
    names.append("loss")
  return tuple(names)


def plan_tasks(input_path: str | None, output_path: str | None) -> tuple[list[Task], bool]:
  """Inputs and their output paths; returns (tasks, folder_mode). Raises PathError."""
  if not input_path:
    raise PathError("--input is required (an image file or a folder)")
  src = pathlib.Path(input_path)
  if src.is_dir():
    images = image_io.list_images(src)
    if not images:
      raise PathError(f"{src}: no images found (looked for "
                      f"{', '.join(image_io.IMAGE_SUFFIXES)})")
    name = src.resolve().name or "images"
    out_dir = (pathlib.Path(output_path) if output_path
               else src.resolve().with_name(name + "_retargeted"))
    if out_dir.exists() and not out_dir.is_dir():
      raise PathError(f"--output {out_dir} must be a folder when --input is one")
    if out_dir.exists() and image_io.same_file(out_dir, src):
      raise PathError(f"--output {out_dir} must differ from the input folder")
    by_stem = collections.defaultdict(list)
    for p in images:
      by_stem[p.stem.lower()].append(p)
    tasks = []
    for p in images:
      if len(by_stem[p.stem.lower()]) > 1:
        tasks.append(Task(p, out_dir / f"{p.stem}_{p.suffix[1:].lower()}.png", renamed=True))
      else:
        tasks.append(Task(p, out_dir / f"{p.stem}.png"))
    return tasks, True
  if not src.exists():
    raise PathError(f"{src}: no such file or folder")
  if output_path:
    out = pathlib.Path(output_path)
    if out.is_dir():
      out = out / f"{src.stem}.png"
  else:
    out = src.resolve().with_name(f"{src.stem}_retargeted.png")
  try:
    image_io.image_format(out)
  except image_io.ImageError as e:
    raise PathError(f"--output {e}") from None
  return [Task(src, out)], False


def _is_input(path: pathlib.Path, inputs) -> pathlib.Path | None:
  for p in inputs:
    if image_io.same_file(path, p) or os.path.abspath(path) == os.path.abspath(p):
      return p
  return None


def check_paths(outputs: list[tuple[str, pathlib.Path]], inputs: list[pathlib.Path],
                overwrite: bool) -> list[str]:
  """Problems (one line each) with the planned ``(what, path)`` outputs; [] if none."""
  problems = []
  seen: dict[str, str] = {}
  folders_ok: dict[pathlib.Path, str | None] = {}
  for what, path in outputs:
    key = os.path.normcase(os.path.abspath(path))
    if key in seen:
      problems.append(f"{what} {path} is also the {seen[key]}: both would write one file")
      continue
    seen[key] = f"{what}"
    src = _is_input(path, inputs)
    if src is not None:
      problems.append(f"{what} {path} is the input image {src}: refusing to overwrite it")
      continue
    if path.is_dir():
      problems.append(f"{what} {path} is a folder")
      continue
    if path.exists() and not overwrite:
      problems.append(f"{what} {path} already exists; pass --overwrite to replace it")
      continue
    folder = path.parent
    if folder not in folders_ok:
      folders_ok[folder] = atomic_write.probe_writable_folder(folder)
    if folders_ok[folder]:
      problems.append(f"{what} {path}: {folders_ok[folder]}")
  return problems

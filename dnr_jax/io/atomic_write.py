"""Atomic file writes: a temporary file in the destination folder, then a rename.

Every file dnr_jax writes (images, debug pictures, reports, converted weights and their
manifest) goes through :func:`atomic_write`, so that a reader never sees a half-written
file, an interrupted write (Ctrl-C, SIGTERM, a full disk) leaves the previous file
untouched and no temporary file behind, and new files get the usual mode
(``0666 & ~umask``) rather than ``mkstemp``'s 0600.
"""

from __future__ import annotations

import os
import pathlib
import tempfile
from typing import BinaryIO, Callable

TEMP_PREFIX = ".tmp_dnr_"


def usual_mode() -> int:
  """The mode a plain ``open(path, 'w')`` would give a new file (0666 minus the umask)."""
  umask = os.umask(0)
  os.umask(umask)
  return 0o666 & ~umask


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> pathlib.Path:
  """Calls ``write(f)`` on a temporary file beside ``path``, then renames it to ``path``.

  The parent folder is created if needed. On any exception (``KeyboardInterrupt``
  included) the temporary file is removed and the exception propagates.
  """
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX, suffix=path.suffix)
  try:
    with os.fdopen(fd, "wb") as f:
      write(f)
      f.flush()
      os.fsync(f.fileno())
    os.chmod(tmp, usual_mode())
    os.replace(tmp, path)
  except BaseException:
    try:
      os.unlink(tmp)
    except FileNotFoundError:
      pass
    raise
  return path


def write_bytes(path: str | os.PathLike, data: bytes) -> pathlib.Path:
  return atomic_write(path, lambda f: f.write(data))


def write_text(path: str | os.PathLike, text: str) -> pathlib.Path:
  return write_bytes(path, text.encode("utf-8"))


def probe_writable_folder(folder: str | os.PathLike) -> str | None:
  """Why files cannot be created in ``folder`` (or its nearest existing ancestor), or None.

  Tries for real (creates and removes an empty temporary file), because permission
  bits say nothing about read-only mounts, and root ignores them.
  """
  folder = pathlib.Path(folder).absolute()
  probe = folder
  while not probe.exists():
    if probe.parent == probe:
      return f"{folder}: no existing parent folder"
    probe = probe.parent
  if not probe.is_dir():
    return f"{probe} is not a folder"
  try:
    fd, tmp = tempfile.mkstemp(dir=probe, prefix=TEMP_PREFIX)
    os.close(fd)
    os.unlink(tmp)
  except OSError as e:
    return f"cannot write in {probe}: {e.strerror or e}"
  return None

"""Video files and animated images: probe, stream frames in, stream frames out.

Containers (MP4, MOV, MKV, WebM...) go through PyAV, whose wheel ships the FFmpeg
libraries; animated GIF, WebP and APNG through Pillow, numbered frames (``frames/%05d.png``,
FFmpeg's image2 pattern) through Pillow one file per frame. Frames are decoded upright (a
rotation in the container's display matrix is applied, the output is written upright
without one), one at a time: a clip of any length never sits in memory.

What an editor expects to survive, and does:
- timestamps: each output frame keeps its input frame's ``pts`` in the input's time
  base, so the frame rate, variable frame rate included, and the sync are unchanged;
- audio: every audio stream's packets are copied as they are (no re-encode),
  interleaved with the video by time;
- animations: each frame's duration, the loop count and transparency (RGBA frames);
- the output appears whole or not at all: it is written to a temporary file beside the
  destination and renamed at the end; an error or Ctrl-C removes the temporary file.
"""

from __future__ import annotations

import dataclasses
import fractions
import os
import pathlib
import re
import tempfile
from typing import Iterator

import numpy as np
from PIL import Image
from PIL import ImageSequence

from dnr_jax.io import atomic_write

CONTAINER_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi")
ANIMATION_SUFFIXES = (".gif", ".webp", ".png", ".apng")
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
_NUMBER = re.compile(r"%(0?\d*)d")  # printf's %d, %4d, %05d: one per sequence name


class VideoError(Exception):
  """A clip that cannot be read or written (one line for the user)."""


@dataclasses.dataclass(frozen=True)
class VideoInfo:
  """What the plan needs to know before any frame is decoded."""
  path: pathlib.Path
  kind: str  # "container" | "animation" | "sequence"
  width: int  # upright (after the display rotation)
  height: int
  frames: int  # the container's count, or an estimate from the duration (0: unknown)
  fps: fractions.Fraction  # the average frame rate (animations: from the durations)
  rotation: int = 0  # degrees counterclockwise applied on decode
  audio_streams: int = 0
  codec: str = ""
  loop: int | None = None  # animations: 0 = forever
  alpha: bool = False
  files: tuple[pathlib.Path, ...] = ()  # sequences: the frames in order
  first_number: int = 1  # sequences: the first frame's number


@dataclasses.dataclass(frozen=True)
class Frame:
  """One decoded frame, upright: (h, w, 3) uint8, or (h, w, 4) for transparent animations."""
  image: np.ndarray
  pts: int | None = None  # containers: in ``time_base``
  time_base: fractions.Fraction | None = None
  duration_ms: int | None = None  # animations


def is_sequence(path: str | os.PathLike) -> bool:
  """A pattern of numbered frames, FFmpeg's convention: ``frames/%05d.png``."""
  path = pathlib.Path(path)
  return (len(_NUMBER.findall(path.name)) == 1 and path.name.count("%") == 1
          and path.suffix.lower() in FRAME_SUFFIXES)


def sequence_name(pattern: str | os.PathLike, number: int) -> pathlib.Path:
  """The file of frame ``number``: ``frames/%05d.png``, 7 -> ``frames/00007.png``."""
  pattern = pathlib.Path(pattern)
  m = _NUMBER.search(pattern.name)
  spec = m.group(1)
  digits = f"{number:{spec}d}" if spec else str(number)
  return pattern.with_name(pattern.name[:m.start()] + digits.replace(" ", "0")
                           + pattern.name[m.end():])


def sequence_files(pattern: str | os.PathLike) -> list[tuple[int, pathlib.Path]]:
  """The (number, file) pairs present for ``pattern``, by number."""
  pattern = pathlib.Path(pattern)
  m = _NUMBER.search(pattern.name)
  head, tail = pattern.name[:m.start()], pattern.name[m.end():]
  regex = re.compile(re.escape(head) + r"(\d+)" + re.escape(tail) + r"\Z")
  folder = pattern.parent
  if not folder.is_dir():
    return []
  found = [(int(g.group(1)), folder / f.name) for f in folder.iterdir()
           if (g := regex.match(f.name)) and f.is_file()]
  return sorted(found)


def is_clip(path: str | os.PathLike) -> bool:
  """A video container by its suffix, an animated image (more than one frame), or a
  pattern of numbered frames."""
  if is_sequence(path):
    return True
  path = pathlib.Path(path)
  suffix = path.suffix.lower()
  if suffix in CONTAINER_SUFFIXES:
    return True
  if suffix in ANIMATION_SUFFIXES and path.is_file():
    try:
      with Image.open(path) as im:
        return getattr(im, "n_frames", 1) > 1
    except (OSError, ValueError, Image.DecompressionBombError):
      return False
  return False


def _av():
  import av  # pylint: disable=g-import-not-at-top  (only clips need the FFmpeg libraries)
  return av


def _first_line(e: BaseException) -> str:
  text = str(e).strip().splitlines()
  return text[0] if text else type(e).__name__


def probe(path: str | os.PathLike, frame_rate: float = 25.0) -> VideoInfo:
  """Reads the header (and, for containers, the first frame's rotation). ``frame_rate``:
  of numbered frames (their files carry none)."""
  path = pathlib.Path(path)
  if is_sequence(path):
    return _probe_sequence(path, frame_rate)
  if not path.is_file():
    raise VideoError(f"{path}: no such file")
  if path.suffix.lower() in CONTAINER_SUFFIXES:
    return _probe_container(path)
  try:
    with Image.open(path) as im:
      durations = []
      for frame in ImageSequence.Iterator(im):
        durations.append(frame.info.get("duration", 100) or 100)
      alpha = im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info
      w, h = im.size
      loop = im.info.get("loop", 0 if im.format == "GIF" else None)
  except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
    raise VideoError(f"{path}: cannot read ({_first_line(e)})") from None
  mean_ms = max(1.0, float(np.mean(durations)))
  return VideoInfo(path, "animation", w, h, len(durations),
                   fractions.Fraction(1000 / mean_ms).limit_denominator(1001), loop=loop,
                   alpha=bool(alpha))


def _probe_sequence(pattern: pathlib.Path, frame_rate: float) -> VideoInfo:
  found = sequence_files(pattern)
  if not found:
    raise VideoError(f"{pattern}: no frame matches the pattern")
  numbers = [n for n, _ in found]
  missing = sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers))
  if missing:  # a dropped frame would shift every later one in time
    raise VideoError(f"{pattern}: frames {numbers[0]}-{numbers[-1]} with "
                     f"{len(missing)} missing (first: {sequence_name(pattern, missing[0])})")
  if len(set(numbers)) != len(numbers):
    raise VideoError(f"{pattern}: two files have the same frame number")
  try:
    with Image.open(found[0][1]) as im:
      w, h = im.size
      alpha = im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info
  except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
    raise VideoError(f"{found[0][1]}: cannot read ({_first_line(e)})") from None
  return VideoInfo(pattern, "sequence", w, h, len(found),
                   fractions.Fraction(frame_rate).limit_denominator(1001), alpha=bool(alpha),
                   files=tuple(f for _, f in found), first_number=numbers[0])


def _probe_container(path: pathlib.Path) -> VideoInfo:
  av = _av()
  try:
    with av.open(str(path)) as c:
      if not c.streams.video:
        raise VideoError(f"{path}: no video stream")
      s = c.streams.video[0]
      rate = s.average_rate or s.guessed_rate or fractions.Fraction(25)
      frames = s.frames
      if not frames and s.duration and s.time_base:
        frames = int(round(float(s.duration * s.time_base * rate)))
      elif not frames and c.duration:
        frames = int(round(c.duration / 1e6 * float(rate)))
      rotation = 0
      for frame in c.decode(s):
        rotation = int(round((frame.rotation or 0) / 90.0)) % 4 * 90
        break
      else:
        raise VideoError(f"{path}: the video stream has no frame")
      w, h = s.codec_context.width, s.codec_context.height
      if rotation in (90, 270):
        w, h = h, w
      return VideoInfo(path, "container", w, h, int(frames or 0), fractions.Fraction(rate),
                       rotation, len(c.streams.audio), s.codec_context.name)
  except VideoError:
    raise
  except (av.FFmpegError, OSError, ValueError) as e:
    raise VideoError(f"{path}: cannot read the video ({_first_line(e)})") from None


def read_frames(info: VideoInfo) -> Iterator[Frame]:
  """Decodes the frames one by one, upright. A corrupt stream raises VideoError."""
  if info.kind == "animation":
    yield from _read_animation(info)
    return
  if info.kind == "sequence":
    yield from _read_sequence(info)
    return
  av = _av()
  k = info.rotation // 90
  try:
    with av.open(str(info.path)) as c:
      s = c.streams.video[0]
      s.thread_type = "AUTO"
      for frame in c.decode(s):
        image = frame.to_ndarray(format="rgb24")
        if k:
          image = np.ascontiguousarray(np.rot90(image, k))
        yield Frame(image, frame.pts, frame.time_base or s.time_base)
  except (av.FFmpegError, OSError, ValueError) as e:
    raise VideoError(f"{info.path}: cannot decode the video ({_first_line(e)})") from None


def _read_animation(info: VideoInfo) -> Iterator[Frame]:
  try:
    with Image.open(info.path) as im:
      for frame in ImageSequence.Iterator(im):
        duration = int(frame.info.get("duration", 100) or 100)
        rgb = frame.convert("RGBA" if info.alpha else "RGB")
        yield Frame(np.asarray(rgb), duration_ms=duration)
  except (OSError, ValueError, SyntaxError) as e:
    raise VideoError(f"{info.path}: cannot decode frame ({_first_line(e)})") from None


def _read_sequence(info: VideoInfo) -> Iterator[Frame]:
  duration = int(round(1000 / float(info.fps)))
  for f in info.files:
    try:
      with Image.open(f) as im:
        if im.size != (info.width, info.height):
          raise VideoError(f"{f}: {im.size[0]}x{im.size[1]}, the first frame "
                           f"{info.width}x{info.height}")
        image = np.asarray(im.convert("RGBA" if info.alpha else "RGB"))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
      raise VideoError(f"{f}: cannot read ({_first_line(e)})") from None
    yield Frame(image, duration_ms=duration)


def output_kind(path: str | os.PathLike) -> str:
  if is_sequence(path):
    return "sequence"
  suffix = pathlib.Path(path).suffix.lower()
  if suffix in CONTAINER_SUFFIXES:
    return "container"
  if suffix in (".gif", ".webp", ".png", ".apng"):
    return "animation"
  raise VideoError(f"{path}: a clip is written as {', '.join(CONTAINER_SUFFIXES)}, "
                   f"an animated .gif/.webp/.png or numbered frames (like frames/%05d.png)")


def even_size(height: int, width: int, path: str | os.PathLike) -> tuple[int, int]:
  """H.264 in yuv420p needs even sides: the size a container output is written at."""
  if output_kind(path) == "container":
    return max(2, height - height % 2), max(2, width - width % 2)
  return height, width


class ClipWriter:
  """Writes frames to ``path`` (a temporary file until :meth:`close`).

  Containers: H.264 (VP9 for .webm) in yuv420p at ``crf``, the input's time base and
  timestamps, every audio stream of ``source`` copied packet by packet. Animations:
  Pillow, the frames' durations, ``info.loop`` and transparency. Numbered frames: one
  file per frame, numbered from the input's first number (1 for other inputs), each a
  temporary file until :meth:`close` renames them all.
  Use as a context manager: an exception removes the temporary files.
  """

  def __init__(self, path: str | os.PathLike, info: VideoInfo, height: int, width: int,
               crf: int = 18):
    self.path = pathlib.Path(path)
    self.info, self.height, self.width, self.crf = info, height, width, crf
    self.kind = output_kind(self.path)
    self.path.parent.mkdir(parents=True, exist_ok=True)
    self.count = 0
    self._sequence: list[tuple[pathlib.Path, pathlib.Path]] = []  # (temporary, final)
    self.tmp = None if self.kind == "sequence" else self._temp_file()
    self._frames: list[Image.Image] = []
    self._durations: list[int] = []
    self._out = None
    if self.kind == "container":
      self._open_container()

  def _temp_file(self) -> pathlib.Path:
    fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=atomic_write.TEMP_PREFIX,
                               suffix=self.path.suffix)
    os.close(fd)
    return pathlib.Path(tmp)

  def _open_container(self):
    av = _av()
    try:
      self._out = av.open(str(self.tmp), "w", format=_muxer(self.path))
      webm = self.path.suffix.lower() == ".webm"
      self._video = self._out.add_stream("libvpx-vp9" if webm else "libx264",
                                         rate=self.info.fps)
      self._video.width, self._video.height = self.width, self.height
      self._video.pix_fmt = "yuv420p"
      self._video.options = ({"crf": str(self.crf), "b": "0"} if webm
                             else {"crf": str(self.crf), "preset": "medium"})
      self._audio_in = None
      self._audio_packets = iter(())
      self._pending = None
      if self.info.kind == "container" and self.info.audio_streams:
        self._audio_in = av.open(str(self.info.path))
        streams = list(self._audio_in.streams.audio)
        self._audio_map = {s.index: self._out.add_stream_from_template(s) for s in streams}
        self._audio_packets = self._audio_in.demux(*streams)
    except (av.FFmpegError, OSError, ValueError) as e:
      self._discard()
      raise VideoError(f"{self.path}: cannot write the video ({_first_line(e)})") from None

  def __enter__(self):
    return self

  def __exit__(self, exc_type, exc, tb):
    if exc_type is None:
      self.close()
    else:
      self._discard()
    return False

  def write(self, image: np.ndarray, source: Frame) -> None:
    """One output frame (h, w, 3|4) uint8, timed like ``source``."""
    self.count += 1
    if self.kind == "sequence":
      first = self.info.first_number if self.info.kind == "sequence" else 1
      tmp = self._temp_file()
      self._sequence.append((tmp, sequence_name(self.path, first + self.count - 1)))
      jpeg = self.path.suffix.lower() in (".jpg", ".jpeg")
      try:
        Image.fromarray(image[..., :3] if jpeg else image).save(
            tmp, format=Image.registered_extensions()[self.path.suffix.lower()],
            **({"quality": 95} if jpeg else {}))
      except (OSError, ValueError) as e:
        raise VideoError(f"{self._sequence[-1][1]}: cannot write ({_first_line(e)})") from None
      return
    if self.kind == "animation":
      mode = "RGBA" if image.shape[-1] == 4 else "RGB"
      self._frames.append(Image.fromarray(image, mode))
      self._durations.append(source.duration_ms or int(round(1000 / float(self.info.fps))))
      return
    av = _av()
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[..., :3]), format="rgb24")
    if source.pts is not None and source.time_base is not None:
      frame.pts, frame.time_base = source.pts, source.time_base
      self._mux_audio_until(float(source.pts * source.time_base))
    else:  # an animation into a container: constant rate
      frame.time_base = 1 / fractions.Fraction(self.info.fps)
      frame.pts = self.count - 1
    try:
      for packet in self._video.encode(frame):
        self._out.mux(packet)
    except (av.FFmpegError, ValueError) as e:
      raise VideoError(f"{self.path}: cannot encode ({_first_line(e)})") from None

  def _mux_audio_until(self, seconds: float | None) -> None:
    """Copies the audio packets up to ``seconds`` (None: all the rest)."""
    while True:
      packet = self._pending
      if packet is None:
        packet = next(self._audio_packets, None)
        if packet is None:
          return
      if packet.dts is None:  # the demuxer's flush packet
        self._pending = None
        continue
      if seconds is not None and float(packet.dts * packet.time_base) > seconds:
        self._pending = packet
        return
      self._pending = None
      packet.stream = self._audio_map[packet.stream.index]
      self._out.mux(packet)

  def close(self) -> pathlib.Path:
    """Flushes, writes, renames into place; returns the path."""
    if self.count == 0:
      self._discard()
      raise VideoError(f"{self.path}: no frame to write")
    if self.kind == "sequence":
      try:
        for tmp, final in self._sequence:
          os.chmod(tmp, atomic_write.usual_mode())
          os.replace(tmp, final)
      except BaseException:
        self._discard()
        raise
      return self.path
    try:
      if self.kind == "animation":
        self._save_animation()
      else:
        av = _av()
        try:
          for packet in self._video.encode(None):
            self._out.mux(packet)
          self._mux_audio_until(None)
          self._out.close()
        except (av.FFmpegError, ValueError) as e:
          raise VideoError(f"{self.path}: cannot finish the video ({_first_line(e)})") from None
        finally:
          if self._audio_in is not None:
            self._audio_in.close()
      os.chmod(self.tmp, atomic_write.usual_mode())
      os.replace(self.tmp, self.path)
    except BaseException:
      self._discard()
      raise
    return self.path

  def _save_animation(self) -> None:
    first, rest = self._frames[0], self._frames[1:]
    fmt = {".gif": "GIF", ".webp": "WEBP"}.get(self.path.suffix.lower(), "PNG")
    kw = {"save_all": True, "append_images": rest, "duration": self._durations}
    if self.info.loop is not None:
      kw["loop"] = self.info.loop
    if fmt == "GIF":
      kw["disposal"] = 2
      kw["optimize"] = False
    elif fmt == "WEBP":
      kw["lossless"] = True
    first.save(self.tmp, format=fmt, **kw)

  def _discard(self) -> None:
    try:
      if self._out is not None:
        self._out.close()
    except Exception:  # pylint: disable=broad-except  (already failing)
      pass
    for tmp in [self.tmp] + [t for t, _ in self._sequence]:
      try:
        if tmp is not None:
          tmp.unlink()
      except FileNotFoundError:  # renamed already, or never written
        pass


def _muxer(path: pathlib.Path) -> str:
  return {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska",
          ".webm": "webm", ".avi": "avi"}[path.suffix.lower()]

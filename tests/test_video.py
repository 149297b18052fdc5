"""Clips: files in and out (timestamps, audio, animations), shots, the camera path, the
render pass's compilations and temporal stability, the CLI's exit codes."""

from __future__ import annotations

import fractions
import json

import av
import numpy as np
import pytest
from PIL import Image

from dnr_jax.cli import job as job_lib
from dnr_jax.cli import main as cli_main
from dnr_jax.cli import video_job
from dnr_jax.config import VideoConfig
from dnr_jax.io import video_io
from dnr_jax.nn import weights as weights_lib
from dnr_jax.video import plan as plan_lib
from dnr_jax.video import shots
from dnr_jax.video import stream

H, W = 72, 128  # 16:9


def pan_frames(photo, n, speed=3, h=H, w=W):
  """Windows sliding right over a photo: a camera pan with known motion."""
  big = np.asarray(Image.fromarray(photo).resize((w + n * speed, h)))
  return [big[:, t * speed:t * speed + w] for t in range(n)]


def write_clip(path, frames, fps=25, audio=True, time_base=None):
  """An H.264 clip (and an AAC sine track) written with PyAV."""
  with av.open(str(path), "w") as c:
    v = c.add_stream("libx264", rate=fps)
    v.width, v.height, v.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
    a = None
    if audio:
      a = c.add_stream("aac", rate=48000)
      a.layout = "mono"
    for t, f in enumerate(frames):
      vf = av.VideoFrame.from_ndarray(f, format="rgb24")
      vf.pts = t
      vf.time_base = fractions.Fraction(1, fps)
      for p in v.encode(vf):
        c.mux(p)
    if a is not None:
      n = int(48000 * len(frames) / fps)
      s = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / 48000)).astype(np.float32)
      for i in range(0, n, 1024):
        af = av.AudioFrame.from_ndarray(s[None, i:i + 1024], format="fltp", layout="mono")
        af.sample_rate, af.pts = 48000, i
        for p in a.encode(af):
          c.mux(p)
      for p in a.encode(None):
        c.mux(p)
    for p in v.encode(None):
      c.mux(p)


@pytest.fixture(scope="module")
def wfile(tmp_path_factory, random_weights):
  path = tmp_path_factory.mktemp("vw") / "w.npz"
  weights_lib.save_npz(random_weights, path, {"source": "random init for tests"})
  return path


def cli(capsys, *args):
  capsys.readouterr()
  code = cli_main.status_in_process(["--compilation_cache=", "--noprogress", *map(str, args)])
  return code, capsys.readouterr().err


def packets(path, kind):
  with av.open(str(path)) as c:
    s = c.streams.video[0] if kind == "video" else c.streams.audio[0]
    return [(p.pts, bytes(p)) for p in c.demux(s) if p.size]


def test_a_clip_keeps_its_timestamps_and_its_audio_unchanged(tmp_path, small_photo, wfile,
                                                              capsys):
  src, out = tmp_path / "pan.mp4", tmp_path / "square.mp4"
  write_clip(src, pan_frames(small_photo, 20))
  code, err = cli(capsys, f"--input={src}", f"--output={out}", "--aspect=1:1",
                  f"--vgg_weights={wfile}", f"--report={tmp_path}/r.json")
  assert code == 0, err
  info = video_io.probe(out)
  assert (info.height, info.width) == (72, 72) and info.frames == 20
  assert info.fps == 25 and info.audio_streams == 1
  assert packets(out, "audio") == packets(src, "audio")  # copied, not re-encoded
  src_pts = sorted(f.pts * f.time_base for f in video_io.read_frames(video_io.probe(src)))
  out_pts = sorted(f.pts * f.time_base for f in video_io.read_frames(info))
  assert out_pts == src_pts
  report = json.loads((tmp_path / "r.json").read_text())
  assert report["frames"] == 20 and report["out_hw"] == [72, 72]
  assert not list(tmp_path.glob(".tmp*"))


def test_h264_output_gets_even_sides_and_9_16(tmp_path, small_photo, wfile, capsys):
  src, out = tmp_path / "pan.mp4", tmp_path / "vertical.mp4"
  write_clip(src, pan_frames(small_photo, 10), audio=False)
  code, err = cli(capsys, f"--input={src}", f"--output={out}", "--aspect=9:16",
                  f"--vgg_weights={wfile}")
  assert code == 0, err
  info = video_io.probe(out)
  assert (info.height, info.width) == (72, 40)  # 72 * 9 / 16 = 40.5 -> even 40


def test_an_animated_gif_keeps_durations_loop_and_frame_count(tmp_path, small_photo, wfile,
                                                               capsys):
  frames = [Image.fromarray(f) for f in pan_frames(small_photo, 4, h=64, w=96)]
  src, out = tmp_path / "anim.gif", tmp_path / "narrow.gif"
  frames[0].save(src, save_all=True, append_images=frames[1:], duration=[100, 200, 300, 400],
                 loop=2)
  assert video_io.is_clip(src)
  code, err = cli(capsys, f"--input={src}", f"--output={out}", "--width_ratio=0.75",
                  f"--vgg_weights={wfile}")
  assert code == 0, err
  with Image.open(out) as im:
    assert im.n_frames == 4 and im.size == (72, 64) and im.info["loop"] == 2
    durations = []
    for i in range(im.n_frames):
      im.seek(i)
      durations.append(im.info["duration"])
  assert durations == [100, 200, 300, 400]


def test_shot_detection_finds_a_hard_cut_and_not_a_pan(small_photo, photo):
  pan = pan_frames(small_photo, 16)
  other = pan_frames(255 - photo[::-1], 16)
  sig = np.stack([shots.signature(f) for f in pan + other])
  assert shots.shot_starts(shots.distances(sig)) == [0, 16]
  sig = np.stack([shots.signature(f) for f in pan])
  assert shots.shot_starts(shots.distances(sig)) == [0]


def test_still_subject_gets_a_locked_camera_and_a_moving_one_a_bounded_pan():
  cfg = VideoConfig()
  length, crop, frames, fps = 400, 100, 100, 25.0
  x = np.arange(length)
  t = np.arange(0, frames, 5)

  def blob(c):
    return 0.1 + np.exp(-0.5 * ((x - c) / 10.0) ** 2)

  still = np.stack([blob(200 + 3 * np.sin(i)) for i in t])
  path, is_still = plan_lib.camera_path(t, still, frames, crop, fps, cfg)
  assert is_still and np.ptp(path) == 0 and 100 < path[0] + crop / 2 < 300
  moving = np.stack([blob(60 + 1.6 * i) for i in t])  # 40 px/s, below max_speed
  path, is_still = plan_lib.camera_path(t, moving, frames, crop, fps, cfg)
  assert not is_still
  step = np.abs(np.diff(path))
  assert step.max() <= cfg.max_speed * crop / fps + 1e-4
  centre = path + crop / 2
  subject = 60 + 1.6 * np.arange(frames)
  inside = (subject > path) & (subject < path + crop)
  assert inside[10:-10].all(), (centre, subject)


def test_render_compiles_once_and_a_static_clip_stays_static(small_photo, random_weights):
  cfg = VideoConfig(batch=4)
  frames = [small_photo] * 11  # three batches, the last one padded
  p = stream.plan_clip(iter(frames), small_photo.shape[:2], (64, 48), 25.0, random_weights,
                       cfg)
  before = stream.render_batch._cache_size()  # pylint: disable=protected-access
  out = list(stream.render_frames(iter(frames), p, cfg))
  assert stream.render_batch._cache_size() - before <= 1  # pylint: disable=protected-access
  assert len(out) == 11 and out[0].shape == (64, 48, 3)
  assert all(np.array_equal(o, out[0]) for o in out)  # no flicker where the input is still


def test_aspect_changes_one_axis_and_never_upscales():
  assert job_lib.aspect_size(720, 1280, "9:16") == (720, 405)
  assert job_lib.aspect_size(720, 1280, "21:9") == (549, 1280)
  assert job_lib.aspect_size(720, 1280, "16:9") == (720, 1280)
  with pytest.raises(job_lib.UserError, match="W:H"):
    job_lib.parse_aspect("9x16")


def test_bad_clips_are_one_line_and_exit_2_with_nothing_written(tmp_path, small_photo, wfile,
                                                                capsys):
  bad = tmp_path / "bad.mp4"
  bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 20)
  code, err = cli(capsys, f"--input={bad}", f"--output={tmp_path}/o.mp4", "--aspect=1:1",
                  f"--vgg_weights={wfile}")
  assert code == 2 and err.count("\n") == 1 and "bad.mp4" in err, err
  src = tmp_path / "ok.mp4"
  write_clip(src, pan_frames(small_photo, 4), audio=False)
  (tmp_path / "exists.mp4").write_bytes(b"keep me")
  code, err = cli(capsys, f"--input={src}", f"--output={tmp_path}/exists.mp4",
                  "--aspect=1:1", f"--vgg_weights={wfile}")
  assert code == 2 and "--overwrite" in err
  assert (tmp_path / "exists.mp4").read_bytes() == b"keep me"
  code, err = cli(capsys, f"--input={src}", f"--output={tmp_path}/o.avi.txt", "--aspect=1:1",
                  f"--vgg_weights={wfile}")
  assert code == 2 and err.count("\n") == 1, err
  assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mp4", "exists.mp4", "ok.mp4"]


def test_ctrl_c_while_rendering_leaves_no_partial_output(tmp_path, small_photo, wfile, capsys,
                                                         monkeypatch):
  src, out = tmp_path / "pan.mp4", tmp_path / "o.mp4"
  write_clip(src, pan_frames(small_photo, 12))
  real = stream.render_frames

  def interrupted(*args, **kwargs):
    for i, frame in enumerate(real(*args, **kwargs)):
      if i == 5:
        raise KeyboardInterrupt
      yield frame

  monkeypatch.setattr(stream, "render_frames", interrupted)
  code, err = cli(capsys, f"--input={src}", f"--output={out}", "--aspect=1:1",
                  f"--vgg_weights={wfile}")
  assert code == 130 and "nothing was written" in err and "Traceback" not in err
  assert sorted(p.name for p in tmp_path.iterdir()) == ["pan.mp4"]


def test_dry_run_prints_the_shots_and_writes_nothing(tmp_path, small_photo, photo, wfile,
                                                     capsys):
  src = tmp_path / "cut.mp4"
  write_clip(src, pan_frames(small_photo, 10) + pan_frames(255 - photo[::-1], 10),
             audio=False)
  code, err = cli(capsys, f"--input={src}", "--aspect=9:16", "--dry_run",
                  f"--vgg_weights={wfile}")
  assert code == 0, err
  assert "2 shot(s) starting at frames 0, 10" in err
  assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.mp4"]


def test_video_job_output_names_keep_the_container(tmp_path):
  job = job_lib.Job(input=str(tmp_path / "clip.mov"))
  assert video_job.output_path(job).name == "clip_retargeted.mov"


def test_numbered_frames_in_and_out_keep_their_numbers_and_refuse_gaps(tmp_path, small_photo,
                                                                        wfile, capsys):
  src = tmp_path / "in"
  src.mkdir()
  for i, f in enumerate(pan_frames(small_photo, 5, h=64, w=96)):
    Image.fromarray(f).save(src / f"shot_{i + 7:04d}.png")
  (src / "notes.txt").write_text("not a frame")
  pattern = src / "shot_%04d.png"
  assert video_io.is_clip(pattern) and video_io.probe(pattern).frames == 5
  out = tmp_path / "out" / "f%03d.png"
  code, err = cli(capsys, f"--input={pattern}", f"--output={out}", "--width_ratio=0.75",
                  f"--vgg_weights={wfile}")
  assert code == 0, err
  written = sorted(p.name for p in out.parent.iterdir())
  assert written == [f"f{i:03d}.png" for i in range(7, 12)]  # the input's numbers
  assert all(Image.open(out.parent / n).size == (72, 64) for n in written)
  code, err = cli(capsys, f"--input={pattern}", f"--output={out}", "--width_ratio=0.75",
                  f"--vgg_weights={wfile}")  # the frames exist now
  assert code == 2 and "5 frames" in err and "--overwrite" in err, err
  mp4 = tmp_path / "clip.mp4"
  code, err = cli(capsys, f"--input={pattern}", f"--output={mp4}", "--aspect=1:1",
                  "--frame_rate=10", f"--vgg_weights={wfile}")
  assert code == 0, err
  info = video_io.probe(mp4)
  assert (info.frames, info.fps, info.width, info.height) == (5, 10, 64, 64)
  (src / "shot_0009.png").unlink()  # a dropped frame would shift the rest in time
  code, err = cli(capsys, f"--input={pattern}", f"--output={tmp_path}/o_%d.png",
                  "--width_ratio=0.75", f"--vgg_weights={wfile}")
  assert code == 2 and err.count("\n") == 1 and "1 missing" in err and "shot_0009" in err, err
  assert not list(tmp_path.glob("o_*"))


def test_a_rotated_phone_clip_is_read_upright_and_written_upright(tmp_path, small_photo, wfile,
                                                                  capsys):
  """A display matrix (a phone held upright) is applied on decode: the frames the plan
  sees and the output are upright, and the output carries no rotation."""
  frames = pan_frames(small_photo, 4, h=64, w=96)
  src = tmp_path / "phone.mp4"
  with av.open(str(src), "w") as c:
    v = c.add_stream("libx264", rate=25)
    v.width, v.height, v.pix_fmt = 96, 64, "yuv420p"
    v.set_display_rotation(90)  # counterclockwise, like a phone's portrait clip
    for t, f in enumerate(frames):
      vf = av.VideoFrame.from_ndarray(f, format="rgb24")
      vf.pts, vf.time_base = t, fractions.Fraction(1, 25)
      for p in v.encode(vf):
        c.mux(p)
    for p in v.encode(None):
      c.mux(p)
  info = video_io.probe(src)
  assert (info.rotation, info.width, info.height) == (90, 64, 96)
  first = next(video_io.read_frames(info)).image
  assert first.shape == (96, 64, 3)
  upright = np.rot90(frames[0]).astype(np.float32)
  assert np.abs(first - upright).mean() < 8  # H.264 noise only; other turns differ by ~40
  assert np.abs(first - np.rot90(frames[0], -1)).mean() > 3 * np.abs(first - upright).mean()
  out = tmp_path / "o.mp4"
  code, err = cli(capsys, f"--input={src}", f"--output={out}", "--height_ratio=0.75",
                  f"--vgg_weights={wfile}")
  assert code == 0, err
  written = video_io.probe(out)
  assert (written.rotation, written.width, written.height) == (0, 64, 72)

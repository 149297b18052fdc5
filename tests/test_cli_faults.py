"""The fault matrix of the command line (issue: "Nothing lost, ever").

Every case runs the CLI as a user would (a subprocess) and asserts the exit status,
that stderr has exactly one error line matching the expected message and no
traceback, and that no file was created or changed except the intended ones.
Cases that need no computation use ``--dry_run`` or fail in pre-flight.
"""

import hashlib
import json
import os
import pathlib
import queue
import re
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from dnr_jax.cli import main as cli_main
from dnr_jax.nn import weights as weights_lib

FAST = ["--steps=1", "--chunk=1", "--noprogress"]


@pytest.fixture(scope="module")
def env(tmp_path_factory, random_weights, small_photo):
  d = tmp_path_factory.mktemp("faults")
  wpath = d / "random_vgg19.npz"
  weights_lib.save_npz(random_weights, wpath, {"source": "random init for tests"})
  return {"dir": d, "weights": wpath, "photo": small_photo}


def run(*args, cwd=None, extra_env=None):
  e = dict(os.environ)
  e.update(extra_env or {})
  proc = subprocess.run([sys.executable, "-m", "dnr_jax.main", *map(str, args)],
                        capture_output=True, text=True, timeout=600, cwd=cwd, env=e)
  return proc.returncode, proc.stderr


def run_in_process(capsys, *args):
  """The CLI's exit status and stderr, run in this process (the flag and configuration
  checks: no subprocess start-up per case)."""
  capsys.readouterr()
  code = cli_main.status_in_process(["--compilation_cache=", *map(str, args)])
  return code, capsys.readouterr().err


def snapshot(folder: pathlib.Path) -> dict:
  return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
          for p in sorted(folder.rglob("*")) if p.is_file()}


def one_error(stderr: str, pattern: str) -> str:
  assert "Traceback" not in stderr, stderr
  lines = [l for l in stderr.splitlines() if "error:" in l]
  assert len(lines) == 1, stderr
  assert re.search(pattern, lines[0]), lines[0]
  return lines[0]


def case_dir(env, name) -> pathlib.Path:
  d = env["dir"] / name
  d.mkdir()
  return d


def photo_file(env, folder, name="photo.png", **save_kw):
  p = folder / name
  Image.fromarray(env["photo"]).save(p, **save_kw)
  return p


# ----------------------------------------------------------------------------- the eight


def test_debug_pictures_never_overwrite_the_input(env):
  d = case_dir(env, "debug_over_input")
  src = photo_file(env, d, "photo_stages.png")
  before = snapshot(d)
  code, err = run(f"--input={src}", f"--output={d}/photo.png", "--width_ratio=0.75",
                  "--save_debug", f"--vgg_weights={env['weights']}", *FAST)
  assert code == 2
  one_error(err, "photo_stages.png.*input image")
  assert snapshot(d) == before


@pytest.mark.slow
def test_folder_stem_collisions_get_distinct_reported_outputs(env):
  d = case_dir(env, "collide")
  src = d / "in"
  src.mkdir()
  photo_file(env, src, "x.png")
  photo_file(env, src, "x.jpg", quality=95)
  code, err = run(f"--input={src}", f"--output={d}/out", "--target_width=80",
                  f"--vgg_weights={env['weights']}", f"--report={d}/r.json", *FAST)
  assert code == 0, err
  assert sorted(p.name for p in (d / "out").iterdir()) == ["x_jpg.png", "x_png.png"]
  report = json.loads((d / "r.json").read_text())
  assert sorted(e["output"] for e in report) == [f"{d}/out/x_jpg.png", f"{d}/out/x_png.png"]
  assert all(e["renamed_to_avoid_collision"] and e["status"] == "ok" for e in report)


READ_ONLY = pathlib.Path("/sys/kernel")


def _read_only_available():
  try:
    (READ_ONLY / ".dnr_probe").touch()
  except OSError:
    return True
  (READ_ONLY / ".dnr_probe").unlink()
  return False


@pytest.mark.parametrize("where", ["output", "report_folder", "report_read_only",
                                   "output_under_file"])
def test_unwritable_outputs_fail_before_any_compute(env, where):
  d = case_dir(env, f"unwritable_{where}")
  src = photo_file(env, d)
  args = [f"--input={src}", "--width_ratio=0.75", f"--vgg_weights={env['weights']}", *FAST]
  if where in ("output", "report_read_only") and not _read_only_available():
    pytest.skip("no read-only folder on this machine")
  if where == "output":
    args.append(f"--output={READ_ONLY}/out.png")
    pattern = "cannot write"
  elif where == "report_folder":
    (d / "rep").mkdir()
    args += [f"--output={d}/o.png", f"--report={d}/rep"]
    pattern = "--report.*is a folder"
  elif where == "report_read_only":
    args += [f"--output={d}/o.png", f"--report={READ_ONLY}/r.json"]
    pattern = "--report.*cannot write"
  else:
    (d / "afile").write_text("x")
    args.append(f"--output={d}/afile/o.png")
    pattern = "not a folder"
  before = snapshot(d)
  code, err = run(*args)
  assert code == 2
  one_error(err, pattern)
  assert snapshot(d) == before  # no output, no .tmp_* left behind
  assert "expected ~" not in err  # refused before the estimate, i.e. before any work


def _png_header_only(path, width, height):
  def chunk(kind, data):
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
  ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
  path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                   + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("size,extra,pattern", [
    ((30000, 30000), [], "decompression bomb|above --max_pixels"),
    ((9000, 6000), [], "54.0 MP, above --max_pixels=50000000"),
    ((96, 64), ["--max_pixels=1000"], "above --max_pixels=1000"),
])
def test_huge_images_are_refused_from_the_header(env, size, extra, pattern):
  d = case_dir(env, f"bomb_{size[0]}_{len(extra)}")
  src = d / "big.png"
  if size == (96, 64):
    photo_file(env, d, "big.png")
  else:
    _png_header_only(src, *size)
  before = snapshot(d)
  code, err = run(f"--input={src}", f"--output={d}/o.png", "--width_ratio=0.75", *extra,
                  f"--vgg_weights={env['weights']}", *FAST)
  assert code == 2
  one_error(err, pattern)
  assert snapshot(d) == before


@pytest.mark.parametrize("where", ["read_only", "under_a_file"])
def test_unwritable_weights_folder_is_exit_3(env, where):
  """First run with nowhere to write the converted weights: one line, exit 3."""
  if where == "read_only" and not _read_only_available():
    pytest.skip("no read-only folder on this machine")
  d = case_dir(env, f"weights_{where}")
  (d / "afile").write_text("x")
  wdir = f"{READ_ONLY}/dnr_weights" if where == "read_only" else f"{d}/afile/weights"
  src = photo_file(env, d)
  before = snapshot(d)
  code, err = run(f"--input={src}", f"--output={d}/o.png", "--width_ratio=0.75", *FAST,
                  extra_env={"DNR_JAX_WEIGHTS_DIR": wdir})
  assert code == 3, err
  one_error(err, "cannot create the converted weights")
  assert snapshot(d) == before


def test_corrupt_manifest_of_given_weights_is_one_line(env):
  d = case_dir(env, "manifest")
  npz = d / "w.npz"
  npz.write_bytes(env["weights"].read_bytes())
  npz.with_suffix(".json").write_text("{not json")
  src = photo_file(env, d)
  code, err = run(f"--input={src}", f"--output={d}/o.png", "--width_ratio=0.75",
                  f"--vgg_weights={npz}", *FAST)
  assert code == 3
  one_error(err, "corrupt manifest")


@pytest.mark.slow
def test_input_dot_without_output_writes_beside_the_folder(env):
  d = case_dir(env, "dot")
  work = d / "photos"
  work.mkdir()
  photo_file(env, work, "a.png")
  code, err = run("--input=.", "--target_width=80", f"--vgg_weights={env['weights']}", *FAST,
                  cwd=work)
  assert code == 0, err
  assert (d / "photos_retargeted" / "a.png").is_file()


def _interrupt_run(args, pattern, delay, sig=signal.SIGINT, timeout=300):
  """Starts the CLI, waits for a stderr line matching ``pattern``, then sends ``sig``.

  Returns (exit code, all of stderr).
  """
  proc = subprocess.Popen([sys.executable, "-m", "dnr_jax.main", *map(str, args)],
                          stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
  lines: "queue.Queue[str | None]" = queue.Queue()

  def reader():
    for line in proc.stderr:
      lines.put(line)
    lines.put(None)

  threading.Thread(target=reader, daemon=True).start()
  seen, t0 = [], time.monotonic()
  while True:
    try:
      line = lines.get(timeout=max(0.1, timeout - (time.monotonic() - t0)))
    except queue.Empty:
      proc.kill()
      raise AssertionError("timed out waiting for " + pattern + ":\n" + "".join(seen))
    if line is None:
      raise AssertionError("exited before " + pattern + ":\n" + "".join(seen))
    seen.append(line)
    if re.search(pattern, line):
      break
  time.sleep(delay)
  proc.send_signal(sig)
  try:
    proc.wait(timeout=120)
  except subprocess.TimeoutExpired:
    proc.kill()
    raise
  while (line := lines.get(timeout=10)) is not None:
    seen.append(line)
  return proc.returncode, "".join(seen)


def test_ctrl_c_during_preparation_is_one_line_and_exit_130(env):
  d = case_dir(env, "sigint_prepare")
  src = d / "p.png"
  Image.fromarray(np.asarray(Image.fromarray(env["photo"]).resize((384, 256)))).save(src)
  code, err = _interrupt_run(
      [f"--input={src}", f"--output={d}/o.png", "--width_ratio=0.7", "--work_size=0",
       f"--vgg_weights={env['weights']}", *FAST], r"expected ~", 0.5)
  assert code == 130, err
  assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
  assert "interrupted before an image was produced" in err
  assert sorted(p.name for p in d.iterdir()) == ["p.png"]


def test_sigterm_mid_optimisation_keeps_the_best_image(env):
  d = case_dir(env, "sigterm_opt")
  src = photo_file(env, d)
  code, err = _interrupt_run(
      [f"--input={src}", f"--output={d}/o.png", "--width_ratio=0.75", "--steps=100000",
       "--chunk=1", "--preset=paper", f"--vgg_weights={env['weights']}",
       f"--report={d}/r.json"],
      r"reconstruction: started", 0.5, sig=signal.SIGTERM)
  assert code == 130, err
  assert "Traceback" not in err
  assert "best image so far" in err
  assert np.asarray(Image.open(d / "o.png")).shape == (64, 72, 3)
  assert json.loads((d / "r.json").read_text())["status"] == "interrupted"
  assert not list(d.glob(".tmp*"))


def test_interrupt_after_the_write_says_the_image_is_complete(env, capsys, monkeypatch):
  """Ctrl-C while the report entry is scored (after the output was written): the
  output stays, and the message says so (it used to claim nothing was written).
  In process, with the interrupt raised from the scoring itself: a signal sent from
  outside after the "wrote" line raced the end of a fast run."""
  from dnr_jax.cli import report as report_lib

  def interrupted_scoring(*args, **kwargs):
    raise KeyboardInterrupt

  monkeypatch.setattr(report_lib, "report_entry", interrupted_scoring)
  d = case_dir(env, "sigint_after_write")
  src = photo_file(env, d)
  code, err = run_in_process(
      capsys, f"--input={src}", f"--output={d}/o.png", "--width_ratio=0.75",
      f"--vgg_weights={env['weights']}", f"--report={d}/r.json", *FAST)
  assert code == 130, err
  assert "Traceback" not in err
  assert "o.png was written (complete)" in err and "nothing was written" not in err, err
  assert np.asarray(Image.open(d / "o.png")).shape == (64, 72, 3)
  assert json.loads((d / "r.json").read_text())["status"] == "interrupted"


@pytest.mark.slow
def test_sigterm_mid_batch_keeps_every_image_of_the_batch(env):
  d = case_dir(env, "sigterm_batch")
  (d / "in").mkdir()
  Image.fromarray(env["photo"]).save(d / "in" / "a.png")
  Image.fromarray(np.ascontiguousarray(env["photo"][:, ::-1])).save(d / "in" / "b.png")
  code, err = _interrupt_run(
      [f"--input={d}/in", f"--output={d}/out", "--width_ratio=0.75", "--steps=100000",
       "--chunk=1", "--batch_size=2", "--compilation_cache=", "--crop_shares=",
       f"--vgg_weights={env['weights']}", f"--report={d}/r.json"], r"reconstruction: started", 0.5, sig=signal.SIGTERM)
  assert code == 130, err
  assert "Traceback" not in err
  assert err.count("best image so far") == 2, err
  for name in ("a", "b"):
    assert np.asarray(Image.open(d / "out" / f"{name}.png")).shape == (64, 72, 3)
  report = json.loads((d / "r.json").read_text())
  assert sorted(e["status"] for e in report) == ["interrupted", "interrupted"]
  assert not list((d / "out").glob(".tmp*"))


# ----------------------------------------------------------------------------- smaller ones


def test_output_equal_to_input_is_refused_up_front(env):
  d = case_dir(env, "same")
  src = photo_file(env, d)
  os.link(src, d / "hard.png")
  (d / "sym.png").symlink_to(src)
  before = snapshot(d)
  for out in (src, d / "hard.png", d / "sym.png"):
    code, err = run(f"--input={src}", f"--output={out}", "--width_ratio=0.75",
                    f"--vgg_weights={env['weights']}", *FAST)
    assert code == 2
    one_error(err, "input image.*refusing to overwrite")
    assert "expected ~" not in err
  assert snapshot(d) == before


def test_existing_output_needs_overwrite(env, capsys):
  d = case_dir(env, "exists")
  src = photo_file(env, d)
  (d / "o.png").write_bytes(b"precious")
  code, err = run(f"--input={src}", f"--output={d}/o.png", "--width_ratio=0.75",
                  f"--vgg_weights={env['weights']}", *FAST)
  assert code == 2
  one_error(err, "already exists; pass --overwrite")
  assert (d / "o.png").read_bytes() == b"precious"
  code, err = run_in_process(capsys, f"--input={src}", f"--output={d}/o.png",
                             "--width_ratio=0.75", f"--vgg_weights={env['weights']}",
                             "--overwrite", *FAST)
  assert code == 0, err
  assert np.asarray(Image.open(d / "o.png")).shape == (64, 72, 3)


@pytest.mark.parametrize("flag,pattern", [
    ("--alpha=nan", "alpha"), ("--alpha=inf", "alpha"), ("--percentile=150", "percentile"),
    ("--learning_rate=nan", "learning_rate"), ("--learning_rate=0", "learning_rate"),
    ("--min_cell_scale=0", "min_cell_scale"), ("--refine_max_shift=-1", "refine_max_shift"),
    ("--width_ratio=nan", "width_ratio"), ("--max_pixels=0", "max_pixels"),
    ("--work_size=10", "work_size"), ("--steps=-1", "steps"), ("--grid_cell=0", "grid_cell"),
    ("--forward_weight=-1", "forward_weight"), ("--percentile=101", "percentile"),
    ("--crop_shares=1.5", "crop_shares"), ("--crop_lost_weight=-1", "crop_lost_weight"),
    ("--plan_size=10", "plan_size"),
])
def test_numeric_flags_are_validated(env, flag, pattern, capsys):
  d = case_dir(env, "num_" + re.sub(r"\W", "_", flag))
  src = photo_file(env, d)
  args = [f"--input={src}", f"--output={d}/o.png", f"--vgg_weights={env['weights']}", *FAST,
          flag]
  if "ratio" not in flag:
    args.append("--width_ratio=0.75")
  code, err = run_in_process(capsys, *args)
  assert code == 2, err
  one_error(err, pattern)
  assert not (d / "o.png").exists()


def test_random_bytes_npz_message_does_not_suggest_pickles(env):
  d = case_dir(env, "rand_npz")
  (d / "w.npz").write_bytes(np.random.RandomState(0).bytes(4096))
  src = photo_file(env, d)
  code, err = run(f"--input={src}", f"--output={d}/o.png", "--width_ratio=0.75",
                  f"--vgg_weights={d}/w.npz", *FAST)
  assert code == 3
  line = one_error(err, "not an .npz archive")
  assert "pickle" not in line


# ----------------------------------------------------------------------------- already handled


def _write_case(kind, folder, photo):
  p = folder / {"missing": "nope.png", "empty": "e.png", "text": "t.jpg", "trunc_jpg": "t.jpg",
                "trunc_png": "t.png", "tiny1": "s.png", "tiny31": "s.png", "bad_ext": "a.xyz",
                "gray16": "g.png", "cmyk": "c.jpg", "rgba": "a.png", "palette": "p.png",
                "exif6": "r.jpg"}[kind]
  im = Image.fromarray(photo)
  if kind == "empty":
    p.write_bytes(b"")
  elif kind == "text":
    p.write_text("this is not a picture\n")
  elif kind in ("trunc_jpg", "trunc_png"):
    im.save(p)
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])
  elif kind in ("tiny1", "tiny31"):
    n = 1 if kind == "tiny1" else 31
    Image.fromarray(photo[:n, :n]).save(p)
  elif kind == "bad_ext":
    im.save(p, format="PNG")
  elif kind == "gray16":
    Image.fromarray((photo[..., 0].astype(np.uint16) * 257)).save(p)
  elif kind == "cmyk":
    im.convert("CMYK").save(p)
  elif kind == "rgba":
    Image.fromarray(np.dstack([photo, np.full(photo.shape[:2], 128, np.uint8)])).save(p)
  elif kind == "palette":
    pal = im.convert("P")
    pal.info["transparency"] = 0
    pal.save(p, transparency=0)
  elif kind == "exif6":
    exif = im.getexif()
    exif[0x0112] = 6
    im.save(p, exif=exif)
  return p


@pytest.mark.parametrize("kind,code,pattern", [
    ("missing", 2, "no such"), ("empty", 2, "cannot read"), ("text", 2, "cannot read"),
    ("trunc_jpg", 2, "cannot read|truncated"), ("trunc_png", 2, "cannot read|truncated"),
    ("tiny1", 2, "32 px"), ("tiny31", 2, "32 px"),
    ("bad_ext", 0, None),  # read by content: a PNG named .xyz is still a PNG
    ("gray16", 0, None), ("cmyk", 0, None), ("rgba", 0, None), ("palette", 0, None),
    ("exif6", 0, "64x96 -> 48x96"),
])
def test_inputs_matrix(env, kind, code, pattern):
  d = case_dir(env, f"in_{kind}")
  src = _write_case(kind, d, env["photo"])
  before = snapshot(d)
  got, err = run(f"--input={src}", f"--output={d}/o.png", "--width_ratio=0.75", "--dry_run",
                 f"--vgg_weights={env['weights']}", *FAST)
  assert got == code, err
  if code:
    one_error(err, pattern)
  else:
    assert "Traceback" not in err and "error:" not in err, err
    if pattern:
      assert re.search(pattern, err), err
  assert snapshot(d) == before


@pytest.mark.parametrize("args,pattern", [
    (["--width_ratio=2.5"], r"\(0, 2\]"), (["--width_ratio=0"], r"\(0, 2\]"),
    (["--width_ratio=0.5", "--target_width=40"], "not both"), ([], "give the output size"),
    (["--target_width=20"], "32 px"), (["--width_ratio=0.8", "--init=bogus"], "init"),
    (["--width_ratio=0.8", "--seam_style=bogus"], "seam_style"),
    (["--width_ratio=0.8", "--crop_shares=0.5,bogus"], "crop_shares"),
    (["--width_ratio=0.8", "--crop_shares=0.5,0.5"], "crop_shares"),
    (["--width_ratio=0.8", "--warp_power=-1"], "warp_power"),
    (["--width_ratio=0.8", "--warp_power=100"], "warp_power"),
    (["--width_ratio=0.8", "--layers=block9_conv9"], "unknown vgg19 layer"),
    (["--width_ratio=0.8", "--output={d}/o.xyz"], "unknown image file extension"),
])
def test_flag_matrix(env, args, pattern, capsys):
  d = case_dir(env, "flags_" + re.sub(r"\W", "_", "".join(args)))
  src = photo_file(env, d)
  code, err = run_in_process(capsys, f"--input={src}", f"--output={d}/o.png",
                             *[a.format(d=d) for a in args], f"--vgg_weights={env['weights']}",
                             *FAST)
  assert code == 2, err
  one_error(err, pattern)
  assert not (d / "o.png").exists()


def test_folder_batch_goes_on_after_a_bad_file(env):
  d = case_dir(env, "batch")
  src = d / "in"
  src.mkdir()
  photo_file(env, src, "a.png")
  (src / "b.png").write_bytes(b"not an image")
  photo_file(env, src, "c.png")
  code, err = run(f"--input={src}", f"--output={d}/out", "--target_width=80",
                  f"--vgg_weights={env['weights']}", f"--report={d}/r.json", *FAST)
  assert code == 2
  assert "Traceback" not in err
  assert sorted(p.name for p in (d / "out").iterdir()) == ["a.png", "c.png"]
  report = json.loads((d / "r.json").read_text())
  status = {pathlib.Path(e["input"]).name: e["status"] for e in report}
  assert status == {"a.png": "ok", "b.png": "error", "c.png": "ok"}
  assert "1 of 3 images failed" in err

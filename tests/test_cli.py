"""The command line as a user runs it (subprocesses; random-init weights for speed)."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from dnr_jax.nn import weights as weights_lib


@pytest.fixture(scope="module")
def setup(tmp_path_factory, random_weights, small_photo):
  d = tmp_path_factory.mktemp("cli")
  wpath = d / "random_vgg19.npz"
  weights_lib.save_npz(random_weights, wpath, {"source": "random init for tests"})
  img = d / "photo.png"
  Image.fromarray(small_photo).save(img)
  return d, wpath, img


def run(*args):
  proc = subprocess.run([sys.executable, "-m", "dnr_jax.main", *args], capture_output=True,
                        text=True, timeout=600)
  return proc.returncode, proc.stdout, proc.stderr


def _error_lines(stderr):
  return [l for l in stderr.splitlines() if "error" in l.lower()]


def test_flagfile_run_writes_output_report_and_debug(setup):
  d, wpath, img = setup
  flagfile = d / "job.flags"
  flagfile.write_text(f"--input={img}\n--output={d}/out.png\n--width_ratio=0.75\n"
                      f"--vgg_weights={wpath}\n--steps=3\n--chunk=3\n--refine_steps=2\n"
                      f"--save_debug\n--report={d}/report.json\n--noprogress\n"
                      "--crop_shares=\n")  # (empty: the paper's seams and warp)
  code, _, err = run(f"--flagfile={flagfile}")
  assert code == 0, err
  first = err.splitlines()[0]
  assert re.match(r"dnr_jax: photo.png 96x64 -> 72x64, working at full size; expected ~[\d.]+ s "
                  r"\(incl. ~[\d.]+ s compiling a new size\), peak memory ~[\d.]+ GiB host", first), err
  out = np.asarray(Image.open(d / "out.png"))
  assert out.shape == (64, 72, 3)
  report = json.loads((d / "report.json").read_text())
  assert report["output_size"] == {"height": 64, "width": 72}
  assert len(report["losses"]["reconstruction"]) == 3
  assert report["seams_removed"]["width"]["block5_pool"] >= 1
  assert report["cropped"] == {"width": {"kept_from": 0, "kept_to": 96, "cropped_px": 0}}
  assert report["operator"] == "seams+warp" and report["operator_merits"] == {}
  assert 0 < report["scores"]["semantic_score_block5_conv1"]
  assert isinstance(report["scores"]["human_preference"], float)
  for name in ("importance", "seams_width", "targets", "stages", "loss"):
    assert (d / f"out_{name}.png").is_file(), name


@pytest.mark.slow
def test_the_audition_names_the_chosen_operator_in_the_report(setup):
  """The default: the crop shares auditioned, the merit of each in the report, the
  highest chosen, no Eq. 4; without a report nothing is scored."""
  d, wpath, img = setup
  code, _, err = run(f"--input={img}", f"--output={d}/dflt.png", "--width_ratio=0.5",
                     f"--vgg_weights={wpath}", "--noprogress", f"--report={d}/dflt.json")
  assert code == 0, err
  report = json.loads((d / "dflt.json").read_text())
  merits, parts = report["operator_merits"], report["operator_merit_parts"]
  assert list(merits) == ["warp", "crop25+warp", "crop50+warp", "crop75+warp",
                          "crop90+warp", "crop"]
  assert set(parts) == {"squeeze", "lost"} and set(parts["lost"]) == set(merits)
  assert report["operator"] == max(merits, key=merits.get)
  assert report["losses"]["reconstruction"] == [] and report["plan"][0][
      "reconstruction_steps"] == 0
  assert np.asarray(Image.open(d / "dflt.png")).shape == (64, 48, 3)


@pytest.mark.slow
def test_folder_input(setup):
  d, wpath, img = setup
  folder = d / "many"
  folder.mkdir()
  for k in range(2):
    Image.open(img).save(folder / f"p{k}.jpg")
  code, _, err = run(f"--input={folder}", f"--output={d}/many_out", "--target_width=80",
                     f"--vgg_weights={wpath}", "--steps=1", "--chunk=1", "--noprogress")
  assert code == 0, err
  assert sorted(p.name for p in (d / "many_out").iterdir()) == ["p0.png", "p1.png"]


@pytest.mark.parametrize("args,code,match", [
    (["--input=/nonexistent.png", "--width_ratio=0.5"], 2, "no such"),
    (["--input={img}"], 2, "give the output size"),
    (["--input={img}", "--width_ratio=0.5", "--target_width=40"], 2, "not both"),
    (["--input={img}", "--width_ratio=2.5"], 2, "\\(0, 2\\]"),
    (["--input={img}", "--target_width=200"], 2, "more than 2x"),
    (["--input={img}", "--target_width=20"], 2, "32 px"),
    (["--input={img}", "--width_ratio=0.8", "--init=bogus"], 2, "init"),
    (["--input={img}", "--width_ratio=0.8", "--no_such_flag"], 2, "no_such_flag"),
    (["--input={img}", "--width_ratio=0.8", "--vgg_weights={bad}"], 3, "bad.npz|weights"),
    (["--input={junk}", "--width_ratio=0.8"], 2, "cannot read"),
])
def test_user_errors_are_one_clear_line(setup, args, code, match):
  d, _, img = setup
  bad = d / "bad.npz"
  bad.write_bytes(b"corrupt")
  junk = d / "junk.png"
  junk.write_bytes(b"nope")
  args = [a.format(img=img, bad=bad, junk=junk) for a in args]
  got, _, err = run(*args, "--noprogress")
  assert got == code, err
  lines = _error_lines(err)
  assert len(lines) == 1, err
  assert re.search(match, lines[0]), lines[0]


@pytest.mark.slow
def test_large_input_runs_at_the_working_size_and_is_delivered_full_size(setup):
  d, wpath, _ = setup
  big = d / "big.png"
  small = Image.open(d / "photo.png")
  small.resize((192, 128), Image.LANCZOS).save(big)
  code, _, err = run(f"--input={big}", f"--output={d}/big_out.png", "--width_ratio=0.75",
                     "--work_size=64", f"--vgg_weights={wpath}", "--steps=2", "--chunk=2",
                     "--noprogress", f"--report={d}/big.json")
  assert code == 0, err
  assert "working size 64x43 -> 48x43" in err
  assert np.asarray(Image.open(d / "big_out.png")).shape == (128, 144, 3)
  report = json.loads((d / "big.json").read_text())
  assert report["work_size"] == {"height": 43, "width": 64}
  assert report["estimate"]["total_s"] > 0 and "full resolution" in report["timings_s"]

"""The web app: the engine in process (sizes, painted masks, the preview, the result,
cancel, metadata), the page through Gradio's own client, and the page in a real
headless Chromium (marked ``browser``; skipped with the reason when Chromium and its
driver are not installed: ``apt-get install chromium chromium-driver``)."""

from __future__ import annotations

import os
import pathlib
import shutil
import socket
import threading

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from dnr_jax import config  # noqa: E402
from dnr_jax.io import compilation  # noqa: E402
from dnr_jax.io import image_io  # noqa: E402
from dnr_jax.ops import column_maps  # noqa: E402
from dnr_jax.web import engine as engine_lib  # noqa: E402

FAST = config.RetargetConfig(reconstruction=config.ReconstructionConfig(steps=4))


@pytest.fixture(scope="module")
def engine(random_weights):
  return engine_lib.Engine(random_weights, FAST)


def test_sizes_follow_percentages_or_one_side_of_an_aspect():
  assert engine_lib.target_hw((400, 600), 75, 100) == (400, 450)
  assert engine_lib.target_hw((400, 600), 100, 50.4) == (202, 600)
  assert engine_lib.target_hw((400, 600), 10, 10, "1:1") == (400, 400)  # narrower: width
  assert engine_lib.target_hw((400, 600), 10, 10, "16:9") == (338, 600)  # wider: height
  assert engine_lib.target_hw((720, 1280), 100, 100, "9:16") == (720, 405)


def test_painted_layers_become_keep_and_remove_masks():
  layer = np.zeros((40, 60, 4), np.uint8)
  layer[5:10, 5:20] = (0, 200, 83, 255)  # the keep brush
  layer[20:30, 30:40] = (255, 23, 68, 255)  # the remove brush
  layer[35:38, 0:5] = (10, 190, 90, 128)  # anti-aliased edge of a keep stroke
  keep, remove = engine_lib.masks_from_layers([layer], (40, 60))
  assert keep.sum() == 5 * 15 + 3 * 5 and keep[7, 10] and not keep[25, 35]
  assert remove.sum() == 100 and remove[25, 35]
  keep2, _ = engine_lib.masks_from_layers([layer[::2, ::2]], (40, 60))  # a scaled canvas
  assert keep2[7, 10] and keep2.shape == (40, 60)
  assert engine_lib.masks_from_layers([], (40, 60)) == (None, None)


@pytest.mark.parametrize("width_out", [30.0, 57.5, 90.0])
def test_the_previews_cell_widths_are_eq3s(width_out):
  mu = np.random.default_rng(0).uniform(0.2, 3.0, 12).astype(np.float32)
  ref = column_maps.warp_cell_widths(jnp.asarray(mu), 100.0, width_out, min_scale=0.4,
                                     power=2.0)
  ours = engine_lib.shrink_cell_widths(mu, 100.0, width_out, 0.4, 2.0)
  np.testing.assert_allclose(ours, np.asarray(ref), rtol=1e-4, atol=1e-3)
  np.testing.assert_allclose(engine_lib.warp_coords(ours, 100, 64),
                             np.asarray(column_maps.warp_coords(jnp.asarray(ours), 100, 64)),
                             atol=1e-3)


def test_a_slider_move_needs_no_compilation(engine, photo):
  engine.preview(photo, (400, 450))  # the photo's importance, once per axis:
  engine.preview(photo, (300, 600))  # narrower changes the width, wider the height
  with compilation.CompileCounter() as counter:
    outs = [engine.preview(photo, (400, w)) for w in (300, 333, 420, 599)]
    wide = [engine.preview(photo, hw) for hw in ((400, 700), (250, 600), (380, 610))]
  assert counter.stats.requests == 0, counter.stats
  assert [o.shape for o in outs] == [(400, w, 3) for w in (300, 333, 420, 599)]
  assert [o.shape[:2] for o in wide] == [(400, 700), (250, 600), (380, 610)]


@pytest.mark.slow  # the browser test paints a keep stroke and checks it end to end
def test_the_full_result_holds_the_painted_keep_region(engine, small_photo):
  keep = np.zeros(small_photo.shape[:2], bool)
  keep[20:44, 30:50] = True
  out = engine.retarget(small_photo, (64, 64), keep=keep)
  res = out.result
  assert res.output.shape == (64, 64, 3)
  assert out.report["masks"]["keep_pixels"] == keep.sum()
  assert res.keep_held is not None and res.keep_held > 0.99
  assert "Keep mask: 480 px painted" in out.summary
  assert {"importance", "seams_width", "masks"} <= set(out.overlays)
  cmp = engine.compare(small_photo, (64, 64))
  assert {k: v.shape for k, v in cmp.items()} == {"linear scaling": (64, 64, 3),
                                                  "seam carving": (64, 64, 3)}


def test_cancel_stops_the_job_at_its_next_report(engine, small_photo):
  cancel = threading.Event()
  seen = []

  def progress(phase, fraction):
    seen.append(phase)
    cancel.set()  # the user presses Cancel while the first phase runs

  with pytest.raises(engine_lib.Cancelled):
    engine.retarget(small_photo, (64, 72), progress=progress, cancel=cancel)
  assert len(seen) == 1
  assert not engine.lock.locked()


def test_the_download_keeps_the_photos_exif_and_colour_profile(engine, small_photo,
                                                               tmp_path):
  src = tmp_path / "camera.jpg"
  exif = Image.Exif()
  exif[0x010F] = "TestCam"  # Make
  exif[0x0112] = 6  # rotated: the pixels we write are upright, so it must become 1
  icc = b"\x00" * 128  # any profile bytes travel unchanged
  Image.fromarray(small_photo).save(src, exif=exif, icc_profile=icc)
  path = engine.save(small_photo[:, :72], src, tmp_path, "out.jpg")
  with Image.open(path) as im:
    assert im.getexif()[0x010F] == "TestCam" and im.getexif()[0x0112] == 1
    assert im.info["icc_profile"] == icc and im.size == (72, 64)


def test_uploads_over_max_pixels_are_refused_before_decoding(random_weights, tmp_path):
  big = tmp_path / "big.png"
  Image.new("RGB", (300, 200)).save(big)
  small_engine = engine_lib.Engine(random_weights, FAST, max_pixels=10_000)
  with pytest.raises(image_io.ImageError, match="above --max_pixels"):
    small_engine.load(big)


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(random_weights, small_photo, tmp_path_factory):
  from dnr_jax.web import page  # pylint: disable=g-import-not-at-top
  folder = tmp_path_factory.mktemp("web")
  sample = folder / "sample.png"
  Image.fromarray(np.asarray(Image.fromarray(small_photo).resize((144, 96)))).save(sample)
  eng = engine_lib.Engine(random_weights, FAST)
  demo = page.build(eng, sample, folder / "results")
  demo.queue(default_concurrency_limit=1)
  port = _free_port()
  demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True,
              quiet=True, theme=page.theme(), footer_links=[])
  yield {"url": f"http://127.0.0.1:{port}/", "sample": sample}
  demo.close()


def test_the_page_serves_nothing_from_the_internet_and_answers_its_client(server):
  from gradio_client import Client  # pylint: disable=g-import-not-at-top
  import httpx  # pylint: disable=g-import-not-at-top
  html = httpx.get(server["url"]).text
  assert "fonts.googleapis.com" not in html and "<script src=\"http" not in html
  client = Client(server["url"], verbose=False)
  size, width_px, height_px, preview = client.predict(75, 100, "free",
                                                      api_name="/on_sample")[1:]
  assert "144x96 -> **108x96**" in size and (width_px, height_px) == (108, 96)
  assert Image.open(preview).size == (108, 96)
  before_after, gallery, overlays, summary, files = client.predict(
      None, 75, 100, "1:1", api_name="/on_resize")
  assert "144x96 -> 96x96" in summary
  names = sorted(pathlib.Path(f).name for f in files)
  assert names == ["sample_96x96.json", "sample_96x96.png"]
  assert len(gallery) == 3 and all(Image.open(g["image"]).size == (96, 96) for g in gallery)
  bad = pathlib.Path(server["sample"]).with_name("notes.png")
  bad.write_bytes(b"not an image at all")
  from gradio_client import handle_file  # pylint: disable=g-import-not-at-top
  from gradio_client import exceptions  # pylint: disable=g-import-not-at-top
  with pytest.raises(exceptions.AppError, match="notes.png: cannot read image") as e:
    client.predict(handle_file(str(bad)), 75, 100, "free", api_name="/on_upload")
  assert "Traceback" not in str(e.value) and str(bad.parent) not in str(e.value)


def _chromium():
  for browser, driver in (("chromium", "chromedriver"), ("chromium-browser", "chromedriver")):
    b, d = shutil.which(browser), shutil.which(driver)
    if b and d:
      return b, d
  return None


@pytest.mark.browser
def test_in_chromium_upload_size_paint_keep_and_resize(server, tmp_path):
  found = _chromium()
  if not found:
    pytest.skip("no Chromium and chromedriver (apt-get install chromium chromium-driver)")
  webdriver = pytest.importorskip("selenium.webdriver")
  from selenium.webdriver.chrome.service import Service  # pylint: disable=g-import-not-at-top
  from selenium.webdriver.common.action_chains import ActionChains  # pylint: disable=g-import-not-at-top
  from selenium.webdriver.common.by import By  # pylint: disable=g-import-not-at-top
  from selenium.webdriver.common.keys import Keys  # pylint: disable=g-import-not-at-top
  from selenium.webdriver.support.ui import WebDriverWait  # pylint: disable=g-import-not-at-top
  options = webdriver.ChromeOptions()
  options.binary_location = found[0]
  for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
              "--window-size=1400,1700"):
    options.add_argument(arg)
  d = webdriver.Chrome(service=Service(found[1]), options=options)
  try:
    css = lambda q: d.find_element(By.CSS_SELECTOR, q)  # noqa: E731
    d.get(server["url"])
    WebDriverWait(d, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR,
                                                         "#upload input[type=file]"))
    css("#upload input[type=file]").send_keys(str(server["sample"]))
    WebDriverWait(d, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#preview img"))
    canvas = d.find_elements(By.CSS_SELECTOR, "#editor canvas")[-1]
    # a keep stroke (the default brush) across the middle of the photo
    ActionChains(d).move_to_element_with_offset(canvas, -30, 0).click_and_hold() \
        .move_by_offset(20, 0).move_by_offset(20, 0).move_by_offset(20, 0).release().perform()
    width = css("#width_px input")
    width.clear()
    width.send_keys("100", Keys.ENTER)
    WebDriverWait(d, 30).until(lambda d: "**100x96**" in css("#size").get_attribute(
        "innerHTML").replace("<strong>", "**").replace("</strong>", "**"))
    css("#resize").click()
    WebDriverWait(d, 240).until(lambda d: "->" in css("#summary").text)
    text = css("#summary").text
    d.save_screenshot(str(tmp_path / "page.png"))
  finally:
    d.quit()
  assert "144x96 -> 100x96" in text, text
  held = float(text.split("px painted, ")[1].split("%")[0])
  assert held > 99.0, text  # the painted region was kept
  shots = os.environ.get("DNR_JAX_SCREENSHOTS")
  if shots:  # docs/web/: the README's screenshot comes from here
    shutil.copy(tmp_path / "page.png", pathlib.Path(shots) / "page.png")


def test_the_server_starts_on_localhost_and_ctrl_c_stops_it_cleanly(random_weights, tmp_path):
  import signal  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  import httpx  # pylint: disable=g-import-not-at-top
  from dnr_jax.nn import weights as weights_lib  # pylint: disable=g-import-not-at-top
  wfile = tmp_path / "w.npz"
  weights_lib.save_npz(random_weights, wfile, {"source": "random init for tests"})
  base = [sys.executable, "-m", "dnr_jax.web", f"--vgg_weights={wfile}", "--compilation_cache="]
  bad = subprocess.run(base + ["--port=0"], capture_output=True, text=True, timeout=120)
  assert bad.returncode == 2 and bad.stderr.strip().endswith("--port must be 1-65535, got 0")
  port = _free_port()
  env = {**os.environ, "TMPDIR": str(tmp_path)}
  proc = subprocess.Popen(base + [f"--port={port}"], stderr=subprocess.PIPE, text=True, env=env)
  try:
    for line in proc.stderr:
      if "serving on" in line:
        break
    assert line.strip() == f"dnr_jax.web: serving on http://127.0.0.1:{port} (Ctrl-C stops)"
    assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 200
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("dnr_jax_web_")]
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 130
  finally:
    proc.kill()
  assert "stopped" in rest and "Traceback" not in rest, rest
  assert not [p.name for p in tmp_path.iterdir() if p.name.startswith("dnr_jax_web_")]

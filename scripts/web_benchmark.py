"""The web app in headless Chromium with the real weights: the time from a size change
to its preview and to the full result (warm: each measured after one untimed run), and
the screenshots for docs/web/ and the README.

Needs Chromium and its driver (``apt-get install chromium chromium-driver``) and the
``test`` extra (Selenium). The photo is the bundled one scaled to 640x480.

    python scripts/web_benchmark.py [--repeats=5] [--photo=P]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import socket
import statistics
import tempfile
import time

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import jax  # noqa: E402
from PIL import Image  # noqa: E402
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from dnr_jax.io import image_io  # noqa: E402
from dnr_jax.nn import weights as weights_lib  # noqa: E402
from dnr_jax.web import engine as engine_lib  # noqa: E402
from dnr_jax.web import page  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--repeats", type=int, default=5)
  ap.add_argument("--photo", default=str(image_io.sample_image_path()))
  args = ap.parse_args()
  tmp = pathlib.Path(tempfile.mkdtemp())
  photo = tmp / "photo.png"
  Image.fromarray(image_io.load_image(args.photo)).resize((640, 480), Image.LANCZOS).save(photo)
  demo = page.build(engine_lib.Engine(weights_lib.load_vgg19()), None, tmp / "results")
  demo.queue(default_concurrency_limit=1)
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
              theme=page.theme(), footer_links=[])
  options = webdriver.ChromeOptions()
  options.binary_location = "/usr/bin/chromium"
  for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1700"):
    options.add_argument(a)
  d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
  css = lambda q: d.find_element(By.CSS_SELECTOR, q)  # noqa: E731
  try:
    d.get(f"http://127.0.0.1:{port}/")
    WebDriverWait(d, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#upload input[type=file]"))
    t0 = time.perf_counter()
    css("#upload input[type=file]").send_keys(str(photo))
    WebDriverWait(d, 120).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#preview img"))
    first_preview = time.perf_counter() - t0

    def preview_after(width):
      old = css("#preview img").get_attribute("src")
      box = css("#width_px input")
      box.clear()
      t = time.perf_counter()
      box.send_keys(str(width), Keys.ENTER)
      WebDriverWait(d, 60).until(lambda d: css("#preview img").get_attribute("src") != old)
      return time.perf_counter() - t

    previews = [preview_after(w) for w in [500, 470, 440, 410, 380, 350, 320][:args.repeats + 1]]

    def full_result():
      before = css("#summary").text
      t = time.perf_counter()
      css("#resize").click()
      WebDriverWait(d, 600).until(  # the progress overlay shows first; then the summary
          lambda d: "-> 480x480" in css("#summary").text.split("\n")[0]
          and css("#summary").text != before)
      return time.perf_counter() - t

    preview_after(480)
    plain = [full_result() for _ in range(2)]  # no mask: the audition; the first compiles
    canvas = d.find_elements(By.CSS_SELECTOR, "#editor canvas")[-1]
    ActionChains(d).move_to_element_with_offset(canvas, -60, 10).click_and_hold() \
        .move_by_offset(40, 0).move_by_offset(40, 0).release().perform()
    fulls = [full_result() for _ in range(2)]  # a keep stroke: the seams and Eq. 4
    time.sleep(2)
    out = ROOT / "docs" / "web"
    out.mkdir(parents=True, exist_ok=True)
    d.save_screenshot(str(out / "page.png"))
    d.execute_script("document.querySelector('#compare').scrollIntoView()")
    time.sleep(1)
    d.save_screenshot(str(out / "compare.png"))
    summary = css("#summary").text
  finally:
    d.quit()
    demo.close()
  warm = previews[1:]
  print(f"{jax.default_backend()}, 640x480 photo")
  print(f"upload to the first preview (VGG importance): {first_preview:.2f} s")
  print(f"size change to its preview, warm: median {statistics.median(warm):.2f} s, "
        f"min {min(warm):.2f}, max {max(warm):.2f} (n={len(warm)})")
  print(f"full result 640x480 -> 480x480, no mask: first {plain[0]:.1f} s (compiles), "
        f"warm {plain[1]:.1f} s")
  print(f"full result 640x480 -> 480x480 with a keep stroke: first {fulls[0]:.1f} s "
        f"(compiles), warm {fulls[1]:.1f} s")
  print(summary)
  os._exit(0)  # pylint: disable=protected-access  (the server's threads need no teardown)


if __name__ == "__main__":
  main()

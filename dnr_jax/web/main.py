"""``python -m dnr_jax.web``: the local web app (Gradio) on 127.0.0.1.

One process keeps the weights and the compiled programs warm for every request and
shares the persistent compilation cache with the CLI. Offline: analytics and update
checks off, the theme on system fonts. Uploads and results live in a temporary folder
removed when the server stops; Ctrl-C (or SIGTERM) stops it cleanly (exit 130).
"""

from __future__ import annotations

import logging as std_logging
import os
import pathlib
import shutil
import signal
import sys
import tempfile
import time

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported

from absl import app  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position

from dnr_jax.cli import job as job_lib  # noqa: E402  pylint: disable=wrong-import-position
from dnr_jax.io import compilation  # noqa: E402  pylint: disable=wrong-import-position
from dnr_jax.io import image_io  # noqa: E402  pylint: disable=wrong-import-position
from dnr_jax.nn import weights as weights_lib  # noqa: E402  pylint: disable=wrong-import-position

FLAGS = flags.FLAGS
flags.DEFINE_string("host", "127.0.0.1", "Address to listen on (127.0.0.1: this machine "
                    "only; 0.0.0.0 exposes the app to the network).")
flags.DEFINE_integer("port", 7860, "Port to listen on.")
flags.DEFINE_integer("max_pixels", image_io.DEFAULT_MAX_PIXELS,
                     "Uploads above this many pixels are refused before decoding.")
flags.DEFINE_string("vgg_weights", None, "VGG19 weights file (default: the converted "
                    "ImageNet weights, as for the CLI).")
flags.DEFINE_string("compilation_cache", str(compilation.default_cache_dir()),
                    "Persistent XLA compilation cache shared with the CLI ('' = off).")


def _terminate(signum, frame):
  del signum, frame
  raise KeyboardInterrupt


def serve(weights, host: str, port: int, max_pixels: int, block: bool = True):
  """Starts the app; returns the Blocks (``block=False``: running in the background)."""
  from dnr_jax.web import engine as engine_lib  # pylint: disable=g-import-not-at-top
  from dnr_jax.web import page  # pylint: disable=g-import-not-at-top
  engine = engine_lib.Engine(weights, max_pixels=max_pixels)
  demo = page.build(engine, image_io.sample_image_path())
  demo.queue(default_concurrency_limit=1, max_size=32)
  demo.launch(server_name=host, server_port=port, theme=page.theme(), share=False,
              prevent_thread_lock=True, quiet=True, show_error=False,
              max_file_size=200 * 1024 * 1024, footer_links=[])
  print(f"dnr_jax.web: serving on http://{host}:{port} (Ctrl-C stops)", file=sys.stderr,
        flush=True)
  if block:
    try:
      while True:
        time.sleep(0.5)
    finally:
      demo.close()
  return demo


def main(argv):
  if len(argv) > 1:
    job_lib.error_line(f"unexpected arguments: {' '.join(argv[1:])}")
    sys.exit(job_lib.EXIT_USAGE)
  if not 0 < FLAGS.port < 65536:
    job_lib.error_line(f"--port must be 1-65535, got {FLAGS.port}")
    sys.exit(job_lib.EXIT_USAGE)
  try:
    weights = weights_lib.load_vgg19(FLAGS.vgg_weights)
  except weights_lib.WeightsError as e:
    job_lib.error_line(str(e))
    sys.exit(job_lib.EXIT_WEIGHTS)
  if FLAGS.compilation_cache:
    try:
      compilation.enable_persistent_cache(FLAGS.compilation_cache)
    except OSError:
      pass
  std_logging.getLogger("httpx").setLevel(std_logging.WARNING)  # a line per request
  temp = pathlib.Path(tempfile.mkdtemp(prefix="dnr_jax_web_"))
  os.environ["GRADIO_TEMP_DIR"] = str(temp)  # uploads and results: removed at the end
  tempfile.tempdir = str(temp)
  try:
    serve(weights, FLAGS.host, FLAGS.port, FLAGS.max_pixels)
  except KeyboardInterrupt:
    print("\ndnr_jax.web: stopped", file=sys.stderr)
    sys.exit(job_lib.EXIT_INTERRUPTED)
  except OSError as e:  # the port is taken, the address is not ours
    job_lib.error_line(f"cannot serve on {FLAGS.host}:{FLAGS.port} ({e})")
    sys.exit(job_lib.EXIT_USAGE)
  finally:
    shutil.rmtree(temp, ignore_errors=True)


def run_main():
  signal.signal(signal.SIGINT, signal.default_int_handler)
  signal.signal(signal.SIGTERM, _terminate)
  app.run(main)


if __name__ == "__main__":
  run_main()

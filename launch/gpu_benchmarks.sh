#!/usr/bin/env bash
# One accelerator, one call: the performance issue's GPU measurements
# (docs/performance.md), in about 10 minutes on one H100.
#
#   bash launch/gpu_benchmarks.sh OUT
#
# OUT receives
# - benchmark_deterministic.json: launch.benchmark as the launchers run it
#   (XLA_FLAGS=--xla_gpu_deterministic_ops=true, xfer_jax/engine/runtime.py), with a
#   jax.profiler trace of each training row under OUT/profile and its op
#   families in the JSON ("profile");
# - benchmark_fast.json: the same with XLA_FLAGS=--xla_gpu_deterministic_ops=false.
#   The two rows' windows/s give deterministic ops' speed cost;
# - benchmark_unfold.json: deterministic ops, convolutions as matrix products
#   (--config.runtime.conv=unfold): against benchmark_deterministic.json, whether the
#   seed axis as a batch dimension beats vmap's grouped convolutions on this GPU
#   (docs/performance.md#convolutions-as-matrix-products);
# - log.txt.
# Overrides: BENCH_CONFIG (configs/paper.py), BENCH_SEEDS (8,64), BENCH_STEPS (16),
# BENCH_SECONDS (240 per run), BENCH_ARGS (more launch.benchmark flags).
set -u -o pipefail
out=${1:?usage: gpu_benchmarks.sh OUT}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
exec > >(tee -a "$out/log.txt") 2>&1

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
args=(--config="${BENCH_CONFIG:-configs/paper.py}" --seeds="${BENCH_SEEDS:-8,64}"
      --steps="${BENCH_STEPS:-16}" --json)
for mode in deterministic fast unfold; do
  echo "== benchmark, $mode ($((SECONDS))s)"
  flag=$([ "$mode" = fast ] && echo false || echo true)
  extra=$([ "$mode" = deterministic ] && echo "--profile_dir=$out/profile")
  [ "$mode" = unfold ] && extra="--config.runtime.conv=unfold"
  # shellcheck disable=SC2086  # BENCH_ARGS and extra are lists of flags
  XLA_FLAGS="--xla_gpu_deterministic_ops=$flag" timeout "${BENCH_SECONDS:-240}" \
    python3 -m launch.benchmark "${args[@]}" $extra ${BENCH_ARGS:-} \
    > "$out/benchmark_$mode.json" || echo "benchmark ($mode) stopped: exit $?"
done
echo "== done ($((SECONDS))s)"

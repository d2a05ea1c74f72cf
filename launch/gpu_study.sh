#!/usr/bin/env bash
# One accelerator, one call: the benchmark's GPU numbers (docs/performance.md) and
# the real-data grid (configs/real.py, docs/results/real/), bounded in time.
#
#   bash launch/gpu_study.sh OUT DATA_DIR [SECONDS]
#
# OUT receives benchmark.json, results.jsonl, sweep_meta.tgz (sweep.json and the
# source models' metrics) and log.txt. SECONDS (default 3600) bounds the whole
# script: the sweep is resumable, so running the script again with the same
# WORKDIR continues where it stopped. Then, on any machine:
#   python -m launch.report --results=OUT/results.jsonl --out=OUT   # OUT/report/
# Overrides: CONFIG (configs/real.py), BENCH_CONFIG (configs/paper.py),
# BENCH_SEEDS (8,64), BENCH_SECONDS (240; 0 skips the benchmark), WORKDIR (runs/gpu_study),
# SWEEP_ARGS (extra flags for launch.sweep, e.g. "--config.model.bn_momentum=0.9"),
# TASKS (1): sweep processes sharing the device, one --task_index slice each. A
# cell keeps the card under 1 % busy (docs/performance.md), so several processes
# fill it better; a process whose next source another is training runs other
# cells meanwhile.
set -u -o pipefail
out=${1:?usage: gpu_study.sh OUT DATA_DIR [SECONDS]}
data=${2:?usage: gpu_study.sh OUT DATA_DIR [SECONDS]}
budget=${3:-3600}
config=${CONFIG:-configs/real.py}
workdir=${WORKDIR:-runs/gpu_study}
mkdir -p "$out" "$workdir"
export XFER_JAX_COMPILATION_CACHE=${XFER_JAX_COMPILATION_CACHE:-$workdir/jax_cache}
export PYTHONUNBUFFERED=1
exec > >(tee -a "$out/log.txt") 2>&1

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import jax, flax, optax, orbax.checkpoint; \
print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, jax.devices())"

# The datasets are windowed on the CPU (JAX_PLATFORMS=cpu: no second process on
# the GPU) while the benchmark runs; the sweep then reads them from the cache.
JAX_PLATFORMS=cpu python3 -m launch.prepare --config="$config" --config.data.data_dir="$data" \
  > "$workdir/prepare.log" 2>&1 &
prepare=$!
if [ "${BENCH_SECONDS:-240}" != 0 ]; then
  echo "== benchmark ($((SECONDS))s)"
  timeout "${BENCH_SECONDS:-240}" python3 -m launch.benchmark --config="${BENCH_CONFIG:-configs/paper.py}" \
    --seeds="${BENCH_SEEDS:-8,64}" --steps=16 --eval_windows=8192 --cell_size=1600 --json \
    > "$out/benchmark.json" || echo "benchmark stopped: exit $?"
fi
wait "$prepare" || echo "prepare failed: exit $?"
tail -n 6 "$workdir/prepare.log"

left=$((budget - SECONDS - 20))
tasks=${TASKS:-1}
echo "== sweep in $tasks process(es) ($((SECONDS))s, ${left}s left)"
# without preallocation each process takes only the memory it uses
[ "$tasks" -gt 1 ] && export XLA_PYTHON_CLIENT_PREALLOCATE=false
for ((i = 0; i < tasks; i++)); do
  # shellcheck disable=SC2086  # SWEEP_ARGS is a list of flags
  timeout "$left" python3 -m launch.sweep --config="$config" --config.data.data_dir="$data" \
    --workdir="$workdir/sweep" --task_index="$i" --num_tasks="$tasks" ${SWEEP_ARGS:-} \
    > "$workdir/sweep.task$i.log" 2>&1 &
done
for ((i = 0; i < tasks; i++)); do
  wait -n || echo "a sweep process stopped: exit $?"
done
tail -n 4 "$workdir"/sweep.task*.log
cp "$workdir"/sweep/results*.jsonl "$out"/ 2>/dev/null
tar czf "$out/sweep_meta.tgz" -C "$workdir/sweep" sweep.json $(cd "$workdir/sweep" && ls sources/*/metrics.jsonl sources/*/result.json 2>/dev/null)
echo "== done ($((SECONDS))s): $(cat "$out"/results*.jsonl 2>/dev/null | wc -l) records"

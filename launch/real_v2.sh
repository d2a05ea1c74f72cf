#!/usr/bin/env bash
# The second real-data study (configs/real_v2.py): every strategy's grid in turn,
# in ROOT/<strategy>/, sharing the source models in ROOT/sources/. Resumable: run it
# again with the same ROOT and it continues where it stopped (recorded cells are
# skipped, a source model resumes from its checkpoint).
#
#   bash launch/real_v2.sh ROOT DATA_DIR [STRATEGY ...]
#
# Then: python -m launch.study --root=ROOT --out=docs/results/real_v2 --publish
#
# VARIANT=full runs configs/real_v2.py:STRATEGY,full instead (every target and
# source, sizes up to each target's own train split: for a GPU), in one pass;
# SWEEP_ARGS adds flags to every launch.sweep call (e.g. "--local_tasks=4" to share
# one GPU between four processes).
set -u -o pipefail
root=${1:?usage: real_v2.sh ROOT DATA_DIR [STRATEGY ...]}
data=${2:?usage: real_v2.sh ROOT DATA_DIR [STRATEGY ...]}
shift 2
strategies=("$@")
if [ ${#strategies[@]} = 0 ]; then
  # the baseline first (no source needed), then the strategies by what they ask
  strategies=(baseline freeze finetune_all lp_ft discriminative temporal spectral)
fi
export PYTHONUNBUFFERED=1
# Two passes: every strategy's cells from WISDM first (one source model), then the
# rest (the leave-one-out pooled sources, one model per target): the single-source
# comparison is complete hours before the whole grid.
variant=${VARIANT:+,$VARIANT}
passes=(wisdm2019 all)
[ -z "$variant" ] || passes=(all)  # the full grid: no single-source pass first
for pass in "${passes[@]}"; do
  for strategy in "${strategies[@]}"; do
    echo "== $strategy, sources: $pass ($(date -u +%H:%M:%S))"
    only=()
    [ "$pass" = all ] || only=(--sources="$pass")
    # shellcheck disable=SC2086  # SWEEP_ARGS: several flags
    python -m launch.sweep --config="configs/real_v2.py:$strategy$variant" "${only[@]}" \
      --config.data.data_dir="$data" --workdir="$root/$strategy" --report=false \
      ${SWEEP_ARGS:-} || exit $?
  done
done

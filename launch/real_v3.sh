#!/usr/bin/env bash
# The third real-data study (configs/real_v3.py, design: docs/results/real_v3/README.md):
# every arm's grid in every fold, in ROOT/<arm>/<fold>/, each fold's source models in
# ROOT/sources/<fold>/. Resumable: run it again with the same ROOT and it continues
# where it stopped (recorded cells are skipped, a source model resumes from its
# checkpoint).
#
#   bash launch/real_v3.sh ROOT DATA_DIR [ARM ...]
#
# Then: python -m launch.study --root=ROOT --out=docs/results/real_v3 --publish
# The primary arms run first, fold by fold, so that every declared contrast has all
# its folds before any exploratory arm starts; SWEEP_ARGS adds flags to every
# launch.sweep call.
set -u -o pipefail
root=${1:?usage: real_v3.sh ROOT DATA_DIR [ARM ...]}
data=${2:?usage: real_v3.sh ROOT DATA_DIR [ARM ...]}
shift 2
arms=("$@")
if [ ${#arms[@]} = 0 ]; then
  arms=(baseline finetune_all finetune_all_random_head ssl_finetune_all
        freeze discriminative lp_ft spectral temporal)
fi
folds=$(python -c "from configs import real_v3; print(real_v3.FOLDS)")
export PYTHONUNBUFFERED=1
for arm in "${arms[@]}"; do
  for ((fold = 0; fold < folds; fold++)); do
    echo "== $arm, fold $fold ($(date -u +%H:%M:%S))"
    # shellcheck disable=SC2086  # SWEEP_ARGS: several flags
    python -m launch.sweep --config="configs/real_v3.py:$arm,fold=$fold" \
      --config.data.data_dir="$data" --workdir="$root/$arm/$fold" --report=false \
      ${SWEEP_ARGS:-} || exit $?
  done
done

#!/bin/bash
# The paper grid as a SLURM array job: 16 tasks, each one disjoint slice of the
# cells (launch.sweep reads SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT), then
# one report job once every task has finished.
#
#   sbatch launch/slurm_sweep.sh                       # submits the array and the report
#   CONFIG=configs/demo.py WORKDIR=runs/demo sbatch launch/slurm_sweep.sh
#
# Source models are trained once: the first task that needs one trains it under a
# file lock in WORKDIR/sources/ (WORKDIR must be on a filesystem all nodes share
# and that supports flock); the others run their other cells meanwhile, then read
# its checkpoint. A task that dies loses no finished cell; resubmit its index
# (sbatch --array=7 ...).
#SBATCH --job-name=xfer_sweep
#SBATCH --array=0-15
#SBATCH --cpus-per-task=8
#SBATCH --gres=gpu:1
#SBATCH --time=02:00:00
#SBATCH --output=%x-%A_%a.out
set -euo pipefail
CONFIG=${CONFIG:-configs/paper.py}
WORKDIR=${WORKDIR:-runs/paper}
DATA_DIR=${DATA_DIR:-data}

if [[ -z "${XFER_JAX_REPORT:-}" && "${SLURM_ARRAY_TASK_ID}" == "${SLURM_ARRAY_TASK_MIN:-0}" ]]; then
  # the first task also queues the report after the whole array
  XFER_JAX_REPORT=1 sbatch --dependency="afterany:${SLURM_ARRAY_JOB_ID}" --array=0 \
    --job-name=xfer_report --gres=none --time=00:20:00 "$0"
fi
if [[ -n "${XFER_JAX_REPORT:-}" ]]; then
  exec python -m launch.report --results="${WORKDIR}"
fi
exec python -m launch.sweep --config="${CONFIG}" --workdir="${WORKDIR}" \
  --config.data.data_dir="${DATA_DIR}"

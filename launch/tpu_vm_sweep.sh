#!/bin/bash
# The paper grid on N single-host Cloud TPU VMs, one disjoint slice each, then
# the report. Run it from a machine with gcloud; every VM needs this repository
# installed (pip install -e .) in REPO and the same shared WORKDIR mounted (a
# Filestore / NFS share: the first task to need a source model trains it under
# a file lock in WORKDIR/sources/; the others run their other cells meanwhile,
# then read it).
#
#   N=8 PREFIX=xfer ZONE=us-central2-b WORKDIR=/mnt/shared/runs/paper \
#     DATA_DIR=/mnt/shared/data bash launch/tpu_vm_sweep.sh
#
# Each VM's process uses all of its local TPU chips: the runner spreads a cell's
# seeds over them (xfer_jax/engine/devices.py). A VM that fails loses no finished cell:
# rerun its slice alone (the same command with its --task_index). Slices that
# overlap by mistake are reported as duplicates by launch/report.py.
set -euo pipefail
N=${N:?number of TPU VMs, named PREFIX-0 .. PREFIX-(N-1)}
PREFIX=${PREFIX:?TPU VM name prefix}
ZONE=${ZONE:?zone of the TPU VMs}
CONFIG=${CONFIG:-configs/paper.py}
WORKDIR=${WORKDIR:?a folder every VM mounts}
DATA_DIR=${DATA_DIR:?the datasets, on every VM}
REPO=${REPO:-xfer_jax}

for ((i = 0; i < N; i++)); do
  gcloud compute tpus tpu-vm ssh "${PREFIX}-${i}" --zone="${ZONE}" --command="cd ${REPO} && \
    python -m launch.sweep --config=${CONFIG} --workdir=${WORKDIR} \
      --config.data.data_dir=${DATA_DIR} --task_index=${i} --num_tasks=${N}" \
    > "sweep-${PREFIX}-${i}.log" 2>&1 &
done
wait  # every slice finished (or failed: see sweep-*.log and rerun that index)
gcloud compute tpus tpu-vm ssh "${PREFIX}-0" --zone="${ZONE}" \
  --command="cd ${REPO} && python -m launch.report --results=${WORKDIR}"

#!/usr/bin/env bash
# The phase-recognition study of docs/results/phase-recognition.md (Wanjura & Marquardt Fig. 2c, 2g):
# default settings (xyz sensor, whole triangle) for 10 seeds x 5000 steps, and the variants
# xz sensor, zz sensor and patch-trained for 5 seeds x 2000 steps each. Independent runs go
# side by side on the machine's cores, one compiled thread each.
# Usage: studies/phase_recognition.sh [OUT_DIR] [JOBS]   (default: runs/phase-recognition, nproc)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/phase-recognition}
jobs=${2:-$(nproc)}
mkdir -p "$out"
{
  for seed in 0 1 2 3 4 5 6 7 8 9; do
    echo "default-s$seed --set seed=$seed --set steps=5000"
  done
  for seed in 0 1 2 3 4; do
    echo "xz-s$seed --set seed=$seed --set steps=2000 --set couplings=xz"
    echo "zz-s$seed --set seed=$seed --set steps=2000 --set couplings=zz"
    # restricted training as in the authors' production runs (ProductionRunsNew/patches,
    # coupling_bound 0.1, soft_coupling_cutoff_slope 0.02): soft bound on the system-sensor couplings
    echo "patches-s$seed --set seed=$seed --set steps=2000 --set training_region=patches --set soft_bound=true"
  done
} | NUMBA_NUM_THREADS=1 xargs -P "$jobs" -L 1 bash -c '
  name=$0
  if [ -f "'"$out"'/$name/summary.json" ]; then exit 0; fi
  if [ -d "'"$out"'/$name" ]; then
    .venv/bin/qeprop run --resume "'"$out"'/$name" --no-progress
  else
    .venv/bin/qeprop run phase-recognition --out "'"$out"'/$name" --no-progress "$@"
  fi > "'"$out"'/$name.log" 2>&1 && echo "done $name"
'

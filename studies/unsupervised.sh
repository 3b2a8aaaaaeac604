#!/usr/bin/env bash
# Unsupervised QEP (Wanjura & Marquardt Fig. 3): both tasks from the paper's two starting
# points, then every figure. Usage: studies/unsupervised.sh [RUNS_DIR] [PLOTS_DIR]
set -euo pipefail
runs=${1:-runs/unsupervised}
plots=${2:-$runs/plots}
qeprop=${QEPROP:-.venv/bin/qeprop}
for task in phase-exploration sensitivity; do
  for start in 1 2; do
    d="$runs/$task-start$start"
    if [ -e "$d/summary.json" ]; then continue; fi
    if [ -e "$d" ]; then "$qeprop" run --resume "$d" --no-progress; continue; fi
    "$qeprop" run "$task" --out "$d" --set start=$start --no-progress
  done
done
# the paper's own sensitivity recipe (one-sided nudge, constant rate, no minimum separation),
# for the comparison in docs/unsupervised.md
for start in 1 2; do
  d="$runs/sensitivity-paper-start$start"
  if [ -e "$d/summary.json" ]; then continue; fi
  if [ -e "$d" ]; then "$qeprop" run --resume "$d" --no-progress; continue; fi
  "$qeprop" run sensitivity --out "$d" --set start=$start --set estimator=positive \
    --set lr_decay=0 --set min_separation=0 --set "label=paper recipe, start $start" --no-progress
done
"$qeprop" plot "$runs"/phase-exploration-start* --out "$plots"
"$qeprop" plot "$runs"/sensitivity-start* --out "$plots"

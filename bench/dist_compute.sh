#!/usr/bin/env bash
# The compute side of the data-parallel model (docs/distributed.md): the training step of one
# rank at the per-rank batch sizes that a global batch of 128 gives on 1, 2, 4, ... 64 ranks
# (`vit bench --batch-size b`, one process, THREADS threads), one JSON line each.
#
#   bash bench/dist_compute.sh > compute.jsonl
#
# Environment: VIT (build/vit), PRESETS ("nano lite small"), BATCHES ("128 64 32 16 8 4 2"),
# THREADS (nproc), STEPS (10), PRECISION (auto).
set -euo pipefail
cd "$(dirname "$0")/.."
VIT=${VIT:-build/vit}
PRESETS=${PRESETS:-nano lite small}
BATCHES=${BATCHES:-128 64 32 16 8 4 2}
THREADS=${THREADS:-$(nproc)}
STEPS=${STEPS:-10}
PRECISION=${PRECISION:-auto}
[ -x "$VIT" ] || { echo "dist_compute: $VIT not found; run make build first" >&2; exit 1; }
for preset in $PRESETS; do
  for b in $BATCHES; do
    # Small batches take little time a step: more steps keep the timing meaningful.
    steps=$(( STEPS * 128 / b > STEPS ? STEPS * 128 / b : STEPS ))
    OMP_NUM_THREADS=$THREADS "$VIT" bench --preset "$preset" --batch-size "$b" --steps "$steps" \
      --threads "$THREADS" --precision "$PRECISION" --json
  done
done

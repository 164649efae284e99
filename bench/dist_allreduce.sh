#!/usr/bin/env bash
# The gradient allreduce of data-parallel training, alone: bytes each step moves and its time for
# each preset, on RANKS ranks of this machine (Open MPI's shared-memory transport), with the
# polled non-blocking allreduce that `vit train` uses (it enforces --dist-timeout) and with MPI's
# blocking MPI_Allreduce. One JSON line per measurement (`vit allreduce --json`), then a table.
#
#   bash bench/dist_allreduce.sh                 # 2 ranks, nano lite small, 50 timed steps
#   RANKS=4 STEPS=100 PRESETS=lite bash bench/dist_allreduce.sh
#
# Environment: VIT (default build/vit), RANKS (2), STEPS (50), PRESETS ("nano lite small"),
# MPIRUN_ARGS (extra mpirun flags, e.g. "--mca btl tcp,self" to force TCP).
set -euo pipefail
cd "$(dirname "$0")/.."
VIT=${VIT:-build/vit}
RANKS=${RANKS:-2}
STEPS=${STEPS:-50}
PRESETS=${PRESETS:-nano lite small}
[ -x "$VIT" ] || { echo "dist_allreduce: $VIT not found; run make build first" >&2; exit 1; }
command -v mpirun >/dev/null || { echo "dist_allreduce: mpirun not found (apt-get install openmpi-bin)" >&2; exit 1; }

root=(); [ "$(id -u)" -eq 0 ] && root=(--allow-run-as-root)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for preset in $PRESETS; do
  for mode in "" --blocking; do
    # shellcheck disable=SC2086
    mpirun "${root[@]}" --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 ${MPIRUN_ARGS:-} \
      -np "$RANKS" "$VIT" allreduce --preset "$preset" --steps "$STEPS" --json $mode | tee -a "$out"
  done
done
python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
print(f"\n{'preset':7} {'ranks':>5} {'collective':24} {'MB/step':>8} {'buckets':>7} "
      f"{'median ms':>9} {'min ms':>7} {'busbw GB/s':>10}")
for r in rows:
    print(f"{r['preset']:7} {r['ranks']:>5} {r['collective']:24} {r['bytes_per_step']/1e6:>8.2f} "
          f"{r['buckets']:>7} {r['median_ms']:>9.2f} {r['min_ms']:>7.2f} {r['busbw_gb_per_s']:>10.2f}")
PY

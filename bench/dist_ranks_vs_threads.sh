#!/usr/bin/env bash
# Two ways to use the cores of one machine: 1 rank x CORES threads (OpenMP inside every op)
# against CORES ranks x 1 thread (data parallelism over MPI, `vit bench` under mpirun: each rank
# runs its share of the batch, the gradients are allreduced every step). Training and inference
# images/s of the whole job, per preset, at the same global batch.
#
#   bash bench/dist_ranks_vs_threads.sh          # nano lite small, batch 128, 2 cores
#   PRESETS=lite STEPS=20 PRECISION=fp32 bash bench/dist_ranks_vs_threads.sh
#
# Environment: VIT (build/vit), CORES (nproc), PRESETS ("nano lite small"), BATCH (128),
# STEPS (10), WARMUP (2), PRECISION (auto).
set -euo pipefail
cd "$(dirname "$0")/.."
VIT=${VIT:-build/vit}
CORES=${CORES:-$(nproc)}
PRESETS=${PRESETS:-nano lite small}
BATCH=${BATCH:-128}
STEPS=${STEPS:-10}
WARMUP=${WARMUP:-2}
PRECISION=${PRECISION:-auto}
[ -x "$VIT" ] || { echo "dist_ranks_vs_threads: $VIT not found; run make build first" >&2; exit 1; }
command -v mpirun >/dev/null || { echo "dist_ranks_vs_threads: mpirun not found" >&2; exit 1; }

root=(); [ "$(id -u)" -eq 0 ] && root=(--allow-run-as-root)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for preset in $PRESETS; do
  common=(bench --preset "$preset" --batch-size "$BATCH" --steps "$STEPS" --warmup "$WARMUP"
          --precision "$PRECISION" --json)
  OMP_NUM_THREADS=$CORES "$VIT" "${common[@]}" --threads "$CORES" | tee -a "$out"
  mpirun "${root[@]}" --oversubscribe --bind-to core -x OMP_NUM_THREADS=1 -np "$CORES" \
    "$VIT" "${common[@]}" --threads 1 | tee -a "$out"
done
python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
print(f"\n{'preset':7} {'prec':5} {'layout':16} {'train img/s':>11} {'infer img/s':>11} "
      f"{'allreduce ms/step':>17}")
by = {}
for r in rows:
    layout = f"{r['ranks']} rank x {r['threads']} thr"
    by.setdefault(r["preset"], []).append(r)
    print(f"{r['preset']:7} {r['precision']:5} {layout:16} {r['train_images_per_sec']:>11.1f} "
          f"{r['infer_images_per_sec']:>11.1f} {r['allreduce_ms_per_step']:>17.2f}")
for preset, rs in by.items():
    one = [r for r in rs if r["ranks"] == 1]
    many = [r for r in rs if r["ranks"] > 1]
    if one and many:
        print(f"{preset}: ranks/threads train ratio "
              f"{many[0]['train_images_per_sec'] / one[0]['train_images_per_sec']:.2f}")
PY

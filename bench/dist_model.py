#!/usr/bin/env python3
"""The step-time model of docs/distributed.md, filled from measurements.

Reads the JSON lines of bench/dist_compute.sh (one rank's training step at per-rank batch sizes)
and of bench/dist_netns.sh (the 2-rank allreduce at each rate), fits the allreduce's latency
alpha and bandwidth beta per rate, and prints, for each preset, rate and N = 1 ... 64 machines at
a fixed global batch, the predicted step time and the efficiency T(1) / (N T(N)):

    T(N)    = c(B/N) + T_ar(N)                 (no overlap of communication and compute)
    T_ar(N) = 2 (N-1) alpha + 2 (N-1)/N S / beta  (ring allreduce of S bytes)

where c(b) is the measured step time of one rank at batch b (optimizer step included: every
rank takes it whole). With --overlap the allreduce hides behind the backward pass, taken as
2/3 of the compute: T(N) = c(B/N) + max(0, T_ar(N) - 2/3 c(B/N)).

    python3 bench/dist_model.py --compute compute.jsonl --allreduce netns.jsonl [--batch 128]
"""
import argparse
import json
import math


def read(path):
    return [json.loads(l) for l in open(path) if l.lstrip().startswith("{")]


def fit_alpha_beta(points):
    """Least squares of t = 2 alpha + S / beta over (S, t) points of 2-rank allreduces."""
    n = len(points)
    if n == 1:
        s, t = points[0]
        return 0.0, s / t
    ms = sum(s for s, _ in points) / n
    mt = sum(t for _, t in points) / n
    cov = sum((s - ms) * (t - mt) for s, t in points)
    var = sum((s - ms) ** 2 for s, _ in points)
    inv_beta = cov / var if var > 0 else mt / ms
    alpha = max(0.0, (mt - inv_beta * ms) / 2)
    return alpha, 1 / inv_beta if inv_beta > 0 else math.inf


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--compute", required=True, help="JSON lines of bench/dist_compute.sh")
    ap.add_argument("--allreduce", required=True, help="JSON lines of bench/dist_netns.sh")
    ap.add_argument("--batch", type=int, default=128, help="global batch")
    ap.add_argument("--overlap", action="store_true", help="model the allreduce overlapped with backward")
    ap.add_argument("--bytes-scale", type=float, default=1.0,
                    help="scale the gradient bytes (0.5: bf16 gradients)")
    a = ap.parse_args()

    compute = {}  # (preset, batch) -> seconds per step
    for r in read(a.compute):
        if r.get("ranks", 1) == 1:
            compute[(r["preset"], r["batch_size"])] = r["batch_size"] / r["train_images_per_sec"]
    ar = [r for r in read(a.allreduce) if r.get("what", "allreduce") == "allreduce"]
    rates = sorted({r.get("rate", "?") for r in ar})
    sizes = {r["preset"]: r["bytes_per_step"] for r in ar}
    fits = {}
    for rate in rates:
        pts = [(r["bytes_per_step"], r["median_ms"] / 1e3) for r in ar
               if r.get("rate", "?") == rate and r["ranks"] == 2]
        if pts:
            fits[rate] = fit_alpha_beta(pts)
            alpha, beta = fits[rate]
            print(f"rate {rate}: alpha {alpha * 1e6:.1f} us, beta {beta / 1e9:.3f} GB/s")

    ns = [1, 2, 4, 8, 16, 32, 64]
    for preset in sorted({p for p, _ in compute}):
        if preset not in sizes:
            continue
        S = sizes[preset] * a.bytes_scale
        print(f"\n{preset}: S = {S / 1e6:.2f} MB per step, global batch {a.batch}")
        print(f"{'rate':8} " + " ".join(f"{'N=' + str(n):>16}" for n in ns))
        for rate, (alpha, beta) in fits.items():
            cells = []
            t1 = None
            for n in ns:
                b = max(1, a.batch // n)
                c = compute.get((preset, b))
                if c is None:
                    cells.append(f"{'(no c(' + str(b) + '))':>16}")
                    continue
                t_ar = 0.0 if n == 1 else 2 * (n - 1) * alpha + 2 * (n - 1) / n * S / beta
                t = c + (max(0.0, t_ar - 2 / 3 * c) if a.overlap else t_ar)
                t1 = t if n == 1 else t1
                eff = t1 / (n * t) if t1 else float("nan")
                cells.append(f"{t * 1e3:9.1f}ms {eff:4.0%}")
            print(f"{rate:8} " + " ".join(f"{c:>16}" for c in cells))


if __name__ == "__main__":
    main()

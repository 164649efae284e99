#!/usr/bin/env python3
"""Side by side: patchwork (`vit bench`) and PyTorch (bench/pytorch_reference.py) on the same
machine, same presets, batch, threads and optimizer, one after the other. Prints one table with
patchwork's ratio to PyTorch for training and inference throughput and for peak memory."""
import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--vit", default=str(HERE.parent / "build" / "vit"))
    p.add_argument("--presets", nargs="+", default=["nano", "lite", "small"])
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--json", help="also write all figures to this file")
    args = p.parse_args()

    rows = []
    for preset in args.presets:
        common = ["--preset", preset, "--batch-size", str(args.batch_size), "--threads", str(args.threads),
                  "--steps", str(args.steps), "--json"]
        pw = run([args.vit, "bench"] + common)
        pt = run([sys.executable, str(HERE / "pytorch_reference.py")] + common)
        rows.append((preset, pw, pt))
        print(f"measured {preset}", file=sys.stderr)

    head = (f"{'preset':<7}{'params':>8} | {'train img/s':>21} {'ratio':>6} | {'infer img/s':>21} {'ratio':>6} | "
            f"{'peak RSS MB':>21} {'ratio':>6} | {'train GFLOP/s (of sgemm)':>30}")
    print(head)
    print(f"{'':<7}{'':>8} | {'patchwork':>10} {'pytorch':>10} {'':>6} | {'patchwork':>10} {'pytorch':>10} {'':>6} | "
          f"{'patchwork':>10} {'pytorch':>10} {'':>6} | {'patchwork':>14} {'pytorch':>15}")
    print("-" * len(head))
    for preset, pw, pt in rows:
        def frac(d):
            return f"{d['train_gflops']:.0f} ({100 * d['train_fraction_of_sgemm']:.0f}%)"
        print(f"{preset:<7}{pw['parameters'] / 1e6:>7.2f}M | "
              f"{pw['train_images_per_sec']:>10.1f} {pt['train_images_per_sec']:>10.1f} "
              f"{pw['train_images_per_sec'] / pt['train_images_per_sec']:>6.2f} | "
              f"{pw['infer_images_per_sec']:>10.1f} {pt['infer_images_per_sec']:>10.1f} "
              f"{pw['infer_images_per_sec'] / pt['infer_images_per_sec']:>6.2f} | "
              f"{pw['peak_rss_mb']:>10.0f} {pt['peak_rss_mb']:>10.0f} {pw['peak_rss_mb'] / pt['peak_rss_mb']:>6.2f} | "
              f"{frac(pw):>14} {frac(pt):>15}")
    print(f"\nbatch {args.batch_size}, {args.threads} threads, AdamW, {args.steps} timed steps; "
          f"sgemm: 1024^3 measured in each process; throughput ratios > 1 and memory ratios < 1 favour patchwork")
    if args.json:
        Path(args.json).write_text(json.dumps([{"preset": r[0], "patchwork": r[1], "pytorch": r[2]} for r in rows],
                                              indent=2))


if __name__ == "__main__":
    main()

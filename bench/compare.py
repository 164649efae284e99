#!/usr/bin/env python3
"""Side by side: patchwork (`vit bench`) and PyTorch (bench/pytorch_reference.py) on the same
machine, same presets, batch, threads and optimizer, one after the other, in float32 and in bf16
mixed precision (patchwork's --precision bf16 against PyTorch's torch.autocast("cpu",
dtype=torch.bfloat16)). Prints one table with patchwork's ratio to PyTorch for training and
inference throughput and for peak memory, and each system's training GFLOP/s as a fraction of
the GEMM peak it measured in the same process (OpenBLAS sgemm for fp32, the bf16 GEMM for bf16).

On a CPU without native bf16 units (no avx512_bf16 or amx_bf16 in /proc/cpuinfo), PyTorch's bf16
column is skipped: its autocast is documented as slower than fp32 there."""
import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def cpu_has_native_bf16():
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vit", default=str(HERE.parent / "build" / "vit"))
    p.add_argument("--presets", nargs="+", default=["nano", "lite", "small"])
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--json", help="also write all figures to this file")
    args = p.parse_args()
    native = cpu_has_native_bf16()

    rows = []
    for preset in args.presets:
        for precision in args.precisions:
            common = ["--preset", preset, "--batch-size", str(args.batch_size), "--threads", str(args.threads),
                      "--steps", str(args.steps), "--precision", precision, "--json"]
            pw = run([args.vit, "bench"] + common)
            pt = None
            if precision == "fp32" or native:
                pt = run([sys.executable, str(HERE / "pytorch_reference.py")] + common)
            rows.append((preset, precision, pw, pt))
            print(f"measured {preset} {precision}", file=sys.stderr)

    head = (f"{'preset':<7}{'prec':>5}{'params':>8} | {'train img/s':>21} {'ratio':>6} | "
            f"{'infer img/s':>21} {'ratio':>6} | {'peak RSS MB':>21} {'ratio':>6} | "
            f"{'train GFLOP/s (of GEMM peak)':>30}")
    print(head)
    print(f"{'':<7}{'':>5}{'':>8} | {'patchwork':>10} {'pytorch':>10} {'':>6} | {'patchwork':>10} {'pytorch':>10} "
          f"{'':>6} | {'patchwork':>10} {'pytorch':>10} {'':>6} | {'patchwork':>14} {'pytorch':>15}")
    print("-" * len(head))

    def frac(d, precision):
        # Each system against the GEMM rate of its own process: sgemm for fp32, bf16 GEMM for bf16.
        if d is None:
            return "-"
        peak = d.get("bf16_gemm_gflops") if precision == "bf16" else d["sgemm_gflops"]
        if not peak:
            return f"{d['train_gflops']:.0f}"
        return f"{d['train_gflops']:.0f} ({100 * d['train_gflops'] / peak:.0f}%)"

    def cell(pw, pt, key):
        if pt is None:
            return f"{pw[key]:>10.1f} {'-':>10} {'-':>6}"
        return f"{pw[key]:>10.1f} {pt[key]:>10.1f} {pw[key] / pt[key]:>6.2f}"

    for preset, precision, pw, pt in rows:
        rss = (f"{pw['peak_rss_mb']:>10.0f} {'-':>10} {'-':>6}" if pt is None else
               f"{pw['peak_rss_mb']:>10.0f} {pt['peak_rss_mb']:>10.0f} {pw['peak_rss_mb'] / pt['peak_rss_mb']:>6.2f}")
        print(f"{preset:<7}{precision:>5}{pw['parameters'] / 1e6:>7.2f}M | {cell(pw, pt, 'train_images_per_sec')} | "
              f"{cell(pw, pt, 'infer_images_per_sec')} | {rss} | {frac(pw, precision):>14} {frac(pt, precision):>15}")
    print(f"\n{cpu_name()}; batch {args.batch_size}, {args.threads} threads, AdamW, {args.steps} timed steps; "
          f"GEMM peaks (1024^3) measured in each process: sgemm for fp32 rows, the system's own bf16 GEMM for bf16 rows; "
          f"throughput ratios > 1 and memory ratios < 1 favour patchwork")
    if "bf16" in args.precisions and not native:
        print("this CPU has no native bf16 units (avx512_bf16, amx_bf16): PyTorch's bf16 column is skipped, "
              "since its autocast is slower than fp32 here")
    if args.json:
        Path(args.json).write_text(json.dumps(
            [{"preset": r[0], "precision": r[1], "patchwork": r[2], "pytorch": r[3]} for r in rows], indent=2))


if __name__ == "__main__":
    main()

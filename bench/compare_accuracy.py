#!/usr/bin/env python3
"""Accuracy per minute, side by side: `vit train` with a recipe and a time budget, then the same
model and recipe in PyTorch (bench/pytorch_recipe.py) with the same budget, one after the other
on the same machine, nothing else running. Prints the test accuracy each system had reached at
5, 10, 15, 20 and 30 minutes of wall time (the last evaluation finished by then; evaluation
time counts), its final accuracy and its training images/s.

  make compare-accuracy                      # the default recipe, 30 minutes each
  bench/compare_accuracy.py --budget 10m --recipe default --output /tmp/cmp

PyTorch gets the resolved values of patchwork's run (its args.json): preset, --model overrides,
batch size, lr, min-lr, warmup, weight decay, label smoothing, precision, model EMA and
test-time augmentation. Options that
bench/pytorch_recipe.py does not reproduce (Mixup, CutMix, RandAugment, drop path...)
are listed under the table, so a reader knows what the PyTorch column lacks.
"""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Options of `vit train` that the PyTorch script mirrors, by args.json name -> its flag.
MIRRORED = {"batch_size": "--batch-size", "lr": "--lr", "min_lr": "--min-lr", "warmup_lr": "--warmup-lr",
            "warmup_epochs": "--warmup-epochs", "weight_decay": "--weight-decay",
            "smoothing": "--smoothing", "seed": "--seed"}
# Options whose value in args.json, if not this default, PyTorch does not reproduce.
NOT_MIRRORED = {"mixup": 0.0, "cutmix": 0.0, "cutout": 0,
                "augment": "basic", "drop_path": 0.0, "dropout": 0.0, "clip_grad": 0.0,
                "opt": "adamw", "sched": "cosine"}


def cpu_name():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def cpu_flags():
    text = Path("/proc/cpuinfo").read_text()
    return [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f" {f}" in text]


def epochs(path):
    """Evaluated epoch records; with a model EMA, the accuracy is the better of raw and EMA (the
    weights the run would keep), in both systems."""
    recs = [json.loads(l) for l in Path(path).read_text().splitlines() if l.strip()]
    recs = [r for r in recs if r.get("type", "epoch") == "epoch" and "test_accuracy" in r]
    for r in recs:
        r["test_accuracy"] = max(r["test_accuracy"], r.get("test_accuracy_ema", 0.0))
    return recs


def reached(recs, seconds):
    done = [r for r in recs if r["elapsed_seconds"] <= seconds]
    return done[-1]["test_accuracy"] if done else None


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vit", default=str(HERE.parent / "build" / "vit"))
    p.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data" / "cifar-10-binary.tar.gz"))
    p.add_argument("--recipe", default="default")
    p.add_argument("--budget", default="30m", help="time budget of each run (vit train --time-budget)")
    p.add_argument("--output", default="runs/compare-accuracy")
    p.add_argument("--json", help="also write the table's figures to this file")
    p.add_argument("--patchwork-run", help="take this finished run folder instead of training patchwork")
    p.add_argument("--pytorch-metrics", help="take this finished PyTorch metrics file instead of training")
    p.add_argument("extra", nargs="*", help="more `vit train` flags, after --")
    args = p.parse_args()

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    name = time.strftime("pw-%Y%m%d-%H%M%S")
    if args.patchwork_run:
        run = Path(args.patchwork_run)
    else:
        cmd = [args.vit, "train", "--recipe", args.recipe, "--time-budget", args.budget, "--data", args.data,
               "--output", str(out), "--name", name, "--no-progress", *args.extra]
        print("$", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
        run = out / name
    a = json.loads((run / "args.json").read_text())

    torch_metrics = Path(args.pytorch_metrics) if args.pytorch_metrics else out / (name.replace("pw-", "torch-") + ".jsonl")
    tcmd = [sys.executable, str(HERE / "pytorch_recipe.py"), "--data", args.data, "--time-budget", args.budget,
            "--preset", a["preset"], "--precision", a.get("precision", "auto"), "--metrics", str(torch_metrics)]
    for key, flag in MIRRORED.items():
        tcmd += [flag, str(a[key])]
    if a.get("model_ema"):
        tcmd += ["--model-ema", "--model-ema-decay", str(a["model_ema_decay"])]
        tcmd += ["--model-ema-warmup"] if a.get("model_ema_warmup") else []
    tcmd += ["--tta", a.get("tta", "none")]
    if a.get("model"):
        tcmd += ["--model", *a["model"]]
    if not args.pytorch_metrics:
        print("$", " ".join(tcmd), flush=True)
        subprocess.run(tcmd, check=True)

    pw, pt = epochs(run / "metrics.jsonl"), epochs(torch_metrics)
    budget_s = max(r["elapsed_seconds"] for r in pw + pt)
    marks = [m for m in (5, 10, 15, 20, 30, 60, 90, 150) if m * 60 <= budget_s + 60]
    fmt = lambda v: "-" if v is None else f"{100 * v:.2f}%"
    print(f"\nCPU: {cpu_name()} ({' '.join(cpu_flags())}), recipe '{args.recipe}', budget {args.budget}")
    print(f"{'minutes':>10} | {'patchwork':>10} | {'PyTorch':>10} | ahead")
    rows = []
    for m in marks:
        a_pw, a_pt = reached(pw, m * 60), reached(pt, m * 60)
        ahead = "-" if a_pw is None or a_pt is None else ("yes" if a_pw > a_pt else "no")
        print(f"{m:>10} | {fmt(a_pw):>10} | {fmt(a_pt):>10} | {ahead}")
        rows.append({"minutes": m, "patchwork": a_pw, "pytorch": a_pt})
    ips = lambda recs: sum(r["images_per_sec"] for r in recs) / len(recs) if recs else 0
    print(f"{'final':>10} | {fmt(pw[-1]['test_accuracy']):>10} | {fmt(pt[-1]['test_accuracy']):>10} |")
    print(f"{'img/s':>10} | {ips(pw):>10.0f} | {ips(pt):>10.0f} |")
    lacking = [f"{k}={a[k]}" for k, default in NOT_MIRRORED.items() if k in a and a[k] != default]
    if lacking:
        print("not reproduced in the PyTorch run: " + ", ".join(lacking))
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": cpu_name(), "flags": cpu_flags(), "recipe": args.recipe,
                                               "budget": args.budget, "rows": rows, "run": str(run),
                                               "pytorch_metrics": str(torch_metrics)}, indent=1))


if __name__ == "__main__":
    main()

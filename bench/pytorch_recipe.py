#!/usr/bin/env python3
"""A patchwork training recipe in PyTorch, under the same wall-time budget, for an honest
accuracy-per-minute comparison on the same machine (see bench/compare_accuracy.py).

The model is the ViT family of patchwork's ViTConfig (patch or convolutional tokenizer, class
token / mean / sequence pooling, learned / sin-cos / no position embedding), with timm's
parameter names; the training loop follows `vit train`: AdamW without weight decay on biases,
norms, position embedding and class token; label smoothing; random crop (zero padding 4) and
horizontal flip; linear warmup then cosine to --min-lr, with the schedule sized to the time
budget from the speed measured in the first steps; evaluation on the full test set after every
epoch. Where the CPU has native bf16 units (avx512_bf16 or amx_bf16), forward and loss run under
torch.autocast("cpu", dtype=torch.bfloat16), PyTorch's fastest CPU mode.

  bench/pytorch_recipe.py --data ../shared/data/cifar-10-binary.tar.gz --time-budget 30m \
      --model stem=conv dim=128 depth=2 --lr 2e-3 --metrics out.jsonl

Every epoch appends one JSON line to --metrics (and prints it): epoch, elapsed_seconds (wall
time since the script started, evaluation included), test_accuracy, train_loss, lr, images_per_sec;
with --model-ema, test_accuracy is the better of the raw and the averaged weights (both logged).
"""
import time

T0 = time.perf_counter()  # the budget counts from here, as `vit train` counts from its start

import argparse
import json
import math
import os
import re
import sys
import tarfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from compare import cpu_has_native_bf16
from pytorch_vit import PRESETS, VisionTransformer, make_config

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


# ---- data ----
def read_cifar10(path):
    """uint8 (N, 3, 32, 32) images and int64 labels of the train and test splits."""
    p = Path(path)
    blobs = {}
    if p.is_dir():
        for f in p.glob("**/*.bin"):
            blobs[f.name] = f.read_bytes()
    else:
        with tarfile.open(p, "r:gz") as tar:
            for m in tar.getmembers():
                if m.isfile() and m.name.endswith(".bin"):
                    blobs[Path(m.name).name] = tar.extractfile(m).read()

    def split(names):
        missing = [n for n in names if n not in blobs]
        if missing:
            sys.exit(f"error: {path} has no {', '.join(missing)}")
        rec = np.frombuffer(b"".join(blobs[n] for n in names), dtype=np.uint8).reshape(-1, 3073)
        return (torch.from_numpy(rec[:, 1:].reshape(-1, 3, 32, 32).copy()),
                torch.from_numpy(rec[:, 0].astype(np.int64)))

    return split([f"data_batch_{i}.bin" for i in range(1, 6)]), split(["test_batch.bin"])


def normalise(u8):
    x = u8.float().div_(255.0)
    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def augment(u8, gen):
    """Random crop of the zero-padded (4 px) image and a horizontal flip with probability 1/2."""
    B = u8.shape[0]
    padded = F.pad(u8, (4, 4, 4, 4))
    off = torch.randint(0, 9, (B, 2), generator=gen)
    flip = torch.rand(B, generator=gen) < 0.5
    out = torch.empty_like(u8)
    for i in range(B):
        dy, dx = int(off[i, 0]), int(off[i, 1])
        img = padded[i, :, dy:dy + 32, dx:dx + 32]
        out[i] = img.flip(-1) if flip[i] else img
    return out


# ---- training ----
def parse_duration(text):
    m = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?", text.strip())
    if not text.strip() or not m or not any(m.groups()):
        raise argparse.ArgumentTypeError(f"'{text}' is not a duration (e.g. 90s, 30m, 2.5h, 1h30m)")
    h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    return 3600 * h + 60 * mi + s


def evaluate(model, images, labels, autocast, tta, batch=500):
    model.eval()
    correct = 0
    with torch.no_grad(), autocast():
        for i in range(0, len(images), batch):
            x = normalise(images[i:i + batch])
            logits = model(x).float()
            if tta == "flip":  # the mean of the logits of each image and its mirror
                logits = 0.5 * (logits + model(x.flip(-1)).float())
            correct += (logits.argmax(1) == labels[i:i + batch]).sum().item()
    model.train()
    return correct / len(images)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="CIFAR-10 binary folder or .tar.gz")
    p.add_argument("--preset", default="nano", choices=sorted(PRESETS))
    p.add_argument("--model", nargs="*", default=[], help="config overrides key=value, as vit train")
    p.add_argument("--time-budget", type=parse_duration, required=True)
    p.add_argument("-b", "--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--min-lr", type=float, default=1e-5)
    p.add_argument("--warmup-lr", type=float, default=1e-5)
    p.add_argument("--warmup-epochs", type=float, default=1.0)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--smoothing", type=float, default=0.1)
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    p.add_argument("--threads", type=int, default=0, help="0: all cores")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--model-ema", action="store_true", help="also evaluate an EMA of the weights (timm ModelEmaV3)")
    p.add_argument("--model-ema-decay", type=float, default=0.9998)
    p.add_argument("--model-ema-warmup", action="store_true", help="decay min(decay, (1+step)/(10+step))")
    p.add_argument("--tta", default="none", choices=["none", "flip"])
    p.add_argument("--metrics", help="append one JSON line per epoch to this file")
    args = p.parse_args()

    # Debian's torch 1.13 starts with one thread on some machines (omp_get_max_threads() = 1 on
    # a 2-core KVM guest), so the thread count is always set, to all cores as vit train uses.
    torch.set_num_threads(args.threads or os.cpu_count())
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    bf16 = args.precision == "bf16" or (args.precision == "auto" and cpu_has_native_bf16())
    autocast = lambda: torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)

    (train_x, train_y), (test_x, test_y) = read_cifar10(args.data)
    try:
        c = make_config(args.preset, args.model)
    except ValueError as e:
        sys.exit(f"error: {e}")
    model = VisionTransformer(c)
    no_decay = lambda n, p: p.ndim <= 1 or n in ("pos_embed", "cls_token")
    groups = [{"params": [p for n, p in model.named_parameters() if not no_decay(n, p)]},
              {"params": [p for n, p in model.named_parameters() if no_decay(n, p)], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=args.lr, weight_decay=args.weight_decay)
    ema = [p.detach().clone() for p in model.parameters()] if args.model_ema else None

    n = len(train_x)
    steps_per_epoch = n // args.batch_size  # the last partial batch is dropped, as vit train does
    warmup = max(1, round(args.warmup_epochs * steps_per_epoch))
    out = open(args.metrics, "a") if args.metrics else None
    print(json.dumps({"system": "pytorch " + torch.__version__, "precision": "bf16" if bf16 else "fp32",
                      "parameters": sum(p.numel() for p in model.parameters()), "config": c}), flush=True)

    # The schedule's length is re-planned at every epoch end from the measured step and
    # evaluation times, so that training, the evaluations and the last one fit the budget.
    step, epoch, total = 0, 0, None
    step_time, eval_time = None, None
    margin = 0.02 * args.time_budget
    while True:
        perm = torch.randperm(n, generator=gen)
        model.train()
        t_epoch, losses = time.perf_counter(), []
        for i in range(steps_per_epoch):
            if total is not None and step >= total:
                break
            idx = perm[i * args.batch_size:(i + 1) * args.batch_size]
            x = normalise(augment(train_x[idx], gen))
            if step < warmup:
                lr = args.warmup_lr + (args.lr - args.warmup_lr) * step / warmup
            else:
                span = max(1, (total if total is not None else 10 ** 9) - warmup)
                lr = args.min_lr + 0.5 * (args.lr - args.min_lr) * (1 + math.cos(math.pi * min(1.0, (step - warmup) / span)))
            for g in opt.param_groups:
                g["lr"] = lr
            with autocast():
                loss = F.cross_entropy(model(x), train_y[idx], label_smoothing=args.smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if ema is not None:
                d = args.model_ema_decay
                if args.model_ema_warmup:
                    d = min(d, (1 + step) / (10 + step))
                with torch.no_grad():
                    torch._foreach_mul_(ema, d)
                    torch._foreach_add_(ema, [p.detach() for p in model.parameters()], alpha=1 - d)
            losses.append(loss.item())
            step += 1
            if total is None and step == 20:  # first estimate: 20 steps, evaluation at 1/3 of a step per image
                step_time = (time.perf_counter() - t_epoch) / 20
                eval_time = len(test_x) / args.batch_size * step_time / 3
                total = plan(args.time_budget - margin, time.perf_counter() - T0, step, step_time,
                             eval_time, steps_per_epoch)
            if time.perf_counter() - T0 > args.time_budget:
                total = step  # out of time: stop here and evaluate
        train_seconds = time.perf_counter() - t_epoch
        step_time = train_seconds / max(1, len(losses))
        t_eval = time.perf_counter()
        acc = evaluate(model, test_x, test_y, autocast, args.tta)
        rec = {}
        if ema is not None:  # evaluate the averaged weights too; the better one is the result
            raw = [p.detach().clone() for p in model.parameters()]
            with torch.no_grad():
                for p, e in zip(model.parameters(), ema):
                    p.copy_(e)
            rec["test_accuracy_ema"] = evaluate(model, test_x, test_y, autocast, args.tta)
            rec["test_accuracy_raw"] = acc
            with torch.no_grad():
                for p, r in zip(model.parameters(), raw):
                    p.copy_(r)
            acc = max(acc, rec["test_accuracy_ema"])
        eval_time = time.perf_counter() - t_eval
        epoch += 1
        rec = {"epoch": epoch, "global_step": step, "elapsed_seconds": time.perf_counter() - T0,
               "test_accuracy": acc, "train_loss": float(np.mean(losses)), "lr": lr,
               "images_per_sec": len(losses) * args.batch_size / train_seconds, **rec}
        print(json.dumps(rec), flush=True)
        if out:
            out.write(json.dumps(rec) + "\n")
            out.flush()
        if total is not None and step >= total:
            break
        total = max(step + 1, plan(args.time_budget - margin, time.perf_counter() - T0, step, step_time,
                                   eval_time, steps_per_epoch))


def plan(budget, elapsed, step, step_time, eval_time, steps_per_epoch):
    """The last step such that the remaining steps and one evaluation per epoch end in time."""
    left = budget - elapsed
    steps = int(left / step_time)
    for _ in range(3):  # evaluations depend on how many epochs the steps span
        evals = math.ceil((steps + step % steps_per_epoch) / steps_per_epoch) or 1
        steps = max(0, int((left - evals * eval_time) / step_time))
    return step + steps


if __name__ == "__main__":
    main()

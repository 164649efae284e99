#!/usr/bin/env python3
"""The patchwork ViT in PyTorch, for an honest side-by-side on the same machine.

The model (bench/pytorch_vit.py) mirrors timm's VisionTransformer (same parameter names and
shapes, pre-norm blocks, exact GELU, LayerNorm eps 1e-6) and patchwork's conv tokenizer,
pooling and position-embedding options, so a patchwork `model.safetensors` loads into it with
strict=True.

  bench/pytorch_reference.py --preset lite --batch-size 128 --threads 2
      training-step and inference throughput, model GFLOP/s, sgemm GFLOP/s, peak memory
  bench/pytorch_reference.py --weights run/model.safetensors --logits logits.safetensors \
      --data ../shared/data/cifar-10-binary.tar.gz
      runs the weights on the CIFAR-10 test images that `vit eval --save-logits` saw and prints
      the largest absolute difference of the logits
"""
import argparse
import json
import resource
import struct
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pytorch_vit import PRESETS, VisionTransformer, forward_flops, make_config

def read_safetensors(path):
    data = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    dtypes = {"F32": np.float32, "F64": np.float64}
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        arr = np.frombuffer(data[8 + n + b:8 + n + end], dtype=dtypes[e["dtype"]]).reshape(e["shape"])
        out[name] = torch.from_numpy(arr.copy())
    return out, meta


def cifar_test_images(data, limit):
    """The first `limit` test images of CIFAR-10 (binary version) as uint8 (N,3,32,32) and labels."""
    p = Path(data)
    if p.is_dir():
        f = next(iter(list(p.glob("**/test_batch.bin"))), None)
        if f is None:
            sys.exit(f"error: no test_batch.bin under {p}")
        raw = f.read_bytes()
    else:
        with tarfile.open(p, "r:gz") as tar:
            member = next(m for m in tar.getmembers() if m.name.endswith("test_batch.bin"))
            raw = tar.extractfile(member).read()
    rec = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3073)[:limit]
    return rec[:, 1:].reshape(-1, 3, 32, 32), rec[:, 0].astype(np.int64)


def compare_logits(args):
    weights, meta = read_safetensors(args.weights)
    cfg = make_config(base=json.loads(meta["config"]))
    norm = json.loads(meta["normalization"])
    model = VisionTransformer(cfg).eval()
    model.load_state_dict(weights, strict=True)
    theirs, _ = read_safetensors(args.logits)
    logits_pw = theirs["logits"]
    images, labels = cifar_test_images(args.data, logits_pw.shape[0])
    x = torch.from_numpy(images.astype(np.float32)) * float(norm["scale"])
    x = (x - torch.tensor(norm["mean"]).view(1, 3, 1, 1)) / torch.tensor(norm["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        logits = torch.cat([model(x[i:i + 256]) for i in range(0, len(x), 256)])
    diff = (logits - logits_pw.float()).abs().max().item()
    agree = (logits.argmax(1) == logits_pw.argmax(1)).float().mean().item()
    acc = (logits.argmax(1) == torch.from_numpy(labels)).float().mean().item()
    print(json.dumps({"images": len(x), "max_abs_diff": diff, "argmax_agreement": agree,
                      "pytorch_accuracy": acc}))


def sgemm_gflops(n=1024, reps=10, dtype=torch.float32):
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.mm(a, b)
    t = time.perf_counter()
    for _ in range(reps):
        torch.mm(a, b)
    return 2.0 * n ** 3 * reps / (time.perf_counter() - t) / 1e9


def bench(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = make_config(args.preset)
    model = VisionTransformer(cfg)
    params = sum(p.numel() for p in model.parameters())
    decay = [p for n, p in model.named_parameters() if p.ndim > 1 and n not in ("pos_embed", "cls_token")]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim > 1 and n not in ("pos_embed", "cls_token"))]
    opt = torch.optim.AdamW([{"params": decay}, {"params": no_decay, "weight_decay": 0.0}], lr=1e-3,
                            weight_decay=0.05)
    x = torch.randn(args.batch_size, 3, 32, 32)
    y = torch.randint(0, 10, (args.batch_size,))

    # PyTorch's fastest CPU mode: autocast runs linear/matmul in bf16 with float32 master weights.
    autocast = lambda: torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16")

    def train_step():
        with autocast():
            loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    model.train()
    for _ in range(args.warmup):
        train_step()
    t = time.perf_counter()
    for _ in range(args.steps):
        train_step()
    train_ips = args.batch_size * args.steps / (time.perf_counter() - t)

    model.eval()
    with torch.no_grad(), autocast():
        for _ in range(args.warmup):
            model(x)
        t = time.perf_counter()
        for _ in range(args.steps):
            model(x)
        infer_ips = args.batch_size * args.steps / (time.perf_counter() - t)

    flops = forward_flops(cfg)
    sgemm = sgemm_gflops()
    train_gflops = 3 * flops * train_ips / 1e9
    result = {
        "system": "pytorch " + torch.__version__,
        "precision": args.precision,
        "preset": args.preset,
        "parameters": params,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "train_images_per_sec": train_ips,
        "infer_images_per_sec": infer_ips,
        "forward_gflop_per_image": flops / 1e9,
        "train_gflops": train_gflops,
        "infer_gflops": flops * infer_ips / 1e9,
        "sgemm_gflops": sgemm,
        "train_fraction_of_sgemm": train_gflops / sgemm,
        "bf16_gemm_gflops": sgemm_gflops(dtype=torch.bfloat16) if args.precision == "bf16" else None,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    print(json.dumps(result) if args.json else "\n".join(f"{k:>26}: {v}" for k, v in result.items()))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="lite", choices=sorted(PRESETS))
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                   help="bf16: torch.autocast('cpu', dtype=torch.bfloat16) around forward and loss")
    p.add_argument("--json", action="store_true", help="one JSON line instead of a table")
    p.add_argument("--weights", help="patchwork model.safetensors to compare logits with")
    p.add_argument("--logits", help="logits file written by `vit eval --save-logits`")
    p.add_argument("--data", help="CIFAR-10 folder or .tar.gz (for --weights)")
    args = p.parse_args()
    if args.weights:
        if not (args.logits and args.data):
            p.error("--weights needs --logits and --data")
        compare_logits(args)
    else:
        bench(args)


if __name__ == "__main__":
    main()

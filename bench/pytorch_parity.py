#!/usr/bin/env python3
"""Writes the parity fixtures that tests/test_parity.cpp checks patchwork against, in the manner
of llm.c's test_gpt2.c: for a few tiny ViTs of the family in bench/pytorch_vit.py, one
safetensors file each holding the weights, one input batch and its labels, the logits, the
loss, every parameter's gradient and the losses of five AdamW steps, all computed by PyTorch.

Reproduce the committed fixtures (PyTorch 1.13 from Debian, no other package):

  PATCHWORK_WITH_TORCH=1 bash scripts/install-deps.sh
  /usr/bin/python3 bench/pytorch_parity.py            # writes tests/fixtures/parity_*.safetensors

Weights, inputs and labels come from torch.manual_seed and are the same bits on every machine;
the logits, gradients and losses are PyTorch's float32 results and may differ in their last bits
on another CPU (another GEMM kernel sums in another order), far below the test's tolerances.
Running the script twice on one machine writes identical files (one thread, deterministic
algorithms).

File layout (names; F32 unless noted):
  weights.<name>   every parameter, patchwork's / timm's names (models/vit.h)
  grads.<name>     d loss / d weights.<name>
  input            (B, C, H, W) images (standard normal: the model does not care that they
                   are not normalised pixels)
  labels           (B) class indices, I64
  logits           (B, num_classes)
  loss             () mean cross-entropy of logits and labels
  adamw_losses     (5) the loss before each of five AdamW steps from the weights above
                   (adamw_losses[0] == loss)
  __metadata__     "config": the ViTConfig fields as JSON; "adamw": lr, betas, eps and
                   weight_decay as JSON; "torch": the PyTorch version that wrote the file
"""
import argparse
import json
import math
import os
import struct
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pytorch_vit import VisionTransformer, make_config  # noqa: E402

BATCH = 4
ADAMW = dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05)
ADAMW_STEPS = 5

# Tiny models (tens of KB each) that still have two heads, a residual stream of several tokens
# and every kind of parameter of their variant.
SMALL = ["image_size=16", "dim=24", "heads=2", "mlp_dim=48", "num_classes=10"]
VARIANTS = {
    # timm's ViT: patch stem, class token, learned position embedding, two blocks
    "patch_cls_learn": SMALL + ["depth=2", "patch_size=4", "stem=patch", "pool=cls",
                                "pos_embed=learn"],
    # the Compact Transformer pieces: conv tokenizer (conv -> ReLU -> max-pool, twice),
    # sequence pooling, fixed sin-cos position embedding
    "conv_attn_sincos": SMALL + ["depth=1", "stem=conv", "stem_layers=2", "stem_channels=8",
                                 "pool=attn", "pos_embed=sincos"],
    # mean pooling, no position embedding, no qkv bias
    "patch_mean_none": SMALL + ["depth=1", "patch_size=4", "stem=patch", "pool=mean",
                                "pos_embed=none", "qkv_bias=false"],
}


def init_weights(model, gen):
    """Weights of order one, so that every nonlinearity works away from its linear regime (the
    timm init, std 0.02, would leave softmax and GELU almost linear and many gradients tiny):
    matrices N(0, 1/fan_in), biases N(0, 0.1^2), LayerNorm scales 1 + N(0, 0.1^2), class token
    and position embedding N(0, 0.5^2)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=gen)
            if name in ("cls_token", "pos_embed"):
                p.copy_(0.5 * r)
            elif "norm" in name and name.endswith(".weight"):
                p.copy_(1.0 + 0.1 * r)
            elif name.endswith(".bias"):
                p.copy_(0.1 * r)
            else:
                p.copy_(r / math.sqrt(p[0].numel()))


def write_safetensors(path, tensors, metadata):
    """The layout of the reference writer (and io/safetensors.h): data ordered by descending
    dtype size, then by name; "__metadata__" first; header padded with spaces to 8 bytes.
    Written to a temporary file and renamed, so a failed run leaves no half-written fixture."""
    codes = {torch.float32: ("F32", 4), torch.int64: ("I64", 8)}
    order = sorted(tensors, key=lambda n: (-codes[tensors[n].dtype][1], n))
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name in order:
        t = tensors[name].detach().contiguous()
        data = t.numpy().tobytes()
        header[name] = {"dtype": codes[t.dtype][0], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    tmp = Path(str(path) + ".tmp")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(head)) + head + b"".join(blobs))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def make_fixture(name, overrides, seed):
    cfg = make_config("nano", overrides)
    gen = torch.Generator().manual_seed(seed)
    model = VisionTransformer(cfg)
    init_weights(model, gen)
    x = torch.randn(BATCH, cfg["channels"], cfg["image_size"], cfg["image_size"], generator=gen)
    y = torch.randint(0, cfg["num_classes"], (BATCH,), generator=gen)

    out = {f"weights.{n}": p.detach().clone() for n, p in model.named_parameters()}
    out["input"], out["labels"] = x, y

    logits = model(x)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    out["logits"], out["loss"] = logits.detach(), loss.detach()
    for n, p in model.named_parameters():
        out[f"grads.{n}"] = p.grad.detach().clone()

    opt = torch.optim.AdamW(model.parameters(), **ADAMW)
    losses = []
    for _ in range(ADAMW_STEPS):
        opt.zero_grad(set_to_none=True)
        step_loss = F.cross_entropy(model(x), y)
        step_loss.backward()
        losses.append(step_loss.item())
        opt.step()
    out["adamw_losses"] = torch.tensor(losses, dtype=torch.float32)

    metadata = {"config": json.dumps(cfg, sort_keys=True),
                "adamw": json.dumps(dict(ADAMW, betas=list(ADAMW["betas"]))),
                "torch": torch.__version__}
    return out, metadata


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    root = Path(__file__).resolve().parent.parent
    p.add_argument("--out", default=str(root / "tests" / "fixtures"),
                   help="folder for parity_<variant>.safetensors (default: tests/fixtures)")
    args = p.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    for i, (name, overrides) in enumerate(VARIANTS.items()):
        tensors, metadata = make_fixture(name, overrides, seed=1000 + i)
        path = out_dir / f"parity_{name}.safetensors"
        write_safetensors(path, tensors, metadata)
        losses = ", ".join(f"{v:.4f}" for v in tensors["adamw_losses"].tolist())
        print(f"{path}: {path.stat().st_size} bytes, loss {tensors['loss'].item():.4f}, "
              f"AdamW losses {losses}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes CIFAR-10 (the official binary archive, or the shared re-encoding of it) out as an image
folder of PNG files in torchvision's ImageFolder layout, for measuring `vit train --dataset folder`
on real pictures:

  OUT/train/<class>/<record>.png   from data_batch_1..5.bin
  OUT/val/<class>/<record>.png     from test_batch.bin

The first --classes classes (in label order: airplane, automobile, bird, cat, deer, ...) are kept,
every image upscaled from 32x32 to --size x --size with bilinear interpolation (align_corners
False, as torch's F.interpolate and PIL's BILINEAR enlarge). Only the standard library and numpy.

  /usr/bin/python3 bench/cifar_to_folder.py --out /tmp/cifar5-64          # 5 classes at 64x64
  /usr/bin/python3 bench/cifar_to_folder.py --out /tmp/small --max-per-class 50

The command that trains on it is printed at the end. No data set is committed: the folder is
made where --out says.
"""
import argparse
import struct
import sys
import tarfile
import zlib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_ARCHIVE = HERE.parent.parent / "shared" / "data" / "cifar-10-binary.tar.gz"
RECORD = 3073
TRAIN_FILES = [f"data_batch_{i}.bin" for i in range(1, 6)]
TEST_FILE = "test_batch.bin"
NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def read_archive(path):
    """The batch files of the archive (by base name) as bytes, and the class names."""
    files, names = {}, NAMES
    with tarfile.open(path, "r:*") as tar:
        for member in tar:
            base = Path(member.name).name
            if base in TRAIN_FILES or base == TEST_FILE:
                files[base] = tar.extractfile(member).read()
            elif base == "batches.meta.txt":
                lines = [l.strip() for l in tar.extractfile(member).read().decode().splitlines()]
                lines = [l for l in lines if l]
                if len(lines) == 10:
                    names = lines
    missing = [f for f in TRAIN_FILES + [TEST_FILE] if f not in files]
    if missing:
        sys.exit(f"cifar_to_folder: {path} lacks {', '.join(missing)}")
    return files, names


def records(data, name):
    if len(data) % RECORD:
        sys.exit(f"cifar_to_folder: {name} has {len(data)} bytes, not a multiple of {RECORD}")
    r = np.frombuffer(data, dtype=np.uint8).reshape(-1, RECORD)
    return r[:, 0], r[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # labels, (N, H, W, C)


def bilinear_axis(n_in, n_out):
    """Source indices and weights of each output position (align_corners=False, enlarging)."""
    src = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
    src = np.clip(src, 0, n_in - 1)
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    return lo, hi, src - lo


def upscale(hwc, size):
    if size == hwc.shape[0]:
        return hwc
    lo, hi, t = bilinear_axis(hwc.shape[0], size)
    x = hwc.astype(np.float64)
    rows = x[lo] * (1 - t)[:, None, None] + x[hi] * t[:, None, None]
    lo, hi, t = bilinear_axis(hwc.shape[1], size)
    out = rows[:, lo] * (1 - t)[None, :, None] + rows[:, hi] * t[None, :, None]
    return np.floor(out + 0.5).clip(0, 255).astype(np.uint8)


def png(hwc):
    """An 8-bit RGB PNG of an (H, W, 3) array: filter 0 on every row, zlib level 6."""
    h, w, _ = hwc.shape
    raw = np.concatenate([np.zeros((h, 1), np.uint8), hwc.reshape(h, w * 3)], axis=1).tobytes()

    def chunk(tag, body):
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archive", type=Path, default=DEFAULT_ARCHIVE, help="cifar-10-binary.tar.gz")
    p.add_argument("--out", type=Path, required=True, help="the folder to write (must not exist)")
    p.add_argument("--classes", type=int, default=5, help="keep the first N classes")
    p.add_argument("--size", type=int, default=64, help="image side, 32 or more")
    p.add_argument("--max-per-class", type=int, default=0,
                   help="at most this many images of each class per split (0: all)")
    a = p.parse_args()
    if not 2 <= a.classes <= 10 or a.size < 32:
        sys.exit("cifar_to_folder: --classes must be 2..10 and --size at least 32")
    if a.out.exists():
        sys.exit(f"cifar_to_folder: {a.out} exists; give a new folder")
    files, names = read_archive(a.archive)
    counts = {}
    for split, parts in (("train", TRAIN_FILES), ("val", [TEST_FILE])):
        labels, images = zip(*(records(files[f], f) for f in parts))
        labels, images = np.concatenate(labels), np.concatenate(images)
        for c in range(a.classes):
            folder = a.out / split / names[c]
            folder.mkdir(parents=True)
            index = np.flatnonzero(labels == c)
            if a.max_per_class > 0:
                index = index[:a.max_per_class]
            for i in index:
                (folder / f"{i:05d}.png").write_bytes(png(upscale(images[i], a.size)))
            counts[(split, names[c])] = len(index)
    for (split, name), n in counts.items():
        print(f"{split}/{name}: {n} images")
    print(f"\nwritten to {a.out} ({a.size}x{a.size} PNG). Train and evaluate on it with, e.g.:\n"
          f"  build/vit train --dataset folder --data {a.out} --img-size {a.size} --recipe default "
          f"--name cifar{a.classes}-{a.size}\n"
          f"  build/vit eval --weights runs/cifar{a.classes}-{a.size}/model.safetensors --data {a.out}")


if __name__ == "__main__":
    main()

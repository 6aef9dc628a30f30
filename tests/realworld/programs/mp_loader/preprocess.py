"""Parse the raw samples (one text file each, in a folder per class, ImageFolder style)
with a pool of worker processes, and write them as a few .npy shards for training."""

import argparse
import glob
import multiprocessing as mp
import os

import numpy as np

CLASSES = ["cat", "dog"]


def parse(path: str) -> list:
    with open(path) as f:
        values = [float(v) for v in f.read().split()]
    return [*values, CLASSES.index(os.path.basename(os.path.dirname(path)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--raw", default="data/raw")
    parser.add_argument("--out", default="data/shards")
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    files = sorted(glob.glob(os.path.join(args.raw, "*", "*.txt")))
    # "spawn", as on macOS and Windows: the workers start a fresh interpreter
    with mp.get_context("spawn").Pool(args.workers) as pool:
        rows = pool.map(parse, files, chunksize=3)
    os.makedirs(args.out, exist_ok=True)
    for i, part in enumerate(np.array_split(np.array(rows, dtype=np.float32), args.shards)):
        np.save(os.path.join(args.out, f"shard-{i}.npy"), part)
    print(f"{len(files)} samples -> {args.shards} shards")


if __name__ == "__main__":
    main()

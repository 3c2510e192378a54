#!/usr/bin/env python
"""Top-patches benchmark: a script, not a test (pytest does not collect it).

    python tests/benchmarks/bench_insight.py                      # CPU, and CUDA when torch sees a GPU
    python tests/benchmarks/bench_insight.py --threads 1 --repeats 3

The top 9 patches of every channel of the ``lenet`` example's second convolution (conv2, 16
channels, 10×10) over 10,000 CIFAR-format images: a synthetic ``test_batch`` written in the official
on-disk format (a pickled dict of uint8 rows and labels, as tests/conftest.py writes it), read by the
app's own CIFAR reader, converted to gray 32×32 as the stack asks, batched through the network on
the device. Target: <= 10 s on a 2-core CPU (the Deep Visualization Toolbox precomputes for hours).

Timed: ``top_patches`` (reading the rows, preparing, the forward to conv2, the running top k, the
receptive-field boxes); separately the parse of the batch file (the first ``len``) and the export
of top_patches.json with the 16 channel PNGs. Prints the 1-minute load average: numbers on a shared
machine move a lot with other processes."""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np
import torch


def write_cifar(folder: Path, count: int = 10_000, seed: int = 0) -> Path:
    """``cifar-10-batches-py/test_batch`` with ``count`` random images, in the official format."""
    folder = folder / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    batch = {b"batch_label": b"testing batch 1 of 1",
             b"labels": rng.integers(0, 10, count).tolist(),
             b"data": rng.integers(0, 256, (count, 3072), dtype=np.uint8),
             b"filenames": [f"image_{i:05d}.png".encode() for i in range(count)]}
    with open(folder / "test_batch", "wb") as f:
        pickle.dump(batch, f, protocol=2)
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--k", type=int, default=9)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cpu, then cuda when present)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from explorer.core.insight.data import CifarSource
    from explorer.core.insight.subject import resolve_subject
    from explorer.core.insight.top_patches import export_top_patches, top_patches

    devices = [args.device] if args.device else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_cifar(Path(tmp), args.images)
        t0 = time.perf_counter()
        source = CifarSource(folder, "test")
        parse = time.perf_counter() - t0
        print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), load average "
              f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} core(s)")
        print(f"parse {len(source)} CIFAR-format images: {parse:.2f} s")
        for device in devices:
            subject = resolve_subject("lenet", device=device)
            top_patches(subject, "conv2", source, args.k, args.batch_size)        # warm-up
            times = []
            for _ in range(args.repeats):
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                result = top_patches(subject, "conv2", source, args.k, args.batch_size)
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            export_top_patches(subject, source, result, Path(tmp) / f"out_{device}")
            export = time.perf_counter() - t0
            verdict = "OK" if statistics.median(times) <= 10 else "OVER"
            print(f"{device:>5}: top {args.k} of {result.images} images, {len(result.channels)} channels of conv2: "
                  f"median {statistics.median(times):.2f} s (min {min(times):.2f}, max {max(times):.2f}; "
                  f"target <= 10 s: {verdict}); export JSON + {len(result.channels)} PNGs {export:.2f} s; "
                  f"load average now {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Training benchmark (a script, not a test):

    python tests/benchmarks/bench_train.py                 # about a minute on 2 idle cores
    python tests/benchmarks/bench_train.py --device cuda

1. xo_net on xo with the default settings (Adam, lr 0.003, batch 64): training seconds (generation
   of the data set excluded, evaluation included) until the test accuracy reaches 99%. Target: <= 10 s
   on a 2-core CPU.
2. lenet_cifar throughput on CIFAR-format batches (10,000 random images written as data_batch_1 and
   read back through the loader), batch 64, Adam, no augmentation: the trainer's samples/s against a
   bare torch loop (nn.Sequential LeNet, the same optimiser and batch size, data already float),
   alternating, best of --repeats epochs each. Target: >= 0.9x.
3. The weights history of lenet_cifar over 50 epochs (step 0 and every epoch): bytes actually held
   by the snapshots of a 50-epoch run on a few images. Target: < 50 MB.
"""

from __future__ import annotations

import argparse
import pickle
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from explorer.core.devices import resolve_device, synchronize  # noqa: E402
from explorer.core.examples import load_example  # noqa: E402
from explorer.core.training.datasets import Dataset, Split, load_dataset  # noqa: E402
from explorer.core.training.trainer import TrainSettings, train  # noqa: E402


def xo_to_99(device: str) -> None:
    stack = load_example("xo_net")
    t0 = time.perf_counter()
    data = load_dataset("xo", stack.input, 0)
    gen = time.perf_counter() - t0
    reached = []
    seconds = []

    def on_epoch(info):
        seconds.append(info.record.seconds)
        if info.record.test_accuracy >= 0.99 and not reached:
            reached.append((info.record.epoch, sum(seconds), info.record.test_accuracy))

    t0 = time.perf_counter()
    result = train(stack, data, TrainSettings(epochs=10, device=device), on_epoch=on_epoch)
    wall = time.perf_counter() - t0
    print(f"1. xo data set: {len(data.train)}+{len(data.test)} images generated in {gen:.2f} s")
    if reached:
        epoch, secs, acc = reached[0]
        print(f"   xo_net reached {acc:.1%} test accuracy after epoch {epoch}: {secs:.1f} s of training "
              f"(target <= 10 s) {'OK' if secs <= 10 else 'SLOW'}")
    else:
        print(f"   xo_net did NOT reach 99% in 10 epochs (best {max(e.test_accuracy for e in result.epochs):.1%})")
    print(f"   10 epochs: {wall:.1f} s wall, final test accuracy {result.epochs[-1].test_accuracy:.1%}")


def _cifar_folder(root: Path, count: int) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, n in (("data_batch_1", count), ("test_batch", 1000)):
        batch = {b"labels": rng.integers(0, 10, n).tolist(), b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8)}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
    return folder


def bare_epoch(data: Dataset, device: torch.device, batch_size: int) -> float:
    """The loop a tutorial writes: the same LeNet, Adam, batch size; data already float."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84),
                          nn.ReLU(), nn.Linear(84, 10)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=0.003)
    x_all = data.train.floats().to(device)
    y_all = data.train.labels.to(device)
    n = len(y_all)
    order = torch.randperm(n).to(device)
    synchronize(device)
    t0 = time.perf_counter()
    model.train()
    for b in range(0, n, batch_size):
        idx = order[b:b + batch_size]
        out = model(x_all[idx])
        loss = F.cross_entropy(out, y_all[idx])
        loss.item()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    synchronize(device)
    return n / (time.perf_counter() - t0)


def throughput(device: str, repeats: int, count: int) -> None:
    dev = resolve_device(device)
    stack = load_example("lenet_cifar")
    with tempfile.TemporaryDirectory() as tmp:
        data = load_dataset(str(_cifar_folder(Path(tmp), count)), stack.input, 0)
    ours, bare = [], []
    for _ in range(repeats):
        result = train(stack, data, TrainSettings(epochs=1, batch_size=64, augment=False, device=device))
        ours.append(result.epochs[0].samples_per_second)
        bare.append(bare_epoch(data, dev, 64))
    ratio = max(ours) / max(bare)
    print(f"2. lenet_cifar, {count} CIFAR-format images, batch 64, Adam, on {dev}: trainer {max(ours):,.0f} samples/s, "
          f"bare torch loop {max(bare):,.0f} samples/s: {ratio:.2f}x (target >= 0.9x) {'OK' if ratio >= 0.9 else 'LOW'}")
    print(f"   all runs: trainer {[round(v) for v in ours]}, bare {[round(v) for v in bare]}")
    aug = train(stack, data, TrainSettings(epochs=1, batch_size=64, augment=True, device=device))
    print(f"   with augmentation (crop + flip on the device): {aug.epochs[0].samples_per_second:,.0f} samples/s")


def history_memory(device: str) -> None:
    stack = load_example("lenet_cifar")
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.arange(64) % 10
    data = Dataset("tiny", "cifar", [str(i) for i in range(10)], Split(images, labels), Split(images, labels))
    result = train(stack, data, TrainSettings(epochs=50, batch_size=64, augment=False, device=device))
    held = sum(t.numel() * t.element_size() for s in result.snapshots for st in s.states.values() for t in st.values())
    print(f"3. weights history of lenet_cifar over 50 epochs: {len(result.snapshots)} snapshots, "
          f"{held / 2 ** 20:.1f} MB (target < 50 MB) {'OK' if held < 50 * 2 ** 20 else 'TOO BIG'}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--images", type=int, default=10_000)
    args = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, "
          f"device {args.device}")
    xo_to_99(args.device)
    throughput(args.device, args.repeats, args.images)
    history_memory(args.device)


if __name__ == "__main__":
    main()

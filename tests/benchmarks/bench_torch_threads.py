"""What a second thread's parallel torch loops cost the run lane (explorer.core.torch_threads).

The run lane is a worker thread. It runs conv1 of the default stack on a 512x512 image and renders
its 6 maps to uint8 (render_grid), as an edit in the window does. It is timed three ways:

* alone: no other thread has ever started a parallel torch loop (the window's policy: the GUI
  thread and the statistics lane keep torch on one thread);
* beside one other thread that ran a parallel loop and is still alive (the GUI thread or the
  statistics lane before the policy). It holds its own pool of OpenMP helpers. libgomp then manages
  more threads than there are CPUs, so every helper sleeps between loops instead of spinning;
* beside that thread, which now keeps torch on one thread from its start (what the window does).

Printed beside them: the same work on a thread that has torch to itself, which is what a script
gets. Nothing here runs torch on the main thread, so no pool outlives its scenario: a thread's
helpers end with it.

Run: python tests/benchmarks/bench_torch_threads.py [--repeats 40] [--pause-ms 30]"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from explorer.core.render import render_grid  # noqa: E402
from explorer.core.torch_threads import full_width, use_torch_threads  # noqa: E402


def on_thread(fn, *args, threads: int):
    """fn(*args) on a new thread whose torch uses ``threads`` threads; the thread then ends."""
    out: list = []

    def run():
        use_torch_threads(threads)
        out.append(fn(*args))

    t = threading.Thread(target=run)
    t.start()
    t.join()
    return out[0]


class Neighbour:
    """Another thread that stays alive: with ``threads`` > 1 it first starts a parallel loop (and so
    holds an OpenMP pool until it ends), as a GUI thread or a statistics lane would."""

    def __init__(self, threads: int):
        self._done = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(threads,))

    def _run(self, threads: int) -> None:
        use_torch_threads(threads)
        torch.rand(1_000_000).mul_(2.0).sum()       # big enough for a parallel loop when threads > 1
        self._ready.set()
        self._done.wait()

    def __enter__(self):
        self._thread.start()
        self._ready.wait()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()


def edit_work(repeats: int, pause_s: float) -> tuple[list[float], list[float]]:
    """conv1 and its render, each after a short pause (an edit on a window that was idle)."""
    torch.manual_seed(0)
    x = torch.rand(1, 3, 512, 512)
    conv = torch.nn.Conv2d(3, 6, 3).eval()
    convs, renders = [], []
    for i in range(repeats + 3):
        time.sleep(pause_s)
        t0 = time.perf_counter()
        with torch.no_grad():
            y = conv(x)
        t1 = time.perf_counter()
        render_grid(y[0])
        t2 = time.perf_counter()
        if i >= 3:
            convs.append((t1 - t0) * 1000)
            renders.append((t2 - t1) * 1000)
    return convs, renders


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--pause-ms", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=3, help="the scenarios take turns this many times")
    args = parser.parse_args(argv)
    width = full_width()
    print(f"torch {torch.__version__}, {os.cpu_count()} cores, full width {width} threads; "
          f"conv1 [1,3,512,512] -> [1,6,510,510] and its render, each after a {args.pause_ms:.0f} ms pause; "
          f"medians in ms over {args.rounds} x {args.repeats}")
    if width < 2:
        print("torch uses one thread here: there are no OpenMP helpers, so there is nothing to compare")
        return 0
    scenarios = {
        "a script (one thread uses torch)": None,
        "run lane, another thread holds a pool (before)": width,
        "run lane, the other thread on one thread (now)": 1,
    }
    samples = {name: ([], []) for name in scenarios}
    # Taking turns: load on a shared machine drifts, and every scenario meets the same drift.
    for _ in range(args.rounds):
        for name, neighbour in scenarios.items():
            if neighbour is None:
                convs, renders = on_thread(edit_work, args.repeats, args.pause_ms / 1000, threads=width)
            else:
                with Neighbour(neighbour):
                    convs, renders = on_thread(edit_work, args.repeats, args.pause_ms / 1000, threads=width)
            samples[name][0].extend(convs)
            samples[name][1].extend(renders)
    print(f"{'':50} {'conv1':>8} {'render':>8} {'both':>8}")
    for name, (convs, renders) in samples.items():
        conv, render = statistics.median(convs), statistics.median(renders)
        print(f"{name:50} {conv:8.2f} {render:8.2f} {conv + render:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

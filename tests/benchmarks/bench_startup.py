#!/usr/bin/env python
"""Start-up benchmark: whole-process time from launch to a visible window and to the first feature
map, median of several launches, beside ``python -c "import torch"``. A script, not a test.

    python tests/benchmarks/bench_startup.py                    # 5 launches from this source tree
    python tests/benchmarks/bench_startup.py --launches 3
    python tests/benchmarks/bench_startup.py --bundle dist/feature-map-explorer/feature-map-explorer

From source, each launch runs ``feature-map-explorer`` (``explorer.cli.main(["gui"])``) in a fresh
interpreter with a probe that polls, every 5 ms on the GUI thread, whether the window is exposed
and whether the feature grid holds an image; times are measured from just before the process is
started. A bundle cannot take a probe: its time to a visible window is found from outside with
``xdotool search --onlyvisible`` (needs an X display, e.g. ``xvfb-run -a``), and it has no
first-map column. Settings, log and autosave go to a temporary folder (XDG_* variables), so the
user's are never touched. Uses the X display when there is one, else Qt's offscreen platform.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = r"""
import json, sys, time
from explorer.ui import app as fme_app

def run_app(args, _orig=fme_app.run_app):
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication
    from explorer.ui import main_window as mw
    init = mw.MainWindow.__init__

    def probed_init(self, *a, **k):
        init(self, *a, **k)
        seen = {}
        timer = QTimer(self)
        timer.setInterval(5)
        def poll():
            now = time.time()
            handle = self.windowHandle()
            if "visible" not in seen and handle is not None and handle.isExposed():
                seen["visible"] = now
            if "first_map" not in seen and self.feature_view.grid.image_item.image is not None:
                seen["first_map"] = now
            if len(seen) == 2:
                timer.stop()
                print("PROBE " + json.dumps(seen), flush=True)
                self.document.undo_stack.setClean()
                QApplication.quit()
        timer.timeout.connect(poll)
        timer.start()
    mw.MainWindow.__init__ = probed_init
    return _orig(args)

fme_app.run_app = run_app
from explorer.cli import main
sys.exit(main(["gui"]))
"""


def isolated_env(folder: Path) -> dict:
    env = dict(os.environ)
    for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
        env[name] = str(folder / name.lower())
    if not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        env["QT_QPA_PLATFORM"] = "offscreen"
    return env


def launch_source(python: str, folder: Path) -> tuple[float, float]:
    start = time.time()
    run = subprocess.run([python, "-c", PROBE], cwd=ROOT, env=isolated_env(folder), capture_output=True,
                         text=True, timeout=300)
    line = next((l for l in run.stdout.splitlines() if l.startswith("PROBE ")), None)
    if line is None:
        raise RuntimeError(f"the window did not report (exit {run.returncode}): {run.stderr.strip()[-500:]}")
    seen = json.loads(line[6:])
    return seen["visible"] - start, seen["first_map"] - start


def launch_bundle(executable: str, folder: Path) -> float:
    if not shutil.which("xdotool") or not os.environ.get("DISPLAY"):
        raise RuntimeError("timing a bundle needs xdotool and an X display (try: xvfb-run -a python ...)")
    start = time.time()
    proc = subprocess.Popen([executable], env=isolated_env(folder), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        while time.time() - start < 120:
            found = subprocess.run(["xdotool", "search", "--onlyvisible", "--pid", str(proc.pid),
                                    "--name", "Feature Map Explorer"], capture_output=True, text=True)
            if found.stdout.strip():
                return time.time() - start
            if proc.poll() is not None:
                raise RuntimeError(f"the bundle exited with {proc.returncode} before showing a window")
            time.sleep(0.02)
        raise RuntimeError("no window within 120 s")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def import_torch(python: str) -> float:
    start = time.time()
    subprocess.run([python, "-c", "import torch"], check=True, timeout=300)
    return time.time() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--launches", type=int, default=5)
    parser.add_argument("--bundle", metavar="EXECUTABLE", help="time a PyInstaller bundle's window instead")
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args(argv)

    platform = "xcb" if os.environ.get("DISPLAY") else "offscreen"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        torch_times = [import_torch(args.python) for _ in range(args.launches)]
        print(f"python -c 'import torch'      median {statistics.median(torch_times):5.2f} s  "
              f"({', '.join(f'{t:.2f}' for t in torch_times)})")
        if args.bundle:
            visible = [launch_bundle(args.bundle, folder) for _ in range(args.launches)]
            print(f"bundle: visible window         median {statistics.median(visible):5.2f} s  "
                  f"({', '.join(f'{t:.2f}' for t in visible)})  [{platform}, xdotool]")
            return 0
        runs = [launch_source(args.python, folder) for _ in range(args.launches)]
        visible, first = [r[0] for r in runs], [r[1] for r in runs]
        print(f"source: visible window         median {statistics.median(visible):5.2f} s  "
              f"({', '.join(f'{t:.2f}' for t in visible)})  [{platform}]")
        print(f"source: first feature map      median {statistics.median(first):5.2f} s  "
              f"({', '.join(f'{t:.2f}' for t in first)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

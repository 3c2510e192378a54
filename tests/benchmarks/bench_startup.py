#!/usr/bin/env python
"""Start-up benchmark: whole-process time from launch to a visible window and to the first feature
map, median of several launches, beside ``python -c "import torch"``. A script, not a test.

    python tests/benchmarks/bench_startup.py                    # 5 launches from this source tree
    python tests/benchmarks/bench_startup.py --launches 3
    python tests/benchmarks/bench_startup.py --bundle dist/feature-map-explorer/feature-map-explorer

From source, each launch runs ``feature-map-explorer`` (``explorer.cli.main(["gui"])``) in a fresh
interpreter with a probe that polls, every 5 ms on the GUI thread, whether a window is exposed
(the start-up window, explorer/ui/startup.py) and whether the real window's feature grid holds an
image; times are measured from just before the process is started. The probe also reports the
longest gap between its ticks while torch loads (the GUI thread held) and the one in which the
real window was built. A bundle cannot take a probe: its time to a visible window is found from outside with
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

# Polls from the moment the QApplication exists, without importing anything the app does not:
# "visible" is the first exposed top-level window (the start-up window, or the real one where
# there is none), "first_map" the real window's feature grid holding an image. Meanwhile it
# records the longest gap between its 5 ms ticks: how long the GUI thread was held (torch's import
# holds the GIL in bursts); the gap after the real window is being built is reported apart.
def make_application(*a, _orig=fme_app.make_application, **k):
    app = _orig(*a, **k)
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication
    seen, gaps = {}, {"before": 0.0, "after": 0.0}
    last = [time.time()]
    timer = QTimer(app)
    timer.setInterval(5)
    def poll():
        now = time.time()
        gap, last[0] = now - last[0], now
        windows = [w for w in QApplication.topLevelWidgets() if w.isWindow() and w.isVisible()]
        mw = sys.modules.get("explorer.ui.main_window")
        real = [w for w in windows if mw is not None and isinstance(w, mw.MainWindow)]
        if "visible" in seen:       # the gap in which the real window appeared was spent building it
            phase = "after" if real else "before"
            gaps[phase] = max(gaps[phase], gap)
        if "visible" not in seen and any(w.windowHandle() is not None and w.windowHandle().isExposed() for w in windows):
            seen["visible"] = now
        if real and "window_built" not in seen:
            seen["window_built"] = now
        if real and real[0].feature_view.grid.image_item.image is not None:
            seen["first_map"] = now
            seen["worst_gap_loading"] = gaps["before"]
            seen["worst_gap_after"] = gaps["after"]
            timer.stop()
            print("PROBE " + json.dumps(seen), flush=True)
            real[0].document.undo_stack.setClean()
            QApplication.quit()
    timer.timeout.connect(poll)
    timer.start()
    return app

fme_app.make_application = make_application
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


def launch_source(python: str, folder: Path) -> dict:
    start = time.time()
    run = subprocess.run([python, "-c", PROBE], cwd=ROOT, env=isolated_env(folder), capture_output=True,
                         text=True, timeout=300)
    line = next((l for l in run.stdout.splitlines() if l.startswith("PROBE ")), None)
    if line is None:
        raise RuntimeError(f"the window did not report (exit {run.returncode}): {run.stderr.strip()[-500:]}")
    seen = json.loads(line[6:])
    return {"visible": seen["visible"] - start, "first_map": seen["first_map"] - start,
            "gap_loading": seen["worst_gap_loading"], "gap_built": seen["worst_gap_after"]}


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

        def row(label: str, key: str, note: str = "") -> None:
            values = [r[key] for r in runs]
            print(f"{label:<30} median {statistics.median(values):5.2f} s  ({', '.join(f'{v:.2f}' for v in values)})"
                  f"{note}")

        row("source: visible window", "visible", f"  [{platform}; goal <= 1.5 s]")
        row("source: first feature map", "first_map")
        row("  worst GUI pause, loading", "gap_loading", "  (longest the GUI thread was held while torch loaded)")
        row("  worst GUI pause, afterwards", "gap_built", "  (building the real window, first run)")
        bundle = ROOT / "dist" / "feature-map-explorer" / "feature-map-explorer"
        if bundle.exists() and shutil.which("xdotool") and os.environ.get("DISPLAY"):
            visible = [launch_bundle(str(bundle), folder) for _ in range(args.launches)]
            print(f"bundle: visible window         median {statistics.median(visible):5.2f} s  "
                  f"({', '.join(f'{t:.2f}' for t in visible)})  [{platform}, xdotool; goal <= 5 s]")
        else:
            print(f"bundle: not timed ({'no ' + str(bundle.relative_to(ROOT)) if not bundle.exists() else 'needs xdotool and an X display'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

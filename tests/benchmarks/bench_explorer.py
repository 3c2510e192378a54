#!/usr/bin/env python
"""Feature Map Explorer benchmark: a script, not a test (pytest does not collect it).

    python tests/benchmarks/bench_explorer.py            # the full run (a few minutes on 2 cores)
    python tests/benchmarks/bench_explorer.py --quick    # fewer repeats, for a smoke check

It measures, and prints as one table:

1. Edit to pixels in the real window (offscreen Qt): a 512x512 RGB image through the default stack
   Conv2d(3, 6, 3) -> ReLU -> MaxPool2d(2), conv1 selected. Each edit goes through the document
   (``StackDocument.set_arg`` / ``set_seed``), exactly as the layer form does, and is timed from the
   call until the grid's ImageItem has received the edit's own maps (the focused layer, which the run
   sends before the layers after it, or the whole run's answer) and until that item has been painted.
   Twice: back to back (the next edit as soon as the maps are painted) and one edit at a time on a
   settled window (as a keystroke meets it). Beside it: the bare torch forward pass (also after a
   60 ms pause, as an edit on an idle machine meets the CPU) and the render alone.
2. Grid drawing: 64 channels of 224x224 and 512 channels of 14x14, through our path (``render_grid``
   -> uint8, ``ImageItem.setImage(levels=(0, 255), lut=...)``, a forced paint of the view) against a
   matplotlib subplot grid (the classic tutorial way; a new figure, and a re-used one) and
   TensorBoard's ``SummaryWriter.add_images`` (PNG encoding into an event file).
3. Memory: process RSS over 200 edits in the window.
4. The grid render on CUDA, when torch sees a GPU.
5. GUI stalls: the worst gap of a 10 ms heartbeat timer on the GUI thread while clicking through the
   layers of a 512-channel stack on a 1024x768 image (issue 9: 35-58 s when the statistics and the
   grid were made on the GUI thread), opening and closing a walkthrough, and going back to a small
   conv1 afterwards. A watchdog thread samples the GUI thread's stack during every stall over
   100 ms and names the deepest app or pyqtgraph frame of the worst.
6. Memory under mixed use: 1,000 edits of every kind (layers added and removed, kernel cells,
   inputs switched, LeNet walkthroughs opened and closed), RSS growth after ``malloc_trim(0)``.

matplotlib and tensorboard come from the project's ``bench`` extra (``pip install matplotlib
tensorboard``); without them their columns are skipped with a note. psutil is used for RSS when
installed, else /proc/self/status. Nothing here touches the user's settings: Qt runs in test mode
with a QSettings file in a temporary folder.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from explorer.core.malloc_arena import use_one_arena  # noqa: E402

use_one_arena()     # what the app's main() does before any thread starts (the scripts here import this file first)

import argparse
import gc
import importlib.util
import platform
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

TARGET_EDIT_MS = 25.0        # issue 11: edit -> pixels at most 25 ms median for the default stack
TARGET_SPEEDUP = 20.0


# =========================================================================== small helpers


def percentile(samples: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples, dtype=np.float64), q)) if samples else float("nan")


@dataclass
class Timing:
    samples: list[float] = field(default_factory=list)   # milliseconds

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else float("nan")

    @property
    def p90(self) -> float:
        return percentile(self.samples, 90)

    @property
    def best(self) -> float:
        return min(self.samples) if self.samples else float("nan")

    def text(self) -> str:
        if not self.samples:
            return "-"
        return f"{self.median:9.1f} {self.p90:9.1f} {self.best:9.1f} {len(self.samples):5d}"


def time_ms(fn, repeats: int, warmup: int = 1, sync=None) -> Timing:
    for _ in range(warmup):
        fn()
        if sync:
            sync()
    timing = Timing()
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        timing.samples.append((time.perf_counter() - t0) * 1000)
    return timing


def rss_mb() -> float:
    try:
        import psutil
        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        pass
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def load_average() -> str:
    """Other processes on the same cores make every number here noisier; say how busy the machine is."""
    try:
        return f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    except (AttributeError, OSError):
        return "unknown"


def singleton_refcount_drift() -> tuple[int, int]:
    """How a void Qt method call changes None's reference count, and a signal emit True's: 0 when
    correct. PySide6 6.12.0 drops one reference per call (the None a void method returns, the True
    that ``emit`` returns). Before Python 3.12 these singletons are not immortal, so after ~10^5
    calls (about a hundred edits in the window) Python aborts with "Fatal Python error:
    none_dealloc" (or bool_dealloc, at the latest when the interpreter shuts down)."""
    from PySide6.QtCore import QObject, Signal
    from PySide6.QtWidgets import QWidget

    class _Emitter(QObject):
        ping = Signal()

    widget, emitter = QWidget(), _Emitter()
    emitter.ping.connect(lambda: None)
    widget.hide()
    emitter.ping.emit()
    none_before, true_before = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(100):
        widget.hide()
        emitter.ping.emit()
    none_drift = round((sys.getrefcount(None) - none_before) / 100)
    true_drift = round((sys.getrefcount(True) - true_before) / 100)
    widget.deleteLater()
    emitter.deleteLater()
    return none_drift, true_drift


def report_singleton_refcounts(report: "Report") -> None:
    import PySide6
    none_drift, true_drift = singleton_refcount_drift()
    ok = (none_drift >= 0 and true_drift >= 0) or sys.version_info >= (3, 12)
    verdict = "ok" if ok else (f"LEAKS: PySide6 {PySide6.__version__} will abort a long session; "
                               "pyproject.toml excludes 6.12.0 for this reason")
    report.emit(f"Refcount per void Qt call / signal emit: None {none_drift:+d}, True {true_drift:+d} ({verdict})")


def malloc_trim() -> float | None:
    """glibc only: hand freed heap memory back to the system, then the RSS; None elsewhere."""
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        return None
    return rss_mb()


def have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class Report:
    """Collects the rows and prints them as one table at the end (and section by section as they come)."""

    WIDTH = 100

    def __init__(self):
        self.lines: list[str] = []

    def emit(self, line: str = "") -> None:
        self.lines.append(line)
        print(line, flush=True)

    def section(self, title: str) -> None:
        self.emit()
        self.emit(title)
        self.emit("-" * self.WIDTH + f"\n(1-minute load average now: {load_average()})")

    def timing_header(self, label_width: int = 56) -> None:
        self.emit(f"{'':{label_width}} {'median':>9} {'p90':>9} {'best':>9} {'n':>5}   (ms)")

    def timing(self, label: str, timing: Timing | None, note: str = "", label_width: int = 56) -> None:
        body = timing.text() if timing is not None and timing.samples else f"{'-':>9} {'-':>9} {'-':>9} {'-':>5}"
        self.emit(f"{label:{label_width}} {body}" + (f"   {note}" if note else ""))


# =========================================================================== Qt set-up


def make_app():
    from PySide6.QtCore import QStandardPaths
    QStandardPaths.setTestModeEnabled(True)       # autosave and log go to a test location
    from explorer.ui.app import make_application
    return make_application()


def temp_settings(folder: Path):
    from PySide6.QtCore import QSettings
    return QSettings(str(folder / "settings.ini"), QSettings.Format.IniFormat)


def wait_events(ms: int) -> None:
    from PySide6.QtCore import QEventLoop, QTimer
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def close_window(window) -> None:
    window.document.undo_stack.setClean()          # no "save changes?" dialog
    window.close()
    window.deleteLater()
    wait_events(50)


class PixelProbe:
    """Watches the feature grid's ImageItem: when it receives an image (``setImage``), whether that
    image shows the edit's own run (its focused layer, sent before the rest of the stack, or the whole
    run's answer) or re-shows an OLD result while the new run is on its way, and when it is painted."""

    def __init__(self, window):
        from PySide6.QtCore import QEventLoop
        self.window = window
        self.item = window.feature_view.grid.image_item
        self.events: list[tuple[str, float, object]] = []   # (kind, time, the LayerResult on screen)
        self.loop: QEventLoop | None = None
        self.engine_seconds: list[float] = []
        self.target = 0             # the run generation of the edit being measured
        self.fresh: set[int] = set()   # ids of the LayerResults that edit's run produced
        self._set, self._paint = self.item.setImage, self.item.paint
        self.item.setImage = self._on_set
        self.item.paint = self._on_paint
        window.runner.finished.connect(self._on_finished)
        window.runner.focus_ready.connect(self._on_focus)

    def _on_set(self, *args, **kwargs):
        # The window's own slot draws before this probe's slots hear of the answer: which run the
        # image came from is decided from the LayerResult shown, once the answers are in.
        self.events.append(("set", time.perf_counter(), self.window.feature_view.result))
        return self._set(*args, **kwargs)

    def _on_paint(self, *args, **kwargs):
        result = self._paint(*args, **kwargs)
        self.events.append(("paint", time.perf_counter(), None))
        if self.loop is not None and self._final_paint() is not None:
            self.loop.quit()
        return result

    def _on_focus(self, focus) -> None:
        if focus.generation >= self.target:
            self.fresh.add(id(focus.layer))

    def _on_finished(self, reply) -> None:
        if reply.result is not None:
            self.engine_seconds.append(reply.result.seconds)
            if reply.generation >= self.target:
                self.fresh.update(id(layer) for layer in reply.result.layers)

    def _is_fresh(self, shown) -> bool:
        return shown is not None and id(shown) in self.fresh

    def _final_set(self) -> float | None:
        return next((t for kind, t, shown in self.events if kind == "set" and self._is_fresh(shown)), None)

    def _final_paint(self) -> float | None:
        t_set = self._final_set()
        if t_set is None:
            return None
        return next((t for kind, t, _ in self.events if kind == "paint" and t >= t_set), None)

    def measure(self, edit, timeout_ms: int = 10_000) -> tuple[float, float, float, int]:
        """Runs edit(); returns ms until edit() returned (the GUI thread was blocked that long),
        until the new image reached the item, until it was painted, and how many stale renders
        happened on the way."""
        from PySide6.QtCore import QEventLoop, QTimer
        self.events.clear()
        self.fresh.clear()
        self.target = self.window.runner.latest_generation + 1     # the run the edit submits
        t0 = time.perf_counter()
        edit()
        t_sync = time.perf_counter()
        if self._final_paint() is None:
            self.loop = QEventLoop()
            timer = QTimer()
            timer.setSingleShot(True)
            timer.timeout.connect(self.loop.quit)
            timer.start(timeout_ms)
            self.loop.exec()
            timer.stop()
            self.loop = None
        t_set, t_paint = self._final_set(), self._final_paint()
        if t_set is None or t_paint is None:
            raise RuntimeError("the grid was not updated within the timeout")
        stale = sum(1 for kind, _, shown in self.events if kind == "set" and not self._is_fresh(shown))
        return (t_sync - t0) * 1000, (t_set - t0) * 1000, (t_paint - t0) * 1000, stale


# =========================================================================== 1. edit to pixels


def write_512_image(folder: Path) -> Path:
    from PIL import Image
    from explorer.core.resources import resource_path
    path = folder / "astronaut_512.png"
    with Image.open(resource_path("samples", "astronaut.png")) as img:
        img.convert("RGB").resize((512, 512), Image.Resampling.BICUBIC).save(path)
    return path


def open_window(app, folder: Path, device: str, source=None):
    from explorer.core.input_source import InputSource
    from explorer.ui.main_window import MainWindow
    window = MainWindow(source=source or InputSource.image(write_512_image(folder)), device=device,
                        settings=temp_settings(folder))
    window.resize(1400, 900)
    window.show()
    if not window.runner.wait_until_idle(30_000):
        raise RuntimeError("the first run did not finish")
    window.document.select(0)
    wait_events(200)
    from explorer.ui.gc_collector import freeze_startup_objects
    freeze_startup_objects()            # as the app does once its window is up
    return window


def _toggle_channels(doc) -> None:
    doc.set_arg(0, "out_channels", 7 if doc.layer(0).args.get("out_channels") == 6 else 6)


def _toggle_kernel(doc) -> None:
    doc.set_arg(0, "kernel_size", 5 if doc.layer(0).args.get("kernel_size") == 3 else 3)


def _toggle_seed(doc) -> None:
    doc.set_seed(1 if doc.stack.seed == 0 else 0)


# Each edit changes the stack from whatever it is now, so none is ever a no-op.
EDITS = [
    ("conv1 out_channels 6 <-> 7 (grid shape changes)", _toggle_channels),
    ("conv1 kernel_size 3 <-> 5 (map size changes)", _toggle_kernel),
    ("stack seed 0 <-> 1 (same shapes, new weights)", _toggle_seed),
]


def bench_edits(report: Report, app, folder: Path, device: str, edits: int, warmup: int) -> None:
    window = open_window(app, folder, device)
    probe = PixelProbe(window)
    doc = window.document
    out = window.result.layers[0].output
    report.section(f"1. Edit -> pixels in the real window ({os.environ.get('QT_QPA_PLATFORM', 'native')} Qt, "
                   f"device {window.device}): input {list(window.batch.tensor.shape)}, "
                   f"default stack, conv1 selected, grid {list(out.shape)}")
    report.timing_header()
    all_paint: list[float] = []
    stale_total = 0
    for label, edit in EDITS:
        sync, to_set, to_paint = Timing(), Timing(), Timing()
        for i in range(warmup + edits):
            t_sync, t_set, t_paint, stale = probe.measure(lambda: edit(doc))
            if i >= warmup:
                sync.samples.append(t_sync)
                to_set.samples.append(t_set)
                to_paint.samples.append(t_paint)
                stale_total += stale
        doc.undo_stack.setClean()
        report.emit(label)
        report.timing("  edit -> new image in the grid's ImageItem (setImage)", to_set)
        report.timing("  edit -> that image painted (what the user sees)", to_paint,
                      "PASS" if to_paint.median < TARGET_EDIT_MS else f"over the {TARGET_EDIT_MS:.0f} ms target")
        report.timing("  of which the edit call itself (GUI thread blocked)", sync)
        all_paint += to_paint.samples
    report.emit(f"stale re-renders of the OLD result during an edit: {stale_total} in {len(EDITS) * edits} edits "
                f"(selection_changed re-shows the previous result before the new run answers)")
    report.emit("The same edits one at a time: each on a settled window (the last edit's run, numbers and panels "
                "done), as a keystroke or a click meets it")
    settled: list[float] = []
    gui_to_paint, gui_whole = Timing(), Timing()    # CPU time of the GUI thread itself, per edit
    probe.engine_seconds.clear()       # back to back, most runs are stopped after the maps are sent
    for label, edit in EDITS:
        to_paint = Timing()
        for i in range(warmup + edits):
            settle_window(window, 30_000)
            wait_events(60)
            cpu0 = time.thread_time()
            _, _, t_paint, _ = probe.measure(lambda: edit(doc))
            cpu1 = time.thread_time()
            settle_window(window, 30_000)       # the numbers, the held panels, the channel view
            if i >= warmup:
                to_paint.samples.append(t_paint)
                gui_to_paint.samples.append((cpu1 - cpu0) * 1000)
                gui_whole.samples.append((time.thread_time() - cpu0) * 1000)
        doc.undo_stack.setClean()
        report.timing(f"  {label.split(' (')[0]}: edit -> painted", to_paint,
                      "PASS" if to_paint.median <= TARGET_EDIT_MS else f"over the {TARGET_EDIT_MS:.0f} ms target")
        settled += to_paint.samples
    # What the window's own thread spends: on two cores it shares them with torch's two threads.
    report.timing("  GUI thread CPU per edit, until the maps are painted", gui_to_paint)
    report.timing("  GUI thread CPU per edit, everything it redraws", gui_whole)
    engine = Timing([s * 1000 for s in probe.engine_seconds])
    report.timing("  engine: the whole run in the worker (RunResult.seconds)", engine)
    close_window(window)

    # The same work without the window.
    from explorer.core.render import render_grid
    from explorer.core.stats import layer_stats
    torch.manual_seed(0)
    dev = torch.device(window.device)
    x = torch.rand(1, 3, 512, 512, device=dev)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2)).to(dev).eval()
    sync_fn = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else None

    def forward():
        with torch.no_grad():
            return model(x)

    with torch.no_grad():
        conv = model[0](x)[0]
    report.emit("The same work without the window")
    bare = time_ms(forward, 30, 3, sync_fn)
    report.timing("  bare torch: conv+relu+pool on 1x3x512x512", bare)

    paused = Timing()               # what an edit on a settled window meets: a CPU that has been idle
    for _ in range(30):
        time.sleep(0.06)
        paused.samples += time_ms(forward, 1, 0, sync_fn).samples
    report.timing("  bare torch: the same, each after a 60 ms pause", paused,
                  "an idle CPU starts slow here" if paused.median > 1.3 * bare.median else "")

    def fresh_conv():
        with torch.no_grad():
            return torch.nn.Conv2d(3, 6, 3).to(dev)(x)

    report.timing("  bare torch: new Conv2d(3,6,3) (init) + forward", time_ms(fresh_conv, 30, 3, sync_fn))
    report.timing(f"  render_grid of conv1 {list(conv.shape)} -> uint8", time_ms(lambda: render_grid(conv), 30, 3))
    report.timing(f"  layer_stats of conv1 (the stats panel)", time_ms(lambda: layer_stats(conv[None]), 30, 3))
    median = statistics.median(all_paint)
    one_at_a_time = statistics.median(settled)
    report.emit(f"edit -> painted, one edit at a time: median {one_at_a_time:.1f} ms, "
                f"p90 {percentile(settled, 90):.1f} ms (target <= {TARGET_EDIT_MS:.0f} ms: "
                f"{'PASS' if one_at_a_time <= TARGET_EDIT_MS else 'over'})")
    report.emit(f"edit -> painted, back to back (each edit as soon as the last one's maps are painted): median "
                f"{median:.1f} ms, p90 {percentile(all_paint, 90):.1f} ms (target <= {TARGET_EDIT_MS:.0f} ms: "
                f"{'PASS' if median <= TARGET_EDIT_MS else 'over'})")
    report.emit(f"side by side: edit -> painted {one_at_a_time:.1f} ms one at a time, {median:.1f} ms back to back | "
                f"bare torch forward {bare.median:.1f} ms ({paused.median:.1f} ms after a pause) | "
                f"engine in the worker {engine.median:.1f} ms")


# =========================================================================== 2. grids


GRIDS = [(64, 224, 224), (512, 14, 14)]


def make_maps(count: int, h: int, w: int, device="cpu") -> torch.Tensor:
    g = torch.Generator().manual_seed(count)
    return torch.randn(count, h, w, generator=g).to(device)


def ours_display(app, maps: torch.Tensor, repeats: int) -> tuple[Timing, Timing, Timing]:
    """render_grid alone, render + setImage (through the app's FeatureGrid) + a forced paint, and the
    same as the window does it: grids over DISPLAY_MAX_PIXELS shrunk on the device first."""
    from explorer.core.colormaps import get_lut
    from explorer.core.render import DISPLAY_MAX_PIXELS, render_grid
    from explorer.ui.feature_grid import FeatureGrid

    lut = get_lut("gray")                      # the window's default colour map
    view = FeatureGrid()
    view.resize(800, 800)
    view.show()
    wait_events(50)

    def full(max_pixels=None):
        grid = render_grid(maps, "channel", max_pixels=max_pixels)
        view.set_image(grid.image, grid.layout, lut)
        view.grab()          # paints the whole view into a pixmap: LUT applied, QImage built, drawn

    render_only = time_ms(lambda: render_grid(maps, "channel"), repeats, 2)
    shown = time_ms(full, repeats, 2)
    budget = time_ms(lambda: full(DISPLAY_MAX_PIXELS), repeats, 2)
    view.close()
    view.deleteLater()
    return render_only, shown, budget


def mpl_new_figure(maps: np.ndarray, repeats: int) -> Timing:
    import matplotlib.pyplot as plt
    n = maps.shape[0]
    side = int(np.ceil(np.sqrt(n)))            # 8x8 for 64, 23x23 for 512

    def draw():
        fig, axes = plt.subplots(side, side, figsize=(8, 8), dpi=100)
        for i, ax in enumerate(axes.flat):
            if i < n:
                ax.imshow(maps[i], cmap="gray")
            ax.axis("off")
        fig.canvas.draw()
        plt.close(fig)

    return time_ms(draw, repeats, 1)


def mpl_reuse_figure(maps: np.ndarray, repeats: int) -> Timing:
    """The fastest fair matplotlib: the figure and images exist; only set_data, autoscale, draw."""
    import matplotlib.pyplot as plt
    n = maps.shape[0]
    side = int(np.ceil(np.sqrt(n)))
    fig, axes = plt.subplots(side, side, figsize=(8, 8), dpi=100)
    images = []
    for i, ax in enumerate(axes.flat):
        if i < n:
            images.append(ax.imshow(maps[i], cmap="gray"))
        ax.axis("off")
    fig.canvas.draw()
    flip = [maps, maps[::-1].copy()]
    state = {"k": 0}

    def redraw():
        state["k"] ^= 1
        data = flip[state["k"]]
        for im, plane in zip(images, data):
            im.set_data(plane)
            im.autoscale()          # per-channel range, like our "channel" normalisation
        fig.canvas.draw()

    timing = time_ms(redraw, repeats, 1)
    plt.close(fig)
    return timing


def tensorboard_images(maps: torch.Tensor, repeats: int, folder: Path) -> Timing:
    from torch.utils.tensorboard import SummaryWriter
    writer = SummaryWriter(log_dir=str(folder / "tb"))
    step = {"i": 0}

    def add():
        # add_images expects [0, 1] floats: each channel to its own range first, as we do.
        flat = maps.reshape(maps.shape[0], -1)
        lo, hi = flat.amin(1).view(-1, 1, 1), flat.amax(1).view(-1, 1, 1)
        unit = (maps - lo) / (hi - lo).clamp_min(1e-12)
        writer.add_images("x", unit[:, None], global_step=step["i"], dataformats="NCHW")
        writer.flush()
        step["i"] += 1

    timing = time_ms(add, repeats, 1)
    writer.close()
    return timing


def bench_grids(report: Report, app, folder: Path, repeats: int, mpl_repeats: int) -> None:
    report.section("2. Drawing a grid of feature maps (CPU): ours vs matplotlib vs TensorBoard")
    has_mpl, has_tb = have("matplotlib"), have("tensorboard")
    if has_mpl:
        import matplotlib
        matplotlib.use("Agg")
    else:
        report.emit("matplotlib is not installed: its columns are skipped (pip install matplotlib).")
    if not has_tb:
        report.emit("tensorboard is not installed: its column is skipped (pip install tensorboard).")
    report.timing_header()
    summary = []
    for count, h, w in GRIDS:
        maps = make_maps(count, h, w)
        label = f"{count} x {h}x{w}"
        report.emit(f"{label} channels")
        render_only, ours, window = ours_display(app, maps, repeats)
        report.timing("  ours: render_grid -> uint8 only", render_only)
        report.timing("  ours: render_grid + setImage(lut) + paint (view.grab)", ours)
        report.timing("  ours as the window draws it (4 MP display budget)", window)
        row = {"label": label, "ours": ours.median}
        if has_mpl:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                new = mpl_new_figure(maps.numpy(), mpl_repeats)
                reuse = mpl_reuse_figure(maps.numpy(), max(mpl_repeats, 3))
            report.timing(f"  matplotlib: plt.subplots({int(np.ceil(np.sqrt(count)))}x..) + imshow each + draw", new)
            report.timing("  matplotlib: figure kept, set_data + autoscale + draw", reuse)
            row["mpl_new"], row["mpl_reuse"] = new.median, reuse.median
        if has_tb:
            try:
                tb = tensorboard_images(maps, max(mpl_repeats, 3), folder)
                report.timing("  TensorBoard: SummaryWriter.add_images + flush", tb)
                row["tb"] = tb.median
            except Exception as e:                # a broken tensorboard install must not end the run
                report.emit(f"  TensorBoard failed: {type(e).__name__}: {e}")
        summary.append(row)
    report.emit()
    report.emit(f"{'speedup of ours (median vs median)':40} {'vs mpl new fig':>16} {'vs mpl kept fig':>16} "
                f"{'vs TensorBoard':>16}")
    for row in summary:
        def factor(key):
            if key not in row:
                return f"{'skipped':>16}"
            x = row[key] / row["ours"]
            return f"{x:.1f}x" + ("" if x >= TARGET_SPEEDUP else f" (<{TARGET_SPEEDUP:.0f}x)")
        report.emit(f"  {row['label']:38} {factor('mpl_new'):>16} {factor('mpl_reuse'):>16} {factor('tb'):>16}")


# =========================================================================== 3. memory


def bench_memory(report: Report, app, folder: Path, device: str, edits: int) -> None:
    window = open_window(app, folder, device)
    probe = PixelProbe(window)
    doc = window.document
    report.section(f"3. Memory: process RSS over {edits} edits in the window (out_channels, kernel_size, seed in turn)")
    # A few edits first, so caches and lazily created objects exist.
    for i in range(10):
        probe.measure(lambda: EDITS[i % 3][1](doc))
    gc.collect()
    checkpoints = [(0, rss_mb())]
    none_before = sys.getrefcount(None)
    for i in range(1, edits + 1):
        probe.measure(lambda: EDITS[i % 3][1](doc))
        if i % 50 == 0:
            gc.collect()
            checkpoints.append((i, rss_mb()))
    none_drift = (sys.getrefcount(None) - none_before) / edits
    report.emit("  " + "  ".join(f"after {n:3d}: {mb:7.1f} MB" for n, mb in checkpoints[:5]))
    if len(checkpoints) > 5:
        report.emit("  " + "  ".join(f"after {n:3d}: {mb:7.1f} MB" for n, mb in checkpoints[5:]))
    growth = checkpoints[-1][1] - checkpoints[0][1]
    report.emit(f"  RSS growth over {edits} edits: {growth:+.1f} MB (undo steps kept: {doc.undo_stack.count()})")
    trimmed = malloc_trim()
    if trimmed is not None:
        report.emit(f"  after malloc_trim(0): {trimmed:7.1f} MB, {trimmed - checkpoints[0][1]:+.1f} MB against the start "
                    f"({'memory the allocator kept, not live objects' if trimmed - checkpoints[0][1] < 20 else 'LIVE GROWTH'})")
        if growth > 20 and trimmed - checkpoints[0][1] < 20 and "MALLOC_MMAP_THRESHOLD_" not in os.environ:
            report.emit("  (glibc raises its mmap threshold after the first big free, so later multi-MB tensors live "
                        "on the heap, which keeps the pages. MALLOC_MMAP_THRESHOLD_=131072 keeps RSS flat but makes "
                        "every big tensor a fresh mmap (edits ~50% slower on 2 cores); a malloc_trim(0) when idle, "
                        "~10 ms, gives the memory back instead.)")
    cache = getattr(window.feature_view, "_stats_cache", None)
    if cache is not None:
        report.emit(f"  FeatureView stats cache: {len(cache)} entries after {edits + 10} runs "
                    f"(meant to keep at most {getattr(sys.modules['explorer.ui.feature_view'], '_STATS_CACHE_SIZE', '?')})")
    report.emit(f"  None refcount change per edit: {none_drift:+.0f} (negative: the Qt binding leaks)")
    close_window(window)


# =========================================================================== 5. GUI stalls


STALL_MS = 100.0      # a heartbeat gap over this is a stall (the target for the stall row)


class StallWatch:
    """A 10 ms QTimer on the GUI thread records the gaps between its ticks; a plain watchdog
    thread notices a tick overdue by STALL_MS and samples the GUI thread's Python stack while it is
    stuck, so each stall is named by where the GUI thread was."""

    def __init__(self):
        import threading
        from PySide6.QtCore import QTimer
        self.gui = threading.get_ident()
        self.last = time.perf_counter()
        self.last_cpu = time.thread_time()
        self.gaps: list[tuple[float, str]] = []       # (ms, where) of each stall over STALL_MS
        self.worst = 0.0
        self.worst_cpu = 0.0     # the GUI thread's own CPU time in its busiest gap: what load cannot inflate
        self._where = ""
        self._stop = threading.Event()
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._tick)
        self.timer.start()
        self._thread = threading.Thread(target=self._watch, name="stall-watch", daemon=True)
        self._thread.start()

    def reset(self) -> None:
        self.last, self.last_cpu = time.perf_counter(), time.thread_time()
        self.gaps, self.worst, self.worst_cpu, self._where = [], 0.0, 0.0, ""

    def _tick(self) -> None:
        now, cpu = time.perf_counter(), time.thread_time()      # thread_time: this (GUI) thread only
        gap = (now - self.last) * 1000
        self.worst_cpu = max(self.worst_cpu, (cpu - self.last_cpu) * 1000)
        self.last, self.last_cpu = now, cpu
        if gap > self.worst:
            self.worst = gap
        if gap > STALL_MS:
            self.gaps.append((gap, self._where))
        self._where = ""

    def _watch(self) -> None:
        import traceback
        while not self._stop.wait(0.02):
            if (time.perf_counter() - self.last) * 1000 > STALL_MS and not self._where:
                frame = sys._current_frames().get(self.gui)
                if frame is None:
                    continue
                frames = traceback.extract_stack(frame)
                ours = [f for f in frames if "explorer" in f.filename or "pyqtgraph" in f.filename]
                pick = ours[-3:] if ours else frames[-3:]
                self._where = " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(pick))

    def stop(self) -> None:
        self._stop.set()
        self.timer.stop()

    def worst_stall(self) -> str:
        if not self.gaps:
            return "none"
        gap, where = max(self.gaps)
        return f"{gap:.0f} ms at {where or 'an unsampled place'}"


def write_image(folder: Path, w: int, h: int) -> Path:
    from PIL import Image
    from explorer.core.resources import resource_path
    path = folder / f"astronaut_{w}x{h}.png"
    with Image.open(resource_path("samples", "astronaut.png")) as img:
        img.convert("RGB").resize((w, h), Image.Resampling.BICUBIC).save(path)
    return path


def settle_window(window, timeout_ms: int = 600_000) -> None:
    if not window.runner.wait_until_idle(timeout_ms):
        raise RuntimeError("the run did not finish")
    window.feature_view.wait_until_ready(timeout_ms)
    window.kernel_editor.wait_until_ready(timeout_ms)
    wait_events(30)


def bench_stalls(report: Report, app, folder: Path, device: str, channels: int, kernel: int, walkthrough: str) -> None:
    from explorer.core.input_source import InputSource
    window = open_window(app, folder, device, source=InputSource.image(write_image(folder, 1024, 768)))
    doc = window.document
    report.section(f"5. GUI stalls (heartbeat gaps over {STALL_MS:.0f} ms): conv1 out_channels {channels}, "
                   f"kernel {kernel}, 1024x768 input, load {load_average()}")
    watch = StallWatch()
    t0 = time.perf_counter()
    doc.set_args(0, {"out_channels": channels, "kernel_size": kernel})
    settle_window(window)
    report.emit(f"  the edit to {channels} channels, run and drawn: {(time.perf_counter() - t0):.1f} s; "
                f"worst gap {watch.worst:.0f} ms; worst stall: {watch.worst_stall()}")
    shapes = [tuple(l.output.shape) for l in window.result.layers]
    for round_name in ("first visit (nothing prepared)", "second visit (prepared before)"):
        watch.reset()
        times = []
        for i in range(len(doc.stack.layers)):
            t = time.perf_counter()
            doc.select(i)
            settle_window(window)
            times.append((time.perf_counter() - t) * 1000)
        verdict = "PASS" if watch.worst <= STALL_MS else "FAIL"
        report.emit(f"  clicking through {len(shapes)} layers {shapes}, {round_name}: worst GUI-thread gap "
                    f"{watch.worst:.0f} ms ({verdict}, target {STALL_MS:.0f} ms; GUI thread on a CPU for at most "
                    f"{watch.worst_cpu:.0f} ms of one gap); click -> drawn "
                    + ", ".join(f"{t:.0f}" for t in times) + " ms")
        if watch.gaps:
            report.emit(f"    worst stall: {watch.worst_stall()}")
    watch.reset()
    walk = window.walkthroughs.open(walkthrough, "random")
    t = time.perf_counter()
    walk.wait_until_idle(600_000)
    opened = time.perf_counter() - t
    wait_events(100)
    walk.close()
    wait_events(300)
    report.emit(f"  {walkthrough} walkthrough opened ({opened:.1f} s in the background) and closed: worst gap "
                f"{watch.worst:.0f} ms; worst stall: {watch.worst_stall()}")
    watch.reset()
    doc.set_args(0, {"out_channels": 6, "kernel_size": 3})
    settle_window(window)
    wait_events(1500)          # the collector's timer and the freed gigabytes
    report.emit(f"  back to 6 channels after the big conv: worst gap {watch.worst:.0f} ms; "
                f"worst stall: {watch.worst_stall()}")
    watch.stop()
    close_window(window)


# =========================================================================== 6. memory under mixed use


def bench_mixed_memory(report: Report, app, folder: Path, device: str, edits: int) -> None:
    """Random use as the issue's 25-minute session had it, but scripted and repeatable."""
    import random

    from explorer.core.input_source import InputSource
    rng = random.Random(9)
    window = open_window(app, folder, device)
    doc = window.document
    report.section(f"6. Memory under mixed use: {edits} edits (layers added/removed, kernel cells, inputs, "
                   f"LeNet walkthroughs), load {load_average()}")
    sources = [InputSource.sample("astronaut"), InputSource.sample("cat"), InputSource.image(write_512_image(folder))]

    def one_edit(n: int) -> None:
        kind = n % 10
        layers = doc.stack.layers
        if kind in (0, 1) and len(layers) < 8:
            doc.select(len(layers) - 1)
            doc.add_layer(rng.choice(["ReLU", "Conv2d", "BatchNorm2d", "MaxPool2d"]))
        elif kind == 2 and len(layers) > 3:
            doc.remove_layer(len(layers) - 1)
        elif kind in (3, 4, 5):
            doc.select(0)
            settle_window(window)
            editor = window.kernel_editor
            if editor._weight is not None:
                editor._cell_edited(rng.randrange(3), rng.randrange(3), rng.uniform(-1, 1))
        elif kind == 6:
            window.set_source(rng.choice(sources))
        elif kind == 7 and n % 50 == 7:
            walk = window.walkthroughs.open("lenet", "random")
            walk.wait_until_idle(120_000)
            walk.close()
        else:
            doc.select(rng.randrange(len(layers)))
        settle_window(window)

    for n in range(100):                # caches, lazily built objects, the first walkthrough
        one_edit(n)
    gc.collect()
    wait_events(100)
    from PySide6.QtWidgets import QApplication
    start = malloc_trim() or rss_mb()
    none_before = sys.getrefcount(None)

    def census() -> str:
        # Where growth could hide besides the C heap: live widgets and Python objects.
        return f"{len(QApplication.allWidgets())} widgets, {len(gc.get_objects()) // 1000}k objects"

    checkpoints = [(0, start, census())]
    t0 = time.perf_counter()
    for n in range(1, edits + 1):
        one_edit(n)
        if n % max(1, edits // 5) == 0:
            gc.collect()
            # After malloc_trim: growth that levels off (a bounded cache) versus growth per edit (a leak).
            checkpoints.append((n, malloc_trim() or rss_mb(), census()))
            print(f"  ... {n} edits: {checkpoints[-1][1] - start:+.1f} MB after malloc_trim; {checkpoints[-1][2]}",
                  flush=True)
    seconds = time.perf_counter() - t0
    gc.collect()
    wait_events(200)
    none_drift = (sys.getrefcount(None) - none_before) / edits
    trimmed = malloc_trim()
    for n, mb, objects in checkpoints:
        report.emit(f"  after {n:4d} edits: {mb:7.1f} MB after malloc_trim, {mb - start:+6.1f} MB; {objects}")
    history = doc.history_bytes() / 2**20
    if trimmed is not None:
        growth = trimmed - start
        report.emit(f"  after malloc_trim(0): {trimmed:7.1f} MB, {growth:+.1f} MB against the start "
                    f"({'PASS' if growth < 20 else 'FAIL'}, target < 20 MB); {seconds:.0f} s for {edits} edits")
    report.emit(f"  undo steps kept: {doc.undo_stack.count()} holding {history:.1f} MB of tensors of their own; "
                f"None refcount change per edit: {none_drift:+.1f}")
    steps = doc.undo_stack.count()
    doc.undo_stack.clear()
    gc.collect()
    wait_events(100)
    cleared = malloc_trim()
    if cleared is not None and trimmed is not None:
        report.emit(f"  with the undo history cleared: {cleared:7.1f} MB, {cleared - start:+.1f} MB against the start "
                    f"(the {steps} steps took {trimmed - cleared:.1f} MB)")
    close_window(window)


# =========================================================================== 4. CUDA


def bench_cuda(report: Report, repeats: int) -> None:
    report.section("4. Grid render on CUDA (render_grid runs on the tensor's device; one uint8 copy to the host)")
    if not torch.cuda.is_available():
        report.emit("CUDA: not available")
        return
    from explorer.core.render import render_grid
    report.emit(f"CUDA device: {torch.cuda.get_device_name(0)}")
    report.timing_header()
    for count, h, w in GRIDS:
        maps = make_maps(count, h, w, "cuda")
        t = time_ms(lambda: render_grid(maps, "channel"), repeats, 3, torch.cuda.synchronize)
        report.timing(f"  render_grid {count} x {h}x{w} on cuda -> host uint8", t)


# =========================================================================== main


def machine_info(report: Report, device: str) -> None:
    import PySide6
    import pyqtgraph
    from explorer.core.devices import resolve_device
    report.emit("=" * Report.WIDTH)
    report.emit("Feature Map Explorer benchmark")
    report.emit("=" * Report.WIDTH)
    report.emit(f"CPU: {cpu_name()} | {os.cpu_count()} cores | torch threads {torch.get_num_threads()}")
    report.emit(f"Python {platform.python_version()} | torch {torch.__version__} | PySide6 {PySide6.__version__} | "
                f"pyqtgraph {pyqtgraph.__version__} | numpy {np.__version__}")
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    report.emit(f"Run device: {resolve_device(device)} (asked: {device}) | GPU: {gpu} | "
                f"Qt platform: {os.environ.get('QT_QPA_PLATFORM', 'native')} | {platform.platform()}")
    extras = []
    for name in ("matplotlib", "tensorboard", "psutil"):
        if have(name):
            mod = __import__(name)
            extras.append(f"{name} {getattr(mod, '__version__', '?')}")
        else:
            extras.append(f"{name} missing")
    report.emit(" | ".join(extras))
    tuned = [f"{k}={os.environ[k]}" for k in ("MALLOC_MMAP_THRESHOLD_", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
             if k in os.environ]
    if tuned:
        report.emit("Environment: " + " ".join(tuned))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke check, not a measurement)")
    parser.add_argument("--edits", type=int, default=30, help="timed edits per kind of edit (default 30)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed edits first (default 5)")
    parser.add_argument("--memory-edits", type=int, default=200, help="edits for the memory check (default 200)")
    parser.add_argument("--repeats", type=int, default=20, help="repeats of our grid draw (default 20)")
    parser.add_argument("--mpl-repeats", type=int, default=3, help="repeats of the slow baselines (default 3)")
    parser.add_argument("--device", default="auto", help="device for the window's runs (default auto)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch.set_num_threads for the whole process (default: torch's own choice)")
    parser.add_argument("--skip", default="",
                        help="comma list of sections to skip: edits,grids,memory,cuda,stalls,mixed")
    parser.add_argument("--stall-channels", type=int, default=512, help="conv1 out_channels for the stall row")
    parser.add_argument("--stall-kernel", type=int, default=3, help="conv1 kernel_size for the stall row "
                        "(the issue also used 31: minutes of convolution on a 2-core CPU)")
    parser.add_argument("--stall-walkthrough", default="vgg16", help="the walkthrough opened in the stall row")
    parser.add_argument("--mixed-edits", type=int, default=1000, help="edits for the mixed-use memory row")
    args = parser.parse_args(argv)
    if args.quick:
        args.edits, args.warmup, args.memory_edits, args.repeats, args.mpl_repeats = 6, 2, 30, 5, 1
        args.stall_channels, args.stall_walkthrough, args.mixed_edits = 64, "lenet", 100
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    report = Report()
    machine_info(report, args.device)
    app = make_app()
    report_singleton_refcounts(report)
    with tempfile.TemporaryDirectory(prefix="fme-bench-") as tmp:
        folder = Path(tmp)
        if "edits" not in skip:
            bench_edits(report, app, folder, args.device, args.edits, args.warmup)
        if "grids" not in skip:
            bench_grids(report, app, folder, args.repeats, args.mpl_repeats)
        if "memory" not in skip:
            bench_memory(report, app, folder, args.device, args.memory_edits)
        if "cuda" not in skip:
            bench_cuda(report, args.repeats)
        if "stalls" not in skip:
            bench_stalls(report, app, folder, args.device, args.stall_channels, args.stall_kernel,
                         args.stall_walkthrough)
        if "mixed" not in skip:
            bench_mixed_memory(report, app, folder, args.device, args.mixed_edits)
    report.emit("=" * Report.WIDTH)
    return 0


if __name__ == "__main__":
    sys.exit(main())

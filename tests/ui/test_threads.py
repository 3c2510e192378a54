"""Threads and the GUI thread: cyclic garbage is freed only on the GUI thread (a Qt object freed on
the autosave thread deadlocked the window for good), errors from worker threads reach the GUI
thread through a signal, and the window keeps answering while autosave, background runs,
walkthroughs opening and closing, and form rebuilds all happen at once."""

from __future__ import annotations

import faulthandler
import gc
import sys
import threading
import time

import pytest
from PySide6.QtCore import QTimer

from explorer.ui import app as app_module


class _Marker:
    """Stands for a Qt wrapper caught in a reference cycle: records the thread that frees it."""

    def __init__(self, freed_on: list):
        self.freed_on = freed_on
        self.me = self                       # a cycle: only the cyclic collector can free it

    def __del__(self):
        self.freed_on.append(threading.get_ident())


def test_cyclic_garbage_is_freed_on_the_gui_thread_only(qtbot, gui_thread_gc):
    """The autosave thread allocates a lot (json.dumps); with automatic collection that thread would
    run the collector and free whatever cycles exist there, Qt wrappers included."""
    assert not gc.isenabled()
    freed_on: list[int] = []
    _Marker(freed_on)                          # garbage now, in a cycle

    kept = []

    def allocate():                            # well past the youngest generation's threshold
        kept.extend([i] for i in range(20_000))

    worker = threading.Thread(target=allocate)
    worker.start()
    worker.join()
    assert freed_on == []                      # not on the worker thread, not yet
    qtbot.waitUntil(lambda: freed_on != [], timeout=5000)    # the GUI thread's timer collects it
    assert freed_on == [threading.get_ident()]


def test_collector_is_installed_once_and_turns_automatic_collection_off(qapp, gui_thread_gc):
    from explorer.ui.gc_collector import install_gc_collector
    gc.enable()                                # as a library might
    again = install_gc_collector(qapp)
    assert again is gui_thread_gc and not gc.isenabled() and again.timer.isActive()


def test_an_error_on_a_worker_thread_is_shown_from_the_gui_thread(qtbot, monkeypatch):
    """The hook runs on the thread that failed; the dialog must open on the GUI thread (a
    QTimer.singleShot from a worker thread never fires: that thread has no event loop)."""
    from explorer.ui import dialogs
    shown = []
    monkeypatch.setattr(dialogs, "show_error", lambda parent, title, message, details:
                        shown.append((threading.get_ident(), message)))
    old_hook, old_thread_hook = sys.excepthook, threading.excepthook
    try:
        app_module.install_error_hooks(lambda: None)
        worker = threading.Thread(target=lambda: 1 / 0)
        worker.start()
        worker.join()
        qtbot.waitUntil(lambda: shown != [], timeout=3000)
    finally:
        sys.excepthook, threading.excepthook = old_hook, old_thread_hook
    assert shown[0][0] == threading.get_ident()
    assert shown[0][1].startswith("ZeroDivisionError: division by zero")


def test_fault_log_records_a_hang_of_the_gui_thread(qapp, tmp_path, monkeypatch):
    """faulthandler writes into the log; a GUI thread silent for HANG_DUMP_S leaves every
    thread's stack there (here with a deadline of one second)."""
    monkeypatch.setattr(app_module, "HANG_DUMP_S", 1)
    log = tmp_path / "explorer.log"
    was_enabled = faulthandler.is_enabled()    # pytest's own crash handler, on stderr
    rearm = app_module.install_fault_log(log)
    try:
        rearm.timeout.emit()                   # the deadline as the running app sets it
        time.sleep(1.6)                        # the GUI thread "hangs"
    finally:
        rearm.stop()
        faulthandler.cancel_dump_traceback_later()
        faulthandler.disable()
        if was_enabled:
            faulthandler.enable(file=sys.__stderr__)
    text = log.read_text()
    assert "Timeout (0:00:01)!" in text and "test_fault_log_records_a_hang" in text


class Heartbeat:
    """A timer on the GUI thread; the longest gap between its ticks is how long the window froze."""

    def __init__(self, interval_ms: int = 10):
        self.last = time.perf_counter()
        self.worst = 0.0
        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)
        self.timer.start()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.worst = max(self.worst, now - self.last)
        self.last = now

    def stop(self) -> float:
        self.timer.stop()
        self._tick()
        return self.worst


def stress(window, qtbot, seconds: float, seed: int = 0) -> dict:
    """Autosave every 50 ms, edits that start background runs, selection changes that rebuild the
    Arguments form, and LeNet walkthroughs opened and closed (some mid-capture), all interleaved,
    for ``seconds``. Returns counts and the worst GUI-thread gap."""
    import random
    rng = random.Random(seed)
    doc = window.document
    window.autosaver.timer.setInterval(50)
    beat = Heartbeat()
    counts = {"edits": 0, "selections": 0, "walkthroughs": 0, "autosaves": 0}
    walks = []
    start = time.perf_counter()

    def enough() -> bool:       # a busy machine does fewer actions in the time: never fewer than these
        done = counts["edits"] >= 3 and counts["selections"] >= 3 and counts["walkthroughs"] >= 1
        return time.perf_counter() - start > (seconds if done else 6 * seconds)

    while not enough():
        action = rng.random()
        convs = [i for i, l in enumerate(doc.stack.layers) if l.type == "Conv2d"]
        if action < 0.4 and convs:
            i = rng.choice(convs)
            doc.set_arg(i, "out_channels", rng.choice([4, 6, 8, 12]))
            counts["edits"] += 1
        elif action < 0.75:
            doc.select(rng.randrange(len(doc.stack.layers)))
            counts["selections"] += 1
        elif action < 0.85 and len(walks) < 2:
            walks.append(window.walkthroughs.open("lenet", "random"))
            counts["walkthroughs"] += 1
        elif walks:
            walks.pop(0).close()
        if window.autosaver.thread is not None:
            counts["autosaves"] += 1
        qtbot.wait(rng.choice([1, 5, 20, 60]))
    for walk in walks:
        walk.close()
    window.autosaver.finish()
    assert window.runner.wait_until_idle(30_000)
    counts["worst_gap_s"] = beat.stop()
    return counts


def test_window_keeps_answering_under_concurrent_autosave_runs_walkthroughs_and_forms(make_window, qtbot):
    """The deadlock of issue 9 froze the window for good: here a stuck GUI thread ends the process
    with every thread's stack (faulthandler) instead of hanging CI."""
    window = make_window()
    faulthandler.dump_traceback_later(240, exit=True)
    try:
        counts = stress(window, qtbot, seconds=4.0)
    finally:
        faulthandler.cancel_dump_traceback_later()
    print(counts)
    assert counts["edits"] >= 3 and counts["selections"] >= 3 and counts["walkthroughs"] >= 1
    assert counts["worst_gap_s"] < 3.0, counts




def test_a_layer_click_does_no_tensor_work_on_the_gui_thread(make_window, qtbot, tensor_work_threads):
    """Clicking through every layer of the default stack, then switching normalisation and mode: the
    statistics, the grids and the bars are all made on other threads, and all get drawn."""
    window = make_window()
    view, doc = window.feature_view, window.document
    gui = threading.get_ident()
    tensor_work_threads.clear()
    shown = []
    for i in range(len(doc.stack.layers)):
        doc.select(i)
        assert view.wait_until_ready(30_000)
        shown.append((view.message, view.stats_view.stats is not None))
    view.set_normalization("layer")
    view.set_mode("batch")
    assert view.wait_until_ready(30_000)
    on_gui = [name for name, thread in tensor_work_threads if thread == gui]
    assert on_gui == [], on_gui
    assert {name for name, _ in tensor_work_threads} >= {"layer_stats", "render_view"}
    assert all(message is None and has_stats for message, has_stats in shown), shown


def test_full_collections_wait_for_an_idle_user_and_are_rare(gui_thread_gc, monkeypatch):
    """A full collection walks ~400,000 objects once torch and torchvision are loaded (half a second):
    the collector does it at most every FULL_EVERY_S, and only when the user is idle."""
    from explorer.ui import gc_collector
    collected = []
    fake = type("FakeGc", (), {"get_count": staticmethod(lambda: (800, 20, 20)),
                               "get_threshold": staticmethod(lambda: (700, 10, 10)),
                               "disable": staticmethod(lambda: None),
                               "collect": staticmethod(collected.append)})
    monkeypatch.setattr(gc_collector, "gc", fake)
    collector = gc_collector.GuiGarbageCollector(None)
    collector.timer.stop()
    now = time.monotonic()
    collector._last_full, collector.last_input = now - 1000, now           # typing right now
    collector.check()
    collector._last_full, collector.last_input = now - 10, now - 1000      # idle, but one just ran
    collector.check()
    collector._last_full, collector.last_input = now - 1000, now - 1000    # idle and due
    collector.check()
    assert collected == [1, 1, 2]


class _Payload:
    """Stands for a run's result: records the thread that frees it."""

    def __init__(self, freed_on: list):
        self.freed_on = freed_on

    def __del__(self):
        self.freed_on.append(threading.get_ident())


def test_big_results_are_freed_on_the_reaper_thread_once_nobody_holds_them(qtbot):
    """Freeing 1.6 GB of tensors takes ~0.3 s: the window hands old results to the reaper."""
    from explorer.ui import reaper
    freed_on: list[int] = []
    payload = _Payload(freed_on)
    still_held = [payload]                      # a view that has not moved on yet
    reaper.release_later(payload)
    del payload
    time.sleep(reaper.HOLD_S + 0.3)
    assert freed_on == []                       # not while someone else holds it
    still_held.clear()                          # on the GUI thread: not the last reference any more
    qtbot.waitUntil(lambda: freed_on != [], timeout=3000)
    assert freed_on[0] != threading.get_ident()


def test_a_views_background_threads_end_with_the_view(qtbot, qapp):
    """Every walkthrough window has a feature view; its preparer's thread kept running (and kept the
    view's preparer object alive from a worker thread) after the window was gone: 20 walkthroughs
    opened and closed left 20 threads."""
    import torch
    from PySide6.QtCore import QCoreApplication, QEvent

    from explorer.core.engine import LayerResult
    from explorer.ui.feature_view import FeatureView
    from explorer.ui.kernel_editor import KernelEditor
    from explorer.core.layers import LayerSpec
    from explorer.core.stack import Stack
    from explorer.ui.document import StackDocument
    before = {t.ident for t in threading.enumerate()}
    view = FeatureView()
    out = torch.rand(1, 4, 8, 8)
    view.set_layer(LayerResult(0, "conv", "Conv2d", True, output=out, output_shape=tuple(out.shape)))
    assert view.wait_until_ready()
    seed = int(time.time()) % 100_000          # weights not cached by an earlier test: built on the thread
    editor = KernelEditor(StackDocument(Stack([LayerSpec("Conv2d", "c", {"in_channels": 2, "out_channels": 3,
                                                                          "kernel_size": 3})], seed)))
    assert editor.wait_until_ready()
    started = [t for t in threading.enumerate() if t.ident not in before]
    assert {t.name for t in started} >= {"display", "kernel-parameters"}
    view.deleteLater()
    editor.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    del view, editor
    qtbot.waitUntil(lambda: not any(t.is_alive() for t in started), timeout=3000)


def test_a_new_input_image_is_pictured_off_the_gui_thread(make_window, qtbot, tensor_work_threads, tmp_path):
    """The random-input session caught the input panel rendering the whole input image (up to 64 MP)
    on the GUI thread when a run brought a new input."""
    import numpy as np
    from PIL import Image

    from explorer.core.input_source import InputSource
    from explorer.core.render import render_input_image
    path = tmp_path / "wide.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 700, 3), dtype=np.uint8)).save(path)
    window = make_window()
    assert window.runner.wait_until_idle(30_000)
    gui = threading.get_ident()
    tensor_work_threads.clear()
    window.set_source(InputSource.image(path))
    qtbot.waitUntil(lambda: window.batch is not None and tuple(window.batch.tensor.shape[2:]) == (300, 700),
                    timeout=30_000)
    assert window.runner.wait_until_idle(30_000)
    on_gui = [name for name, thread in tensor_work_threads if thread == gui]
    assert "render_input_image" not in on_gui, on_gui
    shown = window.input_panel.image_item.image
    assert shown.shape == (300, 700, 3)
    assert np.array_equal(shown, render_input_image(window.batch.tensor[0]))


def test_input_to_a_focused_window_counts_as_activity_without_an_application_wide_filter(qtbot, qapp):
    """The collector watches the windows the user works in, not every event of every object (a
    Python event filter on the application made building plots 25-40% slower)."""
    from PySide6.QtCore import QCoreApplication, QEvent, Qt
    from PySide6.QtGui import QKeyEvent
    from PySide6.QtWidgets import QLineEdit
    from explorer.ui import gc_collector
    collector = gc_collector.GuiGarbageCollector(qapp)
    collector.timer.stop()
    field = QLineEdit()
    qtbot.addWidget(field)
    field.show()
    field.activateWindow()
    qtbot.waitUntil(lambda: qapp.focusWindow() is field.windowHandle(), timeout=5000)
    collector.last_input = 0.0
    QCoreApplication.sendEvent(field, QKeyEvent(QEvent.Type.KeyPress, Qt.Key_A, Qt.NoModifier, "a"))
    assert collector.last_input == 0.0              # an event straight to a widget is not watched
    QCoreApplication.sendEvent(field.windowHandle(), QKeyEvent(QEvent.Type.KeyPress, Qt.Key_B, Qt.NoModifier, "b"))
    assert collector.last_input > 0.0 and field.text().endswith("b")   # the window passed it on
    collector.stop()
    collector.deleteLater()


def test_quitting_frees_what_the_reaper_holds_before_the_interpreter_shuts_down():
    """A daemon thread still inside torch's deallocation while Python shuts down aborts the process
    ("terminate called without an active exception", seen after closing a VGG-16 walkthrough):
    run_app drains the reaper after the event loop ends. Run in a fresh interpreter (draining is
    for the end of a process)."""
    import subprocess
    import sys
    code = """
import threading
from explorer.ui import reaper
freed_on = []
class Big:
    def __del__(self):
        freed_on.append(threading.current_thread().name)
reaper.release_later(Big())
assert reaper.drain(5.0)
print(freed_on, reaper.released)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["['reaper']", "1"], out.stdout

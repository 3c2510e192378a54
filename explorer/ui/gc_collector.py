"""Python's cyclic garbage collector, run only on the GUI thread.

Left automatic, the collector runs on whichever thread happens to allocate: the autosave thread in
``json.dumps``, the run worker, a walkthrough job. If a collection there frees a cycle holding a Qt
wrapper, the C++ destructor runs off the GUI thread, where it takes Qt's mutexes and then waits for
the GIL another thread holds: we have seen that deadlock (the window frozen for good) and a
segfault. The remedy Qt applications have used for years (pyqtgraph ships it as
``pyqtgraph.util.garbage_collector.GarbageCollector``): turn automatic collection off and collect on
a timer of the GUI thread, with the same generation thresholds the automatic collector uses.
Reference counting still frees almost everything at once; only cycles wait for the timer."""

from __future__ import annotations

import gc
import threading

from PySide6.QtCore import QCoreApplication, QObject, QTimer

INTERVAL_MS = 500

_installed: "GuiGarbageCollector | None" = None


class GuiGarbageCollector(QObject):
    """Owns the timer; lives on the GUI thread as long as the application."""

    def __init__(self, parent: QObject | None = None, interval_ms: int = INTERVAL_MS):
        super().__init__(parent)
        self.threshold = gc.get_threshold()
        self.gui_thread = threading.get_ident()
        self.collections = 0          # for tests: how many times check() collected something
        gc.disable()
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.check)
        self.timer.start()

    def check(self) -> None:
        # The automatic collector's rule, applied here: a generation is collected once enough
        # allocations (or collections of the younger one) have piled up since its last collection.
        l0, l1, l2 = gc.get_count()
        if l0 <= self.threshold[0]:
            return
        generation = 0
        if l1 > self.threshold[1]:
            generation = 2 if l2 > self.threshold[2] else 1
        gc.collect(generation)
        self.collections += 1

    def stop(self) -> None:
        self.timer.stop()


def install_gc_collector(app: QCoreApplication | None = None) -> GuiGarbageCollector:
    """Turns automatic collection off and collects on the GUI thread from now on; idempotent. Call
    it on the GUI thread once the QApplication exists (the app and the test fixtures do)."""
    global _installed
    app = app or QCoreApplication.instance()
    if app is None:
        raise RuntimeError("install_gc_collector needs a QApplication.")
    if _installed is None or not _alive(_installed):
        _installed = GuiGarbageCollector(app)
    gc.disable()      # again: something (a test, a library) may have turned it back on
    if not _installed.timer.isActive():
        _installed.timer.start()
    return _installed


def _alive(obj: QObject) -> bool:
    try:
        obj.objectName()
        return True
    except RuntimeError:      # the C++ side is gone (a previous QApplication)
        return False

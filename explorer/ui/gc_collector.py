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
import time

from PySide6.QtCore import QCoreApplication, QEvent, QObject, QTimer

INTERVAL_MS = 500
# A full collection walks every object (torch and torchvision make that 400,000: half a second on a
# busy CPU). The automatic collector does one only when the long-lived objects have grown by a
# quarter, which Python does not expose; a full collection at most this often stands in for it.
FULL_EVERY_S = 60.0
# ... and only once the user has not touched mouse or keyboard for this long: a pause then is unseen.
IDLE_S = 3.0

_INPUT_EVENTS = {QEvent.Type.MouseButtonPress, QEvent.Type.MouseButtonRelease, QEvent.Type.MouseMove,
                 QEvent.Type.KeyPress, QEvent.Type.KeyRelease, QEvent.Type.Wheel, QEvent.Type.TouchBegin}

_installed: "GuiGarbageCollector | None" = None


class GuiGarbageCollector(QObject):
    """Owns the timer; lives on the GUI thread as long as the application."""

    def __init__(self, parent: QObject | None = None, interval_ms: int = INTERVAL_MS):
        super().__init__(parent)
        self.threshold = gc.get_threshold()
        self.gui_thread = threading.get_ident()
        self.collections = 0          # for tests: how many times check() collected something
        self._last_full = time.monotonic()
        self.last_input = time.monotonic()
        # Input reaches a window (QWindow) before its widgets: watching each window the user works
        # in (from when it first gets the focus) sees the keys and the mouse. An application-wide
        # filter would see them too, but Python would run for every event of every object: building
        # the walkthrough's plots took 25-40% longer with one (issue #9's stall).
        if parent is not None and hasattr(parent, "focusWindowChanged"):
            parent.focusWindowChanged.connect(self.watch_window)
            self.watch_window(parent.focusWindow())
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
            generation = 1
            now = time.monotonic()
            if l2 > self.threshold[2] and now - self._last_full >= FULL_EVERY_S and now - self.last_input >= IDLE_S:
                generation = 2
                self._last_full = time.monotonic()
        gc.collect(generation)
        self.collections += 1

    def watch_window(self, window) -> None:
        """Counts input to ``window`` (a QWindow) as the user being active; installing twice is
        harmless (Qt keeps one), and a window's filters go with it."""
        if window is not None:
            window.installEventFilter(self)

    def eventFilter(self, watched, event) -> bool:
        if event.type() in _INPUT_EVENTS:
            self.last_input = time.monotonic()
        return False

    def stop(self) -> None:
        self.timer.stop()


def freeze_startup_objects() -> None:
    """Moves everything alive now (modules, classes, the window's widgets: objects that live as long
    as the session) out of the collector's sight, so full collections walk only what came later.
    Called once, after the window is up."""
    gc.collect()
    gc.freeze()


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

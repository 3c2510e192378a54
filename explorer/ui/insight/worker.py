"""The Insight window's background worker: one job at a time on its own thread. A job is a plain
function ``job(should_stop, progress)`` that computes with torch and returns data (numpy arrays,
dataclasses); it never touches widgets. A new job, or cancel(), makes ``should_stop()`` true for
the one running (the core checks it between batches / steps), and only the newest job's results
and progress reach the window, on the GUI thread."""

from __future__ import annotations

import threading
import traceback
from typing import Callable

import torch
from PySide6.QtCore import QObject, QThread, Signal



class _Thread(QThread):
    def __init__(self, owner: "InsightWorker"):
        super().__init__()
        self.owner = owner

    def run(self) -> None:
        self.owner._loop()


class InsightWorker(QObject):
    finished = Signal(int, object)        # generation, the job's return value
    failed = Signal(int, str)             # generation, one sentence
    progress = Signal(int, object)        # generation, what the job reported
    busy_changed = Signal(bool)
    _done = Signal(int, object)
    _fail = Signal(int, str)
    _prog = Signal(int, object)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._lock = threading.Condition()
        self._pending: tuple[int, Callable] | None = None
        self._running = 0                  # generation of the job on the thread, 0 when idle
        self._generation = 0
        self._cancelled = 0                # jobs up to this generation should stop; their results are dropped
        self._stopped = 0                  # jobs up to this generation should stop; what they return is shown
        self._stopping = False
        self._busy = False
        self._done.connect(self._on_done)
        self._fail.connect(self._on_fail)
        self._prog.connect(self._on_progress)
        self._thread = _Thread(self)
        self._thread.start()

    @property
    def busy(self) -> bool:
        return self._busy

    @property
    def generation(self) -> int:
        return self._generation

    def submit(self, job: Callable) -> int:
        with self._lock:
            self._generation += 1
            self._cancelled = self._generation - 1       # the one running (if any) stops
            self._pending = (self._generation, job)
            self._lock.notify()
        self._set_busy(True)
        return self._generation

    def cancel(self) -> None:
        """Stops the running job (at its next check) and drops a waiting one."""
        with self._lock:
            self._cancelled = self._generation
            self._pending = None
        self._set_busy(False)

    def stop(self) -> None:
        """Asks the running job to finish early and still delivers what it returns (feature
        visualisation keeps its current images)."""
        with self._lock:
            self._stopped = self._generation

    def shutdown(self) -> None:
        with self._lock:
            self._stopping = True
            self._cancelled = self._generation
            self._pending = None
            self._lock.notify()
        self._thread.wait(10_000)
        self._set_busy(False)

    def wait_until_idle(self, timeout_ms: int = 20_000) -> bool:
        """For tests: process events until the newest job has answered."""
        from PySide6.QtCore import QCoreApplication, QElapsedTimer
        timer = QElapsedTimer()
        timer.start()
        while self._busy and timer.elapsed() < timeout_ms:
            QCoreApplication.processEvents()
            QThread.msleep(2)
        return not self._busy

    def _set_busy(self, busy: bool) -> None:
        if busy != self._busy:
            self._busy = busy
            self.busy_changed.emit(busy)

    # ---------------------------------------------------------------- GUI thread
    def _on_done(self, generation: int, value) -> None:
        if generation == self._generation and generation > self._cancelled:
            self._set_busy(False)
            self.finished.emit(generation, value)

    def _on_fail(self, generation: int, message: str) -> None:
        if generation == self._generation and generation > self._cancelled:
            self._set_busy(False)
            self.failed.emit(generation, message)

    def _on_progress(self, generation: int, payload) -> None:
        if generation == self._generation and generation > self._cancelled:
            self.progress.emit(generation, payload)

    # ---------------------------------------------------------------- worker thread
    def _loop(self) -> None:
        while True:
            with self._lock:
                while self._pending is None and not self._stopping:
                    self._lock.wait()
                if self._stopping:
                    return
                (generation, job), self._pending = self._pending, None
            self._run(generation, job)

    def _run(self, generation: int, job: Callable) -> None:
        def should_stop() -> bool:
            return self._stopping or generation <= max(self._cancelled, self._stopped)

        def progress(payload) -> None:
            self._prog.emit(generation, payload)

        try:
            value = job(should_stop, progress)
        except Exception as e:   # never let the thread die: the window shows one sentence
            from explorer.core.devices import is_out_of_memory
            if is_out_of_memory(e):
                message = "The device ran out of memory; try a smaller batch or fewer channels."
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            elif isinstance(e, ValueError) or type(e).__name__.endswith("Error") and str(e):
                message = str(e).strip().splitlines()[0]
            else:
                message = f"Unexpected error: {e}"
            if not isinstance(e, ValueError):
                traceback.print_exc()
            self._fail.emit(generation, message)
            return
        if value is None and should_stop():
            return                           # cancelled: nothing to show
        self._done.emit(generation, value)

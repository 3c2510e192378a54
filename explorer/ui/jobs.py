"""The app's one background-job mechanism, its Qt side: a JobQueue lives on the GUI thread and
runs jobs on an explorer.core.jobs.Lane (a plain Python thread, newest request wins, cancel
tokens). Everything that runs in the background goes through one: stack runs (workers.py), the
feature view's statistics and pictures (display_worker.py), the kernel editor's weights, walkthrough
captures and downloads, training and insight.

The worker thread holds no Qt object: it reaches the queue only through a weak reference and a
queued signal, so outcomes arrive on the GUI thread, and the thread ends when the queue is
destroyed (its parent widget closed). Outcomes of superseded jobs are dropped unless the queue is
made with ``newest_only=False`` (caches that keep what was prepared in case the user comes back)."""

from __future__ import annotations

import time
import weakref
from typing import Any, Callable

from PySide6.QtCore import QObject, Signal

from explorer.core.jobs import CancelToken, Cancelled, JobContext, JobError, Lane

__all__ = ["Cancelled", "CancelToken", "JobContext", "JobError", "JobQueue"]


def _deliverer(owner: "weakref.ref[JobQueue]") -> Callable[[int, str, Any], bool]:
    """The worker thread's only way to the GUI: a queued signal of the queue, reached weakly."""

    def deliver(generation: int, kind: str, payload: Any) -> bool:
        queue = owner()
        if queue is None:
            return False
        try:
            queue._handoff.emit(generation, kind, payload)
            return True
        except RuntimeError:        # the queue's C++ side is gone: the window closed
            return False
        finally:
            del queue, payload

    return deliver


class JobQueue(QObject):
    """One lane of background work. ``submit(fn)`` runs ``fn(context)`` on the lane's thread, where
    ``context`` is an explorer.core.jobs.JobContext (token, progress, post); the return value arrives
    as ``finished``, an exception as ``failed`` (a JobError), both on the GUI thread with the job's
    generation."""

    finished = Signal(int, object)       # generation, the job's return value
    failed = Signal(int, object)         # generation, JobError
    progressed = Signal(int, object)     # generation, what the job reported (newest job only)
    posted = Signal(int, object)         # generation, a partial result (newest job only)
    busy_changed = Signal(bool)
    _handoff = Signal(int, str, object)

    def __init__(self, name: str, parent: QObject | None = None, newest_only: bool = True):
        super().__init__(parent)
        self._newest_only = newest_only
        self._lane = Lane(name, _deliverer(weakref.ref(self)))
        self._busy = False
        self._dropped_up_to = 0          # jobs up to this generation were cancelled: their outcome is dropped
        self._handoff.connect(self._on_handoff)
        lane = self._lane
        self.destroyed.connect(lambda *_: lane.close())      # the thread ends with its owner

    # ---------------------------------------------------------------- GUI thread
    @property
    def busy(self) -> bool:
        """True from a submit until the newest job's outcome has arrived (or it was cancelled)."""
        return self._busy

    @property
    def generation(self) -> int:
        return self._lane.generation

    def submit(self, fn: Callable[[JobContext], Any], if_idle: bool = False) -> int | None:
        """Runs ``fn(context)`` in the background, superseding the job running (cancelled at its next
        check) and any waiting. With ``if_idle`` a busy queue refuses (None) instead."""
        if if_idle and self._busy:
            return None
        generation = self._lane.submit(fn, if_idle)
        if generation is not None:
            self._set_busy(True)
        return generation

    def start(self) -> None:
        """Starts the thread before the first submit."""
        self._lane.start()

    def cancel(self, keep_answer: bool = False) -> None:
        """Cancels the running job and drops a waiting one. Normally its outcome is dropped and the
        queue is idle at once; with ``keep_answer`` the job's own answer (usually a cancelled
        JobError) still arrives and the queue stays busy until it does."""
        self._lane.cancel()
        if not keep_answer:
            self._dropped_up_to = self._lane.generation
            self._set_busy(False)

    def stop(self) -> None:
        """Asks the running job to finish early; what it returns is still delivered."""
        self._lane.stop()

    def forget(self) -> None:
        """Drops a job not started yet (nobody wants its answer any more)."""
        if self._lane.drop_pending():
            self._dropped_up_to = self._lane.generation
            self._set_busy(False)

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Cancels everything and waits at most ``timeout_ms`` for the thread (a daemon: one stuck in
        a network read never keeps the process alive). True if it ended."""
        self._lane.close()
        ended = self._lane.join(timeout_ms / 1000)
        self._dropped_up_to = self._lane.generation
        self._set_busy(False)
        return ended

    def wait_until_idle(self, timeout_ms: int = 30_000) -> bool:
        """For tests and benchmarks: process events until the newest job has answered."""
        from PySide6.QtCore import QCoreApplication
        end = time.monotonic() + timeout_ms / 1000
        while self._busy and time.monotonic() < end:
            QCoreApplication.processEvents()
            time.sleep(0.002)
        QCoreApplication.processEvents()
        return not self._busy

    def _set_busy(self, busy: bool) -> None:
        if busy != self._busy:
            self._busy = busy
            self.busy_changed.emit(busy)

    def _on_handoff(self, generation: int, kind: str, payload: Any) -> None:
        newest = generation == self._lane.generation and generation > self._dropped_up_to
        if kind == "progress":
            if newest:
                self.progressed.emit(generation, payload)
            return
        if kind == "post":
            if newest:
                self.posted.emit(generation, payload)
            return
        if newest:
            self._set_busy(False)
        elif self._newest_only or generation <= self._dropped_up_to:
            return                          # superseded or cancelled: nobody wants it
        if kind == "done":
            self.finished.emit(generation, payload)
        else:
            self.failed.emit(generation, payload)

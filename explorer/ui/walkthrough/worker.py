"""Background work of the walkthrough window: one job at a time on a plain Python thread.

A job is a plain function; it returns data or raises. Only data crosses back to the GUI thread
(through queued signals into the window's own slots); a job never touches a widget. Expected
problems (an unreadable weights file, a refused pickle, no network) arrive as one sentence;
anything else arrives as a sentence plus the traceback for the log."""

from __future__ import annotations

import threading
import traceback
from dataclasses import dataclass
from typing import Any, Callable

import torch
from PySide6.QtCore import QObject, Signal

from explorer.core.devices import is_out_of_memory


class JobCancelled(Exception):
    """Raised inside a job when the user pressed Cancel."""


@dataclass
class JobFailure:
    message: str            # one sentence for the window
    details: str = ""       # traceback, only for unexpected errors (logged, never shown raw)
    cancelled: bool = False


def _run_job(job: Callable[["JobRunner"], Any], runner: "JobRunner") -> None:
    """The body of a job's thread: a plain Python thread, not a QThread, so nothing of Qt lives on
    it and, as a daemon, a job stuck in a network read never holds up quitting. It only emits the
    runner's signals (queued to the GUI thread)."""
    try:
        result = job(runner)
    except Exception as e:   # the window shows one sentence and carries on
        failure = (JobFailure("Cancelled.", cancelled=True) if isinstance(e, JobCancelled) or runner.cancelled()
                   else describe_failure(e))
        runner._emit(runner._failed, failure)
    else:
        runner._emit(runner._succeeded, result)


def describe_failure(error: Exception) -> JobFailure:
    """Errors the core raises for the user (ValueError subclasses such as WeightsError, ModelError,
    InputError, a WalkthroughError naming the stage that failed) carry a sentence; the rest gets a
    short generic one plus details."""
    from explorer.core.inputs import InputError
    from explorer.core.walkthrough import WalkthroughError
    if isinstance(error, (ValueError, InputError, WalkthroughError)):
        return JobFailure(str(error))
    if is_out_of_memory(error):
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return JobFailure("The device ran out of memory while running the model; try the CPU.")
    if isinstance(error, OSError):
        reason = error.strerror or str(error)
        return JobFailure(f"Could not read or write a file: {reason}.")
    return JobFailure(f"Unexpected error: {type(error).__name__}: {error}", traceback.format_exc())


class JobRunner(QObject):
    """Runs one job at a time; lives on the GUI thread, so its signals arrive there."""

    succeeded = Signal(object)       # whatever the job returned
    failed = Signal(object)          # JobFailure
    progressed = Signal(int, int)    # done, total (jobs that report progress)
    posted = Signal(object)          # something a job has ready before it ends (a walkthrough's plan)
    busy_changed = Signal(bool)
    _succeeded = Signal(object)
    _failed = Signal(object)
    _progressed = Signal(int, int)
    _posted = Signal(object)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._thread: threading.Thread | None = None
        self._cancel = threading.Event()
        self._succeeded.connect(self._on_succeeded)
        self._failed.connect(self._on_failed)
        self._progressed.connect(self._on_progressed)     # a slot of this object: queued to the GUI thread
        self._posted.connect(self._on_posted)

    @property
    def busy(self) -> bool:
        return self._thread is not None

    def start(self, job: Callable[["JobRunner"], Any]) -> bool:
        """Starts ``job(runner)`` on the worker thread; False (and nothing started) while busy."""
        if self._thread is not None:
            return False
        self._cancel.clear()
        self._thread = threading.Thread(target=_run_job, args=(job, self), name="walkthrough-job", daemon=True)
        self._thread.start()
        self.busy_changed.emit(True)
        return True

    def cancel(self) -> None:
        self._cancel.set()

    def shutdown(self, timeout_ms: int = 30_000) -> None:
        """Asks the job to stop and waits for its thread at most ``timeout_ms`` (a daemon: one stuck
        in a network read does not keep the process alive)."""
        self._cancel.set()
        if self._thread is not None:
            self._thread.join(timeout_ms / 1000)

    # ---------------------------------------------------------------- called from the job
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check_cancelled(self) -> None:
        if self._cancel.is_set():
            raise JobCancelled()

    def report(self, done: int, total: int) -> None:
        self._emit(self._progressed, int(done), int(total))

    def post(self, data) -> None:
        self._emit(self._posted, data)

    def _emit(self, signal, *args) -> None:
        try:
            signal.emit(*args)
        except RuntimeError:        # the window went away while an abandoned job ran on: nobody listens
            pass

    # ---------------------------------------------------------------- GUI thread
    def _finish(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()          # it has emitted its last signal: ends at once
        self.busy_changed.emit(False)

    def _on_progressed(self, done: int, total: int) -> None:
        if self._thread is not None:          # a late report of a job that already answered is dropped
            self.progressed.emit(done, total)

    def _on_posted(self, data) -> None:
        if self._thread is not None:
            self.posted.emit(data)

    def _on_succeeded(self, result) -> None:
        self._finish()
        self.succeeded.emit(result)

    def _on_failed(self, failure: JobFailure) -> None:
        self._finish()
        self.failed.emit(failure)

    def wait_until_idle(self, timeout_ms: int = 60_000) -> bool:
        """For tests and scripts: process events until the running job has answered."""
        import time
        from PySide6.QtCore import QCoreApplication
        end = time.monotonic() + timeout_ms / 1000
        while self._thread is not None and time.monotonic() < end:
            QCoreApplication.processEvents()
            time.sleep(0.002)
        QCoreApplication.processEvents()
        return self._thread is None

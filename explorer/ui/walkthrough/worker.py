"""Background work of the walkthrough window: one job at a time on its lane of the app's job
mechanism (explorer.ui.jobs), a plain Python thread.

A job is a plain function; it returns data or raises. Only data crosses back to the GUI thread
(through queued signals into the window's own slots); a job never touches a widget. Expected
problems (an unreadable weights file, a refused pickle, no network) arrive as one sentence;
anything else arrives as a sentence plus the traceback for the log."""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import Any, Callable

import torch
from PySide6.QtCore import QObject, Signal

from explorer.core.devices import is_out_of_memory
from explorer.core.jobs import Cancelled
from explorer.ui.jobs import JobContext, JobError, JobQueue


JobCancelled = Cancelled       # raised inside a job when the user pressed Cancel


@dataclass
class JobFailure:
    message: str            # one sentence for the window
    details: str = ""       # traceback, only for unexpected errors (logged, never shown raw)
    cancelled: bool = False


def describe_failure(error: Exception, details: str = "") -> JobFailure:
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
    return JobFailure(f"Unexpected error: {type(error).__name__}: {error}", details or traceback.format_exc())


class JobRunner(QObject):
    """Runs one job at a time on the walkthrough's lane (explorer.ui.jobs): a capture or a download
    is never interrupted by a second one, so ``start`` refuses while busy. Lives on the GUI thread,
    so its signals arrive there. A job is ``job(context)``: ``context`` (a JobContext, plain Python)
    has ``check_cancelled()``, ``cancelled()``, ``report(done, total)`` and ``post(data)``; the job
    never holds this QObject."""

    succeeded = Signal(object)       # whatever the job returned
    failed = Signal(object)          # JobFailure
    progressed = Signal(int, int)    # done, total (jobs that report progress)
    posted = Signal(object)          # something a job has ready before it ends (a walkthrough's plan)
    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._jobs = JobQueue("walkthrough-job", self)
        self._jobs.finished.connect(lambda _g, result: self.succeeded.emit(result))
        self._jobs.failed.connect(self._on_failed)
        self._jobs.progressed.connect(lambda _g, p: self.progressed.emit(*p))
        self._jobs.posted.connect(lambda _g, data: self.posted.emit(data))
        self._jobs.busy_changed.connect(self.busy_changed)

    @property
    def busy(self) -> bool:
        return self._jobs.busy

    def start(self, job: Callable[[JobContext], Any]) -> bool:
        """Starts ``job(context)`` on the worker thread; False (and nothing started) while busy."""
        return self._jobs.submit(job, if_idle=True) is not None

    def cancel(self) -> None:
        """Tells the job to stop at its next check; its answer ("Cancelled.") still arrives."""
        self._jobs.cancel(keep_answer=True)

    def shutdown(self, timeout_ms: int = 30_000) -> None:
        """Asks the job to stop and waits for its thread at most ``timeout_ms`` (a daemon: one stuck
        in a network read does not keep the process alive)."""
        self._jobs.shutdown(timeout_ms)

    def _on_failed(self, _generation: int, failure: JobError) -> None:
        self.failed.emit(JobFailure("Cancelled.", cancelled=True) if failure.cancelled
                         else describe_failure(failure.error, failure.details))

    def wait_until_idle(self, timeout_ms: int = 60_000) -> bool:
        """For tests and scripts: process events until the running job has answered."""
        return self._jobs.wait_until_idle(timeout_ms)

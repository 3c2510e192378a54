"""The Insight window's background worker: one lane of the app's job mechanism (explorer.ui.jobs).
A job is a plain function ``job(should_stop, progress)`` that computes with torch and returns data
(numpy arrays, dataclasses); it never touches widgets. A new job, or cancel(), makes
``should_stop()`` true for the one running (the core checks it between batches / steps), and only
the newest job's results and progress reach the window, on the GUI thread."""

from __future__ import annotations

import logging
from typing import Callable

import torch
from PySide6.QtCore import QObject, Signal

from explorer.core.insight.subject import LayerFailed
from explorer.core.jobs import Cancelled
from explorer.ui.jobs import JobContext, JobError, JobQueue

log = logging.getLogger(__name__)


def _run(job: Callable, context: JobContext):
    value = job(context.token, context.progress)
    if value is None and context.token.stopping:
        raise Cancelled()                  # stopped before it had anything: nothing to show
    return value


# A request the tools refuse (InsightError is a ValueError) or a layer that refuses the data: said
# to the user in their own sentence, and not logged as a crash.
_SAID_AS_A_SENTENCE = (ValueError, LayerFailed)


def describe(error: BaseException) -> str:
    from explorer.core.devices import is_out_of_memory
    if is_out_of_memory(error):
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return "The device ran out of memory; try a smaller batch or fewer channels."
    if isinstance(error, _SAID_AS_A_SENTENCE) or type(error).__name__.endswith("Error") and str(error):
        return str(error).strip().splitlines()[0]
    return f"Unexpected error: {error}"


class InsightWorker(QObject):
    finished = Signal(int, object)        # generation, the job's return value
    failed = Signal(int, str)             # generation, one sentence
    progress = Signal(int, object)        # generation, what the job reported
    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._jobs = JobQueue("insight", self)
        self._jobs.finished.connect(self.finished)
        self._jobs.failed.connect(self._on_failed)
        self._jobs.progressed.connect(self.progress)
        self._jobs.busy_changed.connect(self.busy_changed)

    @property
    def busy(self) -> bool:
        return self._jobs.busy

    @property
    def generation(self) -> int:
        return self._jobs.generation

    def submit(self, job: Callable) -> int:
        return self._jobs.submit(lambda context: _run(job, context))

    def cancel(self) -> None:
        """Stops the running job (at its next check) and drops a waiting one."""
        self._jobs.cancel()

    def stop(self) -> None:
        """Asks the running job to finish early and still delivers what it returns (feature
        visualisation keeps its current images)."""
        self._jobs.stop()

    def shutdown(self) -> None:
        self._jobs.shutdown(10_000)

    def wait_until_idle(self, timeout_ms: int = 20_000) -> bool:
        """For tests: process events until the newest job has answered."""
        return self._jobs.wait_until_idle(timeout_ms)

    def _on_failed(self, generation: int, failure: JobError) -> None:
        if failure.cancelled:
            return                          # stopped with nothing to show (the queue is idle now)
        if not isinstance(failure.error, _SAID_AS_A_SENTENCE) and failure.details:
            log.error("Insight job failed:\n%s", failure.details)   # the details go to the log, the sentence to the window
        self.failed.emit(generation, describe(failure.error))

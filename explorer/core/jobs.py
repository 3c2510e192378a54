"""The app's one background-job mechanism, its pure part: plain Python threads, cancel tokens and
generation numbers, no Qt (the GUI side is explorer.ui.jobs).

The shape is napari's layer slicer (components/_layer_slicer.py): the GUI thread builds a job (a
function over immutable data), a lane runs it on its own worker thread, a newer job supersedes the
one running (its token is cancelled; the job sees it at its next check, between layers, steps or
batches) and any one still waiting, and the outcome goes back through a ``deliver`` callback that
the GUI side turns into a queued hand-off. One lane is one thread and one queue of length one: the
newest request wins. A lane that must not be interrupted (a walkthrough capture, a training run)
asks with ``submit(..., if_idle=True)`` and is refused while busy."""

from __future__ import annotations

import threading
import time
import traceback
import weakref
from dataclasses import dataclass
from typing import Any, Callable


class Cancelled(Exception):
    """Raised by ``CancelToken.check`` inside a job whose request was superseded or cancelled."""


class CancelToken:
    """Shared between the GUI thread (which cancels) and the job (which checks). ``stop`` asks a job
    to finish early and still deliver what it has (feature visualisation keeps its images);
    ``cancel`` also drops what it delivers."""

    __slots__ = ("_cancelled", "_stopped")

    def __init__(self):
        self._cancelled = threading.Event()
        self._stopped = threading.Event()

    def cancel(self) -> None:
        self._cancelled.set()

    def stop(self) -> None:
        self._stopped.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    @property
    def stopping(self) -> bool:
        """True when the job should end at its next check, for either reason."""
        return self._cancelled.is_set() or self._stopped.is_set()

    def __call__(self) -> bool:
        """The token is a ``should_stop`` callable too (StackRunner.run, the insight core)."""
        return self.stopping

    def check(self) -> None:
        if self.stopping:
            raise Cancelled()


class JobContext:
    """What a running job gets: its token, and two ways to hand data to the GUI thread before it
    ends (``progress`` for counters and throttled updates, ``post`` for partial results). Both are
    dropped on the GUI side once the job is superseded."""

    __slots__ = ("generation", "token", "_deliver")

    def __init__(self, generation: int, token: CancelToken, deliver: Callable[[int, str, Any], bool]):
        self.generation = generation
        self.token = token
        self._deliver = deliver

    def cancelled(self) -> bool:
        return self.token.stopping

    def check_cancelled(self) -> None:
        self.token.check()

    def progress(self, payload: Any) -> None:
        self._deliver(self.generation, "progress", payload)

    def post(self, payload: Any) -> None:
        self._deliver(self.generation, "post", payload)

    def report(self, done: int, total: int) -> None:
        """Progress as a count (downloads, layers)."""
        self.progress((int(done), int(total)))


@dataclass(frozen=True)
class JobError:
    """A job raised: the exception (for the component to say in one sentence) and the traceback
    (for the log; never shown raw). ``cancelled`` when it raised Cancelled or ended after cancel."""

    error: BaseException
    details: str = ""
    cancelled: bool = False


@dataclass(frozen=True)
class _Job:
    generation: int
    fn: Callable[[JobContext], Any]
    token: CancelToken


_lanes: "weakref.WeakSet[Lane]" = weakref.WeakSet()    # every lane alive, for finish_all


def finish_all(timeout_s: float = 10.0) -> bool:
    """Closes every lane and waits for their threads, at most ``timeout_s`` in all; True if all ended.
    Called as the process ends: a daemon thread still inside torch while the interpreter shuts down
    aborts the process ("terminate called without an active exception")."""
    lanes = list(_lanes)
    for lane in lanes:
        lane.close()
    deadline = time.monotonic() + timeout_s
    return all([lane.join(max(0.0, deadline - time.monotonic())) for lane in lanes])


class Lane:
    """One worker thread running one job at a time, the newest request winning.

    ``deliver(generation, kind, payload)`` is called on the worker thread with kind "done" (the
    return value), "failed" (a JobError), "progress" or "post"; it returns False when nobody listens
    any more (the GUI object is gone), and the thread then ends. The thread is a daemon created on
    first use, holds no reference to its owner beyond ``deliver`` (which should hold it weakly), and
    ends on ``close``."""

    def __init__(self, name: str, deliver: Callable[[int, str, Any], bool]):
        self.name = name
        self._deliver = deliver
        self._lock = threading.Condition()
        self._pending: _Job | None = None
        self._running: _Job | None = None
        self._generation = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        _lanes.add(self)

    @property
    def generation(self) -> int:
        """The newest job's generation (0 before the first)."""
        return self._generation

    @property
    def idle(self) -> bool:
        """Nothing running and nothing waiting (the outcome may still be on its way to the GUI)."""
        with self._lock:
            return self._pending is None and self._running is None

    def submit(self, fn: Callable[[JobContext], Any], if_idle: bool = False) -> int | None:
        """Queues ``fn(context)``; the job running is cancelled and one waiting is dropped. With
        ``if_idle`` nothing happens (None) while a job runs or waits."""
        with self._lock:
            if self._closed:
                return None
            if if_idle and (self._pending is not None or self._running is not None):
                return None
            if self._running is not None:
                self._running.token.cancel()
            self._generation += 1
            self._pending = _Job(self._generation, fn, CancelToken())
            self._start()
            self._lock.notify()
            return self._generation

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
            self._thread.start()

    def start(self) -> None:
        """Starts the thread now rather than at the first submit (the first job then starts sooner)."""
        with self._lock:
            if not self._closed:
                self._start()

    def cancel(self) -> None:
        """Cancels the running job and drops a waiting one."""
        with self._lock:
            self._pending = None
            if self._running is not None:
                self._running.token.cancel()

    def stop(self) -> None:
        """Asks the running job to end early; what it returns is still delivered."""
        with self._lock:
            if self._running is not None:
                self._running.token.stop()

    def drop_pending(self) -> bool:
        """Drops a job not started yet; True if there was one."""
        with self._lock:
            dropped, self._pending = self._pending is not None, None
            return dropped

    def close(self) -> None:
        """Cancels everything; the thread ends after the job running checks its token."""
        with self._lock:
            self._closed = True
            self._pending = None
            if self._running is not None:
                self._running.token.cancel()
            self._lock.notify()

    def join(self, timeout: float | None = None) -> bool:
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def _loop(self) -> None:
        while True:
            with self._lock:
                while self._pending is None and not self._closed:
                    self._lock.wait()
                if self._closed:
                    return
                job, self._pending = self._pending, None
                self._running = job
            kind, payload = self._run(job)
            with self._lock:
                self._running = None       # idle before the GUI hears of it: it may submit at once
            generation = job.generation
            del job
            listening = self._deliver(generation, kind, payload)
            del payload
            if not listening:
                return

    def _run(self, job: _Job) -> tuple[str, Any]:
        context = JobContext(job.generation, job.token, self._deliver)
        try:
            value = job.fn(context)
        except Cancelled as e:
            outcome = ("failed", JobError(e, cancelled=True))
        except Exception as e:     # never let the thread die: the component says it in one sentence
            details = traceback.format_exc()
            # The traceback's frames hold the job's tensors: only its text goes to the GUI thread.
            outcome = ("failed", JobError(e.with_traceback(None), details, cancelled=job.token.cancelled))
        else:
            outcome = ("done", value)
        return outcome

"""Runs ``explorer.core.training.train`` on the training lane of the app's job mechanism
(explorer.ui.jobs). Only data crosses back, through queued posts: step batches (throttled), epochs,
the start snapshot and the result. The thread never touches widgets; stop and pause go through the
core's TrainControl."""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal

from explorer.core.inputs import InputError
from explorer.core.stack import Stack
from explorer.core.training.datasets import Dataset, load_dataset
from explorer.core.training.trainer import TrainControl, TrainError, TrainSettings, plan_training, train
from explorer.ui.jobs import JobContext, JobError, JobQueue

STEP_SIGNAL_SECONDS = 0.2     # steps go to the GUI in batches, 5 a second: each one repaints curves and labels


@dataclass
class StepBatch:
    losses: list[tuple[int, float]]       # (step, loss) since the last batch
    info: object                          # the newest StepInfo (its .states only when due)
    states: dict | None                   # the newest live weights in this batch, if any


def warm_up_optimizers() -> threading.Thread:
    """Builds a throwaway optimiser on a background thread. torch.optim imports torch._dynamo the first
    time an optimiser is made: seconds of imports that hold the interpreter lock in long stretches
    (GUI pauses of 0.3-0.8 s on a busy 2-core machine). Done when the panel opens, they are over
    before Start, and the live views stay smooth while training."""

    def work() -> None:
        try:
            import torch
            torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
        except Exception:
            pass              # training itself will report a real problem

    thread = threading.Thread(target=work, name="optimiser warm-up", daemon=True)
    thread.start()
    return thread


class _Refused(Exception):
    """The data, stack or settings were refused: the sentence goes to the panel as it is."""


class _DatasetCache:
    """Plain Python, used on the training lane's thread only: the last dataset loaded."""

    def __init__(self):
        self.datasets: dict[tuple, Dataset] = {}

    def get(self, spec: str, stack: Stack, seed: int) -> Dataset:
        key = (spec, stack.input.channels, stack.input.size, seed)
        if key not in self.datasets:
            self.datasets = {key: load_dataset(spec, stack.input, seed)}    # one at a time: CIFAR is 150 MB
        return self.datasets[key]


def _train_job(stack: Stack, spec: str, settings: TrainSettings, control: TrainControl, cache: _DatasetCache,
               context: JobContext):
    """The training run on the lane's thread. Everything it tells the panel goes through ``context``
    (queued to the GUI thread); it holds no Qt object."""
    try:
        data = cache.get(spec, stack, settings.seed)
        plan_training(stack, data.image_shape, len(data.classes))
    except (InputError, TrainError) as e:
        raise _Refused(str(e)) from None
    except Exception as e:  # never let the thread die silently
        raise _Refused(f"The data could not be loaded: {e}") from None
    context.post(("data_ready", data))
    pending: list[tuple[int, float]] = []
    last = [time.perf_counter()]
    live = [None]

    def on_step(info) -> None:
        if context.token.cancelled:         # the panel or the window went away
            control.stop()
        pending.append((info.step, info.loss))
        if info.states is not None:
            live[0] = info.states
        now = time.perf_counter()
        if now - last[0] >= STEP_SIGNAL_SECONDS or info.step == info.total_steps or control.stopped:
            last[0] = now
            context.post(("steps", StepBatch(list(pending), info, live[0])))
            pending.clear()
            live[0] = None

    try:
        result = train(stack, data, settings, control, on_step=on_step,
                       on_epoch=lambda info: context.post(("epoch", info)),
                       on_start=lambda snaps, notes: context.post(("started", (snaps, notes))))
    except TrainError as e:
        raise _Refused(str(e)) from None
    except Exception as e:
        traceback.print_exc()
        raise _Refused(f"Training failed: {e}") from None
    if pending:
        context.post(("steps", StepBatch(list(pending), None, None)))
    return result


class TrainController(QObject):
    """Runs training on its lane of the app's job mechanism (explorer.ui.jobs): one run at a time
    (start is ignored while one runs); stop and pause go through the core's TrainControl."""

    data_ready = Signal(object)       # Dataset (read-only from then on)
    started = Signal(object, object)  # snapshots at step 0, notes
    steps = Signal(object)            # StepBatch
    epoch = Signal(object)            # EpochInfo
    finished = Signal(object)         # TrainResult
    failed = Signal(str)              # one sentence: data, stack or settings refused, or an error
    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.control: TrainControl | None = None
        self._cache = _DatasetCache()
        self._jobs = JobQueue("training", self)
        self._jobs.posted.connect(self._posted)
        self._jobs.finished.connect(lambda _g, result: self.finished.emit(result))
        self._jobs.failed.connect(self._failed)
        self._jobs.busy_changed.connect(self.busy_changed)

    @property
    def busy(self) -> bool:
        return self._jobs.busy

    @property
    def paused(self) -> bool:
        return self.control is not None and self.control.paused

    def start(self, stack: Stack, data_spec: str, settings: TrainSettings) -> None:
        if self._jobs.busy:
            return
        control, cache, stack = TrainControl(), self._cache, stack.copy()
        if self._jobs.submit(lambda context: _train_job(stack, data_spec, settings, control, cache, context),
                             if_idle=True) is not None:
            self.control = control

    def pause(self) -> None:
        if self.control:
            self.control.pause()

    def resume(self) -> None:
        if self.control:
            self.control.resume()

    def stop(self) -> None:
        if self.control:
            self.control.stop()

    def shutdown(self) -> None:
        self.stop()
        self._jobs.shutdown(30_000)

    def wait_until_idle(self, timeout_ms: int = 30_000) -> bool:
        """For tests: process events until the run has answered."""
        return self._jobs.wait_until_idle(timeout_ms)

    def _posted(self, _generation: int, message: tuple) -> None:
        kind, payload = message
        if kind == "data_ready":
            self.data_ready.emit(payload)
        elif kind == "started":
            self.started.emit(*payload)
        elif kind == "steps":
            self.steps.emit(payload)
        elif kind == "epoch":
            self.epoch.emit(payload)

    def _failed(self, _generation: int, failure: JobError) -> None:
        if isinstance(failure.error, _Refused):
            self.failed.emit(str(failure.error))
        else:
            self.failed.emit(f"Training failed: {failure.error}")

"""Runs ``explorer.core.training.train`` on a background thread. Only data crosses back, through
queued signals: step batches (throttled), epochs, the start snapshot and the result. The thread never
touches widgets; stop and pause go through the core's TrainControl."""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass

from PySide6.QtCore import QCoreApplication, QElapsedTimer, QObject, QThread, Signal

from explorer.core.inputs import InputError
from explorer.core.stack import Stack
from explorer.core.training.datasets import Dataset, load_dataset
from explorer.core.training.trainer import TrainControl, TrainError, TrainSettings, plan_training, train

STEP_SIGNAL_SECONDS = 0.2     # steps go to the GUI in batches, 5 a second: each one repaints curves and labels


@dataclass
class StepBatch:
    losses: list[tuple[int, float]]       # (step, loss) since the last batch
    info: object                          # the newest StepInfo (its .states only when due)
    states: dict | None                   # the newest live weights in this batch, if any


class _Thread(QThread):
    def __init__(self, target):
        super().__init__()
        self._target = target

    def run(self) -> None:
        self._target()


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


class TrainController(QObject):
    data_ready = Signal(object)       # Dataset (read-only from then on)
    started = Signal(object, object)  # snapshots at step 0, notes
    steps = Signal(object)            # StepBatch
    epoch = Signal(object)            # EpochInfo
    finished = Signal(object)         # TrainResult
    failed = Signal(str)              # one sentence: data, stack or settings refused, or an error
    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._thread: _Thread | None = None
        self.control: TrainControl | None = None
        self._datasets: dict[tuple, Dataset] = {}
        self._busy = False

    @property
    def busy(self) -> bool:
        return self._busy

    @property
    def paused(self) -> bool:
        return self.control is not None and self.control.paused

    def start(self, stack: Stack, data_spec: str, settings: TrainSettings) -> None:
        if self._busy:
            return
        self._set_busy(True)
        self.control = TrainControl()
        stack = stack.copy()
        self._thread = _Thread(lambda: self._work(stack, data_spec, settings, self.control))
        self._thread.finished.connect(self._thread_done)
        self._thread.start()

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
        if self._thread is not None:
            self._thread.wait(30_000)

    def wait_until_idle(self, timeout_ms: int = 30_000) -> bool:
        """For tests: process events until the run has answered."""
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

    def _thread_done(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.deleteLater()
        self._set_busy(False)

    # ---------------------------------------------------------------- worker thread
    def _dataset(self, spec: str, stack: Stack, seed: int) -> Dataset:
        key = (spec, stack.input.channels, stack.input.size, seed)
        if key not in self._datasets:
            self._datasets = {key: load_dataset(spec, stack.input, seed)}    # one at a time: CIFAR is 150 MB
        return self._datasets[key]

    def _work(self, stack: Stack, spec: str, settings: TrainSettings, control: TrainControl) -> None:
        try:
            data = self._dataset(spec, stack, settings.seed)
            plan_training(stack, data.image_shape, len(data.classes))
        except (InputError, TrainError) as e:
            self.failed.emit(str(e))
            return
        except Exception as e:  # never let the thread die silently
            self.failed.emit(f"The data could not be loaded: {e}")
            return
        self.data_ready.emit(data)
        pending: list[tuple[int, float]] = []
        last = [time.perf_counter()]
        live = [None]

        def on_step(info) -> None:
            pending.append((info.step, info.loss))
            if info.states is not None:
                live[0] = info.states
            now = time.perf_counter()
            if now - last[0] >= STEP_SIGNAL_SECONDS or info.step == info.total_steps or control.stopped:
                last[0] = now
                self.steps.emit(StepBatch(list(pending), info, live[0]))
                pending.clear()
                live[0] = None

        try:
            result = train(stack, data, settings, control, on_step=on_step, on_epoch=self.epoch.emit,
                           on_start=lambda snaps, notes: self.started.emit(snaps, notes))
        except TrainError as e:
            self.failed.emit(str(e))
            return
        except Exception as e:
            self.failed.emit(f"Training failed: {e}")
            traceback.print_exc()
            return
        if pending:
            self.steps.emit(StepBatch(list(pending), None, None))
        self.finished.emit(result)

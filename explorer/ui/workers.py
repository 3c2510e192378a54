"""The one background worker: loads the input and runs the stack, off the GUI thread.

The window submits immutable requests; a newer request supersedes the one being worked on (the
run stops between layers) and any waiting one; results carry their generation, and the window
drops all but the newest. Only data crosses back; the worker never touches widgets."""

from __future__ import annotations

import threading
import traceback
from dataclasses import dataclass, field

import torch
from PySide6.QtCore import QObject, QThread, Signal

from explorer.core.display import LayerDisplay, ViewSettings, prepare_display
from explorer.core.devices import DeviceError, is_out_of_memory, out_of_memory_message, resolve_device
from explorer.core.engine import RunResult, StackRunner
from explorer.core.input_source import CifarCache, InputSource, load_input
from explorer.core.inputs import InputBatch, InputError
from explorer.core.stack import InputSpec, Stack


@dataclass(frozen=True)
class RunRequest:
    generation: int
    stack: Stack
    source: InputSource
    input_spec: InputSpec
    device: str
    focus: int = -1                                   # the layer on screen: its display is prepared here
    view: ViewSettings = field(default_factory=ViewSettings)


@dataclass
class RunReply:
    generation: int
    request: RunRequest
    batch: InputBatch | None = None
    batch_count: int | None = None      # CIFAR: batches in the split at this batch size
    result: RunResult | None = None
    display: LayerDisplay | None = None  # stats and pixels of the focused layer, ready to draw
    input_error: str | None = None      # the input could not be loaded: keep the previous one
    error: str | None = None            # anything unexpected, with details for the dialog
    details: str = ""


class _WorkerThread(QThread):
    def __init__(self, owner: "RunController"):
        super().__init__()
        self.owner = owner

    def run(self) -> None:
        self.owner._loop()


class RunController(QObject):
    """Owns the worker thread. Lives on the GUI thread; its signals arrive there."""

    finished = Signal(object)            # RunReply of the newest request only
    progress = Signal(int, int)          # layers done, total (newest request only)
    busy_changed = Signal(bool)
    _reply = Signal(object)
    _progress = Signal(int, int, int)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._lock = threading.Condition()
        self._pending: RunRequest | None = None
        self._stopping = False
        self._generation = 0
        self._busy = False
        self._runners: dict[str, StackRunner] = {}
        self._cifar = CifarCache()
        self._input_key: tuple | None = None
        self._batch: InputBatch | None = None
        self._reply.connect(self._on_reply)
        self._progress.connect(self._on_progress)
        self._thread = _WorkerThread(self)
        self._thread.start()

    # ---------------------------------------------------------------- GUI thread
    @property
    def latest_generation(self) -> int:
        return self._generation

    @property
    def busy(self) -> bool:
        return self._busy

    def submit(self, stack: Stack, source: InputSource, device: str, focus: int = -1,
               view: ViewSettings | None = None) -> int:
        with self._lock:
            self._generation += 1
            self._pending = RunRequest(self._generation, stack.copy(), source, stack.input, device, focus,
                                       view or ViewSettings())
            self._lock.notify()
        self._set_busy(True)
        return self._generation

    def shutdown(self) -> None:
        with self._lock:
            self._stopping = True
            self._pending = None
            self._lock.notify()
        self._thread.wait(10_000)
        self._set_busy(False)

    def _set_busy(self, busy: bool) -> None:
        if busy != self._busy:
            self._busy = busy
            self.busy_changed.emit(busy)

    def _on_reply(self, reply: RunReply) -> None:
        if reply.generation != self._generation:
            return    # a newer edit is already on its way: this result is stale
        self._set_busy(False)
        self.finished.emit(reply)

    def _on_progress(self, generation: int, done: int, total: int) -> None:
        if generation == self._generation:
            self.progress.emit(done, total)

    # ---------------------------------------------------------------- worker thread
    def _superseded(self) -> bool:
        return self._pending is not None or self._stopping

    def _loop(self) -> None:
        while True:
            with self._lock:
                while self._pending is None and not self._stopping:
                    self._lock.wait()
                if self._stopping:
                    return
                request, self._pending = self._pending, None
            reply = self._work(request)
            if reply is not None:
                self._reply.emit(reply)

    def _load(self, request: RunRequest) -> InputBatch:
        key = (request.source, request.input_spec.channels, request.input_spec.size)
        if key != self._input_key:
            # The same tensor object for the same input lets the runner reuse earlier layers.
            self._batch = load_input(request.source, request.input_spec, self._cifar)
            self._input_key = key
        return self._batch

    def _runner(self, device: str) -> StackRunner:
        if device not in self._runners:
            self._runners = {device: StackRunner(device)}    # one device's results at a time
        return self._runners[device]

    def _work(self, request: RunRequest) -> RunReply | None:
        reply = RunReply(request.generation, request)
        try:
            try:
                reply.batch = self._load(request)
                if request.source.kind == "cifar":
                    dataset = self._cifar.get(request.source.path)
                    reply.batch_count = dataset.num_batches(request.source.split, request.source.batch_size)
            except InputError as e:
                reply.input_error = str(e)
                return reply
            if self._superseded():
                return None
            runner = self._runner(request.device)

            def on_layer(result, total):
                self._progress.emit(request.generation, result.index + 1, total)

            result = runner.run(request.stack, reply.batch.tensor, should_stop=self._superseded, on_layer=on_layer)
            if result.cancelled:
                return None
            reply.result = result
            if 0 <= request.focus < len(result.layers) and not self._superseded():
                reply.display = prepare_display(result.layers[request.focus].output, request.focus, request.view)
        except DeviceError as e:
            reply.error = str(e)
        except Exception as e:  # never let the worker die: the window shows it and carries on
            if is_out_of_memory(e):
                reply.error = out_of_memory_message(resolve_device(request.device), "The run")
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            else:
                reply.error = f"Unexpected error while running the stack: {e}"
                reply.details = traceback.format_exc()
        return reply

    def wait_until_idle(self, timeout_ms: int = 10_000) -> bool:
        """For tests: process events until the newest request has answered."""
        from PySide6.QtCore import QCoreApplication, QElapsedTimer
        timer = QElapsedTimer()
        timer.start()
        while self._busy and timer.elapsed() < timeout_ms:
            QCoreApplication.processEvents()
            QThread.msleep(2)
        return not self._busy

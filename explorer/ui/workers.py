"""The one background worker: loads the input and runs the stack, off the GUI thread.

The window submits immutable requests; a newer request supersedes the one being worked on (the
run stops between layers) and any waiting one; results carry their generation, and the window
drops all but the newest. Only data crosses back; the worker never touches widgets."""

from __future__ import annotations

import threading
import traceback
import weakref
from dataclasses import dataclass, field

import torch
from PySide6.QtCore import QObject, Signal

from explorer.core.display import LayerDisplay, ViewSettings, prepare_display
from explorer.core.devices import DeviceError, is_out_of_memory, out_of_memory_message, resolve_device
from explorer.core.engine import RunResult, StackRunner
from explorer.core.input_source import CifarCache, InputSource, load_input
from explorer.core.inputs import InputBatch, InputError
from explorer.core.render import render_input_image
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


class _RunWorker:
    """The worker thread's side: plain Python (the runner, the input cache, the newest request), no
    Qt. It answers through the controller's queued signals, reaching the controller only through a
    weak reference, so the thread never keeps a Qt object alive and ends when the controller goes."""

    def __init__(self, owner: "RunController"):
        self.owner = weakref.ref(owner)
        self.lock = threading.Condition()
        self.pending: RunRequest | None = None
        self.stopping = False
        self.runners: dict[str, StackRunner] = {}
        self.cifar = CifarCache()
        self.input_key: tuple | None = None
        self.batch: InputBatch | None = None

    def superseded(self) -> bool:
        return self.pending is not None or self.stopping

    def stop(self) -> None:
        with self.lock:
            self.stopping = True
            self.pending = None
            self.lock.notify()

    def _emit(self, name: str, *args) -> bool:
        controller = self.owner()
        if controller is None:
            return False
        try:
            getattr(controller, name).emit(*args)
            return True
        except RuntimeError:          # the controller's C++ side is gone: the window closed
            return False
        finally:
            del controller

    def loop(self) -> None:
        while True:
            with self.lock:
                while self.pending is None and not self.stopping:
                    self.lock.wait()
                if self.stopping:
                    return
                request, self.pending = self.pending, None
            reply = self.work(request)
            del request
            if reply is not None and not self._emit("_reply", reply):
                return
            del reply

    def load(self, request: RunRequest) -> InputBatch:
        key = (request.source, request.input_spec.channels, request.input_spec.size)
        if key != self.input_key:
            # The same tensor object for the same input lets the runner reuse earlier layers.
            self.batch = load_input(request.source, request.input_spec, self.cifar)
            # The input panel's picture of the first item, here and not on the GUI thread (big images).
            self.batch.previews[0] = render_input_image(self.batch.tensor[0])
            self.input_key = key
        return self.batch

    def runner(self, device: str) -> StackRunner:
        if device not in self.runners:
            self.runners = {device: StackRunner(device)}    # one device's results at a time
        return self.runners[device]

    def work(self, request: RunRequest) -> RunReply | None:
        reply = RunReply(request.generation, request)
        try:
            try:
                reply.batch = self.load(request)
                if request.source.kind == "cifar":
                    dataset = self.cifar.get(request.source.path)
                    reply.batch_count = dataset.num_batches(request.source.split, request.source.batch_size)
            except InputError as e:
                reply.input_error = str(e)
                return reply
            if self.superseded():
                return None
            runner = self.runner(request.device)

            def on_layer(result, total):
                self._emit("_progress", request.generation, result.index + 1, total)

            result = runner.run(request.stack, reply.batch.tensor, should_stop=self.superseded, on_layer=on_layer)
            if result.cancelled:
                return None
            reply.result = result
            if 0 <= request.focus < len(result.layers) and not self.superseded():
                # Pixels only: the view counts the statistics on its own thread while these are painted.
                reply.display = prepare_display(result.layers[request.focus].output, request.focus, request.view,
                                                with_stats=False)
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


class RunController(QObject):
    """Owns the worker thread. Lives on the GUI thread; its signals arrive there."""

    finished = Signal(object)            # RunReply of the newest request only
    progress = Signal(int, int)          # layers done, total (newest request only)
    busy_changed = Signal(bool)
    _reply = Signal(object)
    _progress = Signal(int, int, int)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._generation = 0
        self._busy = False
        self._reply.connect(self._on_reply)
        self._progress.connect(self._on_progress)
        self._worker = _RunWorker(self)
        worker = self._worker
        self.destroyed.connect(lambda *_: worker.stop())      # never outlives its window
        self._thread = threading.Thread(target=worker.loop, name="run-worker", daemon=True)
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
        worker = self._worker
        with worker.lock:
            self._generation += 1
            worker.pending = RunRequest(self._generation, stack.copy(), source, stack.input, device, focus,
                                        view or ViewSettings())
            worker.lock.notify()
        self._set_busy(True)
        return self._generation

    def shutdown(self) -> None:
        self._worker.stop()
        self._thread.join(10)
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

    def wait_until_idle(self, timeout_ms: int = 10_000) -> bool:
        """For tests: process events until the newest request has answered."""
        import time
        from PySide6.QtCore import QCoreApplication
        end = time.monotonic() + timeout_ms / 1000
        while self._busy and time.monotonic() < end:
            QCoreApplication.processEvents()
            time.sleep(0.002)
        return not self._busy

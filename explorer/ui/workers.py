"""Runs the stack off the GUI thread: loads the input, runs, renders the focused layer's pixels.

The window submits immutable requests on the run lane (explorer.ui.jobs); a newer request
supersedes the one being worked on (the run stops between layers) and any waiting one; results
carry their generation, and only the newest reaches the window. Only data crosses back; the worker
never touches widgets."""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field

import torch
from PySide6.QtCore import QObject, Signal

from explorer.core.display import LayerDisplay, ViewSettings, prepare_display
from explorer.core.devices import DeviceError, is_out_of_memory, out_of_memory_message, resolve_device
from explorer.core.engine import LayerResult, RunResult, StackRunner
from explorer.core.input_source import CifarCache, InputSource, load_input
from explorer.core.inputs import InputBatch, InputError
from explorer.core.render import render_input_image
from explorer.core.stack import InputSpec, Stack
from explorer.ui.jobs import JobContext, JobError, JobQueue


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


@dataclass(frozen=True)
class FocusReply:
    """The layer on screen, computed and ready to draw, before the rest of the run has finished."""
    generation: int
    source: InputSource          # the input it ran on
    layer: LayerResult
    display: LayerDisplay


class _RunState:
    """The worker thread's side: plain Python (the runners, the input cache, the last input), no Qt.
    Only the run lane's thread touches it, one job at a time."""

    def __init__(self):
        self.runners: dict[str, StackRunner] = {}
        self.cifar = CifarCache()
        self.input_key: tuple | None = None
        self.batch: InputBatch | None = None

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

    def work(self, request: RunRequest, context: JobContext) -> RunReply | None:
        """One run; None when a newer request superseded it (nobody wants the answer)."""
        reply = RunReply(request.generation, request)
        superseded = context.token
        try:
            try:
                reply.batch = self.load(request)
                if request.source.kind == "cifar":
                    dataset = self.cifar.get(request.source.path)
                    reply.batch_count = dataset.num_batches(request.source.split, request.source.batch_size)
            except InputError as e:
                reply.input_error = str(e)
                return reply
            if superseded():
                return None
            runner = self.runner(request.device)
            early: list[LayerDisplay | None] = []

            def on_layer(result, total):
                context.progress((result.index + 1, total))
                if result.index == request.focus and result.index < total - 1 and not result.reused \
                        and result.error is None and not superseded():
                    # The layer on screen has run: its pixels go now, while the layers after it run
                    # (editing the first layer of a deep stack shows its maps without waiting for the rest).
                    try:
                        display = prepare_display(result.output, result.index, request.view, with_stats=False)
                    except Exception:       # said after the run, which goes on (see below)
                        return
                    early.append(display)
                    if display is not None:
                        context.post(FocusReply(request.generation, request.source, result, display))

            result = runner.run(request.stack, reply.batch.tensor, should_stop=superseded, on_layer=on_layer)
            if result.cancelled:
                return None
            reply.result = result
            if early:
                reply.display = early[0]
            elif 0 <= request.focus < len(result.layers) and not superseded():
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
    """Runs the stack on the run lane (explorer.ui.jobs): the window submits, the newest request
    wins (a superseded run stops between layers), and only the newest reply arrives. Lives on the
    GUI thread; its signals arrive there."""

    finished = Signal(object)            # RunReply of the newest request only
    focus_ready = Signal(object)         # FocusReply: the focused layer of the newest request, before the rest
    progress = Signal(int, int)          # layers done, total (newest request only)
    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._state = _RunState()
        self._jobs = JobQueue("run-worker", self)
        self._jobs.finished.connect(self._on_finished)
        self._jobs.failed.connect(self._on_failed)
        self._jobs.progressed.connect(self._on_progress)
        self._jobs.posted.connect(lambda _generation, focus: self.focus_ready.emit(focus))
        self._jobs.busy_changed.connect(self.busy_changed)
        self._jobs.start()              # the window's first run follows at once
        self._last_request: RunRequest | None = None

    # ---------------------------------------------------------------- GUI thread
    @property
    def latest_generation(self) -> int:
        return self._jobs.generation

    @property
    def busy(self) -> bool:
        return self._jobs.busy

    def submit(self, stack: Stack, source: InputSource, device: str, focus: int = -1,
               view: ViewSettings | None = None) -> int:
        generation = self._jobs.generation + 1       # what the lane numbers this submit
        request = RunRequest(generation, stack.copy(), source, stack.input, device, focus, view or ViewSettings())
        self._last_request = request
        state = self._state                          # the job holds plain data only, never this QObject
        self._jobs.submit(lambda context: state.work(request, context))
        return generation

    def shutdown(self) -> None:
        self._jobs.shutdown(10_000)

    def _on_finished(self, generation: int, reply: RunReply | None) -> None:
        if reply is not None:
            self.finished.emit(reply)

    def _on_failed(self, generation: int, failure: JobError) -> None:
        # work() catches everything it expects; this is a bug in it, said in place like any run error.
        request = self._last_request
        if request is None or failure.cancelled:
            return
        self.finished.emit(RunReply(generation, request, error=f"Unexpected error while running the stack: "
                                                               f"{failure.error}", details=failure.details))

    def _on_progress(self, generation: int, payload: tuple[int, int]) -> None:
        self.progress.emit(*payload)

    def wait_until_idle(self, timeout_ms: int = 10_000) -> bool:
        """For tests: process events until the newest request has answered."""
        return self._jobs.wait_until_idle(timeout_ms)

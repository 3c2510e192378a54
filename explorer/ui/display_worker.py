"""Prepares what the feature view draws (a layer's statistics, its grid of maps, a vector's bars)
on a background thread, so a click on a layer never counts or renders a big tensor on the GUI
thread: a 512-channel map on a 1024×768 image froze the window for 35–58 s when it did.

The view asks with an immutable request on the display lane (explorer.ui.jobs); a newer request
replaces one still waiting (clicking through layers prepares the last one clicked, not every one on
the way). The thread holds only tensors and numpy arrays; results come back through a queued
signal of an object that lives on the GUI thread."""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from PySide6.QtCore import QObject, Signal

from explorer.core.display import PreparedView, ViewSettings, render_view
from explorer.core.stats import LayerStats, layer_stats
from explorer.ui.jobs import Cancelled, JobQueue


def view_key(source: torch.Tensor, settings: ViewSettings) -> tuple:
    """What a prepared picture depends on. A vector (any output that is not [N, C, H, W]) is drawn
    per batch item whatever the mode; maps use ViewSettings.render_key."""
    if source.dim() == 4:
        return settings.render_key(source)
    items = source.shape[0] if source.dim() > 1 else 1
    return (id(source), source._version, "vector", min(settings.batch_index, items - 1))


@dataclass(frozen=True)
class VectorBars:
    """bucket_max_abs of one batch item: what the bar chart draws."""
    starts: np.ndarray
    picked: np.ndarray
    bucket: int


@dataclass(frozen=True)
class DisplayRequest:
    token: int
    source: torch.Tensor            # the layer's output as the engine gave it (1-D too)
    settings: ViewSettings
    need_stats: bool
    need_view: bool


@dataclass
class DisplayReply:
    request: DisplayRequest
    stats: LayerStats | None = None
    view: PreparedView | None = None
    bars: VectorBars | None = None
    error: str | None = None
    seconds: float = 0.0


def prepare(request: DisplayRequest, should_stop: Callable[[], bool] | None = None) -> DisplayReply:
    """The work itself (the background thread runs it; so can a test). Cancelled (raised when
    ``should_stop`` says so while counting) ends it without a reply."""
    from explorer.ui.vector_view import bucket_max_abs       # a pure function: creates nothing of Qt
    start = time.perf_counter()
    reply = DisplayReply(request)
    source = request.source
    try:
        if request.need_stats:
            reply.stats = layer_stats(source, should_stop=should_stop)
        if request.need_view:
            if source.dim() == 4:
                reply.view = render_view(source, request.settings)
            else:
                rows = source if source.dim() > 1 else source.unsqueeze(0)
                item = min(request.settings.batch_index, rows.shape[0] - 1)
                reply.bars = VectorBars(*bucket_max_abs(rows[item].reshape(-1)))
    except Cancelled:
        raise
    except Exception as e:      # never let the thread die; the view says what went wrong
        reply.error = f"Could not prepare this layer's display: {e}"
        reply.stats = reply.view = reply.bars = None
        import logging
        logging.getLogger("explorer").error("Preparing a display failed\n%s", traceback.format_exc())
    reply.seconds = time.perf_counter() - start
    return reply


class DisplayPreparer(QObject):
    """Lives on the GUI thread; ``ready`` carries a DisplayReply there. The work runs on the
    "display" lane (explorer.ui.jobs); every reply arrives, superseded ones too, because the view
    keeps them in case the user comes back to that layer."""

    ready = Signal(object)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._jobs = JobQueue("display", self, newest_only=False)
        self._jobs.finished.connect(lambda _generation, reply: self.ready.emit(reply))

    @property
    def busy(self) -> bool:
        """True until the newest request's reply has reached the GUI thread."""
        return self._jobs.busy

    def request(self, source: torch.Tensor, settings: ViewSettings, need_stats: bool, need_view: bool) -> int:
        request = DisplayRequest(self._jobs.generation + 1, source, settings, need_stats, need_view)
        self._jobs.submit(lambda context: prepare(request, context.cancelled))
        return request.token

    def cancel(self) -> None:
        """Stops the work running (at its next check) and drops what waits; nothing of it arrives."""
        self._jobs.cancel()

    def forget(self) -> None:
        """Drops a request not started yet (the view shows nothing now)."""
        self._jobs.forget()

    def wait_until_idle(self, timeout_ms: int = 30_000) -> bool:
        """For tests and benchmarks: process events until the newest request has been delivered."""
        return self._jobs.wait_until_idle(timeout_ms)

"""Prepares what the feature view draws (a layer's statistics, its grid of maps, a vector's bars)
on a background thread, so a click on a layer never counts or renders a big tensor on the GUI
thread: a 512-channel map on a 1024×768 image froze the window for 35–58 s when it did.

The view asks with an immutable request; a newer request replaces one still waiting (clicking
through layers prepares the last one clicked, not every one on the way). The thread is a plain
daemon thread holding only tensors and numpy arrays; results come back through a queued signal
of an object that lives on the GUI thread."""

from __future__ import annotations

import threading
import time
import traceback
import weakref
from dataclasses import dataclass

import numpy as np
import torch
from PySide6.QtCore import QObject, Signal

from explorer.core.display import PreparedView, ViewSettings, render_view
from explorer.core.stats import LayerStats, layer_stats
from explorer.ui.background import Mailbox


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


def prepare(request: DisplayRequest) -> DisplayReply:
    """The work itself (the background thread runs it; so can a test)."""
    from explorer.ui.vector_view import bucket_max_abs       # a pure function: creates nothing of Qt
    start = time.perf_counter()
    reply = DisplayReply(request)
    source = request.source
    try:
        if request.need_stats:
            reply.stats = layer_stats(source)
        if request.need_view:
            if source.dim() == 4:
                reply.view = render_view(source, request.settings)
            else:
                rows = source if source.dim() > 1 else source.unsqueeze(0)
                item = min(request.settings.batch_index, rows.shape[0] - 1)
                reply.bars = VectorBars(*bucket_max_abs(rows[item].reshape(-1)))
    except Exception as e:      # never let the thread die; the view says what went wrong
        reply.error = f"Could not prepare this layer's display: {e}"
        reply.stats = reply.view = reply.bars = None
        import logging
        logging.getLogger("explorer").error("Preparing a display failed\n%s", traceback.format_exc())
    reply.seconds = time.perf_counter() - start
    return reply


def _serve(mailbox: Mailbox, owner: "weakref.ref[DisplayPreparer]") -> None:
    """The thread: only a weak reference to the QObject it answers through, so the thread neither
    keeps the view's objects alive nor outlives them (it ends when the preparer is destroyed)."""
    while True:
        with mailbox.lock:
            while mailbox.pending is None and not mailbox.closed:
                mailbox.lock.wait()
            if mailbox.closed:
                return
            request, mailbox.pending = mailbox.pending, None
        reply = prepare(request)
        del request
        preparer = owner()
        if preparer is None:
            return
        try:
            preparer._done.emit(reply)
        except RuntimeError:      # the view is gone (application closing): nobody to tell
            return
        finally:
            del preparer, reply


class DisplayPreparer(QObject):
    """Lives on the GUI thread; ``ready`` carries a DisplayReply there."""

    ready = Signal(object)
    _done = Signal(object)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._mailbox = Mailbox()
        self._requested = 0            # the newest request's token
        self._delivered = 0            # the newest token answered on the GUI thread (or dropped)
        self._thread: threading.Thread | None = None
        self._done.connect(self._on_done)
        mailbox = self._mailbox
        self.destroyed.connect(lambda *_: mailbox.close())      # the thread ends with its view

    @property
    def busy(self) -> bool:
        """True until the newest request's reply has reached the GUI thread."""
        return self._delivered < self._requested

    def request(self, source: torch.Tensor, settings: ViewSettings, need_stats: bool, need_view: bool) -> int:
        mailbox = self._mailbox
        with mailbox.lock:
            self._requested += 1
            mailbox.pending = DisplayRequest(self._requested, source, settings, need_stats, need_view)
            if self._thread is None:
                self._thread = threading.Thread(target=_serve, args=(mailbox, weakref.ref(self)),
                                                name="display", daemon=True)
                self._thread.start()
            mailbox.lock.notify()
            return self._requested

    def forget(self) -> None:
        """Drops a request not started yet (the view shows nothing now)."""
        with self._mailbox.lock:
            if self._mailbox.pending is not None:
                self._mailbox.pending = None
                self._delivered = self._requested

    # ---------------------------------------------------------------- GUI thread
    def _on_done(self, reply: DisplayReply) -> None:
        self._delivered = max(self._delivered, reply.request.token)
        self.ready.emit(reply)

    def wait_until_idle(self, timeout_ms: int = 30_000) -> bool:
        """For tests and benchmarks: process events until the newest request has been delivered."""
        from PySide6.QtCore import QCoreApplication
        end = time.monotonic() + timeout_ms / 1000
        while self.busy and time.monotonic() < end:
            QCoreApplication.processEvents()
            time.sleep(0.002)
        return not self.busy

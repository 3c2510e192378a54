"""One background call at a time, newest wins: for work a widget needs whose cost grows with a
tensor's size (building a layer's seeded parameters for the kernel editor). The call and its
arguments are plain data; the thread is a plain daemon thread, so no Qt object is created on it or
reachable from it except this QObject's signal, which queues the answer to the GUI thread."""

from __future__ import annotations

import threading
import time
import traceback
import weakref
from typing import Any, Callable

from PySide6.QtCore import QObject, Signal


class Mailbox:
    """What a worker thread shares with the GUI thread: the newest request, or closed. Plain
    Python, no Qt (the display worker uses it too)."""

    def __init__(self):
        self.lock = threading.Condition()
        self.pending: object | None = None    # whatever the worker takes next
        self.closed = False

    def close(self) -> None:
        with self.lock:
            self.closed, self.pending = True, None
            self.lock.notify()


def _serve(mailbox: Mailbox, owner: "weakref.ref[LatestCall]") -> None:
    """The thread: holds the QObject it answers through only weakly and ends when it is destroyed."""
    while True:
        with mailbox.lock:
            while mailbox.pending is None and not mailbox.closed:
                mailbox.lock.wait()
            if mailbox.closed:
                return
            (token, fn, args), mailbox.pending = mailbox.pending, None
        try:
            result, error = fn(*args), None
        except Exception as e:     # the widget says it in a sentence; the details go to the log
            import logging
            logging.getLogger("explorer").info("Background call failed\n%s", traceback.format_exc())
            result, error = None, e
        del fn, args
        caller = owner()
        if caller is None:
            return
        try:
            caller._done.emit(token, result, error)
        except RuntimeError:       # the widget is gone (closing)
            return
        finally:
            del caller, result, error


class LatestCall(QObject):
    done = Signal(int, object, object)       # token, result, the exception (None on success)
    _done = Signal(int, object, object)

    def __init__(self, name: str, parent: QObject | None = None):
        super().__init__(parent)
        self._name = name
        self._mailbox = Mailbox()
        mailbox = self._mailbox
        self.destroyed.connect(lambda *_: mailbox.close())      # the thread ends with its widget
        self._requested = 0
        self._delivered = 0
        self._thread: threading.Thread | None = None
        self._done.connect(self._on_done)

    @property
    def busy(self) -> bool:
        return self._delivered < self._requested

    def submit(self, fn: Callable[..., Any], *args) -> int:
        """Runs ``fn(*args)`` on the thread, replacing a call that has not started; returns its token."""
        mailbox = self._mailbox
        with mailbox.lock:
            self._requested += 1
            mailbox.pending = (self._requested, fn, args)
            if self._thread is None:
                self._thread = threading.Thread(target=_serve, args=(mailbox, weakref.ref(self)),
                                                name=self._name, daemon=True)
                self._thread.start()
            mailbox.lock.notify()
            return self._requested

    def _on_done(self, token: int, result, error) -> None:
        self._delivered = max(self._delivered, token)
        self.done.emit(token, result, error)

    def wait_until_idle(self, timeout_ms: int = 30_000) -> bool:
        from PySide6.QtCore import QCoreApplication
        end = time.monotonic() + timeout_ms / 1000
        while self.busy and time.monotonic() < end:
            QCoreApplication.processEvents()
            time.sleep(0.002)
        return not self.busy

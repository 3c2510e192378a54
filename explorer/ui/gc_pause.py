"""Holds off Python's cyclic garbage collector while a background thread runs torch code on meta
tensors. That code executes ``import`` statements on every call, and with PySide loaded every import
goes through shiboken's import hook; a collection on the GUI thread at the same moment has crashed
the interpreter (a segfault while "Garbage-collecting", seen in CI). Reference counting still frees
almost everything meanwhile; the cycles wait until the work is done."""

from __future__ import annotations

import gc
import threading
from contextlib import contextmanager

_lock = threading.Lock()
_holders = 0


def pause() -> None:
    global _holders
    with _lock:
        _holders += 1
        gc.disable()


def resume() -> None:
    global _holders
    with _lock:
        _holders = max(0, _holders - 1)
        if _holders == 0:
            gc.enable()


@contextmanager
def gc_paused():
    pause()
    try:
        yield
    finally:
        resume()

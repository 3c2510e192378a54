"""Lets go of big data (a run's outputs, a walkthrough's model and maps) on a background thread.

Freeing is not free: returning 1.6 GB of tensors to the system takes about 0.3 s (page-table work
in munmap), so replacing the result of a 512-channel run on a 1024×768 image held the GUI thread
for seconds. Whoever replaces such a reference hands the old object here first; the reaper keeps it
until nobody else holds it (the views have moved on) and drops it on its own thread. Only plain
data comes here (tensors, dataclasses of tensors, modules): never a Qt object."""

from __future__ import annotations

import queue
import sys
import threading
import time

HOLD_S = 0.5            # at least this long: the GUI thread's views let go of the old result meanwhile
GIVE_UP_S = 30.0        # someone keeps it: their reference decides where it is freed

_queue: "queue.Queue[object]" = queue.Queue()
_thread: threading.Thread | None = None
_lock = threading.Lock()
released = 0            # for tests: objects dropped by the reaper
_WAKE = object()        # put by drain(): wakes the thread without being held
_flush = threading.Event()
_drained = threading.Event()


def release_later(obj) -> None:
    """Takes a reference to ``obj``; the caller then drops its own."""
    global _thread
    if obj is None:
        return
    with _lock:
        if _thread is None:
            _thread = threading.Thread(target=_run, name="reaper", daemon=True)
            _thread.start()
    _queue.put((time.monotonic(), obj))


def _run() -> None:
    global released
    held: list[list] = []
    while True:
        try:
            while True:
                since, obj = _queue.get(timeout=0.1 if held else None)
                if obj is not _WAKE:
                    held.append([since, obj])
                del obj
        except queue.Empty:
            pass
        now = time.monotonic()
        keep = []
        for entry in held:
            # References: the list ``entry`` and getrefcount's argument; more means someone else holds it.
            alone = sys.getrefcount(entry[1]) <= 2
            if _flush.is_set() or (now - entry[0] >= HOLD_S and (alone or now - entry[0] >= GIVE_UP_S)):
                entry[1] = None             # freed here, on this thread, when it was the last reference
                released += 1
            else:
                keep.append(entry)
        held = keep
        entry = None
        if _flush.is_set() and not held and _queue.empty():
            _drained.set()


def drain(timeout_s: float = 5.0) -> bool:
    """Frees everything handed over, now, and waits for it (at most ``timeout_s``). The app calls it
    as it quits: a daemon thread still inside torch's deallocation when the interpreter shuts down
    aborts the process ("terminate called without an active exception"). True when done."""
    if _thread is None:
        return True
    _drained.clear()
    _flush.set()
    _queue.put((time.monotonic(), _WAKE))
    return _drained.wait(timeout_s)

"""The window's one idiom for "don't echo this update back": a widget pushing a value it was given into
its own Qt controls does it inside ``qt_signals_blocked``, so the controls' change signals (meant for
the user's edits) stay quiet. The session state and the document emit only on real changes."""

from __future__ import annotations

from contextlib import contextmanager

from PySide6.QtCore import QSignalBlocker


@contextmanager
def qt_signals_blocked(*objects):
    """Blocks the signals of every object for the duration (the model pushing values into widgets)."""
    blockers = [QSignalBlocker(o) for o in objects if o is not None]
    try:
        yield
    finally:
        for b in blockers:
            b.unblock()

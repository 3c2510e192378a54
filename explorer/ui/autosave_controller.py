"""Autosave of the open stack: a copy every AUTOSAVE_MS while there are unsaved edits, written by a
background thread, offered back at the next start after a crash, removed on a clean close."""

from __future__ import annotations

import threading
import time

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QWidget

from explorer.core.autosave import read_autosave, remove_autosave, write_autosave
from explorer.core.stack import StackError
from explorer.ui import dialogs
from explorer.ui.app_paths import autosave_path
from explorer.ui.document import StackDocument

AUTOSAVE_MS = 15_000


class AutosaveController(QObject):
    """Owns the autosave timer and thread of one window's document."""

    def __init__(self, document: StackDocument, parent: QWidget):
        super().__init__(parent)
        self.document = document
        self._window = parent
        self._autosaved: tuple | None = None
        self.thread: threading.Thread | None = None
        self.timer = QTimer(self)
        self.timer.setInterval(AUTOSAVE_MS)
        self.timer.timeout.connect(self.autosave)
        self.timer.start()

    def autosave(self) -> None:
        """Every AUTOSAVE_MS while there are unsaved edits, and only if something changed since the
        last copy: written by a background thread from a snapshot (the tensors are shared, never
        changed in place), so big weights never hold up the window."""
        key = (self.document.undo_stack.index(), id(self.document.real_stack))
        if not self.document.dirty or key == self._autosaved or (
                self.thread is not None and self.thread.is_alive()):
            return
        self._autosaved = key
        snapshot, path = self.document.real_stack.copy(), autosave_path()

        def write() -> None:
            try:
                write_autosave(snapshot, path)
            except OSError:
                pass   # a full disk must not interrupt editing; the next change tries again

        self.thread = threading.Thread(target=write, name="autosave", daemon=True)
        self.thread.start()

    def finish(self) -> None:
        """Waits for an autosave being written (closing, and tests)."""
        if self.thread is not None:
            self.thread.join()

    def offer(self) -> None:
        """After a crash: asks whether to restore the autosaved stack, then removes the copy."""
        path = autosave_path()
        if not path.exists():
            return
        try:
            stack = read_autosave(path)
        except StackError:
            remove_autosave(path)
            return
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime))
        if dialogs.restore_autosave(self._window, when):
            self.document.replace(stack)
            # Restored work is unsaved work: one undoable step back to what the window opened with.
            self.document.undo_stack.resetClean()
            self.document.dirty_changed.emit(True)
        remove_autosave(path)

    def close(self) -> None:
        """A clean close: stop, wait for a write under way, then remove the copy (nothing writes it after)."""
        self.timer.stop()
        self.finish()
        remove_autosave(autosave_path())

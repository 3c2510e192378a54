"""The new maps first: while an edit's run is on its way, the panels that only repeat the edit in
other words (the shapes table, the layer list) keep their picture, and repaint as soon as the maps of
the edit are drawn.

On a two-core machine the window's own painting is what an edit waits for: the table's repaint
(about 5 ms of text layout) and the layer rows came before the new maps in every edit, on the same
thread. Their new contents are set at once (a test or a screen reader sees them); only the painting
waits, never longer than ``limit_ms``."""

from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QWidget


class PaintPriority(QObject):
    """``widgets()`` names the panels to hold, asked at each hold: only what shows the edit (turning
    painting back on repaints a whole widget, so a big panel that did not change, such as the Model
    tab's code, must not be in it)."""

    def __init__(self, widgets: Callable[[], list[QWidget]], parent: QObject | None = None, limit_ms: int = 150):
        super().__init__(parent)
        self._widgets_now = widgets
        self._widgets: list[QWidget] = []
        self._held = False
        self._limit = QTimer(self)
        self._limit.setSingleShot(True)
        self._limit.setInterval(limit_ms)
        self._limit.timeout.connect(self.release)

    @property
    def held(self) -> bool:
        return self._held

    def hold(self) -> None:
        """An edit's run has started: the panels keep their picture until ``release``."""
        if self._held:
            return
        self._held = True
        self._widgets = [w for w in self._widgets_now() if w.isVisible()]
        for widget in self._widgets:
            widget.setUpdatesEnabled(False)
        self._limit.start()

    def release_after_paint(self) -> None:
        """The maps have been handed to the view: the panels repaint once they are drawn (a zero
        timer runs after the posted paint of the maps)."""
        if self._held:
            QTimer.singleShot(0, self, self.release)

    def release(self) -> None:
        if not self._held:
            return
        self._held = False
        self._limit.stop()
        for widget in self._widgets:
            widget.setUpdatesEnabled(True)        # repaints the whole widget
        self._widgets = []

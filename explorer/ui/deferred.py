"""Widgets built when they are first needed, or one per event-loop turn while the window idles.

A pyqtgraph plot costs tens of milliseconds to build (its ViewBox, axes, context menus); a window
that builds five of them in its constructor freezes the GUI thread for half a second (issue #9:
opening a walkthrough). ``DeferredWidget`` holds the place of such a widget in a layout and builds
it on first use; ``IdleBuilder`` builds the parts a window will need one per turn of the event loop,
so the heartbeat keeps ticking between them. Correctness never depends on the builder: whatever is
used before the builder got to it is built right then."""

from __future__ import annotations

from collections import deque
from typing import Callable

import pyqtgraph as pg
from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QVBoxLayout, QWidget


def behind_another_tab(widget: QWidget) -> bool:
    """True for a page that its tab widget (or stack) has put away: a panel can bring itself up to
    date when it is shown instead of on every edit. A widget merely not shown yet (its window has
    not opened) is not behind a tab: it keeps up."""
    return widget.isHidden() and widget.parentWidget() is not None


class DeferredWidget(QWidget):
    """A placeholder in a layout for the widget ``factory()`` makes; ``widget()`` builds it once."""

    def __init__(self, factory: Callable[[], QWidget], parent: QWidget | None = None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        self._factory = factory
        self._widget: QWidget | None = None

    @property
    def built(self) -> bool:
        return self._widget is not None

    def widget(self) -> QWidget:
        if self._widget is None:
            self._widget = self._factory()
            self._factory = None                 # let go of what the factory closed over
            # Laid out as the widget would be; the stretch factors a splitter gave the place stay.
            policy, inner = self.sizePolicy(), self._widget.sizePolicy()
            policy.setHorizontalPolicy(inner.horizontalPolicy())
            policy.setVerticalPolicy(inner.verticalPolicy())
            self.setSizePolicy(policy)
            self.layout().addWidget(self._widget)
        return self._widget


class LazyMenuViewBox(pg.ViewBox):
    """A ViewBox whose context menu is built on the first right click. pyqtgraph builds a
    ViewBoxMenu (two axis panels of a dozen widgets each) with every box, a quarter of what a plot
    costs to make; most are never right-clicked. With ``enableMenu`` False it behaves as pg.ViewBox."""

    def __init__(self, *args, enableMenu: bool = True, **kwargs):
        super().__init__(*args, enableMenu=False, **kwargs)
        self.state["enableMenu"] = enableMenu

    def _applyMenuEnabled(self) -> None:
        # pyqtgraph (0.13.5+) builds the menu here when it is switched on: only drop it when off.
        if not self.menuEnabled() and self.menu is not None:
            self.menu.setParent(None)
            self.menu = None

    def getMenu(self, ev=None):
        if self.menu is None and self.menuEnabled():
            from pyqtgraph.graphicsItems.ViewBox.ViewBoxMenu import ViewBoxMenu
            self.menu = ViewBoxMenu(self)
            self.updateViewLists()
        return self.menu

    def getContextMenus(self, event):
        menu = self.getMenu(event) if self.menuEnabled() else None
        return menu.actions() if menu is not None else []


class IdleBuilder(QObject):
    """Runs queued steps one per event-loop turn (a zero-time single-shot timer between them), then
    the callbacks queued with ``after``. ``stop`` drops what is left (the window is closing)."""

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._steps: deque[Callable[[], object]] = deque()
        self._after: deque[Callable[[], object]] = deque()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self._run_one)

    @property
    def done(self) -> bool:
        return not self._steps

    def add(self, *steps: Callable[[], object]) -> None:
        self._steps.extend(steps)
        self._timer.start()

    def after(self, callback: Callable[[], object]) -> None:
        """``callback`` once every step has run: now when none is left."""
        if self.done:
            callback()
        else:
            self._after.append(callback)

    def finish(self) -> None:
        """Runs what is left now (for a caller that cannot wait)."""
        while self._steps:
            self._steps.popleft()()
        self._run_after()

    def stop(self) -> None:
        self._timer.stop()
        self._steps.clear()
        self._after.clear()

    def _run_one(self) -> None:
        if self._steps:
            self._steps.popleft()()
        if self._steps:
            self._timer.start()
        else:
            self._run_after()

    def _run_after(self) -> None:
        while self._after:
            self._after.popleft()()

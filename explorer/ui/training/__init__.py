"""The Train menu and its dock (see panel.py). ``install_train_menu`` is all the main window calls."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget, QMainWindow, QMenu


class TrainLauncher:
    """Creates the Train dock on first use, so a window that never trains pays nothing for it."""

    def __init__(self, window: QMainWindow, menu: QMenu):
        self.window = window
        self.dock: QDockWidget | None = None
        self.panel = None
        action = menu.addAction("Train panel…")
        action.setShortcut("Ctrl+T")
        action.setStatusTip("Train the stack on xo, CIFAR-10 or an image folder and watch its kernels learn.")
        action.triggered.connect(self.show)
        self.show_action = action

    def show(self):
        if self.dock is None:
            from explorer.ui.training.panel import TrainPanel
            w = self.window
            self.panel = TrainPanel(w.document, lambda: w.state.device, w.set_source)
            source = w.state.source or w.state.requested_source
            if source is not None and source.kind == "cifar":
                self.panel.add_data(source.path)
                self.panel.data_combo.setCurrentIndex(0)
            self.dock = QDockWidget("Train", w)
            self.dock.setObjectName("trainDock")
            self.dock.setWidget(self.panel)
            bottom = w.bottom_dock
            if not bottom.isFloating() and bottom.isVisible():
                # A tab beside Shapes and model: the curves get the window's whole width.
                w.tabifyDockWidget(bottom, self.dock)
            else:
                w.addDockWidget(Qt.BottomDockWidgetArea, self.dock)
            w.resizeDocks([self.dock], [360], Qt.Vertical)
        self.dock.show()
        self.dock.raise_()
        return self.panel

    def shutdown(self) -> None:
        if self.panel is not None:
            self.panel.shutdown()


def install_train_menu(window: QMainWindow, menu: QMenu) -> TrainLauncher:
    return TrainLauncher(window, menu)

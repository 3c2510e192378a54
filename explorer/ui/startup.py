"""The first second: a window that shows the stack at once while torch loads behind it.

``import torch`` and the modules that need it take seconds (about 4 s for torch alone on a busy
2-core machine, then torch's meta kernels on first use). The window must not wait for them: the
start-up window below is built from PySide6 and the torch-free outline of the stack file
(explorer.core.outline) only, shows the layers and says "loading torch…" in its status bar, and a
plain thread imports torch, loads the stack for real and warms shape inference. When that is done,
the loader's signal (queued to the GUI thread: Qt objects are only made there) builds the real
window in the same place and the start-up window goes away; the feature maps follow with the first
run. Nothing of Qt is created on the loader thread, only modules imported and data prepared."""

from __future__ import annotations

import ctypes
import importlib.machinery
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from PySide6.QtCore import QObject, QSettings, Qt, Signal
from PySide6.QtGui import QCloseEvent, QColor
from PySide6.QtWidgets import (QAbstractItemView, QDockWidget, QHeaderView, QLabel, QListWidget, QListWidgetItem,
                               QMainWindow, QTableWidget, QTableWidgetItem)

from explorer.core.outline import StackOutline

APP_NAME = "Feature Map Explorer"       # the main window's title too
LOADING_TEXT = "loading torch…"
WAITING = "…"                           # a shape not known until torch is there


@dataclass
class Loaded:
    """What the loader thread prepared for the real window (plain data, no Qt)."""
    value: Any
    seconds: float


class TorchLoader(QObject):
    """Runs ``prepare`` (which imports torch and whatever else the window needs) on a plain thread.

    ``ready`` carries its result, ``failed`` the exception; both are emitted from the thread and,
    this object living on the GUI thread, delivered there by Qt's queued connection."""

    ready = Signal(object)
    failed = Signal(object)

    def __init__(self, prepare: Callable[[], Any], parent: QObject | None = None):
        super().__init__(parent)
        self.prepare = prepare
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._load, name="torch-loader", daemon=True)
        self.thread.start()

    def _load(self) -> None:
        start = time.perf_counter()
        try:
            value = self.prepare()
        except BaseException as e:      # noqa: BLE001 - every failure is reported on the GUI thread
            self.failed.emit(e)
            return
        self.ready.emit(Loaded(value, time.perf_counter() - start))


class GilFreeExtensionLoading:
    """While installed, an extension module imported on this thread is first loaded into the process
    by calling the C library's dlopen through ctypes, which lets go of the GIL for the call.

    Python's own import holds the GIL while the dynamic loader maps a library and runs its static
    initialisers: for torch._C (libtorch_cpu, libtorch_cuda, ~1 GB) that is over a second in one
    piece, during which the GUI thread cannot run a line of Python and the window freezes. Loaded
    here first, the import's own dlopen finds it already there and only runs the module's init. The
    order of loading stays torch's: this runs at the moment the import asks for the module (after
    torch has loaded its CUDA libraries its own way), with the flags the import itself uses. Any
    failure here is ignored: the import then does its usual work and reports its usual error."""

    def __init__(self):
        self.thread = threading.get_ident()
        self._dlopen = None

    def find_spec(self, fullname, path, target=None):
        if threading.get_ident() != self.thread:
            return None
        try:
            spec = importlib.machinery.PathFinder.find_spec(fullname, path)
            if spec is not None and isinstance(spec.loader, importlib.machinery.ExtensionFileLoader):
                if self._dlopen is None:
                    self._dlopen = ctypes.CDLL(None).dlopen
                    self._dlopen.restype = ctypes.c_void_p
                    self._dlopen.argtypes = [ctypes.c_char_p, ctypes.c_int]
                self._dlopen(spec.origin.encode(), sys.getdlopenflags())
        except Exception:  # noqa: BLE001 - see the class's docstring
            pass
        return None       # the usual finders import it

    def __enter__(self):
        if sys.platform.startswith("linux"):
            sys.meta_path.insert(0, self)
        return self

    def __exit__(self, *exc):
        if self in sys.meta_path:
            sys.meta_path.remove(self)


def import_window_modules() -> None:
    """torch, the real window and everything it imports (shape inference needs no warm-up: it is
    plain arithmetic in the layer specs)."""
    with GilFreeExtensionLoading():
        import torch  # noqa: F401
        import explorer.ui.main_window  # noqa: F401
        import explorer.ui.insight.launcher  # noqa: F401  (the window imports these two as it builds its menus)
        import explorer.ui.training  # noqa: F401


class StartupWindow(QMainWindow):
    """Where the real window will be, laid out like it: the stack's layers on the left, their table
    at the bottom, "loading torch…" in the middle and in the status bar. Nothing here can be edited
    yet (the real window takes over the stack as the file has it)."""

    closed = Signal()

    def __init__(self, outline: StackOutline | None, settings: QSettings | None = None):
        super().__init__()
        self.setWindowTitle(APP_NAME if outline is None else f"{outline.title} — {APP_NAME}")
        self.outline = outline
        self.handed_over = False

        self.layer_list = QListWidget()
        self.layer_list.setObjectName("startupLayers")
        self.layer_list.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.layers_dock = QDockWidget("Layers", self)
        self.layers_dock.setObjectName("layersDock")        # the real window's name: same saved place
        self.layers_dock.setWidget(self.layer_list)
        self.layers_dock.setMinimumWidth(300)
        self.addDockWidget(Qt.LeftDockWidgetArea, self.layers_dock)

        self.shape_table = QTableWidget(0, 4)
        self.shape_table.setObjectName("startupShapes")
        self.shape_table.setHorizontalHeaderLabels(["#", "Name", "Type", "Output shape"])
        self.shape_table.verticalHeader().setVisible(False)
        self.shape_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.shape_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.bottom_dock = QDockWidget("Shapes and model", self)
        self.bottom_dock.setObjectName("bottomDock")
        self.bottom_dock.setWidget(self.shape_table)
        self.addDockWidget(Qt.BottomDockWidgetArea, self.bottom_dock)

        self.placeholder = QLabel(f"Feature maps: {LOADING_TEXT}")
        self.placeholder.setObjectName("startupPlaceholder")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setStyleSheet("QLabel { color: #666; font-size: 15px; }")
        self.setCentralWidget(self.placeholder)
        self.statusBar().showMessage(LOADING_TEXT)

        self._fill(outline)
        settings = settings or QSettings()
        geometry, state = settings.value("window/geometry"), settings.value("window/state")
        if geometry is None or not self.restoreGeometry(geometry):
            self.resize(1400, 900)
        if state is None or not self.restoreState(state):
            self.resizeDocks([self.layers_dock], [340], Qt.Horizontal)
            self.resizeDocks([self.bottom_dock], [230], Qt.Vertical)

    def _fill(self, outline: StackOutline | None) -> None:
        layers = outline.layers if outline is not None else []
        self.shape_table.setRowCount(len(layers))
        grey = QColor("#888")
        for i, layer in enumerate(layers):
            label = f"{layer.name}  ·  {layer.type}" if layer.name else layer.type
            item = QListWidgetItem(label if layer.enabled else f"{label} · off")
            if not layer.enabled:
                item.setForeground(grey)
            self.layer_list.addItem(item)
            for column, text in enumerate((str(i), layer.name, layer.type, WAITING)):
                self.shape_table.setItem(i, column, QTableWidgetItem(text))

    def layer_texts(self) -> list[str]:
        return [self.layer_list.item(i).text() for i in range(self.layer_list.count())]

    def hand_over(self, window: QMainWindow) -> None:
        """The real window takes this one's place and size; this one closes."""
        self.handed_over = True
        # geometry(), not saveGeometry(): restoring that fits the window to the screen again.
        window.setGeometry(self.geometry())
        if self.isMaximized() or self.isFullScreen():
            window.setWindowState(self.windowState())
        window.show()
        self.close()
        self.deleteLater()

    def closeEvent(self, event: QCloseEvent) -> None:
        # Closed by the user before torch was there: the application ends (it was its only window).
        super().closeEvent(event)
        if not self.handed_over:
            self.closed.emit()

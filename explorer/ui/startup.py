"""The first second: a window that shows the stack at once while torch loads behind it.

``import torch`` and the modules that need it take seconds (about 4 s for torch alone on a busy
2-core machine). The window must not wait for them: the start-up window below is built from
PySide6 and the torch-free core only (the stack loaded and checked, its shapes from the layer
types' shape rules, the input's size from its header: explorer.core.planned_input), shows the
layers and their shapes and says "loading torch…" in its status bar, while a plain thread imports
torch and the real window's modules. When that is done, the loader's signal (queued to the GUI
thread: Qt objects are only made there) builds the real window in the same place and the start-up
window goes away; the feature maps follow with the first run. Nothing of Qt is created on the
loader thread, only modules imported and data prepared."""

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
from PySide6.QtWidgets import (QAbstractItemView, QDockWidget, QLabel, QListWidget, QListWidgetItem, QMainWindow,
                               QTabWidget, QWidget)

from explorer.core.layers import describe
from explorer.core.shapes import ShapeRow, infer_shapes
from explorer.core.stack import Stack
from explorer.ui.shapes_view import ShapesView

APP_NAME = "Feature Map Explorer"       # the main window's title too
LOADING_TEXT = "loading torch…"
MENUS = ("&File", "&Edit", "&Input", "&Run", "&View", "&Models", "&Train", "&Insight", "&Help")


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


def _format_shape(shape) -> str:
    return "[" + ", ".join(str(int(v)) for v in shape) + "]"


def layer_row_text(spec, row: ShapeRow | None) -> str:
    """A layer as the real layer panel writes it (explorer/ui/layer_panel.py, row_text)."""
    desc = describe(spec)
    if not spec.enabled:
        return f"{desc} · off"
    if row is not None and row.error:
        return f"⚠ {desc} · cannot run"
    if row is not None and row.output_shape is not None:
        return f"{desc} · {_format_shape(row.output_shape)}"
    return desc


class StartupWindow(QMainWindow):
    """Where the real window will be, laid out like it: the menu bar, the stack's layers with their
    shapes on the left, the shape table at the bottom (the real one: explorer/ui/shapes_view.py),
    the input on the right, and "loading torch…" in the middle and in the status bar. Nothing can be
    edited yet: the real window takes over the stack as the file has it."""

    closed = Signal()

    def __init__(self, stack: Stack, input_shape: tuple[int, ...] | None, title: str = "untitled",
                 settings: QSettings | None = None):
        super().__init__()
        self.setWindowTitle(f"{title} — {APP_NAME}")
        self.stack = stack
        self.input_shape = input_shape
        self.rows: list[ShapeRow] = infer_shapes(stack, input_shape) if input_shape is not None else []
        self.handed_over = False

        for menu in MENUS:      # the real window's menus, there once torch is
            self.menuBar().addMenu(menu).setEnabled(False)

        self.layer_list = QListWidget()
        self.layer_list.setObjectName("startupLayers")
        self.layer_list.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.layers_dock = self._dock("Layers", "layersDock", self.layer_list, Qt.LeftDockWidgetArea)
        self.layers_dock.setMinimumWidth(300)
        self.shapes_view = ShapesView()
        tabs = QTabWidget()             # as the real window's, whose Model tab needs torch
        tabs.addTab(self.shapes_view, "Shapes")
        tabs.addTab(QWidget(), "Model")
        tabs.setTabEnabled(1, False)
        self.bottom_dock = self._dock("Shapes and model", "bottomDock", tabs, Qt.BottomDockWidgetArea)
        shown = "" if input_shape is None else f"input {_format_shape(input_shape)}\n\n"
        self.input_dock = self._dock("Input", "inputDock", self._note(f"{shown}{LOADING_TEXT}"), Qt.RightDockWidgetArea)
        self.probe_dock = self._dock("Look inside a pixel", "probeDock", self._note(""), Qt.RightDockWidgetArea)

        self.placeholder = self._note(f"Feature maps: {LOADING_TEXT}")
        self.placeholder.setObjectName("startupPlaceholder")
        self.setCentralWidget(self.placeholder)
        self.statusBar().showMessage(LOADING_TEXT)
        self._fill()

        settings = settings or QSettings()
        geometry, state = settings.value("window/geometry"), settings.value("window/state")
        if geometry is None or not self.restoreGeometry(geometry):
            self.resize(1400, 900)
        if state is None or not self.restoreState(state):     # as the real window's first start
            self.resizeDocks([self.layers_dock, self.input_dock], [340, 250], Qt.Horizontal)
            self.resizeDocks([self.bottom_dock], [230], Qt.Vertical)
            self.resizeDocks([self.input_dock, self.probe_dock], [3, 2], Qt.Vertical)

    def _dock(self, title: str, name: str, widget: QWidget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)        # the real window's names: restoreState puts them where it had them
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    @staticmethod
    def _note(text: str) -> QLabel:
        label = QLabel(text)
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        label.setStyleSheet("QLabel { color: #666; font-size: 15px; }")
        return label

    def _fill(self) -> None:
        gray = QColor("#888")
        for i, spec in enumerate(self.stack.layers):
            row = self.rows[i] if i < len(self.rows) else None
            item = QListWidgetItem(f"{layer_row_text(spec, row)}\n{spec.name}")
            if not spec.enabled:
                item.setForeground(gray)
            self.layer_list.addItem(item)
        self.shapes_view.set_rows(self.rows, len(self.stack.layers), layers=self.stack.layers)

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

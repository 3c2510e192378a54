"""Starting the window: the QApplication, error hooks that show a dialog and log instead of
closing, and the choice of stack and input from the command line."""

from __future__ import annotations

import faulthandler
import logging
import sys
import threading
import traceback
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QObject, QStandardPaths, QTimer, Signal
from PySide6.QtWidgets import QApplication

from explorer.core.devices import resolve_device
from explorer.core.input_source import InputSource
from explorer.ui.gc_collector import freeze_startup_objects, install_gc_collector

log = logging.getLogger("explorer")


def log_path() -> Path:
    folder = Path(QStandardPaths.writableLocation(QStandardPaths.AppDataLocation) or Path.home() / ".feature-map-explorer")
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "explorer.log"


class _ErrorBridge(QObject):
    """Carries an error from any thread to the GUI thread. Created on the GUI thread, so the queued
    signal lands there; a worker only emits (a QTimer.singleShot from a worker would create a Qt
    object on a thread without an event loop)."""

    show = Signal(str, str)       # message, details


_bridge: _ErrorBridge | None = None


def install_error_hooks(window_getter) -> None:
    """Anything unexpected is logged and shown in a dialog on the GUI thread; the window stays open."""
    global _bridge
    _bridge = _ErrorBridge(QApplication.instance())

    def show(message: str, details: str) -> None:
        from explorer.ui import dialogs
        dialogs.show_error(window_getter(), "Something went wrong", message, details)

    _bridge.show.connect(show)

    def report(exc_type, exc, tb):
        details = "".join(traceback.format_exception(exc_type, exc, tb))
        log.error("Unexpected error\n%s", details)
        _bridge.show.emit(f"{exc_type.__name__}: {exc}\n\nYour stack is safe; details are in {log_path()}.", details)

    sys.excepthook = report
    threading.excepthook = lambda args: report(args.exc_type, args.exc_value, args.exc_traceback)


HANG_DUMP_S = 20          # a GUI thread silent this long leaves every thread's stack in the log
_fault_file = None


def install_fault_log(path: Path) -> QTimer:
    """A crash (segfault, abort) writes every thread's Python stack into the log, and so does a GUI
    thread that stops answering for HANG_DUMP_S: a timer on the GUI thread keeps pushing
    faulthandler's deadline back, so only a real hang lets it fire."""
    global _fault_file
    _fault_file = open(path, "a", buffering=1)       # kept open: faulthandler writes to its descriptor
    faulthandler.enable(file=_fault_file, all_threads=True)
    rearm = QTimer(QApplication.instance())
    rearm.setInterval(1000)
    rearm.timeout.connect(lambda: faulthandler.dump_traceback_later(HANG_DUMP_S, file=_fault_file))
    rearm.start()
    faulthandler.dump_traceback_later(HANG_DUMP_S, file=_fault_file)
    return rearm


def configure_pyqtgraph() -> None:
    pg.setConfigOptions(imageAxisOrder="row-major", antialias=True, background="w", foreground="k")


def make_application(argv: list[str] | None = None) -> QApplication:
    app = QApplication.instance() or QApplication(argv or sys.argv[:1])
    app.setOrganizationName("FeatureMapExplorer")
    app.setApplicationName("Feature Map Explorer")
    configure_pyqtgraph()
    install_gc_collector(app)
    return app


def source_from_args(args) -> InputSource | None:
    if getattr(args, "cifar", None):
        return InputSource.cifar(args.cifar, args.split, args.batch_size, args.batch)
    if getattr(args, "image", None):
        return InputSource.image(args.image)
    if getattr(args, "sample", None):
        return InputSource.sample(args.sample)
    return None


def warm_up_shape_inference() -> None:
    """torch imports its meta kernels on first use (over a second); do it while the window is built."""
    def warm():
        from explorer.core.engine import run_on_meta
        from explorer.core.examples import load_example
        run_on_meta(load_example("default"), (1, 3, 8, 8))     # data only: nothing of Qt here
    threading.Thread(target=warm, name="warm-up", daemon=True).start()


def run_app(args) -> int:
    from explorer.core.examples import resolve_stack
    from explorer.ui.main_window import MainWindow

    stack, stack_path = None, None
    if getattr(args, "stack", None):
        stack = resolve_stack(args.stack)       # a StackError here is one line on stderr (cli.main)
        if Path(args.stack).exists():
            stack_path = Path(args.stack)
    device = str(resolve_device(getattr(args, "device", "auto")))   # DeviceError: one line on stderr
    app = make_application()
    warm_up_shape_inference()      # after the collector is GUI-only: the thread must not set it off
    logging.basicConfig(filename=str(log_path()), level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_fault_log(log_path())
    window = MainWindow(stack, source_from_args(args), device, stack_path=stack_path)
    install_error_hooks(lambda: window)
    window.show()
    QTimer.singleShot(2000, freeze_startup_objects)     # after the warm-up thread's imports
    if stack is None:
        QTimer.singleShot(0, window.offer_autosave)
    return app.exec()

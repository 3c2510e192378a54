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
from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QApplication

from explorer.core.devices import resolve_device
from explorer.core.input_source import InputSource
from explorer.ui.app_paths import log_path
from explorer.ui.gc_collector import freeze_startup_objects, install_gc_collector

log = logging.getLogger("explorer")


class ErrorReporter(QObject):
    """Shows unexpected errors from any thread, on the GUI thread, one dialog at a time.

    Errors are logged with their traceback as they come. A signal (queued to the GUI thread) carries
    them to the dialog: a QTimer started on a worker thread would never fire. While a dialog is
    open, further errors are only counted; when it closes, one sentence in the window says how many
    (a loop of failing events must not stack one modal dialog per event)."""

    _arrived = Signal(str, str)

    def __init__(self, window_getter, parent: QObject | None = None):
        super().__init__(parent)
        self.window_getter = window_getter
        self.showing = False
        self.more = 0
        self._arrived.connect(self._show, Qt.ConnectionType.QueuedConnection)

    def report(self, exc_type, exc, tb) -> None:
        details = "".join(traceback.format_exception(exc_type, exc, tb))
        log.error("Unexpected error\n%s", details)
        self._arrived.emit(f"{exc_type.__name__}: {exc}", details)

    def _show(self, text: str, details: str) -> None:
        from explorer.ui import dialogs
        if self.showing:
            self.more += 1
            return
        self.showing = True
        try:
            dialogs.show_error(self.window_getter(), "Something went wrong",
                               f"{text}\n\nYour stack is safe; details are in {log_path()}.", details)
        finally:
            self.showing = False
        if self.more:
            more, self.more = self.more, 0
            window = self.window_getter()
            sentence = (f"{more} more unexpected error{'s' if more > 1 else ''} happened while the message "
                        f"was open; details are in {log_path()}.")
            if hasattr(window, "show_problem"):
                window.show_problem(sentence)


def install_error_hooks(window_getter) -> ErrorReporter:
    """Anything unexpected is logged and shown in a dialog on the GUI thread; the window stays open.
    Call on the GUI thread."""
    reporter = ErrorReporter(window_getter, QApplication.instance())
    sys.excepthook = reporter.report
    threading.excepthook = lambda args: reporter.report(args.exc_type, args.exc_value, args.exc_traceback)
    return reporter


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
    app.setDesktopFileName("feature-map-explorer")     # matches the .desktop entry the installers add
    app.setWindowIcon(application_icon())
    configure_pyqtgraph()
    install_gc_collector(app)
    return app


def application_icon():
    """The project's icon (resources/icons) at every size it is drawn in, for windows and the taskbar."""
    from PySide6.QtGui import QIcon
    from explorer.core.resources import resource_path
    icon = QIcon()
    for size in (16, 24, 32, 48, 64, 128, 256, 512):
        path = resource_path("icons", f"feature-map-explorer-{size}.png")
        if path.is_file():
            icon.addFile(str(path))
    return icon


def source_from_args(args) -> InputSource | None:
    if getattr(args, "cifar", None):
        return InputSource.cifar(args.cifar, args.split, args.batch_size, args.batch)
    if getattr(args, "image", None):
        return InputSource.image(args.image)
    if getattr(args, "sample", None):
        return InputSource.sample(args.sample)
    return None


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

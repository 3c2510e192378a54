"""Starting the window: the QApplication, error hooks that show a dialog and log instead of
closing, and the choice of stack and input from the command line."""

from __future__ import annotations

import faulthandler
import logging
import sys
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QApplication

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
    import pyqtgraph as pg     # over a second to import: not before the first window is up (startup.py)
    pg.setConfigOptions(imageAxisOrder="row-major", antialias=True, background="w", foreground="k")


def make_application(argv: list[str] | None = None, pyqtgraph: bool = True) -> QApplication:
    """The application; ``pyqtgraph=False`` leaves pyqtgraph unimported (and unconfigured) for the
    start-up window, which configures it once the loader thread has imported it."""
    app = QApplication.instance() or QApplication(argv or sys.argv[:1])
    app.setOrganizationName("FeatureMapExplorer")
    app.setApplicationName("Feature Map Explorer")
    app.setDesktopFileName("feature-map-explorer")     # matches the .desktop entry the installers add
    app.setWindowIcon(application_icon())
    install_gc_collector(app)
    if pyqtgraph:
        configure_pyqtgraph()
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


def source_from_args(args):
    from explorer.core.input_source import InputSource
    if getattr(args, "cifar", None):
        return InputSource.cifar(args.cifar, args.split, args.batch_size, args.batch)
    if getattr(args, "image", None):
        return InputSource.image(args.image)
    if getattr(args, "sample", None):
        return InputSource.sample(args.sample)
    return None


@dataclass
class WindowStart:
    """What the real window is made from, prepared on the loader thread (no Qt in it)."""
    stack: object
    stack_path: Path | None
    source: object
    device: str


def prepare_window_start(args, stack, stack_path: Path | None) -> WindowStart:
    """On the loader thread: torch and the window's modules, saved weights made tensors, the device
    (a DeviceError here ends the app with its sentence, as before the window opened)."""
    from explorer.ui.startup import import_window_modules
    import_window_modules()
    from explorer.core.devices import resolve_device
    for layer in (stack.layers if stack is not None else []):
        layer.state         # noqa: B018 - weights read from the file become tensors here, not on the GUI thread
    device = str(resolve_device(getattr(args, "device", "auto")))
    return WindowStart(stack, stack_path, source_from_args(args), device)


def _planned_input_shape(args, stack):
    from explorer.core.planned_input import planned_input_shape
    if getattr(args, "cifar", None):
        return planned_input_shape(stack.input, "cifar", batch_size=args.batch_size)
    if getattr(args, "image", None):
        return planned_input_shape(stack.input, "image", args.image)
    return planned_input_shape(stack.input, "sample", getattr(args, "sample", None) or "astronaut")


class WindowStarter(QObject):
    """The start-up window at once (PySide6 and the torch-free core only), torch loaded on a thread,
    then the real window in its place (see explorer/ui/startup.py). ``window`` is whichever is
    shown; ``exit_code`` is set when the app must end (the device was refused, torch failed)."""

    window_ready = Signal(object)       # the real window, once it is shown
    gave_up = Signal(int)               # the exit code, when there will be no window

    def __init__(self, args, parent: QObject | None = None, settings=None):
        """Loads STACK (a StackError is one line on stderr, from cli.main, before any window)."""
        from explorer.core.examples import load_example, resolve_stack
        from explorer.ui.startup import StartupWindow, TorchLoader
        super().__init__(parent or QApplication.instance())
        self.args = args
        self.settings = settings            # None: the user's (QSettings()); tests pass their own
        self.exit_code: int | None = None
        given = getattr(args, "stack", None)
        stack = resolve_stack(given) if given else load_example("default")
        stack_path = Path(given) if given and Path(given).exists() else None
        self.shell = StartupWindow(stack, _planned_input_shape(args, stack), stack_path.name if stack_path else "untitled",
                                   settings)
        self.window = self.shell
        self.loader = TorchLoader(lambda: prepare_window_start(args, stack if given else None, stack_path), self)
        self.loader.ready.connect(self._ready)
        self.loader.failed.connect(self._failed)

    def start(self) -> None:
        self.shell.show()
        self.loader.start()

    def _ready(self, loaded) -> None:
        if self.shell.handed_over or not self.shell.isVisible():     # closed while torch was loading
            return
        start: WindowStart = loaded.value
        from explorer.ui.main_window import MainWindow
        configure_pyqtgraph()
        window = MainWindow(start.stack, start.source, start.device, settings=self.settings,
                            stack_path=start.stack_path)
        self.window = window
        self.shell.hand_over(window)
        log.info("torch, the stack and the window's modules loaded in %.2f s", loaded.seconds)
        # What start-up made lives as long as the app: out of the collector's way, once the first
        # feature maps are up (the full collection before it is a pause of its own).
        QTimer.singleShot(2000, freeze_startup_objects)
        if start.stack is None:
            QTimer.singleShot(0, window.offer_autosave)
        self.window_ready.emit(window)

    def _failed(self, error: BaseException) -> None:
        from explorer.cli import PROG, _one_line, expected_errors
        if isinstance(error, expected_errors()):
            print(f"{PROG}: {_one_line(str(error))}", file=sys.stderr)      # as the command line says it
        else:
            log.error("Loading torch failed", exc_info=error)
            print(f"{PROG}: could not start ({type(error).__name__}: {_one_line(str(error))}); "
                  f"details are in {log_path()}.", file=sys.stderr)
        self.exit_code = 2
        self.shell.handed_over = True
        self.shell.close()
        self.gave_up.emit(2)


def run_app(args) -> int:
    app = make_application(pyqtgraph=False)
    logging.basicConfig(filename=str(log_path()), level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_fault_log(log_path())
    starter = WindowStarter(args, app)
    install_error_hooks(lambda: starter.window)
    starter.shell.closed.connect(app.quit)
    starter.gave_up.connect(app.exit)
    starter.start()
    code = app.exec()
    # Background threads end, and big results are freed, before the interpreter shuts down, not
    # during it (a daemon thread inside torch then aborts the process).
    from explorer.core import jobs
    from explorer.ui import reaper
    if not jobs.finish_all(10.0):
        log.warning("Quitting while a background job was still running")
    if not reaper.drain(5.0):
        log.warning("Quitting while large results were still being freed")
    return starter.exit_code if starter.exit_code is not None else code

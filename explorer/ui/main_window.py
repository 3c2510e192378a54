"""The explorer window: puts the panels together and wires edit → document → background run → views.
It holds no layer logic; everything it shows comes from explorer.core."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QSettings, Qt
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (QDockWidget, QLabel, QMainWindow, QProgressBar, QSplitter, QTabWidget, QVBoxLayout,
                               QWidget)

from explorer.core.devices import available_devices, device_label, resolve_device
from explorer.core.examples import examples, load_example
from explorer.core.export import export_run
from explorer.core.input_source import InputSource
from explorer.core.layers import CATEGORIES, LAYER_TYPES
from explorer.core.session import LastRun
from explorer.core.stack import Stack, StackError, load_stack, save_stack, structure_key
from explorer.ui import dialogs
from explorer.ui.autosave_controller import AutosaveController
from explorer.ui.document import HISTORY_BYTES, StackDocument
from explorer.ui.reaper import release_later
from explorer.ui.session_state import SessionState
from explorer.ui.feature_view import FeatureView
from explorer.ui.input_panel import InputPanel
from explorer.ui.kernel_editor import KernelEditor
from explorer.ui.probe_panel import ProbePanel
from explorer.ui.qt_signals import qt_signals_blocked
from explorer.ui.recent_files import RecentFiles
from explorer.ui.layer_form import LayerForm
from explorer.ui.layer_panel import LayerPanel
from explorer.ui.model_view import ModelView
from explorer.ui.shapes_view import ShapesView
from explorer.ui.walkthrough.launcher import WalkthroughLauncher
from explorer.ui.paint_priority import PaintPriority
from explorer.ui.workers import FocusReply, RunController, RunReply

log = logging.getLogger("explorer")
APP_NAME = "Feature Map Explorer"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def default_stack() -> Stack:
    return load_example("default")


def redo_keys() -> list[QKeySequence]:
    """The platform's Redo keys plus Ctrl+Shift+Z and Ctrl+Y, each once: a key bound twice is an
    'ambiguous shortcut' to Qt, and then it does nothing at all."""
    keys, seen = [], set()
    for key in [*QKeySequence.keyBindings(QKeySequence.StandardKey.Redo),
                QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")]:
        text = key.toString(QKeySequence.SequenceFormat.PortableText)
        if text and text not in seen:
            seen.add(text)
            keys.append(key)
    return keys


class MainWindow(QMainWindow):
    def __init__(self, stack: Stack | None = None, source: InputSource | None = None, device: str = "auto",
                 settings: QSettings | None = None, stack_path: Path | None = None):
        super().__init__()
        self.settings = settings or QSettings()
        self.document = StackDocument(stack or default_stack(), self)
        self.document.path = Path(stack_path) if stack_path else None
        # Connected before any view: an edit reaches the worker first, and the run overlaps the
        # shape inference and form refreshes that follow on this thread.
        self.document.changed.connect(lambda _first: self._submit(hold_panels=self._panels_change()))
        self._panels_key: tuple | None = None       # what the held panels showed at the last edit
        self.runner = RunController(self)
        # Everything the views show comes from here (input, device, view settings, last run); created
        # after the connection above, so its shape inference follows the worker's submit.
        self.state = SessionState(self.document, self, requested_source=source or InputSource.sample("astronaut"),
                                  device=str(resolve_device(device)))
        self.last_run_ms: float | None = None
        self._submitted_at = 0.0
        self._model_view_stale = True
        self._input_problem: str | None = None           # why nothing could run at all (the input)
        self._run_failed = False                         # the banner says why the last run failed

        self.setWindowTitle(APP_NAME)
        self.setAcceptDrops(True)
        self._build_widgets()
        self._build_menus()
        self._build_status_bar()
        self._connect()
        # The shapes tab's whole dock (its tab frame repaints with the table); with the Model tab in
        # front, nothing there: the model's code does not wait, and is not repainted whole.
        self.paint_priority = PaintPriority(
            lambda: [self.layer_panel.list] + ([self.bottom_dock] if self.bottom_tabs.currentWidget() is self.shapes_view
                                               else []), self)

        self.autosaver = AutosaveController(self.document, self)

        self._restore_layout()
        self.input_panel.set_input_spec(self.document.stack.input)
        self._stack_changed(0)
        self._panels_change()           # what the panels show now: the first edit compares with it
        self._submit()
        self._selection_changed(self.document.selected)
        self._update_title()

    # ---------------------------------------------------------------- building
    def _build_widgets(self) -> None:
        self.layer_panel = LayerPanel(self.document, self.state)
        self.layer_form = LayerForm(self.document)
        left = QSplitter(Qt.Vertical)
        left.setObjectName("leftSplitter")
        left.addWidget(self.layer_panel)
        self.kernel_editor = KernelEditor(self.document)
        self.layer_tabs = QTabWidget()
        self.layer_tabs.setObjectName("layerTabs")
        self.layer_tabs.addTab(self.layer_form, "Arguments")
        self.layer_tabs.addTab(self.kernel_editor, "Kernel")
        self.layer_tabs.setTabToolTip(1, "Edit the weights of a Conv2d, ConvTranspose2d or small Linear layer by hand, "
                                         "or pick a preset (Sobel, blur, ...).")
        left.addWidget(self.layer_tabs)
        left.setStretchFactor(0, 1)
        left.setStretchFactor(1, 1)
        self.layers_dock = QDockWidget("Layers", self)
        self.layers_dock.setObjectName("layersDock")
        self.layers_dock.setWidget(left)
        self.layers_dock.setMinimumWidth(300)
        self.addDockWidget(Qt.LeftDockWidgetArea, self.layers_dock)

        self.input_panel = InputPanel(self.state)
        self.input_dock = QDockWidget("Input", self)
        self.input_dock.setObjectName("inputDock")
        self.input_dock.setWidget(self.input_panel)
        self.addDockWidget(Qt.RightDockWidgetArea, self.input_dock)
        self.probe_panel = ProbePanel(self.state)
        self.probe_dock = QDockWidget("Look inside a pixel", self)
        self.probe_dock.setObjectName("probeDock")
        self.probe_dock.setWidget(self.probe_panel)
        self.addDockWidget(Qt.RightDockWidgetArea, self.probe_dock)

        self.feature_view = FeatureView(self.state)
        self.banner = QLabel("")
        self.banner.setObjectName("banner")
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet("QLabel { background: #fdecea; color: #8a1c1c; padding: 6px; border: 1px solid #f5c2c0; }")
        self.banner.setVisible(False)
        self.banner.setToolTip("Click to hide")
        self.banner.mousePressEvent = lambda _event: self.banner.setVisible(False)
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.banner)
        layout.addWidget(self.feature_view, 1)
        self.setCentralWidget(central)

        self.shapes_view = ShapesView()
        self.model_view = ModelView()
        self.bottom_tabs = QTabWidget()
        self.bottom_tabs.setObjectName("bottomTabs")
        # No frame around the pages (the dock is the frame): the style's frame was a gradient over the
        # whole dock, repainted with the shapes table after every edit.
        self.bottom_tabs.setDocumentMode(True)
        self.bottom_tabs.addTab(self.shapes_view, "Shapes")
        self.bottom_tabs.addTab(self.model_view, "Model")
        self.bottom_dock = QDockWidget("Shapes and model", self)
        self.bottom_dock.setObjectName("bottomDock")
        self.bottom_dock.setWidget(self.bottom_tabs)
        self.addDockWidget(Qt.BottomDockWidgetArea, self.bottom_dock)

    def _action(self, menu, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcuts(shortcut if isinstance(shortcut, list) else [QKeySequence(shortcut)])
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(tip)
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self.new_action = self._action(file_menu, "&New stack", self.new_stack, QKeySequence.New)
        self.open_action = self._action(file_menu, "&Open stack…", self.open_stack_dialog, QKeySequence.Open)
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.recent_files = RecentFiles(self.settings, self.recent_menu, self.open_stack)
        self.examples_menu = file_menu.addMenu("&Examples")
        for example in examples():
            action = self.examples_menu.addAction(f"{example.name} — {example.description}")
            action.triggered.connect(lambda _=False, e=example: self.open_example(e.name))
        file_menu.addSeparator()
        self.save_action = self._action(file_menu, "&Save", self.save, QKeySequence.Save)
        self.save_as_action = self._action(file_menu, "Save &as…", self.save_as, QKeySequence.SaveAs)
        file_menu.addSeparator()
        self._action(file_menu, "Export feature grid as PNG…", lambda: self._export_png("grid"))
        self._action(file_menu, "Export channel as PNG…", lambda: self._export_png("channel"))
        self._action(file_menu, "Export all layers…", self.export_all_dialog,
                     tip="Write input.npy, summary.json and every layer's .npy/.png, as the run command does.")
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, QKeySequence.Quit)

        edit = bar.addMenu("&Edit")
        undo = self.document.undo_stack.createUndoAction(self, "&Undo")
        undo.setShortcut(QKeySequence.Undo)
        redo = self.document.undo_stack.createRedoAction(self, "&Redo")
        redo.setShortcuts(redo_keys())
        edit.addAction(undo)
        edit.addAction(redo)
        self.undo_action, self.redo_action = undo, redo
        edit.addSeparator()
        add_menu = edit.addMenu("&Add layer")
        for category in CATEGORIES:
            sub = add_menu.addMenu(category)
            for t in LAYER_TYPES.values():
                if t.category == category:
                    action = sub.addAction(t.name)
                    action.setStatusTip(t.summary)
                    action.triggered.connect(lambda _=False, name=t.name: self.add_layer(name))
        self._action(edit, "Paste image", self.paste_image, QKeySequence.Paste,
                     tip="Use the image on the clipboard as the input.")

        inputs = bar.addMenu("&Input")
        self._action(inputs, "Open &image…", self.open_image_dialog, "Ctrl+I")
        samples = inputs.addMenu("&Samples")
        from explorer.core.inputs import list_samples
        for name, description in list_samples():
            action = samples.addAction(f"{name} — {description}")
            action.triggered.connect(lambda _=False, n=name: self.set_source(InputSource.sample(n)))
        self._action(inputs, "Open CIFAR-10 &folder…", self.open_cifar_folder_dialog)
        self._action(inputs, "Open CIFAR-10 &archive…", self.open_cifar_archive_dialog)

        run = bar.addMenu("&Run")
        device_menu = run.addMenu("&Device")
        self.device_group = QActionGroup(self)
        for name in available_devices():
            label = device_label(torch.device(name))
            action = device_menu.addAction(label if name == "cpu" else f"GPU: {label}")
            action.setCheckable(True)
            action.setChecked(name == self.device)
            action.setData(name)
            self.device_group.addAction(action)
            action.triggered.connect(lambda _=False, n=name: self.set_device(n))
        if len(available_devices()) == 1:
            note = device_menu.addAction("No GPU found by torch")
            note.setEnabled(False)
        self.train_action = QAction("Training mode (Dropout, BatchNorm batch statistics)", self, checkable=True)
        self.train_action.toggled.connect(lambda on: self.document.set_mode("train" if on else "eval"))
        run.addAction(self.train_action)

        view = bar.addMenu("&View")
        for dock in (self.layers_dock, self.input_dock, self.probe_dock, self.bottom_dock):
            view.addAction(dock.toggleViewAction())

        self.walkthroughs = WalkthroughLauncher(self, bar.addMenu("&Models"))
        from explorer.ui.training import install_train_menu
        self.training = install_train_menu(self, bar.addMenu("&Train"))
        from explorer.ui.insight.launcher import InsightLauncher
        self.insight = InsightLauncher(self, bar.addMenu("&Insight"))

        help_menu = bar.addMenu("&Help")
        self.about_action = self._action(help_menu, "About", self.show_about)

    def show_about(self):
        from explorer.ui.about import show_about
        return show_about(self)

    def _build_status_bar(self) -> None:
        self.device_status = QLabel()
        self.device_status.setObjectName("deviceStatus")
        self.time_status = QLabel()
        self.time_status.setObjectName("timeStatus")
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(160)
        self.progress.setVisible(False)
        bar = self.statusBar()
        bar.addPermanentWidget(self.progress)
        bar.addPermanentWidget(self.time_status)
        bar.addPermanentWidget(self.device_status)
        self._update_device_label()

    def _connect(self) -> None:
        doc = self.document
        doc.changed.connect(self._stack_changed)
        doc.selection_changed.connect(self._selection_changed)
        doc.dirty_changed.connect(lambda _: self._update_title())
        doc.path_changed.connect(lambda _: self._update_title())
        doc.history_trimmed.connect(lambda n: self.show_message(
            f"Undo history over {HISTORY_BYTES // 2**20} MB: the oldest {n} step{'s' if n > 1 else ''} can no longer be undone."))
        self.runner.finished.connect(self._run_finished)
        self.runner.focus_ready.connect(self._focus_ready)
        self.state.requested_source_changed.connect(lambda _: self._submit())
        self.state.device_changed.connect(lambda _: (self._update_device_label(), self._submit()))
        self.state.shapes_changed.connect(self._shapes_changed)
        self._shapes_changed()          # the state inferred the opening stack's shapes before this connection
        self.feature_view.channel_view.pixel_hovered.connect(
            lambda x, y: self.probe_panel.probe_pixel(self._selected_name(), self.state.batch_item,
                                                      self.feature_view.selected_channel, x, y))
        doc.selection_changed.connect(lambda _: self.probe_panel.clear())
        self.feature_view.channel_selected.connect(self.kernel_editor.follow_channel)
        self.kernel_editor.filter_chosen.connect(self.feature_view.set_selected_channel)
        self.runner.progress.connect(self._run_progress)
        self.runner.busy_changed.connect(self._busy_changed)
        self.layer_panel.message.connect(self.show_message)
        self.layer_form.message.connect(self.show_message)
        self.input_panel.input_spec_edited.connect(lambda spec: doc.set_input_spec(spec.channels, spec.size))
        self.input_panel.open_image_requested.connect(self.open_image_dialog)
        self.input_panel.open_cifar_requested.connect(self.open_cifar_folder_dialog)
        self.shapes_view.layer_clicked.connect(doc.select)
        self.bottom_tabs.currentChanged.connect(lambda _: self._model_view_stale and self._update_model_view())
        self.bottom_dock.visibilityChanged.connect(lambda _: self._model_view_stale and self._update_model_view())
        self.model_view.code_copied.connect(lambda _: self.show_message("PyTorch code copied to the clipboard."))

    # ---------------------------------------------------------------- the flow: edit → run → views
    # The session's facts, for the launchers, the about box and tests; the state holds them.
    @property
    def device(self) -> str:
        return self.state.device

    @property
    def requested_source(self) -> InputSource | None:
        return self.state.requested_source

    @property
    def source(self) -> InputSource | None:
        return self.state.source

    @property
    def batch(self):
        return self.state.batch

    @property
    def result(self):
        return self.state.result

    def _shapes_changed(self) -> None:
        self.shapes_view.set_rows(self.state.shape_rows, len(self.document.stack.layers),
                                  problems=self.layer_panel.problems())

    def _stack_changed(self, first_index: int) -> None:
        stack = self.document.stack
        self.shapes_view.set_problems(self.layer_panel.problems())   # run errors of changed layers are gone
        self._update_model_view()
        self.input_panel.set_input_spec(stack.input)
        with qt_signals_blocked(self.train_action):
            self.train_action.setChecked(stack.mode == "train")
        self._update_title()

    def _selected_name(self) -> str:
        i = self.document.selected
        return self.document.stack.layers[i].name if 0 <= i < len(self.document.stack.layers) else ""

    def _update_model_view(self) -> None:
        # print(model) and the code cost ~10 ms per edit: build them only when the tab is in view.
        if self.bottom_tabs.currentWidget() is self.model_view and self.bottom_dock.isVisible():
            self.model_view.set_stack(self.document.stack)
            self._model_view_stale = False
        else:
            self._model_view_stale = True

    def _panels_change(self) -> bool:
        """Whether the edit just made changes what the held panels show (shapes, rows). A kernel cell,
        the seed or a training preview changes weights only: holding the panels then bought nothing,
        and releasing them repainted the whole shapes table and layer list (~8 ms a keystroke)."""
        stack = self.document.stack
        key = (structure_key(stack), stack.input, stack.mode)
        changed, self._panels_key = key != self._panels_key, key
        return changed

    def _submit(self, hold_panels: bool = True) -> None:
        self._submitted_at = time.perf_counter()
        self.feature_view.hold_statistics(True)       # counted once the run has answered
        if hold_panels:
            self.paint_priority.hold()                 # the new maps are painted first
        state = self.state
        self.runner.submit(self.document.stack, state.requested_source, state.device, self.document.selected, state.view)

    def _run_finished(self, reply: RunReply) -> None:
        try:
            self._show_run(reply)
        finally:
            self.feature_view.hold_statistics(self.runner.busy)   # the last run answered: count what it shows
            self.paint_priority.release_after_paint()

    def _show_run(self, reply: RunReply) -> None:
        if reply.input_error:
            self.show_problem(reply.input_error)
            if self.source is not None and reply.request.source != self.source:
                self.state.requested_source = self.source      # keep the previous input (runs it)
            elif self.result is None:                    # nothing to fall back on: say so in the view
                self._input_problem = (f"There is no input to run the stack on. {reply.input_error} "
                                       "Open an image, pick a sample or drop a file on the window.")
                self._selection_changed(self.document.selected)
            return
        self._input_problem = None
        if reply.error:
            # A background run nobody asked about by name: its failure goes where the other problems
            # are (banner, status bar, log), never into a dialog; a burst of edits stacked dozens.
            if reply.details:
                log.error("Run failed\n%s", reply.details)
            self.show_problem(reply.error)
            self._run_failed = True
            if reply.result is None:
                return
        elif self._run_failed:                           # the next good run takes the failure away
            self._run_failed = False
            self.banner.setVisible(False)
        source_changed = reply.request.source != self.source
        previous = self.state.last_run
        # The input panel, the probe panel and the shape rows follow the state from here.
        self.state.last_run = LastRun(reply.request.stack, reply.request.source, reply.batch, reply.result,
                                      reply.batch_count)
        # The previous result can be gigabytes: freed on the reaper's thread, not this one.
        release_later(previous)
        del previous
        if source_changed and not reply.error:
            self.banner.setVisible(False)
        self.last_run_ms = (time.perf_counter() - self._submitted_at) * 1000
        errors = {r.index: r.error for r in reply.result.layers if r.error}
        self.layer_panel.set_run_errors(errors)
        self.shapes_view.set_problems(self.layer_panel.problems())
        display = reply.display
        if display is not None and display.layer_index < len(reply.result.layers):
            self.feature_view.prime(reply.result.layers[display.layer_index].output, display)
        self._selection_changed(self.document.selected)
        computed = len(reply.result.computed)
        self.time_status.setText(f"Ran {len(reply.result.layers)} layers in {reply.result.seconds * 1000:.1f} ms "
                                 f"({computed} recomputed)")

    def _focus_ready(self, focus: FocusReply) -> None:
        """The selected layer has run and the rest of the stack is still running: its maps are shown
        now. The rest of the window follows the state when the whole run answers (_run_finished)."""
        if focus.layer.index != self.document.selected or focus.source != self.source or self._input_problem:
            return      # another layer, or a new input (its batch and class names come with the whole run)
        self.feature_view.prime(focus.layer.output, focus.display)
        classes = self.batch.class_names if self.batch is not None else None
        self.feature_view.set_layer(focus.layer, classes)
        self.paint_priority.release_after_paint()

    def _run_progress(self, done: int, total: int) -> None:
        if total >= 4 and time.perf_counter() - self._submitted_at > 0.3:
            self.progress.setVisible(True)
            self.progress.setRange(0, total)
            self.progress.setValue(done)

    def _busy_changed(self, busy: bool) -> None:
        if not busy:
            self.progress.setVisible(False)

    def _selection_changed(self, index: int) -> None:
        if self.result is None and self._input_problem:
            self.feature_view.show_problem(self._input_problem)
            return
        result = None
        if self.result is not None and 0 <= index < len(self.result.layers):
            result = self.result.layers[index]
        if result is None and index >= 0 and self.result is not None:
            failed = self.result.failed_index
            if failed is not None and index > failed:
                self.feature_view.set_layer(None)
                return
        classes = self.batch.class_names if self.batch is not None else None
        self.feature_view.set_layer(result, classes)

    # ---------------------------------------------------------------- inputs
    def set_source(self, source: InputSource) -> None:
        if source == self.state.requested_source:
            self._submit()                 # asked again (a file fixed on disk): run again
        else:
            self.state.requested_source = source

    def open_image_dialog(self) -> None:
        path = dialogs.open_file(self, "Open image", self._last_folder("image"), dialogs.IMAGE_FILTER)
        if path:
            self._remember_folder("image", path)
            self.set_source(InputSource.image(path))

    def open_cifar_folder_dialog(self) -> None:
        path = dialogs.choose_folder(self, "Open a CIFAR-10 folder (cifar-10-batches-py)", self._last_folder("cifar"))
        if path:
            self._remember_folder("cifar", path + "/x")
            self.set_source(InputSource.cifar(path, batch_size=self.input_panel.batch_size_spin.value()))

    def open_cifar_archive_dialog(self) -> None:
        path = dialogs.open_file(self, "Open cifar-10-python.tar.gz", self._last_folder("cifar"), dialogs.CIFAR_FILTER)
        if path:
            self._remember_folder("cifar", path)
            self.set_source(InputSource.cifar(path, batch_size=self.input_panel.batch_size_spin.value()))

    def paste_image(self) -> None:
        mime = QGuiApplication.clipboard().mimeData()
        if mime is not None and mime.hasUrls() and mime.urls() and mime.urls()[0].isLocalFile():
            self.open_path(Path(mime.urls()[0].toLocalFile()))
            return
        image = QGuiApplication.clipboard().image()
        if image.isNull():
            self.show_problem("The clipboard holds no image to paste.")
            return
        data = QByteArray()
        buffer = QBuffer(data)
        buffer.open(QIODevice.WriteOnly)
        image.save(buffer, "PNG")
        self.set_source(InputSource.pasted(bytes(data.data()), "pasted image"))

    def open_path(self, path: Path) -> None:
        """What a dropped file does: an image becomes the input, a stack opens, a folder or tarball is CIFAR."""
        if path.is_dir() or path.name.endswith((".tar.gz", ".tgz")):
            self.set_source(InputSource.cifar(path, batch_size=self.input_panel.batch_size_spin.value()))
        elif path.suffix.lower() == ".json":
            self.open_stack(path)
        else:
            self.set_source(InputSource.image(path))

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        urls = [u for u in event.mimeData().urls() if u.isLocalFile()]
        if urls:
            self.open_path(Path(urls[0].toLocalFile()))
            event.acceptProposedAction()

    # ---------------------------------------------------------------- editing
    def add_layer(self, type_name: str) -> None:
        try:
            self.document.add_layer(type_name)
        except ValueError as e:
            self.show_message(str(e))

    def set_device(self, name: str) -> None:
        try:
            self.state.device = str(resolve_device(name))
        except Exception as e:
            self.show_problem(str(e))

    def _update_device_label(self) -> None:
        self.device_status.setText(f"Device: {device_label(torch.device(self.device))}")

    # ---------------------------------------------------------------- files
    def _display_name(self) -> str:
        return self.document.path.name if self.document.path else "untitled"

    def _update_title(self) -> None:
        star = "*" if self.document.dirty else ""
        self.setWindowTitle(f"{self._display_name()}{star} — {APP_NAME}")

    def confirm_discard(self) -> bool:
        """True when it is fine to drop the current stack (saved, or the user said so)."""
        if not self.document.dirty:
            return True
        answer = dialogs.save_changes(self, self._display_name())
        if answer == "save":
            return self.save()
        return answer == "discard"

    def new_stack(self) -> None:
        if self.confirm_discard():
            self.document.replace(default_stack())

    def open_stack_dialog(self) -> None:
        if not self.confirm_discard():
            return
        path = dialogs.open_file(self, "Open stack", self._last_folder("stack"), dialogs.STACK_FILTER)
        if path:
            self.open_stack(Path(path), confirmed=True)

    def open_stack(self, path: Path, confirmed: bool = False) -> bool:
        if not confirmed and not self.confirm_discard():
            return False
        try:
            stack = load_stack(path)
        except StackError as e:
            self.show_problem(str(e))
            return False
        self._remember_folder("stack", str(path))
        self.recent_files.add(path)
        self.banner.setVisible(False)
        self.document.replace(stack, Path(path))
        return True

    def open_example(self, name: str) -> None:
        if not self.confirm_discard():
            return
        example = next(e for e in examples() if e.name == name)
        self.document.replace(load_example(name))
        if self.source is None or self.source.kind != "cifar":
            self.set_source(InputSource.sample(example.sample))

    def save(self) -> bool:
        if self.document.path is None:
            return self.save_as()
        return self._write(self.document.path)

    def save_as(self) -> bool:
        suggested = str(Path(self._last_folder("stack")) / f"{self.document.path.stem if self.document.path else 'stack'}.json")
        path = dialogs.save_file(self, "Save stack as", suggested, dialogs.STACK_FILTER)
        if not path:
            return False
        if not path.endswith(".json"):
            path += ".json"
        return self._write(Path(path))

    def _write(self, path: Path) -> bool:
        try:
            save_stack(self.document.real_stack, path)
        except OSError as e:
            self.show_problem(f"Could not save '{path}': {e.strerror or e}.")
            return False
        self.document.mark_saved(path)
        self._remember_folder("stack", str(path))
        self.recent_files.add(path)
        self.show_message(f"Saved {path.name}.")
        return True

    def _last_folder(self, kind: str) -> str:
        return str(self.settings.value(f"lastFolder/{kind}", str(Path.home())))

    def _remember_folder(self, kind: str, path: str) -> None:
        self.settings.setValue(f"lastFolder/{kind}", str(Path(path).parent))

    # ---------------------------------------------------------------- exports
    def _export_png(self, what: str) -> None:
        path = dialogs.save_file(self, f"Export {what} as PNG", str(Path(self._last_folder("export")) / f"{what}.png"),
                                 dialogs.PNG_FILTER)
        if not path:
            return
        try:
            (self.feature_view.export_grid if what == "grid" else self.feature_view.export_channel)(path)
        except Exception as e:
            self.show_problem(f"Could not export the {what}: {e}")
            return
        self._remember_folder("export", path)
        self.show_message(f"Wrote {path}.")

    def export_all_dialog(self) -> None:
        folder = dialogs.choose_folder(self, "Export all layers into a folder", self._last_folder("export"))
        if folder:
            self.export_all(Path(folder))

    def export_all(self, folder: Path) -> None:
        if self.result is None or self.batch is None:
            self.show_problem("Nothing has run yet, so there is nothing to export.")
            return
        try:
            export_run(self.result, self.batch, folder)
        except OSError as e:
            self.show_problem(f"Could not export to '{folder}': {e.strerror or e}.")
            return
        self.show_message(f"Wrote {len(self.result.layers)} layers to {folder}.")

    # ---------------------------------------------------------------- messages, autosave, layout
    def show_message(self, text: str) -> None:
        self.statusBar().showMessage(text, 8000)

    def show_problem(self, text: str) -> None:
        """A problem the user can fix: one sentence in the window, nothing lost."""
        self._run_failed = False
        self.banner.setText(text)
        self.banner.setVisible(True)
        self.show_message(text)

    def offer_autosave(self) -> None:
        self.autosaver.offer()

    def _restore_layout(self) -> None:
        geometry = self.settings.value("window/geometry")
        state = self.settings.value("window/state")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1400, 900)
        self._layout_restored = state is not None and self.restoreState(state)
        self.recent_files.rebuild_menu()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self._layout_restored:   # first start: the feature maps get the room
            self._layout_restored = True
            self.resizeDocks([self.layers_dock, self.input_dock], [340, 250], Qt.Horizontal)
            self.resizeDocks([self.bottom_dock], [230], Qt.Vertical)
            # The right column: the input picture above, the pixel probe below, both readable.
            self.resizeDocks([self.input_dock, self.probe_dock], [3, 2], Qt.Vertical)

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self.confirm_discard():
            event.ignore()
            return
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.autosaver.close()
        self.runner.shutdown()
        self.training.shutdown()
        self.walkthroughs.close_all()
        self.insight.close_all()
        event.accept()


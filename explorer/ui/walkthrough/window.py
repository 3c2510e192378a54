"""The model walkthrough: VGG-16 (or LeNet, or another torchvision classifier) stage by stage on
the current input, the way the classic text explains it.

One forward pass with hooks (``explorer.core.walkthrough.capture``) runs on a background thread
and keeps every stage's output on the device; stepping renders only the stage on screen, through
the main window's own FeatureView. Everything the steps say (shapes, parameters, multiply-adds,
receptive fields, notes) comes from the core; this module lays it out."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeyEvent, QKeySequence
from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QFormLayout, QFrame, QGridLayout, QHBoxLayout,
                               QLabel, QMainWindow, QMenu, QPlainTextEdit, QProgressBar, QProgressDialog, QPushButton,
                               QScrollArea, QSpinBox, QSplitter, QStackedWidget, QTabWidget, QVBoxLayout, QWidget)

from explorer.core import model_zoo, walkthrough as core_walkthrough, weights as core_weights
from explorer.core.walkthrough import RANDOM_NOTICE
from explorer.core.engine import LayerResult
from explorer.core.input_source import InputSource, load_input
from explorer.core.display import LayerDisplay
from explorer.core.stack import InputSpec, Stack
from explorer.core.stats import layer_stats
from explorer.ui import dialogs
from explorer.ui.feature_view import FeatureView
from explorer.ui.walkthrough.stage_strip import StageStrip, StripBlock, legend_html
from explorer.ui.walkthrough.views import InputImageView, TopClassesView, input_pixels
from explorer.ui.deferred import DeferredWidget, IdleBuilder
from explorer.ui.reaper import release_later
from explorer.ui.jobs import JobContext
from explorer.ui.walkthrough.worker import JobCancelled, JobFailure, JobRunner
from explorer.ui.spin_boxes import CheckedSpinBox
from explorer.ui.fonts import fixed_font
from explorer.ui.qt_signals import qt_signals_blocked

log = logging.getLogger("explorer")

WEIGHTS_FILTER = "Weights (*.pth *.pt *.bin *.ckpt *.safetensors);;All files (*)"
MODEL_LABELS = {"vgg16": "VGG-16", "vgg11": "VGG-11", "vgg13": "VGG-13", "vgg19": "VGG-19", "lenet": "LeNet",
                "alexnet": "AlexNet", "resnet18": "ResNet-18"}
KIND_TYPES = {"input": "Input", "flatten": "Flatten", "softmax": "Softmax"}   # stages with no module of their own


def model_label(name: str) -> str:
    return MODEL_LABELS.get(name, name)


# ============================================================================ formatting

def nchw_text(shape: tuple[int, ...]) -> str:
    """torch's way: [1, 64, 224, 224] (N, C, H, W)."""
    names = "(N, C, H, W)" if len(shape) == 4 else "(N, features)" if len(shape) == 2 else ""
    return f"[{', '.join(str(int(s)) for s in shape)}] {names}".strip()


def short_count(n: int) -> str:
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= limit:
            return f"{n / limit:.2f} {suffix}"
    return str(n)


def named_parameters_text(model: torch.nn.Module) -> str:
    """What ``for name, p in net.named_parameters(): print(name, p.size())`` prints."""
    lines = [f"{name} {param.size()}" for name, param in model.named_parameters()]
    total = sum(p.numel() for p in model.parameters())
    return "\n".join(lines + ["", f"{len(lines)} tensors, {total:,} parameters"])


# ============================================================================ questions (monkeypatched in tests)

def ask_stage_count(parent: QWidget, stage_titles: list[str], default: int) -> int | None:
    """How many stages (after the input) go into the stack; None when cancelled."""
    dialog = QDialog(parent)
    dialog.setWindowTitle("Send to stack")
    layout = QVBoxLayout(dialog)
    text = QLabel("Copy the first N stages, weights included, into the editable layer stack of the main "
                  "window. The main window's input becomes this walkthrough's input, as the model sees it.")
    text.setWordWrap(True)
    layout.addWidget(text)
    form = QFormLayout()
    spin = CheckedSpinBox(label="Stages (N)")
    spin.setRange(1, max(1, len(stage_titles) - 1))
    spin.setValue(max(1, min(default, len(stage_titles) - 1)))
    last = QLabel()
    last.setWordWrap(True)
    spin.valueChanged.connect(lambda n: last.setText(f"up to and including {stage_titles[n]}"))
    last.setText(f"up to and including {stage_titles[spin.value()]}")
    form.addRow("Stages (N):", spin)
    form.addRow("", last)
    layout.addLayout(form)
    buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
    # Enter on a refused number (99 of 5) must not close the dialog with the old one.
    buttons.accepted.connect(lambda: None if spin.problem else dialog.accept())
    buttons.rejected.connect(dialog.reject)
    layout.addWidget(buttons)
    return spin.value() if dialog.exec() == QDialog.Accepted else None


def ask_model(parent: QWidget, folder: str) -> tuple[str, str | None] | None:
    """'Open model…': an architecture from the zoo and an optional weights file."""
    dialog = QDialog(parent)
    dialog.setWindowTitle("Open model")
    layout = QFormLayout(dialog)
    combo = QComboBox()
    for name in model_zoo.MODEL_NAMES:
        combo.addItem(f"{model_label(name)} ({name})", name)
    combo.setCurrentIndex(max(0, combo.findData("vgg16")))
    layout.addRow("Architecture:", combo)
    path_label = QLabel("none: ImageNet weights from the torch cache if there, else random")
    path_label.setWordWrap(True)
    chosen: dict[str, str | None] = {"path": None}

    def choose() -> None:
        path = dialogs.open_file(dialog, "Open weights file", folder, WEIGHTS_FILTER)
        if path:
            chosen["path"] = path
            path_label.setText(path)

    browse = QPushButton("Choose weights file…")
    browse.clicked.connect(choose)
    layout.addRow("Weights:", path_label)
    layout.addRow("", browse)
    buttons = QDialogButtonBox(QDialogButtonBox.Open | QDialogButtonBox.Cancel)
    buttons.accepted.connect(dialog.accept)
    buttons.rejected.connect(dialog.reject)
    layout.addRow(buttons)
    if dialog.exec() != QDialog.Accepted:
        return None
    return combo.currentData(), chosen["path"]


# ============================================================================ the background jobs

@dataclass
class CaptureOutcome:
    model: torch.nn.Module
    walkthrough: object            # core Walkthrough
    stage_stats: dict              # stage index -> LayerStats, counted off the GUI thread
    download_size: str | None      # '528 MB' for the Weights menu; None: no ImageNet weights exist
    pictures: "InputPictures | None" = None   # the input views' pixels, rendered off the GUI thread
    top5: list | None = None       # [(class, probability)] with real weights
    parameters_text: str = ""      # the named_parameters() tab


@dataclass
class InputPictures:
    """What the two input views show, prepared in the job (no tensor work on the GUI thread)."""
    raw: np.ndarray                # uint8 pixels of the input as the model sees it, before normalising
    normalized: np.ndarray | None  # uint8 pixels of the normalised input (its min..max); None: not normalised
    low: float = 0.0               # the normalised input's range
    high: float = 0.0


def input_pictures(walk) -> InputPictures:
    raw, normalized = walk.raw_input, walk.model_input
    raw_pixels = input_pixels(raw, stretch=False)
    if normalized is raw or torch.equal(normalized.to(raw.device), raw):
        return InputPictures(raw_pixels, None)
    return InputPictures(raw_pixels, input_pixels(normalized, stretch=True), float(normalized.min()),
                         float(normalized.max()))


def capture_job(model_name: str, source: InputSource | None, image: torch.Tensor | None, batch_item: int,
                device: str, weights: str | None, model: torch.nn.Module | None, model_weights: str = "random"):
    """A job for JobRunner (run with a JobContext): loads the input, builds the model (or reuses it when its weights stay),
    loads weights, runs the one forward pass and counts every stage's statistics (so stepping only
    renders). ``weights`` None keeps ``model`` and its weights (labelled ``model_weights``); 'auto' takes torchvision's ImageNet
    weights when they are in the local torch cache, else random ones. (Importing torchvision alone
    takes seconds the first time: that, too, happens here and not on the GUI thread.)"""

    def job(context: JobContext) -> CaptureOutcome:
        if model is None:
            context.post(core_walkthrough.plan(model_name))     # shapes only (meta tensors): instant
        chosen = weights
        if chosen == "auto":
            chosen = "imagenet" if core_weights.imagenet_available(model_name) else "random"
        picture = image
        if picture is None:
            batch = load_input(source or InputSource.sample("astronaut"), InputSpec(channels=3, size=None))
            item = min(max(0, batch_item), batch.tensor.shape[0] - 1)
            picture = batch.tensor[item:item + 1]
        picture = core_walkthrough.eight_bit_picture(model_name, picture)
        context.check_cancelled()
        net = model
        label = None
        if net is None or chosen is not None:
            net = model_zoo.build_model(model_name)
            context.check_cancelled()
            label = core_weights.load_weights(net, chosen or "random", name=model_name)
        context.check_cancelled()
        # Closing the window mid-forward stops it at the next module (VGG's biggest conv: a fraction
        # of a second on a CPU), not after the whole pass.
        hooks = [m.register_forward_pre_hook(lambda *_: context.check_cancelled()) for m in net.modules()]
        try:
            walk = core_walkthrough.capture(model_name, net, picture, device=device,
                                            weights_label=label or model_weights,
                                            categories=model_zoo.class_names(model_name))
        finally:
            for hook in hooks:
                hook.remove()
        stats = {}
        for index, output in enumerate(walk.outputs):
            context.check_cancelled()
            if output is not None and output.numel():
                stats[index] = layer_stats(output)
        return CaptureOutcome(net, walk, stats, imagenet_size_text(model_name), input_pictures(walk), walk.top5(),
                              named_parameters_text(net))

    return job


def download_job(model_name: str):
    def job(context: JobContext) -> Path:
        try:
            path = core_weights.download_imagenet(model_name, context.report, context.cancelled)
        except core_weights.DownloadCancelled:
            raise JobCancelled() from None
        context.check_cancelled()
        return Path(path)
    return job


def imagenet_size_text(model_name: str) -> str | None:
    """'528 MB' for the menu; None when torchvision has no ImageNet weights for the model."""
    try:
        size = core_weights.download_size(model_name)
    except ValueError:
        return None
    return f"{size / 1e6:.0f} MB" if size else None


# ============================================================================ the window

class WalkthroughWindow(QMainWindow):
    """One model walked through on one image; the main window's Models menu opens it."""

    closed = Signal()

    def __init__(self, model_name: str, source: InputSource | None = None, batch_item: int = 0,
                 device: str = "cpu", weights: str | None = None,
                 send_stack: Callable[[Stack, "WalkthroughWindow"], None] | None = None,
                 settings: QSettings | None = None, parent: QWidget | None = None,
                 image: torch.Tensor | None = None,
                 input_provider: Callable[[], tuple[InputSource, int]] | None = None):
        super().__init__(parent)
        self.setWindowFlag(Qt.Window, True)
        self.setAttribute(Qt.WA_DeleteOnClose, False)
        self.model_name = model_name
        self.source = source
        self.batch_item = batch_item
        self.image = image
        self.device = device
        self.settings = settings or QSettings()
        self._send_stack = send_stack
        self._input_provider = input_provider      # the main window's (source, batch item) now
        self.model: torch.nn.Module | None = None
        self.walkthrough = None
        self.current = 0
        self._downloaded: Path | None = None
        self._pending_step: int | None = None
        self._closed = False
        self._inputs_shown_for = None             # the walkthrough whose input pictures are on screen
        self._pictures: InputPictures | None = None
        self._top5: list | None = None
        self._feature_view: FeatureView | None = None
        self._top_classes: TopClassesView | None = None
        self._channel_hover = False
        self._builder = IdleBuilder(self)
        self._modules_of = (None, None)           # (walkthrough, its model's named_modules())

        self.jobs = JobRunner(self)
        self.jobs.succeeded.connect(self._job_succeeded)
        self.jobs.failed.connect(self._job_failed)
        self.jobs.busy_changed.connect(self._busy_changed)
        self.jobs.progressed.connect(self._download_progress)
        self.jobs.posted.connect(self._plan_ready)
        self._job_kind = ""
        self._progress_dialog: QProgressDialog | None = None

        self.setWindowTitle(f"{model_label(model_name)} walkthrough — Feature Map Explorer")
        self._build()
        self._build_menus()
        # Made now, not with the first message: a status bar that appears later shrinks everything
        # above it, and the whole window is laid out and painted again in the same turn.
        self.statusBar()
        self.notice.setVisible(weights == "random")     # known to be random: shown now, same reason
        self.resize(1380, 900)
        self._set_controls_enabled(False)
        self._stage_stats: dict = {}
        self.recapture(weights or "auto")
        self._builder.add(*self._build_steps())

    # ---------------------------------------------------------------- building
    def _build(self) -> None:
        central = QWidget()
        outer = QVBoxLayout(central)
        outer.setContentsMargins(6, 4, 6, 4)
        outer.setSpacing(4)

        self.strip = StageStrip()
        self.strip.stage_selected.connect(self.go_to)
        outer.addWidget(self.strip)

        nav = QHBoxLayout()
        self.prev_button = QPushButton("◀ Previous")
        self.prev_button.setObjectName("previousStage")
        self.prev_button.setToolTip("Previous stage (Left)")
        self.prev_button.clicked.connect(lambda: self.go_to(self.current - 1))
        self.next_button = QPushButton("Next ▶")
        self.next_button.setObjectName("nextStage")
        self.next_button.setToolTip("Next stage (Right)")
        self.next_button.clicked.connect(lambda: self.go_to(self.current + 1))
        self.stage_combo = QComboBox()
        self.stage_combo.setObjectName("stageCombo")
        self.stage_combo.setToolTip("Jump to a stage (Home: first, End: last)")
        self.stage_combo.setMinimumContentsLength(34)
        self.stage_combo.currentIndexChanged.connect(lambda i: i >= 0 and self.go_to(i))
        for button in (self.prev_button, self.next_button):
            button.setFocusPolicy(Qt.NoFocus)      # arrow keys keep stepping through stages
        self.step_label = QLabel("")
        self.step_label.setObjectName("stepLabel")
        self.send_button = QPushButton("Send to stack…")
        self.send_button.setObjectName("sendToStack")
        self.send_button.setToolTip("Copy the first N stages, weights included, into the main window's layer stack")
        self.send_button.clicked.connect(self.send_to_stack)
        self.busy_bar = QProgressBar()
        self.busy_bar.setRange(0, 0)                # indeterminate: the forward pass reports no steps
        self.busy_bar.setMaximumWidth(140)
        self.busy_bar.setVisible(False)
        self.busy_label = QLabel("")
        self.busy_label.setObjectName("busyLabel")
        nav.addWidget(self.prev_button)
        nav.addWidget(self.stage_combo, 1)
        nav.addWidget(self.next_button)
        nav.addWidget(self.step_label)
        nav.addStretch(1)
        self.legend = QLabel("")
        self.legend.setObjectName("stripLegend")
        self.legend.setToolTip("Block height: the spatial size of the maps (vectors: the number of values); "
                               "block width: the number of channels. Click a block to go there.")
        nav.addWidget(self.legend)
        nav.addSpacing(12)
        nav.addWidget(self.busy_label)
        nav.addWidget(self.busy_bar)
        nav.addWidget(self.send_button)
        outer.addLayout(nav)

        self.notice = QLabel(RANDOM_NOTICE)
        self.notice.setObjectName("randomWeightsNotice")
        self.notice.setWordWrap(True)
        self.notice.setStyleSheet("QLabel { background: #fff4cc; color: #6b4e00; padding: 5px; "
                                  "border: 1px solid #f0d27a; font-weight: bold; }")
        self.notice.setVisible(False)
        outer.addWidget(self.notice)
        self.problem = QLabel("")
        self.problem.setObjectName("walkthroughProblem")
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet("QLabel { background: #fdecea; color: #8a1c1c; padding: 5px; "
                                   "border: 1px solid #f5c2c0; }")
        self.problem.setToolTip("Click to hide")
        self.problem.setVisible(False)
        self.problem.mousePressEvent = lambda _event: self.problem.setVisible(False)
        outer.addWidget(self.problem)

        splitter = QSplitter(Qt.Horizontal)
        splitter.setObjectName("walkthroughSplitter")
        splitter.addWidget(self._build_side())
        self.view_stack = QStackedWidget()
        # The plots are built after the window is up, one per event-loop turn (self._builder), or
        # when first used: built here they froze the GUI thread for half a second (issue #9).
        self.waiting = QLabel("")
        self.waiting.setAlignment(Qt.AlignCenter)
        self.waiting.setWordWrap(True)
        self.view_stack.addWidget(self.waiting)
        splitter.addWidget(self.view_stack)
        splitter.setStretchFactor(0, 0)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([380, 1000])
        splitter.setChildrenCollapsible(False)
        outer.addWidget(splitter, 1)
        self.setCentralWidget(central)

    def _build_steps(self) -> list:
        """The deferred widgets in the order they are needed, one per event-loop turn: the input
        views, the feature view's frame and grid, then its three plots. The top-5 chart only comes
        with real weights (after the capture)."""
        return [self._raw_part.widget, self._normalized_part.widget, lambda: self.feature_view,
                lambda: self._builder.add(*self.feature_view.build_steps(), self._connect_channel_hover,
                                          self._place_feature_view)]

    @property
    def feature_view(self) -> FeatureView:
        if self._feature_view is None:
            # No parent until its plots are built (_place_feature_view): in the stack it would be
            # laid out at once, and its splitters would share the space among empty places.
            self._feature_view = FeatureView(deferred=True)
            # Hovering a feature-map pixel outlines what it sees of the input.
            self._feature_view.grid.scene().sigMouseMoved.connect(self._hover_grid)
        return self._feature_view

    def _place_feature_view(self) -> FeatureView:
        """The feature view in the window, every plot of it built first."""
        view = self.feature_view
        if view.parent() is None:
            for step in view.build_steps():
                step()
            self._connect_channel_hover()
            self.view_stack.addWidget(view)
        return view

    def _connect_channel_hover(self) -> None:
        if not self._channel_hover:
            self._channel_hover = True
            self.feature_view.channel_view.graphics.scene().sigMouseMoved.connect(self._hover_channel)

    @property
    def top_classes(self) -> TopClassesView:
        if self._top_classes is None:
            self._top_classes = TopClassesView()
            self.view_stack.addWidget(self._top_classes)
        return self._top_classes

    @property
    def raw_view(self) -> InputImageView:
        return self._raw_part.widget()

    @property
    def normalized_view(self) -> InputImageView:
        return self._normalized_part.widget()

    def _build_side(self) -> QWidget:
        tabs = QTabWidget()
        tabs.setObjectName("walkthroughSideTabs")
        tabs.setMinimumWidth(340)
        self.side_tabs = tabs

        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(6)
        self.title_label = QLabel("")
        self.title_label.setObjectName("stageTitle")
        font = self.title_label.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.25)
        self.title_label.setFont(font)
        self.title_label.setWordWrap(True)
        layout.addWidget(self.title_label)
        self.explanation_label = QLabel("")
        self.explanation_label.setObjectName("stageExplanation")
        self.explanation_label.setWordWrap(True)
        self.explanation_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        layout.addWidget(self.explanation_label)
        self.note_label = QLabel("")
        self.note_label.setObjectName("stageNote")
        self.note_label.setWordWrap(True)
        self.note_label.setStyleSheet("QLabel { background: #e8f1fb; color: #183e66; padding: 4px; "
                                      "border-left: 3px solid #4f8fd8; }")
        self.note_label.setVisible(False)
        layout.addWidget(self.note_label)

        facts = QGridLayout()
        facts.setHorizontalSpacing(10)
        facts.setVerticalSpacing(3)
        self.fact_labels: dict[str, QLabel] = {}
        rows = (("hwc", "Output (H×W×C)"), ("nchw", "Output (NCHW)"), ("params", "Parameters"),
                ("total", "Running total"), ("macs", "Multiply-adds"), ("field", "Receptive field"))
        for row, (key, text) in enumerate(rows):
            name = QLabel(text + ":")
            name.setAlignment(Qt.AlignRight | Qt.AlignTop)
            value = QLabel("—")
            value.setObjectName(f"fact_{key}")
            value.setWordWrap(True)
            value.setTextInteractionFlags(Qt.TextSelectableByMouse)
            facts.addWidget(name, row, 0)
            facts.addWidget(value, row, 1)
            self.fact_labels[key] = value
        facts.setColumnStretch(1, 1)
        layout.addLayout(facts)

        line = QFrame()
        line.setFrameShape(QFrame.HLine)
        line.setFrameShadow(QFrame.Sunken)
        layout.addWidget(line)
        images = QHBoxLayout()
        images.setSpacing(8)
        self._raw_part = DeferredWidget(lambda: _input_view("Input", "rawInputView"))
        self._normalized_part = DeferredWidget(lambda: _input_view("Normalised", "normalizedInputView"))
        for part in (self._raw_part, self._normalized_part):
            part.setFixedHeight(250)          # the pictures are square: no stretching into empty space
            images.addWidget(part)
        layout.addLayout(images)
        self.region_label = QLabel("Move the mouse over a feature map: the region of the input that one "
                                   "output pixel sees is outlined here.")
        self.region_label.setObjectName("regionLabel")
        self.region_label.setWordWrap(True)
        layout.addWidget(self.region_label)
        layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.NoFrame)
        scroll.setWidget(page)
        tabs.addTab(scroll, "Stage")

        self.parameters_text = QPlainTextEdit()
        self.parameters_text.setObjectName("namedParameters")
        self.parameters_text.setReadOnly(True)
        self.parameters_text.setLineWrapMode(QPlainTextEdit.NoWrap)
        mono = fixed_font(self.parameters_text.font())
        self.parameters_text.setFont(mono)
        tabs.addTab(self.parameters_text, "named_parameters()")
        tabs.setTabToolTip(1, "The model's parameters with their shapes, as the PyTorch tutorial prints them")
        return tabs

    def _build_menus(self) -> None:
        bar = self.menuBar()
        walk = bar.addMenu("&Walkthrough")
        self.send_action = QAction("&Send to stack…", self)
        self.send_action.triggered.connect(self.send_to_stack)
        walk.addAction(self.send_action)
        self.rerun_action = QAction("Run on the main window's &input", self)
        self.rerun_action.setStatusTip("Capture again on the image (or batch item) the main window shows now, "
                                       "with the same weights.")
        self.rerun_action.setEnabled(self._input_provider is not None)
        self.rerun_action.triggered.connect(self.use_main_window_input)
        walk.addAction(self.rerun_action)
        from explorer.ui.insight.launcher import add_walkthrough_action
        self.insight_action = add_walkthrough_action(self, walk)
        walk.addSeparator()
        for text, keys, slot in (("&Previous stage", "Left", lambda: self.go_to(self.current - 1)),
                                 ("&Next stage", "Right", lambda: self.go_to(self.current + 1)),
                                 ("&First stage", "Home", lambda: self.go_to(0)),
                                 ("&Last stage", "End", lambda: self.go_to(self.stage_count - 1))):
            action = QAction(text, self)
            # Shown in the menu for discoverability; the keys themselves are handled in keyPressEvent
            # so a focused feature grid keeps its own arrow keys for picking channels.
            action.setShortcut(QKeySequence(keys))
            action.setShortcutContext(Qt.WidgetShortcut)
            action.triggered.connect(slot)
            walk.addAction(action)
        walk.addSeparator()
        close = QAction("&Close", self)
        close.setShortcut(QKeySequence.Close)
        close.triggered.connect(self.close)
        walk.addAction(close)

        weights = bar.addMenu("W&eights")
        self.open_weights_action = QAction("&Open weights file…", self)
        self.open_weights_action.setStatusTip("Load a state_dict saved with torch.save(model.state_dict(), path); "
                                              "files that would run code to load are refused.")
        self.open_weights_action.triggered.connect(self.open_weights_dialog)
        weights.addAction(self.open_weights_action)
        # Its size comes with the first capture (reading torchvision's metadata imports torchvision).
        self.download_size: str | None = None
        self.download_action = QAction("&Download ImageNet weights…", self)
        self.download_action.setEnabled(False)
        self.download_action.triggered.connect(self.download_weights)
        weights.addAction(self.download_action)
        self.random_action = QAction("Use &random weights", self)
        self.random_action.triggered.connect(lambda: self.recapture("random"))
        weights.addAction(self.random_action)

    # ---------------------------------------------------------------- properties
    @property
    def stage_count(self) -> int:
        return len(self.walkthrough.stages) if self.walkthrough is not None else 0

    @property
    def stage(self):
        return self.walkthrough.stages[self.current] if self.walkthrough is not None else None

    @property
    def busy(self) -> bool:
        return self.jobs.busy

    def wait_until_idle(self, timeout_ms: int = 120_000) -> bool:
        """For tests and scripts: the job has answered, the window is built and the stage on screen
        is drawn. Waits as the event loop would, so nothing is built earlier than it would be."""
        import time
        from PySide6.QtCore import QCoreApplication
        if not self.jobs.wait_until_idle(timeout_ms):
            return False
        end = time.monotonic() + timeout_ms / 1000
        while not self._builder.done and time.monotonic() < end:
            QCoreApplication.processEvents()
            time.sleep(0.002)
        QCoreApplication.processEvents()
        return self._builder.done and (self._feature_view is None or self._feature_view.wait_until_ready(timeout_ms))

    # ---------------------------------------------------------------- capture
    def recapture(self, weights: str | None = None) -> bool:
        """Runs the model again in the background: ``weights`` 'random', 'imagenet' or a file path
        (None keeps the current weights, e.g. for a new input)."""
        if self.jobs.busy:
            self.show_problem("Still working on the previous request; try again in a moment.")
            return False
        self._job_kind = "capture"
        self.busy_label.setText(f"Running {model_label(self.model_name)} on the input…")
        if self.walkthrough is None:
            self.waiting.setText(f"Running {model_label(self.model_name)} on the input (one forward pass)…")
            self.view_stack.setCurrentWidget(self.waiting)
        current = self.walkthrough.weights if self.walkthrough is not None else "random"
        return self.jobs.start(capture_job(self.model_name, self.source, self.image, self.batch_item,
                                           self.device, weights, self.model, current))

    def use_main_window_input(self) -> bool:
        """Runs the same model and weights on the main window's current input, staying on this step."""
        if self._input_provider is None:
            return False
        if self.jobs.busy:
            self.show_problem("Still working on the previous request; try again in a moment.")
            return False
        self.source, self.batch_item = self._input_provider()
        self.image = None
        self._pending_step = self.current
        return self.recapture(None)

    def _busy_changed(self, busy: bool) -> None:
        self.busy_bar.setVisible(busy and self._job_kind == "capture")
        self.busy_label.setVisible(busy)
        if not busy:
            self.busy_label.setText("")
        for action in (self.open_weights_action, self.random_action):
            action.setEnabled(not busy)
        self.rerun_action.setEnabled(not busy and self._input_provider is not None)
        self.download_action.setEnabled(not busy and self.download_size is not None)
        self._set_controls_enabled(not busy and self.walkthrough is not None)

    def _set_controls_enabled(self, enabled: bool) -> None:
        for widget in (self.prev_button, self.next_button, self.stage_combo, self.send_button, self.strip):
            widget.setEnabled(enabled)
        self.send_action.setEnabled(enabled and self._send_stack is not None)
        self.send_button.setEnabled(enabled and self._send_stack is not None)
        if enabled:
            self._update_nav()

    def _job_succeeded(self, result) -> None:
        kind, self._job_kind = self._job_kind, ""
        if self._closed:
            return
        if kind == "download":
            self._close_progress()
            self._downloaded = result
            self.show_message(f"Downloaded the ImageNet weights to {result}.")
            # The file is in the torch cache now, where 'imagenet' weights are looked for (and found next time).
            self.recapture("imagenet" if core_weights.imagenet_available(self.model_name) else str(result))
            return
        outcome: CaptureOutcome = result
        self._set_download_size(outcome.download_size)
        self._stage_stats = outcome.stage_stats
        if outcome.model is not self.model:
            release_later(self.model)
        release_later(self.walkthrough)
        self.model = outcome.model
        self.walkthrough = outcome.walkthrough
        self._pictures, self._top5 = outcome.pictures, outcome.top5
        if self._top5 and self._top_classes is None:
            self._builder.add(lambda: self.top_classes)
        self.problem.setVisible(False)
        self._fill_stages()
        self.parameters_text.setPlainText(outcome.parameters_text)
        target = self._pending_step if self._pending_step is not None else self.current
        self._pending_step = None
        self.current = min(max(0, target), self.stage_count - 1)
        # The first stage is drawn once the views exist (a capture can beat the idle builder).
        self._builder.after(lambda walk=self.walkthrough: self._show_captured(walk))

    def _show_captured(self, walk) -> None:
        if self._closed or walk is not self.walkthrough:
            return
        self._set_controls_enabled(not self.jobs.busy)      # with the input pictures
        self.show_message(f"Ran {model_label(self.model_name)} with {self.weights_text()}.")
        # The stage in the next turn: each turn's layout and first paint stay small.
        self._builder.add(lambda: walk is self.walkthrough and not self._closed and self._show_stage(self.current))

    def _set_download_size(self, size: str | None) -> None:
        self.download_size = size
        if size is None:
            self.download_action.setText("&Download ImageNet weights…")
            self.download_action.setStatusTip(f"torchvision has no ImageNet weights for {model_label(self.model_name)}.")
        else:
            self.download_action.setText(f"&Download ImageNet weights ({size})…")
            self.download_action.setStatusTip(f"Download torchvision's ImageNet weights ({size}) into the torch cache.")
        self.download_action.setEnabled(size is not None and not self.jobs.busy)

    def _job_failed(self, failure: JobFailure) -> None:
        kind, self._job_kind = self._job_kind, ""
        if self._closed:
            return
        self._close_progress()
        if failure.details:
            log.error("Walkthrough job failed\n%s", failure.details)
        if failure.cancelled and kind == "download":
            self.show_problem("Download cancelled; nothing was saved.")
        else:
            self.show_problem(failure.message)
        if self.walkthrough is None:
            self.waiting.setText(failure.message)
            self.view_stack.setCurrentWidget(self.waiting)

    def weights_text(self) -> str:
        walk = self.walkthrough
        if walk is None:
            return "no weights yet"
        if walk.random_weights:
            return "random weights"
        if walk.weights == "imagenet":
            return "ImageNet weights"
        return f"weights from {Path(str(walk.weights)).name}"

    # ---------------------------------------------------------------- stages
    def _fill_stages(self, stages=None) -> None:
        """The combo, strip and legend for ``stages`` (the walkthrough's, or the plan shown while the
        first capture runs)."""
        stages = stages if stages is not None else self.walkthrough.stages
        with qt_signals_blocked(self.stage_combo):
            self.stage_combo.clear()
            for stage in stages:
                self.stage_combo.addItem(f"{stage.index}. {stage.title}")
            self.stage_combo.setCurrentIndex(min(self.current, len(stages) - 1))
        blocks = []
        for stage in stages:
            shape = tuple(int(s) for s in stage.output_shape)
            blocks.append(StripBlock(stage.name, stage.kind, shape,
                                     f"{stage.index}. {stage.title}\n{stage.shape_hwc()} · {nchw_text(shape)}"))
        self.strip.set_blocks(blocks)
        self.legend.setText(legend_html(stage.kind for stage in stages))
        if self.walkthrough is not None:
            self.setWindowTitle(f"{model_label(self.model_name)} walkthrough ({self.weights_text()}) — "
                                "Feature Map Explorer")

    def _plan_ready(self, stages) -> None:
        # Shown while the first capture runs: the model's structure is known before its numbers are.
        if self.walkthrough is None and not self._closed:
            self._fill_stages(stages)
            self.strip.set_current(0)
            self.waiting.setText(f"Running {model_label(self.model_name)} on the input (one forward pass "
                                 f"through {len(stages) - 1} stages)…")

    def go_to(self, index: int) -> None:
        if self.walkthrough is None or self.jobs.busy:
            return
        index = max(0, min(int(index), self.stage_count - 1))
        if index != self.current or self.stage_combo.currentIndex() != index:
            self._show_stage(index)

    def _show_stage(self, index: int) -> None:
        walk = self.walkthrough
        stage = walk.stages[index]
        self.current = index
        self._update_nav()
        shape = tuple(int(s) for s in stage.output_shape)

        self.title_label.setText(f"{stage.index}. {stage.title}")
        self.explanation_label.setText(stage.explanation)
        self.note_label.setText(f"Note: {stage.note}" if stage.note else "")
        self.note_label.setVisible(bool(stage.note))
        f = self.fact_labels
        f["hwc"].setText(stage.shape_hwc())
        f["nchw"].setText(nchw_text(shape))
        f["params"].setText(f"{stage.params:,}")
        model_total = walk.total_params
        f["total"].setText(f"{stage.total_params:,} of {model_total:,}")
        f["macs"].setText(f"{stage.macs:,} ({short_count(stage.macs)})" if stage.macs else "0")
        input_hw = tuple(walk.model_input.shape[-2:])
        if stage.receptive_field is None:
            f["field"].setText("— (each output value depends on the whole input)"
                               if stage.kind in ("flatten", "linear", "softmax") else "—")
        else:
            rf = stage.receptive_field
            f["field"].setText(f"{rf}×{rf} pixels of the {input_hw[0]}×{input_hw[1]} input")

        self.notice.setVisible(bool(walk.random_weights))
        self.raw_view.set_region(None)
        self.normalized_view.set_region(None)

        top5 = self._top5 if stage.kind == "softmax" else None
        if stage.kind == "softmax" and top5 and not walk.random_weights:
            self.top_classes.set_entries(top5, f"Top-5 classes of {math.prod(walk.probabilities.shape):,} "
                                               f"({self.weights_text()})")
            self.view_stack.setCurrentWidget(self.top_classes)
        else:
            output = walk.outputs[index]
            result = LayerResult(index, stage.name, self._stage_type(stage), True,
                                 input_shape=tuple(walk.outputs[index - 1].shape) if index > 0 else None,
                                 output_shape=shape, params=stage.params, output=output)
            names = walk.categories if output.dim() == 2 and walk.categories and \
                output.shape[1] == len(walk.categories) else None
            stats = self._stage_stats.get(index)
            if stats is not None:
                self.feature_view.prime(output, LayerDisplay(index, stats, None))
            self._place_feature_view().set_layer(result, names)
            self.view_stack.setCurrentWidget(self.feature_view)
        if len(shape) == 4:
            hint = "Move the mouse over a feature map: the region of the input that one output pixel sees is outlined here."
        elif stage.kind == "softmax" and walk.random_weights:
            hint = ("With random weights these probabilities predict nothing: open a weights file or download the "
                    "ImageNet weights (Weights menu) to see the top-5 classes.")
        else:
            hint = "Every value of this stage depends on the whole input."
        self.region_label.setText(hint)

    def _stage_type(self, stage) -> str:
        """'Conv2d + ReLU', 'Linear + ReLU + Dropout', 'BasicBlock': the modules the stage folds together."""
        walk = self.walkthrough
        if walk.model is None or not stage.modules:
            return KIND_TYPES.get(stage.kind, stage.kind)
        if self._modules_of[0] is not walk:
            self._modules_of = (walk, dict(walk.model.named_modules()))
        modules = self._modules_of[1]
        return " + ".join(type(modules[path]).__name__ for path in stage.modules if path in modules)

    def _update_nav(self) -> None:
        n = self.stage_count
        i = self.current
        self.prev_button.setEnabled(n > 0 and i > 0 and not self.jobs.busy)
        self.next_button.setEnabled(n > 0 and i < n - 1 and not self.jobs.busy)
        if self.stage_combo.currentIndex() != i:
            with qt_signals_blocked(self.stage_combo):
                self.stage_combo.setCurrentIndex(i)
        self.strip.set_current(i)
        self.step_label.setText(f"Stage {i} of {n - 1}" if n else "")
        self._show_inputs()

    def _show_inputs(self) -> None:
        walk, pictures = self.walkthrough, self._pictures
        if walk is None or pictures is None or self._inputs_shown_for is walk:
            return
        self._inputs_shown_for = walk
        _, c, h, w = walk.raw_input.shape
        self.raw_view.title.setText(f"Input {h}×{w}×{c}")
        self.raw_view.set_image(pictures.raw, "values 0..1, resized and cropped as the model expects")
        if pictures.normalized is None:
            self.normalized_view.title.setText("Normalised: not used")
            self.normalized_view.set_image(pictures.raw,
                                           f"{model_label(self.model_name)} takes the 0..1 values as they are")
            return
        low, high = pictures.low, pictures.high
        self.normalized_view.title.setText("Normalised")
        self.normalized_view.set_image(pictures.normalized,
                                       f"(x − mean) / std per channel; values {low:.2f}..{high:.2f}, drawn "
                                       "from their min to their max")

    # ---------------------------------------------------------------- hover → receptive field
    def _hover_grid(self, scene_pos) -> None:
        grid = self.feature_view.grid
        if not grid.view_box.sceneBoundingRect().contains(scene_pos):
            return self._show_region(None)
        pos = grid.image_item.mapFromScene(scene_pos)
        layout = grid.grid_layout
        if layout is None:                       # "first three channels as RGB": one picture
            return self._show_region((math.floor(pos.y()), math.floor(pos.x())))
        tile = layout.tile_at(pos.x(), pos.y())
        if tile is None:
            return self._show_region(None)
        x0, y0 = layout.tile_origin(tile)
        # Big maps are drawn shrunk (render.DISPLAY_MAX_PIXELS): scale the tile offset back to map pixels.
        shape = tuple(self.stage.output_shape) if self.stage is not None else ()
        sy = shape[2] / layout.tile_h if len(shape) == 4 and layout.tile_h else 1.0
        sx = shape[3] / layout.tile_w if len(shape) == 4 and layout.tile_w else 1.0
        self._show_region((math.floor((pos.y() - y0) * sy), math.floor((pos.x() - x0) * sx)))

    def _hover_channel(self, scene_pos) -> None:
        view = self.feature_view.channel_view
        if not view.plot.vb.sceneBoundingRect().contains(scene_pos):
            return self._show_region(None)
        pos = view.plot.vb.mapSceneToView(scene_pos)      # value pixels, as the channel readout uses
        self._show_region((math.floor(pos.y()), math.floor(pos.x())))

    def _show_region(self, pixel: tuple[int, int] | None) -> tuple[int, int, int, int] | None:
        stage = self.stage
        shape = tuple(stage.output_shape) if stage is not None else ()
        if pixel is None or len(shape) != 4 or not (0 <= pixel[0] < shape[2] and 0 <= pixel[1] < shape[3]):
            self.raw_view.set_region(None)
            self.normalized_view.set_region(None)
            return None
        y, x = pixel
        region = tuple(int(v) for v in stage.input_region(y, x))
        self.raw_view.set_region(region)
        self.normalized_view.set_region(region)
        y0, x0, y1, x1 = region
        self.region_label.setText(f"Output pixel y={y}, x={x} of {stage.name} sees input rows {y0}..{y1 - 1}, "
                                  f"columns {x0}..{x1 - 1} ({y1 - y0}×{x1 - x0} pixels).")
        return region

    # ---------------------------------------------------------------- keys
    def keyPressEvent(self, event: QKeyEvent) -> None:
        # Reached when the focused widget does not use the key (the feature grid uses arrows for channels).
        key = event.key()
        targets = {Qt.Key_Left: self.current - 1, Qt.Key_Right: self.current + 1, Qt.Key_Home: 0,
                   Qt.Key_End: self.stage_count - 1}
        if key in targets and self.walkthrough is not None:
            event.accept()
            self.go_to(targets[key])
            return
        super().keyPressEvent(event)

    # ---------------------------------------------------------------- weights
    def open_weights_dialog(self) -> None:
        folder = str(self.settings.value("lastFolder/weights", str(Path.home())))
        path = dialogs.open_file(self, "Open weights file", folder, WEIGHTS_FILTER)
        if not path:
            return
        self.settings.setValue("lastFolder/weights", str(Path(path).parent))
        self.recapture(path)

    def download_weights(self) -> None:
        if self.jobs.busy:
            self.show_problem("Still working on the previous request; try again in a moment.")
            return
        size = self.download_size or "size unknown"
        dialog = QProgressDialog(f"Downloading the ImageNet weights of {model_label(self.model_name)} ({size})…",
                                 "Cancel", 0, 100, self)
        dialog.setObjectName("downloadProgress")
        dialog.setWindowTitle("Download ImageNet weights")
        dialog.setWindowModality(Qt.WindowModal)
        dialog.setMinimumDuration(0)
        dialog.setAutoClose(False)
        dialog.setAutoReset(False)
        dialog.setValue(0)
        dialog.canceled.connect(self.jobs.cancel)
        self._progress_dialog = dialog
        self._job_kind = "download"
        self.busy_label.setText("Downloading weights…")
        dialog.show()
        self.jobs.start(download_job(self.model_name))

    def _download_progress(self, done: int, total: int) -> None:
        dialog = self._progress_dialog
        if dialog is None:
            return
        if total > 0:
            value = min(1000, int(1000 * done / total))
            if value < dialog.value():
                return        # setValue of a modal dialog processes events: a newer report got here first
            dialog.setLabelText(f"Downloading the ImageNet weights of {model_label(self.model_name)}: "
                                f"{done / 1e6:.1f} of {total / 1e6:.1f} MB")
            dialog.setMaximum(1000)
            dialog.setValue(value)
        else:
            dialog.setMaximum(0)

    def _close_progress(self) -> None:
        if self._progress_dialog is not None:
            self._progress_dialog.canceled.disconnect()
            self._progress_dialog.close()
            self._progress_dialog.deleteLater()
            self._progress_dialog = None

    # ---------------------------------------------------------------- send to stack
    def send_to_stack(self) -> None:
        if self.walkthrough is None or self._send_stack is None:
            return
        titles = [f"{s.index}. {s.title}" for s in self.walkthrough.stages]
        count = ask_stage_count(self, titles, max(1, self.current))
        if count is None:
            return
        try:
            stack = core_walkthrough.to_stack(self.walkthrough, count)
        except ValueError as e:
            self.show_problem(str(e))
            return
        self._send_stack(stack, self)
        self.show_message(f"Sent {len(stack.layers)} layers and this image to the main window (Ctrl+Z there restores "
                          "the previous layers; the image stays).")

    # ---------------------------------------------------------------- messages and closing
    def show_message(self, text: str) -> None:
        self.statusBar().showMessage(text, 8000)

    def show_problem(self, text: str) -> None:
        """One sentence in the window; never a traceback."""
        self.problem.setText(text)
        self.problem.setVisible(True)
        self.show_message(text)

    def closeEvent(self, event: QCloseEvent) -> None:
        # Closing never waits for a job: it is told to stop (a capture stops at its next module, a
        # download at its next chunk) and the window goes at once. Building a model or a stalled
        # network read cannot be interrupted; the window is deleted when its job has answered.
        self.jobs.cancel()
        self._builder.stop()
        self._close_progress()
        self._closed = True
        # Let go of the model and the captured maps (VGG-16: over half a gigabyte), and of the window
        # itself: as a child of the main window it would otherwise live until that one closes.
        if self._feature_view is not None:
            self._feature_view.set_layer(None)
            if self._feature_view.parent() is None:       # never placed: not deleted with the window
                self._feature_view.deleteLater()
        release_later(self.walkthrough)         # VGG-16's maps and weights: freed off the GUI thread
        release_later(self.model)
        self.walkthrough, self.model, self._stage_stats, self._inputs_shown_for = None, None, {}, None
        self._pictures = self._top5 = None
        self._modules_of = (None, None)
        event.accept()
        self.closed.emit()
        if self.jobs.busy:
            self.jobs.busy_changed.connect(lambda busy: busy or self.deleteLater())
        else:
            self.deleteLater()


def _input_view(title: str, name: str) -> InputImageView:
    view = InputImageView(title)
    view.setObjectName(name)
    return view


def png_bytes(image: torch.Tensor) -> bytes:
    """[1, C, H, W] in [0, 1] on 8-bit levels → PNG bytes that load back to the same values."""
    import io
    import numpy as np
    from PIL import Image
    pixels = (image[0].detach().to("cpu", torch.float32).clamp(0, 1) * 255).round().to(torch.uint8)
    array = pixels.permute(1, 2, 0).numpy()
    array = array[:, :, 0] if array.shape[2] == 1 else array
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG")
    return buffer.getvalue()

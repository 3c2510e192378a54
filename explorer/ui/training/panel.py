"""The Train panel: choose data and settings, Start / Pause / Stop, watch the loss and accuracy curves
while the stack's own views (kernels, feature maps, shapes, predictions) follow the live weights; then
scrub the weights history, keep a moment of it, and look at the confusion matrix and the test images
the stack gets wrong.

Every view shows training through the document: live weights and history moments are previews
(``StackDocument.preview``, no undo step); the trained weights become the layers' ``state`` in one
undoable edit ("Train 5 epochs on xo")."""

from __future__ import annotations

import io
from typing import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QBrush, QColor, QIcon, QImage, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox,
                               QHBoxLayout, QHeaderView, QLabel, QListWidget, QListWidgetItem, QProgressBar,
                               QPushButton, QSlider, QSpinBox, QTableWidget, QTableWidgetItem, QTabWidget,
                               QToolButton, QVBoxLayout, QWidget)

from explorer.core.input_source import InputSource
from explorer.core.training.trainer import TrainSettings, apply_states
from explorer.ui.document import StackDocument
from explorer.ui.training.worker import TrainController, warm_up_optimizers
from explorer.ui.qt_signals import qt_signals_blocked

SMOOTHING = 0.8          # exponential moving average of the step losses drawn as the bold line
GALLERY_ICON = 56
XO = "xo"


def ask_folder(parent: QWidget) -> str:
    """The data folder dialog, through ui/dialogs like every other question the app asks (one place
    for tests and scripted sessions to answer them)."""
    from explorer.ui import dialogs
    return dialogs.choose_folder(parent, "CIFAR-10 folder or image folder (one sub-folder per class)", "")


def _spin(minimum, maximum, value, tip, decimals=None, step=None):
    box = QDoubleSpinBox() if decimals is not None else QSpinBox()
    if decimals is not None:
        box.setDecimals(decimals)
    box.setRange(minimum, maximum)
    box.setValue(value)
    if step is not None:
        box.setSingleStep(step)
    box.setToolTip(tip)
    return box


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds} s"


class TrainPanel(QWidget):
    def __init__(self, document: StackDocument, device: Callable[[], str],
                 set_input: Callable[[InputSource], None] | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.document = document
        self._device = device
        self._set_input = set_input
        self.controller = TrainController(self)
        self._warm_up = warm_up_optimizers()
        self._base = None                 # the real stack when training started
        self._data = None                 # Dataset of the current run
        self._snapshots = []              # weights history of the last run
        self._notes: list[str] = []       # the notes of the run said so far
        self._losses: list[tuple[int, float]] = []
        self._smoothed: list[float] = []
        self._epochs = []
        self._settings: TrainSettings | None = None
        self._own_edit = False
        self._build()
        self.controller.data_ready.connect(self._data_ready)
        self.controller.started.connect(self._started)
        self.controller.steps.connect(self._steps)
        self.controller.epoch.connect(self._epoch)
        self.controller.finished.connect(self._finished)
        self.controller.failed.connect(self._failed)
        self.controller.busy_changed.connect(self._update_buttons)
        document.undo_stack.indexChanged.connect(self._document_edited)
        self._update_buttons()

    # ---------------------------------------------------------------- building
    def _build(self) -> None:
        settings = QGroupBox("Data and settings")
        form = QFormLayout(settings)
        form.setContentsMargins(6, 6, 6, 6)
        form.setVerticalSpacing(3)
        self.data_combo = QComboBox()
        self.data_combo.addItem("xo (generated X and O glyphs)", XO)
        self.data_combo.setToolTip("What to train on: the generated X-versus-O set, a CIFAR-10 folder or an image "
                                   "folder with one sub-folder per class.")
        self.data_button = QToolButton()
        self.data_button.setText("…")
        self.data_button.setToolTip("Choose a CIFAR-10 folder or an image folder with one sub-folder per class.")
        self.data_button.clicked.connect(self.choose_folder)
        data_row = QHBoxLayout()
        data_row.addWidget(self.data_combo, 1)
        data_row.addWidget(self.data_button)
        form.addRow("Data", data_row)
        d = TrainSettings()
        self.optimizer = QComboBox()
        for label, key in (("Adam", "adam"), ("SGD with momentum", "sgd"), ("AdamW", "adamw")):
            self.optimizer.addItem(label, key)
        self.optimizer.setToolTip("How the weights move along the gradient: Adam adapts the step per weight, "
                                  "SGD uses one learning rate with momentum, AdamW is Adam with decoupled weight decay.")
        form.addRow("Optimiser", self.optimizer)
        self.lr = _spin(0.000001, 10.0, d.lr, "How big each step along the gradient is; lower it if the loss "
                        "jumps around or becomes NaN.", decimals=6, step=0.001)
        form.addRow("Learning rate", self.lr)
        self.momentum = _spin(0.0, 0.999, d.momentum, "SGD only: how much of the previous step carries over "
                              "into the next one.", decimals=3, step=0.05)
        form.addRow("Momentum", self.momentum)
        self.weight_decay = _spin(0.0, 1.0, d.weight_decay, "Pulls every weight towards zero a little each step, "
                                  "which keeps kernels smooth and fights overfitting.", decimals=6, step=0.0001)
        form.addRow("Weight decay", self.weight_decay)
        self.batch_size = _spin(1, 4096, d.batch_size, "Images per step: larger batches give smoother but fewer "
                                "steps per epoch.")
        form.addRow("Batch size", self.batch_size)
        self.epochs = _spin(1, 1000, d.epochs, "How many times training goes through every training image.")
        form.addRow("Epochs", self.epochs)
        self.schedule = QComboBox()
        for label, key in (("none", "none"), ("step (x0.1 at each third)", "step"), ("cosine", "cosine")):
            self.schedule.addItem(label, key)
        self.schedule.setToolTip("How the learning rate changes during the run: constant, cut tenfold at each "
                                 "third, or eased down to zero along a cosine.")
        form.addRow("Schedule", self.schedule)
        self.augment = QComboBox()
        for label, key in (("CIFAR-10 only", None), ("on", True), ("off", False)):
            self.augment.addItem(label, key)
        self.augment.setToolTip("Random crops (padding 4) and horizontal flips of the training images, so the "
                                "stack cannot learn them by heart.")
        form.addRow("Augmentation", self.augment)
        self.seed = _spin(0, 2 ** 31 - 1, 0, "Seeds the shuffling, augmentation and dropout: the same seed "
                          "gives the same run, bit for bit on the CPU.")
        form.addRow("Seed", self.seed)

        self.start_button = QPushButton("Start")
        self.start_button.setToolTip("Train the stack on the chosen data; every view follows the weights as they change.")
        self.start_button.clicked.connect(self.start)
        self.pause_button = QPushButton("Pause")
        self.pause_button.setCheckable(True)
        self.pause_button.setToolTip("Hold training between two steps; press again to go on.")
        self.pause_button.toggled.connect(self._pause_toggled)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("End training after the current step and keep the weights reached so far.")
        self.stop_button.clicked.connect(self.stop)
        self.reset_button = QPushButton("Reset weights")
        self.reset_button.setToolTip("Go back to the seed's random weights in every layer (undoable).")
        self.reset_button.clicked.connect(self.reset_weights)
        buttons = QHBoxLayout()
        for b in (self.start_button, self.pause_button, self.stop_button, self.reset_button):
            buttons.addWidget(b)
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.status = QLabel("Choose data and press Start.")
        self.status.setWordWrap(True)
        self.status.setObjectName("trainStatus")
        left = QVBoxLayout()
        left.addWidget(settings)
        left.addLayout(buttons)
        left.addWidget(self.progress)
        left.addWidget(self.status)
        left.addStretch(1)

        # Curves: the loss per step (faint) and smoothed (bold); train and test accuracy per epoch.
        self.loss_plot = pg.PlotWidget()
        self.loss_plot.setBackground("w")
        self.loss_plot.setTitle("Training loss", color="#333", size="9pt")
        self.loss_plot.setLabel("bottom", "step")
        self.loss_plot.showGrid(x=True, y=True, alpha=0.2)
        self.loss_raw = self.loss_plot.plot(pen=pg.mkPen("#9ecae1", width=1))
        self.loss_smooth = self.loss_plot.plot(pen=pg.mkPen("#08519c", width=2))
        self.accuracy_plot = pg.PlotWidget()
        self.accuracy_plot.setBackground("w")
        self.accuracy_plot.setTitle("Accuracy", color="#333", size="9pt")
        self.accuracy_plot.setLabel("bottom", "epoch")
        self.accuracy_plot.setYRange(0, 1)
        self.accuracy_plot.showGrid(x=True, y=True, alpha=0.2)
        legend = self.accuracy_plot.addLegend(offset=(-10, -10))
        legend.setLabelTextColor("#333")
        self.train_curve = self.accuracy_plot.plot(pen=pg.mkPen("#2b8cbe", width=2), symbol="o", symbolSize=5,
                                                   symbolBrush="#2b8cbe", name="train")
        self.test_curve = self.accuracy_plot.plot(pen=pg.mkPen("#e6550d", width=2), symbol="o", symbolSize=5,
                                                  symbolBrush="#e6550d", name="test")
        self.history_slider = QSlider(Qt.Horizontal)
        self.history_slider.setToolTip("Scrub through the weights at the start and after each epoch: every view "
                                       "(kernels, feature maps, predictions) shows that moment.")
        self.history_slider.setRange(0, 0)
        self.history_slider.valueChanged.connect(self._scrub)
        self.history_label = QLabel("Weights: now")
        self.history_label.setMinimumWidth(150)
        self.keep_button = QPushButton("Keep these weights")
        self.keep_button.setToolTip("Make the weights of this moment the stack's weights (undoable).")
        self.keep_button.clicked.connect(self.keep)
        history = QHBoxLayout()
        history.addWidget(QLabel("History"))
        history.addWidget(self.history_slider, 1)
        history.addWidget(self.history_label)
        history.addWidget(self.keep_button)
        middle = QVBoxLayout()
        curves = QHBoxLayout()
        curves.addWidget(self.loss_plot)
        curves.addWidget(self.accuracy_plot)
        middle.addLayout(curves, 1)
        middle.addLayout(history)

        # Results of the latest epoch on the test split.
        self.confusion = QTableWidget()
        self.confusion.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.confusion.setToolTip("Rows: the true class; columns: the predicted class; the last column is the "
                                  "accuracy per true class.")
        self.confusion.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
        self.confusion.verticalHeader().setDefaultSectionSize(20)
        self.gallery = QListWidget()
        self.gallery.setViewMode(QListWidget.IconMode)
        self.gallery.setIconSize(QSize(GALLERY_ICON, GALLERY_ICON))
        self.gallery.setResizeMode(QListWidget.Adjust)
        self.gallery.setMovement(QListWidget.Static)
        self.gallery.setSpacing(2)
        self.gallery.setToolTip("Test images the stack gets wrong (true → predicted); click one to make it the input.")
        self.gallery.itemClicked.connect(self._gallery_clicked)
        self.results = QTabWidget()
        self.results.addTab(self.confusion, "Confusion")
        self.results.addTab(self.gallery, "Misclassified")

        row = QHBoxLayout(self)
        row.setContentsMargins(4, 4, 4, 4)
        left_widget = QWidget()
        left_widget.setLayout(left)
        left_widget.setMaximumWidth(370)
        row.addWidget(left_widget)
        row.addLayout(middle, 3)
        row.addWidget(self.results, 2)

    # ---------------------------------------------------------------- actions
    def choose_folder(self) -> None:
        path = ask_folder(self)
        if path:
            self.add_data(path)

    def add_data(self, path: str) -> None:
        index = self.data_combo.findData(path)
        if index < 0:
            self.data_combo.addItem(path, path)
            index = self.data_combo.count() - 1
        self.data_combo.setCurrentIndex(index)

    def settings(self) -> TrainSettings:
        return TrainSettings(self.optimizer.currentData(), self.lr.value(), self.momentum.value(),
                             self.weight_decay.value(), self.batch_size.value(), self.epochs.value(),
                             self.schedule.currentData(), self.augment.currentData(), self.seed.value(),
                             self._device())

    def start(self) -> None:
        if self.controller.busy:
            return
        self.document.end_preview()
        self._base = self.document.stack
        self._settings = self.settings()
        self._losses, self._smoothed, self._epochs, self._snapshots = [], [], [], []
        self._data = None
        self.loss_raw.setData([], [])
        self.loss_smooth.setData([], [])
        self.train_curve.setData([], [])
        self.test_curve.setData([], [])
        self._reset_history()
        self.progress.setRange(0, 0)        # busy until the data set is ready
        self._set_status("Preparing the data…")
        self.pause_button.setChecked(False)
        self.controller.start(self._base, self.data_combo.currentData(), self._settings)

    def _pause_toggled(self, paused: bool) -> None:
        if paused:
            self.controller.pause()
            last = self.status.text() if self.controller.busy and self._losses else ""
            self._set_status("Paused between two steps (press Resume to go on)." + (f" {last}" if last else ""))
        else:
            self.controller.resume()
        self.pause_button.setText("Resume" if paused else "Pause")

    def stop(self) -> None:
        self.controller.stop()
        if self.pause_button.isChecked():
            self.pause_button.setChecked(False)

    def reset_weights(self) -> None:
        stack = self.document.real_stack.copy()
        changed = [spec.name for spec in stack.layers if spec.state]
        if not changed:
            self._set_status("The weights are already the seed's random weights.")
            return
        for spec in stack.layers:
            spec.state = None
        self._edit(stack, "Reset weights")
        self._set_status(f"Weights of {', '.join(changed)} are back to the seed's random values (Ctrl+Z undoes it).")

    def keep(self) -> None:
        i = self.history_slider.value()
        if not 0 <= i < len(self._snapshots):
            return
        snap = self._snapshots[i]
        stack = apply_states(self.document.real_stack, snap.states)
        self._edit(stack, f"Keep the weights of {self._moment(snap)}")
        self._set_status(f"The stack now has the weights of {self._moment(snap)} (Ctrl+Z undoes it).")

    def _edit(self, stack, text: str) -> None:
        self._own_edit = True
        try:
            self.document.set_weights(stack, text)
        finally:
            self._own_edit = False
        self._reset_history()

    # ---------------------------------------------------------------- history
    @staticmethod
    def _moment(snap) -> str:
        return "the start (before training)" if snap.epoch == 0 else f"epoch {snap.epoch}"

    def _reset_history(self) -> None:
        """The slider at 'now': the document shows its real stack (or the live weights while training)."""
        with qt_signals_blocked(self.history_slider):
            self.history_slider.setRange(0, len(self._snapshots))
            self.history_slider.setValue(len(self._snapshots))
        self._update_history_label()

    def _at_now(self) -> bool:
        return self.history_slider.value() >= len(self._snapshots)

    def _scrub(self, value: int) -> None:
        if value < len(self._snapshots):
            base = self._base if self.controller.busy else self.document.real_stack
            self.document.preview(apply_states(base, self._snapshots[value].states))
        elif not self.controller.busy:
            self.document.end_preview()
        self._update_history_label()
        self._update_buttons()

    def _update_history_label(self) -> None:
        value = self.history_slider.value()
        if value < len(self._snapshots):
            self.history_label.setText(f"Weights: {self._moment(self._snapshots[value])}")
        else:
            self.history_label.setText("Weights: live" if self.controller.busy else "Weights: now")

    def _document_edited(self, _index: int) -> None:
        # Any edit (undo too) ends a preview: the slider goes back to 'now'.
        if not self._own_edit and not self._at_now():
            self._reset_history()

    # ---------------------------------------------------------------- from the worker
    def _data_ready(self, data) -> None:
        self._data = data
        self._set_status(f"Training on {data.describe()}.")
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self._fill_confusion(None)
        self.gallery.clear()

    def _started(self, snapshots, notes) -> None:
        self._snapshots = list(snapshots)
        self._reset_history()
        self._notes = list(notes)

    def _steps(self, batch) -> None:
        for step, loss in batch.losses:
            self._losses.append((step, loss))
            prev = self._smoothed[-1] if self._smoothed else loss
            self._smoothed.append(SMOOTHING * prev + (1 - SMOOTHING) * loss)
        steps = np.fromiter((s for s, _ in self._losses), dtype=np.float64, count=len(self._losses))
        values = np.fromiter((v for _, v in self._losses), dtype=np.float64, count=len(self._losses))
        self.loss_raw.setData(steps, values)
        self.loss_smooth.setData(steps, np.asarray(self._smoothed))
        info = batch.info
        if info is not None:
            value = round(1000 * info.step / info.total_steps)
            if value != self.progress.value():
                self.progress.setValue(value)
            self.progress.setFormat(f"epoch {info.epoch}/{self._settings.epochs} · step {info.step}/{info.total_steps}")
            remaining = info.elapsed / info.step * (info.total_steps - info.step)
            if not self.controller.paused:
                self._set_status(f"{info.samples_per_second:,.0f} samples/s · {_duration(info.elapsed)} elapsed · "
                                 f"about {_duration(remaining)} left · loss {self._smoothed[-1]:.4f}")
        if batch.states is not None and self._at_now() and self._base is not None:
            self.document.preview(apply_states(self._base, batch.states))

    def _epoch(self, info) -> None:
        r = info.record
        self._epochs.append(r)
        xs = [e.epoch for e in self._epochs]
        self.train_curve.setData(xs, [e.train_accuracy for e in self._epochs])
        self.test_curve.setData(xs, [e.test_accuracy for e in self._epochs])
        self.accuracy_plot.setXRange(0.5, max(self._settings.epochs, 1) + 0.5)
        if info.snapshot is not None:
            at_now = self._at_now()
            self._snapshots.append(info.snapshot)
            with qt_signals_blocked(self.history_slider):
                self.history_slider.setMaximum(len(self._snapshots))
                if at_now:
                    self.history_slider.setValue(len(self._snapshots))
            self._update_history_label()
        self._fill_confusion(info.evaluation)
        self._fill_gallery(info.evaluation)

    def _finished(self, result) -> None:
        self.document.end_preview()
        self._snapshots = list(result.snapshots)
        text = self._undo_text(result)
        if text and self._base is not None:
            base = self._base
            self._own_edit = True
            try:
                self.document.set_weights(apply_states(base, result.states), text)
            finally:
                self._own_edit = False
        self._base = None
        self._reset_history()
        self.progress.setRange(0, 1000)
        if result.status == "done":
            self.progress.setValue(1000)
        notes = [n for n in result.notes if n not in self._notes]
        self._set_status(" ".join([result.message, *notes]), problem=result.status == "nan")
        if result.evaluation is not None:
            self._fill_confusion(result.evaluation)
            self._fill_gallery(result.evaluation)

    def _undo_text(self, result) -> str | None:
        if not result.epochs:
            return None
        name = self._data.name if self._data is not None else "the data"
        n = len(result.epochs)
        text = f"Train {_plural(n, 'epoch')} on {name}"
        return text + " (stopped)" if result.status == "stopped" else text

    def _failed(self, message: str) -> None:
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self._base = None
        self._set_status(message, problem=True)

    # ---------------------------------------------------------------- results
    def _fill_confusion(self, evaluation) -> None:
        classes = self._data.classes if self._data is not None else []
        k = len(classes)
        self.confusion.clear()
        self.confusion.setRowCount(k)
        self.confusion.setColumnCount(k + 1 if k else 0)
        if not k:
            return
        self.confusion.setHorizontalHeaderLabels([*classes, "accuracy"])
        self.confusion.setVerticalHeaderLabels(classes)
        if evaluation is None:
            return
        matrix = evaluation.confusion.tolist()
        for i in range(k):
            total = sum(matrix[i]) or 1
            for j in range(k):
                item = QTableWidgetItem(str(matrix[i][j]))
                share = matrix[i][j] / total
                # Diagonal in green, mistakes in red, darker for a bigger share of the row.
                base = (49, 163, 84) if i == j else (222, 45, 38)
                item.setBackground(QBrush(QColor(*[round(255 - (255 - c) * share * 0.8) for c in base])))
                item.setTextAlignment(Qt.AlignCenter)
                self.confusion.setItem(i, j, item)
            acc = evaluation.per_class[i]
            item = QTableWidgetItem("—" if acc is None else f"{acc:.1%}")
            item.setTextAlignment(Qt.AlignCenter)
            self.confusion.setItem(i, k, item)

    def _fill_gallery(self, evaluation) -> None:
        self.gallery.clear()
        if self._data is None:
            return
        classes = self._data.classes
        for index, true, predicted in evaluation.misclassified:
            image = self._data.test.images[index]
            item = QListWidgetItem(QIcon(QPixmap.fromImage(_qimage(image)).scaled(
                GALLERY_ICON, GALLERY_ICON, Qt.KeepAspectRatio, Qt.FastTransformation)),
                f"{classes[true]}→{classes[predicted]}")
            item.setToolTip(f"Test image {index}: a {classes[true]}, predicted {classes[predicted]}. "
                            "Click to make it the input.")
            item.setData(Qt.UserRole, (index, true, predicted))
            self.gallery.addItem(item)
        self.results.setTabText(1, f"Misclassified ({len(evaluation.misclassified)}"
                                   f"{'+' if len(evaluation.misclassified) >= 48 else ''})")

    def _gallery_clicked(self, item: QListWidgetItem) -> None:
        if self._set_input is None or self._data is None:
            return
        index, true, predicted = item.data(Qt.UserRole)
        classes = self._data.classes
        self._set_input(InputSource.pasted(_png_bytes(self._data.test.images[index]),
                                           f"{self._data.name} test image {index} ({classes[true]}, "
                                           f"predicted {classes[predicted]})"))

    # ---------------------------------------------------------------- state
    def _set_status(self, text: str, problem: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet("color: #8a1c1c;" if problem else "")

    def _update_buttons(self, *_) -> None:
        busy = self.controller.busy
        self.start_button.setEnabled(not busy)
        self.pause_button.setEnabled(busy)
        self.stop_button.setEnabled(busy)
        self.reset_button.setEnabled(not busy)
        self.keep_button.setEnabled(not busy and not self._at_now())
        for w in (self.data_combo, self.data_button, self.optimizer, self.lr, self.momentum, self.weight_decay,
                  self.batch_size, self.epochs, self.schedule, self.augment, self.seed):
            w.setEnabled(not busy)
        if not busy:
            self.pause_button.setChecked(False)
        self._update_history_label()

    def shutdown(self) -> None:
        self.controller.shutdown()


def _qimage(image) -> QImage:
    """uint8 [C, H, W] (C 1 or 3) → a QImage that owns its pixels."""
    array = np.ascontiguousarray(image.permute(1, 2, 0).numpy())
    h, w, c = array.shape
    if c == 1:
        return QImage(array.data, w, h, w, QImage.Format_Grayscale8).copy()
    return QImage(array.data, w, h, 3 * w, QImage.Format_RGB888).copy()


def _png_bytes(image) -> bytes:
    from PIL import Image
    array = image.permute(1, 2, 0).numpy()
    pil = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG")
    return buffer.getvalue()

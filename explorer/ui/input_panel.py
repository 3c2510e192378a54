"""The input: what is loaded (image, sample, CIFAR-10 batch), stepping through batches and their
images, and how the stack's input block converts it (grayscale/RGB, resize).

It renders the session state (the last run's input, the batch item) and writes the user's choices
back to it (the input asked for, the batch item); the stack's input block goes to the document
through ``input_spec_edited``."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QGridLayout, QHBoxLayout, QLabel, QPushButton, QSpinBox,
                               QToolButton, QVBoxLayout, QWidget)

from explorer.core.input_source import InputSource
from explorer.core.inputs import InputBatch, list_samples
from explorer.core.render import render_input_image
from explorer.core.session import LastRun
from explorer.core.stack import InputSpec
from explorer.ui.elided_label import ElidedLabel
from explorer.ui.qt_signals import qt_signals_blocked
from explorer.ui.session_state import SessionState
from explorer.ui.spin_boxes import CheckedSpinBox


def _step_row(label: str, spin: QSpinBox, name: str) -> tuple[QHBoxLayout, QToolButton, QToolButton]:
    row = QHBoxLayout()
    row.setContentsMargins(0, 0, 0, 0)
    prev, nxt = QToolButton(), QToolButton()
    prev.setArrowType(Qt.LeftArrow)
    nxt.setArrowType(Qt.RightArrow)
    prev.setObjectName(f"{name}Prev")
    nxt.setObjectName(f"{name}Next")
    prev.clicked.connect(lambda: spin.setValue(spin.value() - 1))
    nxt.clicked.connect(lambda: spin.setValue(spin.value() + 1))
    row.addWidget(QLabel(label))
    row.addWidget(prev)
    row.addWidget(spin, 1)
    row.addWidget(nxt)
    return row, prev, nxt


class InputPanel(QWidget):
    input_spec_edited = Signal(object)         # InputSpec
    open_image_requested = Signal()
    open_cifar_requested = Signal()

    def __init__(self, state: SessionState | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state if state is not None else SessionState(parent=self)
        self._shown_batch: InputBatch | None = None     # the batch the picture was drawn from

        self.view = pg.GraphicsLayoutWidget()
        self.view.setMinimumSize(120, 120)
        self.view.ci.setContentsMargins(0, 0, 0, 0)
        self.view_box = self.view.addViewBox(lockAspect=True, invertY=True, enableMouse=False)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.view_box.addItem(self.image_item)

        self.source_label = ElidedLabel("No input", mode=Qt.TextElideMode.ElideMiddle, auto_tooltip=False)
        self.source_label.setToolTip("No input")
        self.source_label.setObjectName("sourceLabel")
        self.class_label = QLabel("")
        self.class_label.setObjectName("classLabel")
        font = self.class_label.font()
        font.setBold(True)
        self.class_label.setFont(font)

        open_image = QPushButton("Open image…")
        open_image.setObjectName("openImageButton")
        open_image.setToolTip("Open a PNG, JPEG, BMP, GIF, TIFF or WebP image (or drop one on the window, or paste).")
        open_image.clicked.connect(self.open_image_requested)
        open_cifar = QPushButton("Open CIFAR…")
        open_cifar.setObjectName("openCifarButton")
        open_cifar.setToolTip("Open a CIFAR-10 folder (python version) or cifar-10-python.tar.gz.")
        open_cifar.clicked.connect(self.open_cifar_requested)
        self.sample_combo = QComboBox()
        self.sample_combo.setObjectName("sampleCombo")
        self.sample_combo.addItem("Sample…", None)
        for name, description in list_samples():
            self.sample_combo.addItem(name, name)
            self.sample_combo.setItemData(self.sample_combo.count() - 1, description, Qt.ToolTipRole)
        self.sample_combo.activated.connect(self._sample_chosen)

        # CIFAR-10 navigation
        self.split_combo = QComboBox()
        self.split_combo.setObjectName("splitCombo")
        self.split_combo.addItems(["test", "train"])
        self.batch_size_spin = CheckedSpinBox(label="Batch size", popup=False)
        self.batch_size_spin.setObjectName("batchSizeSpin")
        self.batch_size_spin.setRange(1, 10000)
        self.batch_size_spin.setValue(64)
        self.batch_size_spin.setToolTip("Images per batch (64 as in the tutorials).")
        self.batch_spin = CheckedSpinBox(label="Batch", popup=False)
        self.batch_spin.setObjectName("batchSpin")
        self.batch_spin.setRange(0, 0)
        self.batch_of = QLabel("of 1")
        self.split_combo.activated.connect(lambda _: self._cifar_changed(reset_batch=True))
        self.batch_size_spin.editingFinished.connect(lambda: self._cifar_changed(reset_batch=True))
        self.batch_spin.valueChanged.connect(lambda _: self._cifar_changed())
        batch_row, _, _ = _step_row("Batch", self.batch_spin, "batch")
        batch_row.addWidget(self.batch_of)

        self.item_spin = CheckedSpinBox(label="Image", popup=False)
        self.item_spin.setObjectName("itemSpin")
        self.item_spin.setRange(0, 0)
        self.item_spin.setToolTip("Which image of the batch the feature maps show.")
        self.item_of = QLabel("of 1")
        self.item_spin.valueChanged.connect(self._item_edited)
        item_row, _, _ = _step_row("Image", self.item_spin, "item")
        item_row.addWidget(self.item_of)

        self.cifar_box = QWidget()
        cifar_layout = QGridLayout(self.cifar_box)
        cifar_layout.setContentsMargins(0, 0, 0, 0)
        cifar_layout.addWidget(QLabel("Split"), 0, 0)
        cifar_layout.addWidget(self.split_combo, 0, 1)
        cifar_layout.addWidget(QLabel("Batch size"), 0, 2)
        cifar_layout.addWidget(self.batch_size_spin, 0, 3)
        cifar_layout.addLayout(batch_row, 1, 0, 1, 4)
        self.cifar_box.setVisible(False)

        # The stack's input block
        self.channels_combo = QComboBox()
        self.channels_combo.setObjectName("channelsCombo")
        self.channels_combo.addItem("RGB (3 channels)", 3)
        self.channels_combo.addItem("Grayscale (1 channel)", 1)
        self.channels_combo.setToolTip("Images are converted like the tutorials do: Image.convert('RGB') or 'L'.")
        self.channels_combo.activated.connect(lambda _: self._spec_edited())
        self.resize_check = QCheckBox("Resize to")
        self.resize_check.setObjectName("resizeCheck")
        self.resize_check.setToolTip("Resize images (bilinear) before the first layer; CIFAR batches keep 32x32.")
        self.resize_h = CheckedSpinBox(label="Resize height", popup=False)
        self.resize_w = CheckedSpinBox(label="Resize width", popup=False)
        for spin, name in ((self.resize_h, "resizeH"), (self.resize_w, "resizeW")):
            spin.setObjectName(name)
            spin.setRange(1, 8192)
            spin.setValue(32)
            spin.setEnabled(False)
            spin.editingFinished.connect(self._spec_edited)
        self.resize_check.toggled.connect(self._resize_toggled)
        spec_row = QGridLayout()
        spec_row.addWidget(self.channels_combo, 0, 0, 1, 5)
        resize_row = QHBoxLayout()
        resize_row.addWidget(self.resize_check)
        resize_row.addWidget(self.resize_h)
        resize_row.addWidget(QLabel("×"))
        resize_row.addWidget(self.resize_w)
        resize_row.addStretch(1)
        spec_row.addLayout(resize_row, 1, 0, 1, 5)

        # A number a field refuses (99999 in Resize, 0 in Batch size) is said here, under the fields.
        self.error_label = QLabel("")
        self.error_label.setObjectName("inputError")
        self.error_label.setStyleSheet("color: #d0312d;")
        self.error_label.setWordWrap(True)
        self.error_label.hide()
        self._checked = (self.batch_size_spin, self.batch_spin, self.item_spin, self.resize_h, self.resize_w)
        for spin in self._checked:
            spin.refused.connect(self._refused)
            spin.valueChanged.connect(lambda _: self._taken())

        # Two rows, so the dock stays narrow and the feature maps get the width.
        buttons = QGridLayout()
        buttons.addWidget(open_image, 0, 0)
        buttons.addWidget(open_cifar, 0, 1)
        buttons.addWidget(QLabel("Sample:"), 1, 0, Qt.AlignRight)
        buttons.addWidget(self.sample_combo, 1, 1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(buttons)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.source_label)
        self.item_row = QWidget()
        self.item_row.setLayout(item_row)
        item_row.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.item_row)
        layout.addWidget(self.class_label)
        layout.addWidget(self.cifar_box)
        layout.addLayout(spec_row)
        layout.addWidget(self.error_label)

        self.state.last_run_changed.connect(self._run_changed)
        self.state.batch_item_changed.connect(self._batch_item_changed)
        if self.state.last_run is not None:
            self._run_changed(self.state.last_run)

    # ---------------------------------------------------------------- what it shows
    @property
    def source(self) -> InputSource | None:
        """The input shown (the last finished run's)."""
        return self.state.source

    @property
    def batch(self) -> InputBatch | None:
        return self.state.batch

    @property
    def batch_item(self) -> int:
        return self.state.batch_item

    def set_batch_item(self, index: int) -> None:
        """As if the user stepped to image ``index`` (the spin box refuses what is out of range)."""
        self.item_spin.setValue(index)

    def set_input_spec(self, spec: InputSpec) -> None:
        with qt_signals_blocked(self.channels_combo, self.resize_check, self.resize_h, self.resize_w):
            self.channels_combo.setCurrentIndex(0 if (spec.channels or 3) == 3 else 1)
            self.resize_check.setChecked(spec.size is not None)
            if spec.size is not None:
                self.resize_h.setValue(spec.size[0])
                self.resize_w.setValue(spec.size[1])
        self._enable_resize(spec.size is not None)

    def _run_changed(self, run: LastRun | None) -> None:
        if run is None:
            return
        batch, source = run.batch, run.source
        n = int(batch.tensor.shape[0])
        with qt_signals_blocked(self.item_spin, self.split_combo, self.batch_size_spin, self.batch_spin,
                                self.sample_combo):
            self.item_spin.setRange(0, max(0, n - 1))
            self.item_of.setText(f"of {n}")
            self.item_row.setVisible(n > 1)      # a single image has nothing to step through
            is_cifar = source.kind == "cifar"
            self.cifar_box.setVisible(is_cifar)
            if is_cifar:
                self.split_combo.setCurrentText(source.split)
                self.batch_size_spin.setValue(source.batch_size)
                count = run.batch_count or source.batch_index + 1
                self.batch_spin.setRange(0, count - 1)
                self.batch_spin.setValue(source.batch_index)
                self.batch_of.setText(f"of {count}")
            if source.kind == "sample":
                self.sample_combo.setCurrentIndex(max(0, self.sample_combo.findData(source.name)))
            else:
                self.sample_combo.setCurrentIndex(0)
        shape = "×".join(str(s) for s in batch.tensor.shape)
        self.source_label.setText(f"{source.describe()} · [{shape}]")
        self.source_label.setToolTip(f"{self.source_label.text()}\n{batch.source}")
        if self.item_spin.value() != self.state.batch_item:
            self.state.batch_item = self.item_spin.value()    # a smaller batch: its last image (drawn below)
        if batch is not self._shown_batch:   # every run answers with its input; redraw only a new one
            self._show_item()

    def _batch_item_changed(self, index: int) -> None:
        with qt_signals_blocked(self.item_spin):
            self.item_spin.setValue(index)
        self._show_item()

    # ---------------------------------------------------------------- internals
    def _refused(self, sentence: str) -> None:
        self.error_label.setText(sentence)
        self.error_label.show()

    def _taken(self) -> None:
        if not any(spin.problem for spin in self._checked):
            self.error_label.hide()
            self.error_label.clear()

    def _show_item(self) -> None:
        batch = self._shown_batch = self.batch
        if batch is None:
            return
        i = min(self.item_spin.value(), int(batch.tensor.shape[0]) - 1)
        picture = batch.previews.get(i)           # made by the run's worker where the batch was loaded
        if picture is None:                        # another item of a batch: small (CIFAR is 32×32)
            picture = render_input_image(batch.tensor[i])
        picture = np.ascontiguousarray(picture)
        self.image_item.setImage(picture, levels=(0, 255), autoLevels=False)
        self.view_box.autoRange(padding=0)
        if self.batch.classes:
            self.class_label.setText(f"Image {i}: {self.batch.classes[i]} (label {self.batch.labels[i]})")
        else:
            self.class_label.setText("")
        self.class_label.setVisible(bool(self.batch.classes))

    def _item_edited(self, index: int) -> None:
        self.state.batch_item = index          # drawn when the state says so (_batch_item_changed)

    def _sample_chosen(self, row: int) -> None:
        name = self.sample_combo.itemData(row)
        if name:
            self.state.requested_source = InputSource.sample(name)

    def _cifar_changed(self, reset_batch: bool = False) -> None:
        if self.source is None or self.source.kind != "cifar":
            return
        index = 0 if reset_batch else self.batch_spin.value()
        self.state.requested_source = self.source.with_batch(index, self.batch_size_spin.value(),
                                                             self.split_combo.currentText())

    def _enable_resize(self, on: bool) -> None:
        self.resize_h.setEnabled(on)
        self.resize_w.setEnabled(on)

    def _resize_toggled(self, on: bool) -> None:
        self._enable_resize(on)
        self._spec_edited()

    def _spec_edited(self) -> None:
        size = (self.resize_h.value(), self.resize_w.value()) if self.resize_check.isChecked() else None
        self.input_spec_edited.emit(InputSpec(self.channels_combo.currentData(), size))

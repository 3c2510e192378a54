"""Hand-editing one kernel of a small Conv2d: a table of weight[out_channel, in_channel] with pickers
for the two channels and presets (identity, Sobel, blur, sharpen, Laplacian). Every edit replaces the
whole weight tensor through ``document.set_state``; nothing here changes the stack itself."""

from __future__ import annotations

import math

import torch
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QComboBox, QGridLayout, QHBoxLayout, QHeaderView,
                               QLabel, QSpinBox, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from explorer.core.layers import LayerSpec, build_module
from explorer.ui.document import StackDocument
from explorer.ui.layer_form import qt_signals_blocked

MAX_KERNEL = 7

_PRESETS_3x3 = {
    "Sobel x (vertical edges)": [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
    "Sobel y (horizontal edges)": [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
    "Sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
    "Laplacian (all edges)": [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
}
PRESETS = ("Identity", "Blur (box average)", *_PRESETS_3x3, "Zeros")


def preset_kernel(name: str, kh: int, kw: int) -> torch.Tensor:
    """A kh×kw kernel; the 3×3 presets sit in the centre of larger kernels (zeros around) and are
    cropped to their centre in smaller ones."""
    k = torch.zeros(kh, kw)
    ch, cw = (kh - 1) // 2, (kw - 1) // 2
    if name == "Identity":
        k[ch, cw] = 1.0
    elif name == "Blur (box average)":
        k.fill_(1.0 / (kh * kw))
    elif name in _PRESETS_3x3:
        small = torch.tensor(_PRESETS_3x3[name], dtype=torch.float32)
        for y in range(3):
            for x in range(3):
                ty, tx = ch + y - 1, cw + x - 1
                if 0 <= ty < kh and 0 <= tx < kw:
                    k[ty, tx] = small[y, x]
    elif name != "Zeros":
        raise KeyError(name)
    return k


def editable(spec: LayerSpec | None) -> str | None:
    """None if the kernel editor can edit this layer, else the sentence that says why not."""
    if spec is None:
        return "Select a Conv2d layer to edit its kernels by hand."
    if spec.type != "Conv2d":
        return f"The kernel editor works on Conv2d layers; '{spec.name}' is a {spec.type}."
    k = spec.value("kernel_size")
    kh, kw = tuple(k) if isinstance(k, (tuple, list)) else (k, k)
    if kh > MAX_KERNEL or kw > MAX_KERNEL:
        return f"The kernel editor shows kernels up to {MAX_KERNEL}×{MAX_KERNEL}; this one is {kh}×{kw}."
    return None


class KernelEditor(QWidget):
    def __init__(self, document: StackDocument, parent: QWidget | None = None):
        super().__init__(parent)
        self.document = document
        self._weight: torch.Tensor | None = None

        self.hint = QLabel(self)
        self.hint.setObjectName("kernelHint")
        self.hint.setWordWrap(True)
        self.hint.setEnabled(False)

        self.out_spin = QSpinBox(self)
        self.out_spin.setObjectName("kernelOutChannel")
        self.out_spin.setToolTip("Which output channel (feature map) this kernel produces.")
        self.in_spin = QSpinBox(self)
        self.in_spin.setObjectName("kernelInChannel")
        self.in_spin.setToolTip("Which input channel the kernel looks at (0, 1, 2 = R, G, B for an RGB input).")
        self.all_inputs = QCheckBox("all input channels", self)
        self.all_inputs.setObjectName("kernelAllInputs")
        self.all_inputs.setToolTip("Edits and presets go to every input channel of this output channel.")
        self.preset = QComboBox(self)
        self.preset.setObjectName("kernelPreset")
        self.preset.addItem("Preset…")
        self.preset.addItems(list(PRESETS))
        self.preset.setToolTip("Put a classic kernel here: an identity, an edge detector, a blur, ...")

        self.table = QTableWidget(self)
        self.table.setObjectName("kernelTable")
        self.table.setToolTip("weight[out, in]: double-click a number to change it.")
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.horizontalHeader().hide()
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked
                                   | QAbstractItemView.EditTrigger.EditKeyPressed
                                   | QAbstractItemView.EditTrigger.AnyKeyPressed)
        self.table.setMinimumHeight(120)

        self.error = QLabel(self)
        self.error.setObjectName("kernelError")
        self.error.setStyleSheet("color: #d0312d;")
        self.error.hide()

        pickers = QGridLayout()
        pickers.addWidget(QLabel("out channel", self), 0, 0)
        pickers.addWidget(self.out_spin, 0, 1)
        pickers.addWidget(QLabel("in channel", self), 1, 0)
        pickers.addWidget(self.in_spin, 1, 1)
        pickers.addWidget(self.all_inputs, 1, 2)
        pickers.setColumnStretch(3, 1)
        row = QHBoxLayout()
        row.addWidget(self.preset)
        row.addStretch(1)

        self.body = QWidget(self)
        body = QVBoxLayout(self.body)
        body.setContentsMargins(0, 0, 0, 0)
        body.addLayout(pickers)
        body.addLayout(row)
        body.addWidget(self.table, 1)
        body.addWidget(self.error)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.hint)
        layout.addWidget(self.body, 1)

        self.out_spin.valueChanged.connect(self._show_kernel)
        self.in_spin.valueChanged.connect(self._show_kernel)
        self.table.itemChanged.connect(self._cell_edited)
        self.preset.activated.connect(self._preset_chosen)
        document.changed.connect(self.refresh)
        document.selection_changed.connect(self.refresh)
        self.refresh()

    # ------------------------------------------------------------ reading the document
    def spec(self) -> LayerSpec | None:
        i = self.document.selected
        return self.document.stack.layers[i] if 0 <= i < len(self.document.stack.layers) else None

    def current_weight(self) -> torch.Tensor:
        spec = self.spec()
        if spec.state and "weight" in spec.state:
            return spec.state["weight"].detach().clone()
        return build_module(spec, self.document.stack.seed).weight.detach().clone()

    def refresh(self, *_) -> None:
        spec = self.spec()
        why = editable(spec)
        self.hint.setText(why or "")
        self.hint.setVisible(why is not None)
        self.body.setVisible(why is None)
        if why is not None:
            self._weight = None
            return
        self._weight = self.current_weight()
        out_ch, in_ch = self._weight.shape[:2]
        with qt_signals_blocked(self.out_spin, self.in_spin):
            self.out_spin.setRange(0, out_ch - 1)
            self.in_spin.setRange(0, in_ch - 1)
        self._show_kernel()

    def _show_kernel(self) -> None:
        if self._weight is None:
            return
        k = self._weight[self.out_spin.value(), self.in_spin.value()]
        kh, kw = k.shape
        peak = float(self._weight.abs().max()) or 1.0
        with qt_signals_blocked(self.table):
            self.table.setRowCount(kh)
            self.table.setColumnCount(kw)
            for y in range(kh):
                for x in range(kw):
                    v = float(k[y, x])
                    item = QTableWidgetItem(f"{v:.4g}")
                    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                    item.setBackground(_diverging(v / peak))
                    item.setForeground(QColor("black"))
                    self.table.setItem(y, x, item)
        self.error.hide()

    # ------------------------------------------------------------ edits
    def _write(self, kernel: torch.Tensor) -> None:
        weight = self._weight.clone()
        o = self.out_spin.value()
        if self.all_inputs.isChecked():
            weight[o, :] = kernel
        else:
            weight[o, self.in_spin.value()] = kernel
        self.document.set_state(self.document.selected, "weight", weight)

    def _cell_edited(self, item: QTableWidgetItem) -> None:
        if self._weight is None:
            return
        try:
            v = float(item.text().strip())
            if not math.isfinite(v):
                raise ValueError
        except ValueError:
            self.error.setText(f"'{item.text()}' is not a number.")
            self._show_kernel()
            self.error.show()
            return
        kernel = self._weight[self.out_spin.value(), self.in_spin.value()].clone()
        kernel[item.row(), item.column()] = v
        self._write(kernel)

    def _preset_chosen(self, index: int) -> None:
        if index <= 0 or self._weight is None:
            return
        kh, kw = self._weight.shape[2:]
        self._write(preset_kernel(self.preset.itemText(index), kh, kw))
        with qt_signals_blocked(self.preset):
            self.preset.setCurrentIndex(0)

    def apply_preset(self, name: str) -> None:
        """Same as choosing ``name`` in the preset combo."""
        self._preset_chosen(self.preset.findText(name))


def _diverging(t: float) -> QColor:
    """-1 → blue, 0 → white, +1 → red (light enough for black text)."""
    t = max(-1.0, min(1.0, t))
    a = abs(t) * 0.6
    if t >= 0:
        return QColor.fromRgbF(1.0, 1.0 - a, 1.0 - a)
    return QColor.fromRgbF(1.0 - a, 1.0 - a, 1.0)

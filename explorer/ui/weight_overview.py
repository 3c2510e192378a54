"""The whole weight tensor at a glance: every (filter, input channel) kernel as a small tile of
one image (filters down, input channels across), diverging colours on one scale for the whole
layer. Clicking a tile picks that kernel for editing; the picked one is framed.

One ImageItem and one frame item, reused on every update (pyqtgraph's fast path: uint8 RGB)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
import torch
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QGraphicsRectItem, QWidget

GAP = 1   # pixels between tiles
GAP_GRAY = 200


def diverging_rgb(values: np.ndarray, peak: float) -> np.ndarray:
    """[..] floats → [.., 3] uint8: blue (−peak) … white (0) … red (+peak)."""
    t = np.clip(values / (peak or 1.0), -1.0, 1.0)
    a = np.abs(t)
    pos = t >= 0
    r = np.where(pos, 1.0, 1.0 - a)
    g = 1.0 - a
    b = np.where(pos, 1.0 - a, 1.0)
    return (np.stack([r, g, b], axis=-1) * 255 + 0.5).astype(np.uint8)


def mosaic(kernels: torch.Tensor) -> tuple[np.ndarray, float]:
    """[filters, inputs, kH, kW] → one RGB image with a GAP between tiles, and the colour scale."""
    k = kernels.detach().to("cpu", torch.float64).numpy()
    f, c, kh, kw = k.shape
    peak = float(np.abs(k).max()) if k.size else 1.0
    # Place all tiles at once: pad each tile with the gap, then fold the grid into rows and columns.
    padded = np.full((f, c, kh + GAP, kw + GAP, 3), GAP_GRAY, dtype=np.uint8)
    padded[:, :, :kh, :kw] = diverging_rgb(k, peak)
    folded = padded.transpose(0, 2, 1, 3, 4).reshape(f * (kh + GAP), c * (kw + GAP), 3)
    return np.ascontiguousarray(folded[:f * (kh + GAP) - GAP, :c * (kw + GAP) - GAP]), peak


class _ClickableImage(pg.ImageItem):
    def __init__(self, on_click):
        super().__init__(axisOrder="row-major")
        self._on_click = on_click

    def mouseClickEvent(self, ev):
        if ev.button() == Qt.MouseButton.LeftButton:
            pos = ev.pos()
            self._on_click(pos.x(), pos.y())
            ev.accept()


class WeightOverview(pg.GraphicsLayoutWidget):
    kernel_clicked = Signal(int, int)    # filter, input channel

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("weightOverview")
        self.setBackground(QColor(245, 245, 245))
        self.setMinimumHeight(110)
        self.plot = self.addPlot()
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.plot.setAspectLocked(True)
        self.plot.invertY(True)
        self.plot.hideAxis("left")
        self.plot.hideAxis("bottom")
        self.image = _ClickableImage(self._clicked)
        self.plot.addItem(self.image)
        self.frame = QGraphicsRectItem()
        self.frame.setPen(pg.mkPen(20, 20, 20, width=2, cosmetic=True))
        self.plot.addItem(self.frame)
        self._shape = (0, 0, 0, 0)
        self._key = None
        self.peak = 1.0

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return self._shape

    def set_kernels(self, kernels: torch.Tensor, selected: tuple[int, int]) -> None:
        """``kernels`` as [filter, input channel, kH, kW] (a Linear weight: [out, in, 1, 1])."""
        key = (id(kernels), kernels._version, tuple(kernels.shape))
        if key != self._key:
            image, self.peak = mosaic(kernels)
            reshaped = tuple(kernels.shape) != self._shape
            self._shape = tuple(kernels.shape)
            self.image.setImage(image, autoLevels=False, levels=(0, 255))
            self._key = key
            if reshaped:
                self.plot.autoRange(padding=0.02)
        self.set_selected(*selected)

    def set_selected(self, filter_index: int, in_channel: int) -> None:
        _, _, kh, kw = self._shape
        self.frame.setRect(QRectF(in_channel * (kw + GAP) - 0.5, filter_index * (kh + GAP) - 0.5, kw + 1, kh + 1))

    def tile_at(self, x: float, y: float) -> tuple[int, int] | None:
        f, c, kh, kw = self._shape
        col, row = int(x // (kw + GAP)), int(y // (kh + GAP))
        if 0 <= row < f and 0 <= col < c:
            return row, col
        return None

    def _clicked(self, x: float, y: float) -> None:
        hit = self.tile_at(x, y)
        if hit is not None:
            self.kernel_clicked.emit(*hit)

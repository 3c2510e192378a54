"""Small views of the walkthrough window: the input image with the receptive field outlined on
it, and the top-5 bar chart of the final step. The feature maps themselves are shown by the main
window's FeatureView, reused as it is."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
import torch
from PySide6 import QtCore, QtGui, QtWidgets
from PySide6.QtCore import Qt

from explorer.core.colormaps import get_lut
from explorer.core.render import render_channel, render_input_image, render_rgb
from explorer.ui.stats_view import ACCENT, POSITIVE
from explorer.ui.fonts import fixed_font


def input_pixels(image: torch.Tensor, stretch: bool) -> np.ndarray:
    """[1, C, H, W] or [C, H, W] → uint8 (H, W) or (H, W, 3). ``stretch`` maps the image's own
    min..max to black..white (for the normalised input, whose values are not 0..1)."""
    planes = image[0] if image.dim() == 4 else image
    planes = planes.detach()
    if planes.shape[0] == 1:
        if stretch:
            return render_channel(planes[0], "channel")[0]
        return render_input_image(planes)
    if stretch:
        return render_rgb(planes, (0, 1, 2), normalization="layer")
    return render_input_image(planes[:3])


class InputImageView(QtWidgets.QWidget):
    """An image in an aspect-locked view with an outlined region (the receptive field of the
    feature-map pixel under the mouse)."""

    def __init__(self, title: str, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        self.title = QtWidgets.QLabel(title)
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        self.title.setWordWrap(True)
        layout.addWidget(self.title)
        self.graphics = pg.GraphicsView()
        self.graphics.setMinimumSize(150, 150)
        self.graphics.setBackground(None)
        self.view_box = pg.ViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.view_box.setMouseEnabled(False, False)
        self.graphics.setCentralItem(self.view_box)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.view_box.addItem(self.image_item)
        # A dark outline under a bright one: visible on any picture.
        self._outline_dark = QtWidgets.QGraphicsRectItem()
        self._outline_dark.setPen(pg.mkPen("#000000", width=4, cosmetic=True))
        self.outline = QtWidgets.QGraphicsRectItem()
        self.outline.setPen(pg.mkPen(ACCENT, width=2, cosmetic=True))
        for z, item in ((10, self._outline_dark), (11, self.outline)):
            item.setZValue(z)
            item.hide()
            self.view_box.addItem(item, ignoreBounds=True)
        layout.addWidget(self.graphics, 1)
        self.caption = QtWidgets.QLabel("")
        self.caption.setWordWrap(True)
        self.caption.setObjectName("inputCaption")
        layout.addWidget(self.caption)

    @property
    def image_shape(self) -> tuple[int, ...] | None:
        image = self.image_item.image
        return None if image is None else tuple(image.shape)

    def set_image(self, pixels: np.ndarray, caption: str = "") -> None:
        pixels = np.ascontiguousarray(pixels)
        if pixels.ndim == 2:
            self.image_item.setImage(pixels, autoLevels=False, levels=(0, 255), lut=get_lut("gray"))
        else:
            self.image_item.setLookupTable(None, update=False)
            self.image_item.setImage(pixels, autoLevels=False, levels=(0, 255))
        h, w = pixels.shape[:2]
        self.view_box.setRange(QtCore.QRectF(0, 0, w, h), padding=0.01)
        self.caption.setText(caption)
        self.set_region(None)

    def set_region(self, region: tuple[int, int, int, int] | None) -> None:
        """Outline rows y0..y1-1 and columns x0..x1-1 (None hides the outline)."""
        if region is None:
            self.outline.hide()
            self._outline_dark.hide()
            return
        y0, x0, y1, x1 = region
        rect = QtCore.QRectF(x0, y0, max(0, x1 - x0), max(0, y1 - y0))
        for item in (self._outline_dark, self.outline):
            item.setRect(rect)
            item.show()

    @property
    def region(self) -> tuple[int, int, int, int] | None:
        """The outlined region as (y0, x0, y1, x1), or None (for tests)."""
        if not self.outline.isVisible():
            return None
        r = self.outline.rect()
        return int(r.top()), int(r.left()), int(r.bottom()), int(r.right())


class TopClassesView(QtWidgets.QWidget):
    """The five most probable classes as horizontal bars, the most probable on top."""

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("topClassesView")
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(4)
        self.title = QtWidgets.QLabel("Top-5 classes")
        font = self.title.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.1)
        self.title.setFont(font)
        layout.addWidget(self.title)
        # No context menu, not even built: a ViewBox's menu is a good part of what a plot costs to make.
        self.plot_widget = pg.PlotWidget(enableMenu=False)
        self.plot_widget.setObjectName("topClassesPlot")
        self.plot_widget.setMinimumSize(360, 220)
        self.plot = self.plot_widget.getPlotItem()
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.setLabel("bottom", "probability (%)")
        self.plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.plot.showGrid(x=True, alpha=0.25)
        self.plot.getAxis("left").setWidth(180)
        self.bars = pg.BarGraphItem(x0=[0.0], y=[0.0], height=0.6, width=[0.0], brush=pg.mkBrush(POSITIVE))
        self.plot.addItem(self.bars)
        layout.addWidget(self.plot_widget, 1)
        self.list_label = QtWidgets.QLabel("")
        self.list_label.setObjectName("topClassesList")
        self.list_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        mono = fixed_font(self.list_label.font())
        self.list_label.setFont(mono)
        layout.addWidget(self.list_label)
        self._entries: list[tuple[str, float]] = []

    @property
    def entries(self) -> list[tuple[str, float]]:
        return list(self._entries)

    def labels(self) -> list[str]:
        """The class names on the chart's axis, top to bottom."""
        ticks = self.plot.getAxis("left")._tickLevels
        if not ticks:
            return []
        return [label for _, label in sorted(ticks[0], key=lambda t: t[0])]

    def set_entries(self, entries: list[tuple[str, float]], title: str = "Top-5 classes") -> None:
        self._entries = [(str(name), float(p)) for name, p in entries]
        self.title.setText(title)
        n = len(self._entries)
        positions = list(range(n))            # 0 is drawn at the top (the axis is inverted)
        widths = [100.0 * p for _, p in self._entries]
        brushes = [pg.mkBrush(ACCENT if i == 0 else POSITIVE) for i in range(n)]
        self.bars.setOpts(x0=[0.0] * n, y=positions, height=0.6, width=widths, brushes=brushes, brush=None,
                          pen=pg.mkPen(None))
        self.plot.invertY(True)
        self.plot.getAxis("left").setTicks([[(i, name) for i, (name, _) in enumerate(self._entries)]])
        self.plot.setXRange(0.0, max(widths + [1e-4]) * 1.08, padding=0)
        self.plot.setYRange(-0.6, n - 0.4, padding=0)
        self.list_label.setText("\n".join(f"{i + 1}. {name:<30} {p * 100:6.2f}%"
                                          for i, (name, p) in enumerate(self._entries)))

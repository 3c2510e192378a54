"""Large view of one channel with a colour bar of its real value range and a
value readout under the mouse.

The widget renders what it is given: a ready uint8 image, the values that map
to 0 and 255, and the channel's values as a small CPU array (one plane, copied
once per selection) for the readout.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from explorer.core.colormaps import get_lut
from explorer.ui.stats_view import format_value
from explorer.ui.elided_label import ElidedLabel
from explorer.ui.fonts import fixed_font

HOVER_HINT = "Hover over the channel to read its values."


@functools.lru_cache(maxsize=None)
def lut_colormap(name: str) -> pg.ColorMap:
    """A pyqtgraph ColorMap with exactly the 256 colours of our LUT."""
    lut = np.asarray(get_lut(name))
    return pg.ColorMap(np.linspace(0.0, 1.0, len(lut)), lut, name=name)


def bar_range(low: float, high: float) -> tuple[float, float]:
    """The colour bar's axis cannot show an empty or infinite range; widen it a hair."""
    low = float(low) if math.isfinite(low) else 0.0
    high = float(high) if math.isfinite(high) else low
    if high <= low:
        eps = max(abs(low) * 1e-6, 1e-6)
        return low - eps, low + eps
    return low, high


class ChannelView(QtWidgets.QWidget):
    """One channel, big: ImageItem + ColorBarItem (low..high in data units) + readout."""

    pixel_hovered = QtCore.Signal(int, int)   # x (column), y (row) under the mouse; -1, -1 when it leaves

    def __init__(self, parent: QtWidgets.QWidget | None = None, deferred_colorbar: bool = False):
        """``deferred_colorbar``: the colour bar (a second pyqtgraph plot) is built when first used
        or by ``colorbar`` on an idle turn (a window that opens while the user waits)."""
        super().__init__(parent)
        self.setObjectName("channelView")
        self._values: np.ndarray | None = None
        self._low = 0.0
        self._high = 1.0
        self._colormap = "gray"
        self._last_pixel: tuple[int, int] | None = None

        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)

        self.title = QtWidgets.QLabel("")
        self.title.setObjectName("channelTitle")
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        self.title.setContentsMargins(4, 0, 4, 0)
        layout.addWidget(self.title)

        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setObjectName("channelGraphics")
        self.graphics.setMinimumSize(150, 120)
        self.plot = self.graphics.addPlot(row=0, col=0, enableMenu=False)    # no menu built either
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.plot.setAspectLocked(True)
        self.plot.invertY(True)
        self.plot.getAxis("left").setWidth(34)
        for name in ("left", "bottom"):
            # No finest, unnumbered ticks (36 of the left axis's 46 at 510 px): the numbers stay, and
            # the axes, laid out again whenever the map's size changes, cost less to draw.
            self.plot.getAxis(name).setStyle(maxTickLevel=1)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.image_item.setBorder(pg.mkPen(QtGui.QColor(150, 150, 150, 140), width=1, cosmetic=True))
        self.plot.addItem(self.image_item)

        self._colorbar: pg.ColorBarItem | None = None
        if not deferred_colorbar:
            self._build_colorbar()
        layout.addWidget(self.graphics, 1)

        self.readout = ElidedLabel(HOVER_HINT)     # one line: never drawn over the map in a small window
        self.readout.setObjectName("readoutLabel")
        rfont = fixed_font(self.readout.font())
        self.readout.setFont(rfont)
        self.readout.setContentsMargins(4, 0, 4, 2)
        self.readout.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.readout)

        self.graphics.scene().sigMouseMoved.connect(self._mouse_moved)
        self.clear()

    def _build_colorbar(self) -> None:
        bar = pg.ColorBarItem(values=(0.0, 1.0), colorMap=lut_colormap(self._colormap), width=14,
                              interactive=False, colorMapMenu=False)
        bar.getAxis("right").setWidth(64)
        bar.getAxis("right").enableAutoSIPrefix(False)
        bar.getAxis("right").setStyle(maxTickLevel=1)    # a new range on every edit: numbered ticks only
        if self._values is not None:
            bar.setLevels(bar_range(self._low, self._high))
        self.graphics.addItem(bar, row=0, col=1)
        self._colorbar = bar

    @property
    def colorbar(self) -> pg.ColorBarItem:
        if self._colorbar is None:
            self._build_colorbar()
        return self._colorbar

    # ------------------------------------------------------------------ API

    @property
    def values(self) -> np.ndarray | None:
        """The channel's values (CPU copy) that the readout reads."""
        return self._values

    @property
    def value_range(self) -> tuple[float, float]:
        """(low, high): the values drawn as the first and last colour."""
        return self._low, self._high

    def clear(self, title: str = "") -> None:
        self._values = None
        self._last_pixel = None
        self.title.setText(title)
        self.image_item.clear()
        self.readout.setText("")

    def set_channel(self, image: np.ndarray, values: np.ndarray, low: float, high: float,
                    colormap: str, title: str = "", reset_view: bool = False) -> None:
        """Show a uint8 (H, W) image whose 0 and 255 stand for `low` and `high`;
        `values` (H, W) are what the readout reports."""
        image = np.ascontiguousarray(image)
        # The view follows the channel's real size: two layers can arrive as the same shrunk image.
        old_shape = self._values.shape if self._values is not None else None
        self._values = values
        self._low, self._high = float(low), float(high)
        self.title.setText(title)
        self.image_item.setImage(image, autoLevels=False, levels=(0, 255), lut=get_lut(colormap))
        # A huge layer arrives drawn shrunk; stretch it over the channel's real size, so view
        # coordinates are always value coordinates (the readout and the hover signal use them).
        self.image_item.setRect(QtCore.QRectF(0, 0, values.shape[1], values.shape[0]))
        if colormap != self._colormap:
            self.colorbar.setColorMap(lut_colormap(colormap))
            self._colormap = colormap
        self.colorbar.setLevels(bar_range(self._low, self._high))
        if reset_view or old_shape != values.shape:
            self.plot.autoRange(padding=0.02)
            self.plot.getViewBox().prepareForPaint()   # fitted now: one paint, not two (see FeatureGrid.reset_view)
        if self._last_pixel is not None:
            self._show_readout(*self._last_pixel)
        else:
            self.readout.setText(HOVER_HINT)

    def set_colormap(self, colormap: str) -> None:
        if colormap == self._colormap:
            return
        self._colormap = colormap
        self.image_item.setLookupTable(get_lut(colormap))
        self.colorbar.setColorMap(lut_colormap(colormap))

    def readout_at(self, x: int, y: int) -> str | None:
        """'x=12 y=7 value=0.4321' for pixel (x, y), or None outside the channel."""
        if self._values is None:
            return None
        h, w = self._values.shape[:2]
        if not (0 <= x < w and 0 <= y < h):
            return None
        return f"x={x} y={y} value={format_value(self._values[y, x])}"

    def scene_point_of_pixel(self, x: int, y: int) -> QtCore.QPointF:
        """The scene position of pixel (x, y)'s centre: where the mouse is when it rests there."""
        return self.plot.vb.mapViewToScene(QtCore.QPointF(x + 0.5, y + 0.5))

    # ------------------------------------------------------------------ events

    def _mouse_moved(self, scene_pos) -> None:
        if self._values is None:
            return
        pos = self.plot.vb.mapSceneToView(scene_pos)
        x, y = math.floor(pos.x()), math.floor(pos.y())
        if self.readout_at(x, y) is None or not self.plot.vb.sceneBoundingRect().contains(scene_pos):
            if self._last_pixel is not None:
                self.pixel_hovered.emit(-1, -1)
            self._last_pixel = None
            self.readout.setText(HOVER_HINT)
            return
        moved = self._last_pixel != (x, y)
        self._last_pixel = (x, y)
        self._show_readout(x, y)
        if moved:
            self.pixel_hovered.emit(x, y)

    def _show_readout(self, x: int, y: int) -> None:
        text = self.readout_at(x, y)
        if text is None:
            self._last_pixel = None
            self.readout.setText(HOVER_HINT)
        else:
            self.readout.setText(text)

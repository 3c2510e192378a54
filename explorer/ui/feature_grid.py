"""The feature view's grid: every channel of a layer as tiles of ONE ``pg.ImageItem`` (pyqtgraph's
fast path), with the tile numbers painted by one item and the selection drawn as an outline.
Click a tile or use the arrow keys to select one."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets
from PySide6.QtCore import Qt, Signal

from explorer.core.render import GridLayout
from explorer.ui.deferred import LazyMenuViewBox
from explorer.ui.stats_view import ACCENT


class _GridImage(pg.ImageItem):
    """The grid's single ImageItem; reports clicks in image pixel coordinates."""

    def __init__(self, on_click):
        super().__init__(axisOrder="row-major")
        self._on_click = on_click

    def mouseClickEvent(self, ev):
        if ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            pos = ev.pos()
            self._on_click(pos.x(), pos.y(), ev.double())
        else:
            super().mouseClickEvent(ev)


class _TileLabels(pg.GraphicsObject):
    """Tile numbers for the whole grid, painted in screen pixels by one item.

    A number is drawn only inside its own tile: as you zoom out the font shrinks (down to
    MIN_POINT_SIZE), and when even that does not fit, no numbers are drawn at all (the hover line
    under the grid names the tile under the mouse). Numbers bigger than their tiles covered the
    maps and each other. Labels are drawn for the tiles in view only."""

    POINT_SIZES = (8.5, 7.5, 6.5)
    MIN_POINT_SIZE = POINT_SIZES[-1]

    def __init__(self):
        super().__init__()
        self._layout: GridLayout | None = None
        self._texts: list[str] = []
        self._selected: int | None = None
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self.setAcceptHoverEvents(False)
        self.setZValue(20)
        self._fonts = []
        for size in self.POINT_SIZES:
            font = QtGui.QFont()
            font.setPointSizeF(size)
            font.setBold(True)
            self._fonts.append((font, QtGui.QFontMetrics(font)))
        self.font, self._metrics = self._fonts[0]
        self.stride = 1           # 1: numbers painted, 0: tiles too small for them (for tests)
        self.painted: list[tuple[int, QtCore.QRectF, QtCore.QRectF]] = []   # (tile, label, tile) in pixels

    def set_grid(self, layout: GridLayout | None, prefix: str = "") -> None:
        self.prepareGeometryChange()
        self._layout = layout
        self._texts = [f"{prefix}{i}" for i in range(layout.count)] if layout is not None else []
        self.update()

    def set_selected(self, index: int | None) -> None:
        self._selected = index
        self.update()

    def boundingRect(self) -> QtCore.QRectF:
        if self._layout is None:
            return QtCore.QRectF()
        return QtCore.QRectF(0, 0, self._layout.width, self._layout.height)

    def _fitting_font(self, tile_w: float, tile_h: float):
        """The largest font whose widest number fits in a tile of tile_w x tile_h screen pixels."""
        for font, metrics in self._fonts:
            if metrics.horizontalAdvance(self._texts[-1]) + 6 <= tile_w - 2 and metrics.height() + 2 <= tile_h - 2:
                return font, metrics
        return None

    def paint(self, painter: QtGui.QPainter, option, widget=None) -> None:
        layout = self._layout
        self.painted = []
        if layout is None or layout.count == 0 or layout.tile_w == 0 or layout.tile_h == 0:
            self.stride = 0
            return
        to_device = painter.transform()
        step_w, step_h = layout.tile_w + layout.pad, layout.tile_h + layout.pad
        px_w = abs(to_device.m11()) * step_w
        px_h = abs(to_device.m22()) * step_h
        if px_w <= 0 or px_h <= 0:
            return
        fitting = self._fitting_font(abs(to_device.m11()) * layout.tile_w, abs(to_device.m22()) * layout.tile_h)
        self.stride = 1 if fitting is not None else 0

        # Only the tiles in view.
        vb = self.getViewBox()
        if vb is None:
            return
        view = self.mapRectFromView(vb.viewRect())
        col0 = max(0, math.floor(view.left() / step_w))
        col1 = min(layout.cols - 1, math.floor(view.right() / step_w))
        row0 = max(0, math.floor(view.top() / step_h))
        row1 = min(layout.rows - 1, math.floor(view.bottom() / step_h))
        if col1 < col0 or row1 < row0:
            return

        painter.save()
        # Faint outlines keep dark tiles apart from the dark padding, when tiles are big enough to see.
        if px_w >= 8 and px_h >= 8:
            outline = pg.mkPen(QtGui.QColor(150, 150, 150, 90), width=1, cosmetic=True)
            painter.setPen(outline)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            rects = []
            for row in range(row0, row1 + 1):
                for col in range(col0, col1 + 1):
                    index = row * layout.cols + col
                    if index >= layout.count:
                        break
                    x, y = layout.tile_origin(index)
                    rects.append(QtCore.QRectF(x - layout.pad / 2, y - layout.pad / 2,
                                               layout.tile_w + layout.pad, layout.tile_h + layout.pad))
            painter.drawRects(rects)
        if fitting is None:
            painter.restore()
            return
        font, metrics = fitting
        painter.resetTransform()
        painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing, False)
        painter.setFont(font)
        colors = (QtGui.QColor(0, 0, 0, 165), QtGui.QPen(QtGui.QColor(255, 255, 255)),
                  QtGui.QColor(ACCENT), QtGui.QPen(QtGui.QColor(0, 0, 0)))
        for row in range(row0, row1 + 1):
            for col in range(col0, col1 + 1):
                index = row * layout.cols + col
                if index >= layout.count:
                    break
                self._draw_label(painter, to_device, layout, index, metrics, *colors)
        painter.restore()

    def _draw_label(self, painter, to_device, layout, index, metrics, box, text_pen, sel_box, sel_pen) -> None:
        x, y = layout.tile_origin(index)
        tile = to_device.mapRect(QtCore.QRectF(x, y, layout.tile_w, layout.tile_h))
        text = self._texts[index]
        rect = QtCore.QRectF(round(tile.left()) + 1, round(tile.top()) + 1,
                             metrics.horizontalAdvance(text) + 6, metrics.height() + 2)
        selected = index == self._selected
        painter.fillRect(rect, sel_box if selected else box)
        painter.setPen(sel_pen if selected else text_pen)
        painter.drawText(QtCore.QPointF(rect.left() + 3, rect.top() + 1 + metrics.ascent()), text)
        self.painted.append((index, rect, tile))


class FeatureGrid(pg.GraphicsView):
    """All tiles of a rendered grid as one ImageItem in an aspect-locked,
    top-down ViewBox. Click a tile or use the arrow keys to select one."""

    tile_selected = Signal(int)     # a click or an arrow key chose this tile
    tile_hovered = Signal(int)      # the tile under the mouse, -1 for none

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("featureGrid")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMinimumSize(160, 120)
        self.view_box = LazyMenuViewBox(lockAspect=True, invertY=True, enableMenu=True)   # menu built on first use
        self.setCentralItem(self.view_box)
        self.image_item = _GridImage(self._clicked)
        self.view_box.addItem(self.image_item)
        self.labels = _TileLabels()
        self.view_box.addItem(self.labels, ignoreBounds=True)

        # Selection: a dark outline under a bright one, visible on any colour map.
        self._outline = QtWidgets.QGraphicsRectItem()
        self._outline.setPen(pg.mkPen("#000000", width=4, cosmetic=True))
        self._highlight = QtWidgets.QGraphicsRectItem()
        self._highlight.setPen(pg.mkPen(ACCENT, width=2, cosmetic=True))
        for z, item in ((10, self._outline), (11, self._highlight)):
            item.setZValue(z)
            item.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
            item.hide()
            self.view_box.addItem(item, ignoreBounds=True)

        self.grid_layout: GridLayout | None = None
        self.selected: int | None = None
        self._hovered = -1
        self.scene().sigMouseMoved.connect(self._mouse_moved)

    # ------------------------------------------------------------------ API

    def set_image(self, image: np.ndarray, layout: GridLayout | None, lut: np.ndarray | None,
                  label_prefix: str = "", reset_view: bool = False) -> None:
        """Show `image` (uint8 2-D with `lut`, or RGB (H, W, 3) with lut None). `layout`
        makes tiles clickable and labelled; None shows a plain picture."""
        image = np.ascontiguousarray(image)
        old = self.image_item.image
        self.grid_layout = layout
        if image.ndim == 2:
            self.image_item.setImage(image, autoLevels=False, levels=(0, 255), lut=lut)
        else:
            self.image_item.setLookupTable(None, update=False)
            self.image_item.setImage(image, autoLevels=False, levels=(0, 255))
        self.labels.set_grid(layout, label_prefix)
        if reset_view or old is None or old.shape[:2] != image.shape[:2]:
            self.reset_view()
        self.set_selected(self.selected)

    def set_lut(self, lut: np.ndarray) -> None:
        if self.image_item.image is not None and self.image_item.image.ndim == 2:
            self.image_item.setLookupTable(lut)

    def clear(self) -> None:
        self.image_item.clear()
        self.grid_layout = None
        self.labels.set_grid(None)
        self.set_selected(None)

    def reset_view(self) -> None:
        image = self.image_item.image
        if image is None:
            return
        h, w = image.shape[:2]
        self.view_box.setRange(QtCore.QRectF(0, 0, max(w, 1), max(h, 1)), padding=0.02)
        # The new range and transform now, not while painting: a transform found during a paint
        # moves the items, and the view is painted a second time.
        self.view_box.prepareForPaint()

    def set_selected(self, index: int | None) -> None:
        layout = self.grid_layout
        if index is None or layout is None or not 0 <= index < layout.count:
            self.selected = index
            self._highlight.hide()
            self._outline.hide()
            self.labels.set_selected(None)
            return
        self.selected = index
        x, y, w, h = layout.tile_rect(index)
        rect = QtCore.QRectF(x - 0.5, y - 0.5, w + 1, h + 1)
        self._highlight.setRect(rect)
        self._outline.setRect(rect)
        self._highlight.show()
        self._outline.show()
        self.labels.set_selected(index)

    def scene_point_of_tile(self, index: int) -> QtCore.QPointF:
        """Scene position of a tile's centre (for tests and the main window)."""
        x, y, w, h = self.grid_layout.tile_rect(index)
        return self.image_item.mapToScene(QtCore.QPointF(x + w / 2, y + h / 2))

    def widget_point_of_tile(self, index: int) -> QtCore.QPoint:
        """Viewport pixel of a tile's centre."""
        return self.mapFromScene(self.scene_point_of_tile(index))

    # ------------------------------------------------------------------ events

    def _clicked(self, x: float, y: float, double: bool) -> None:
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        if double:
            self.reset_view()
            return
        if self.grid_layout is None:
            return
        index = self.grid_layout.tile_at(x, y)
        if index is not None:
            self.tile_selected.emit(index)

    def keyPressEvent(self, ev: QtGui.QKeyEvent) -> None:
        layout = self.grid_layout
        steps = {Qt.Key.Key_Left: -1, Qt.Key.Key_Right: 1}
        if layout is not None and layout.count:
            steps[Qt.Key.Key_Up] = -layout.cols
            steps[Qt.Key.Key_Down] = layout.cols
        step = steps.get(ev.key())
        if step is None or layout is None or not layout.count:
            if ev.key() == Qt.Key.Key_Home:
                self.reset_view()
                ev.accept()
                return
            super().keyPressEvent(ev)
            return
        ev.accept()
        current = self.selected if self.selected is not None else 0
        target = current + step
        if 0 <= target < layout.count:
            self.tile_selected.emit(target)
            self._ensure_visible(target)

    def _ensure_visible(self, index: int) -> None:
        x, y, w, h = self.grid_layout.tile_rect(index)
        view = self.view_box.viewRect()
        if not view.contains(QtCore.QRectF(x, y, w, h)):
            dx = (x + w / 2) - view.center().x()
            dy = (y + h / 2) - view.center().y()
            self.view_box.translateBy(x=dx, y=dy)

    def _mouse_moved(self, scene_pos) -> None:
        index = -1
        if self.grid_layout is not None and self.view_box.sceneBoundingRect().contains(scene_pos):
            pos = self.image_item.mapFromScene(scene_pos)
            found = self.grid_layout.tile_at(pos.x(), pos.y())
            index = -1 if found is None else found
        if index != self._hovered:
            self._hovered = index
            self.tile_hovered.emit(index)

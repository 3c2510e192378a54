"""The overview strip of a walkthrough: one block per stage, left to right.

A block's height follows the stage's spatial size (224 → 7 for VGG-16) and its width the channel
count (3 → 512), so the strip shows at a glance what the classic text says: the maps get smaller
and deeper. Vector stages (Flatten, Linear, Softmax) are thin bars whose height follows the number
of values. Click a block (or use Left/Right/Home/End while the strip has focus) to jump there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from PySide6 import QtCore, QtGui, QtWidgets
from PySide6.QtCore import Qt, Signal

# One colour per kind of stage, readable on the light window background.
KIND_COLORS = {
    "input": "#7a7a7a",
    "conv": "#4f8fd8",
    "pool": "#e0893a",
    "flatten": "#9c6ade",
    "linear": "#3aa676",
    "softmax": "#d04f6f",
    "opaque": "#a0a0a0",
}
SELECTED = "#ffc400"
KIND_LABELS = {"input": "input", "conv": "conv + ReLU", "pool": "pooling", "flatten": "flatten",
               "linear": "fully connected", "softmax": "softmax", "opaque": "other block"}


def legend_html(kinds) -> str:
    """A one-line colour key for the kinds present, for a QLabel next to the strip."""
    present = set(kinds)
    seen = [k for k in KIND_COLORS if k in present]
    return "&nbsp;&nbsp;".join(f'<span style="color:{KIND_COLORS[k]}">■</span>&nbsp;{KIND_LABELS[k]}' for k in seen)


@dataclass(frozen=True)
class StripBlock:
    """What the strip needs to know of one stage."""

    name: str
    kind: str
    shape: tuple[int, ...]          # NCHW, or (N, F) for vectors
    tooltip: str = ""

    @property
    def is_maps(self) -> bool:
        return len(self.shape) == 4

    @property
    def channels(self) -> int:
        return int(self.shape[1]) if len(self.shape) >= 2 else 1

    @property
    def spatial(self) -> int:
        return int(max(self.shape[2], self.shape[3])) if self.is_maps else 1

    @property
    def values(self) -> int:
        return int(math.prod(self.shape[1:])) if len(self.shape) >= 2 else 1

    def caption(self) -> tuple[str, str]:
        """Two short lines under the block: channels and spatial size, or the value count."""
        if self.is_maps:
            h, w = int(self.shape[2]), int(self.shape[3])
            return f"{self.channels}", f"{h}²" if h == w else f"{h}×{w}"
        return f"{self.values}", ""


class StageStrip(QtWidgets.QWidget):
    """Paints the blocks and reports clicks; holds no walkthrough logic."""

    stage_selected = Signal(int)

    MARGIN = 6
    GAP = 4
    CAPTION_LINES = 2

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("stageStrip")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(True)
        self.setMinimumHeight(118)
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Expanding, QtWidgets.QSizePolicy.Policy.Fixed)
        self._blocks: list[StripBlock] = []
        self._current = 0
        self._rects: list[QtCore.QRectF] = []
        self._slots: list[float] = []
        self._hovered = -1
        self._font = QtGui.QFont(self.font())
        self._font.setPointSizeF(max(7.0, self._font.pointSizeF() * 0.8))

    # ------------------------------------------------------------------ API

    @property
    def blocks(self) -> list[StripBlock]:
        return list(self._blocks)

    @property
    def current(self) -> int:
        return self._current

    def set_blocks(self, blocks: list[StripBlock]) -> None:
        self._blocks = list(blocks)
        self._current = min(self._current, max(0, len(self._blocks) - 1))
        self._layout_blocks()
        self.update()

    def set_current(self, index: int) -> None:
        if index != self._current:
            self._current = index
            self.update()

    def block_rect(self, index: int) -> QtCore.QRectF:
        """Where block ``index`` is drawn, in widget pixels (for tests and tooltips)."""
        if len(self._rects) != len(self._blocks):
            self._layout_blocks()
        return QtCore.QRectF(self._rects[index])

    def sizeHint(self) -> QtCore.QSize:
        return QtCore.QSize(max(400, 46 * len(self._blocks)), 118)

    # ------------------------------------------------------------------ geometry

    def _block_width(self, block: StripBlock) -> float:
        # Channels on a log scale: 3 → narrow, 64 → wider, 512 → widest; vectors are thin bars.
        if not block.is_maps:
            return 10.0
        return 10.0 + 6.0 * math.log2(max(1, block.channels))

    def _block_height(self, block: StripBlock, tallest: float, biggest_spatial: int, most_values: int) -> float:
        # Spatial size on a square-root scale so 7×7 stays visible next to 224×224.
        if block.is_maps:
            share = math.sqrt(block.spatial / max(1, biggest_spatial))
        else:
            share = math.log10(max(10, block.values)) / math.log10(max(10, most_values))
            share *= 0.9
        return max(4.0, tallest * share)

    def _layout_blocks(self) -> None:
        self._rects, self._slots = [], []
        if not self._blocks:
            return
        caption_h = QtGui.QFontMetricsF(self._font).height() * self.CAPTION_LINES + 2
        tallest = max(10.0, self.height() - 2 * self.MARGIN - caption_h)
        raw = [self._block_width(b) for b in self._blocks]
        available = self.width() - 2 * self.MARGIN - self.GAP * (len(self._blocks) - 1)
        # Every block gets at least a slot wide enough for its caption; the rest is shared by weight.
        metrics = QtGui.QFontMetricsF(self._font)
        captions = [max(metrics.horizontalAdvance(line) for line in b.caption()) + 4 for b in self._blocks]
        # Capped, so a short model (LeNet: 10 stages) keeps proportions instead of filling the width.
        scale = min(1.6, max(0.1, (available - sum(captions) * 0.5) / max(1.0, sum(raw))))
        widths = [max(4.0, w * scale) for w in raw]
        slots = [max(c, w) for c, w in zip(captions, widths)]
        if sum(slots) > available and sum(slots) > 0:
            shrink = available / sum(slots)
            slots = [s * shrink for s in slots]
            widths = [min(w, s) for w, s in zip(widths, slots)]
        biggest = max((b.spatial for b in self._blocks if b.is_maps), default=1)
        most = max((b.values for b in self._blocks if not b.is_maps), default=10)
        x = float(self.MARGIN)
        base = self.MARGIN + tallest
        for block, width, slot in zip(self._blocks, widths, slots):
            height = self._block_height(block, tallest, biggest, most)
            left = x + (slot - width) / 2
            self._rects.append(QtCore.QRectF(left, base - height, width, height))
            x += slot + self.GAP
        self._slots = slots

    def _index_at(self, pos: QtCore.QPointF) -> int:
        # The whole column (block, space above it and caption) is the click target.
        for i, rect in enumerate(self._rects):
            slot_left = rect.center().x() - max(rect.width(), self._slots[i]) / 2
            if slot_left <= pos.x() <= slot_left + max(rect.width(), self._slots[i]):
                return i
        return -1

    # ------------------------------------------------------------------ events

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._layout_blocks()

    def paintEvent(self, event) -> None:
        if len(self._rects) != len(self._blocks):
            self._layout_blocks()
        painter = QtGui.QPainter(self)
        painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing, True)
        painter.setFont(self._font)
        metrics = QtGui.QFontMetricsF(self._font)
        palette = self.palette()
        text_color = palette.color(QtGui.QPalette.ColorRole.WindowText)
        for i, (block, rect) in enumerate(zip(self._blocks, self._rects)):
            color = QtGui.QColor(KIND_COLORS.get(block.kind, KIND_COLORS["opaque"]))
            if i != self._current:
                color.setAlpha(150 if i != self._hovered else 210)
            if i == self._current:
                slot = QtCore.QRectF(rect.center().x() - self._slots[i] / 2, self.MARGIN / 2,
                                     self._slots[i], self.height() - self.MARGIN)
                highlight = QtGui.QColor(SELECTED)
                highlight.setAlpha(60)
                painter.fillRect(slot, highlight)
            painter.setPen(QtGui.QPen(QtGui.QColor(SELECTED) if i == self._current else color.darker(130),
                                      2.5 if i == self._current else 1.0))
            painter.setBrush(color)
            painter.drawRect(rect)
            first, second = block.caption()
            painter.setPen(text_color)
            y = rect.bottom() + metrics.ascent() + 2
            for line in (first, second):
                if line:
                    text = metrics.elidedText(line, Qt.TextElideMode.ElideRight, self._slots[i] + self.GAP)
                    painter.drawText(QtCore.QPointF(rect.center().x() - metrics.horizontalAdvance(text) / 2, y),
                                     text)
                y += metrics.height()
        if self.hasFocus() and self._rects:
            painter.setPen(QtGui.QPen(palette.color(QtGui.QPalette.ColorRole.Highlight), 1, Qt.PenStyle.DotLine))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRect(QtCore.QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5))
        painter.end()

    def mousePressEvent(self, event: QtGui.QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            index = self._index_at(event.position())
            if index >= 0:
                self.stage_selected.emit(index)
                event.accept()
                return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QtGui.QMouseEvent) -> None:
        index = self._index_at(event.position())
        if index != self._hovered:
            self._hovered = index
            self.setToolTip(self._blocks[index].tooltip if index >= 0 else "")
            self.update()
        super().mouseMoveEvent(event)

    def leaveEvent(self, event) -> None:
        self._hovered = -1
        self.update()
        super().leaveEvent(event)

    def keyPressEvent(self, event: QtGui.QKeyEvent) -> None:
        if not self._blocks:
            super().keyPressEvent(event)
            return
        last = len(self._blocks) - 1
        target = {
            Qt.Key.Key_Left: self._current - 1,
            Qt.Key.Key_Right: self._current + 1,
            Qt.Key.Key_Home: 0,
            Qt.Key.Key_End: last,
        }.get(event.key())
        if target is None:
            super().keyPressEvent(event)
            return
        event.accept()
        if 0 <= target <= last and target != self._current:
            self.stage_selected.emit(target)

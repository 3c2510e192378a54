"""A grid of numeric cells for a kernel, a weight matrix or a bias: type (the value goes out on
every keystroke that reads as a number, so the feature maps follow while typing), roll the mouse
wheel over a cell, move with the arrow keys, paste a block of numbers (Ctrl+V) and copy the
selection (Ctrl+C). Cells are tinted by value, blue for negative, white for 0, red for positive.

The grid only reports edits (``cell_edited``, ``block_pasted``); whoever owns it writes them to
the document and sets the values back with ``set_values``."""

from __future__ import annotations

import math

import numpy as np
import torch
from PySide6.QtCore import QEvent, QModelIndex, QRect, Qt, Signal
from PySide6.QtGui import QColor, QGuiApplication, QKeySequence, QPen
from PySide6.QtWidgets import (QAbstractItemDelegate, QAbstractItemView, QHeaderView, QLineEdit, QStyle, QStyledItemDelegate,
                               QStyleOptionViewItem, QTableWidget, QTableWidgetItem, QWidget)

from explorer.core.kernels import KernelError, format_kernel_text, parse_kernel_text
from explorer.ui.qt_signals import qt_signals_blocked

WHEEL_STEP = 0.1     # per wheel notch; Shift: x10, Ctrl: x0.1


def format_cell(v: float) -> str:
    """Short and exact where it can be: '-2', '0.5', '0.1111', '1.2e-05'."""
    if v == 0:
        return "0"
    return f"{v:.4g}"


def diverging_color(t: float, strength: float = 0.6) -> QColor:
    """-1 → blue, 0 → white, +1 → red; ``strength`` < 1 keeps black text readable on it."""
    t = max(-1.0, min(1.0, t)) if math.isfinite(t) else 0.0
    a = abs(t) * strength
    if t >= 0:
        return QColor.fromRgbF(1.0, 1.0 - a, 1.0 - a)
    return QColor.fromRgbF(1.0 - a, 1.0 - a, 1.0)


FLOAT32_MAX = float(torch.finfo(torch.float32).max)


def parse_number(text: str) -> float | None:
    """The number a cell holds, or None. Weights are float32: 1e39 would become inf there, so it is
    no number a cell takes (``cell_problem`` says why)."""
    try:
        v = float(text.strip().replace("−", "-"))
    except ValueError:
        return None
    return v if math.isfinite(v) and abs(v) <= FLOAT32_MAX else None


def cell_problem(text: str) -> str:
    """The sentence for text ``parse_number`` does not take."""
    try:
        v = float(text.strip().replace("−", "-"))
    except ValueError:
        return f"'{text}' is not a number."
    if math.isnan(v):
        return f"'{text}' is not a number."
    return f"{text.strip()} is too large for a weight (float32 holds at most ±3.4e38)."


class _LiveDelegate(QStyledItemDelegate):
    """A plain line editor that tells the grid about every keystroke."""

    def __init__(self, grid: "NumberGrid"):
        super().__init__(grid)
        self.grid = grid

    def createEditor(self, parent: QWidget, option, index: QModelIndex) -> QWidget:
        editor = QLineEdit(parent)
        editor.setAlignment(Qt.AlignmentFlag.AlignCenter)
        editor.setObjectName("kernelCellEditor")
        editor.textEdited.connect(lambda text, r=index.row(), c=index.column(): self.grid._typed(r, c, text))
        editor.setProperty("cell", (index.row(), index.column()))
        return editor

    def eventFilter(self, editor, event) -> bool:
        # Up and Down finish the cell and move, as in a spreadsheet (Left and Right stay in the text).
        if event.type() == QEvent.Type.KeyPress and event.key() in (Qt.Key.Key_Up, Qt.Key.Key_Down):
            row, col = editor.property("cell")
            self.commitData.emit(editor)
            self.closeEditor.emit(editor, QAbstractItemDelegate.EndEditHint.NoHint)
            step = -1 if event.key() == Qt.Key.Key_Up else 1
            self.grid.setCurrentCell(min(max(row + step, 0), self.grid.rowCount() - 1), col)
            return True
        return super().eventFilter(editor, event)

    def paint(self, painter, option, index) -> None:
        # A selected cell keeps its value tint (the pattern stays readable) and gets a dark frame
        # instead of the highlight fill.
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        plain = QStyleOptionViewItem(option)
        plain.state &= ~QStyle.StateFlag.State_Selected
        super().paint(painter, plain, index)
        if selected:
            painter.save()
            painter.setPen(QPen(QColor(20, 20, 20), 2))
            painter.drawRect(option.rect.adjusted(1, 1, -1, -1))
            painter.restore()


class NumberGrid(QTableWidget):
    cell_edited = Signal(int, int, float)       # row, column, new value
    block_pasted = Signal(int, int, object)     # top row, left column, float tensor [rows, cols]
    problem = Signal(str)                       # a sentence: what the user typed or pasted is not usable

    def __init__(self, parent: QWidget | None = None, cell_width: int = 64):
        super().__init__(parent)
        self._values = np.zeros((0, 0))
        self._peak = 1.0
        self.cell_width = cell_width
        self.setItemDelegate(_LiveDelegate(self))
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.horizontalHeader().setMinimumSectionSize(24)
        self.verticalHeader().setMinimumSectionSize(20)
        self.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked
                             | QAbstractItemView.EditTrigger.EditKeyPressed
                             | QAbstractItemView.EditTrigger.AnyKeyPressed)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ContiguousSelection)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setToolTip("Type a number (the maps follow as you type), roll the mouse wheel over a cell "
                        "(Shift: ×10 steps, Ctrl: ÷10, Alt: scroll), move with the arrow keys or Tab, "
                        "Delete sets the selected cells to 0, Ctrl+V pastes a block of numbers at the "
                        "selected cell, Ctrl+C copies.")
        self.itemChanged.connect(self._item_changed)

    # ------------------------------------------------------------ showing values
    @property
    def values(self) -> np.ndarray:
        return self._values

    def set_values(self, values, peak: float | None = None, row_labels: list[str] | None = None,
                   col_labels: list[str] | None = None) -> None:
        """Shows a 2-D array. Items are reused and only changed cells are touched, so a 64x64
        matrix refreshes quickly on every keystroke; the cell being edited is left alone."""
        values = np.asarray(values, dtype=np.float64)
        if values.ndim == 1:
            values = values[:, None]
        rows, cols = values.shape
        self._peak = float(peak) if peak else (float(np.abs(values).max()) if values.size else 1.0) or 1.0
        editing = self.currentIndex() if self.state() == QAbstractItemView.State.EditingState else None
        with qt_signals_blocked(self):
            reshaped = (rows, cols) != (self.rowCount(), self.columnCount())
            if reshaped:
                self.setRowCount(rows)
                self.setColumnCount(cols)
            for r in range(rows):
                for c in range(cols):
                    v = float(values[r, c])
                    item = self.item(r, c)
                    if item is None:
                        item = QTableWidgetItem()
                        item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                        item.setForeground(QColor("black"))
                        self.setItem(r, c, item)
                    elif editing is not None and editing.row() == r and editing.column() == c:
                        continue
                    text = format_cell(v)
                    if item.text() != text:
                        item.setText(text)
                    item.setBackground(diverging_color(v / self._peak))
            self._values = values.copy()
            self.setHorizontalHeaderLabels(col_labels or [str(c) for c in range(cols)])
            self.setVerticalHeaderLabels(row_labels or [str(r) for r in range(rows)])
            if reshaped:
                self._size_cells()

    def _size_cells(self) -> None:
        for c in range(self.columnCount()):
            self.setColumnWidth(c, self.cell_width)
        for r in range(self.rowCount()):
            self.setRowHeight(r, 26)

    def size_for(self, max_rows: int = 15, max_cols: int = 15) -> tuple[int, int]:
        """Pixels that show up to max_rows x max_cols cells without scrolling."""
        w = self.verticalHeader().width() + 4 + self.cell_width * min(self.columnCount(), max_cols)
        h = self.horizontalHeader().height() + 4 + 26 * min(self.rowCount(), max_rows)
        if self.columnCount() > max_cols:
            h += self.horizontalScrollBar().sizeHint().height()
        if self.rowCount() > max_rows:
            w += self.verticalScrollBar().sizeHint().width()
        return w, h

    # ------------------------------------------------------------ edits
    def _typed(self, row: int, col: int, text: str) -> None:
        v = parse_number(text)
        if (v is not None and row < self._values.shape[0] and col < self._values.shape[1]
                and v != self._values[row, col]):
            self.cell_edited.emit(row, col, v)

    def closeEditor(self, editor, hint) -> None:
        # Values typed live went out already and came back while the cell was left alone; show them.
        index = self.currentIndex()
        super().closeEditor(editor, hint)
        r, c = index.row(), index.column()
        if 0 <= r < self._values.shape[0] and 0 <= c < self._values.shape[1] and self.item(r, c) is not None:
            v = float(self._values[r, c])
            with qt_signals_blocked(self):
                self.item(r, c).setText(format_cell(v))
                self.item(r, c).setBackground(diverging_color(v / self._peak))

    def _item_changed(self, item: QTableWidgetItem) -> None:
        r, c = item.row(), item.column()
        if not (r < self._values.shape[0] and c < self._values.shape[1]):
            return
        v = parse_number(item.text())
        if v is None:
            text = item.text()
            with qt_signals_blocked(self):
                item.setText(format_cell(float(self._values[r, c])))
            self.problem.emit(cell_problem(text))
            return
        if v != self._values[r, c]:
            self.cell_edited.emit(r, c, v)

    def step_cell(self, row: int, col: int, notches: float, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
        """What the wheel does: add notches x the step to one cell."""
        step = WHEEL_STEP
        if modifiers & Qt.KeyboardModifier.ShiftModifier:
            step *= 10
        if modifiers & Qt.KeyboardModifier.ControlModifier:
            step /= 10
        v = round(float(self._values[row, col]) + notches * step, 6)
        self.cell_edited.emit(row, col, v)

    def wheelEvent(self, event) -> None:
        index = self.indexAt(event.position().toPoint())
        if event.modifiers() & Qt.KeyboardModifier.AltModifier or not index.isValid():
            super().wheelEvent(event)
            return
        delta = event.angleDelta().y() or event.angleDelta().x()
        if delta == 0:
            return
        if self.state() == QAbstractItemView.State.EditingState:
            super().wheelEvent(event)      # the open editor keeps what is being typed
            return
        self.setCurrentCell(index.row(), index.column())
        self.step_cell(index.row(), index.column(), delta / 120.0, event.modifiers())
        event.accept()

    def event(self, event) -> bool:
        # Ctrl+V and Ctrl+C are window shortcuts too ('Paste image'): in the grid they are its own.
        if event.type() == QEvent.Type.ShortcutOverride and (
                event.matches(QKeySequence.StandardKey.Paste) or event.matches(QKeySequence.StandardKey.Copy)):
            event.accept()
            return True
        return super().event(event)

    def keyPressEvent(self, event) -> None:
        if event.matches(QKeySequence.StandardKey.Paste):
            self.paste_text(QGuiApplication.clipboard().text())
            return
        if event.matches(QKeySequence.StandardKey.Copy):
            QGuiApplication.clipboard().setText(self.selection_text())
            return
        if event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace) and self.selectedRanges():
            r = self.selectedRanges()[0]         # the selected cells become 0, one edit
            block = torch.zeros(r.rowCount(), r.columnCount())
            self.block_pasted.emit(r.topRow(), r.leftColumn(), block)
            return
        super().keyPressEvent(event)

    def paste_text(self, text: str) -> None:
        """A block of numbers at the current cell; a block the size of the grid replaces it all."""
        try:
            block = parse_kernel_text(text)
        except KernelError as e:
            self.problem.emit(str(e))
            return
        while block.dim() > 2 and block.shape[0] == 1:
            block = block[0]
        if block.dim() == 1:
            block = block.reshape(1, -1) if self.columnCount() > 1 else block.reshape(-1, 1)
        if block.dim() != 2:
            self.problem.emit(f"The pasted text holds a {block.dim()}-dimensional block; paste rows of numbers.")
            return
        rows, cols = self.rowCount(), self.columnCount()
        bh, bw = block.shape
        if (bh, bw) == (rows, cols):
            top, left = 0, 0
        else:
            top, left = max(self.currentRow(), 0), max(self.currentColumn(), 0)
        if top + bh > rows or left + bw > cols:
            self.problem.emit(f"The pasted block is {bh}×{bw} but from row {top}, column {left} only "
                              f"{rows - top}×{cols - left} cells remain; select its top-left cell first.")
            return
        self.block_pasted.emit(top, left, block)

    def selection_text(self) -> str:
        ranges = self.selectedRanges()
        if not ranges:
            return format_kernel_text(torch.as_tensor(self._values))
        r = ranges[0]
        block = self._values[r.topRow():r.bottomRow() + 1, r.leftColumn():r.rightColumn() + 1]
        return format_kernel_text(torch.as_tensor(block))

    def cell_rect(self, row: int, col: int) -> QRect:
        return self.visualRect(self.model().index(row, col))

"""The shape table: every layer's input and output shape, parameter count and the output-size
formula with the numbers filled in, plus the total parameter count.

The rows come from ``explorer.core.shapes.infer_shapes`` (meta tensors, nothing computed), so the
table can be refreshed on every keystroke: ``set_rows`` turns the rows into display strings once,
and the model only looks them up. Column widths and row heights are measured here with font
metrics instead of asking Qt to size every cell."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from PySide6 import QtCore, QtGui, QtWidgets

from explorer.core.shapes import ShapeRow, infer_shapes, total_params
from explorer.core.stack import Stack
from explorer.ui.fonts import fixed_font

ERROR_COLOR = QtGui.QColor("#e53935")
ERROR_BACKGROUND = QtGui.QColor(229, 57, 53, 38)
DASH = "—"

COL_INDEX, COL_NAME, COL_TYPE, COL_INPUT, COL_OUTPUT, COL_PARAMS, COL_FORMULA = range(7)
HEADERS = ("#", "Name", "Type", "Input shape", "Output shape", "Params", "Output size (H, W)")
MONO_COLUMNS = (COL_INPUT, COL_OUTPUT, COL_PARAMS, COL_FORMULA)
RIGHT_COLUMNS = (COL_INDEX, COL_PARAMS)
PADDING = 12           # horizontal space around a cell's text
MAX_AUTO_WIDTH = 360   # name/type columns never grow wider than this on their own


def shape_text(shape: Sequence[int] | None) -> str:
    if shape is None:
        return DASH
    return "[" + ", ".join(str(int(s)) for s in shape) + "]"


def params_text(n: int | None) -> str:
    return DASH if n is None else f"{int(n):,}"


def monospace_font() -> QtGui.QFont:
    return fixed_font()


@dataclass
class _Entry:
    """One table row as text; ``state`` is 'ok', 'disabled', 'error' or 'skipped' (after a failure)."""
    index: int
    state: str
    cells: list[str]
    tooltip: str
    error: str | None = None


def _entries(rows: Sequence[ShapeRow], layer_count: int | None, layers: Sequence | None,
             problems: dict[int, str] | None = None) -> list[_Entry]:
    out = []
    for r in rows:
        formula = "\n".join(r.formula)
        # The window's one list of layer problems (what the layer row shows) wins over this row's own.
        error = (problems or {}).get(r.index) or r.error
        if error:
            state = "error"
            output = error
            tip = error
        elif not r.enabled:
            state = "disabled"
            output = shape_text(r.output_shape)
            tip = f"{r.name} is disabled: its input passes through unchanged."
            formula = "disabled: the input passes through"
        else:
            state = "ok"
            output = shape_text(r.output_shape)
            tip = f"{r.name} ({r.type}): {shape_text(r.input_shape)} → {shape_text(r.output_shape)}"
            if formula:
                tip += "\n" + formula
        cells = [str(r.index), r.name, r.type, shape_text(r.input_shape), output,
                 params_text(r.params if r.enabled else None), formula]
        out.append(_Entry(r.index, state, cells, tip, error))
    count = layer_count if layer_count is not None else (len(layers) if layers is not None else len(rows))
    for i in range(len(out), count):
        spec = layers[i] if layers is not None and i < len(layers) else None
        name = getattr(spec, "name", DASH) if spec is not None else DASH
        type_name = getattr(spec, "type", DASH) if spec is not None else DASH
        cells = [str(i), name, type_name, DASH, DASH, DASH, "not run"]
        out.append(_Entry(i, "skipped", cells, "Not run: an earlier layer failed, so this one has no input."))
    return out


class ShapesModel(QtCore.QAbstractTableModel):
    """Read-only table model over precomputed display strings."""

    def __init__(self, parent: QtCore.QObject | None = None):
        super().__init__(parent)
        self.entries: list[_Entry] = []
        self.mono = monospace_font()
        self.italic = QtGui.QFont()
        self.italic.setItalic(True)
        self.mono_italic = QtGui.QFont(self.mono)
        self.mono_italic.setItalic(True)
        self.gray = QtGui.QColor(128, 128, 128)

    def set_entries(self, entries: list[_Entry]) -> None:
        self.beginResetModel()
        self.entries = entries
        self.endResetModel()

    def rowCount(self, parent=QtCore.QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.entries)

    def columnCount(self, parent=QtCore.QModelIndex()) -> int:
        return 0 if parent.isValid() else len(HEADERS)

    def headerData(self, section, orientation, role=QtCore.Qt.ItemDataRole.DisplayRole):
        if orientation == QtCore.Qt.Orientation.Horizontal:
            if role == QtCore.Qt.ItemDataRole.DisplayRole:
                return HEADERS[section]
            if role == QtCore.Qt.ItemDataRole.ToolTipRole and section == COL_FORMULA:
                return "How torch computes the output height and width, with this layer's numbers."
            if role == QtCore.Qt.ItemDataRole.TextAlignmentRole:
                align = QtCore.Qt.AlignmentFlag.AlignRight if section in RIGHT_COLUMNS else QtCore.Qt.AlignmentFlag.AlignLeft
                return int(align | QtCore.Qt.AlignmentFlag.AlignVCenter)
        return None

    def flags(self, index):
        return QtCore.Qt.ItemFlag.ItemIsEnabled | QtCore.Qt.ItemFlag.ItemIsSelectable

    def data(self, index, role=QtCore.Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        e = self.entries[index.row()]
        col = index.column()
        R = QtCore.Qt.ItemDataRole
        if role == R.DisplayRole:
            return e.cells[col]
        if role == R.ToolTipRole:
            return e.tooltip
        if role == R.ForegroundRole:
            if e.state == "error" and col in (COL_OUTPUT, COL_NAME):
                return ERROR_COLOR
            if e.state in ("disabled", "skipped"):
                return self.gray
            return None
        if role == R.BackgroundRole:
            return ERROR_BACKGROUND if e.state == "error" else None
        if role == R.FontRole:
            italic = e.state in ("disabled", "skipped")
            if col in MONO_COLUMNS:
                return self.mono_italic if italic else self.mono
            return self.italic if italic else None
        if role == R.TextAlignmentRole:
            if col in RIGHT_COLUMNS:
                return int(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)
            return int(QtCore.Qt.AlignmentFlag.AlignLeft | QtCore.Qt.AlignmentFlag.AlignVCenter)
        if role == R.UserRole:
            return e.state
        return None


class ShapesView(QtWidgets.QWidget):
    """Table of every layer's shapes, parameters and output-size formula, with the total below.

    ``layer_clicked(index)`` is emitted when the user selects a row (not by ``select_layer``)."""

    layer_clicked = QtCore.Signal(int)

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("shapesView")
        self._rows: list[ShapeRow] = []
        self._count: int | None = None
        self._layers: Sequence | None = None
        self._problems: dict[int, str] = {}
        self._formula_width = 0
        self._selected: int | None = None
        self._syncing = False

        self.model = ShapesModel(self)
        self.table = _Table(self)
        self.table.resized.connect(self._on_table_resized)
        self.table.setItemDelegate(_Delegate(self))
        self.table.setObjectName("shapesTable")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(True)
        self.table.setTextElideMode(QtCore.Qt.TextElideMode.ElideRight)
        self.table.setHorizontalScrollMode(QtWidgets.QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.table.setVerticalScrollMode(QtWidgets.QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.Fixed)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(False)   # the last column fills the rest but never shrinks below its text
        header.setHighlightSections(False)
        header.sectionResized.connect(self._on_section_resized)
        self.table.selectionModel().selectionChanged.connect(self._on_selection_changed)

        self.total_label = QtWidgets.QLabel(self)
        self.total_label.setObjectName("totalParamsLabel")
        self.total_label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status_label = QtWidgets.QLabel(self)
        self.status_label.setObjectName("shapesStatusLabel")
        self.status_label.setWordWrap(True)
        self.status_label.setTextFormat(QtCore.Qt.TextFormat.RichText)   # names in messages are escaped

        bottom = QtWidgets.QHBoxLayout()
        bottom.setContentsMargins(4, 2, 4, 2)
        bottom.addWidget(self.total_label)
        bottom.addSpacing(16)
        bottom.addWidget(self.status_label, 1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.table, 1)
        layout.addLayout(bottom)
        self._set_totals([], 0)

    # ------------------------------------------------------------ filling
    def set_rows(self, rows: list[ShapeRow], layer_count: int | None = None,
                 layers: Sequence | None = None, problems: dict[int, str] | None = None) -> None:
        """Shows ``rows`` (from ``infer_shapes``). ``layer_count`` (or ``layers``, anything with
        ``.name`` and ``.type`` such as the stack's LayerSpecs) adds greyed rows for the layers after
        a failure, which have no shapes. ``problems`` (layer index → reason; see ``set_problems``)
        replaces the rows' own errors where given."""
        self._rows = list(rows)
        self._count, self._layers = layer_count, layers
        if problems is not None:
            self._problems = dict(problems)
        entries = _entries(rows, layer_count, layers, self._problems)
        self.model.set_entries(entries)
        self.table.clearSpans()
        for row, e in enumerate(entries):
            if e.state == "error":   # the error reads right after the input shape, over the empty cells
                self.table.setSpan(row, COL_OUTPUT, 1, len(HEADERS) - COL_OUTPUT)
        self._fit_columns()
        self._fit_rows()
        self._set_totals(entries, total_params(rows), partial=any(r.error for r in rows))
        if self._selected is not None and self._selected < len(entries):
            self.select_layer(self._selected)
        failed = next((row for row, e in enumerate(entries) if e.state == "error"), None)
        if failed is not None:     # the reason must be in view, even in a long stack
            self.table.scrollTo(self.model.index(failed, 0))

    def set_problems(self, problems: dict[int, str]) -> None:
        """The reason each layer cannot run, from the one place the window keeps them (the layer
        list's model: shape errors, then run errors such as out of memory), so this table and the
        layer rows never give two different reasons for one layer."""
        if dict(problems) != self._problems:
            self._problems = dict(problems)
            self.set_rows(self._rows, self._count, self._layers)

    def set_stack(self, stack: Stack, input_shape: Sequence[int]) -> None:
        """Convenience: infers the shapes and shows them with every layer of the stack."""
        self.set_rows(infer_shapes(stack, tuple(input_shape)), layers=stack.layers)

    def clear(self) -> None:
        self.set_rows([])

    @property
    def rows(self) -> list[ShapeRow]:
        return list(self._rows)

    def _set_totals(self, entries: list[_Entry], total: int, partial: bool = False) -> None:
        failed = next((e for e in entries if e.state == "error"), None)
        text = f"Total parameters: {total:,}"
        if failed is not None and partial:      # shapes stop at the failure: later layers are not counted
            text += f" (layers 0–{len(self._rows) - 1} only)"
        self.total_label.setText(text)
        if failed is not None:
            self.status_label.setText(f"<span style='color:{ERROR_COLOR.name()}'>✗ layer {failed.index}: "
                                      f"{_html(failed.error or '')}</span>")
        elif self._rows:
            last = self._rows[-1]
            self.status_label.setText(f"Output: <tt>{shape_text(last.output_shape)}</tt>")
        else:
            self.status_label.setText("")
        self.status_label.setToolTip(failed.error if failed is not None else "")

    # ------------------------------------------------------------ sizes
    def _text_width(self, font: QtGui.QFont | None, texts) -> int:
        fm = QtGui.QFontMetrics(font if font is not None else self.table.font())
        best = 0
        for t in texts:
            for line in t.split("\n"):
                best = max(best, fm.horizontalAdvance(line))
        return best

    def _fit_columns(self) -> None:
        header = self.table.horizontalHeader()
        header_fm = QtGui.QFontMetrics(header.font())
        entries = self.model.entries
        for col in range(len(HEADERS)):
            if col == COL_FORMULA:
                continue   # the last column stretches; it keeps at least the width measured below
            texts = [e.cells[col] for e in entries if not (e.state == "error" and col >= COL_OUTPUT)]
            font = self.model.mono if col in MONO_COLUMNS else self.table.font()
            width = self._text_width(font, texts) + PADDING
            width = max(width, header_fm.horizontalAdvance(HEADERS[col]) + PADDING + 8)
            if col in (COL_NAME, COL_TYPE):
                width = min(width, MAX_AUTO_WIDTH)
            header.resizeSection(col, width)
        formulas = [e.cells[COL_FORMULA] for e in entries if e.state != "error"]
        self._formula_width = max(self._text_width(self.model.mono, formulas) + PADDING,
                                  header_fm.horizontalAdvance(HEADERS[COL_FORMULA]) + PADDING + 8)
        self._fit_last_column()

    def _fit_last_column(self) -> None:
        header = self.table.horizontalHeader()
        used = sum(header.sectionSize(c) for c in range(COL_FORMULA))
        width = max(self._formula_width, self.table.viewport().width() - used)
        if header.sectionSize(COL_FORMULA) != width:
            header.resizeSection(COL_FORMULA, width)

    def _fit_rows(self) -> None:
        mono = QtGui.QFontMetrics(self.model.mono)
        plain = QtGui.QFontMetrics(self.table.font())
        line = max(mono.lineSpacing(), plain.lineSpacing())
        base = line + 8
        vheader = self.table.verticalHeader()
        vheader.setDefaultSectionSize(base)
        wrap = self.error_width() - PADDING
        for row, e in enumerate(self.model.entries):
            if e.state == "error":
                rect = mono.boundingRect(QtCore.QRect(0, 0, wrap, 100000),
                                         int(QtCore.Qt.TextFlag.TextWordWrap), e.error or "")
                height = rect.height() + 8
            else:
                lines = max(1, e.cells[COL_FORMULA].count("\n") + 1 if e.cells[COL_FORMULA] else 1)
                height = lines * line + 8
            if vheader.sectionSize(row) != height:
                vheader.resizeSection(row, max(base, height))

    def error_width(self) -> int:
        """Width an error message wraps to: its span (output shape to the last column), but no
        wider than what the table shows without scrolling, so the whole message can be read."""
        header = self.table.horizontalHeader()
        span = sum(header.sectionSize(c) for c in range(COL_OUTPUT, len(HEADERS)))
        visible = self.table.viewport().width() - header.sectionPosition(COL_OUTPUT)
        return max(160, min(span, visible))

    def _on_table_resized(self) -> None:
        self._fit_last_column()
        if any(e.state == "error" for e in self.model.entries):
            self._fit_rows()

    def _on_section_resized(self, logical: int, old: int, new: int) -> None:
        if logical != COL_FORMULA:
            self._fit_last_column()      # a column the user dragged: the last one takes up the slack
        if any(e.state == "error" for e in self.model.entries):
            self._fit_rows()             # wrapped error text needs another height

    # ------------------------------------------------------------ selection
    def select_layer(self, index: int | None) -> None:
        """Selects the row of layer ``index`` (None clears) without emitting ``layer_clicked``."""
        self._selected = index
        self._syncing = True
        try:
            sel = self.table.selectionModel()
            if index is None or not 0 <= index < self.model.rowCount():
                sel.clearSelection()
                sel.setCurrentIndex(QtCore.QModelIndex(), QtCore.QItemSelectionModel.SelectionFlag.NoUpdate)
                return
            model_index = self.model.index(index, 0)
            sel.setCurrentIndex(model_index, QtCore.QItemSelectionModel.SelectionFlag.ClearAndSelect
                                | QtCore.QItemSelectionModel.SelectionFlag.Rows)
            self.table.scrollTo(model_index)
        finally:
            self._syncing = False

    def selected_layer(self) -> int | None:
        rows = self.table.selectionModel().selectedRows()
        return rows[0].row() if rows else None

    def _on_selection_changed(self, *_) -> None:
        if self._syncing:
            return
        row = self.selected_layer()
        if row is None:
            return
        self._selected = row
        self.layer_clicked.emit(row)


class _Delegate(QtWidgets.QStyledItemDelegate):
    """Paints an error message wrapped to ``ShapesView.error_width`` instead of its whole span."""

    def __init__(self, view: ShapesView):
        super().__init__(view.table)
        self.view = view

    def paint(self, painter, option, index) -> None:
        if index.column() == COL_OUTPUT and index.data(QtCore.Qt.ItemDataRole.UserRole) == "error":
            option = QtWidgets.QStyleOptionViewItem(option)
            option.rect.setWidth(min(option.rect.width(), self.view.error_width()))
        super().paint(painter, option, index)


class _Table(QtWidgets.QTableView):
    """A table view that says when its size changes (the last column is fitted to it)."""

    resized = QtCore.Signal()

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:
        super().resizeEvent(event)
        self.resized.emit()


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

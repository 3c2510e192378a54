"""The side panel list of layers: one row per layer with its enabled box, what it does in a few
characters, its output shape, and a red mark on the layer that cannot run.

The panel renders the document and the latest shapes; every edit goes through a document method.
A refused edit (``ValueError`` from the document) becomes ``message`` for the status bar."""

from __future__ import annotations

from PySide6.QtCore import (QAbstractListModel, QByteArray, QItemSelectionModel, QMimeData, QModelIndex, QRect,
                            QSize, Qt, Signal)
from PySide6.QtGui import QAction, QColor, QFont, QFontMetrics, QKeyEvent, QPalette
from PySide6.QtWidgets import (QAbstractItemView, QApplication, QHBoxLayout, QListView, QMenu, QSizePolicy,
                               QStyle, QStyledItemDelegate, QStyleOptionViewItem, QToolButton, QVBoxLayout,
                               QWidget)

from explorer.core.layers import CATEGORIES, LAYER_TYPES, describe, types_by_category
from explorer.core.shapes import ShapeRow
from explorer.ui.document import StackDocument
from explorer.ui.session_state import SessionState

ERROR_COLOR = QColor("#d0312d")
MIME_TYPE = "application/x-feature-map-explorer-layer-row"

# Custom roles the delegate (and tests) read.
NameRole = Qt.ItemDataRole.UserRole + 1
StatusRole = Qt.ItemDataRole.UserRole + 2      # "ok", "disabled", "error", "after_error", "unknown"
ErrorRole = Qt.ItemDataRole.UserRole + 3       # the reason a layer cannot run, or None


def format_shape(shape) -> str:
    return "[" + ", ".join(str(int(s)) for s in shape) + "]"


class LayerListModel(QAbstractListModel):
    """Rows = ``document.stack.layers``; reads the document, writes only through its methods."""

    message = Signal(str)

    def __init__(self, document: StackDocument, parent=None):
        super().__init__(parent)
        self.document = document
        self._count = len(document.stack.layers)
        self._shapes: dict[int, ShapeRow] = {}
        self._run_errors: dict[str, str] = {}     # by layer name, so inserting a layer does not move them
        self._shown: list[tuple] = []             # what each row showed at the last refresh
        self._first_error: tuple = (None, None, None, None)   # (stack, shapes, run errors) -> first_error

    # ------------------------------------------------------------ inputs
    def refresh(self) -> None:
        """Tells the view about the rows whose text, mark or check box changed. Every edit and every
        run calls this; repainting all rows each time (a weight edit changes none) costs more than
        the run of a small layer."""
        n = len(self.document.stack.layers)
        if n != self._count:
            self.beginResetModel()
            self._count = n
            self.endResetModel()
            self._shown = [self._row_snapshot(row) for row in range(n)]
            return
        shown = [self._row_snapshot(row) for row in range(n)]
        changed = [row for row in range(n) if row >= len(self._shown) or shown[row] != self._shown[row]]
        self._shown = shown
        if changed:
            self.dataChanged.emit(self.index(changed[0]), self.index(changed[-1]))

    def _row_snapshot(self, row: int) -> tuple:
        spec = self.document.stack.layers[row]
        return (spec.name, spec.enabled, self.row_text(row), self.status(row), self.error(row), self.row_tooltip(row))

    def set_shapes(self, rows: list[ShapeRow]) -> None:
        self._shapes = {r.index: r for r in rows}
        self.refresh()

    def set_run_errors(self, errors: dict[int, str]) -> None:
        layers = self.document.stack.layers
        self._run_errors = {layers[i].name: msg for i, msg in errors.items() if 0 <= i < len(layers) and msg}
        self.refresh()

    # ------------------------------------------------------------ what a row shows
    def shape_row(self, row: int) -> ShapeRow | None:
        r = self._shapes.get(row)
        layers = self.document.stack.layers
        if r is None or row >= len(layers) or r.name != layers[row].name or r.type != layers[row].type:
            return None       # stale: the window has not sent the shapes of this stack yet
        return r

    def drop_run_errors_from(self, first: int) -> None:
        """Layers at and after an edit are being run again: what the last run said about them no
        longer holds (it made a row say 'out of memory' long after the layer had changed)."""
        stale = {l.name for l in self.document.stack.layers[first:]}
        self._run_errors = {k: v for k, v in self._run_errors.items() if k not in stale}

    def error(self, row: int) -> str | None:
        """The one reason layer ``row`` cannot run: shape inference of the stack as it is now, else
        the last run of it. The shapes table shows these too (``problems``)."""
        r = self.shape_row(row)
        if r is not None and r.error:
            return r.error
        return self._run_errors.get(self.document.stack.layers[row].name)

    def problems(self) -> dict[int, str]:
        """Layer index → the reason it cannot run, for every layer that cannot."""
        return {row: e for row in range(len(self.document.stack.layers)) if (e := self.error(row))}

    def first_error(self) -> int | None:
        # Every row's status asks this: remembered for the stack, shapes and run errors it was found
        # for (each is replaced, never changed in place), or a refresh of a 40-layer stack asked
        # error() thousands of times on every edit and every paint.
        stack, shapes, run_errors, first = self._first_error
        if stack is self.document.stack and shapes is self._shapes and run_errors is self._run_errors:
            return first
        first = next((i for i in range(len(self.document.stack.layers)) if self.error(i)), None)
        self._first_error = (self.document.stack, self._shapes, self._run_errors, first)
        return first

    def status(self, row: int) -> str:
        spec = self.document.stack.layers[row]
        if self.error(row):
            return "error"
        first = self.first_error()
        if first is not None and row > first:
            return "after_error"
        if not spec.enabled:
            return "disabled"
        r = self.shape_row(row)
        if r is None or r.output_shape is None:
            return "unknown"
        return "ok"

    def row_text(self, row: int) -> str:
        spec = self.document.stack.layers[row]
        status = self.status(row)
        desc = describe(spec)
        if status == "error":
            return f"⚠ {desc} · cannot run"
        if status == "after_error":
            return f"{desc} · not run"
        if status == "disabled":
            return f"{desc} · off"
        r = self.shape_row(row)
        if r is not None and r.output_shape is not None:
            return f"{desc} · {format_shape(r.output_shape)}"
        return desc

    def row_tooltip(self, row: int) -> str:
        spec = self.document.stack.layers[row]
        status = self.status(row)
        lines = [f"{spec.name} — {LAYER_TYPES[spec.type].summary}"]
        if status == "error":
            lines.insert(0, self.error(row))
        elif status == "after_error":
            first = self.document.stack.layers[self.first_error()].name
            lines.append(f"Not run: the earlier layer '{first}' cannot run.")
        elif status == "disabled":
            lines.append("Off: its input passes through unchanged. Tick the box to turn it on.")
        r = self.shape_row(row)
        if r is not None and status in ("ok", "error") and r.input_shape is not None:
            shape = f"Input {format_shape(r.input_shape)}"
            if r.output_shape is not None:
                shape += f" → output {format_shape(r.output_shape)}"
            lines.append(shape)
            if r.params:
                lines.append(f"{r.params:,} parameters")
        return "\n".join(lines)

    # ------------------------------------------------------------ QAbstractListModel
    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else self._count

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        row = index.row()
        if not index.isValid() or not 0 <= row < min(self._count, len(self.document.stack.layers)):
            return None
        spec = self.document.stack.layers[row]
        if role == Qt.ItemDataRole.DisplayRole:
            return self.row_text(row)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self.row_tooltip(row)
        if role == Qt.ItemDataRole.CheckStateRole:
            return Qt.CheckState.Checked if spec.enabled else Qt.CheckState.Unchecked
        if role == Qt.ItemDataRole.ForegroundRole:
            status = self.status(row)
            if status == "error":
                return ERROR_COLOR
            if status in ("disabled", "after_error"):
                return QApplication.palette().color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text)
            return None
        if role == Qt.ItemDataRole.FontRole:
            if not spec.enabled:
                font = QFont(QApplication.font())
                font.setStrikeOut(True)
                return font
            return None
        if role == NameRole:
            return spec.name
        if role == StatusRole:
            return self.status(row)
        if role == ErrorRole:
            return self.error(row)
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return f"{spec.name}: {self.row_text(row)}"
        return None

    def setData(self, index, value, role=Qt.ItemDataRole.EditRole) -> bool:
        if not index.isValid() or role != Qt.ItemDataRole.CheckStateRole:
            return False
        checked = Qt.CheckState(value) == Qt.CheckState.Checked if not isinstance(value, bool) else value
        self.document.set_enabled(index.row(), bool(checked))
        return True

    def flags(self, index):
        if not index.isValid():
            return Qt.ItemFlag.ItemIsDropEnabled
        return (Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsUserCheckable
                | Qt.ItemFlag.ItemIsDragEnabled | Qt.ItemFlag.ItemNeverHasChildren)

    # ------------------------------------------------------------ drag and drop (reorder only)
    def supportedDropActions(self):
        return Qt.DropAction.MoveAction

    def supportedDragActions(self):
        return Qt.DropAction.MoveAction

    def mimeTypes(self) -> list[str]:
        return [MIME_TYPE]

    def mimeData(self, indexes) -> QMimeData:
        data = QMimeData()
        rows = sorted({i.row() for i in indexes if i.isValid()})
        if rows:
            data.setData(MIME_TYPE, QByteArray(str(rows[0]).encode()))
        return data

    def canDropMimeData(self, data, action, row, column, parent) -> bool:
        return data.hasFormat(MIME_TYPE) and not parent.isValid()

    def dropMimeData(self, data, action, row, column, parent) -> bool:
        # Only reached when the view did not move the row itself through moveRows.
        if not data.hasFormat(MIME_TYPE) or action == Qt.DropAction.IgnoreAction:
            return False
        src = int(bytes(data.data(MIME_TYPE)).decode())
        dest = row if row >= 0 else self._count
        self.move_to_gap(src, dest)
        return False      # nothing for the view to remove: the document moved the layer

    def moveRows(self, source_parent, source_row, count, dest_parent, dest_child) -> bool:
        if source_parent.isValid() or dest_parent.isValid() or count != 1:
            return False
        self.move_to_gap(source_row, dest_child)
        return True       # handled (moved, or refused with a message): the view must not move anything

    def move_to_gap(self, src: int, gap: int) -> None:
        """Moves layer ``src`` into the gap before row ``gap`` (``gap == rowCount`` is the end)."""
        dst = gap if gap <= src else gap - 1
        dst = max(0, min(dst, self._count - 1))
        if dst == src:
            return
        try:
            self.document.move_layer(src, dst)
        except ValueError as e:
            self.message.emit(str(e))


class LayerRowDelegate(QStyledItemDelegate):
    """Two lines per row: what the layer does and its output shape, then its name (and the reason
    it cannot run) in a smaller font."""

    PAD = 4

    def _fonts(self, option) -> tuple[QFont, QFont]:
        main = QFont(option.font)
        small = QFont(option.font)
        small.setStrikeOut(False)
        size = main.pointSizeF()
        if size > 0:
            small.setPointSizeF(max(7.0, size * 0.85))
        return main, small

    def sizeHint(self, option, index) -> QSize:
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        main, small = self._fonts(opt)
        h = QFontMetrics(main).height() + QFontMetrics(small).height() + 2 * self.PAD + 2
        w = QFontMetrics(main).horizontalAdvance(opt.text) + 48
        return QSize(w, h)

    def paint(self, painter, option, index) -> None:
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        text = opt.text
        opt.text = ""
        widget = opt.widget
        style = widget.style() if widget is not None else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, widget)
        rect: QRect = style.subElementRect(QStyle.SubElement.SE_ItemViewItemText, opt, widget)
        rect = rect.adjusted(2, self.PAD, -2, -self.PAD)

        main, small = self._fonts(opt)
        selected = bool(opt.state & QStyle.StateFlag.State_Selected)
        status = index.data(StatusRole)
        if selected:
            color = opt.palette.color(QPalette.ColorRole.HighlightedText)
        else:
            color = opt.palette.color(QPalette.ColorRole.Text)   # holds ForegroundRole (red/grey) if given
        secondary = QColor(color)
        if not selected and status != "error":
            secondary.setAlphaF(0.65)

        name = index.data(NameRole) or ""
        reason = index.data(ErrorRole)
        second = f"{name}  —  {reason}" if reason else name

        painter.save()
        if status == "error":    # a red stripe that stays visible when the row is selected
            painter.fillRect(QRect(option.rect.left(), option.rect.top(), 4, option.rect.height()), ERROR_COLOR)
        fm_main, fm_small = QFontMetrics(main), QFontMetrics(small)
        painter.setFont(main)
        painter.setPen(color)
        top = QRect(rect.left(), rect.top(), rect.width(), fm_main.height())
        painter.drawText(top, int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter),
                         fm_main.elidedText(text, Qt.TextElideMode.ElideRight, rect.width()))
        painter.setFont(small)
        painter.setPen(secondary)
        bottom = QRect(rect.left(), top.bottom() + 2, rect.width(), fm_small.height())
        painter.drawText(bottom, int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter),
                         fm_small.elidedText(second, Qt.TextElideMode.ElideRight, rect.width()))
        painter.restore()


class LayerListView(QListView):
    """The list; Delete (or Backspace) removes the current layer."""

    delete_pressed = Signal()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace) and event.modifiers() in (
                Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.KeypadModifier):
            self.delete_pressed.emit()
            event.accept()
            return
        super().keyPressEvent(event)


class LayerPanel(QWidget):
    """The layer list with Add / Remove / Duplicate / Move buttons.

    Given the session state, it shows the state's shape rows as they change; ``set_shapes(rows)``
    sets them by hand, and ``set_run_errors(errors)`` feeds it what the last run found. ``message``
    carries a sentence for the status bar when the document refuses an edit."""

    message = Signal(str)

    def __init__(self, document: StackDocument, state: SessionState | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.document = document
        self.state = state
        self._syncing = False

        self.model = LayerListModel(document, self)
        self.model.message.connect(self.message)

        self.list = LayerListView(self)
        self.list.setObjectName("layerList")
        self.list.setModel(self.model)
        self.list.setItemDelegate(LayerRowDelegate(self.list))
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.list.setDragEnabled(True)
        self.list.setAcceptDrops(True)
        self.list.setDropIndicatorShown(True)
        self.list.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.list.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.list.setMovement(QListView.Movement.Snap)
        self.list.setUniformItemSizes(True)
        self.list.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.list.setToolTip("")
        self.list.setAccessibleName("Layers")
        self.list.delete_pressed.connect(self.remove_selected)
        self.list.selectionModel().currentChanged.connect(self._current_changed)

        # ---- buttons
        self.add_menu = QMenu("Add layer", self)
        self.add_menu.setToolTipsVisible(True)
        self._add_actions: dict[str, QAction] = {}
        groups = types_by_category()
        for category in CATEGORIES:
            sub = self.add_menu.addMenu(category)
            sub.setToolTipsVisible(True)
            for type_name in groups[category]:
                action = sub.addAction(type_name)
                action.setToolTip(LAYER_TYPES[type_name].summary)
                action.setStatusTip(LAYER_TYPES[type_name].summary)
                action.triggered.connect(lambda _=False, t=type_name: self.add_layer(t))
                self._add_actions[type_name] = action

        def button(name: str, text: str, tip: str, slot=None) -> QToolButton:
            b = QToolButton(self)
            b.setObjectName(name)
            b.setText(text)
            b.setToolTip(tip)
            b.setAutoRaise(False)
            b.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
            if slot is not None:
                b.clicked.connect(slot)
            return b

        self.add_button = button("addButton", "Add layer ▾", "Add a layer after the selected one")
        self.add_button.setStyleSheet("QToolButton::menu-indicator { image: none; width: 0px; }")
        self.add_button.setMenu(self.add_menu)
        self.add_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.add_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.remove_button = button("removeButton", "Remove", "Remove the selected layer (Delete)", self.remove_selected)
        self.duplicate_button = button("duplicateButton", "Duplicate", "Insert a copy of the selected layer after it",
                                       self.duplicate_selected)
        self.up_button = button("upButton", "↑", "Move the selected layer up (earlier in the stack)", self.move_up)
        self.down_button = button("downButton", "↓", "Move the selected layer down (later in the stack)", self.move_down)
        for b in (self.up_button, self.down_button):
            b.setMinimumWidth(28)

        buttons = QHBoxLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        buttons.setSpacing(4)
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.remove_button)
        buttons.addWidget(self.duplicate_button)
        buttons.addStretch(1)
        buttons.addWidget(self.up_button)
        buttons.addWidget(self.down_button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(4)
        layout.addLayout(buttons)
        layout.addWidget(self.list, 1)

        document.changed.connect(self._document_changed)
        document.selection_changed.connect(self._selection_changed)
        if state is not None:
            state.shapes_changed.connect(self._shapes_changed)
            self.model.set_shapes(state.shape_rows)
        self._document_changed(0)
        self._selection_changed(document.selected)

    def _shapes_changed(self) -> None:
        self.set_shapes(self.state.shape_rows)

    # ------------------------------------------------------------ API for the window
    def set_shapes(self, rows: list[ShapeRow]) -> None:
        """The latest shape inference of ``document.stack`` (rows after a failing layer may be missing)."""
        self.model.set_shapes(rows)
        self._restore_selection()

    def set_run_errors(self, errors: dict[int, str]) -> None:
        """Errors from a real run by layer index (out of memory, ...), shown like shape errors.
        Call with {} when a run succeeds."""
        self.model.set_run_errors(errors)
        self._restore_selection()

    def problems(self) -> dict[int, str]:
        """Layer index → the reason it cannot run (what the rows show): the window's one source."""
        return self.model.problems()

    def add_actions(self) -> dict[str, QAction]:
        """Layer type name → its action in the Add menu."""
        return dict(self._add_actions)

    def row_text(self, row: int) -> str:
        return self.model.row_text(row)

    # ------------------------------------------------------------ edits
    def _try(self, fn, *args):
        try:
            return fn(*args)
        except ValueError as e:        # LayerArgError is a ValueError too
            self.message.emit(str(e))
            return None

    def add_layer(self, type_name: str) -> None:
        index = self._try(self.document.add_layer, type_name)
        if index is not None:
            self.list.setFocus(Qt.FocusReason.OtherFocusReason)

    def remove_selected(self) -> None:
        i = self.document.selected
        if i >= 0:
            self._try(self.document.remove_layer, i)

    def duplicate_selected(self) -> None:
        i = self.document.selected
        if i >= 0:
            self._try(self.document.duplicate_layer, i)

    def move_up(self) -> None:
        i = self.document.selected
        if i > 0:
            self._try(self.document.move_layer, i, i - 1)

    def move_down(self) -> None:
        i = self.document.selected
        if 0 <= i < len(self.document.stack.layers) - 1:
            self._try(self.document.move_layer, i, i + 1)

    # ------------------------------------------------------------ keeping in step with the document
    def _document_changed(self, first: int) -> None:
        self.model.drop_run_errors_from(first)
        self.model.refresh()
        self._restore_selection()
        self._update_buttons()

    def _selection_changed(self, _index: int) -> None:
        self._restore_selection()
        self._update_buttons()

    def _restore_selection(self) -> None:
        i = self.document.selected
        sel = self.list.selectionModel()
        self._syncing = True
        try:
            if 0 <= i < self.model.rowCount():
                index = self.model.index(i)
                if self.list.currentIndex() != index or not sel.isSelected(index):
                    sel.setCurrentIndex(index, QItemSelectionModel.SelectionFlag.ClearAndSelect)
                self.list.scrollTo(index)
            else:
                sel.clearSelection()
                sel.setCurrentIndex(QModelIndex(), QItemSelectionModel.SelectionFlag.Clear)
        finally:
            self._syncing = False

    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if self._syncing:
            return
        self.document.select(current.row() if current.isValid() else -1)

    def _update_buttons(self) -> None:
        i = self.document.selected
        n = len(self.document.stack.layers)
        self.remove_button.setEnabled(i >= 0)
        self.duplicate_button.setEnabled(i >= 0)
        self.up_button.setEnabled(i > 0)
        self.down_button.setEnabled(0 <= i < n - 1)

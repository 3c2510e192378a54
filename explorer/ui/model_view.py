"""The stack as PyTorch sees it: what ``print(model)`` shows, every named parameter with its
shape and count, and a button that copies a runnable module giving the same outputs as the app.

``model_repr`` and ``named_parameters`` build on the meta device (cheap enough for every edit);
the code itself, which can embed large weight tensors, is only written when it is shown or copied,
and then on a background lane (formatting a trained stack's weights took seconds on the GUI thread:
found by the random-input session after training with the code shown)."""

from __future__ import annotations

import keyword
import logging

from PySide6 import QtCore, QtGui, QtWidgets

from explorer.core.codegen import CodegenError, model_repr, named_parameters, pytorch_code
from explorer.core.stack import Stack, structure_key
from explorer.ui.jobs import JobError, JobQueue
from explorer.ui.shapes_view import ERROR_COLOR, monospace_font, shape_text

log = logging.getLogger(__name__)


class ParamsModel(QtCore.QAbstractTableModel):
    """Name, shape and count of every parameter."""

    HEADERS = ("Parameter", "Shape", "Count")

    def __init__(self, parent: QtCore.QObject | None = None):
        super().__init__(parent)
        self.params: list[tuple[str, tuple[int, ...], int]] = []
        self._cells: list[tuple[str, str, str]] = []
        self._hints: list[list[QtCore.QSize]] = []
        self.mono = monospace_font()

    def set_params(self, params: list[tuple[str, tuple[int, ...], int]]) -> None:
        self.beginResetModel()
        self.params = list(params)
        self._cells = [(n, shape_text(s), f"{c:,}") for n, s, c in self.params]
        fm = QtGui.QFontMetrics(self.mono)
        height = fm.lineSpacing() + 8
        self._hints = [[QtCore.QSize(fm.horizontalAdvance(t) + 20, height) for t in cells] for cells in self._cells]
        self.endResetModel()

    def rowCount(self, parent=QtCore.QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._cells)

    def columnCount(self, parent=QtCore.QModelIndex()) -> int:
        return 0 if parent.isValid() else 3

    def headerData(self, section, orientation, role=QtCore.Qt.ItemDataRole.DisplayRole):
        if orientation == QtCore.Qt.Orientation.Horizontal:
            if role == QtCore.Qt.ItemDataRole.DisplayRole:
                return self.HEADERS[section]
            if role == QtCore.Qt.ItemDataRole.TextAlignmentRole:
                align = QtCore.Qt.AlignmentFlag.AlignRight if section == 2 else QtCore.Qt.AlignmentFlag.AlignLeft
                return int(align | QtCore.Qt.AlignmentFlag.AlignVCenter)
        return None

    def flags(self, index):
        return QtCore.Qt.ItemFlag.ItemIsEnabled | QtCore.Qt.ItemFlag.ItemIsSelectable

    def data(self, index, role=QtCore.Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        R = QtCore.Qt.ItemDataRole
        if role == R.DisplayRole:
            return self._cells[index.row()][index.column()]
        if role == R.FontRole:
            return self.mono
        if role == R.SizeHintRole:
            return self._hints[index.row()][index.column()]
        if role == R.TextAlignmentRole:
            align = QtCore.Qt.AlignmentFlag.AlignRight if index.column() == 2 else QtCore.Qt.AlignmentFlag.AlignLeft
            return int(align | QtCore.Qt.AlignmentFlag.AlignVCenter)
        if role == R.ToolTipRole:
            n, s, c = self.params[index.row()]
            return f"{n}: shape {shape_text(s)}, {c:,} values"
        return None


class PythonHighlighter(QtGui.QSyntaxHighlighter):
    """Just enough colour to read the generated module: keywords, comments, strings, numbers."""

    def __init__(self, document: QtGui.QTextDocument):
        super().__init__(document)
        self.keyword = QtGui.QTextCharFormat()
        self.keyword.setForeground(QtGui.QColor("#5c6bc0"))
        self.keyword.setFontWeight(QtGui.QFont.Weight.Bold)
        self.comment = QtGui.QTextCharFormat()
        self.comment.setForeground(QtGui.QColor("#7f8c8d"))
        self.comment.setFontItalic(True)
        self.string = QtGui.QTextCharFormat()
        self.string.setForeground(QtGui.QColor("#2e9d5b"))
        self.number = QtGui.QTextCharFormat()
        self.number.setForeground(QtGui.QColor("#c0772b"))
        words = "|".join(sorted(keyword.kwlist + ["self"], key=len, reverse=True))
        self.rules = [
            (QtCore.QRegularExpression(rf"\b(?:{words})\b"), self.keyword),
            (QtCore.QRegularExpression(r"\b-?\d+(?:\.\d*)?(?:e[-+]?\d+)?\b"), self.number),
            (QtCore.QRegularExpression(r"'[^'\n]*'|\"[^\"\n]*\""), self.string),
            (QtCore.QRegularExpression(r"#[^\n]*"), self.comment),
        ]

    def highlightBlock(self, text: str) -> None:
        if len(text) > 2000:      # a long line of embedded weights: not worth the time
            return
        for regex, fmt in self.rules:
            it = regex.globalMatch(text)
            while it.hasNext():
                m = it.next()
                self.setFormat(m.capturedStart(), m.capturedLength(), fmt)


class ModelView(QtWidgets.QWidget):
    """``print(model)``, the named parameters and "Copy as PyTorch code" for a stack.

    ``code_copied(code)`` is emitted after the code was put on the clipboard."""

    code_copied = QtCore.Signal(str)

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("modelView")
        self._stack: Stack | None = None
        self._code: str | None = None
        self._error: str | None = None
        self._structure: tuple = (None, None)    # (structure_key, (repr text, parameters, error)) last built
        self._copy_when_written = False       # the copy button was pressed while the code was being written
        self._writer = JobQueue("model-code", self)
        self._writer.finished.connect(self._code_written)
        self._writer.failed.connect(self._code_failed)
        mono = monospace_font()

        self.title = QtWidgets.QLabel("print(model)", self)
        self.title.setObjectName("modelTitle")
        self.title.setFont(mono)
        self.show_code_button = QtWidgets.QPushButton("Show code", self)
        self.show_code_button.setObjectName("showCodeButton")
        self.show_code_button.setCheckable(True)
        self.show_code_button.setToolTip("Show the PyTorch module that computes what the app computes.")
        self.show_code_button.toggled.connect(self._on_show_code)
        self.copy_button = QtWidgets.QPushButton("Copy as PyTorch code", self)
        self.copy_button.setObjectName("copyCodeButton")
        self.copy_button.setToolTip("Copy a runnable Python module with this stack's layers and weights: "
                                    "it gives exactly the outputs the app shows.")
        self.copy_button.clicked.connect(self._copy_clicked)

        self.repr_text = QtWidgets.QPlainTextEdit(self)
        self.repr_text.setObjectName("modelReprText")
        self.code_text = QtWidgets.QPlainTextEdit(self)
        self.code_text.setObjectName("modelCodeText")
        for edit in (self.repr_text, self.code_text):
            edit.setReadOnly(True)
            edit.setFont(mono)
            edit.setTabStopDistance(4 * QtGui.QFontMetricsF(mono).horizontalAdvance(" "))
        # print(model) lines wrap (nothing hidden in a narrow pane); code keeps its lines, as an editor does
        self.repr_text.setLineWrapMode(QtWidgets.QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.code_text.setLineWrapMode(QtWidgets.QPlainTextEdit.LineWrapMode.NoWrap)
        self._highlighter = PythonHighlighter(self.code_text.document())
        self.text_stack = QtWidgets.QStackedWidget(self)
        self.text_stack.addWidget(self.repr_text)
        self.text_stack.addWidget(self.code_text)

        self.params_model = ParamsModel(self)
        self.params_table = QtWidgets.QTableView(self)
        self.params_table.setObjectName("paramsTable")
        self.params_table.setModel(self.params_model)
        self.params_table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.params_table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.params_table.setAlternatingRowColors(True)
        # Scroll areas default to 70 px minimum: a dock this short must fit on a 600-pixel screen.
        for area in (self.repr_text, self.code_text, self.params_table):
            area.setMinimumHeight(40)
        self.params_table.verticalHeader().hide()
        self.params_table.setWordWrap(False)
        self.params_table.verticalHeader().setDefaultSectionSize(QtGui.QFontMetrics(mono).lineSpacing() + 8)
        self.params_table.verticalHeader().setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.Fixed)
        header = self.params_table.horizontalHeader()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QtWidgets.QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        self.params_total = QtWidgets.QLabel(self)
        self.params_total.setObjectName("paramsTotalLabel")
        self.params_total.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)

        self.error_label = QtWidgets.QLabel(self)
        self.error_label.setObjectName("modelErrorLabel")
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet(f"color: {ERROR_COLOR.name()};")
        self.error_label.hide()

        right = QtWidgets.QWidget(self)
        right_layout = QtWidgets.QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.setSpacing(2)
        right_layout.addWidget(self.params_table, 1)
        right_layout.addWidget(self.params_total)
        self.splitter = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal, self)
        self.splitter.setObjectName("modelSplitter")
        self.splitter.addWidget(self.text_stack)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setChildrenCollapsible(False)
        self._splitter_moved = False
        self.splitter.splitterMoved.connect(self._on_splitter_moved)

        top = QtWidgets.QHBoxLayout()
        top.setContentsMargins(4, 2, 4, 2)
        top.addWidget(self.title)
        top.addStretch(1)
        top.addWidget(self.show_code_button)
        top.addWidget(self.copy_button)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(top)
        layout.addWidget(self.error_label)
        layout.addWidget(self.splitter, 1)
        self.set_stack(None)

    # ------------------------------------------------------------ filling
    def set_stack(self, stack: Stack | None) -> None:
        """Shows the stack (None: nothing). A stack whose arguments torch would refuse shows why."""
        self._stack = stack.copy() if stack is not None else None
        self._code = None
        self._error = None
        self._writer.cancel()                 # the code of the previous stack is no longer wanted
        self._copy_when_written = False
        text, params = "", []
        if self._stack is not None:
            key = structure_key(self._stack)
            if key == self._structure[0]:
                # Only weights changed (a training preview, a kernel cell, the seed): print(model) and
                # the parameter list are the same, and building them took ~10 ms of every preview.
                text, params, self._error = self._structure[1]
            else:
                try:
                    text = model_repr(self._stack)
                    params = named_parameters(self._stack)
                except CodegenError as e:
                    self._error = str(e)
                self._structure = (key, (text, params, self._error))
        self._set_repr(text)
        self.params_model.set_params(params)
        self._fit_splitter()
        total = sum(c for _, _, c in params)
        self.params_total.setText(f"Total parameters: {total:,}")
        self.error_label.setText(f"✗ {self._error}" if self._error else "")
        self.error_label.setVisible(self._error is not None)
        self.copy_button.setEnabled(self._stack is not None and self._error is None)
        self.show_code_button.setEnabled(self._stack is not None and self._error is None)
        if self.show_code_button.isChecked():
            self._show_code_text()

    def _set_repr(self, text: str) -> None:
        if self.repr_text.toPlainText() != text:       # keeps the scroll position while typing
            bar = self.repr_text.verticalScrollBar()
            pos = bar.value()
            self.repr_text.setPlainText(text)
            bar.setValue(pos)

    def _params_width(self) -> int:
        """Width the parameter table needs to show every column in full."""
        header = self.params_table.horizontalHeader()
        fm = QtGui.QFontMetrics(self.params_model.mono)
        hfm = QtGui.QFontMetrics(header.font())
        width = 0
        for col in range(3):
            texts = [cells[col] for cells in self.params_model._cells]
            width += max([fm.horizontalAdvance(t) for t in texts] + [hfm.horizontalAdvance(ParamsModel.HEADERS[col])]) + 20
        scrollbar = self.params_table.verticalScrollBar().sizeHint().width()
        return width + scrollbar + 2 * self.params_table.frameWidth()

    def _fit_splitter(self) -> None:
        """Until the user drags the splitter, the parameter table gets what it needs and the
        text the rest (at least half)."""
        if self._splitter_moved:
            return
        total = self.splitter.width() - self.splitter.handleWidth()
        if total <= 0:
            return
        right = min(self._params_width(), total // 2)
        self.splitter.setSizes([total - right, right])

    def _on_splitter_moved(self, *_) -> None:
        self._splitter_moved = True

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit_splitter()

    @property
    def stack(self) -> Stack | None:
        return self._stack

    # ------------------------------------------------------------ the code
    def code(self) -> str:
        """The generated module for the current stack ('' when there is none)."""
        if self._stack is None or self._error is not None:
            return ""
        if self._code is None:
            self._code = pytorch_code(self._stack)
        return self._code

    def copy_code(self) -> str:
        """Puts the generated module on the clipboard and emits ``code_copied`` (written here, on the
        calling thread: the copy button writes it in the background instead)."""
        try:
            code = self.code()
        except CodegenError as e:
            self._show_error(str(e))
            return ""
        return self._copy(code)

    def _copy(self, code: str) -> str:
        if not code:
            return ""
        QtGui.QGuiApplication.clipboard().setText(code)
        self.code_copied.emit(code)
        return code

    def _show_error(self, message: str) -> None:
        self.error_label.setText(f"✗ {message}")
        self.error_label.show()

    def _copy_clicked(self) -> None:
        if self._code is not None:
            self._copy(self._code)
        elif self._stack is not None and self._error is None:
            self._copy_when_written = True
            self._write_code()

    def _write_code(self) -> None:
        """Writes the current stack's code on the lane (unless it is being written already)."""
        if self._writer.busy:
            return
        stack = self._stack
        self._writer.submit(lambda context: (stack, pytorch_code(stack)))

    def _code_written(self, _generation: int, answer) -> None:
        stack, code = answer
        if stack is not self._stack:          # written for a stack replaced since
            return
        self._code = code
        if self.show_code_button.isChecked():
            self._set_code_text(code)
        if self._copy_when_written:
            self._copy_when_written = False
            self._copy(code)

    def _code_failed(self, _generation: int, error: JobError) -> None:
        self._copy_when_written = False
        if error.cancelled:
            return
        if isinstance(error.error, CodegenError):
            message = str(error.error)
        else:                                  # unexpected: the details go to the log, one sentence here
            log.error("Writing the PyTorch code failed:\n%s", error.details)
            message = f"Could not write the code ({type(error.error).__name__}: {error.error})."
        if self.show_code_button.isChecked():
            self._set_code_text(f"# {message}")
        self._show_error(message)

    def _on_show_code(self, checked: bool) -> None:
        self.show_code_button.setText("Show print(model)" if checked else "Show code")
        self.title.setText("PyTorch code" if checked else "print(model)")
        if checked:
            self._show_code_text()
            self.text_stack.setCurrentWidget(self.code_text)
        else:
            self.text_stack.setCurrentWidget(self.repr_text)

    def _show_code_text(self) -> None:
        if self._stack is None or self._error is not None:
            self._set_code_text("")
        elif self._code is not None:
            self._set_code_text(self._code)
        else:
            self._set_code_text("# Writing the code…")
            self._write_code()

    def _set_code_text(self, code: str) -> None:
        if self.code_text.toPlainText() != code:
            bar = self.code_text.verticalScrollBar()
            pos = bar.value()
            self.code_text.setPlainText(code)
            bar.setValue(pos)

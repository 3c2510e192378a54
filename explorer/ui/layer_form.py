"""The selected layer's arguments: a title, its name, and one editor per constructor argument.

Every editor is built from ``LayerType.args`` (kind, range, help sentence); an edit goes to
``document.set_arg``. A value torch would refuse is shown in red under the field that was edited and
the stack stays as it was; a value that only makes a later layer fail is accepted (the layer panel
then marks that layer)."""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any, Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont, QPalette
from PySide6.QtWidgets import (QComboBox, QFormLayout, QFrame, QLabel, QLineEdit, QScrollArea, QSizePolicy,
                               QStackedWidget, QVBoxLayout, QWidget)

from explorer.core.editing import earlier_pool_names
from explorer.core.layers import (LAYER_TYPES, Arg, LayerArgError, LayerSpec, exclusive_with, parameter_shapes,
                                  unset_arg_fallback)
from explorer.ui.deferred import behind_another_tab
from explorer.ui.document import StackDocument
from explorer.ui.arg_editors import ERROR_STYLE, ArgEditor, OptionalEditor, arg_tooltip, label_text, make_editor
from explorer.ui.qt_signals import qt_signals_blocked
from explorer.ui.spin_boxes import CheckedSpinBox

FORMS_KEPT = 8      # built forms kept for their layer type besides the one shown
_FORM_PARTS = ("title", "summary", "name_edit", "name_error", "indices_combo", "indices_error", "editors",
               "error_labels", "params_note")


# ---------------------------------------------------------------- the form
class LayerForm(QWidget):
    """The selected layer's title, name and arguments. Builds its editors the first time a layer type
    is shown and keeps the last few forms (one per type) to show again: rebuilding some twenty widgets
    on every click through the layers was the biggest part of the click's time on the GUI thread.
    Values, errors and the parameter note are set from the selected layer on every change, so
    typing is not interrupted.
    ``message`` repeats a refusal for the status bar (the red label under the field shows it too)."""

    message = Signal(str)

    def __init__(self, document: StackDocument, parent: QWidget | None = None):
        super().__init__(parent)
        self.document = document
        self.editors: dict[str, ArgEditor] = {}
        self.error_labels: dict[str, QLabel] = {}
        self._shown: tuple[int, str] | None = None     # (index, type) the editors show
        self._form_type: str | None = None               # the type of the form in the scroll area
        self._forms: OrderedDict[str, tuple[QWidget, dict]] = OrderedDict()   # type -> a form not shown
        self._swapping = False

        self.hint = QLabel("Select a layer to edit its arguments,\nor add one with Add layer.", self)
        self.hint.setObjectName("emptyHint")
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hint.setWordWrap(True)
        self.hint.setEnabled(False)

        self.scroll = QScrollArea(self)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

        self.pages = QStackedWidget(self)
        self.pages.addWidget(self.hint)
        self.pages.addWidget(self.scroll)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.pages)

        self.title = self.summary = self.name_edit = self.name_error = None
        self.indices_combo: QComboBox | None = None
        self.params_note: QLabel | None = None

        self._stale = False
        document.changed.connect(self._document_changed)
        document.selection_changed.connect(self._document_changed)
        self.refresh()

    # ------------------------------------------------------------ keeping in step with the document
    def _document_changed(self, *_):
        if behind_another_tab(self):
            self._stale = True          # behind the Kernel tab: brought up to date when shown (~1 ms an edit)
        else:
            self.refresh()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._stale:
            self.refresh()

    def spec(self) -> LayerSpec | None:
        i = self.document.selected
        return self.document.stack.layers[i] if 0 <= i < len(self.document.stack.layers) else None

    def refresh(self) -> None:
        self._stale = False
        spec = self.spec()
        if spec is None:
            self._shown = None
            self.pages.setCurrentWidget(self.hint)
            return
        key = (self.document.selected, spec.type)
        if key != self._shown:
            if spec.type != self._form_type:
                self._show_form_for(spec)
            self._shown = key
        self.pages.setCurrentWidget(self.scroll)
        self._update_values(spec)

    def _show_form_for(self, spec: LayerSpec) -> None:
        """Puts the form of ``spec``'s type in the scroll area: a kept one, or a new one."""
        self._swapping = True       # the old form loses focus as it goes: that is no edit of the new layer
        try:
            old = self.scroll.takeWidget()
            if old is not None and self._form_type is not None:
                self._forms[self._form_type] = (old, {n: getattr(self, n, None) for n in _FORM_PARTS})
                while len(self._forms) > FORMS_KEPT:
                    _, (dropped, _parts) = self._forms.popitem(last=False)
                    dropped.deleteLater()
            elif old is not None:
                old.deleteLater()
            kept = self._forms.pop(spec.type, None)
            if kept is None:
                self._build(spec)
            else:
                content, parts = kept
                for name, value in parts.items():
                    setattr(self, name, value)
                self.scroll.setWidget(content)
            self._form_type = spec.type
        finally:
            self._swapping = False

    def _build(self, spec: LayerSpec) -> None:
        t = LAYER_TYPES[spec.type]
        content = QWidget()
        content.setObjectName("formContent")
        column = QVBoxLayout(content)
        column.setContentsMargins(8, 8, 8, 8)
        column.setSpacing(6)

        self.title = QLabel(t.name, content)
        self.title.setObjectName("formTitle")
        font = QFont(self.title.font())
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.25 if font.pointSizeF() > 0 else 12)
        self.title.setFont(font)
        self.summary = QLabel(t.summary, content)
        self.summary.setObjectName("formSummary")
        self.summary.setWordWrap(True)
        column.addWidget(self.title)
        column.addWidget(self.summary)

        form = QFormLayout()
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        form.setHorizontalSpacing(10)
        form.setVerticalSpacing(6)

        self.name_edit = QLineEdit(content)
        self.name_edit.setObjectName("nameEdit")
        self.name_edit.setToolTip("The layer's name: unique in the stack, used in messages and as its seed.")
        self.name_edit.editingFinished.connect(self._rename)
        self.name_error = self._error_label("nameError", content)
        form.addRow(self._label("name", self.name_edit.toolTip(), content),
                    self._with_error(self.name_edit, self.name_error, content))

        self.indices_combo = None
        if spec.layer_type.takes_indices:
            self.indices_combo = QComboBox(content)
            self.indices_combo.setObjectName("indicesFromCombo")
            tip = "The earlier MaxPool2d whose recorded maximum positions this layer puts the values back to."
            self.indices_combo.setToolTip(tip)
            self.indices_combo.currentIndexChanged.connect(self._indices_from_changed)
            self.indices_error = self._error_label("error_indices_from", content)
            form.addRow(self._label("indices from", tip, content),
                        self._with_error(self.indices_combo, self.indices_error, content))

        self.editors = {}
        self.error_labels = {"name": self.name_error}
        for arg in t.args:
            editor = make_editor(arg, content)
            tip = arg_tooltip(arg)
            editor.setToolTip(tip)
            for w in editor.inputs():
                w.setToolTip(tip)
                if w.objectName().endswith("_link"):
                    w.setToolTip("Square: pressed, height and width stay equal and are saved as one number; "
                                 "release it to set them separately.\n\n" + tip)
            editor.edited.connect(lambda a=arg.name: self._commit(a))
            editor.refused.connect(lambda text, a=arg.name: self._show_error(a, text))
            if isinstance(editor, OptionalEditor):
                editor.fallback = self._fallback_for(arg)
            error = self._error_label(f"error_{arg.name}", content)
            if isinstance(editor, OptionalEditor):
                label = editor.set_box     # the tick box is the label: centre it on the field's row
                label.setMinimumHeight(editor.inner.sizeHint().height())
            else:
                label = self._label(arg.name, tip, content)
            label.setToolTip(tip)
            form.addRow(label, self._with_error(editor, error, content))
            self.editors[arg.name] = editor
            self.error_labels[arg.name] = error
        if not t.args:
            none = QLabel("This layer has no arguments.", content)
            none.setEnabled(False)
            form.addRow(none)
        column.addLayout(form)

        self.params_note = QLabel(content)
        self.params_note.setObjectName("paramsNote")
        self.params_note.setWordWrap(True)
        self.params_note.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        pal = self.params_note.palette()
        muted = pal.color(QPalette.ColorRole.WindowText)
        muted.setAlphaF(0.7)
        pal.setColor(QPalette.ColorRole.WindowText, muted)
        self.params_note.setPalette(pal)
        column.addWidget(self.params_note)
        column.addStretch(1)
        self.scroll.setWidget(content)

    @staticmethod
    def _label(text: str, tip: str, parent) -> QLabel:
        label = QLabel(label_text(text), parent)
        label.setToolTip(tip)
        return label

    @staticmethod
    def _error_label(name: str, parent) -> QLabel:
        label = QLabel(parent)
        label.setObjectName(name)
        label.setStyleSheet(ERROR_STYLE)
        label.setWordWrap(True)
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        label.hide()
        return label

    @staticmethod
    def _with_error(field: QWidget, error: QLabel, parent) -> QWidget:
        box = QWidget(parent)
        v = QVBoxLayout(box)
        v.setContentsMargins(0, 0, 0, 0)
        v.setSpacing(2)
        v.addWidget(field)
        v.addWidget(error)
        box.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        return box

    def _fallback_for(self, arg: Arg) -> Callable[[], Any]:
        """What an unset optional argument's editor shows until it is ticked: torch's effective value
        where there is one (a pool's stride is its kernel_size), otherwise a sensible start."""
        def fallback():
            spec = self.spec()
            if spec is None:
                return None
            try:
                a = spec.full_args()
            except LayerArgError:
                a = {}
            return unset_arg_fallback(arg, a, self._output_shape() if arg.kind == "size" else None)
        return fallback

    def _output_shape(self):
        from explorer.core.editing import shape_before
        i = self.document.selected
        try:
            return shape_before(self.document.stack, i + 1, self.document.input_shape)
        except Exception:
            return None

    def _update_values(self, spec: LayerSpec) -> None:
        for label in self.error_labels.values():
            label.clear()
            label.hide()
        for spin in self.scroll.findChildren(CheckedSpinBox):    # their tint and tooltip go with the labels
            spin.set_problem("")
        if self.name_edit.text() != spec.name:
            with qt_signals_blocked(self.name_edit):
                self.name_edit.setText(spec.name)
        try:
            values = spec.full_args()
        except LayerArgError:
            values = {a.name: spec.args.get(a.name, a.default) for a in spec.layer_type.args}
        for name, editor in self.editors.items():
            editor.set_value(values[name])
        if self.indices_combo is not None:
            self._update_indices_combo(spec)
        self._update_params_note(spec)

    def _update_indices_combo(self, spec: LayerSpec) -> None:
        i = self.document.selected
        pools = earlier_pool_names(self.document.stack, i)
        items = list(pools)
        if spec.indices_from is not None and spec.indices_from not in items:
            items.insert(0, spec.indices_from)
        with qt_signals_blocked(self.indices_combo):
            self.indices_combo.clear()
            self.indices_combo.addItems(items)
            if spec.indices_from in items:
                self.indices_combo.setCurrentIndex(items.index(spec.indices_from))
        self.indices_combo.setEnabled(bool(pools))
        if not pools:
            self._show_error("indices_from", "There is no MaxPool2d before this layer; add one first.",
                             self.indices_error, announce=False)

    def _parameter_shapes(self, spec: LayerSpec) -> list[tuple[str, tuple[int, ...]]]:
        """Names and shapes of the layer's parameters, from its arguments (nothing is built)."""
        try:
            return parameter_shapes(spec)
        except Exception:     # arguments that do not check: the form says why elsewhere
            return []

    def _update_params_note(self, spec: LayerSpec) -> None:
        params = self._parameter_shapes(spec)
        if not params:
            self.params_note.hide()
            self.params_note.clear()
            return
        total = sum(math.prod(s) for _, s in params)
        shapes = ", ".join(f"{k} [{', '.join(map(str, s))}]" for k, s in params)
        by_hand = sorted(k for k in (spec.state or {}) if k in dict(params))
        if by_hand:
            seeded = [k for k, _ in params if k not in by_hand]
            origin = f"{', '.join(by_hand)} set by hand"
            if seeded:
                origin += f"; {', '.join(seeded)} seeded from the stack seed ({self.document.stack.seed})"
        else:
            origin = f"seeded from the stack seed ({self.document.stack.seed})"
        self.params_note.setText(f"Parameters: {shapes} ({total:,} numbers) — {origin}.")
        self.params_note.show()

    # ------------------------------------------------------------ edits
    def _show_error(self, key: str, message: str, label: QLabel | None = None, announce: bool = True) -> None:
        label = label or self.error_labels[key]
        label.setText(message)
        label.show()
        if announce:
            self.message.emit(message)

    def _clear_error(self, key: str) -> None:
        label = self.error_labels.get(key)
        if label is not None:
            label.clear()
            label.hide()

    def _commit(self, key: str) -> None:
        if self._swapping:
            return
        i = self.document.selected
        spec = self.spec()
        if spec is None or key not in self.editors:
            return
        value = self.editors[key].value()
        try:
            other = exclusive_with(spec.type, key)
            if other is not None and value is not None and spec.full_args().get(other) is not None:
                # Upsample takes size or scale_factor: setting one unsets the other in one step.
                self.document.set_args(i, {key: value, other: None})
            else:
                self.document.set_arg(i, key, value)
        except LayerArgError as e:
            self._show_error(key, str(e))
            return
        self._clear_error(key)    # valid but unchanged (no document signal): the error is gone anyway

    def _rename(self) -> None:
        if self._swapping:
            return
        spec = self.spec()
        if spec is None or self.name_edit is None:
            return
        text = self.name_edit.text().strip()
        if text == spec.name:
            self._clear_error("name")
            return
        if not text:
            self._show_error("name", "A layer needs a name.")
            return
        try:
            self.document.rename(self.document.selected, text)
        except ValueError as e:
            self._show_error("name", str(e))

    def _indices_from_changed(self) -> None:
        spec = self.spec()
        if spec is None or self.indices_combo is None:
            return
        name = self.indices_combo.currentText()
        if name and name != spec.indices_from:
            try:
                self.document.set_indices_from(self.document.selected, name)
            except ValueError as e:
                self._show_error("indices_from", str(e), self.indices_error)

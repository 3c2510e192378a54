"""The reusable argument editors of the layer form: one widget per argument kind (int, float, bool,
choice, pair, padding, optional ...), built from a ``layers.Arg`` by ``make_editor``. Each shows a
value with ``set_value`` and reports the user's edit through ``edited``; none knows the document."""

from __future__ import annotations

from typing import Any, Callable

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import (QAbstractSpinBox, QCheckBox, QComboBox, QHBoxLayout, QLabel, QToolButton, QVBoxLayout,
                               QWidget)

from explorer.core.layers import Arg
from explorer.ui.qt_signals import qt_signals_blocked
from explorer.ui.spin_boxes import CheckedDoubleSpinBox, CheckedSpinBox

ERROR_STYLE = "color: #d0312d;"
INT_LIMIT = 1_000_000
FLOAT_LIMIT = 1e9


# ---------------------------------------------------------------- basic input widgets
class IntSpinBox(CheckedSpinBox):
    def __init__(self, minimum: float | None, maximum: float | None, parent=None, label: str = ""):
        # The form has a red label under each field: no tooltip popup as well.
        super().__init__(parent, label=label, popup=False)
        self.setRange(int(minimum) if minimum is not None else -INT_LIMIT,
                      int(maximum) if maximum is not None else INT_LIMIT)
        self.setAccelerated(True)

    def sizeHint(self) -> QSize:          # the range allows a million; most values have 1-3 digits
        hint = super().sizeHint()
        return QSize(min(hint.width(), 68), hint.height())

    def minimumSizeHint(self) -> QSize:
        return self.sizeHint()


class FloatSpinBox(CheckedDoubleSpinBox):
    """Shows numbers as Python does ('1e-05', '0.01', '0.333333') and takes scientific notation."""

    def __init__(self, minimum: float | None, maximum: float | None, parent=None, width: int = 100, label: str = ""):
        super().__init__(parent, label=label, popup=False)
        self.width_hint = width
        self.setDecimals(12)                  # keeps 1e-5 exact; text comes from textFromValue
        self.setRange(minimum if minimum is not None else -FLOAT_LIMIT,
                      maximum if maximum is not None else FLOAT_LIMIT)
        self.setStepType(QAbstractSpinBox.StepType.AdaptiveDecimalStepType)

    def sizeHint(self) -> QSize:
        hint = super().sizeHint()
        return QSize(max(hint.width(), self.width_hint), hint.height())   # room for '0.333333' and '1e-05'

    def minimumSizeHint(self) -> QSize:
        return self.sizeHint()

    def textFromValue(self, value: float) -> str:
        return f"{value:.6g}"

    def stepBy(self, steps: int) -> None:
        if self.value() == 0 and not self.verdict(False):   # adaptive steps from 0 would be 1e-12
            self.setValue(0.1 * steps)
        else:
            super().stepBy(steps)


# ---------------------------------------------------------------- one editor per argument kind
class ArgEditor(QWidget):
    """The editor of one argument. ``edited`` fires on a user edit; ``value()`` is what goes to
    ``document.set_arg``; ``set_value`` shows the document's value without firing ``edited``."""

    edited = Signal()
    refused = Signal(str)     # a number the field cannot hold, with the reason

    def __init__(self, arg: Arg, parent=None):
        super().__init__(parent)
        self.arg = arg
        self.setObjectName(f"editor_{arg.name}")
        self.layout_ = QHBoxLayout(self)
        self.layout_.setContentsMargins(0, 0, 0, 0)
        self.layout_.setSpacing(4)

    def value(self) -> Any:
        raise NotImplementedError

    def set_value(self, value: Any) -> None:
        raise NotImplementedError

    def inputs(self) -> list[QWidget]:
        return [w for w in self.findChildren(QWidget)]


class IntEditor(ArgEditor):
    def __init__(self, arg: Arg, parent=None, name: str | None = None):
        super().__init__(arg, parent)
        self.spin = IntSpinBox(arg.minimum, arg.maximum, self, label=arg.name)
        self.spin.setObjectName(name or f"arg_{arg.name}")
        self.spin.valueChanged.connect(self.edited)
        self.spin.refused.connect(self.refused)
        self.layout_.addWidget(self.spin)
        self.layout_.addStretch(1)

    def value(self) -> int:
        return self.spin.value()

    def set_value(self, value: Any) -> None:
        with qt_signals_blocked(self.spin):
            self.spin.setValue(int(value))


class FloatEditor(ArgEditor):
    def __init__(self, arg: Arg, parent=None, name: str | None = None):
        super().__init__(arg, parent)
        self.spin = FloatSpinBox(arg.minimum, arg.maximum, self, label=arg.name)
        self.spin.setObjectName(name or f"arg_{arg.name}")
        self.spin.valueChanged.connect(self.edited)
        self.spin.refused.connect(self.refused)
        self.layout_.addWidget(self.spin)
        self.layout_.addStretch(1)

    def value(self) -> float:
        return float(self.spin.value())

    def set_value(self, value: Any) -> None:
        with qt_signals_blocked(self.spin):
            self.spin.setValue(float(value))


class BoolEditor(ArgEditor):
    def __init__(self, arg: Arg, parent=None):
        super().__init__(arg, parent)
        self.box = QCheckBox(self)
        self.box.setObjectName(f"arg_{arg.name}")
        self.box.toggled.connect(self.edited)
        self.layout_.addWidget(self.box)
        self.layout_.addStretch(1)

    def value(self) -> bool:
        return self.box.isChecked()

    def set_value(self, value: Any) -> None:
        with qt_signals_blocked(self.box):
            self.box.setChecked(bool(value))


class ChoiceEditor(ArgEditor):
    def __init__(self, arg: Arg, parent=None):
        super().__init__(arg, parent)
        self.combo = QComboBox(self)
        self.combo.setObjectName(f"arg_{arg.name}")
        self.combo.addItems(list(arg.choices))
        self.combo.currentIndexChanged.connect(self.edited)
        self.layout_.addWidget(self.combo)
        self.layout_.addStretch(1)

    def value(self) -> str:
        return self.combo.currentText()

    def set_value(self, value: Any) -> None:
        with qt_signals_blocked(self.combo):
            self.combo.setCurrentIndex(max(0, self.combo.findText(str(value))))


class OptBoolEditor(ArgEditor):
    """None / True / False as one combo: two check boxes for one value would be confusing."""

    LABELS = ("default (None)", "True", "False")

    def __init__(self, arg: Arg, parent=None):
        super().__init__(arg, parent)
        self.combo = QComboBox(self)
        self.combo.setObjectName(f"arg_{arg.name}")
        self.combo.addItems(list(self.LABELS))
        self.combo.currentIndexChanged.connect(self.edited)
        self.layout_.addWidget(self.combo)
        self.layout_.addStretch(1)

    def value(self) -> bool | None:
        return {0: None, 1: True, 2: False}[self.combo.currentIndex()]

    def set_value(self, value: Any) -> None:
        with qt_signals_blocked(self.combo):
            self.combo.setCurrentIndex(0 if value is None else (1 if value else 2))


class PairEditor(ArgEditor):
    """Height and width; with 'square' ticked both follow each other and the value is one number."""

    def __init__(self, arg: Arg, parent=None, floats: bool = False):
        super().__init__(arg, parent)
        self.floats = floats
        make = (lambda side: FloatSpinBox(arg.minimum, arg.maximum, self, width=68, label=f"{arg.name} {side}")) \
            if floats else (lambda side: IntSpinBox(arg.minimum, arg.maximum, self, label=f"{arg.name} {side}"))
        self.h, self.w = make("height"), make("width")
        self.h.refused.connect(self.refused)
        self.w.refused.connect(self.refused)
        self.h.setObjectName(f"arg_{arg.name}_h")
        self.w.setObjectName(f"arg_{arg.name}_w")
        self.h.setAccessibleName(f"{arg.name} height")
        self.w.setAccessibleName(f"{arg.name} width")
        # A small toggle, not a labelled check box: the form must fit a ~330 px side panel.
        self.link = QToolButton(self)
        self.link.setObjectName(f"arg_{arg.name}_link")
        self.link.setText("=")
        self.link.setCheckable(True)
        self.link.setChecked(True)
        self.link.setAccessibleName(f"{arg.name}: square")
        self.link.setFixedWidth(24)
        times = QLabel("×", self)
        self.layout_.addWidget(self.h)
        self.layout_.addWidget(times)
        self.layout_.addWidget(self.w)
        self.layout_.addWidget(self.link)
        self.layout_.addStretch(1)
        self.h.valueChanged.connect(lambda: self._changed(self.h, self.w))
        self.w.valueChanged.connect(lambda: self._changed(self.w, self.h))
        self.link.toggled.connect(self._link_toggled)

    def _changed(self, source, other) -> None:
        if self.link.isChecked() and other.value() != source.value():
            with qt_signals_blocked(other):
                other.setValue(source.value())
        self.edited.emit()

    def _link_toggled(self, on: bool) -> None:
        if on and self.h.value() != self.w.value():
            with qt_signals_blocked(self.w):
                self.w.setValue(self.h.value())
            self.edited.emit()

    def value(self) -> Any:
        h, w = self.h.value(), self.w.value()
        if not self.floats:
            h, w = int(h), int(w)
        return h if h == w else [h, w]

    def set_value(self, value: Any) -> None:
        h, w = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
        with qt_signals_blocked(self.h, self.w, self.link):
            self.h.setValue(h)
            self.w.setValue(w)
            if h != w:
                self.link.setChecked(False)

    def setEnabled(self, on: bool) -> None:   # noqa: N802 (Qt name)
        for w in (self.h, self.w, self.link):
            w.setEnabled(on)


class PaddingEditor(ArgEditor):
    """A number (or [h, w]), 'same' or 'valid'."""

    KINDS = ("number", "same", "valid")

    def __init__(self, arg: Arg, parent=None):
        super().__init__(arg, parent)
        self.combo = QComboBox(self)
        self.combo.setObjectName(f"arg_{arg.name}")
        self.combo.addItems(list(self.KINDS))
        self.pair = PairEditor(Arg(arg.name, "pair", 0, minimum=arg.minimum, help=arg.help), self)
        self.pair.setObjectName(f"editor_{arg.name}_pair")
        column = QVBoxLayout()
        column.setSpacing(2)
        column.addWidget(self.combo, 0, Qt.AlignmentFlag.AlignLeft)
        column.addWidget(self.pair)
        self.layout_.addLayout(column)
        self.combo.currentIndexChanged.connect(self._kind_changed)
        self.pair.edited.connect(self.edited)
        self.pair.refused.connect(self.refused)

    def _kind_changed(self) -> None:
        self.pair.setEnabled(self.combo.currentIndex() == 0)
        self.edited.emit()

    def value(self) -> Any:
        kind = self.combo.currentText()
        return self.pair.value() if kind == "number" else kind

    def set_value(self, value: Any) -> None:
        with qt_signals_blocked(self.combo):
            if isinstance(value, str):
                self.combo.setCurrentIndex(self.KINDS.index(value))
            else:
                self.combo.setCurrentIndex(0)
                self.pair.set_value(value)
        self.pair.setEnabled(not isinstance(value, str))


class OptionalEditor(ArgEditor):
    """Ticked = the inner editor's value; unticked = None, torch's default. The tick box carries the
    argument's name, so the form puts it in the label column."""

    def __init__(self, arg: Arg, inner: ArgEditor, parent=None):
        super().__init__(arg, parent)
        self.inner = inner
        inner.setParent(self)
        self.set_box = QCheckBox(arg.name, self)
        self.set_box.setObjectName(f"arg_{arg.name}_set")
        self.set_box.setLayoutDirection(Qt.LayoutDirection.RightToLeft)   # name, then the box, by the field
        self.layout_.addWidget(inner, 1)
        self.set_box.toggled.connect(self._toggled)
        inner.edited.connect(self.edited)
        inner.refused.connect(self.refused)
        self.fallback: Callable[[], Any] = lambda: None

    def _toggled(self, on: bool) -> None:
        self.inner.setEnabled(on)
        self.edited.emit()

    def value(self) -> Any:
        return self.inner.value() if self.set_box.isChecked() else None

    def set_value(self, value: Any) -> None:
        with qt_signals_blocked(self.set_box):
            self.set_box.setChecked(value is not None)
        self.inner.setEnabled(value is not None)
        shown = value if value is not None else self.fallback()
        if shown is not None:
            self.inner.set_value(shown)


def make_editor(arg: Arg, parent=None) -> ArgEditor:
    k = arg.kind
    if k == "int":
        return IntEditor(arg, parent)
    if k == "float":
        return FloatEditor(arg, parent)
    if k == "bool":
        return BoolEditor(arg, parent)
    if k == "choice":
        return ChoiceEditor(arg, parent)
    if k == "pair":
        return PairEditor(arg, parent)
    if k == "padding":
        return PaddingEditor(arg, parent)
    if k == "opt_bool":
        return OptBoolEditor(arg, parent)
    if k in ("opt_int", "dim"):
        inner = IntEditor(Arg(arg.name, "int", minimum=arg.minimum, maximum=arg.maximum, help=arg.help), parent)
    elif k == "opt_float":
        inner = FloatEditor(Arg(arg.name, "float", minimum=arg.minimum, maximum=arg.maximum, help=arg.help), parent)
        if arg.default is not None:
            # set_arg(None) brings back torch's default (0.1), so 'unset' could not be shown: a plain number.
            return inner
    elif k in ("opt_pair", "size"):
        inner = PairEditor(arg, parent)
    elif k == "scale":
        inner = PairEditor(arg, parent, floats=True)
    else:
        raise AssertionError(f"no editor for kind {k}")
    return OptionalEditor(arg, inner, parent)


def label_text(name: str, longest: int = 18) -> str:
    """A long argument name broken after the underscore nearest its middle, so the label column of a
    narrow form stays narrow: 'recompute_scale_factor' → 'recompute_' / 'scale_factor'."""
    if len(name) <= longest or "_" not in name:
        return name
    cuts = [i for i, c in enumerate(name) if c == "_"]
    cut = min(cuts, key=lambda i: abs(i - len(name) / 2))
    return name[:cut + 1] + "\n" + name[cut + 1:]


def arg_tooltip(arg: Arg) -> str:
    default = "none (torch decides)" if arg.default is None else repr(arg.default)
    tail = "Required." if arg.required else f"Default: {default}."
    return f"{arg.help}\n{tail}"

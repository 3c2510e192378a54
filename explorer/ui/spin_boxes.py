"""Spin boxes that never change the number the user typed into another one.

A plain QSpinBox drops every keystroke that would make its text invalid, so '1e9' typed into a field
becomes '19' and '99999' in a field that stops at 8192 becomes '999'; a number below the minimum
(0 in a stride) is silently put back to the previous value when the field loses focus. These boxes
take whatever looks like a number while it is typed, and on Enter or focus-out refuse a number they
cannot hold with one sentence (``refused``), shown at the field: a red tint and the sentence as
its tooltip, and, where a form has a label under the field, there too."""

from __future__ import annotations

import math
import re

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtGui import QFocusEvent, QKeyEvent, QValidator
from PySide6.QtWidgets import QDoubleSpinBox, QSpinBox, QToolTip

# What a number looks like half-typed: '-', '1e', '2.', '.5e-'. Anything else is a typo.
_PARTIAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d*)?([eE][+-]?\d*)?")
# On the text field inside the box only: a style sheet on the spin box itself replaces its arrows.
_REFUSED_STYLE = "QLineEdit { background: #fdecea; color: #8a1c1c; }"


def parse_number(text: str) -> float | None:
    """The number in ``text`` ('12', '-3', '1e9', '2.5'), or None."""
    t = text.strip()
    if not t or not _PARTIAL.fullmatch(t):
        return None
    try:
        return float(t)
    except ValueError:
        return None


def _fmt(value: float) -> str:
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:g}"


class _Refusing:
    """What both boxes share. Mixed into a QAbstractSpinBox subclass that defines ``refused``."""

    label: str = ""
    popup: bool = True
    problem: str = ""
    _plain_tooltip: str = ""

    def _body(self, text: str) -> str:
        t = text
        if self.prefix() and t.startswith(self.prefix()):
            t = t[len(self.prefix()):]
        if self.suffix() and t.endswith(self.suffix()):
            t = t[:-len(self.suffix())]
        return t.strip()

    def _name(self) -> str:
        return self.label or self.accessibleName() or "This field"

    def _number_state(self, text: str, whole: bool) -> QValidator.State:
        body = self._body(text)
        value = parse_number(body)
        if value is not None and math.isfinite(value) and (not whole or value.is_integer()) \
                and self.minimum() <= value <= self.maximum():
            return QValidator.State.Acceptable
        if _PARTIAL.fullmatch(body) or body.lower() in ("nan", "inf", "-inf", "+inf", "infinity"):
            return QValidator.State.Intermediate
        return QValidator.State.Invalid

    def verdict(self, whole: bool) -> str | None:
        """The sentence refusing what the field holds now, or None when it holds a number it takes."""
        body = self._body(self.lineEdit().text())
        if self._number_state(body, whole) == QValidator.State.Acceptable:
            return None
        name, kept = self._name(), self.textFromValue(self.value())
        value = parse_number(body)
        if not body:
            why = f"{name} needs a number"
        elif value is None or not math.isfinite(value):
            why = f"{name} needs a number, not '{body}'"
        elif whole and not value.is_integer():
            why = f"{name} must be a whole number, not {body}"
        elif value < self.minimum():
            why = f"{name} must be at least {_fmt(self.minimum())}, not {body}"
        else:
            why = f"{name} can be at most {_fmt(self.maximum())}, not {body}"
        return f"{why}; it stays {kept}."

    def _finish(self, sentence: str | None) -> None:
        if sentence is None:
            return
        self.set_problem(sentence)
        self.refused.emit(sentence)

    def set_problem(self, sentence: str) -> None:
        """Shows ``sentence`` at the field until the next number it takes ('' clears)."""
        if sentence == self.problem:
            return
        if not self.problem:
            self._plain_tooltip = self.toolTip()
        self.problem = sentence
        self.lineEdit().setStyleSheet(_REFUSED_STYLE if sentence else "")
        self.setToolTip(f"{sentence}\n\n{self._plain_tooltip}".strip() if sentence else self._plain_tooltip)
        if sentence and self.popup and self.isVisible():
            QToolTip.showText(self.mapToGlobal(QPoint(0, self.height())), sentence, self)

    def _taken(self, *_) -> None:
        if self.problem:
            self.set_problem("")


class CheckedSpinBox(_Refusing, QSpinBox):
    """An integer spin box that refuses, with a sentence, a number outside its range or not whole.
    ``label`` names the field in that sentence; ``popup`` also shows it as a tooltip at the field
    (off where the form has its own error label under the field)."""

    refused = Signal(str)

    def __init__(self, parent=None, label: str = "", popup: bool = True):
        QSpinBox.__init__(self, parent)
        # The number counts when it is finished (Enter, focus-out, arrows), not digit by digit: typing
        # 99999 must never pass through 999 on the way to a refusal.
        self.setKeyboardTracking(False)
        self.label, self.popup = label, popup
        self.problem = ""
        self.valueChanged.connect(self._taken)

    def validate(self, text: str, pos: int):
        return self._number_state(text, whole=True), text, pos

    def valueFromText(self, text: str) -> int:
        value = parse_number(self._body(text))
        if value is None or not math.isfinite(value) or not value.is_integer():
            return self.value()
        return int(max(self.minimum(), min(self.maximum(), value)))

    def fixup(self, text: str) -> str:      # never rewrite the text into another number
        return text

    def keyPressEvent(self, event: QKeyEvent) -> None:
        sentence = self.verdict(True) if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) else None
        if sentence is None and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self._taken()
        super().keyPressEvent(event)
        self._finish(sentence)

    def focusOutEvent(self, event: QFocusEvent) -> None:
        sentence = self.verdict(True)
        super().focusOutEvent(event)
        self._finish(sentence)

    def stepBy(self, steps: int) -> None:
        sentence = self.verdict(True)     # an arrow after a refused number steps from the kept one
        super().stepBy(steps)
        self._finish(sentence)


class CheckedDoubleSpinBox(_Refusing, QDoubleSpinBox):
    """The same for floats: scientific notation is taken; NaN, infinities and numbers out of range
    are refused with a sentence."""

    refused = Signal(str)

    def __init__(self, parent=None, label: str = "", popup: bool = True):
        QDoubleSpinBox.__init__(self, parent)
        self.setKeyboardTracking(False)
        self.label, self.popup = label, popup
        self.problem = ""
        self.valueChanged.connect(self._taken)

    def validate(self, text: str, pos: int):
        return self._number_state(text, whole=False), text, pos

    def valueFromText(self, text: str) -> float:
        value = parse_number(self._body(text))
        if value is None or not math.isfinite(value):
            return self.value()
        return max(self.minimum(), min(self.maximum(), value))

    def fixup(self, text: str) -> str:
        return text

    def keyPressEvent(self, event: QKeyEvent) -> None:
        sentence = self.verdict(False) if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) else None
        if sentence is None and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self._taken()
        super().keyPressEvent(event)
        self._finish(sentence)

    def focusOutEvent(self, event: QFocusEvent) -> None:
        sentence = self.verdict(False)
        super().focusOutEvent(event)
        self._finish(sentence)

    def stepBy(self, steps: int) -> None:
        sentence = self.verdict(False)
        super().stepBy(steps)
        self._finish(sentence)


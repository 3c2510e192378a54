"""A one-line label that ends in '…' when it is narrower than its text, the whole text in its
tooltip. A word-wrapped label under a picture needs more lines as the window narrows, and a layout
does not count those lines in its minimum size: in a small window it was drawn over the picture."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QLabel, QSizePolicy, QStyleOption


class ElidedLabel(QLabel):
    """``text()`` is the whole text; only the painting is shortened. ``mode``: where the '…' goes
    (ElideMiddle keeps a file name's end and a shape in view). ``auto_tooltip``: the tooltip is the
    whole text while it is shortened; off, the owner sets its own tooltip."""

    def __init__(self, text: str = "", parent=None, mode: Qt.TextElideMode = Qt.TextElideMode.ElideRight,
                 auto_tooltip: bool = True):
        super().__init__(text, parent)
        self._mode = mode
        self._auto_tooltip = auto_tooltip
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setWordWrap(False)

    def minimumSizeHint(self) -> QSize:
        hint = super().minimumSizeHint()
        return QSize(min(hint.width(), 40), hint.height())

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        rect = self.contentsRect()
        m = self.margin()
        rect = rect.adjusted(m, m, -m, -m)
        text = self.text()
        elided = self.fontMetrics().elidedText(text, self._mode, rect.width())
        if self._auto_tooltip:
            self.setToolTip(text if elided != text else "")
        option = QStyleOption()
        option.initFrom(self)
        self.style().drawItemText(painter, rect, int(self.alignment()), option.palette, self.isEnabled(),
                                  elided, self.foregroundRole())

"""The fixed-pitch font for numbers, shapes and code."""

from __future__ import annotations

from PySide6.QtGui import QFont, QFontDatabase


def fixed_font(like: QFont | None = None) -> QFont:
    """Qt's system fixed-pitch font, at the size and weight of ``like`` when given. A family named
    'monospace' is only a fontconfig alias: on a machine with more fonts installed it resolved to a
    proportional font, and columns of numbers no longer lined up."""
    font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
    font.setStyleHint(QFont.StyleHint.Monospace)
    if like is not None:
        if like.pointSizeF() > 0:
            font.setPointSizeF(like.pointSizeF())
        elif like.pixelSize() > 0:
            font.setPixelSize(like.pixelSize())
        font.setWeight(like.weight())
        font.setItalic(like.italic())
    return font

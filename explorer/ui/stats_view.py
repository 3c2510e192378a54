"""Summary numbers and a value histogram for a whole layer output.

The numbers come from ``explorer.core.stats.layer_stats``; this widget only lays
them out. One PlotDataItem (stepMode="center") draws the histogram and is reused.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from explorer.core.stats import LayerStats
from explorer.ui.elided_label import ElidedLabel
from explorer.ui.fonts import fixed_font

# Colours shared by the layer views (readable on pyqtgraph's default black).
ACCENT = "#ffc400"          # selection / highlight
POSITIVE = "#4f9be8"        # bars and histogram
NEGATIVE = "#ef7a4c"


def format_value(v: float) -> str:
    """Four decimals for everyday magnitudes, scientific notation for tiny/huge ones."""
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == 0:
        return "0"
    if 1e-3 <= abs(v) < 1e5:
        return f"{v:.4f}"
    return f"{v:.3e}"


def format_count(n: int) -> str:
    return f"{int(n):,}"


class _StickyWidth(QtWidgets.QWidget):
    """The numbers' column: as wide as the widest text it has shown, never narrower. New numbers
    arrive on every edit; a column that followed their width resized the histogram beside it, and
    a resized plot is laid out and painted again (two extra paints per edit)."""

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self._widest = {"size": 0, "minimum": 0}

    def _sticky(self, which: str, hint: QtCore.QSize) -> QtCore.QSize:
        self._widest[which] = max(self._widest[which], hint.width())
        return QtCore.QSize(self._widest[which], hint.height())

    def sizeHint(self) -> QtCore.QSize:
        return self._sticky("size", super().sizeHint())

    def minimumSizeHint(self) -> QtCore.QSize:
        return self._sticky("minimum", super().minimumSizeHint())


class StatsView(QtWidgets.QWidget):
    """Compact panel: min, max, mean, std, % zeros, dead channels and a histogram."""

    FIELDS = (
        ("min", "Min"),
        ("max", "Max"),
        ("mean", "Mean"),
        ("std", "Std"),
        ("zeros", "Zeros"),
        ("dead", "Dead channels"),
        ("numel", "Values"),
        ("nan", "NaN"),
    )

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("statsView")
        self._stats: LayerStats | None = None

        outer = QtWidgets.QHBoxLayout(self)
        outer.setContentsMargins(6, 4, 6, 4)
        outer.setSpacing(12)

        numbers = _StickyWidth(self)
        left = QtWidgets.QVBoxLayout(numbers)
        left.setContentsMargins(0, 0, 0, 0)
        left.setSpacing(4)
        self.title = ElidedLabel("Layer statistics")     # shortened with '…', never clipped, in a narrow window
        self.title.setSizePolicy(QtWidgets.QSizePolicy.Policy.Preferred, QtWidgets.QSizePolicy.Policy.Fixed)  # whole when there is room
        self.title.setObjectName("statsTitle")
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        title_row = QtWidgets.QHBoxLayout()
        title_row.addWidget(self.title, 1)
        self.log_check = QtWidgets.QCheckBox("Log counts")
        self.log_check.setObjectName("statsLogCheck")
        self.log_check.setToolTip("Logarithmic count axis: shows the small bins next to a large spike (e.g. ReLU's zeros).")
        self.log_check.toggled.connect(self._set_log)
        title_row.addWidget(self.log_check)
        left.addLayout(title_row)

        grid = QtWidgets.QGridLayout()
        grid.setHorizontalSpacing(10)
        grid.setVerticalSpacing(2)
        self.value_labels: dict[str, QtWidgets.QLabel] = {}
        self._name_labels: dict[str, QtWidgets.QLabel] = {}
        for i, (key, text) in enumerate(self.FIELDS):
            name = QtWidgets.QLabel(text + ":")
            name.setAlignment(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)
            value = QtWidgets.QLabel("—")
            value.setObjectName("stat" + key.capitalize())
            value.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
            vfont = fixed_font(value.font())
            value.setFont(vfont)
            row, col = i % 4, (i // 4) * 2
            grid.addWidget(name, row, col)
            grid.addWidget(value, row, col + 1)
            self.value_labels[key] = value
            self._name_labels[key] = name
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
        left.addLayout(grid)
        left.addStretch(1)
        outer.addWidget(numbers, 0)

        self.plot = pg.PlotWidget(enableMenu=False)      # its context menu is not even built
        self.plot.setObjectName("statsHistogram")
        self.plot.setMinimumSize(110, 70)     # in a narrow window the numbers keep their width first
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        item = self.plot.getPlotItem()
        item.setLabel("bottom", "value")
        for name in ("left", "bottom"):
            item.getAxis(name).enableAutoSIPrefix(False)
            # Labelled ticks only: the axes are laid out again on every edit (a new value range), and
            # the unlabelled minor ticks were a third of this plot's paint, too fine to read here.
            item.getAxis(name).setStyle(maxTickLevel=0)
        item.getAxis("left").setWidth(58)
        item.getViewBox().setDefaultPadding(0.06)    # the top tick label is not cut off   # room for counts in the millions on the first paint
        self.histogram = pg.PlotDataItem(
            [0.0, 1.0], [0.0], stepMode="center", fillLevel=0,
            pen=pg.mkPen(POSITIVE, width=1), brush=pg.mkBrush(POSITIVE + "90"),
        )
        item.addItem(self.histogram)
        self.zero_line = pg.InfiniteLine(0.0, angle=90, pen=pg.mkPen("#bbbbbb", width=1,
                                                                    style=QtCore.Qt.PenStyle.DashLine))
        item.addItem(self.zero_line, ignoreBounds=True)
        outer.addWidget(self.plot, 1)

        self.setMinimumHeight(90)
        self.clear()

    # ------------------------------------------------------------------ API

    @property
    def stats(self) -> LayerStats | None:
        return self._stats

    def clear(self) -> None:
        self._stats = None
        self.title.setText("Layer statistics")
        for label in self.value_labels.values():
            label.setText("—")
        self._set_nan_visible(False)
        self.histogram.setData([0.0, 1.0], [0.0])
        self.zero_line.hide()

    def set_stats(self, stats: LayerStats | None, shape: tuple[int, ...] | None = None) -> None:
        """Show `stats` of a layer output of `shape` (used for the item count and
        the number of channels)."""
        if stats is None:
            self.clear()
            return
        self._stats = stats
        labels = self.value_labels
        labels["min"].setText(format_value(stats.min))
        labels["max"].setText(format_value(stats.max))
        labels["mean"].setText(format_value(stats.mean))
        labels["std"].setText(format_value(stats.std))
        labels["zeros"].setText(f"{stats.zero_fraction * 100:.1f}%")
        channels = shape[1] if shape is not None and len(shape) >= 2 else None
        vector = shape is not None and len(shape) == 2
        self._name_labels["dead"].setText("Dead features:" if vector else "Dead channels:")
        if channels is not None:
            labels["dead"].setText(f"{stats.dead_channels} of {channels}")
        else:
            labels["dead"].setText(str(stats.dead_channels))
        labels["numel"].setText(format_count(stats.numel))
        labels["nan"].setText(format_count(stats.nan_count))
        self._set_nan_visible(stats.nan_count > 0)
        labels["zeros"].setToolTip("Share of all values that are exactly 0 (for ReLU: units that did not fire).")
        labels["dead"].setToolTip(("Features" if vector else "Channels")
                                  + " that are 0 at every position in every batch item.")

        if shape is not None and len(shape) >= 1:
            items = shape[0]
            noun = "item" if items == 1 else "items"
            self.title.setText(f"Whole layer output ({items} batch {noun})")
        else:
            self.title.setText("Whole layer output")

        edges = np.asarray(stats.hist_edges, dtype=np.float64)
        counts = np.asarray(stats.hist_counts, dtype=np.float64)
        self.histogram.setData(edges, counts)
        lo, hi = float(edges[0]), float(edges[-1])
        self.zero_line.setVisible(lo < 0.0 < hi)
        self.plot.getPlotItem().setXRange(lo, hi, padding=0.02)
        self._fit_y()

    def _fit_y(self) -> None:
        # Fitted now, not when pyqtgraph would (while painting): a range found during a paint moves
        # the axes, and they are painted a second time.
        self.plot.getPlotItem().enableAutoRange(axis="y")
        self.plot.getPlotItem().getViewBox().prepareForPaint()     # the range and the transform

    def _set_log(self, on: bool) -> None:
        self.plot.getPlotItem().setLogMode(y=on)
        self._fit_y()

    # ------------------------------------------------------------------ helpers

    def _set_nan_visible(self, visible: bool) -> None:
        self.value_labels["nan"].setVisible(visible)
        self._name_labels["nan"].setVisible(visible)
        self.value_labels["nan"].setStyleSheet("color: #e04040; font-weight: bold;" if visible else "")

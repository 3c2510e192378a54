"""Bar chart of one batch item of a 2-D output [N, F] (Flatten, Linear, Softmax).

Up to MAX_BARS values are drawn one bar each; longer vectors are cut into
buckets and each bucket shows its value of largest magnitude (computed on the
tensor's device, so only MAX_BARS numbers reach the CPU) and the view says so.
With class names for every output (e.g. CIFAR-10's ten), the x axis is labelled
with them.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
import torch
from PySide6 import QtGui, QtWidgets

from explorer.ui.stats_view import ACCENT, NEGATIVE, POSITIVE, format_count, format_value
from explorer.ui.fonts import fixed_font
from explorer.ui.deferred import LazyMenuViewBox

MAX_BARS = 2000


def bucket_max_abs(values: torch.Tensor, max_points: int = MAX_BARS) -> tuple[np.ndarray, np.ndarray, int]:
    """values [F] -> (first index of each bucket, the bucket's value of largest |value|,
    bucket size). With F <= max_points every value is its own bucket."""
    values = values.detach().reshape(-1)
    if values.dtype not in (torch.float32, torch.float64):
        values = values.float()
    count = values.numel()
    bucket = max(1, -(-count // max(1, max_points)))
    if bucket == 1:
        picked = values
    else:
        n = -(-count // bucket)
        pad = n * bucket - count
        if pad:
            values = torch.cat((values, values.new_zeros(pad)))
        rows = values.view(n, bucket)
        # NaN wins argmax, so a NaN anywhere in a bucket stays visible as that bucket's value.
        picked = rows.gather(1, rows.abs().argmax(dim=1, keepdim=True)).squeeze(1)
    picked = picked.to("cpu").numpy().astype(np.float64)
    starts = np.arange(len(picked), dtype=np.float64) * bucket
    return starts, picked, bucket


def short_name(name: str, max_chars: int) -> str:
    if len(name) <= max_chars:
        return name
    return name[: max(1, max_chars - 1)] + "…"


class VectorView(QtWidgets.QWidget):
    """A pg.BarGraphItem of one vector; hover reads a value."""

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("vectorView")
        self._starts = np.zeros(0)
        self._values = np.zeros(0)
        self._bucket = 1
        self._count = 0
        self._class_names: list[str] | None = None

        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)

        self.title = QtWidgets.QLabel("")
        self.title.setObjectName("vectorTitle")
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        self.title.setContentsMargins(4, 0, 4, 0)
        layout.addWidget(self.title)

        self.plot_widget = pg.PlotWidget(viewBox=LazyMenuViewBox())
        self.plot_widget.setObjectName("vectorPlot")
        self.plot_widget.setMinimumSize(220, 140)
        self.plot = self.plot_widget.getPlotItem()
        self.plot.showGrid(y=True, alpha=0.25)
        self.plot.setMouseEnabled(x=True, y=False)
        self.plot.getAxis("left").setWidth(56)
        self.plot.setLabel("left", "value")
        for name in ("left", "bottom"):
            self.plot.getAxis(name).enableAutoSIPrefix(False)
        self.bars = pg.BarGraphItem(x0=[0.0], height=[0.0], width=1.0)
        self.plot.addItem(self.bars)
        self.zero_line = pg.InfiniteLine(0.0, angle=0, pen=pg.mkPen("#999999", width=1))
        self.plot.addItem(self.zero_line, ignoreBounds=True)
        layout.addWidget(self.plot_widget, 1)

        self.note = QtWidgets.QLabel("")
        self.note.setObjectName("vectorNote")
        self.note.setWordWrap(True)
        self.note.setContentsMargins(4, 0, 4, 2)
        layout.addWidget(self.note)

        self.readout = QtWidgets.QLabel("")
        self.readout.setObjectName("vectorReadout")
        rfont = fixed_font(self.readout.font())
        self.readout.setFont(rfont)
        self.readout.setContentsMargins(4, 0, 4, 2)
        layout.addWidget(self.readout)

        self.plot_widget.scene().sigMouseMoved.connect(self._mouse_moved)
        self.plot.vb.sigResized.connect(self._update_ticks)
        self.plot.vb.sigXRangeChanged.connect(self._update_ticks)

    # ------------------------------------------------------------------ API

    @property
    def bar_count(self) -> int:
        return len(self._values)

    @property
    def bucket_size(self) -> int:
        return self._bucket

    @property
    def bar_values(self) -> np.ndarray:
        return self._values

    def tick_labels(self) -> list[str]:
        """The class-name ticks on the x axis ([] when the axis shows indices)."""
        ticks = self.plot.getAxis("bottom")._tickLevels
        if not ticks:
            return []
        return [label for _, label in ticks[0]]

    def set_vector(self, values: torch.Tensor, class_names: list[str] | None = None,
                   title: str = "", bars: tuple[np.ndarray, np.ndarray, int] | None = None) -> None:
        """Show values [F] (any device); class_names label the bars when there is one per value.
        ``bars``: bucket_max_abs(values) when already computed off the GUI thread (the feature view)."""
        starts, picked, bucket = bars if bars is not None else bucket_max_abs(values)
        self._count = int(values.numel())
        self._starts, self._bucket = starts, bucket
        self._values = picked
        names = list(class_names) if class_names is not None and len(class_names) == self._count else None
        self._class_names = names
        self.title.setText(title)

        finite = np.nan_to_num(picked, nan=0.0, posinf=0.0, neginf=0.0)
        if bucket == 1:
            width = 0.8 if self._count <= 200 else 1.0
            x0 = starts + (1.0 - width) / 2 - 0.5
        else:
            width = float(bucket)
            x0 = starts - 0.5
        # Colour by sign; with few bars also pick out the largest value.
        small = len(picked) <= 256
        if small:
            brushes = [pg.mkBrush(POSITIVE if v >= 0 else NEGATIVE) for v in finite]
            if len(finite) and np.isfinite(picked).any():
                top = int(np.nanargmax(picked))
                brushes[top] = pg.mkBrush(ACCENT)
            self.bars.setOpts(x0=x0, height=finite, width=width, brushes=brushes, brush=None,
                              pen=pg.mkPen(None))
        else:
            self.bars.setOpts(x0=x0, height=finite, width=width, brushes=None,
                              brush=pg.mkBrush(POSITIVE), pen=pg.mkPen(None))

        self._update_ticks()
        self.plot.setLabel("bottom", "class" if names else "feature index")

        lo = float(np.min(finite, initial=0.0))
        hi = float(np.max(finite, initial=0.0))
        span = hi - lo or 1.0
        self.plot.setXRange(-0.5, self._count - 0.5, padding=0.01)
        self.plot.setYRange(min(lo, 0.0) - 0.02 * span, max(hi, 0.0) + 0.05 * span, padding=0)
        self.plot.setLimits(xMin=-0.5 - 0.05 * self._count, xMax=self._count - 0.5 + 0.05 * self._count)

        notes = []
        if bucket > 1:
            notes.append(f"{format_count(self._count)} values: showing {format_count(len(picked))} bars, "
                         f"each the value of largest magnitude among {format_count(bucket)} neighbours.")
        nans = int(np.isnan(picked).sum())
        if nans:
            notes.append(f"{nans} bar(s) hold NaN (drawn as 0).")
        if len(picked) and np.isfinite(picked).any():
            top = int(np.nanargmax(picked))
            if names:
                where = names[top]
            elif bucket > 1:
                first = int(starts[top])
                where = f"indices {first}..{min(self._count, first + bucket) - 1}"
            else:
                where = f"index {top}"
            notes.append(f"Largest: {where} = {format_value(picked[top])}.")
        self.note.setText("  ".join(notes))
        self.readout.setText("Move the mouse over the bars to read values.")

    # ------------------------------------------------------------------ helpers

    def _update_ticks(self, *_) -> None:
        bottom = self.plot.getAxis("bottom")
        if not self._class_names:
            bottom.setTicks(None)
            return
        width_px = max(1.0, self.plot.vb.width())
        view = self.plot.vb.viewRange()[0]
        shown = max(1.0, view[1] - view[0])
        px_per_bar = width_px / shown
        metrics = QtGui.QFontMetrics(bottom.style.get("tickFont") or self.font())
        char_px = max(5, metrics.averageCharWidth())
        # Bars too narrow for a readable name (ImageNet's 1000): label every step-th bar only.
        step = max(1, math.ceil((8 * char_px + 6) / px_per_bar)) if px_per_bar < 3 * char_px + 6 else 1
        max_chars = max(3, int((step * px_per_bar - 6) / char_px)) if step == 1 else \
            max(3, int(0.8 * (step * px_per_bar - 6) / char_px))     # names vary in width: leave a gap
        labels = [(float(i), short_name(name, max_chars)) for i, name in enumerate(self._class_names)
                  if i % step == 0]
        bottom.setTicks([labels, []])

    def _mouse_moved(self, scene_pos) -> None:
        if not len(self._values) or not self.plot.vb.sceneBoundingRect().contains(scene_pos):
            return
        x = self.plot.vb.mapSceneToView(scene_pos).x()
        index = math.floor(x + 0.5)
        if not 0 <= index < self._count:
            self.readout.setText("")
            return
        bar = min(len(self._values) - 1, index // self._bucket)
        value = format_value(self._values[bar])
        if self._bucket > 1:
            first = int(self._starts[bar])
            last = min(self._count, first + self._bucket) - 1
            self.readout.setText(f"indices {first}..{last}: largest magnitude {value}")
        elif self._class_names:
            self.readout.setText(f"{index} {self._class_names[index]}: {value}")
        else:
            self.readout.setText(f"index {index}: {value}")

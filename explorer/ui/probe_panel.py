"""'Why does this pixel have this value?' Hover a pixel of a Conv2d, ConvTranspose2d, MaxPool2d,
AvgPool2d or MaxUnpool2d output in the large channel view: this panel shows the layer's input
around the window the pixel reads (window outlined, every tap marked), and the window's values,
the kernel, their products and the sum plus bias, which equals the value under the cursor.

It works from the session state's last finished run and the stack that run used, so what it explains
is what is on screen. Probing one pixel is small: only the window is copied off the device (explorer.core.probe)."""

from __future__ import annotations

import html

import numpy as np
import pyqtgraph as pg
import torch
from PySide6.QtCore import QRectF, Qt
from PySide6.QtWidgets import QGraphicsRectItem, QHBoxLayout, QLabel, QScrollArea, QVBoxLayout, QWidget

from explorer.core.colormaps import get_lut
from explorer.core.kernels import layer_parameters
from explorer.core.probe import NEEDS_WEIGHTS, ON_OUTPUT, PROBED_TYPES, Probe, ProbeError, probe_layer
from explorer.ui.qt_signals import qt_signals_blocked
from explorer.ui.session_state import SessionState
from explorer.ui.spin_boxes import CheckedSpinBox

HINT = ("Hover a pixel of a Conv2d, ConvTranspose2d, MaxPool2d, AvgPool2d or MaxUnpool2d output in the large "
        "channel view to see how its value is computed.")
MAX_TABLE_CELLS = 49          # kernels up to 7x7 are shown cell by cell; larger ones as sums
MAX_CHANNEL_TABLES = 3        # input channels shown cell by cell; the rest as one line each
MARGIN = 3                    # input pixels shown around the window


def _num(v: float) -> str:
    if not np.isfinite(v):
        return "−∞" if v < 0 else ("∞" if v > 0 else "nan")
    if v == 0:
        return "0"
    return f"{v:.3g}"


def _table(values: np.ndarray, inside: np.ndarray | None = None, bold: tuple[int, int] | None = None,
           title: str = "") -> str:
    rows = []
    for r in range(values.shape[0]):
        cells = []
        for c in range(values.shape[1]):
            text = _num(float(values[r, c]))
            style = "padding:1px 4px;"
            if inside is not None and not inside[r, c]:
                style += "color:#999;"
            if bold == (r, c):
                text = f"<b>{text}</b>"
                style += "background:#ffe08a;"
            cells.append(f'<td align="right" style="{style}">{text}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    head = f'<tr><td colspan="{values.shape[1]}" style="color:#555;">{html.escape(title)}</td></tr>' if title else ""
    return f'<table cellspacing="0" style="border:1px solid #bbb;">{head}{"".join(rows)}</table>'


class ProbePanel(QWidget):
    def __init__(self, state: SessionState | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("probePanel")
        self.state = state if state is not None else SessionState(parent=self)
        self.current: Probe | None = None
        self._picture_source: torch.Tensor | None = None   # what the picture of the current probe shows
        self._last: tuple[int, int, int, int, int] | None = None   # layer, batch, channel, x, y

        self.title = QLabel(HINT, self)
        self.title.setObjectName("probeTitle")
        self.title.setWordWrap(True)
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)

        self.graphics = pg.GraphicsLayoutWidget(self)
        self.graphics.setObjectName("probeInput")
        self.graphics.setMinimumSize(150, 150)
        self.plot = self.graphics.addPlot()
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.plot.setAspectLocked(True)
        self.plot.invertY(True)
        self.plot.setMouseEnabled(False, False)
        self.plot.getAxis("left").setWidth(28)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.plot.addItem(self.image)
        self.box = QGraphicsRectItem()
        self.box.setPen(pg.mkPen(255, 140, 0, width=2, cosmetic=True))
        self.plot.addItem(self.box)
        self.taps = pg.ScatterPlotItem(size=7, pen=pg.mkPen(255, 140, 0, width=1.5), brush=None, symbol="s")
        self.plot.addItem(self.taps)
        self.winner = pg.ScatterPlotItem(size=11, pen=pg.mkPen(220, 30, 30, width=2.5), brush=None, symbol="o")
        self.plot.addItem(self.winner)
        self.input_caption = QLabel("", self)
        self.input_caption.setWordWrap(True)

        self.channel_spin = CheckedSpinBox(self, label="Input channel")
        self.channel_spin.setObjectName("probeChannel")
        self.channel_spin.setToolTip("Which input channel the picture shows.")
        self.channel_spin.valueChanged.connect(lambda _: self._draw_input())

        self.details = QLabel("", self)
        self.details.setObjectName("probeDetails")
        self.details.setTextFormat(Qt.TextFormat.RichText)
        self.details.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary = QLabel("", self)
        self.summary.setObjectName("probeSummary")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        # The picture and its caption side by side on top, the tables below at the full width.
        self.graphics.setFixedSize(190, 170)
        beside = QVBoxLayout()
        picker = QHBoxLayout()
        picker.addWidget(QLabel("input channel shown", self))
        picker.addWidget(self.channel_spin)
        picker.addStretch(1)
        beside.addLayout(picker)
        beside.addWidget(self.input_caption)
        beside.addWidget(self.summary)
        beside.addStretch(1)
        top = QHBoxLayout()
        top.addWidget(self.graphics)
        top.addLayout(beside, 1)
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setWidget(self.details)
        body = QVBoxLayout()
        body.setContentsMargins(0, 0, 0, 0)
        body.addLayout(top)
        body.addWidget(scroll, 1)
        self.body = QWidget(self)
        self.body.setLayout(body)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.title)
        layout.addWidget(self.body, 1)
        self.clear()
        self.state.last_run_changed.connect(self._run_changed)

    # ------------------------------------------------------------ input from the state
    def _run_changed(self, _run) -> None:
        """A finished run is what later hovers explain. Re-explains the last pixel, so the panel
        follows edits while the mouse rests."""
        if self._last is not None and self.current is not None:
            self.probe_pixel(*self._last)

    def clear(self, text: str = HINT) -> None:
        self.current = None
        self._last = None
        self.title.setText(text)
        self.body.setVisible(False)
        self.summary.setText("")

    def probe_pixel(self, layer_index: int | str, batch: int, channel: int, x: int, y: int) -> Probe | None:
        """Explains output[batch, channel, y, x] of the layer (its index in the last run, or its name,
        which stays right while a run for an edited stack is on its way); x < 0 (the mouse left)
        keeps the last one."""
        if x < 0 or y < 0:
            return self.current
        run = self.state.last_run
        if run is None:
            return None
        stack, result, source = run.stack, run.result, run.batch.tensor
        requested = layer_index
        if isinstance(layer_index, str):
            names = stack.names()
            if layer_index not in names:
                self.clear()
                return None
            layer_index = names.index(layer_index)
        if not (0 <= layer_index < len(result.layers)) or layer_index >= len(stack.layers):
            self.clear()
            return None
        spec = stack.layers[layer_index]
        layer = result.layers[layer_index]
        self._last = (requested, batch, channel, x, y)
        if spec.type not in PROBED_TYPES:
            self.clear(f"{spec.name} is a {spec.type}; hover explanations cover {', '.join(PROBED_TYPES)}.")
            self._last = None
            return None
        if not spec.enabled:
            self.clear(f"{spec.name} is disabled: it passes its input through unchanged.")
            return None
        if layer.error or layer.output is None:
            self.clear(f"{spec.name} did not run, so there is nothing to explain.")
            return None
        layer_input = source if layer_index == 0 else result.layers[layer_index - 1].output
        try:
            params = layer_parameters(spec, stack.seed) if spec.layer_type.probe in NEEDS_WEIGHTS else None
            pool_indices = None
            if spec.layer_type.takes_indices:
                pool = next((r for r in result.layers if r.name == spec.indices_from), None)
                pool_indices = pool.indices if pool is not None else None
            probe = probe_layer(spec.type, spec.full_args(), params, layer_input, layer.output, batch, channel, y, x,
                                pool_indices=pool_indices, indices=layer.indices)
        except ProbeError as e:
            self.clear(str(e))
            return None
        self._show(probe, spec.name, layer.output if spec.layer_type.probe in ON_OUTPUT else layer_input)
        return probe

    # ------------------------------------------------------------ drawing
    def _show(self, p: Probe, name: str, picture_source: torch.Tensor) -> None:
        self.current = p
        self._picture_source = picture_source
        self.body.setVisible(True)
        self.title.setText(f"{name} ({p.layer_type}) · channel {p.channel} · row {p.y}, column {p.x} "
                           f"= {_num(p.output_value)}")
        first_shown = p.in_channels[0]
        with qt_signals_blocked(self.channel_spin):
            self.channel_spin.setRange(p.in_channels[0], p.in_channels[-1])
            if not (p.in_channels[0] <= self.channel_spin.value() <= p.in_channels[-1]):
                self.channel_spin.setValue(first_shown)
        self.channel_spin.setEnabled(len(p.in_channels) > 1)
        self._draw_input()
        self.details.setText(self._details_html(p))
        self.summary.setText(self._summary(p))

    def _draw_input(self) -> None:
        p = self.current
        if p is None:
            return
        ch = self.channel_spin.value() if p.kind in ("conv", "conv_transpose") else p.channel
        h, w = self._picture_source.shape[-2:]
        top, left, bottom, right = p.box
        span = max(bottom - top, right - left) + 1
        margin = max(MARGIN, span // 2)
        r0, r1 = max(min(top, h - 1) - margin, 0), min(max(bottom, 0) + margin + 1, h)
        c0, c1 = max(min(left, w - 1) - margin, 0), min(max(right, 0) + margin + 1, w)
        crop = self._picture_source[p.batch, ch, r0:r1, c0:c1].detach().to("cpu", torch.float32).numpy()
        finite = crop[np.isfinite(crop)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        scaled = np.zeros(crop.shape, np.uint8) if hi <= lo else \
            np.clip((crop - lo) / (hi - lo) * 255, 0, 255).astype(np.uint8)
        self.image.setImage(np.ascontiguousarray(scaled), autoLevels=False, levels=(0, 255), lut=get_lut("gray"))
        self.image.setRect(QRectF(c0, r0, c1 - c0, r1 - r0))
        self.box.setRect(QRectF(left, top, right - left + 1, bottom - top + 1))
        used = p.inside
        self.taps.setData(x=(p.cols[used] + 0.5).ravel(), y=(p.rows[used] + 0.5).ravel())
        marks = []
        if p.winner is not None:
            marks = [p.winner]
        elif p.kind == "max_unpool" and p.source is not None:
            marks = [(p.y, p.x)]
        self.winner.setData(x=[c + 0.5 for _, c in marks], y=[r + 0.5 for r, _ in marks])
        self.plot.setRange(xRange=(c0 - 0.5, c1 + 0.5), yRange=(r0 - 0.5, r1 + 0.5), padding=0)
        what = "output of this layer" if p.kind == "max_unpool" else "layer's input"
        self.input_caption.setText(f"The {what}, channel {ch}, rows {r0}–{r1 - 1}, columns {c0}–{c1 - 1}; "
                                   f"orange: the window ({p.rows.shape[0]}×{p.rows.shape[1]} taps)"
                                   + (", red: the winner" if marks else "") + ".")

    def _details_html(self, p: Probe) -> str:
        parts = []
        if p.kind in ("conv", "conv_transpose"):
            small = p.values[0].size <= MAX_TABLE_CELLS
            for k, ch in enumerate(p.in_channels):
                if k < MAX_CHANNEL_TABLES and small:
                    parts.append(f"<p><b>input channel {ch}</b>: sum of products = {_num(p.channel_sums[k])}</p>"
                                 f'<table><tr><td>{_table(p.values[k], p.inside, title="window")}</td>'
                                 f'<td>×</td><td>{_table(p.kernel[k], title="kernel")}</td>'
                                 f'<td>=</td><td>{_table(p.products[k], p.inside, title="products")}</td></tr></table>')
                else:
                    parts.append(f"input channel {ch}: sum of products = {_num(p.channel_sums[k])}<br>")
            if p.kind == "conv_transpose":
                parts.append("<p style='color:#555;'>Gray cells: no input pixel lands on that kernel tap "
                             "(the stride skips it, or it falls outside the input).</p>")
            elif not p.inside.all():
                parts.append("<p style='color:#555;'>Gray cells lie in the padding.</p>")
        elif p.kind == "max_pool":
            r = int(np.argwhere((p.rows == p.winner[0]) & (p.cols == p.winner[1]))[0][0]) if p.winner else None
            c = int(np.argwhere((p.rows == p.winner[0]) & (p.cols == p.winner[1]))[0][1]) if p.winner else None
            parts.append(_table(p.values[0], p.inside, (r, c) if r is not None else None, "window (padding: −∞)"))
            parts.append(f"<p>The largest value is at row {p.winner[0]}, column {p.winner[1]} of the input; "
                         f"MaxUnpool2d will put it back at index {p.winner_index} "
                         f"(= {p.winner[0]} × {p.input_size[1]} + {p.winner[1]}).</p>")
        elif p.kind == "avg_pool":
            parts.append(_table(p.values[0], p.inside, None, "window"))
            real = float((p.values[0] * p.inside).sum())
            parts.append(f"<p>sum {_num(real)} ÷ {_num(p.divisor)} = {_num(p.total)}</p>")
        elif p.kind == "max_unpool":
            parts.append(_table(p.values[0], p.inside, (p.y - int(p.rows.min()), p.x - int(p.cols.min())),
                                "this block of the output"))
            if p.placed:
                lines = "".join(f"<li>{_num(v)} → row {r}, column {c}</li>" for r, c, v in p.placed)
                parts.append(f"<p>Values put back into this block:</p><ul>{lines}</ul>")
        return "".join(parts)

    def _summary(self, p: Probe) -> str:
        matches = "✓ matches" if abs(p.total - p.output_value) <= 1e-4 * max(1.0, abs(p.output_value)) \
            else "≠ (the maps are being recomputed)"
        if p.kind in ("conv", "conv_transpose"):
            n = len(p.in_channels)
            text = (f"Σ products over {n} input channel{'s' if n != 1 else ''} = {_num(float(p.channel_sums.sum()))}"
                    f"  + bias {_num(p.bias)}  = {_num(p.total)}  {matches} the output {_num(p.output_value)}")
            return text + (f". {p.note}" if p.note else "")
        if p.kind == "max_pool":
            return f"max of the window = {_num(p.total)}  {matches} the output {_num(p.output_value)}"
        if p.kind == "avg_pool":
            return f"average = {_num(p.total)}  {matches} the output {_num(p.output_value)}"
        if p.source is not None:
            return (f"This pixel holds {_num(p.total)}, the maximum of pooled pixel row {p.source[0]}, "
                    f"column {p.source[1]}, put back where the pool found it.")
        return p.note

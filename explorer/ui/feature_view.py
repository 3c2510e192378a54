"""The selected layer's output: every channel as one tiled image, the chosen
channel large with its value range, a bar chart for vector outputs, and the
layer's statistics.

Rendering is done by ``explorer.core.render`` on the tensor's own device and
arrives here as uint8; each grid is ONE ``pg.ImageItem`` with a 256-entry LUT
(pyqtgraph's fast path), and every item is created once and updated with
``setImage``. Changing the colour map only swaps LUTs.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from dataclasses import replace

import numpy as np
import torch
from PySide6 import QtWidgets
from PySide6.QtCore import Qt, Signal

from explorer.core.colormaps import COLORMAPS, DIVERGING, colormap_names, get_lut
from explorer.core.engine import LayerResult
from explorer.core.render import (
    NORMALIZATIONS,
    RenderedGrid,
    grid_layout,
    render_channel,
    save_png,
    to_png_array,
)
from explorer.core.display import LayerDisplay, ViewSettings, render_view
from explorer.core.stats import LayerStats
from explorer.ui.channel_view import ChannelView
from explorer.ui.display_worker import DisplayPreparer, DisplayReply, VectorBars, view_key
from explorer.ui.feature_grid import FeatureGrid
from explorer.ui.qt_signals import qt_signals_blocked
from explorer.ui.session_state import SessionState
from explorer.ui.stats_view import StatsView, format_value
from explorer.ui.vector_view import VectorView
from explorer.ui.spin_boxes import CheckedSpinBox
from explorer.ui.flow_layout import flow_row
from explorer.ui.elided_label import ElidedLabel
from explorer.ui.deferred import DeferredWidget

MODES = ("grid", "rgb", "batch")
MODE_LABELS = {
    "grid": "All channels",
    "rgb": "Channels 0–2 as RGB",
    "batch": "One channel, whole batch",
}
NORMALIZATION_LABELS = {
    "channel": "Per channel",
    "layer": "Per layer",
    "symmetric": "Symmetric (±)",
}
COLORMAP_LABELS = {DIVERGING: "diverging"}
NO_LAYER_MESSAGE = "Select a layer to see its feature maps."

# Page indices of the central stack.
_PAGE_MESSAGE, _PAGE_MAPS, _PAGE_VECTOR = 0, 1, 2
_STATS_CACHE_SIZE = 16
_VIEW_CACHE_SIZE = 6         # prepared pictures (each at most ViewSettings.max_pixels bytes)


# =========================================================================== main panel


def _combo(name: str, items: list[tuple[str, str]], tooltip: str) -> QtWidgets.QComboBox:
    combo = QtWidgets.QComboBox()
    combo.setObjectName(name)
    combo.setToolTip(tooltip)
    combo.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToContents)
    for data, text in items:
        combo.addItem(text, data)
    return combo


def _set_combo(combo: QtWidgets.QComboBox, data: str) -> None:
    i = combo.findData(data)
    if i >= 0 and combo.currentIndex() != i:
        with qt_signals_blocked(combo):
            combo.setCurrentIndex(i)


def _shape_text(shape) -> str:
    return "[" + ", ".join(str(int(s)) for s in shape) + "]" if shape is not None else "?"


class FeatureView(QtWidgets.QWidget):
    """The selected layer's output. Give it a LayerResult with `set_layer`; it
    keeps no layer logic of its own and renders only what it is given.

    The view settings (mode, normalization, batch item, channel) live in the session state, shared
    with the input panel and the run requests: the setters write them there, and the view draws
    when the state says they changed, whoever changed them."""

    channel_selected = Signal(int)
    batch_index_selected = Signal(int)   # a tile was clicked in "batch" mode

    def __init__(self, state: SessionState | None = None, parent: QtWidgets.QWidget | None = None,
                 deferred: bool = False):
        """``deferred``: the channel view, the statistics and the bar chart (three pyqtgraph plots)
        are built when first used or by ``build_steps`` on idle turns, not here (a window that opens
        while the user waits, such as the walkthrough, must not freeze for them)."""
        super().__init__(parent)
        self.setObjectName("featureView")
        self._deferred = deferred
        self.state = state if state is not None else SessionState(parent=self)
        self._shown: ViewSettings = self.state.view     # the settings drawn; the state's once applied
        self._result: LayerResult | None = None
        self._class_names: list[str] | None = None
        self._colormap = "gray"
        self._cmap_before_symmetric: str | None = None
        self._grid: RenderedGrid | None = None        # what the grid shows (grid / batch mode)
        self._rgb: np.ndarray | None = None           # what the grid shows in rgb mode
        self._channel_png_source: RenderedGrid | None = None
        self._stats_cache: OrderedDict[int, tuple] = OrderedDict()
        # Prepared pictures: view_key -> (weakref to the output, PreparedView or VectorBars)
        self._views: OrderedDict[tuple, tuple] = OrderedDict()
        # Statistics and pictures are prepared off the GUI thread; the view draws them when ready.
        self.preparer = DisplayPreparer(self)
        self.preparer.ready.connect(self._display_ready)
        self._waiting: int | None = None      # token of the request the view waits for
        self._waiting_view = False            # that request draws the picture (not only counts)
        self._stats_held = False              # a run is on its way: count after it, not beside it
        self._reset_pending = False           # reset the zoom when the awaited picture arrives
        self._drawn: tuple | None = None      # (weakref to the output, mode) of the picture on screen

        self._build_toolbar()
        self._build_body()

        outer = QtWidgets.QVBoxLayout(self)
        outer.setContentsMargins(4, 4, 4, 4)
        outer.setSpacing(4)
        outer.addLayout(self._toolbar)
        outer.addWidget(self.splitter, 1)
        # Usable on a 1024x600 screen with every dock open; the height follows the toolbar rows.
        self.setMinimumWidth(300)
        self.set_layer(None)
        self.state.view_changed.connect(self._view_changed)

    # ------------------------------------------------------------------ construction

    def _build_toolbar(self) -> None:
        # The choices wrap onto a second row in a narrow window (a 1024-pixel screen with both
        # docks open) instead of setting the window's minimum width.
        bar_box, bar = flow_row()
        bar_box.setObjectName("featureToolbar")
        self.mode_combo = _combo("modeCombo", [(m, MODE_LABELS[m]) for m in MODES],
                                 "What the grid shows:\n"
                                 "All channels: every channel of one batch item\n"
                                 "Channels 0–2 as RGB: the first three channels as one colour image\n"
                                 "One channel, whole batch: the selected channel for every item")
        self.norm_combo = _combo("normCombo", [(n, NORMALIZATION_LABELS[n]) for n in NORMALIZATIONS],
                                 "How values become brightness:\n"
                                 "Per channel: each channel stretched to its own min..max\n"
                                 "Per layer: one min..max for all channels, so they compare\n"
                                 "Symmetric (±): -m..m around zero, zero in the middle (a diverging map, blue–red)")
        self.cmap_combo = _combo("cmapCombo",
                                 [(n, COLORMAP_LABELS.get(n, n)) for n in colormap_names()],
                                 "Colour map")
        self.channel_spin = CheckedSpinBox(label="Channel")
        self.channel_spin.setObjectName("channelSpin")
        self.channel_spin.setToolTip("Selected channel (click a tile or use the arrow keys)")
        self.channel_spin.setMinimumWidth(64)
        self.info_label = QtWidgets.QLabel("")
        self.info_label.setObjectName("infoLabel")
        self.info_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        def labelled(text: str, w: QtWidgets.QWidget) -> None:
            pair = QtWidgets.QWidget()
            row = QtWidgets.QHBoxLayout(pair)
            row.setContentsMargins(0, 0, 6, 0)
            row.setSpacing(6)
            label = QtWidgets.QLabel(text)
            label.setBuddy(w)
            row.addWidget(label)
            row.addWidget(w)
            bar.addWidget(pair)

        labelled("&Show:", self.mode_combo)
        labelled("&Normalise:", self.norm_combo)
        labelled("C&olours:", self.cmap_combo)
        labelled("C&hannel:", self.channel_spin)
        info_font = self.info_label.font()
        info_font.setBold(True)
        self.info_label.setFont(info_font)
        self.info_label.setContentsMargins(2, 0, 2, 0)
        self.info_label.setWordWrap(True)      # a long layer name wraps instead of widening the window
        header = QtWidgets.QVBoxLayout()
        header.setSpacing(3)
        header.addWidget(self.info_label)
        header.addWidget(bar_box)
        self._toolbar = header

        self.mode_combo.currentIndexChanged.connect(
            lambda _: self.set_mode(self.mode_combo.currentData()))
        self.norm_combo.currentIndexChanged.connect(
            lambda _: self.set_normalization(self.norm_combo.currentData()))
        self.cmap_combo.currentIndexChanged.connect(
            lambda _: self.set_colormap(self.cmap_combo.currentData(), user=True))
        self.channel_spin.valueChanged.connect(self.set_selected_channel)

    def _build_body(self) -> None:
        self.message_label = QtWidgets.QLabel(NO_LAYER_MESSAGE)
        self.message_label.setObjectName("messageLabel")
        self.message_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message_label.setWordWrap(True)
        self.message_label.setMargin(24)
        mfont = self.message_label.font()
        mfont.setPointSizeF(mfont.pointSizeF() * 1.15)
        self.message_label.setFont(mfont)

        self.grid = FeatureGrid()
        self.grid.tile_selected.connect(self._tile_selected)
        self.grid.tile_hovered.connect(self._tile_hovered)
        self.hover_label = ElidedLabel("")      # one line: never drawn over the grid in a small window
        self.hover_label.setObjectName("gridHoverLabel")
        self.hover_label.setContentsMargins(4, 0, 4, 2)
        grid_box = QtWidgets.QWidget()
        gl = QtWidgets.QVBoxLayout(grid_box)
        gl.setContentsMargins(0, 0, 0, 0)
        gl.setSpacing(2)
        self.grid_title = QtWidgets.QLabel("")
        self.grid_title.setObjectName("gridTitle")
        gfont = self.grid_title.font()
        gfont.setBold(True)
        self.grid_title.setFont(gfont)
        self.grid_title.setContentsMargins(4, 0, 4, 0)
        gl.addWidget(self.grid_title)
        gl.addWidget(self.grid, 1)
        gl.addWidget(self.hover_label)

        self._channel_part = self._part(lambda: ChannelView(deferred_colorbar=self._deferred))
        self.maps_splitter = QtWidgets.QSplitter(Qt.Orientation.Horizontal)
        self.maps_splitter.setObjectName("mapsSplitter")
        self.maps_splitter.addWidget(grid_box)
        self.maps_splitter.addWidget(self._channel_part)
        self.maps_splitter.setStretchFactor(0, 3)
        self.maps_splitter.setStretchFactor(1, 2)
        self.maps_splitter.setChildrenCollapsible(False)

        self._vector_part = self._part(VectorView)

        self.stack = QtWidgets.QStackedWidget()
        self.stack.addWidget(self.message_label)    # _PAGE_MESSAGE
        self.stack.addWidget(self.maps_splitter)    # _PAGE_MAPS
        self.stack.addWidget(self._vector_part)     # _PAGE_VECTOR

        self._stats_part = self._part(StatsView)
        self.splitter = QtWidgets.QSplitter(Qt.Orientation.Vertical)
        self.splitter.setObjectName("featureSplitter")
        self.splitter.addWidget(self.stack)
        self.splitter.addWidget(self._stats_part)
        self.splitter.setStretchFactor(0, 5)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setChildrenCollapsible(False)

    def _part(self, factory):
        return DeferredWidget(factory) if self._deferred else factory()

    @staticmethod
    def _built(part) -> bool:
        return not isinstance(part, DeferredWidget) or part.built

    @staticmethod
    def _widget(part):
        return part.widget() if isinstance(part, DeferredWidget) else part

    def build_steps(self) -> list:
        """One call per plot not built yet, for an IdleBuilder (deferred views only)."""
        steps = [part.widget for part in (self._channel_part, self._stats_part, self._vector_part)
                 if not self._built(part)]
        if steps and steps[0] == self._channel_part.widget:
            steps.insert(1, lambda: self.channel_view.colorbar)
        return steps

    # ------------------------------------------------------------------ properties

    @property
    def channel_view(self) -> ChannelView:
        return self._widget(self._channel_part)

    @property
    def stats_view(self) -> StatsView:
        return self._widget(self._stats_part)

    @property
    def vector_view(self) -> VectorView:
        return self._widget(self._vector_part)

    @property
    def result(self) -> LayerResult | None:
        return self._result

    # What is drawn, read by the drawing code; set only by _view_changed (from the state).
    @property
    def _mode(self) -> str:
        return self._shown.mode

    @property
    def _normalization(self) -> str:
        return self._shown.normalization

    @property
    def _batch_index(self) -> int:
        return self._shown.batch_index

    @property
    def _selected_channel(self) -> int:
        return self._shown.channel

    @property
    def normalization(self) -> str:
        return self._normalization

    @normalization.setter
    def normalization(self, value: str) -> None:
        self.set_normalization(value)

    @property
    def colormap(self) -> str:
        return self._colormap

    @colormap.setter
    def colormap(self, value: str) -> None:
        self.set_colormap(value, user=True)

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        self.set_mode(value)

    @property
    def selected_channel(self) -> int:
        return self._selected_channel

    @selected_channel.setter
    def selected_channel(self, value: int) -> None:
        self.set_selected_channel(value)

    @property
    def batch_index(self) -> int:
        return self._batch_index

    @property
    def message(self) -> str | None:
        """The centred message when one is shown instead of a plot, else None."""
        return self.message_label.text() if self.stack.currentIndex() == _PAGE_MESSAGE else None

    # ------------------------------------------------------------------ public API

    def set_layer(self, result: LayerResult | None, class_names: list[str] | None = None) -> None:
        """Show `result`'s output (None or an errored result shows a message)."""
        if result is not None and result is self._result and \
                (list(class_names) if class_names else None) == self._class_names:
            return          # on screen already: the run sent this layer before the rest of the stack
        previous = self._result
        self._result = result
        self._class_names = list(class_names) if class_names else None
        out = self._output()
        if out is None:
            self._grid = self._rgb = self._channel_png_source = None
            self._waiting, self._waiting_view, self._drawn = None, False, None
            self.preparer.forget()
            self.grid.clear()
            if self._built(self._channel_part):
                self.channel_view.clear()
            if self._built(self._stats_part):
                self.stats_view.clear()
            self._stats_part.hide()
            self._show_message(result)
            self._update_controls()
            return
        clamped = out.dim() == 4 and self._selected_channel > out.shape[1] - 1
        fitted = replace(self._shown, batch_index=min(self._batch_index, out.shape[0] - 1),
                         channel=out.shape[1] - 1 if clamped else self._selected_channel)
        if fitted != self._shown:
            self._shown = fitted          # drawn below; the state's signal then finds nothing to do
            self.state.view = fitted
        same_shape = previous is not None and previous.output is not None and \
            tuple(previous.output.shape) == tuple(out.shape)
        stats = self._cached_stats(result.output)
        if stats is not None:
            self.stats_view.set_stats(stats, tuple(out.shape))
        elif previous is not None and previous.index == result.index and self.stats_view.stats is not None:
            # The same layer after an edit: its old numbers stay until the new ones are counted (a
            # blank panel on every keystroke flickers), and the title says they are being replaced.
            self.stats_view.title.setText("Layer statistics: counting…")
        else:
            self.stats_view.clear()          # counted in the background; shown when ready
            self.stats_view.title.setText("Layer statistics: counting…")
        self._stats_part.show()
        self._refresh(reset_view=not same_shape)
        self._update_controls()
        if clamped:
            self.channel_selected.emit(self._selected_channel)

    def set_batch_index(self, i: int) -> None:
        """Which batch item the grid, channel view and bar chart show."""
        out = self._output()
        i = max(0, int(i))
        if out is not None:
            i = min(i, out.shape[0] - 1)
        if i != self._batch_index:
            self.state.update_view(batch_index=i)

    def _apply_batch_index(self) -> None:
        out = self._output()
        if out is None:
            return
        i = self._batch_index
        if i > out.shape[0] - 1:        # an item this output does not have: its last one
            self.state.update_view(batch_index=out.shape[0] - 1)
            return
        if self._mode == "batch" and out.dim() == 4:
            self.grid.set_selected(i)
            self._refresh_channel()
        else:
            self._refresh(reset_view=False)
        self._update_info()

    def set_normalization(self, normalization: str) -> None:
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"Unknown normalization '{normalization}'; use one of {', '.join(NORMALIZATIONS)}.")
        if normalization != self._normalization:
            self.state.update_view(normalization=normalization)

    def _apply_normalization(self) -> None:
        normalization = self._normalization
        _set_combo(self.norm_combo, normalization)
        # Symmetric puts zero at the middle colour; a diverging map makes that visible.
        if normalization == "symmetric" and self._colormap != DIVERGING:
            self._cmap_before_symmetric = self._colormap
            self.set_colormap(DIVERGING, user=False)
        elif normalization != "symmetric" and self._cmap_before_symmetric is not None:
            if self._colormap == DIVERGING:
                self.set_colormap(self._cmap_before_symmetric, user=False)
            self._cmap_before_symmetric = None
        self._refresh(reset_view=False)

    def set_colormap(self, name: str, user: bool = True) -> None:
        if name not in COLORMAPS:
            raise ValueError(f"Unknown colormap '{name}'; choose one of: {', '.join(colormap_names())}.")
        if user:
            self._cmap_before_symmetric = None   # the user's choice sticks
        if name == self._colormap:
            return
        self._colormap = name
        _set_combo(self.cmap_combo, name)
        lut = get_lut(name)
        self.grid.set_lut(lut)
        self.channel_view.set_colormap(name)

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"Unknown mode '{mode}'; use one of {', '.join(MODES)}.")
        if mode != self._mode:
            self.state.update_view(mode=mode)

    def _apply_mode(self) -> None:
        mode = self._mode
        _set_combo(self.mode_combo, mode)
        self._refresh(reset_view=True)
        self._update_controls()

    def set_selected_channel(self, channel: int) -> None:
        out = self._output()
        channel = max(0, int(channel))
        if out is not None and out.dim() == 4:
            channel = min(channel, out.shape[1] - 1)
        if channel != self._selected_channel:
            self.state.update_view(channel=channel)

    def _apply_channel(self) -> None:
        out = self._output()
        channel = self._selected_channel
        self._sync_spin()
        if out is not None and out.dim() == 4:
            if self._mode == "grid":
                self.grid.set_selected(channel)
                self._refresh_channel()
            elif self._mode == "batch":
                self._refresh(reset_view=False)   # a different channel across the batch
            else:
                self._refresh_channel()
        self.channel_selected.emit(channel)

    def current_grid_png(self) -> np.ndarray | None:
        """The grid as displayed, colour-mapped (H, W, 3) uint8; None when no maps are shown."""
        if self._mode == "rgb" and self._rgb is not None and self._output_is_maps():
            return self._rgb
        if self._grid is None or not self._output_is_maps():
            return None
        out = self._output()
        if self._grid.layout.tile_h < out.shape[2]:
            # The view draws big layers shrunk (ViewSettings.max_pixels); a file gets every pixel.
            full = render_view(out, self.view_settings(), full_size=True)
            return to_png_array(full.grid, self._colormap)
        return to_png_array(self._grid, self._colormap)

    def current_channel_png(self) -> np.ndarray | None:
        """The big channel view as displayed, colour-mapped (H, W, 3) uint8; None without one."""
        if self._channel_png_source is None or not self._output_is_maps():
            return None
        return to_png_array(self._channel_png_source, self._colormap)

    def export_grid(self, path) -> None:
        array = self.current_grid_png()
        if array is None:
            raise ValueError("There is no feature-map grid to export for this layer.")
        save_png(array, path)

    def export_channel(self, path) -> None:
        array = self.current_channel_png()
        if array is None:
            raise ValueError("There is no channel to export for this layer.")
        save_png(array, path)

    # ------------------------------------------------------------------ rendering

    def _cached_stats(self, source: torch.Tensor) -> LayerStats | None:
        """layer_stats of ``source`` if it has been counted (by a run's worker or the preparer), remembered
        for the last few outputs so flipping between layers does not recount (an in-place edit bumps
        _version)."""
        hit = self._stats_cache.get(id(source))
        if hit is not None and hit[0]() is source and hit[1] == source._version:
            self._stats_cache.move_to_end(id(source))
            return hit[2]
        return None

    def _remember_stats(self, out: torch.Tensor, stats: LayerStats) -> None:
        self._stats_cache[id(out)] = (weakref.ref(out), out._version, stats)
        self._stats_cache.move_to_end(id(out))
        while len(self._stats_cache) > _STATS_CACHE_SIZE:
            self._stats_cache.popitem(last=False)

    def _cached_view(self, source: torch.Tensor):
        """The PreparedView (maps) or VectorBars (a vector) for ``source`` under the current settings."""
        key = view_key(source, self.view_settings())
        hit = self._views.get(key)
        if hit is not None and hit[0]() is source:
            self._views.move_to_end(key)
            return hit[1]
        return None

    def _remember_view(self, source: torch.Tensor, key: tuple, view) -> None:
        # Pictures of outputs that no longer exist (an edit replaced them) go at once: up to 4 MB each.
        for dead in [k for k, (ref, _) in self._views.items() if ref() is None]:
            del self._views[dead]
        self._views[key] = (weakref.ref(source), view)
        self._views.move_to_end(key)
        while len(self._views) > _VIEW_CACHE_SIZE:
            self._views.popitem(last=False)

    def view_settings(self) -> ViewSettings:
        """The settings the background worker renders with, so an edit arrives ready to draw."""
        return self._shown

    def _view_changed(self, view: ViewSettings) -> None:
        """The state's view settings changed (here or elsewhere): draw what differs from what is shown."""
        old, self._shown = self._shown, view
        if view == old:
            return
        if view.normalization != old.normalization:
            self._apply_normalization()
        if view.mode != old.mode:
            self._apply_mode()
        if view.channel != old.channel:
            self._apply_channel()
        if view.batch_index != old.batch_index:
            self._apply_batch_index()
        if view.max_pixels != old.max_pixels:
            self._refresh(reset_view=False)

    def prime(self, out: torch.Tensor, display: LayerDisplay) -> None:
        """Takes stats and pixels prepared by the run's worker for ``out``; used if they still match."""
        if display.stats is not None:
            self._remember_stats(out, display.stats)
        if display.view is not None:
            self._remember_view(out, display.view.key, display.view)

    @property
    def preparing(self) -> bool:
        """True while the statistics or the picture on screen are still being prepared."""
        return self._waiting is not None

    def wait_until_ready(self, timeout_ms: int = 30_000) -> bool:
        """For tests and benchmarks: process events until what is selected is drawn."""
        self.preparer.wait_until_idle(timeout_ms)
        return not self.preparing

    def hold_statistics(self, hold: bool) -> None:
        """While a run is on its way the statistics wait: counting beside the run slows both (on two
        cores, a back-to-back edit took twice as long), and the run replaces what they would count.
        Counting that has started stops; released, the layer on screen is counted."""
        if hold == self._stats_held:
            return
        self._stats_held = hold
        if hold:
            if not self._waiting_view:
                self.preparer.cancel()
                self._waiting = None
            return
        out = self._output()
        if out is not None and self._waiting is None and self._cached_stats(self._result.output) is None:
            self._ask(self._result.output, True, False, False)

    def _ask(self, source: torch.Tensor, need_stats: bool, need_view: bool, reset_view: bool) -> None:
        self._reset_pending = reset_view or (self._reset_pending and self._waiting is not None)
        self._waiting_view = need_view
        self._waiting = self.preparer.request(source, self.view_settings(), need_stats, need_view)

    def _display_ready(self, reply: DisplayReply) -> None:
        source = reply.request.source
        if reply.stats is not None:
            self._remember_stats(source, reply.stats)
        if reply.view is not None:
            self._remember_view(source, reply.view.key, reply.view)
        elif reply.bars is not None:
            self._remember_view(source, view_key(source, reply.request.settings), reply.bars)
        if reply.request.token != self._waiting:
            return                      # the user has moved on; kept in case they come back
        self._waiting, self._waiting_view = None, False
        r = self._result
        if r is None or r.output is not source:
            return
        if reply.error:
            self._grid = self._rgb = self._channel_png_source = None
            self.message_label.setText(reply.error)
            self.message_label.setStyleSheet("color: #d03c3c;")
            self.stack.setCurrentIndex(_PAGE_MESSAGE)
            return
        stats = self._cached_stats(source)
        if stats is not None and self.stats_view.stats is not stats:
            self.stats_view.set_stats(stats, tuple(self._output().shape))
        if not reply.request.need_view:
            self._reset_pending = False     # the picture on screen is this output's, drawn (and reset) already:
            return                          # only the numbers were missing
        reset, self._reset_pending = self._reset_pending, False
        self._refresh(reset_view=reset)

    def _show_preparing(self, out: torch.Tensor) -> None:
        """The picture is on its way: keep the old one only if it shows this output in this mode."""
        r = self._result
        self._grid = self._rgb = self._channel_png_source = None
        same = self._drawn is not None and self._drawn[0]() is r.output and self._drawn[1] == self._mode
        if out.dim() == 4 and same:
            self.grid_title.setText(f"Preparing {r.name}…")
            return
        self._drawn = None
        self.grid.clear()
        if self._built(self._channel_part):
            self.channel_view.clear()
        self.message_label.setText(f"Preparing {r.name} ({r.type}, output {_shape_text(r.output.shape)})…")
        self.message_label.setStyleSheet("")
        self.stack.setCurrentIndex(_PAGE_MESSAGE)
        self.grid_title.setText("")

    def _output(self) -> torch.Tensor | None:
        r = self._result
        if r is None or r.error or r.output is None:
            return None
        out = r.output
        if out.dim() == 0 or out.numel() == 0:
            return None
        if out.dim() == 1:
            out = out.unsqueeze(0)
        return out

    def _output_is_maps(self) -> bool:
        out = self._output()
        return out is not None and out.dim() == 4

    def _show_message(self, result: LayerResult | None) -> None:
        if result is None:
            text, error = NO_LAYER_MESSAGE, False
        elif result.error:
            text, error = f"{result.name} ({result.type}) could not run:\n\n{result.error}", True
        elif result.output is None:
            text, error = f"{result.name} ({result.type}) has no output yet. Run the stack to see it.", False
        else:
            shape = _shape_text(result.output.shape)
            text, error = f"{result.name} ({result.type}) produced an empty output {shape}; there is nothing to draw.", False
        self.message_label.setText(text)
        self.message_label.setStyleSheet("color: #d03c3c;" if error else "")
        self.stack.setCurrentIndex(_PAGE_MESSAGE)
        self.grid_title.setText("")
        self.hover_label.setText("")
        self.info_label.setText(f"{result.name} · {result.type} · could not run" if result is not None and result.error
                                else "")

    def _refresh(self, reset_view: bool) -> None:
        out = self._output()
        if out is None:
            return
        source = self._result.output
        prepared = self._cached_view(source)
        need_stats = self._cached_stats(source) is None and not self._stats_held
        if prepared is None or need_stats:
            # Counting and rendering grow with the tensor: the worker does them, never this thread.
            self._ask(source, need_stats, prepared is None, reset_view)
            if prepared is None:
                self._show_preparing(out)
                return
        else:
            self._waiting, self._waiting_view = None, False
        self._drawn = (weakref.ref(source), self._mode)
        if out.dim() != 4:
            self._grid = self._rgb = self._channel_png_source = None
            self._show_vector(out, prepared)
            return
        self.stack.setCurrentIndex(_PAGE_MAPS)
        b, ch = self._batch_index, self._selected_channel
        lut = get_lut(self._colormap)
        count_c, count_n = out.shape[1], out.shape[0]
        if self._mode == "grid":
            self._grid, self._rgb = prepared.grid, None
            self.grid.selected = ch
            self.grid.set_image(self._grid.image, self._grid.layout, lut, reset_view=reset_view)
            self.grid_title.setText(f"All {count_c} channels of batch item {b}")
        elif self._mode == "batch":
            self._grid, self._rgb = prepared.grid, None
            self.grid.selected = b
            self.grid.set_image(self._grid.image, self._grid.layout, lut, label_prefix="#",
                                reset_view=reset_view)
            self.grid_title.setText(f"Channel {ch} across all {count_n} batch items")
        else:
            self._grid = None
            self._rgb = prepared.rgb
            self.grid.selected = None
            self.grid.set_image(self._rgb, None, None, reset_view=reset_view)
            missing = f" ({3 - count_c} of the three missing: drawn black)" if count_c < 3 else ""
            self.grid_title.setText(f"Channels 0, 1, 2 of batch item {b} as red, green, blue{missing}")
        self.hover_label.setText(self._hover_hint())
        self._refresh_channel()
        self._update_info()

    def _refresh_channel(self) -> None:
        out = self._output()
        if out is None or out.dim() != 4:
            return
        b, ch = self._batch_index, self._selected_channel
        if self._grid is not None:
            # The tile as the grid drew it: same pixels and range, no second pass over the layer.
            tile = b if self._mode == "batch" else ch
            x, y, w, h = self._grid.layout.tile_rect(tile)
            image = np.ascontiguousarray(self._grid.image[y:y + h, x:x + w])
            low, high = float(self._grid.lows[tile]), float(self._grid.highs[tile])
        else:
            image, low, high = render_channel(out[b, ch], self._normalization, layer=out[b])
        self._channel_png_source = RenderedGrid(image, grid_layout(1, image.shape[0], image.shape[1]),
                                                np.array([low]), np.array([high]))
        values = out[b, ch].detach().to("cpu")         # one plane, once per selection
        if values.dtype not in (torch.float32, torch.float64):
            values = values.float()
        norm = NORMALIZATION_LABELS[self._normalization].lower()
        title = f"Channel {ch} · item {b} · {out.shape[2]}×{out.shape[3]} · {norm}"
        self.channel_view.set_channel(image, values.numpy(), low, high, self._colormap, title)

    def _show_vector(self, out: torch.Tensor, bars: VectorBars) -> None:
        self.stack.setCurrentIndex(_PAGE_VECTOR)
        b = self._batch_index
        values = out[b].reshape(-1)
        r = self._result
        title = f"{r.name} ({r.type}) · item {b} · {values.numel():,} values"
        self.vector_view.set_vector(values, self._class_names, title, bars=(bars.starts, bars.picked, bars.bucket))
        self._update_info()

    # ------------------------------------------------------------------ UI state

    def _update_controls(self) -> None:
        out = self._output()
        maps = out is not None and out.dim() == 4
        for w in (self.mode_combo, self.norm_combo, self.cmap_combo, self.channel_spin):
            w.setEnabled(maps)
        if maps:
            with qt_signals_blocked(self.channel_spin):
                self.channel_spin.setRange(0, out.shape[1] - 1)
        self._sync_spin()
        self._update_info()

    def _sync_spin(self) -> None:
        if self.channel_spin.value() != self._selected_channel:
            with qt_signals_blocked(self.channel_spin):
                self.channel_spin.setValue(self._selected_channel)

    def _update_info(self) -> None:
        r = self._result
        out = self._output()
        if r is None:
            self.info_label.setText("")
            return
        if out is None:
            self.info_label.setText(f"{r.name} · {r.type} · " + ("cannot run" if r.error else "no output"))
            return
        text = f"{r.name} · {r.type} · output {_shape_text(r.output.shape)}"
        if out.shape[0] > 1:
            text += f" · item {self._batch_index} of {out.shape[0]}"
        if not r.enabled:
            text += " · disabled (passes its input through)"
        self.info_label.setText(text)

    def _hover_hint(self) -> str:
        if self._mode == "rgb":
            return "Red = channel 0, green = channel 1, blue = channel 2. Pick a channel with the spin box."
        what = "batch item" if self._mode == "batch" else "channel"
        return f"Click a tile (or use the arrow keys) to pick a {what}. Scroll zooms, drag pans."

    def _tile_selected(self, index: int) -> None:
        if self._mode == "batch":
            self.set_batch_index(index)
            self.batch_index_selected.emit(index)
        elif self._mode == "grid":
            self.set_selected_channel(index)

    def _tile_hovered(self, index: int) -> None:
        if index < 0:
            self.hover_label.setText(self._hover_hint())
            return
        if self._grid is None:
            return
        low, high = self._grid.lows[index], self._grid.highs[index]
        what = f"Batch item {index}" if self._mode == "batch" else f"Channel {index}"
        self.hover_label.setText(f"{what}: range {format_value(low)} .. {format_value(high)}")

    def show_problem(self, text: str) -> None:
        """What keeps every layer from being shown (an input that cannot be read), in place of the maps."""
        self.set_layer(None)
        self.message_label.setText(text)
        self.message_label.setStyleSheet("color: #d03c3c;")

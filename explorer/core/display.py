"""What the feature view draws for one layer output under one set of view settings, computed as a
unit so the background worker can prepare it right after a run (the GUI thread then only uploads
uint8 pixels)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from explorer.core import render
from explorer.core.identity import SameTensor
from explorer.core.render import RenderedGrid, render_batch_channel, render_grid, render_rgb
from explorer.core.stats import LayerStats, layer_stats


@dataclass(frozen=True)
class ViewSettings:
    mode: str = "grid"              # grid | rgb | batch
    normalization: str = "channel"
    batch_index: int = 0
    channel: int = 0
    max_pixels: int = render.DISPLAY_MAX_PIXELS   # the display budget: bigger grids are drawn shrunk

    def render_key(self, out: torch.Tensor) -> tuple:
        """Settings that change the pixels: the channel matters only across the batch, the item not then."""
        item = None if self.mode == "batch" else min(self.batch_index, out.shape[0] - 1)
        channel = min(self.channel, out.shape[1] - 1) if self.mode == "batch" else None
        return (SameTensor(out), self.mode, self.normalization, item, channel, self.max_pixels)


@dataclass
class PreparedView:
    key: tuple
    grid: RenderedGrid | None = None
    rgb: np.ndarray | None = None


def render_view(out: torch.Tensor, settings: ViewSettings, full_size: bool = False) -> PreparedView:
    """A 4-D output drawn as the view shows it: all channels of one item, one channel across the
    batch, or the first three channels as RGB. Grids beyond ``settings.max_pixels`` are drawn shrunk
    unless ``full_size`` (exports)."""
    max_pixels = None if full_size else settings.max_pixels
    key = settings.render_key(out)
    item = min(settings.batch_index, out.shape[0] - 1)
    if settings.mode == "batch":
        return PreparedView(key, grid=render_batch_channel(out, min(settings.channel, out.shape[1] - 1),
                                                           settings.normalization, max_pixels=max_pixels))
    if settings.mode == "rgb":
        return PreparedView(key, rgb=render_rgb(out[item], (0, 1, 2), settings.normalization))
    return PreparedView(key, grid=render_grid(out[item], settings.normalization, max_pixels=max_pixels))


@dataclass
class LayerDisplay:
    """Prepared off the GUI thread for the layer the user is looking at."""

    layer_index: int
    stats: LayerStats | None
    view: PreparedView | None


def prepare_display(out: torch.Tensor | None, layer_index: int, settings: ViewSettings,
                    with_stats: bool = True) -> LayerDisplay | None:
    """The pixels (and, with ``with_stats``, the statistics) of one layer output. The run's worker
    leaves the statistics out: counting a big output takes longer than running a small stack, and the
    pixels should not wait for the numbers under them."""
    if out is None or out.numel() == 0:
        return None
    view = render_view(out, settings) if out.dim() == 4 else None
    return LayerDisplay(layer_index, layer_stats(out) if with_stats else None, view)

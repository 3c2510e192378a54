"""Summary numbers and a histogram for one layer's output, computed on its device.

Only scalars and the `bins` histogram counts cross to the CPU. NaN values are
counted (``nan_count``) and left out of everything else; infinities stay in
min/max/mean/std (so an overflow is visible there) and fall into the end bins
of the histogram, whose range is the finite min..max.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from explorer.core.jobs import Cancelled


_HIST_CHUNK = 1 << 22  # values bucketed at a time


@dataclass
class LayerStats:
    min: float
    max: float
    mean: float
    std: float             # sample std (torch's default, correction=1); 0 for one value
    zero_fraction: float   # fraction of all values exactly 0 (dead ReLU units)
    dead_channels: int     # channels (dim 1) that are 0 everywhere over the batch; 0 below 2-D
    numel: int
    hist_counts: np.ndarray  # int64, `bins` counts
    hist_edges: np.ndarray   # float64, bins + 1 edges
    nan_count: int


def layer_stats(t: torch.Tensor, bins: int = 64, should_stop: Callable[[], bool] | None = None) -> LayerStats:
    """Statistics of any tensor on any device; empty and all-NaN tensors give
    zeros (with `numel`/`nan_count` telling why) rather than raising. ``should_stop`` is asked
    between the passes over the values; when it says yes, Cancelled is raised (a newer run
    replaces the tensor being counted)."""
    if bins < 1:
        raise ValueError("layer_stats needs at least one histogram bin")

    def check() -> None:
        if should_stop is not None and should_stop():
            raise Cancelled()

    # Reductions and bucketing want floats (histogramming ints/half is patchy
    # across devices); float64 keeps its precision, everything else is float32.
    x = t.detach()
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()
    numel = x.numel()
    dead = _dead_channels(x)
    check()
    values = x.reshape(-1)
    nan_count = 0
    # One cheap sum tells whether there can be NaNs; counting them costs more.
    if numel and bool(torch.isnan(values.sum())):
        nan = torch.isnan(values)
        nan_count = int(nan.sum())
        values = values[~nan]
    if values.numel() == 0:
        return _no_values(bins, numel, nan_count)

    check()
    lo, hi, mean, std = _summary(values)
    check()
    zeros = int((values == 0).sum())
    counts, edges = _histogram(values, lo, hi, bins, check)
    return LayerStats(
        min=lo, max=hi, mean=mean, std=std,
        zero_fraction=zeros / numel,
        dead_channels=dead,
        numel=numel,
        hist_counts=counts,
        hist_edges=edges,
        nan_count=nan_count,
    )


def _summary(values: torch.Tensor) -> tuple[float, float, float, float]:
    """min, max, mean, std of a non-empty, NaN-free 1-D tensor, in one transfer."""
    # Separate mean() and std(): on CPU, std_mean is ~5x slower than both together.
    std = values.std() if values.numel() > 1 else values.new_zeros(())
    row = torch.stack((values.amin(), values.amax(), values.mean(), std))
    lo, hi, mean, std = row.to("cpu").to(torch.float64).tolist()  # MPS has no float64: cast after the copy
    return lo, hi, mean, std


def _dead_channels(x: torch.Tensor) -> int:
    if x.dim() < 2 or x.numel() == 0:
        return 0
    # A channel is dead when its min and max are both 0; NaN propagates, so a
    # channel holding NaN never counts as dead. Two reductions, no temporaries.
    dims = tuple(d for d in range(x.dim()) if d != 1)
    dead = (x.amin(dim=dims) == 0) & (x.amax(dim=dims) == 0)
    return int(dead.sum())


def _histogram(values: torch.Tensor, lo: float, hi: float, bins: int,
               check: Callable[[], None] = lambda: None) -> tuple[np.ndarray, np.ndarray]:
    """Counts over the finite range lo..hi (or a unit-wide range around a constant);
    the last bin is closed like numpy's, infinities land in the end bins."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        finite = values[torch.isfinite(values)]
        lo, hi = (float(finite.amin()), float(finite.amax())) if finite.numel() else (0.0, 0.0)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    # Bucketing by hand + bincount instead of torch.histc: histc is ~3x slower on
    # CPU, unsupported for some dtype/device pairs and refuses deterministic mode
    # on CUDA. Clamping after scaling also puts +-inf in the end bins.
    # Chunks bound the temporaries (12 bytes a value) for big batches on a GPU.
    counts = torch.zeros(bins, dtype=torch.int64, device=values.device)
    for chunk in values.split(_HIST_CHUNK):
        check()
        index = (chunk - lo).mul_(bins / (hi - lo)).clamp_(0, bins - 1).to(torch.int64)
        counts += torch.bincount(index, minlength=bins)
    return counts.to("cpu").numpy(), np.linspace(lo, hi, bins + 1)


def _no_values(bins: int, numel: int, nan_count: int) -> LayerStats:
    """Empty or all-NaN tensors: zeros throughout, a unit range around 0."""
    return LayerStats(
        min=0.0, max=0.0, mean=0.0, std=0.0,
        zero_fraction=0.0,
        dead_channels=0,
        numel=numel,
        hist_counts=np.zeros(bins, dtype=np.int64),
        hist_edges=np.linspace(-0.5, 0.5, bins + 1),
        nan_count=nan_count,
    )

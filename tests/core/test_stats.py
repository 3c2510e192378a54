"""stats.py against torch's own reductions and numpy's histogram."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.core.jobs import Cancelled
from explorer.core.stats import LayerStats, layer_stats


def _devices() -> list[str]:
    names = ["cpu"]
    if torch.cuda.is_available():
        names.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        names.append("mps")
    return names


@pytest.fixture(params=_devices())
def device(request) -> str:
    return request.param


def test_summary_matches_torch(device):
    torch.manual_seed(0)
    t = torch.randn(4, 8, 10, 10, device=device) * 3 + 1
    s = layer_stats(t)
    assert isinstance(s, LayerStats)
    assert s.min == pytest.approx(t.min().item()) and s.max == pytest.approx(t.max().item())
    assert s.mean == pytest.approx(t.mean().item(), rel=1e-5)
    assert s.std == pytest.approx(t.std().item(), rel=1e-5)
    assert s.numel == t.numel() and s.nan_count == 0 and s.dead_channels == 0
    assert isinstance(s.min, float) and isinstance(s.numel, int)


def test_histogram_matches_numpy_exactly_for_float64():
    torch.manual_seed(1)
    t = torch.randn(10_000, dtype=torch.float64)
    s = layer_stats(t, bins=64)
    values = t.numpy()
    counts, edges = np.histogram(values, bins=64, range=(values.min(), values.max()))
    assert s.hist_counts.dtype == np.int64 and s.hist_edges.dtype == np.float64
    assert np.array_equal(s.hist_counts, counts)
    assert np.allclose(s.hist_edges, edges)


def test_histogram_of_float32_agrees_with_numpy(device):
    torch.manual_seed(2)
    t = torch.randn(2, 16, 20, 20, device=device)
    s = layer_stats(t, bins=32)
    values = t.cpu().numpy().astype(np.float64).ravel()
    counts, _ = np.histogram(values, bins=32, range=(values.min(), values.max()))
    assert s.hist_counts.shape == (32,) and s.hist_edges.shape == (33,)
    assert s.hist_counts.sum() == t.numel()
    # A value within float32 rounding of an edge may fall on the other side.
    assert np.abs(s.hist_counts - counts).max() <= 2


def test_relu_output_is_about_half_zeros(device):
    torch.manual_seed(3)
    s = layer_stats(torch.relu(torch.randn(8, 16, 32, 32, device=device)))
    assert s.zero_fraction == pytest.approx(0.5, abs=0.01)
    assert s.min == 0.0


def test_dead_channels_are_counted_along_dim_one(device):
    t = torch.rand(3, 6, 4, 4, device=device) + 0.1
    t[:, 2] = 0
    t[:, 5] = 0
    t[1, 4] = 0  # zero in one item only: alive
    assert layer_stats(t).dead_channels == 2
    features = torch.rand(5, 7, device=device)
    features[:, 0] = 0
    assert layer_stats(features).dead_channels == 1
    assert layer_stats(torch.zeros(9, device=device)).dead_channels == 0


def test_empty_tensor(device):
    s = layer_stats(torch.empty(0, 3, 4, 4, device=device), bins=8)
    assert s.numel == 0 and s.nan_count == 0 and s.zero_fraction == 0.0
    assert s.hist_counts.shape == (8,) and s.hist_counts.sum() == 0
    assert s.hist_edges.shape == (9,) and np.isfinite(s.hist_edges).all()


def test_constant_tensor(device):
    s = layer_stats(torch.full((2, 3, 4, 4), 2.5, device=device), bins=10)
    assert s.min == s.max == s.mean == 2.5 and s.std == 0.0
    assert s.hist_counts.sum() == 96 and np.count_nonzero(s.hist_counts) == 1
    assert s.hist_edges[0] < 2.5 < s.hist_edges[-1]


def test_single_value_has_zero_std():
    s = layer_stats(torch.tensor([3.0]))
    assert (s.min, s.max, s.mean, s.std, s.numel) == (3.0, 3.0, 3.0, 0.0, 1)


def test_nan_values_are_counted_and_left_out(device):
    t = torch.tensor([[1.0, float("nan")], [3.0, 0.0]], device=device)
    s = layer_stats(t, bins=4)
    assert s.nan_count == 1 and s.numel == 4
    assert (s.min, s.max, s.mean) == (0.0, 3.0, pytest.approx(4 / 3))
    assert s.hist_counts.sum() == 3
    assert s.zero_fraction == 0.25
    assert s.dead_channels == 0


def test_all_nan_does_not_crash(device):
    s = layer_stats(torch.full((2, 2, 3, 3), float("nan"), device=device))
    assert s.nan_count == 36 and s.numel == 36
    assert np.isfinite([s.min, s.max, s.mean, s.std]).all()
    assert s.hist_counts.sum() == 0


def test_infinities_show_in_min_max_and_land_in_end_bins(device):
    t = torch.tensor([float("-inf"), 0.0, 1.0, 2.0, float("inf")], device=device)
    s = layer_stats(t, bins=4)
    assert s.min == float("-inf") and s.max == float("inf") and s.nan_count == 0
    assert np.allclose(s.hist_edges, np.linspace(0.0, 2.0, 5))
    assert list(s.hist_counts) == [2, 0, 1, 2]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.int64, torch.uint8, torch.bool])
def test_other_dtypes(dtype):
    t = (torch.arange(24).view(2, 3, 4) % 5).to(dtype)
    s = layer_stats(t, bins=5)
    assert s.min == 0.0 and s.max == pytest.approx(1.0 if dtype == torch.bool else 4.0)
    assert s.hist_counts.sum() == 24


def test_bins_must_be_positive():
    with pytest.raises(ValueError):
        layer_stats(torch.zeros(3), bins=0)


def test_input_is_not_modified():
    t = torch.tensor([1.0, float("nan"), -2.0])
    before = t.clone()
    layer_stats(t)
    assert torch.equal(torch.nan_to_num(t), torch.nan_to_num(before))


def test_histogram_in_chunks_counts_the_same(monkeypatch):
    import explorer.core.stats as stats

    torch.manual_seed(4)
    t = torch.randn(1000, dtype=torch.float64)
    whole = layer_stats(t, bins=16)
    monkeypatch.setattr(stats, "_HIST_CHUNK", 97)
    chunked = layer_stats(t, bins=16)
    assert np.array_equal(whole.hist_counts, chunked.hist_counts)


def test_counting_stops_when_asked_between_passes():
    """A newer run replaces the tensor being counted: the counting stops instead of finishing."""
    x = torch.randn(2, 3, 40, 40)
    asked = []

    def stop_on_third_question():
        asked.append(1)
        return len(asked) >= 3

    with pytest.raises(Cancelled):
        layer_stats(x, should_stop=stop_on_third_question)
    assert len(asked) == 3
    full = layer_stats(x, should_stop=lambda: False)          # never asked to stop: the same numbers
    assert full.numel == x.numel() and full.min == pytest.approx(float(x.min()))

"""The per-pixel explanation recomputes torch's output value from the window it reads: for every
padding mode, stride, dilation and group count, for transposed convolutions, for pooling with
ceil_mode and padding, and MaxUnpool2d's destinations, in a real stack run by the engine."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from explorer.core.engine import run_stack
from explorer.core.kernels import layer_parameters
from explorer.core.layers import LayerSpec
from explorer.core.probe import ProbeError, probe_avg_pool, probe_conv, probe_conv_transpose, probe_layer, probe_max_pool
from explorer.core.stack import Stack


def every_pixel(output, stride=1):
    n, c, h, w = output.shape
    return itertools.product(range(n), range(c), range(0, h, stride), range(0, w, stride))


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("padding", [0, 2, (1, 3), "same"])
def test_conv_window_sum_equals_torch_at_every_pixel(padding_mode, padding):
    torch.manual_seed(0)
    stride = 1 if padding == "same" else (2, 3)
    conv = torch.nn.Conv2d(4, 6, (3, 5), stride=stride, padding=padding, dilation=(2, 1), groups=2,
                           padding_mode=padding_mode)
    x = torch.randn(2, 4, 13, 14)
    with torch.no_grad():
        out = conv(x)
    args = {"stride": stride, "padding": padding, "dilation": (2, 1), "groups": 2, "padding_mode": padding_mode}
    for b, c, y, xx in every_pixel(out):
        p = probe_conv(args, conv.weight, conv.bias, x, out, b, c, y, xx)
        assert p.total == pytest.approx(p.output_value, abs=1e-5)
        assert p.values.shape == (2, 3, 5) and p.in_channels == ([0, 1] if c < 3 else [2, 3])
        assert np.allclose(p.products, p.values * p.kernel)
        assert p.total == pytest.approx(p.channel_sums.sum() + p.bias, abs=1e-9)


def test_conv_probe_in_a_real_stack_names_the_window():
    stack = Stack([
        LayerSpec("Conv2d", "conv1", {"in_channels": 3, "out_channels": 4, "kernel_size": 3, "stride": 2,
                                      "padding": 2, "dilation": 2}),
        LayerSpec("ReLU", "relu1"),
        LayerSpec("Conv2d", "conv2", {"in_channels": 4, "out_channels": 2, "kernel_size": 5, "padding": "same"}),
    ])
    x = torch.rand(1, 3, 20, 17)
    result = run_stack(stack, x, "cpu")
    spec = stack.layers[0]
    params = layer_parameters(spec, stack.seed)
    out = result.layers[0].output
    p = probe_layer("Conv2d", spec.full_args(), params, x, out, 0, 3, 4, 5)
    assert p.total == pytest.approx(float(out[0, 3, 4, 5]), abs=1e-5)
    # Row 4 with stride 2, padding 2, dilation 2 reads input rows 6, 8, 10; column 5 reads 8, 10, 12.
    assert p.rows[:, 0].tolist() == [6, 8, 10] and p.cols[0].tolist() == [8, 10, 12]
    assert p.box == (6, 8, 10, 12) and p.inside.all()
    corner = probe_layer("Conv2d", spec.full_args(), params, x, out, 0, 0, 0, 0)
    assert corner.rows[:, 0].tolist() == [-2, 0, 2] and not corner.inside[0].any()   # the top row is padding
    assert (corner.values[:, 0] == 0).all()
    assert corner.total == pytest.approx(float(out[0, 0, 0, 0]), abs=1e-5)
    second = stack.layers[2]
    out2 = result.layers[2].output
    p2 = probe_layer("Conv2d", second.full_args(), layer_parameters(second, stack.seed), result.layers[1].output,
                     out2, 0, 1, 3, 7)
    assert p2.total == pytest.approx(float(out2[0, 1, 3, 7]), abs=1e-5) and len(p2.in_channels) == 4


def test_conv_transpose_gathers_what_it_scattered():
    torch.manual_seed(1)
    for stride, padding, output_padding, dilation, groups in [(2, 1, 1, 2, 2), (3, 0, 2, 1, 1), (1, 2, 0, 1, 1)]:
        layer = torch.nn.ConvTranspose2d(4, 6, 3, stride=stride, padding=padding, output_padding=output_padding,
                                         dilation=dilation, groups=groups)
        x = torch.randn(1, 4, 5, 6)
        with torch.no_grad():
            out = layer(x)
        args = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
        for b, c, y, xx in every_pixel(out):
            p = probe_conv_transpose(args, layer.weight, layer.bias, x, out, b, c, y, xx)
            assert p.total == pytest.approx(p.output_value, abs=1e-5)
    # With stride 3 some output pixels receive nothing but the bias, and the probe says so.
    lonely = [probe_conv_transpose({"stride": 3, "padding": 0, "dilation": 1, "groups": 1}, w, bias, x, out, 0, 0, y, xx)
              for w, bias, x, out in [(torch.ones(1, 1, 1, 1), torch.tensor([0.5]), torch.ones(1, 1, 2, 2),
                                       torch.nn.functional.conv_transpose2d(torch.ones(1, 1, 2, 2), torch.ones(1, 1, 1, 1),
                                                                            torch.tensor([0.5]), stride=3))]
              for y, xx in [(1, 1)]]
    assert lonely[0].note.startswith("No input pixel lands") and lonely[0].total == 0.5 == lonely[0].output_value


@pytest.mark.parametrize("ceil_mode", [False, True])
def test_max_pool_winner_is_the_index_torch_records(ceil_mode):
    torch.manual_seed(2)
    pool = torch.nn.MaxPool2d(3, stride=2, padding=1, dilation=2, ceil_mode=ceil_mode, return_indices=True)
    x = torch.randn(1, 2, 11, 12)
    x[0, 0, 2:5, 2:5] = 1.0                    # ties: torch keeps the first maximum
    out, indices = pool(x)
    args = {"kernel_size": 3, "stride": 2, "padding": 1, "dilation": 2}
    for b, c, y, xx in every_pixel(out):
        p = probe_max_pool(args, x, out, b, c, y, xx)
        assert p.winner_index == int(indices[b, c, y, xx])
        assert p.total == p.output_value
        assert p.winner == divmod(p.winner_index, 12)
        assert p.values[0][p.rows == p.winner[0]].size >= 1


@pytest.mark.parametrize("count_include_pad, divisor_override, ceil_mode",
                         list(itertools.product([True, False], [None, 5], [False, True])))
def test_avg_pool_divides_as_torch_does(count_include_pad, divisor_override, ceil_mode):
    x = torch.randn(1, 1, 9, 10)
    pool = torch.nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=ceil_mode, count_include_pad=count_include_pad,
                              divisor_override=divisor_override)
    out = pool(x)
    args = {"kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": count_include_pad,
            "divisor_override": divisor_override}
    for b, c, y, xx in every_pixel(out):
        p = probe_avg_pool(args, x, out, b, c, y, xx)
        assert p.total == pytest.approx(p.output_value, abs=1e-6)
    corner = probe_avg_pool(args, x, out, 0, 0, 0, 0)
    assert corner.divisor == (divisor_override or (9 if count_include_pad else 4))


def test_max_unpool_shows_where_each_value_went():
    stack = Stack([
        LayerSpec("MaxPool2d", "pool1", {"kernel_size": 2}),
        LayerSpec("MaxUnpool2d", "unpool1", {"kernel_size": 2}, indices_from="pool1"),
    ])
    x = torch.randn(1, 2, 6, 8)
    result = run_stack(stack, x, "cpu")
    pooled, indices = result.layers[0].output, result.layers[0].indices
    unpooled = result.layers[1].output
    args = stack.layers[1].full_args()
    flat = int(indices[0, 1, 2, 3])
    y, xx = divmod(flat, 8)
    p = probe_layer("MaxUnpool2d", args, None, pooled, unpooled, 0, 1, y, xx, pool_indices=indices)
    assert p.source == (2, 3) and p.total == p.output_value == float(pooled[0, 1, 2, 3])
    assert p.box == (4, 6, 5, 7)                               # the 2x2 block of pooled pixel (2, 3)
    assert p.placed == [(y, xx, float(pooled[0, 1, 2, 3]))]
    empty_y, empty_x = next((r, c) for r in range(4, 6) for c in range(6, 8) if (r, c) != (y, xx))
    q = probe_layer("MaxUnpool2d", args, None, pooled, unpooled, 0, 1, empty_y, empty_x, pool_indices=indices)
    assert q.source is None and q.output_value == 0 and "left a 0" in q.note
    # and the pool itself, hovered, reports the very index the unpool used
    r = probe_layer("MaxPool2d", stack.layers[0].full_args(), None, x, pooled, 0, 1, 2, 3,
                    indices=result.layers[0].indices)
    assert r.winner_index == flat


def test_probing_outside_or_an_unsupported_layer_is_one_sentence():
    out = torch.zeros(1, 1, 4, 4)
    with pytest.raises(ProbeError, match="outside the 4×4 output"):
        probe_layer("MaxPool2d", {"kernel_size": 2, "stride": None, "padding": 0, "dilation": 1}, None, out, out, 0, 0, 9, 0)
    with pytest.raises(ProbeError, match="this layer is a ReLU"):
        probe_layer("ReLU", {}, None, out, out, 0, 0, 0, 0)

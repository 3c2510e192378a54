"""Shape inference on meta tensors, and every output-size formula's final number against the size
torch really produces."""

from __future__ import annotations

import itertools
import re
import resource
import tracemalloc
import warnings

import pytest
import torch
from torch import nn

from explorer.core.engine import run_stack
from explorer.core.shapes import ShapeRow, infer_shapes, total_params
from explorer.core.stack import stack_from_dict


pytestmark = pytest.mark.usefixtures("one_torch_thread")     # tests/core/conftest.py


def _stack(*layers, **top):
    return stack_from_dict({"layers": list(layers), **top})


def _final_number(line: str) -> int:
    numbers = re.findall(r"= (-?\d+)\s*(?:\(|;|$)", line)
    assert numbers, line
    return int(numbers[-1])


def _torch_output_shape(layer: dict, x: torch.Tensor):
    """The size torch itself produces for the layer, or None where torch refuses the input or gives an
    empty output (a transposed convolution may; the app refuses that, as there is nothing to show)."""
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in layer["args"].items()}
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = getattr(nn, layer["type"])(**kwargs)(x)
    except (RuntimeError, ValueError):
        return None
    return tuple(out.shape) if out.numel() else None


def _check_formulas(layer: dict, sizes, channels: int = 2) -> list[str]:
    """For each input size: the formula lines' final numbers equal the size torch really produces and
    the inferred shape equals it; where torch refuses the input, inference reports an error.
    Returns the cases that disagree."""
    stack = _stack(layer)
    wrong = []
    for h, w in sizes:
        real = _torch_output_shape(layer, torch.rand(1, channels, h, w))
        row = infer_shapes(stack, (1, channels, h, w))[0]
        if real is None:
            if row.error is None:
                wrong.append(f"{layer['args']} on {h}x{w}: torch refuses it but inference gives {row.output_shape}")
            continue
        if row.output_shape != real:
            wrong.append(f"{layer['args']} on {h}x{w}: inferred {row.output_shape} ({row.error}) != real {real}")
            continue
        assert len(row.formula) == 2 and row.formula[0].startswith("H_out") and row.formula[1].startswith("W_out")
        numbers = [_final_number(line) for line in row.formula]
        if numbers != list(real[-2:]):
            wrong.append(f"{layer['args']} on {h}x{w}: formulas {row.formula} but real {real}")
    return wrong


SIZES = [(h, w) for h, w in zip((1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 16, 31, 32), itertools.cycle((5, 6, 7)))]


def test_the_tutorial_formula():
    rows = infer_shapes(_stack({"type": "Conv2d", "args": {"in_channels": 3, "out_channels": 6, "kernel_size": 3}}),
                        (1, 3, 32, 32))
    assert rows[0].formula == ["H_out = floor((32 + 2*0 - 1*(3-1) - 1) / 1 + 1) = 30",
                               "W_out = floor((32 + 2*0 - 1*(3-1) - 1) / 1 + 1) = 30"]
    assert rows[0].output_shape == (1, 6, 30, 30) and rows[0].params == 168


@pytest.mark.parametrize("k,s", list(itertools.product((1, 2, 3, 4), (1, 2, 3))))
def test_conv_formulas(k, s):
    wrong = []
    for p, d in itertools.product((0, 1, 2, [1, 0]), (1, 2, 3)):
        wrong += _check_formulas({"type": "Conv2d", "args": {"in_channels": 2, "out_channels": 1, "kernel_size": k,
                                                              "stride": s, "padding": p, "dilation": d}}, SIZES)
    wrong += _check_formulas({"type": "Conv2d", "args": {"in_channels": 2, "out_channels": 1, "kernel_size": [k, 1],
                                                          "stride": [s, 1], "padding": "valid"}}, SIZES)
    assert wrong == []


@pytest.mark.parametrize("k,d", list(itertools.product((1, 2, 3, 4, 5), (1, 2, 3))))
def test_conv_same_formula(k, d):
    wrong = _check_formulas({"type": "Conv2d", "args": {"in_channels": 2, "out_channels": 1, "kernel_size": k,
                                                         "padding": "same", "dilation": d}}, SIZES)
    assert wrong == []


@pytest.mark.parametrize("k,s", list(itertools.product((1, 2, 3, 4), (1, 2, 3))))
def test_conv_transpose_formulas(k, s):
    wrong = []
    for p, d in itertools.product((0, 1, 2), (1, 2)):
        for op in range(max(s, d)):
            wrong += _check_formulas({"type": "ConvTranspose2d", "args": {
                "in_channels": 2, "out_channels": 1, "kernel_size": k, "stride": s, "padding": p, "dilation": d,
                "output_padding": op}}, SIZES)
    assert wrong == []


@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("k,s", list(itertools.product((1, 2, 3, 4, 5), (None, 1, 2, 3))))
def test_maxpool_formulas(k, s, ceil_mode):
    wrong = []
    for p, d in itertools.product(range(k // 2 + 1), (1, 2, 3)):
        wrong += _check_formulas({"type": "MaxPool2d", "args": {
            "kernel_size": k, "stride": s, "padding": p, "dilation": d, "ceil_mode": ceil_mode}}, SIZES)
    assert wrong == []


@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("k,s", list(itertools.product((1, 2, 3, 4, 5), (None, 1, 2, 3))))
def test_avgpool_formulas(k, s, ceil_mode):
    wrong = []
    for p, cip in itertools.product(range(k // 2 + 1), (True, False)):
        wrong += _check_formulas({"type": "AvgPool2d", "args": {
            "kernel_size": k, "stride": s, "padding": p, "ceil_mode": ceil_mode, "count_include_pad": cip}}, SIZES)
    assert wrong == []


@pytest.mark.parametrize("size,k,s,p,expected", [
    (5, 2, 2, 0, 3),     # the partial last window counts
    (5, 2, 2, 1, 3),     # ... but a window starting in the right padding does not: 4 would be wrong
    (4, 2, 2, 1, 3),
    (6, 3, 2, 1, 4),
    (7, 3, 3, 0, 3),
    (6, 3, 3, 0, 2),     # exact fit: ceil and floor agree
    (1, 2, 2, 1, 1),
])
@pytest.mark.parametrize("type_name", ["MaxPool2d", "AvgPool2d"])
def test_ceil_mode_edge_cases(type_name, size, k, s, p, expected):
    layer = {"type": type_name, "args": {"kernel_size": k, "stride": s, "padding": p, "ceil_mode": True}}
    real = run_stack(_stack(layer), torch.rand(1, 1, size, size), "cpu").layers[0]
    row = infer_shapes(_stack(layer), (1, 1, size, size))[0]
    assert real.output_shape == row.output_shape == (1, 1, expected, expected)
    assert [_final_number(line) for line in row.formula] == [expected, expected]
    assert row.formula[0].startswith("H_out = ceil(")


def test_maxpool_formula_text():
    row = infer_shapes(_stack({"type": "MaxPool2d", "args": {"kernel_size": 3, "stride": 2, "padding": 1, "dilation": 2}}),
                       (1, 1, 10, 10))[0]
    assert row.formula[0] == "H_out = floor((10 + 2*1 - 2*(3-1) - 1) / 2 + 1) = 4"


def test_avgpool_and_conv_transpose_formula_text():
    row = infer_shapes(_stack({"type": "AvgPool2d", "args": {"kernel_size": 2}}), (1, 1, 7, 7))[0]
    assert row.formula[0] == "H_out = floor((7 + 2*0 - 2) / 2 + 1) = 3"
    row = infer_shapes(_stack({"type": "ConvTranspose2d", "args": {
        "in_channels": 1, "out_channels": 1, "kernel_size": 3, "stride": 2, "padding": 1, "output_padding": 1}}),
        (1, 1, 5, 5))[0]
    assert row.formula[0] == "H_out = (5-1)*2 - 2*1 + 1*(3-1) + 1 + 1 = 10"


@pytest.mark.parametrize("size", [4, 5, 7, 8, 9])
@pytest.mark.parametrize("k,s,p", [(2, None, 0), (3, 2, 1), (3, 1, 0), (2, 2, 1)])
def test_unpool_formula_and_the_size_used(size, k, s, p):
    stack = _stack({"type": "MaxPool2d", "name": "p", "args": {"kernel_size": k, "stride": s, "padding": p}},
                   {"type": "MaxUnpool2d", "args": {"kernel_size": k, "stride": s, "padding": p}, "indices_from": "p"})
    real = run_stack(stack, torch.rand(1, 1, size, size + 1), "cpu")
    rows = infer_shapes(stack, (1, 1, size, size + 1))
    assert [r.output_shape for r in rows] == [r.output_shape for r in real.layers]
    assert [r.error for r in rows] == [r.error for r in real.layers]
    if real.ok:
        assert rows[1].output_shape == (1, 1, size, size + 1)
        for line, n in zip(rows[1].formula, (size, size + 1)):
            assert _final_number(line) == n or line.endswith(f"the input size of 'p', {n}, is used")


@pytest.mark.parametrize("args", [
    {"scale_factor": 2}, {"scale_factor": 1.1}, {"scale_factor": 0.5}, {"scale_factor": 2.5},
    {"scale_factor": 1 / 3}, {"scale_factor": [1.5, 0.75]}, {"size": [7, 3]}, {"size": 5},
    {"scale_factor": 1.1, "mode": "bilinear", "recompute_scale_factor": True},
    {"scale_factor": 0.7, "mode": "bicubic", "align_corners": True},
])
def test_upsample_formulas(args):
    assert _check_formulas({"type": "Upsample", "args": args}, SIZES[4:]) == []


def test_layers_without_formulas_and_disabled_layers():
    stack = _stack({"type": "ReLU"}, {"type": "MaxPool2d", "args": {"kernel_size": 2}, "enabled": False},
                   {"type": "Flatten"}, {"type": "Linear", "args": {"in_features": 48, "out_features": 2}})
    rows = infer_shapes(stack, (1, 3, 4, 4))
    assert [r.formula for r in rows] == [[], [], [], []]
    assert rows[1].output_shape == (1, 3, 4, 4) and not rows[1].enabled
    assert [r.output_shape for r in rows] == [(1, 3, 4, 4), (1, 3, 4, 4), (1, 48), (1, 2)]
    assert total_params(rows) == 48 * 2 + 2


def test_rows_stop_at_the_first_error_with_the_real_message():
    stack = _stack({"type": "Conv2d", "name": "conv1", "args": {"in_channels": 3, "out_channels": 3, "kernel_size": 3}},
                   {"type": "Conv2d", "name": "conv2", "args": {"in_channels": 6, "out_channels": 16, "kernel_size": 5}},
                   {"type": "ReLU"})
    rows = infer_shapes(stack, (1, 3, 32, 32))
    assert len(rows) == 2
    assert rows[1].error == "Conv2d 'conv2' expects 6 input channels but its input has 3 (shape [1, 3, 30, 30])."
    assert rows[1].output_shape is None and rows[1].input_shape == (1, 3, 30, 30)


def test_to_json():
    rows = infer_shapes(_stack({"type": "MaxPool2d", "args": {"kernel_size": 2}}), (1, 3, 8, 8))
    assert rows[0].to_json() == {
        "index": 0, "name": "pool1", "type": "MaxPool2d", "enabled": True, "input_shape": [1, 3, 8, 8],
        "output_shape": [1, 3, 4, 4], "params": 0,
        "formula": ["H_out = floor((8 + 2*0 - 1*(2-1) - 1) / 2 + 1) = 4",
                    "W_out = floor((8 + 2*0 - 1*(2-1) - 1) / 2 + 1) = 4"], "error": None}
    assert isinstance(rows[0], ShapeRow)


def test_empty_stack():
    assert infer_shapes(_stack(), (1, 3, 8, 8)) == []


def test_a_huge_input_costs_nothing():
    stack = _stack({"type": "Conv2d", "args": {"in_channels": 3, "out_channels": 64, "kernel_size": 3, "padding": 1}},
                   {"type": "BatchNorm2d", "args": {"num_features": 64}}, {"type": "ReLU"},
                   {"type": "MaxPool2d", "args": {"kernel_size": 2}},
                   {"type": "Upsample", "args": {"scale_factor": 2, "mode": "bilinear"}},
                   {"type": "Softmax", "args": {"dim": 1}})
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    try:
        rows = infer_shapes(stack, (1, 3, 20000, 20000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert [r.error for r in rows] == [None] * 6
    assert rows[-1].output_shape == (1, 64, 20000, 20000)    # 102 GB if it were real
    assert peak < 5_000_000
    assert rss_after - rss_before < 500_000                  # kilobytes on Linux: far below one 4.8 GB input

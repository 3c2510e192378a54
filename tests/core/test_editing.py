"""Adding a layer sizes it to what reaches it, so a freshly built stack runs without hand-fixing."""

from __future__ import annotations

import pytest
import torch

from explorer.core.editing import (earlier_pool_names, earlier_pools, new_layer, pool_order_problem, removal_problem,
                                   renamed, shape_before)
from explorer.core.engine import run_stack
from explorer.core.layers import LAYER_TYPES, exclusive_with, layer_type, unset_arg_fallback
from explorer.core.stack import Stack, stack_from_dict

INPUT = (1, 3, 32, 32)


def _default():
    return stack_from_dict({"layers": [
        {"type": "Conv2d", "name": "conv1", "args": {"in_channels": 3, "out_channels": 6, "kernel_size": 3}},
        {"type": "ReLU", "name": "relu1"},
        {"type": "MaxPool2d", "name": "pool1", "args": {"kernel_size": 2}},
    ]})


def _inserted(stack: Stack, type_name: str, position: int) -> Stack:
    new = stack.copy()
    new.layers.insert(position, new_layer(stack, type_name, position, INPUT))
    return new


def test_shape_before():
    stack = _default()
    assert shape_before(stack, 0, INPUT) == INPUT
    assert shape_before(stack, 1, INPUT) == (1, 6, 30, 30)
    assert shape_before(stack, 3, INPUT) == (1, 6, 15, 15)


def test_shape_before_stops_at_a_failing_layer():
    stack = stack_from_dict({"layers": [
        {"type": "MaxPool2d", "args": {"kernel_size": 2}},
        {"type": "Conv2d", "args": {"in_channels": 5, "out_channels": 1, "kernel_size": 1}},
        {"type": "ReLU"},
    ]})
    assert shape_before(stack, 3, INPUT) == (1, 3, 16, 16)


@pytest.mark.parametrize("type_name", sorted(set(LAYER_TYPES) - {"MaxUnpool2d"}))
@pytest.mark.parametrize("position", [0, 1, 3])
def test_a_new_layer_of_every_type_fits_where_it_goes(type_name, position):
    stack = _inserted(_default(), type_name, position)
    result = run_stack(stack, torch.rand(INPUT), "cpu")
    assert result.layers[position].error is None, result.error
    if position == 3:      # at the end nothing after it can break
        assert result.ok, result.error


def test_a_new_layer_after_flatten():
    stack = stack_from_dict({"layers": [{"type": "Flatten"}]})
    for type_name in ("Linear", "ReLU", "Softmax", "Dropout"):
        stack = _inserted(stack, type_name, len(stack.layers))
    result = run_stack(stack, torch.rand(INPUT), "cpu")
    assert result.ok, result.error
    assert stack.layers[1].args["in_features"] == 3 * 32 * 32
    assert result.layers[-1].output_shape == (1, 10)


def test_sizes_follow_the_shape_that_reaches_the_position():
    stack = _default()
    conv = new_layer(stack, "Conv2d", 3, INPUT)
    assert conv.args["in_channels"] == 6 and conv.name == "conv2"
    bn = new_layer(stack, "BatchNorm2d", 1, INPUT)
    assert bn.args == {"num_features": 6} and bn.name == "bn1"
    assert new_layer(stack, "ReLU", 1, INPUT).name == "relu2"


def test_unpool_takes_the_latest_earlier_pool():
    stack = stack_from_dict({"layers": [
        {"type": "MaxPool2d", "name": "p1", "args": {"kernel_size": 2}},
        {"type": "MaxPool2d", "name": "p2", "args": {"kernel_size": 3, "stride": 2, "padding": 1}},
    ]})
    assert [p.name for p in earlier_pools(stack, 2)] == ["p1", "p2"]
    unpool = new_layer(stack, "MaxUnpool2d", 2, INPUT)
    assert unpool.indices_from == "p2"
    assert unpool.args == {"kernel_size": 3, "stride": 2, "padding": 1}
    stack.layers.append(unpool)
    result = run_stack(stack, torch.rand(INPUT), "cpu")
    assert result.ok, result.error
    assert result.layers[2].output_shape == (1, 3, 16, 16)
    first = new_layer(stack, "MaxUnpool2d", 1, INPUT)
    assert first.indices_from == "p1" and first.args == {"kernel_size": 2}


def test_unpool_without_a_pool_before_it_is_refused():
    with pytest.raises(ValueError, match="add a MaxPool2d before it"):
        new_layer(_default(), "MaxUnpool2d", 2, INPUT)


def test_unknown_type_is_refused():
    with pytest.raises(ValueError, match="Conv3d"):
        new_layer(_default(), "Conv3d", 0, INPUT)


def test_building_a_stack_from_nothing_runs():
    stack = Stack()
    for type_name in ("Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "MaxUnpool2d", "Conv2d", "Upsample",
                      "AvgPool2d", "ConvTranspose2d", "Flatten", "Linear", "Softmax"):
        stack.layers.append(new_layer(stack, type_name, len(stack.layers), INPUT))
    assert len(set(stack.names())) == len(stack.layers)
    result = run_stack(stack, torch.rand(INPUT), "cpu")
    assert result.ok, result.error


# ---------------------------------------------------------------- the editing rules the window follows


def _pools_stack():
    return stack_from_dict({"layers": [
        {"type": "Conv2d", "name": "conv1", "args": {"in_channels": 3, "out_channels": 6, "kernel_size": 3}},
        {"type": "MaxPool2d", "name": "pool1", "args": {"kernel_size": 2}},
        {"type": "MaxPool2d", "name": "pool2", "args": {"kernel_size": 2}},
        {"type": "MaxUnpool2d", "name": "unpool1", "args": {"kernel_size": 2}, "indices_from": "pool2"},
    ]})


def test_renaming_a_pool_carries_its_unpool_along_and_leaves_the_original_alone():
    stack = _pools_stack()
    after = renamed(stack, 2, "p2")
    assert [l.name for l in after.layers] == ["conv1", "pool1", "p2", "unpool1"]
    assert after.layers[3].indices_from == "p2"
    assert stack.layers[2].name == "pool2" and stack.layers[3].indices_from == "pool2"


def test_renaming_to_a_taken_or_bad_name_is_refused_with_a_sentence():
    with pytest.raises(ValueError, match="already called 'pool1'"):
        renamed(_pools_stack(), 2, "pool1")
    with pytest.raises(ValueError):
        renamed(_pools_stack(), 2, "")


def test_a_pool_whose_indices_are_used_cannot_be_removed_but_the_other_can():
    stack = _pools_stack()
    assert removal_problem(stack, 2) == "'pool2' gives its indices to unpool1; remove or change that first."
    assert removal_problem(stack, 1) is None
    assert removal_problem(stack, 3) is None


def test_an_unpool_may_not_come_before_its_pool():
    stack = _pools_stack()
    assert pool_order_problem(stack) is None
    stack.layers.insert(1, stack.layers.pop(3))
    assert pool_order_problem(stack) == "'unpool1' would come before 'pool2', whose indices it needs."


def test_earlier_pool_names_are_the_max_pools_before_the_position():
    stack = _pools_stack()
    assert earlier_pool_names(stack, 3) == ["pool1", "pool2"]
    assert earlier_pool_names(stack, 2) == ["pool1"]
    assert earlier_pool_names(stack, 1) == []


def test_upsample_size_and_scale_factor_exclude_each_other():
    assert exclusive_with("Upsample", "size") == "scale_factor"
    assert exclusive_with("Upsample", "scale_factor") == "size"
    assert exclusive_with("Conv2d", "stride") is None


def _arg(type_name, name):
    return next(a for a in layer_type(type_name).args if a.name == name)


def test_an_unset_stride_starts_at_the_kernel_size_and_a_divisor_at_k_squared():
    assert unset_arg_fallback(_arg("MaxPool2d", "stride"), {"kernel_size": 3}, None) == 3
    assert unset_arg_fallback(_arg("AvgPool2d", "divisor_override"), {"kernel_size": 3}, None) == 9
    assert unset_arg_fallback(_arg("AvgPool2d", "divisor_override"), {"kernel_size": (2, 3)}, None) == 6
    # What torch does with stride=None is exactly stride=kernel_size.
    x = torch.randn(1, 1, 9, 9)
    assert torch.equal(torch.nn.MaxPool2d(3)(x), torch.nn.MaxPool2d(3, stride=3)(x))


def test_an_unset_upsample_size_starts_at_the_current_output_size():
    assert unset_arg_fallback(_arg("Upsample", "size"), {}, (1, 3, 40, 50)) == [40, 50]
    assert unset_arg_fallback(_arg("Upsample", "size"), {}, None) == 64
    assert unset_arg_fallback(_arg("Upsample", "scale_factor"), {}, None) == 2.0

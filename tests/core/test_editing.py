"""Adding a layer sizes it to what reaches it, so a freshly built stack runs without hand-fixing."""

from __future__ import annotations

import pytest
import torch

from explorer.core.editing import earlier_pools, new_layer, shape_before
from explorer.core.engine import run_stack
from explorer.core.layers import LAYER_TYPES
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

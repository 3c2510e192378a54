"""Edits to a stack that need to know shapes: a new layer takes its input size from the layer before
it, so a freshly built stack runs without hand-fixing. Used by the window and usable headless."""

from __future__ import annotations

from explorer.core.layers import LAYER_TYPES, LayerSpec
from explorer.core.shapes import infer_shapes
from explorer.core.stack import Stack, default_name


def shape_before(stack: Stack, position: int, input_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape that reaches ``position`` (the output of the last layer before it that ran)."""
    shape = tuple(input_shape)
    if position <= 0:
        return shape
    for row in infer_shapes(Stack(stack.layers[:position], stack.seed, stack.input, stack.mode), input_shape):
        if row.output_shape is None:
            break
        shape = row.output_shape
    return shape


def earlier_pools(stack: Stack, position: int) -> list[LayerSpec]:
    return [layer for layer in stack.layers[:position] if layer.type == "MaxPool2d"]


def new_layer(stack: Stack, type_name: str, position: int, input_shape: tuple[int, ...]) -> LayerSpec:
    """A new layer of this type, for insertion at ``position``, sized to fit what reaches it.
    Raises ValueError with a sentence when the type cannot go there (an unpool with no pool before it)."""
    if type_name not in LAYER_TYPES:
        raise ValueError(f"Unknown layer type '{type_name}'.")
    shape = shape_before(stack, position, input_shape)
    channels = shape[1] if len(shape) >= 2 else 1
    args: dict = {}
    indices_from = None
    if type_name == "Conv2d":
        args = {"in_channels": channels, "out_channels": 8, "kernel_size": 3}
    elif type_name == "ConvTranspose2d":
        args = {"in_channels": channels, "out_channels": channels, "kernel_size": 2, "stride": 2}
    elif type_name in ("MaxPool2d", "AvgPool2d"):
        args = {"kernel_size": 2}
    elif type_name == "MaxUnpool2d":
        pools = earlier_pools(stack, position)
        if not pools:
            raise ValueError("MaxUnpool2d puts values back where a MaxPool2d found them; add a MaxPool2d before it first.")
        pool = pools[-1].full_args()
        args = {"kernel_size": pool["kernel_size"]}
        if pool["stride"] is not None:
            args["stride"] = pool["stride"]
        if pool["padding"] not in (0, (0, 0)):
            args["padding"] = pool["padding"]
        indices_from = pools[-1].name
    elif type_name == "Upsample":
        args = {"scale_factor": 2.0}
    elif type_name == "BatchNorm2d":
        args = {"num_features": channels}
    elif type_name == "Linear":
        args = {"in_features": shape[-1] if shape else 1, "out_features": 10}
    elif type_name == "Softmax":
        args = {"dim": 1}
    return LayerSpec(type_name, default_name(stack.names(), type_name), args, None, True, indices_from)

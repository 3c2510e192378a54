"""Edits to a stack that need to know shapes: a new layer takes its input size from the layer before
it, so a freshly built stack runs without hand-fixing. Used by the window and usable headless."""

from __future__ import annotations

from explorer.core.layers import LAYER_TYPES, LayerArgError, LayerSpec, check_args
from explorer.core.shapes import infer_shapes
from explorer.core.stack import Stack, default_name


# A channel count the new layer chooses freely (not one it must match) is kept at most this:
# an auto-sized layer must never be one whose weights fill the memory.
MAX_AUTO_CHANNELS = 512


def _shapes_before(stack: Stack, position: int, input_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The input shape, then each output up to ``position`` (stopping at a layer that cannot run)."""
    shapes = [tuple(input_shape)]
    if position <= 0:
        return shapes
    for row in infer_shapes(Stack(stack.layers[:position], stack.seed, stack.input, stack.mode), input_shape):
        if row.output_shape is None:
            break
        shapes.append(tuple(row.output_shape))
    return shapes


def shape_before(stack: Stack, position: int, input_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape that reaches ``position`` (the output of the last layer before it that ran)."""
    return _shapes_before(stack, position, input_shape)[-1]


def _image_channels(shapes: list[tuple[int, ...]]) -> int:
    """Channels of the latest image-shaped [N, C, H, W] (or [C, H, W]) shape. After Flatten the
    'channels' of [N, 96774] are features, not channels: sizing a conv from them made layers of
    hundreds of GB; the conv instead gets the channels from before the Flatten and its check
    says why it cannot follow Flatten."""
    for shape in reversed(shapes):
        if len(shape) >= 3:
            return int(shape[-3])
    return 3


def earlier_pools(stack: Stack, position: int) -> list[LayerSpec]:
    return [layer for layer in stack.layers[:position] if layer.type == "MaxPool2d"]


def new_layer(stack: Stack, type_name: str, position: int, input_shape: tuple[int, ...]) -> LayerSpec:
    """A new layer of this type, for insertion at ``position``, sized to fit what reaches it.
    Raises ValueError with a sentence when the type cannot go there (an unpool with no pool before it)."""
    if type_name not in LAYER_TYPES:
        raise ValueError(f"Unknown layer type '{type_name}'.")
    shapes = _shapes_before(stack, position, input_shape)
    shape = shapes[-1]
    channels = _image_channels(shapes)
    args: dict = {}
    indices_from = None
    if type_name == "Conv2d":
        args = {"in_channels": channels, "out_channels": 8, "kernel_size": 3}
    elif type_name == "ConvTranspose2d":
        args = {"in_channels": channels, "out_channels": min(channels, MAX_AUTO_CHANNELS), "kernel_size": 2, "stride": 2}
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
    name = default_name(stack.names(), type_name)
    try:
        check_args(type_name, args)
    except LayerArgError as e:   # e.g. a layer that would need more memory than one layer may use
        raise ValueError(f"A new {type_name} here cannot be sized to fit: {e}") from None
    return LayerSpec(type_name, name, args, None, True, indices_from)

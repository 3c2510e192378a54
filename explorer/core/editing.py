"""Edits to a stack that need to know shapes: a new layer takes its input size from the layer before
it, so a freshly built stack runs without hand-fixing. Used by the window and usable headless."""

from __future__ import annotations

from explorer.core.layers import LAYER_TYPES, LayerArgError, LayerSpec, NewLayerContext, check_args
from explorer.core.shapes import infer_shapes
from explorer.core.stack import Stack, default_name, name_problem


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
    return [layer for layer in stack.layers[:position] if layer.layer_type.records_indices]


def earlier_pool_names(stack: Stack, position: int) -> list[str]:
    """The MaxPool2d layers before ``position``: where an unpool there may take its indices from."""
    return [layer.name for layer in earlier_pools(stack, position)]


def renamed(stack: Stack, index: int, name: str) -> Stack:
    """A copy of ``stack`` with layer ``index`` called ``name`` and the unpools that took their
    indices from the old name following it. Raises ValueError with a sentence when the name is
    taken or not allowed. ``name`` is used as given (the caller strips it)."""
    old = stack.layers[index].name
    if name != old and name in stack.names():
        raise ValueError(f"Another layer is already called '{name}'.")
    if (problem := name_problem(name)) is not None:   # the rule a saved stack is loaded with
        raise ValueError(f"{problem}.")
    after = stack.copy()
    after.layers[index].name = name
    for layer in after.layers:
        if layer.indices_from == old:
            layer.indices_from = name
    return after


def removal_problem(stack: Stack, index: int) -> str | None:
    """Why layer ``index`` cannot be removed (an unpool takes its indices from it), or None."""
    name = stack.layers[index].name
    users = [layer.name for i, layer in enumerate(stack.layers) if i != index and layer.indices_from == name]
    if users:
        return f"'{name}' gives its indices to {', '.join(users)}; remove or change that first."
    return None


def pool_order_problem(stack: Stack) -> str | None:
    """Why the order of ``stack`` is wrong (an unpool before the pool whose indices it needs), or None."""
    pools_seen = set()
    for layer in stack.layers:
        if layer.indices_from is not None and layer.indices_from not in pools_seen:
            return f"'{layer.name}' would come before '{layer.indices_from}', whose indices it needs."
        if layer.layer_type.records_indices:
            pools_seen.add(layer.name)
    return None


def new_layer(stack: Stack, type_name: str, position: int, input_shape: tuple[int, ...]) -> LayerSpec:
    """A new layer of this type, for insertion at ``position``, sized to fit what reaches it.
    Raises ValueError with a sentence when the type cannot go there (an unpool with no pool before it)."""
    if type_name not in LAYER_TYPES:
        raise ValueError(f"Unknown layer type '{type_name}'.")
    shapes = _shapes_before(stack, position, input_shape)
    shape = shapes[-1]
    channels = _image_channels(shapes)
    t = LAYER_TYPES[type_name]
    pools = earlier_pools(stack, position)
    pool_args = pools[-1].full_args() if pools and t.takes_indices else None
    args = t.new_args(NewLayerContext(channels, shape, pool_args))
    indices_from = pools[-1].name if t.takes_indices else None
    name = default_name(stack.names(), type_name)
    try:
        check_args(type_name, args)
    except LayerArgError as e:   # e.g. a layer that would need more memory than one layer may use
        raise ValueError(f"A new {type_name} here cannot be sized to fit: {e}") from None
    return LayerSpec(type_name, name, args, None, True, indices_from)

"""Why a layer cannot run, in words a learner understands.

Each layer type's shape rule (``LayerType.output_shape`` in layers.py) raises these errors; the
shape table and a real run call the same rule, so both report the same message. Pure Python:
everything here works on shapes (tuples), never on tensors."""

from __future__ import annotations

from typing import Any, Protocol


class LayerSpec(Protocol):
    """What these messages read of a layer (layers.LayerSpec, which imports this module)."""

    type: str
    name: str
    layer_type: Any


class LayerRunError(RuntimeError):
    """A layer that cannot run on its input; the message names the layer."""


def shape_str(shape) -> str:
    return "[" + ", ".join(str(int(s)) for s in shape) + "]"


def label(spec: LayerSpec) -> str:
    return f"{spec.type} '{spec.name}'"


def pair(v: Any) -> tuple:
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def hw(p: tuple) -> str:
    return f"{p[0]}x{p[1]}"


# An output with more values than this cannot be held by any machine (4 PB as float32); refusing it
# here keeps torch's "storage size calculation overflowed" out of the shape table.
MAX_OUTPUT_ELEMENTS = 2**50


def needs_image(spec: LayerSpec, shape: tuple[int, ...], dims: tuple[int, ...] = (3, 4),
                source: LayerSpec | None = None) -> None:
    if len(shape) not in dims:
        raise LayerRunError(f"{label(spec)} needs an image-shaped input [N, C, H, W] but its input has shape "
                            f"{shape_str(shape)}{coming_from(spec, source)}.")


def coming_from(spec: LayerSpec, source: LayerSpec | None) -> str:
    """Why the input has the wrong shape: the layer it comes from."""
    if source is None:
        return "; it cannot come after Flatten or Linear"
    if not source.layer_type.keeps_image:
        return f", the output of {label(source)}; a {spec.type} cannot follow a {source.type}"
    return f", the output of {label(source)}"


def output_fits(spec: LayerSpec, shape: tuple[int, ...]) -> None:
    count = 1
    for n in shape:
        count *= int(n)
    if count > MAX_OUTPUT_ELEMENTS:
        raise LayerRunError(f"{label(spec)}: its output would be {shape_str(shape)}, {count:,} values, "
                            f"more than any memory holds.")


def kernel_fits(spec: LayerSpec, shape: tuple[int, ...], kernel, padding, dilation=1) -> None:
    k, p, d = pair(kernel), pair(padding), pair(dilation)
    effective = tuple(dd * (kk - 1) + 1 for kk, dd in zip(k, d))
    padded = tuple(int(s) + 2 * pp for s, pp in zip(shape[-2:], p))
    if any(e > s for e, s in zip(effective, padded)):
        what = f"kernel {hw(k)}" if effective == k else f"kernel {hw(k)} (dilated to {hw(effective)})"
        raise LayerRunError(f"{label(spec)}: {what} is larger than its padded input {hw(padded)}.")


def check_unpool(spec: LayerSpec, shape: tuple[int, ...], pool_name: str, pool_output_shape, pool_enabled: bool) -> None:
    if not pool_enabled:
        raise LayerRunError(f"{label(spec)} takes its indices from '{pool_name}', which is disabled.")
    if pool_output_shape is None:
        raise LayerRunError(f"{label(spec)} takes its indices from '{pool_name}', which did not run.")
    if tuple(shape) != tuple(pool_output_shape):
        raise LayerRunError(f"{label(spec)} needs an input shaped like the output of '{pool_name}' "
                            f"{shape_str(pool_output_shape)} but its input has shape {shape_str(shape)}.")


def explain_exception(spec: LayerSpec, exc: BaseException) -> str:
    """Torch's own message, trimmed to its first line and prefixed with the layer."""
    if isinstance(exc, LayerRunError):
        return str(exc)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "Output size is too small" in text:
        return f"{label(spec)}: its output would be empty ({text})"
    return f"{label(spec)}: {text}"

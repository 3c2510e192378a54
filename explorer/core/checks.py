"""Why a layer cannot run, in words a learner understands.

The same checks run before a real forward pass and before a shape-only pass on meta tensors,
so the shape table and a real run report the same message."""

from __future__ import annotations

import math
from typing import Any

import torch

from explorer.core.layers import LayerSpec


class LayerRunError(RuntimeError):
    """A layer that cannot run on its input; the message names the layer."""


def shape_str(shape) -> str:
    return "[" + ", ".join(str(int(s)) for s in shape) + "]"


def label(spec: LayerSpec) -> str:
    return f"{spec.type} '{spec.name}'"


def _pair(v: Any) -> tuple[int, int]:
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _hw(pair: tuple) -> str:
    return f"{pair[0]}x{pair[1]}"


# An output with more values than this cannot be held by any machine (4 PB as float32); refusing it
# here keeps torch's "storage size calculation overflowed" out of the shape table.
MAX_OUTPUT_ELEMENTS = 2**50


def _needs_image(spec: LayerSpec, x: torch.Tensor, dims: tuple[int, ...] = (3, 4),
                 source: LayerSpec | None = None) -> None:
    if x.dim() not in dims:
        raise LayerRunError(f"{label(spec)} needs an image-shaped input [N, C, H, W] but its input has shape "
                            f"{shape_str(x.shape)}{_coming_from(spec, source)}.")


def _coming_from(spec: LayerSpec, source: LayerSpec | None) -> str:
    """Why the input has the wrong shape: the layer it comes from."""
    if source is None:
        return "; it cannot come after Flatten or Linear"
    if source.type in ("Flatten", "Linear"):
        return f", the output of {label(source)}; a {spec.type} cannot follow a {source.type}"
    return f", the output of {label(source)}"


def _output_fits(spec: LayerSpec, x: torch.Tensor, channels: int, size_out: tuple[int, ...]) -> None:
    shape = (*x.shape[:-3], channels, *size_out)
    count = 1
    for n in shape:
        count *= int(n)
    if count > MAX_OUTPUT_ELEMENTS:
        raise LayerRunError(f"{label(spec)}: its output would be {shape_str(shape)}, {count:,} values, "
                            f"more than any memory holds.")


def _kernel_fits(spec: LayerSpec, x: torch.Tensor, kernel, padding, dilation=1) -> None:
    k, p, d = _pair(kernel), _pair(padding), _pair(dilation)
    effective = tuple(dd * (kk - 1) + 1 for kk, dd in zip(k, d))
    padded = tuple(int(s) + 2 * pp for s, pp in zip(x.shape[-2:], p))
    if any(e > s for e, s in zip(effective, padded)):
        what = f"kernel {_hw(k)}" if effective == k else f"kernel {_hw(k)} (dilated to {_hw(effective)})"
        raise LayerRunError(f"{label(spec)}: {what} is larger than its padded input {_hw(padded)}.")


def pool_output_size(size: int, k: int, s: int, p: int, d: int, ceil: bool) -> int:
    """torch's pooling size: with ceil_mode the last window must still start inside the input or its left padding."""
    span = size + 2 * p - d * (k - 1) - 1
    out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= size + p:
        out -= 1
    return out


def check_before_forward(spec: LayerSpec, args: dict[str, Any], x: torch.Tensor,
                         source: LayerSpec | None = None) -> None:
    """``source``: the layer whose output ``x`` is (None for the stack's input), named in messages."""
    t = spec.type
    if t in ("Conv2d", "ConvTranspose2d"):
        _needs_image(spec, x, source=source)
        channels = int(x.shape[-3])
        if channels != args["in_channels"]:
            raise LayerRunError(f"{label(spec)} expects {args['in_channels']} input channels but its input has "
                                f"{channels} (shape {shape_str(x.shape)}).")
        if t == "Conv2d":
            if args["padding"] == "same":
                # torch pads d*(k-1) in all, the larger half on the bottom/right side
                totals = (dd * (kk - 1) for kk, dd in zip(_pair(args["kernel_size"]), _pair(args["dilation"])))
                largest_side = tuple(tt - tt // 2 for tt in totals)
            else:
                padding = 0 if args["padding"] == "valid" else args["padding"]
                _kernel_fits(spec, x, args["kernel_size"], padding, args["dilation"])
                largest_side = _pair(padding)
                _output_fits(spec, x, args["out_channels"], tuple(
                    (int(n) + 2 * p - d * (k - 1) - 1) // s + 1 for n, p, d, k, s in zip(
                        x.shape[-2:], _pair(padding), _pair(args["dilation"]), _pair(args["kernel_size"]),
                        _pair(args["stride"]))))
            if args["padding_mode"] == "reflect":
                for pp, s in zip(largest_side, x.shape[-2:]):
                    if pp >= s:
                        raise LayerRunError(f"{label(spec)}: reflect padding {pp} must be smaller than the input size {int(s)}.")
        else:
            size_in = tuple(int(v) for v in x.shape[-2:])
            size_out = tuple((n - 1) * s - 2 * p + d * (k - 1) + op + 1 for n, s, p, d, k, op in zip(
                size_in, _pair(args["stride"]), _pair(args["padding"]), _pair(args["dilation"]),
                _pair(args["kernel_size"]), _pair(args["output_padding"])))
            if any(n < 1 for n in size_out):
                raise LayerRunError(f"{label(spec)}: padding {_hw(_pair(args['padding']))} is too large for its input "
                                    f"{_hw(size_in)}; the output would be {_hw(size_out)}.")
            _output_fits(spec, x, args["out_channels"], size_out)
    elif t in ("MaxPool2d", "AvgPool2d"):
        _needs_image(spec, x, source=source)
        # with ceil_mode torch accepts a kernel larger than the padded input as long as one window starts in it
        k, p, d = _pair(args["kernel_size"]), _pair(args["padding"]), _pair(args.get("dilation", 1))
        s = _pair(args["stride"] if args["stride"] is not None else args["kernel_size"])
        out = [pool_output_size(int(n), *a, args["ceil_mode"]) for n, *a in zip(x.shape[-2:], k, s, p, d)]
        if any(n < 1 for n in out):
            _kernel_fits(spec, x, k, p, d)
            raise LayerRunError(f"{label(spec)}: its output would be empty ({_hw(out)}).")
    elif t == "MaxUnpool2d":
        _needs_image(spec, x, source=source)
    elif t == "Upsample":
        _needs_image(spec, x, (4,), source=source)      # on 3 dimensions torch would resize a 1-D signal instead
        if args["scale_factor"] is not None:
            size_in = tuple(int(v) for v in x.shape[-2:])
            size_out = tuple(math.floor(float(n) * float(f)) for n, f in zip(size_in, _pair(args["scale_factor"])))
            if any(n < 1 for n in size_out):
                raise LayerRunError(f"{label(spec)}: scale_factor {_hw(_pair(args['scale_factor']))} turns its input "
                                    f"{_hw(size_in)} into {_hw(size_out)}, which is empty.")
        else:
            size_out = _pair(args["size"])
        _output_fits(spec, x, int(x.shape[1]), size_out)
    elif t == "BatchNorm2d":
        if x.dim() != 4:
            raise LayerRunError(f"{label(spec)} needs a 4-D input [N, C, H, W] but its input has shape {shape_str(x.shape)}"
                                f"{_coming_from(spec, source) if source is not None else ''}.")
        # Without affine weights and running statistics nothing is per channel: torch then normalises
        # any number of channels, whatever num_features says.
        per_channel = args["affine"] or args["track_running_stats"]
        if per_channel and int(x.shape[1]) != args["num_features"]:
            raise LayerRunError(f"{label(spec)} expects {args['num_features']} channels (num_features) but its input has "
                                f"{int(x.shape[1])} (shape {shape_str(x.shape)}).")
    elif t == "PReLU":
        n = args["num_parameters"]
        channels = int(x.shape[1]) if x.dim() >= 2 else 1
        if n != 1 and n != channels:
            raise LayerRunError(f"{label(spec)} has num_parameters {n}, which must be 1 or the number of channels "
                                f"of its input ({channels}, shape {shape_str(x.shape)}).")
    elif t == "Linear":
        features = int(x.shape[-1]) if x.dim() else 1
        if features != args["in_features"]:
            if x.dim() <= 2:
                raise LayerRunError(f"{label(spec)} expects {args['in_features']} input features but the flattened input has "
                                    f"{features}.")
            flat = 1
            for s in x.shape[1:]:
                flat *= int(s)
            raise LayerRunError(f"{label(spec)} expects {args['in_features']} input features but its input has shape "
                                f"{shape_str(x.shape)} ({features} in the last dimension); put a Flatten before it "
                                f"(flattened it has {flat}).")
    elif t == "Flatten":
        for key in ("start_dim", "end_dim"):
            d = args[key]
            if not -x.dim() <= d < x.dim():
                raise LayerRunError(f"{label(spec)}: {key} {d} is out of range for an input with {x.dim()} dimensions "
                                    f"{shape_str(x.shape)}.")
        start, end = (args["start_dim"] % x.dim(), args["end_dim"] % x.dim())
        if start > end:
            raise LayerRunError(f"{label(spec)}: start_dim {args['start_dim']} comes after end_dim {args['end_dim']} "
                                f"for an input of shape {shape_str(x.shape)}.")
    elif t == "Softmax":
        d = args["dim"]
        if d is not None and not -x.dim() <= d < x.dim():
            raise LayerRunError(f"{label(spec)}: dim {d} is out of range for an input with {x.dim()} dimensions "
                                f"{shape_str(x.shape)}.")


def check_unpool(spec: LayerSpec, x: torch.Tensor, pool_name: str, pool_output_shape, pool_enabled: bool) -> None:
    if not pool_enabled:
        raise LayerRunError(f"{label(spec)} takes its indices from '{pool_name}', which is disabled.")
    if pool_output_shape is None:
        raise LayerRunError(f"{label(spec)} takes its indices from '{pool_name}', which did not run.")
    if tuple(x.shape) != tuple(pool_output_shape):
        raise LayerRunError(f"{label(spec)} needs an input shaped like the output of '{pool_name}' "
                            f"{shape_str(pool_output_shape)} but its input has shape {shape_str(x.shape)}.")


def explain_exception(spec: LayerSpec, exc: BaseException) -> str:
    """Torch's own message, trimmed to its first line and prefixed with the layer."""
    if isinstance(exc, LayerRunError):
        return str(exc)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "Output size is too small" in text:
        return f"{label(spec)}: its output would be empty ({text})"
    return f"{label(spec)}: {text}"

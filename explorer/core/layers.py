"""One spec per layer type: its torch class, every constructor argument with torch's default,
how a value is checked, and a sentence that explains it. The form in the window, the stack file
and the engine all read this table, so a layer is described in exactly one place."""

from __future__ import annotations

import ast
import importlib.util
import math
import reprlib
import zlib
from collections.abc import Callable, Mapping
import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from explorer.core.checks import (LayerRunError, check_unpool, coming_from, hw, kernel_fits, label, needs_image,
                                  output_fits, pair, shape_str)

if TYPE_CHECKING:      # torch is imported only where a module is built: loading a stack and its shapes need none
    import torch
    from torch import nn


class LayerArgError(ValueError):
    """An argument value torch would refuse; ``key`` names the argument."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


# ---------------------------------------------------------------- argument kinds
# Each kind knows how to check a value from JSON or a form and turn it into what torch takes.

# Whole-number arguments (channels, sizes, strides, dims) above this are meaningless for a layer
# and overflow torch's or Qt's 32-bit fields; refusing them here keeps the message ours.
MAX_INT_ARG = 2**31 - 1
# A layer whose parameters (and buffers) would need more than this is refused before anything is
# allocated: VGG-16's largest layer needs 0.4 GB; a typo like out_channels=100000 would need 100s of GB.
MAX_LAYER_BYTES = 4_000_000_000

_SHOW = reprlib.Repr()
_SHOW.maxstring, _SHOW.maxother, _SHOW.maxlong, _SHOW.maxlevel, _SHOW.maxlist, _SHOW.maxdict = 40, 40, 24, 2, 4, 4


def show(value: Any) -> str:
    """A value as the user wrote it, for a one-line message: short, escaped (newlines, lone
    surrogates) and safe for any nesting depth or size."""
    try:
        return _SHOW.repr(value)
    except Exception:   # e.g. an int too long to print, or nesting deeper than repr can go
        return f"a {type(value).__name__}"


def format_bytes(n: float) -> str:
    """1234567 -> '1.2 MB' (decimal units, as disks and task managers show them)."""
    for unit in ("bytes", "kB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1000
    raise AssertionError


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool))


def _is_finite(v: Any) -> bool:
    """A number that is neither NaN nor infinite (an int too large for a float counts as infinite)."""
    if not _is_number(v):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:
        return False


@dataclass(frozen=True)
class Arg:
    name: str
    kind: str                 # int, float, bool, pair, padding, choice, size, scale, opt_int, opt_pair, opt_bool, opt_float, dim
    default: Any = None
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    help: str = ""

    def check(self, value: Any) -> Any:
        """Returns the value as torch takes it (lists become tuples) or raises LayerArgError."""
        k = self.kind
        if value is None:
            if k.startswith("opt_") or k in ("size", "scale", "dim"):
                return None
            raise LayerArgError(self.name, f"'{self.name}' needs a value ({self._expects()}), not null.")
        if k in ("int", "opt_int", "dim"):
            if not _is_int(value):
                raise self._wrong(value)
            self._check_range(value)
            return value
        if k in ("float", "opt_float"):
            if not _is_finite(value):
                raise self._wrong(value)
            self._check_range(value)
            return float(value)
        if k in ("bool", "opt_bool"):
            if not isinstance(value, bool):
                raise self._wrong(value)
            return value
        if k == "choice":
            if value not in self.choices:
                raise LayerArgError(self.name, f"'{self.name}' must be one of {', '.join(map(repr, self.choices))}, not {show(value)}.")
            return value
        if k == "padding" and isinstance(value, str):
            if value not in ("same", "valid"):
                raise LayerArgError(self.name, f"'{self.name}' must be a number, a pair, 'same' or 'valid', not {show(value)}.")
            return value
        if k in ("pair", "opt_pair", "padding", "size"):
            return self._int_pair(value)
        if k == "scale":
            if _is_finite(value):
                self._check_range(value)
                return float(value)
            if isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_finite(v) for v in value):
                for v in value:
                    self._check_range(v)
                return tuple(float(v) for v in value)
            raise self._wrong(value)
        raise AssertionError(f"unknown arg kind {k}")

    def _int_pair(self, value: Any):
        if _is_int(value):
            self._check_range(value)
            return value
        if isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_int(v) for v in value):
            for v in value:
                self._check_range(v)
            return tuple(value)
        raise self._wrong(value)

    def _check_range(self, v: float) -> None:
        if self.minimum is not None and v < self.minimum:
            raise LayerArgError(self.name, f"'{self.name}' must be at least {self.minimum:g}, not {show(v)}.")
        if self.maximum is not None and v > self.maximum:
            raise LayerArgError(self.name, f"'{self.name}' must be at most {self.maximum:g}, not {show(v)}.")
        if self.kind not in ("float", "opt_float") and abs(v) > MAX_INT_ARG:
            # also scale factors: a larger one gives an output no memory holds
            bounds = (f"at most {MAX_INT_ARG:,}" if self.minimum is not None and self.minimum >= 0
                      else f"between {-MAX_INT_ARG:,} and {MAX_INT_ARG:,}")
            raise LayerArgError(self.name, f"'{self.name}' must be {bounds}, not {show(v)}.")

    def _expects(self) -> str:
        return {
            "int": "a whole number", "opt_int": "a whole number or null", "dim": "a dimension number or null",
            "float": "a number", "opt_float": "a number or null",
            "bool": "true or false", "opt_bool": "true, false or null",
            "pair": "a whole number or a pair [h, w]", "opt_pair": "a whole number, a pair [h, w] or null",
            "padding": "a whole number, a pair [h, w], 'same' or 'valid'",
            "size": "a whole number, a pair [h, w] or null", "scale": "a number, a pair [h, w] or null",
            "choice": "one of " + ", ".join(map(repr, self.choices)),
        }[self.kind]

    def _wrong(self, value: Any) -> LayerArgError:
        return LayerArgError(self.name, f"'{self.name}' must be {self._expects()}, not {show(value)}.")


# ---------------------------------------------------------------- the help sentences
# Shared by every layer that has the argument, as the classic parameter lists explain them.
HELP = {
    "in_channels": "Number of channels in the input image (3 for RGB, 1 for grayscale, or the previous layer's out_channels).",
    "out_channels": "Number of channels produced: one feature map per learned kernel.",
    "kernel_size": "Size of the sliding window (kernel): one number for a square window, or [height, width].",
    "stride": "How far the window moves between positions; 2 halves the output size.",
    "pool_stride": "How far the window moves between positions; empty (null) means the same as kernel_size.",
    "padding": "Zeros (or the padding_mode) added around the border, per side; 'same' keeps the size, 'valid' adds none.",
    "pool_padding": "Implicit padding added on both sides (negative infinity for max pooling, zeros for average pooling); at most half the kernel.",
    "dilation": "Spacing between kernel elements (the 'à trous' algorithm); 2 spreads a 3x3 kernel over 5x5 pixels.",
    "groups": "Split input and output channels into this many independent groups; in_channels gives a depthwise convolution.",
    "bias": "Add a learnable bias to every output value.",
    "padding_mode": "What the padded border holds: zeros, a reflection, a replicate of the edge pixel, or a circular wrap.",
    "output_padding": "Extra size added to one side of the output, to pick between the sizes a strided transposed convolution could produce.",
    "return_indices": "Also return where each maximum came from (MaxUnpool2d needs them; this app records them always).",
    "ceil_mode": "Use ceil instead of floor to compute the output size, so a partial window at the edge still counts.",
    "count_include_pad": "Count the zero padding in the average's denominator.",
    "divisor_override": "Divide each window's sum by this number instead of the window size (empty means the window size).",
    "size": "Output size [height, width]; give either size or scale_factor.",
    "scale_factor": "Multiplier for height and width; give either size or scale_factor.",
    "mode": "How new pixels are computed: copy the nearest one, or interpolate (bilinear, bicubic).",
    "align_corners": "For bilinear/bicubic: align the corner pixels of input and output exactly (empty means torch's default, False).",
    "recompute_scale_factor": "Recompute the scale used in the interpolation from the rounded output size.",
    "inplace": "Overwrite the input instead of allocating a new tensor (the app still keeps every layer's output intact).",
    "negative_slope": "Slope for negative inputs: f(x) = x for x >= 0, negative_slope * x otherwise.",
    "num_parameters": "How many learnable slopes: 1 shared by all channels, or one per channel.",
    "init": "Starting value of the learnable negative slope.",
    "lower": "Lower bound of the random negative slope (training); evaluation uses (lower + upper) / 2.",
    "upper": "Upper bound of the random negative slope (training); evaluation uses (lower + upper) / 2.",
    "alpha": "Value ELU approaches for very negative inputs: f(x) = alpha * (exp(x) - 1) for x < 0.",
    "approximate": "'none' computes the exact GELU; 'tanh' uses the faster tanh approximation.",
    "dim": "Dimension along which the values are turned into probabilities that sum to 1 (1 = across channels).",
    "num_features": "Number of channels C of the input [N, C, H, W].",
    "eps": "Small number added to the variance so the division never is by zero.",
    "momentum": "Weight of the newest batch in the running mean and variance (empty: a cumulative average).",
    "affine": "Learn a scale (weight) and shift (bias) per channel after normalising.",
    "track_running_stats": "Keep running mean and variance for evaluation; off means every batch uses its own statistics.",
    "p": "Probability that each element is zeroed during training (evaluation passes everything through).",
    "start_dim": "First dimension to flatten (1 keeps the batch dimension).",
    "end_dim": "Last dimension to flatten (-1 is the last one).",
    "in_features": "Number of input values per sample (the flattened size of the previous layer's output).",
    "out_features": "Number of output values per sample (10 for the ten CIFAR-10 classes).",
    "bn_bias": "Learn the shift (bias) when affine is on.",
}


def _a(name: str, kind: str, default: Any = None, *, required: bool = False, help_key: str | None = None, **kw) -> Arg:
    return Arg(name, kind, default, required=required, help=HELP[help_key or name], **kw)


# ---------------------------------------------------------------- output-shape rules
# One per layer type: pure arithmetic on the input shape and the arguments (torch's documented
# formulas), raising LayerRunError with a sentence where torch would refuse the input. The shape
# table uses them without torch; a real run calls the same rule before its forward pass, so both
# report the same message. tests/core/test_shape_rules.py checks every rule against torch.

@dataclass(frozen=True)
class ShapeContext:
    """What a rule may need besides its own input: the layer whose output the input is (None for
    the stack's input), the rows of the earlier layers by name (anything with input_shape,
    output_shape and enabled: a MaxUnpool2d reads its pool's), and whether the stack trains."""

    source: "LayerSpec | None" = None
    earlier: Mapping[str, Any] = field(default_factory=dict)
    train: bool = False


def pool_output_size(size: int, k: int, s: int, p: int, d: int, ceil: bool) -> int:
    """torch's pooling size: with ceil_mode the last window must still start inside the input or its left padding."""
    span = size + 2 * p - d * (k - 1) - 1
    out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= size + p:
        out -= 1
    return out


def _same_shape(spec: LayerSpec, a: dict[str, Any], shape: tuple[int, ...], ctx: ShapeContext) -> tuple[int, ...]:
    return shape


def _no_formula(spec: LayerSpec, a: dict[str, Any], in_hw: tuple[int, int], out_hw: tuple[int, int] | None) -> list[str]:
    return []


def _in_channels(spec: LayerSpec, a: dict[str, Any], shape: tuple[int, ...], ctx: ShapeContext) -> None:
    needs_image(spec, shape, source=ctx.source)
    channels = int(shape[-3])
    if channels != a["in_channels"]:
        raise LayerRunError(f"{label(spec)} expects {a['in_channels']} input channels but its input has "
                            f"{channels} (shape {shape_str(shape)}).")


def _conv_size(n: int, k: int, s: int, p: int, d: int) -> int:
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def _conv2d_shape(spec: LayerSpec, a: dict[str, Any], shape: tuple[int, ...], ctx: ShapeContext) -> tuple[int, ...]:
    _in_channels(spec, a, shape, ctx)
    size_in = tuple(int(v) for v in shape[-2:])
    if a["padding"] == "same":
        # torch pads d*(k-1) in all, the larger half on the bottom/right side
        totals = [d * (k - 1) for k, d in zip(pair(a["kernel_size"]), pair(a["dilation"]))]
        largest_side = tuple(t - t // 2 for t in totals)
        size_out = size_in
    else:
        padding = 0 if a["padding"] == "valid" else a["padding"]
        kernel_fits(spec, shape, a["kernel_size"], padding, a["dilation"])
        largest_side = pair(padding)
        size_out = tuple(_conv_size(n, k, s, p, d) for n, k, s, p, d in zip(
            size_in, pair(a["kernel_size"]), pair(a["stride"]), pair(padding), pair(a["dilation"])))
    if a["padding_mode"] == "reflect":
        for p, n in zip(largest_side, size_in):
            if p >= n:
                raise LayerRunError(f"{label(spec)}: reflect padding {p} must be smaller than the input size {n}.")
    if a["padding_mode"] == "circular":
        for p, n in zip(largest_side, size_in):
            if p > n:
                raise LayerRunError(f"{label(spec)}: circular padding {p} must be at most the input size {n}.")
    out = (*shape[:-3], a["out_channels"], *size_out)
    output_fits(spec, out)
    return out


def _conv2d_formula(spec: LayerSpec, a: dict[str, Any], in_hw: tuple[int, int], out_hw) -> list[str]:
    lines = []
    for axis, n, k, s, d in zip("HW", in_hw, pair(a["kernel_size"]), pair(a["stride"]), pair(a["dilation"])):
        if a["padding"] == "same":
            lines.append(f"{axis}_out = {axis}_in = {n}  (padding='same')")
            continue
        p = 0 if a["padding"] == "valid" else pair(a["padding"])["HW".index(axis)]
        lines.append(f"{axis}_out = floor(({n} + 2*{p} - {d}*({k}-1) - 1) / {s} + 1) = {_conv_size(n, k, s, p, d)}")
    return lines


def _transposed_size(n: int, k: int, s: int, p: int, d: int, op: int) -> int:
    return (n - 1) * s - 2 * p + d * (k - 1) + op + 1


def _conv_transpose_shape(spec: LayerSpec, a: dict[str, Any], shape: tuple[int, ...], ctx: ShapeContext) -> tuple[int, ...]:
    _in_channels(spec, a, shape, ctx)
    size_in = tuple(int(v) for v in shape[-2:])
    size_out = tuple(_transposed_size(n, *rest) for n, *rest in zip(
        size_in, pair(a["kernel_size"]), pair(a["stride"]), pair(a["padding"]), pair(a["dilation"]),
        pair(a["output_padding"])))
    if any(n < 1 for n in size_out):
        raise LayerRunError(f"{label(spec)}: padding {hw(pair(a['padding']))} is too large for its input "
                            f"{hw(size_in)}; the output would be {hw(size_out)}.")
    out = (*shape[:-3], a["out_channels"], *size_out)
    output_fits(spec, out)
    return out


def _conv_transpose_formula(spec: LayerSpec, a: dict[str, Any], in_hw: tuple[int, int], out_hw) -> list[str]:
    return [f"{axis}_out = ({n}-1)*{s} - 2*{p} + {d}*({k}-1) + {op} + 1 = {_transposed_size(n, k, s, p, d, op)}"
            for axis, n, k, s, p, d, op in zip("HW", in_hw, pair(a["kernel_size"]), pair(a["stride"]),
                                               pair(a["padding"]), pair(a["dilation"]), pair(a["output_padding"]))]


def _pool_window(a: dict[str, Any]) -> tuple[tuple, tuple, tuple, tuple]:
    """kernel, stride (the kernel when unset), padding, dilation (1 where the type has none), as pairs."""
    k = pair(a["kernel_size"])
    s = pair(a["stride"] if a["stride"] is not None else a["kernel_size"])
    return k, s, pair(a["padding"]), pair(a.get("dilation", 1))


def _pool_shape(spec: LayerSpec, a: dict[str, Any], shape: tuple[int, ...], ctx: ShapeContext) -> tuple[int, ...]:
    needs_image(spec, shape, source=ctx.source)
    # with ceil_mode torch accepts a kernel larger than the padded input as long as one window starts in it
    k, s, p, d = _pool_window(a)
    out = [pool_output_size(int(n), *w, a["ceil_mode"]) for n, *w in zip(shape[-2:], k, s, p, d)]
    if any(n < 1 for n in out):
        kernel_fits(spec, shape, k, p, d)
        raise LayerRunError(f"{label(spec)}: its output would be empty ({hw(out)}).")
    return (*shape[:-2], *out)


def _pool_formula(spec: LayerSpec, a: dict[str, Any], in_hw: tuple[int, int], out_hw) -> list[str]:
    rnd = "ceil" if a["ceil_mode"] else "floor"
    lines = []
    for axis, n, k, s, p, d in zip("HW", in_hw, *_pool_window(a)):
        value = pool_output_size(n, k, s, p, d, a["ceil_mode"])
        if "dilation" in a:
            lines.append(f"{axis}_out = {rnd}(({n} + 2*{p} - {d}*({k}-1) - 1) / {s} + 1) = {value}")
        else:
            lines.append(f"{axis}_out = {rnd}(({n} + 2*{p} - {k}) / {s} + 1) = {value}")
    return lines


def _unpool_shape(spec: LayerSpec, a: dict[str, Any], shape: tuple[int, ...], ctx: ShapeContext) -> tuple[int, ...]:
    needs_image(spec, shape, source=ctx.source)
    pool = ctx.earlier.get(spec.indices_from)
    check_unpool(spec, shape, spec.indices_from, pool.output_shape if pool else None, pool.enabled if pool else True)
    # The output is the pool's input size (it also undoes a floor in the pool); torch accepts a size
    # within one stride of its own formula's.
    k, s, p, _ = _pool_window(a)
    size_out = tuple(int(n) for n in pool.input_shape[-2:])
    for axis, n, want, kk, ss, pp in zip("HW", shape[-2:], size_out, k, s, p):
        default = (int(n) - 1) * ss - 2 * pp + kk
        if not default - ss < want < default + ss:
            raise LayerRunError(f"{label(spec)}: it must restore the size of the input of '{spec.indices_from}', "
                                f"{hw(size_out)}, but with kernel {hw(k)}, stride {hw(s)} and padding {hw(p)} its "
                                f"{axis} can only be between {default - ss + 1} and {default + ss - 1}; give it "
                                f"the pool's kernel, stride and padding.")
    return (*shape[:-2], *size_out)


def _unpool_formula(spec: LayerSpec, a: dict[str, Any], in_hw: tuple[int, int], out_hw) -> list[str]:
    lines = []
    for i, (axis, n, k, s, p) in enumerate(zip("HW", in_hw, *_pool_window(a)[:3])):
        value = (n - 1) * s - 2 * p + k
        line = f"{axis}_out = ({n}-1)*{s} - 2*{p} + {k} = {value}"
        if out_hw is not None and out_hw[i] != value:
            line += f"; the input size of '{spec.indices_from}', {out_hw[i]}, is used"
        lines.append(line)
    return lines


def _upsample_shape(spec: LayerSpec, a: dict[str, Any], shape: tuple[int, ...], ctx: ShapeContext) -> tuple[int, ...]:
    needs_image(spec, shape, (4,), source=ctx.source)      # on 3 dimensions torch would resize a 1-D signal instead
    size_in = tuple(int(v) for v in shape[-2:])
    if a["scale_factor"] is not None:
        size_out = tuple(math.floor(float(n) * float(f)) for n, f in zip(size_in, pair(a["scale_factor"])))
        if any(n < 1 for n in size_out):
            raise LayerRunError(f"{label(spec)}: scale_factor {hw(pair(a['scale_factor']))} turns its input "
                                f"{hw(size_in)} into {hw(size_out)}, which is empty.")
    else:
        size_out = pair(a["size"])
    out = (*shape[:-2], *size_out)
    output_fits(spec, out)
    return out


def _upsample_formula(spec: LayerSpec, a: dict[str, Any], in_hw: tuple[int, int], out_hw) -> list[str]:
    if a["size"] is not None:
        return [f"{axis}_out = size = {n}" for axis, n in zip("HW", pair(a["size"]))]
    return [f"{axis}_out = floor({n} * {f:g}) = {math.floor(n * f)}"
            for axis, n, f in zip("HW", in_hw, pair(a["scale_factor"]))]


def _batchnorm_shape(spec: LayerSpec, a: dict[str, Any], shape: tuple[int, ...], ctx: ShapeContext) -> tuple[int, ...]:
    if len(shape) != 4:
        raise LayerRunError(f"{label(spec)} needs a 4-D input [N, C, H, W] but its input has shape {shape_str(shape)}"
                            f"{coming_from(spec, ctx.source) if ctx.source is not None else ''}.")
    # Without affine weights and running statistics nothing is per channel: torch then normalises
    # any number of channels, whatever num_features says.
    per_channel = a["affine"] or a["track_running_stats"]
    if per_channel and int(shape[1]) != a["num_features"]:
        raise LayerRunError(f"{label(spec)} expects {a['num_features']} channels (num_features) but its input has "
                            f"{int(shape[1])} (shape {shape_str(shape)}).")
    if (ctx.train or not a["track_running_stats"]) and shape[0] * shape[2] * shape[3] == 1:
        # batch statistics (training, or no running ones) over one value per channel have no variance
        why = "in train mode" if ctx.train else "without running statistics (track_running_stats off)"
        raise LayerRunError(f"{label(spec)} {why} needs more than one value per channel, but its input "
                            f"{shape_str(shape)} has one; use a larger batch or input.")
    return shape


def _prelu_shape(spec: LayerSpec, a: dict[str, Any], shape: tuple[int, ...], ctx: ShapeContext) -> tuple[int, ...]:
    n = a["num_parameters"]
    channels = int(shape[1]) if len(shape) >= 2 else 1
    if n != 1 and n != channels:
        raise LayerRunError(f"{label(spec)} has num_parameters {n}, which must be 1 or the number of channels "
                            f"of its input ({channels}, shape {shape_str(shape)}).")
    return shape


def _linear_shape(spec: LayerSpec, a: dict[str, Any], shape: tuple[int, ...], ctx: ShapeContext) -> tuple[int, ...]:
    features = int(shape[-1]) if shape else 1
    if features != a["in_features"]:
        if len(shape) <= 2:
            raise LayerRunError(f"{label(spec)} expects {a['in_features']} input features but the flattened input has "
                                f"{features}.")
        raise LayerRunError(f"{label(spec)} expects {a['in_features']} input features but its input has shape "
                            f"{shape_str(shape)} ({features} in the last dimension); put a Flatten before it "
                            f"(flattened it has {_numel(shape[1:])}).")
    return (*shape[:-1], a["out_features"])


def _dim_in_range(spec: LayerSpec, key: str, d: int, shape: tuple[int, ...]) -> None:
    if not -len(shape) <= d < len(shape):
        raise LayerRunError(f"{label(spec)}: {key} {d} is out of range for an input with {len(shape)} dimensions "
                            f"{shape_str(shape)}.")


def _flatten_shape(spec: LayerSpec, a: dict[str, Any], shape: tuple[int, ...], ctx: ShapeContext) -> tuple[int, ...]:
    for key in ("start_dim", "end_dim"):
        _dim_in_range(spec, key, a[key], shape)
    start, end = a["start_dim"] % len(shape), a["end_dim"] % len(shape)
    if start > end:
        raise LayerRunError(f"{label(spec)}: start_dim {a['start_dim']} comes after end_dim {a['end_dim']} "
                            f"for an input of shape {shape_str(shape)}.")
    return (*shape[:start], _numel(shape[start:end + 1]), *shape[end + 1:])


def _softmax_shape(spec: LayerSpec, a: dict[str, Any], shape: tuple[int, ...], ctx: ShapeContext) -> tuple[int, ...]:
    if a["dim"] is not None:
        _dim_in_range(spec, "dim", a["dim"], shape)
    return shape


# ---------------------------------------------------------------- per-type rules between arguments, weights, descriptions
def _check_conv(a: dict[str, Any]) -> None:
    for key in ("in_channels", "out_channels"):
        if a[key] % a["groups"]:
            raise LayerArgError("groups", f"groups ({a['groups']}) must divide {key} ({a[key]}) evenly.")
    if a["padding"] == "same" and any(s != 1 for s in pair(a["stride"])):
        raise LayerArgError("padding", "padding='same' only works with stride 1; use a number for padding instead.")


def _check_conv_transpose(a: dict[str, Any]) -> None:
    _check_conv(a)
    for op, s, d in zip(pair(a["output_padding"]), pair(a["stride"]), pair(a["dilation"])):
        if op >= max(s, d):
            raise LayerArgError("output_padding", "output_padding must be smaller than either stride or dilation.")


def _check_pool(a: dict[str, Any]) -> None:
    # torch compares the padding with half the kernel size itself, not the dilated kernel
    for p, kk in zip(pair(a["padding"]), pair(a["kernel_size"])):
        if p > kk // 2:
            raise LayerArgError("padding", f"padding ({p}) must be at most half the kernel size ({kk}).")


def _check_upsample(a: dict[str, Any]) -> None:
    if (a["size"] is None) == (a["scale_factor"] is None):
        raise LayerArgError("scale_factor" if a["size"] is None else "size",
                            "Upsample needs exactly one of size or scale_factor.")
    if a["recompute_scale_factor"] and a["size"] is not None:     # torch refuses it only when it runs
        raise LayerArgError("recompute_scale_factor", "recompute_scale_factor only goes with scale_factor, not with size.")
    if a["align_corners"] is not None and a["mode"] not in ("bilinear", "bicubic"):
        raise LayerArgError("align_corners", f"align_corners can only be set for bilinear or bicubic, not mode '{a['mode']}'.")


def _check_rrelu(a: dict[str, Any]) -> None:
    if a["lower"] > a["upper"]:
        raise LayerArgError("lower", f"lower ({a['lower']}) must not exceed upper ({a['upper']}).")


_F32 = "float32"


def _weight_and_bias(weight: tuple[int, ...], a: dict[str, Any], bias_size: int) -> dict[str, tuple]:
    out = {"weight": (weight, _F32, True)}
    if a["bias"]:
        out["bias"] = ((bias_size,), _F32, True)
    return out


def _conv_tensors(a: dict[str, Any]) -> dict[str, tuple]:
    return _weight_and_bias((a["out_channels"], a["in_channels"] // a["groups"], *pair(a["kernel_size"])), a, a["out_channels"])


def _conv_transpose_tensors(a: dict[str, Any]) -> dict[str, tuple]:
    return _weight_and_bias((a["in_channels"], a["out_channels"] // a["groups"], *pair(a["kernel_size"])), a, a["out_channels"])


def _batchnorm_tensors(a: dict[str, Any]) -> dict[str, tuple]:
    c = (a["num_features"],)
    out = {}
    if a["affine"]:
        out["weight"] = (c, _F32, True)
        if a.get("bias", True):
            out["bias"] = (c, _F32, True)
    if a["track_running_stats"]:
        out.update(running_mean=(c, _F32, False), running_var=(c, _F32, False),
                   num_batches_tracked=((), "int64", False))
    return out


def _describe_conv(spec: LayerSpec, a: dict[str, Any]) -> str:
    s = f"{spec.type} {a['in_channels']}→{a['out_channels']} k{_fmt_pair(a['kernel_size'])} s{_fmt_pair(a['stride'])}"
    if a["padding"] not in (0, (0, 0)):
        s += f" p{a['padding'] if isinstance(a['padding'], str) else _fmt_pair(a['padding'])}"
    return s


def _describe_pool(spec: LayerSpec, a: dict[str, Any]) -> str:
    stride = a["stride"] if a["stride"] is not None else a["kernel_size"]
    s = f"{spec.type} k{_fmt_pair(a['kernel_size'])} s{_fmt_pair(stride)}"
    if spec.layer_type.takes_indices and spec.indices_from:
        s += f" ← {spec.indices_from}"
    return s


def _describe_upsample(spec: LayerSpec, a: dict[str, Any]) -> str:
    how = f"×{_fmt_pair(a['scale_factor'])}" if a["scale_factor"] is not None else f"→{_fmt_pair(a['size'])}"
    return f"Upsample {how} {a['mode']}"


def _describe(template: str) -> Callable[[LayerSpec, dict[str, Any]], str]:
    """A description from a format string over the full arguments, e.g. 'Linear {in_features}→{out_features}'."""
    return lambda spec, a: template.format(**a)


# ---------------------------------------------------------------- what a new layer starts with
# A channel count the new layer chooses freely (not one it must match) is kept at most this:
# an auto-sized layer must never be one whose weights fill the memory.
MAX_AUTO_CHANNELS = 512


@dataclass(frozen=True)
class NewLayerContext:
    """What reaches a layer added in the window: the image channels (from before any Flatten), the
    shape, and the full arguments of the latest earlier layer that records indices (None if none)."""

    channels: int
    shape: tuple[int, ...]
    pool_args: dict[str, Any] | None = None


def _new_unpool_args(ctx: NewLayerContext) -> dict[str, Any]:
    if ctx.pool_args is None:
        raise ValueError("MaxUnpool2d puts values back where a MaxPool2d found them; add a MaxPool2d before it first.")
    pool = ctx.pool_args
    args = {"kernel_size": pool["kernel_size"]}
    if pool["stride"] is not None:
        args["stride"] = pool["stride"]
    if pool["padding"] not in (0, (0, 0)):
        args["padding"] = pool["padding"]
    return args


# ---------------------------------------------------------------- the layer types
@dataclass(frozen=True)
class LayerType:
    """``name`` is also the class's name in torch.nn. ``output_shape(spec, args, input_shape, context)``
    returns the output shape or raises LayerRunError; ``formula(spec, args, in_hw, out_hw)`` gives
    the output-size formula lines shown in the shape table (none for most types)."""

    name: str
    category: str
    args: tuple[Arg, ...]
    summary: str
    output_shape: Callable[..., tuple[int, ...]] = _same_shape
    formula: Callable[..., list[str]] = _no_formula
    keeps_image: bool = True            # False: the output is [N, features], no longer an image
    short_name: str = ""                # the stem of default names (conv → conv1, conv2); "" is the type in lower case
    new_args: Callable[[NewLayerContext], dict[str, Any]] = lambda ctx: {}   # what a layer added in the window starts with
    input_channels: Callable[[dict[str, Any]], int | None] = lambda args: None   # the input channels its arguments ask for
    records_indices: bool = False       # forward also returns where each value came from; later layers may take them
    takes_indices: bool = False         # forward takes the indices an earlier recording layer gave (``indices_from``)
    random_in_training: bool = False    # its forward draws random numbers in train mode
    gives_probabilities: bool = False   # its outputs sum to 1: training takes the logits before it
    width_arg: str | None = None        # the argument that sets how many values per sample it outputs
    pointwise: bool = False             # acts on each position alone: a receptive field passes through it
    weight_layout: str | None = None    # hand-editable weight: "filters" [out, in/groups, kH, kW], "transposed"
                                        # [in, out/groups, kH, kW] or "matrix" [out, in]; None: no kernels
    probe: str | None = None            # its hover explanation in probe.py, None: none
    check: Callable[[dict[str, Any]], None] = lambda args: None   # rules between arguments (raise LayerArgError)
    tensors: Callable[[dict[str, Any]], dict[str, tuple]] = lambda args: {}   # state_dict() name -> (shape, dtype, is param)
    sizing_args: tuple[str, ...] = ()   # the arguments that make its weights large (named when they are too large)
    describe: Callable[[LayerSpec, dict[str, Any]], str] = lambda spec, args: spec.type   # a few characters for lists
    exclusive: tuple[tuple[str, str], ...] = ()   # (argument, the argument it excludes): setting one unsets the other

    def arg(self, name: str) -> Arg:
        for a in self.args:
            if a.name == name:
                return a
        raise KeyError(name)

    @property
    def cls(self) -> type[nn.Module]:
        """The torch class (imports torch)."""
        from torch import nn
        return getattr(nn, self.name)

    @property
    def arg_names(self) -> list[str]:
        return [a.name for a in self.args]


CATEGORIES = ("Convolution", "Pooling", "Unpooling & upsampling", "Activation", "Normalization", "Flatten & Linear")

_INPLACE = _a("inplace", "bool", False)
_PAIR1 = dict(minimum=1)


def _conv_args(transposed: bool) -> tuple[Arg, ...]:
    head = [
        _a("in_channels", "int", required=True, minimum=1),
        _a("out_channels", "int", required=True, minimum=1),
        _a("kernel_size", "pair", required=True, **_PAIR1),
        _a("stride", "pair", 1, **_PAIR1),
    ]
    dilation = _a("dilation", "pair", 1, **_PAIR1)
    groups_bias = [_a("groups", "int", 1, minimum=1), _a("bias", "bool", True)]
    if transposed:   # torch's own order for each class
        middle = [_a("padding", "pair", 0, minimum=0), _a("output_padding", "pair", 0, minimum=0), *groups_bias, dilation]
        modes = ("zeros",)
    else:
        middle = [_a("padding", "padding", 0, minimum=0), dilation, *groups_bias]
        modes = ("zeros", "reflect", "replicate", "circular")
    return (*head, *middle, _a("padding_mode", "choice", "zeros", choices=modes))


_TYPES: list[LayerType] = [
    LayerType("Conv2d", "Convolution", _conv_args(False),
              "Slides out_channels learned kernels over the input; each gives one feature map.",
              output_shape=_conv2d_shape, formula=_conv2d_formula,
              short_name="conv", new_args=lambda c: {"in_channels": c.channels, "out_channels": 8, "kernel_size": 3},
              input_channels=lambda a: a["in_channels"], weight_layout="filters", probe="conv",
              check=_check_conv, tensors=_conv_tensors, sizing_args=("in_channels", "out_channels", "kernel_size"), describe=_describe_conv),
    LayerType("ConvTranspose2d", "Convolution", _conv_args(True),
              "The gradient of a convolution: spreads each input pixel over a kernel-sized patch (learned upsampling).",
              output_shape=_conv_transpose_shape, formula=_conv_transpose_formula,
              short_name="deconv", input_channels=lambda a: a["in_channels"], weight_layout="transposed",
              new_args=lambda c: {"in_channels": c.channels, "out_channels": min(c.channels, MAX_AUTO_CHANNELS),
                                  "kernel_size": 2, "stride": 2}, probe="conv_transpose",
              check=_check_conv_transpose, tensors=_conv_transpose_tensors, sizing_args=("in_channels", "out_channels", "kernel_size"), describe=_describe_conv),
    LayerType("MaxPool2d", "Pooling", (
        _a("kernel_size", "pair", required=True, **_PAIR1),
        _a("stride", "opt_pair", None, help_key="pool_stride", **_PAIR1),
        _a("padding", "pair", 0, help_key="pool_padding", minimum=0),
        _a("dilation", "pair", 1, **_PAIR1),
        _a("return_indices", "bool", False),
        _a("ceil_mode", "bool", False),
    ), "Keeps the largest value of each window: smaller maps, strongest responses.",
              output_shape=_pool_shape, formula=_pool_formula,
              short_name="pool", new_args=lambda c: {"kernel_size": 2}, records_indices=True, probe="max_pool",
              check=_check_pool, describe=_describe_pool),
    LayerType("AvgPool2d", "Pooling", (
        _a("kernel_size", "pair", required=True, **_PAIR1),
        _a("stride", "opt_pair", None, help_key="pool_stride", **_PAIR1),
        _a("padding", "pair", 0, help_key="pool_padding", minimum=0),
        _a("ceil_mode", "bool", False),
        _a("count_include_pad", "bool", True),
        _a("divisor_override", "opt_int", None, minimum=1),
    ), "Replaces each window by its average.",
              output_shape=_pool_shape, formula=_pool_formula,
              short_name="avgpool", new_args=lambda c: {"kernel_size": 2}, probe="avg_pool",
              check=_check_pool, describe=_describe_pool),
    LayerType("MaxUnpool2d", "Unpooling & upsampling", (
        _a("kernel_size", "pair", required=True, **_PAIR1),
        _a("stride", "opt_pair", None, help_key="pool_stride", **_PAIR1),
        _a("padding", "pair", 0, help_key="pool_padding", minimum=0),
    ), "Puts each value back where an earlier MaxPool2d found its maximum; zeros elsewhere.",
              output_shape=_unpool_shape, formula=_unpool_formula,
              short_name="unpool", new_args=_new_unpool_args, takes_indices=True, probe="max_unpool",
              describe=_describe_pool),
    LayerType("Upsample", "Unpooling & upsampling", (
        _a("size", "size", None, minimum=1),
        _a("scale_factor", "scale", None, minimum=1e-6),
        _a("mode", "choice", "nearest", choices=("nearest", "nearest-exact", "bilinear", "bicubic")),
        _a("align_corners", "opt_bool", None),
        _a("recompute_scale_factor", "opt_bool", None),
    ), "Enlarges the maps by copying (nearest) or interpolating pixels.",
              output_shape=_upsample_shape, formula=_upsample_formula,
              short_name="up", new_args=lambda c: {"scale_factor": 2.0},
              check=_check_upsample, describe=_describe_upsample,
              exclusive=(("size", "scale_factor"), ("scale_factor", "size"))),
    LayerType("ReLU", "Activation", (_INPLACE,), "max(0, x): negative values become 0.", pointwise=True),
    LayerType("Sigmoid", "Activation", (), "1 / (1 + exp(-x)): squashes every value into (0, 1).", pointwise=True),
    LayerType("Tanh", "Activation", (), "tanh(x): squashes every value into (-1, 1).", pointwise=True),
    LayerType("LeakyReLU", "Activation", (_a("negative_slope", "float", 0.01), _INPLACE),
              "Like ReLU, but negative values keep a small slope.",
              describe=_describe("LeakyReLU {negative_slope:g}"), pointwise=True),
    LayerType("PReLU", "Activation", (_a("num_parameters", "int", 1, minimum=1), _a("init", "float", 0.25)),
              "Like LeakyReLU with a learned negative slope.",
              output_shape=_prelu_shape,
              input_channels=lambda a: a["num_parameters"] if a["num_parameters"] > 1 else None,
              tensors=lambda a: {"weight": ((a["num_parameters"],), _F32, True)}, sizing_args=("num_parameters",), pointwise=True),
    LayerType("RReLU", "Activation", (
        _a("lower", "float", 1.0 / 8), _a("upper", "float", 1.0 / 3), _INPLACE),
        "LeakyReLU with a random slope in training and the mean slope in evaluation.",
              random_in_training=True,
              check=_check_rrelu, pointwise=True),
    LayerType("ELU", "Activation", (_a("alpha", "float", 1.0), _INPLACE),
              "x for x > 0, alpha * (exp(x) - 1) otherwise: smooth and allows negative outputs.", pointwise=True),
    LayerType("GELU", "Activation", (_a("approximate", "choice", "none", choices=("none", "tanh")),),
              "x weighted by the probability that a standard normal is below x (used in transformers).", pointwise=True),
    LayerType("Softmax", "Activation", (_a("dim", "dim", None),),
              "exp(x) / sum(exp(x)) along one dimension: values become probabilities.",
              output_shape=_softmax_shape,
              new_args=lambda c: {"dim": 1}, gives_probabilities=True,
              describe=_describe("Softmax dim={dim}")),
    LayerType("BatchNorm2d", "Normalization", (
        _a("num_features", "int", required=True, minimum=1),
        _a("eps", "float", 1e-5, minimum=0),
        _a("momentum", "opt_float", 0.1, minimum=0, maximum=1),
        _a("affine", "bool", True),
        _a("track_running_stats", "bool", True),
        _a("bias", "bool", True, help_key="bn_bias"),
    ), "Normalises each channel to zero mean and unit variance, then scales and shifts it.",
              output_shape=_batchnorm_shape,
              short_name="bn", new_args=lambda c: {"num_features": c.channels},
              input_channels=lambda a: a["num_features"],
              tensors=_batchnorm_tensors, sizing_args=("num_features",), describe=_describe("BatchNorm2d {num_features}"), pointwise=True),
    LayerType("Dropout", "Normalization", (_a("p", "float", 0.5, minimum=0, maximum=1), _INPLACE),
              "Zeroes random values while training; passes everything through in evaluation.",
              random_in_training=True,
              describe=_describe("Dropout p={p:g}"), pointwise=True),
    LayerType("Flatten", "Flatten & Linear", (_a("start_dim", "int", 1), _a("end_dim", "int", -1)),
              "Turns [N, C, H, W] into [N, C*H*W] so a Linear layer can take it.",
              output_shape=_flatten_shape, keeps_image=False,
              describe=_describe("Flatten {start_dim}..{end_dim}")),
    LayerType("Linear", "Flatten & Linear", (
        _a("in_features", "int", required=True, minimum=1),
        _a("out_features", "int", required=True, minimum=1),
        _a("bias", "bool", True),
    ), "y = x Wᵀ + b: every output is a weighted sum of all inputs (a fully connected layer).",
              output_shape=_linear_shape, keeps_image=False,
              short_name="fc", new_args=lambda c: {"in_features": c.shape[-1] if c.shape else 1, "out_features": 10},
              width_arg="out_features", weight_layout="matrix",
              tensors=lambda a: _weight_and_bias((a["out_features"], a["in_features"]), a, a["out_features"]),
              sizing_args=("in_features", "out_features"), describe=_describe("Linear {in_features}→{out_features}")),
]


# Arguments that only newer torch versions take (BatchNorm2d's bias is new in torch 2.x), and where torch defines them.
_NEWER_TORCH_ARGS = {("BatchNorm2d", "bias"): ("nn/modules/batchnorm.py", "_NormBase")}


def _torch_init_params(relative: str, class_name: str) -> set[str] | None:
    """The __init__ parameters of a class in the installed torch, read from its source without
    importing torch (which takes seconds); None when the source cannot be read."""
    try:
        spec = importlib.util.find_spec("torch")
        root = spec.submodule_search_locations[0]
        with open(f"{root}/{relative}", encoding="utf-8") as f:
            tree = ast.parse(f.read())
    except (ImportError, AttributeError, TypeError, IndexError, OSError, SyntaxError, ValueError):
        return None
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                    return {a.arg for a in (*item.args.args, *item.args.kwonlyargs)}
    return None


def _accepted_by_torch(t: LayerType) -> LayerType:
    """Drops arguments the installed torch does not take."""
    dropped = set()
    for (type_name, arg_name), (relative, class_name) in _NEWER_TORCH_ARGS.items():
        if type_name == t.name:
            params = _torch_init_params(relative, class_name)
            if params is not None and arg_name not in params:
                dropped.add(arg_name)
    return dataclasses.replace(t, args=tuple(a for a in t.args if a.name not in dropped)) if dropped else t


LAYER_TYPES: dict[str, LayerType] = {t.name: _accepted_by_torch(t) for t in _TYPES}


def layer_type(name: str) -> LayerType:
    return LAYER_TYPES[name]


def default_stem(type_name: str) -> str:
    t = LAYER_TYPES.get(type_name)
    return (t.short_name if t is not None else "") or type_name.lower()


def indices_recorders() -> list[str]:
    """The types whose indices a later layer may take (MaxPool2d)."""
    return [t.name for t in LAYER_TYPES.values() if t.records_indices]


def forward_layer(spec: LayerSpec, module: nn.Module, x: torch.Tensor,
                  kept: dict[str, tuple[torch.Tensor, tuple[int, int]]]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One built layer on x, with the wiring between layers: a layer that records indices (built by
    build_module to return them) leaves them and its input size in ``kept`` under its name; one
    that takes indices reads them from there and restores that size. Returns (output, indices)."""
    t = spec.layer_type
    if t.records_indices:
        out, indices = module(x)
        kept[spec.name] = (indices, tuple(x.shape[-2:]))
        return out, indices
    if t.takes_indices:
        indices, size = kept[spec.indices_from]
        return module(x, indices, output_size=list(size)), None
    return module(x), None


def types_by_category() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {c: [] for c in CATEGORIES}
    for t in LAYER_TYPES.values():
        out[t.category].append(t.name)
    return out


# ---------------------------------------------------------------- the spec of one layer in a stack
class PendingState:
    """A layer's saved weights as checked nested lists (from a stack file), made into tensors when
    first used: loading a stack and showing its shapes need no torch."""

    def __init__(self, entries: dict[str, tuple[Any, str]]):
        self.entries = entries          # name -> (nested list, torch dtype name)
        self.made: dict[str, torch.Tensor] | None = None     # the tensors, once made

    def lists(self) -> dict[str, Any]:
        return {k: value for k, (value, _) in self.entries.items()}

    def tensors(self) -> dict[str, torch.Tensor]:
        """A new dict of the same tensors on every call: copies of a spec share them, as copies of
        a spec with tensors do (the engine knows a computation by its tensors' identity)."""
        if self.made is None:
            import torch
            # float32 values go through float64, as JSON doubles are: bit-exact round trips
            self.made = {k: (torch.tensor(value, dtype=torch.float64).to(torch.float32) if dtype == "float32"
                                 else torch.tensor(value, dtype=getattr(torch, dtype)))
                             for k, (value, dtype) in self.entries.items()}
        return dict(self.made)


@dataclass
class LayerSpec:
    """One layer as the user set it up. ``args`` holds only what was given; the rest take torch's defaults.
    ``state``: the layer's own weights by state_dict() key (None: seeded from the stack's seed);
    a PendingState given here becomes tensors when ``state`` is first read."""

    type: str
    name: str = ""
    args: dict[str, Any] = field(default_factory=dict)
    state: dict[str, torch.Tensor] | None = None
    enabled: bool = True
    indices_from: str | None = None

    @property
    def layer_type(self) -> LayerType:
        return LAYER_TYPES[self.type]

    @property
    def pending_state(self) -> PendingState | None:
        """The state while it is still only nested lists (reading it does not import torch); None
        once its tensors exist anywhere (a copy may have edited them in place)."""
        raw = self.__dict__.get("_state")
        return raw if isinstance(raw, PendingState) and raw.made is None else None

    @property
    def has_state(self) -> bool:
        return bool(self.__dict__.get("_state"))

    def full_args(self) -> dict[str, Any]:
        """Every argument, with torch's default where none was given, as torch takes it."""
        out = {}
        for a in self.layer_type.args:
            out[a.name] = a.check(self.args[a.name]) if a.name in self.args else a.default
        return out

    def value(self, name: str) -> Any:
        return self.full_args()[name]

    def copy(self, **changes) -> "LayerSpec":
        raw = self.__dict__.get("_state")
        state = raw if raw is None or isinstance(raw, PendingState) else dict(raw)
        fields = dict(type=self.type, name=self.name, args=dict(self.args), state=state,
                      enabled=self.enabled, indices_from=self.indices_from)
        fields.update(changes)
        return LayerSpec(**fields)


def _get_state(spec: LayerSpec) -> dict[str, torch.Tensor] | None:
    raw = spec.__dict__.get("_state")
    if isinstance(raw, PendingState):
        raw = spec.__dict__["_state"] = raw.tensors()
    return raw


def _set_state(spec: LayerSpec, value: dict[str, torch.Tensor] | PendingState | None) -> None:
    spec.__dict__["_state"] = value


LayerSpec.state = property(_get_state, _set_state)     # after @dataclass, which took None as the default


def check_args(type_name: str, args: dict[str, Any]) -> dict[str, Any]:
    """Checks every given argument, then the rules between arguments torch enforces at construction.
    Returns the full argument set as torch takes it, or raises LayerArgError naming the key."""
    t = LAYER_TYPES[type_name]
    unknown = [k for k in args if k not in t.arg_names]
    if unknown:
        raise LayerArgError(unknown[0], f"{type_name} has no argument '{unknown[0]}'; its arguments are: {', '.join(t.arg_names) or 'none'}.")
    full = {}
    for a in t.args:
        if a.name in args:
            full[a.name] = a.check(args[a.name])
        elif a.required:
            raise LayerArgError(a.name, f"{type_name} needs '{a.name}' ({HELP[a.name]})")
        else:
            full[a.name] = a.default
    _check_combinations(type_name, full)
    return full


def _check_combinations(type_name: str, a: dict[str, Any]) -> None:
    LAYER_TYPES[type_name].check(a)
    size = sum(_numel(shape) * _BYTES[dtype] for shape, dtype, _ in _tensor_specs(type_name, a).values())
    if size > MAX_LAYER_BYTES:
        count = sum(_numel(shape) for shape, _, is_param in _tensor_specs(type_name, a).values() if is_param)
        sizing = [k for k in LAYER_TYPES[type_name].sizing_args if k in a]
        key = max(sizing, key=lambda k: max(pair(a[k]))) if sizing else next(iter(a))
        raise LayerArgError(key, f"its weights would need {format_bytes(size)} ({count:,} parameters), more than "
                                 f"the {format_bytes(MAX_LAYER_BYTES)} one layer may use; make {key} smaller.")


_BYTES = {"float32": 4, "int64": 8}    # torch dtype names


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _tensor_specs(type_name: str, a: dict[str, Any]) -> dict[str, tuple[tuple[int, ...], str, bool]]:
    """Name -> (shape, dtype name, is a parameter) of the module's state_dict() entries, in torch's
    order, computed from the arguments alone: nothing is built or allocated (tests compare with torch)."""
    return LAYER_TYPES[type_name].tensors(a)


def layer_seed(seed: int, name: str) -> int:
    """Parameters are seeded per layer name, so adding or moving a layer leaves the others' weights alone."""
    return zlib.crc32(f"{seed}:{name}".encode()) & 0x7FFF_FFFF


def build_module(spec: LayerSpec, seed: int = 0, device: torch.device | str = "cpu") -> nn.Module:
    """The torch module for a spec: deterministic initialisation from the seed on the CPU (the same
    numbers on every machine), then the spec's state, then moved to the device. On the meta device
    nothing is allocated."""
    import torch
    kwargs = check_args(spec.type, spec.args)
    cls = spec.layer_type.cls
    if spec.layer_type.records_indices:
        kwargs["return_indices"] = True     # the engine records indices for any later MaxUnpool2d
    device = torch.device(device)
    if device.type == "meta":
        with torch.device("meta"):
            module = cls(**kwargs)
    else:
        with torch.random.fork_rng(devices=[]):
            # Only the CPU generator makes the numbers (the module is built on the CPU). torch.manual_seed
            # would also seed every accelerator, and without CUDA initialised that queues a lazy call
            # with a formatted stack trace: a few ms per layer on every edit.
            torch.default_generator.manual_seed(layer_seed(seed, spec.name))
            module = cls(**kwargs)
        if spec.state:
            module.load_state_dict(spec.state, strict=False)
        module = module.to(device)
    return module


def state_shapes(spec: LayerSpec) -> dict[str, tuple[int, ...]]:
    """The shapes of the module's state_dict() entries, from the arguments: nothing is built."""
    return {k: shape for k, (shape, _, _) in _tensor_specs(spec.type, spec.full_args()).items()}


def state_dtypes(spec: LayerSpec) -> dict[str, str]:
    """The torch dtype names ("float32", "int64") of the module's state_dict() entries."""
    return {k: dtype for k, (_, dtype, _) in _tensor_specs(spec.type, spec.full_args()).items()}


def parameter_shapes(spec: LayerSpec) -> list[tuple[str, tuple[int, ...]]]:
    """Names and shapes of the learnable parameters, in torch's order, from the arguments: nothing
    is built (the form shows them on every keystroke)."""
    return [(k, shape) for k, (shape, _, is_param) in _tensor_specs(spec.type, spec.full_args()).items() if is_param]


def param_count(spec: LayerSpec) -> int:
    """The number of learnable parameters, from the arguments: nothing is built or allocated."""
    return sum(_numel(shape) for shape, _, is_param in _tensor_specs(spec.type, spec.full_args()).values() if is_param)


def layer_bytes(spec: LayerSpec) -> int:
    """What the layer's parameters and buffers take in memory (float32; int64 counters)."""
    return sum(_numel(shape) * _BYTES[dtype] for shape, dtype, _ in _tensor_specs(spec.type, spec.full_args()).values())


def _fmt_pair(v: Any) -> str:
    if isinstance(v, (tuple, list)):
        return str(v[0]) if v[0] == v[1] else f"{v[0]}x{v[1]}"
    return str(v)


def describe(spec: LayerSpec) -> str:
    """The key arguments in a few characters, e.g. 'Conv2d 3→6 k3 s1'."""
    try:
        a = spec.full_args()
    except LayerArgError:
        return spec.type
    return spec.layer_type.describe(spec, a)


# ---------------------------------------------------------------- argument rules the editors follow
# Arguments of which a layer takes one or the other: setting one unsets the other in one step.
def exclusive_with(type_name: str, arg_name: str) -> str | None:
    """The argument that ``arg_name`` of ``type_name`` excludes (Upsample's size vs scale_factor)."""
    return dict(LAYER_TYPES[type_name].exclusive).get(arg_name)


def unset_arg_fallback(arg: Arg, args: dict[str, Any], output_shape: tuple[int, ...] | None) -> Any:
    """What an unset optional argument starts from when the user sets it: torch's effective value
    where there is one (a pool's stride is its kernel_size, AvgPool2d's divisor is k²), otherwise
    a sensible start. ``args``: the layer's full arguments ({} when they do not check);
    ``output_shape``: what the layer outputs now (a size starts from its H, W), or None."""
    if arg.name == "stride" and "kernel_size" in args:
        return args["kernel_size"]
    if arg.name == "divisor_override" and "kernel_size" in args:
        k = args["kernel_size"]
        return k[0] * k[1] if isinstance(k, (tuple, list)) else k * k
    if arg.kind == "size":
        return list(output_shape[-2:]) if output_shape and len(output_shape) >= 4 else 64
    if arg.kind == "scale":
        return 2.0
    if arg.kind == "dim":
        return 1
    if arg.kind == "opt_int":
        return int(arg.minimum) if arg.minimum is not None else 1
    return arg.default if arg.default is not None else 1

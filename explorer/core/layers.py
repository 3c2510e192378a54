"""One spec per layer type: its torch class, every constructor argument with torch's default,
how a value is checked, and a sentence that explains it. The form in the window, the stack file
and the engine all read this table, so a layer is described in exactly one place."""

from __future__ import annotations

import inspect
import math
import reprlib
import zlib
from dataclasses import dataclass, field
from typing import Any

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


# ---------------------------------------------------------------- the layer types
@dataclass(frozen=True)
class LayerType:
    name: str
    category: str
    cls: type[nn.Module]
    args: tuple[Arg, ...]
    summary: str

    def arg(self, name: str) -> Arg:
        for a in self.args:
            if a.name == name:
                return a
        raise KeyError(name)

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
    LayerType("Conv2d", "Convolution", nn.Conv2d, _conv_args(False),
              "Slides out_channels learned kernels over the input; each gives one feature map."),
    LayerType("ConvTranspose2d", "Convolution", nn.ConvTranspose2d, _conv_args(True),
              "The gradient of a convolution: spreads each input pixel over a kernel-sized patch (learned upsampling)."),
    LayerType("MaxPool2d", "Pooling", nn.MaxPool2d, (
        _a("kernel_size", "pair", required=True, **_PAIR1),
        _a("stride", "opt_pair", None, help_key="pool_stride", **_PAIR1),
        _a("padding", "pair", 0, help_key="pool_padding", minimum=0),
        _a("dilation", "pair", 1, **_PAIR1),
        _a("return_indices", "bool", False),
        _a("ceil_mode", "bool", False),
    ), "Keeps the largest value of each window: smaller maps, strongest responses."),
    LayerType("AvgPool2d", "Pooling", nn.AvgPool2d, (
        _a("kernel_size", "pair", required=True, **_PAIR1),
        _a("stride", "opt_pair", None, help_key="pool_stride", **_PAIR1),
        _a("padding", "pair", 0, help_key="pool_padding", minimum=0),
        _a("ceil_mode", "bool", False),
        _a("count_include_pad", "bool", True),
        _a("divisor_override", "opt_int", None, minimum=1),
    ), "Replaces each window by its average."),
    LayerType("MaxUnpool2d", "Unpooling & upsampling", nn.MaxUnpool2d, (
        _a("kernel_size", "pair", required=True, **_PAIR1),
        _a("stride", "opt_pair", None, help_key="pool_stride", **_PAIR1),
        _a("padding", "pair", 0, help_key="pool_padding", minimum=0),
    ), "Puts each value back where an earlier MaxPool2d found its maximum; zeros elsewhere."),
    LayerType("Upsample", "Unpooling & upsampling", nn.Upsample, (
        _a("size", "size", None, minimum=1),
        _a("scale_factor", "scale", None, minimum=1e-6),
        _a("mode", "choice", "nearest", choices=("nearest", "nearest-exact", "bilinear", "bicubic")),
        _a("align_corners", "opt_bool", None),
        _a("recompute_scale_factor", "opt_bool", None),
    ), "Enlarges the maps by copying (nearest) or interpolating pixels."),
    LayerType("ReLU", "Activation", nn.ReLU, (_INPLACE,), "max(0, x): negative values become 0."),
    LayerType("Sigmoid", "Activation", nn.Sigmoid, (), "1 / (1 + exp(-x)): squashes every value into (0, 1)."),
    LayerType("Tanh", "Activation", nn.Tanh, (), "tanh(x): squashes every value into (-1, 1)."),
    LayerType("LeakyReLU", "Activation", nn.LeakyReLU, (_a("negative_slope", "float", 0.01), _INPLACE),
              "Like ReLU, but negative values keep a small slope."),
    LayerType("PReLU", "Activation", nn.PReLU, (_a("num_parameters", "int", 1, minimum=1), _a("init", "float", 0.25)),
              "Like LeakyReLU with a learned negative slope."),
    LayerType("RReLU", "Activation", nn.RReLU, (
        _a("lower", "float", 1.0 / 8), _a("upper", "float", 1.0 / 3), _INPLACE),
        "LeakyReLU with a random slope in training and the mean slope in evaluation."),
    LayerType("ELU", "Activation", nn.ELU, (_a("alpha", "float", 1.0), _INPLACE),
              "x for x > 0, alpha * (exp(x) - 1) otherwise: smooth and allows negative outputs."),
    LayerType("GELU", "Activation", nn.GELU, (_a("approximate", "choice", "none", choices=("none", "tanh")),),
              "x weighted by the probability that a standard normal is below x (used in transformers)."),
    LayerType("Softmax", "Activation", nn.Softmax, (_a("dim", "dim", None),),
              "exp(x) / sum(exp(x)) along one dimension: values become probabilities."),
    LayerType("BatchNorm2d", "Normalization", nn.BatchNorm2d, (
        _a("num_features", "int", required=True, minimum=1),
        _a("eps", "float", 1e-5, minimum=0),
        _a("momentum", "opt_float", 0.1, minimum=0, maximum=1),
        _a("affine", "bool", True),
        _a("track_running_stats", "bool", True),
        _a("bias", "bool", True, help_key="bn_bias"),
    ), "Normalises each channel to zero mean and unit variance, then scales and shifts it."),
    LayerType("Dropout", "Normalization", nn.Dropout, (_a("p", "float", 0.5, minimum=0, maximum=1), _INPLACE),
              "Zeroes random values while training; passes everything through in evaluation."),
    LayerType("Flatten", "Flatten & Linear", nn.Flatten, (_a("start_dim", "int", 1), _a("end_dim", "int", -1)),
              "Turns [N, C, H, W] into [N, C*H*W] so a Linear layer can take it."),
    LayerType("Linear", "Flatten & Linear", nn.Linear, (
        _a("in_features", "int", required=True, minimum=1),
        _a("out_features", "int", required=True, minimum=1),
        _a("bias", "bool", True),
    ), "y = x Wᵀ + b: every output is a weighted sum of all inputs (a fully connected layer)."),
]


def _accepted_by_torch(t: LayerType) -> LayerType:
    """Drops arguments the installed torch does not take (BatchNorm2d's bias is new in torch 2.x)."""
    params = inspect.signature(t.cls.__init__).parameters
    return LayerType(t.name, t.category, t.cls, tuple(a for a in t.args if a.name in params), t.summary)


LAYER_TYPES: dict[str, LayerType] = {t.name: _accepted_by_torch(t) for t in _TYPES}


def layer_type(name: str) -> LayerType:
    return LAYER_TYPES[name]


def types_by_category() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {c: [] for c in CATEGORIES}
    for t in LAYER_TYPES.values():
        out[t.category].append(t.name)
    return out


# ---------------------------------------------------------------- the spec of one layer in a stack
@dataclass
class LayerSpec:
    """One layer as the user set it up. ``args`` holds only what was given; the rest take torch's defaults."""

    type: str
    name: str = ""
    args: dict[str, Any] = field(default_factory=dict)
    state: dict[str, torch.Tensor] | None = None
    enabled: bool = True
    indices_from: str | None = None

    @property
    def layer_type(self) -> LayerType:
        return LAYER_TYPES[self.type]

    def full_args(self) -> dict[str, Any]:
        """Every argument, with torch's default where none was given, as torch takes it."""
        out = {}
        for a in self.layer_type.args:
            out[a.name] = a.check(self.args[a.name]) if a.name in self.args else a.default
        return out

    def value(self, name: str) -> Any:
        return self.full_args()[name]

    def copy(self, **changes) -> "LayerSpec":
        fields = dict(type=self.type, name=self.name, args=dict(self.args),
                      state=dict(self.state) if self.state is not None else None,
                      enabled=self.enabled, indices_from=self.indices_from)
        fields.update(changes)
        return LayerSpec(**fields)


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


def _pair(v: Any) -> tuple:
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _check_combinations(type_name: str, a: dict[str, Any]) -> None:
    if type_name in ("Conv2d", "ConvTranspose2d"):
        for key in ("in_channels", "out_channels"):
            if a[key] % a["groups"]:
                raise LayerArgError("groups", f"groups ({a['groups']}) must divide {key} ({a[key]}) evenly.")
        if a["padding"] == "same" and any(s != 1 for s in _pair(a["stride"])):
            raise LayerArgError("padding", "padding='same' only works with stride 1; use a number for padding instead.")
        if type_name == "ConvTranspose2d":
            for op, s, d in zip(_pair(a["output_padding"]), _pair(a["stride"]), _pair(a["dilation"])):
                if op >= max(s, d):
                    raise LayerArgError("output_padding", "output_padding must be smaller than either stride or dilation.")
    if type_name in ("MaxPool2d", "AvgPool2d"):
        # torch compares the padding with half the kernel size itself, not the dilated kernel
        for p, kk in zip(_pair(a["padding"]), _pair(a["kernel_size"])):
            if p > kk // 2:
                raise LayerArgError("padding", f"padding ({p}) must be at most half the kernel size ({kk}).")
    if type_name == "Upsample":
        if (a["size"] is None) == (a["scale_factor"] is None):
            raise LayerArgError("scale_factor" if a["size"] is None else "size",
                                "Upsample needs exactly one of size or scale_factor.")
        if a["recompute_scale_factor"] and a["size"] is not None:     # torch refuses it only when it runs
            raise LayerArgError("recompute_scale_factor", "recompute_scale_factor only goes with scale_factor, not with size.")
        if a["align_corners"] is not None and a["mode"] not in ("bilinear", "bicubic"):
            raise LayerArgError("align_corners", f"align_corners can only be set for bilinear or bicubic, not mode '{a['mode']}'.")
    if type_name == "RReLU" and a["lower"] > a["upper"]:
        raise LayerArgError("lower", f"lower ({a['lower']}) must not exceed upper ({a['upper']}).")
    size = sum(_numel(shape) * _BYTES[dtype] for shape, dtype, _ in _tensor_specs(type_name, a).values())
    if size > MAX_LAYER_BYTES:
        count = sum(_numel(shape) for shape, _, is_param in _tensor_specs(type_name, a).values() if is_param)
        sizing = [k for k in _SIZING_ARGS.get(type_name, ()) if k in a]
        key = max(sizing, key=lambda k: max(_pair(a[k]))) if sizing else next(iter(a))
        raise LayerArgError(key, f"its weights would need {format_bytes(size)} ({count:,} parameters), more than "
                                 f"the {format_bytes(MAX_LAYER_BYTES)} one layer may use; make {key} smaller.")


# The arguments that make a layer's parameters large, to name in the refusal.
_SIZING_ARGS = {
    "Conv2d": ("in_channels", "out_channels", "kernel_size"),
    "ConvTranspose2d": ("in_channels", "out_channels", "kernel_size"),
    "Linear": ("in_features", "out_features"), "BatchNorm2d": ("num_features",), "PReLU": ("num_parameters",),
}
_BYTES = {torch.float32: 4, torch.int64: 8}


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _tensor_specs(type_name: str, a: dict[str, Any]) -> dict[str, tuple[tuple[int, ...], torch.dtype, bool]]:
    """Name -> (shape, dtype, is a parameter) of the module's state_dict() entries, in torch's order,
    computed from the arguments alone: nothing is built or allocated (tests compare with torch)."""
    f32 = torch.float32
    if type_name in ("Conv2d", "ConvTranspose2d"):
        k = _pair(a["kernel_size"])
        if type_name == "Conv2d":
            out = {"weight": ((a["out_channels"], a["in_channels"] // a["groups"], *k), f32, True)}
        else:
            out = {"weight": ((a["in_channels"], a["out_channels"] // a["groups"], *k), f32, True)}
        if a["bias"]:
            out["bias"] = ((a["out_channels"],), f32, True)
        return out
    if type_name == "Linear":
        out = {"weight": ((a["out_features"], a["in_features"]), f32, True)}
        if a["bias"]:
            out["bias"] = ((a["out_features"],), f32, True)
        return out
    if type_name == "PReLU":
        return {"weight": ((a["num_parameters"],), f32, True)}
    if type_name == "BatchNorm2d":
        c = (a["num_features"],)
        out = {}
        if a["affine"]:
            out["weight"] = (c, f32, True)
            if a.get("bias", True):
                out["bias"] = (c, f32, True)
        if a["track_running_stats"]:
            out.update(running_mean=(c, f32, False), running_var=(c, f32, False),
                       num_batches_tracked=((), torch.int64, False))
        return out
    return {}


def layer_seed(seed: int, name: str) -> int:
    """Parameters are seeded per layer name, so adding or moving a layer leaves the others' weights alone."""
    return zlib.crc32(f"{seed}:{name}".encode()) & 0x7FFF_FFFF


def build_module(spec: LayerSpec, seed: int = 0, device: torch.device | str = "cpu") -> nn.Module:
    """The torch module for a spec: deterministic initialisation from the seed on the CPU (the same
    numbers on every machine), then the spec's state, then moved to the device. On the meta device
    nothing is allocated."""
    kwargs = check_args(spec.type, spec.args)
    cls = spec.layer_type.cls
    if spec.type == "MaxPool2d":
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


def state_dtypes(spec: LayerSpec) -> dict[str, torch.dtype]:
    return {k: dtype for k, (_, dtype, _) in _tensor_specs(spec.type, spec.full_args()).items()}


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
    t = spec.type
    if t in ("Conv2d", "ConvTranspose2d"):
        s = f"{t} {a['in_channels']}→{a['out_channels']} k{_fmt_pair(a['kernel_size'])} s{_fmt_pair(a['stride'])}"
        if a["padding"] not in (0, (0, 0)):
            s += f" p{a['padding'] if isinstance(a['padding'], str) else _fmt_pair(a['padding'])}"
        return s
    if t in ("MaxPool2d", "AvgPool2d", "MaxUnpool2d"):
        stride = a["stride"] if a["stride"] is not None else a["kernel_size"]
        s = f"{t} k{_fmt_pair(a['kernel_size'])} s{_fmt_pair(stride)}"
        if t == "MaxUnpool2d" and spec.indices_from:
            s += f" ← {spec.indices_from}"
        return s
    if t == "Upsample":
        how = f"×{_fmt_pair(a['scale_factor'])}" if a["scale_factor"] is not None else f"→{_fmt_pair(a['size'])}"
        return f"Upsample {how} {a['mode']}"
    if t == "Linear":
        return f"Linear {a['in_features']}→{a['out_features']}"
    if t == "BatchNorm2d":
        return f"BatchNorm2d {a['num_features']}"
    if t == "Dropout":
        return f"Dropout p={a['p']:g}"
    if t == "LeakyReLU":
        return f"LeakyReLU {a['negative_slope']:g}"
    if t == "Softmax":
        return f"Softmax dim={a['dim']}"
    if t == "Flatten":
        return f"Flatten {a['start_dim']}..{a['end_dim']}"
    return t


# ---------------------------------------------------------------- argument rules the editors follow
# Arguments of which a layer takes one or the other: setting one unsets the other in one step.
EXCLUSIVE_ARGS = {("Upsample", "size"): "scale_factor", ("Upsample", "scale_factor"): "size"}


def exclusive_with(type_name: str, arg_name: str) -> str | None:
    """The argument that ``arg_name`` of ``type_name`` excludes (Upsample's size vs scale_factor)."""
    return EXCLUSIVE_ARGS.get((type_name, arg_name))


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

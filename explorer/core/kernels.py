"""Hand-editing weights: classic kernels (presets) for any odd size where they make sense, layer
initialisers, centred resizing when kernel_size changes, and kernels as text (a nested list or
``torch.tensor([...])``) for copy and paste. Pure torch: the kernel editor in the window and the
document's resize both use it.

Weight layouts differ: Conv2d keeps ``weight[out, in / groups, kH, kW]``, ConvTranspose2d keeps
``weight[in, out / groups, kH, kW]`` and Linear keeps ``weight[out_features, in_features]``.
:func:`kernel_view` hides the first difference: it always answers ``[filter, input channel, kH, kW]``.
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from explorer.core.layers import LAYER_TYPES, LayerSpec, build_module, layer_seed

MAX_LINEAR = 64          # the grid editor shows Linear layers up to 64 x 64
MAX_KERNEL = 15          # and kernels up to 15 x 15 (bigger ones do not fit as readable cells)


class KernelError(ValueError):
    """A kernel that cannot be made or read; the message is one sentence for the user."""


# ---------------------------------------------------------------- the presets
def _binomial(n: int) -> torch.Tensor:
    """Row n of Pascal's triangle: [1], [1, 1], [1, 2, 1], ... (the discrete Gaussian)."""
    row = torch.ones(1, dtype=torch.float64)
    for _ in range(n):
        row = torch.cat([row, torch.zeros(1, dtype=torch.float64)]) + torch.cat([torch.zeros(1, dtype=torch.float64), row])
    return row


def _derivative(n: int) -> torch.Tensor:
    """A smoothed central difference of length n (odd, >= 3): [-1, 0, 1], [-1, -2, 0, 2, 1], ..."""
    smooth = _binomial(n - 3)
    diff = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64)
    out = torch.zeros(n, dtype=torch.float64)
    for i, s in enumerate(smooth):
        out[i:i + 3] += s * diff
    return out


def _center_offsets(kh: int, kw: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column offsets from the centre, as [kh, kw] grids."""
    dy = torch.arange(kh, dtype=torch.float64) - (kh - 1) / 2
    dx = torch.arange(kw, dtype=torch.float64) - (kw - 1) / 2
    return dy[:, None].expand(kh, kw), dx[None, :].expand(kh, kw)


def _identity(kh: int, kw: int) -> torch.Tensor:
    k = torch.zeros(kh, kw, dtype=torch.float64)
    k[kh // 2, kw // 2] = 1.0
    return k


def _laplacian(kh: int, kw: int) -> torch.Tensor:
    # The 3x3 classic [[0,1,0],[1,-4,1],[0,1,0]], its arms grown to the kernel's size.
    k = torch.zeros(kh, kw, dtype=torch.float64)
    k[kh // 2, :] = 1.0
    k[:, kw // 2] = 1.0
    k[kh // 2, kw // 2] = -(kh - 1 + kw - 1)
    return k


def _sobel_x(kh: int, kw: int) -> torch.Tensor:
    return torch.outer(_binomial(kh - 1), _derivative(kw))


def _sobel_y(kh: int, kw: int) -> torch.Tensor:
    return torch.outer(_derivative(kh), _binomial(kw - 1))


def _prewitt_x(kh: int, kw: int) -> torch.Tensor:
    _, dx = _center_offsets(kh, kw)
    return torch.sign(dx).clone()


def _prewitt_y(kh: int, kw: int) -> torch.Tensor:
    dy, _ = _center_offsets(kh, kw)
    return torch.sign(dy).clone()


def _emboss(kh: int, kw: int) -> torch.Tensor:
    # [[-2,-1,0],[-1,1,1],[0,1,2]] for 3x3: a slope from top-left to bottom-right, plus the pixel itself.
    dy, dx = _center_offsets(kh, kw)
    return dy + dx + _identity(kh, kw)


def _outline(kh: int, kw: int) -> torch.Tensor:
    k = -torch.ones(kh, kw, dtype=torch.float64)
    k[kh // 2, kw // 2] = kh * kw - 1
    return k


def _diagonal(kh: int, kw: int, anti: bool) -> torch.Tensor:
    # The X-versus-O templates: +1 on the stroke, -1 off it.
    k = -torch.ones(kh, kw, dtype=torch.float64)
    for i in range(kh):
        k[i, kw - 1 - i if anti else i] = 1.0
    return k


def _crossing(kh: int, kw: int) -> torch.Tensor:
    return torch.maximum(_diagonal(kh, kw, False), _diagonal(kh, kw, True))


@dataclass(frozen=True)
class Preset:
    name: str
    explanation: str
    make: Callable[[int, int], torch.Tensor]
    needs: str = "any"        # any, odd (a centre), odd3 (odd and at least 3x3), square3 (odd, square, >= 3)


PRESET_LIST: tuple[Preset, ...] = (
    Preset("Identity", "Copies the input pixel under the centre: the output equals the input.", _identity, "odd"),
    Preset("Blur (box average)", "Averages every pixel under the kernel equally: a soft, blocky blur.",
           lambda kh, kw: torch.full((kh, kw), 1.0 / (kh * kw), dtype=torch.float64)),
    Preset("Gaussian blur", "Averages the neighbourhood with weights that fall off from the centre: a smooth blur.",
           lambda kh, kw: torch.outer(_binomial(kh - 1), _binomial(kw - 1)) / (2.0 ** (kh - 1 + kw - 1))),
    Preset("Sharpen", "Adds the difference between a pixel and its neighbours, so edges and fine detail stand out.",
           lambda kh, kw: _identity(kh, kw) - _laplacian(kh, kw), "odd3"),
    Preset("Laplacian (all edges)", "Responds where a pixel differs from its neighbours in any direction: edges and spots.",
           _laplacian, "odd3"),
    Preset("Sobel x (vertical edges)", "Finds vertical edges: positive where the image gets brighter from left to right.",
           _sobel_x, "odd3"),
    Preset("Sobel y (horizontal edges)", "Finds horizontal edges: positive where the image gets brighter from top to bottom.",
           _sobel_y, "odd3"),
    Preset("Prewitt x (vertical edges)", "Like Sobel x without the extra weight on the middle row: right side minus left side.",
           _prewitt_x, "odd3"),
    Preset("Prewitt y (horizontal edges)", "Like Sobel y without the extra weight on the middle column: bottom minus top.",
           _prewitt_y, "odd3"),
    Preset("Emboss", "Lights the image from the top left: edges facing the light bright, the others dark, like a relief.",
           _emboss, "odd3"),
    Preset("Outline", "Keeps only where a pixel differs from all its neighbours: thin outlines on black.",
           _outline, "odd3"),
    Preset("Diagonal \\ (X-vs-O)", "Finds strokes running from top-left to bottom-right, as in the classic X-versus-O example.",
           lambda kh, kw: _diagonal(kh, kw, False), "square3"),
    Preset("Diagonal / (X-vs-O)", "Finds strokes running from bottom-left to top-right, as in the classic X-versus-O example.",
           lambda kh, kw: _diagonal(kh, kw, True), "square3"),
    Preset("Crossing X (X-vs-O)", "Finds where the two diagonals cross, the centre of an X.", _crossing, "square3"),
    Preset("Zeros", "A blank kernel where every output is just the bias, ready for typing your own.",
           lambda kh, kw: torch.zeros(kh, kw, dtype=torch.float64)),
)
PRESETS: dict[str, Preset] = {p.name: p for p in PRESET_LIST}


def preset_problem(name: str, kh: int, kw: int) -> str | None:
    """None if the preset makes sense for a kh x kw kernel, else the sentence that says why not."""
    if name not in PRESETS:
        return f"There is no preset called '{name}'; the presets are: {', '.join(PRESETS)}."
    needs = PRESETS[name].needs
    if needs in ("odd", "odd3", "square3") and (kh % 2 == 0 or kw % 2 == 0):
        return f"{name} needs a centre pixel, so an odd kernel size; this kernel is {kh}×{kw}."
    if needs in ("odd3", "square3") and (kh < 3 or kw < 3):
        return f"{name} needs at least a 3×3 kernel to see neighbours; this kernel is {kh}×{kw}."
    if needs == "square3" and kh != kw:
        return f"{name} runs corner to corner, so it needs a square kernel; this kernel is {kh}×{kw}."
    return None


def preset_kernel(name: str, kh: int, kw: int) -> torch.Tensor:
    """The preset as a float32 [kh, kw] kernel; raises KernelError where it makes no sense."""
    why = preset_problem(name, kh, kw)
    if why:
        raise KernelError(why)
    return PRESETS[name].make(kh, kw).to(torch.float32).contiguous()


def applicable_presets(kh: int, kw: int) -> list[str]:
    return [p.name for p in PRESET_LIST if preset_problem(p.name, kh, kw) is None]


# ---------------------------------------------------------------- writing kernels into a weight
SCOPES = {
    "kernel": "this kernel",
    "filter": "all input channels of this filter (split, keeps brightness)",
    "layer": "every filter (split over its input channels)",
}


def kernel_view(weight: torch.Tensor, layer_type: str) -> torch.Tensor:
    """The weight as [filter (output channel), input channel, kH, kW]; a view, so writes go through."""
    if weight.dim() != 4:
        raise KernelError(f"A {layer_type} weight has 4 dimensions; this one has {weight.dim()}.")
    return weight.transpose(0, 1) if LAYER_TYPES[layer_type].weight_layout == "transposed" else weight


def put_kernel(weight: torch.Tensor, layer_type: str, kernel: torch.Tensor, scope: str,
               out_channel: int, in_channel: int) -> torch.Tensor:
    """A new weight with ``kernel`` written into the scope: 'kernel' (one filter, one input channel),
    'all_inputs' (the same kernel copied to every input channel of the filter), 'filter' (every
    input channel of the filter, divided by their number, so an input whose channels are all equal
    gives the same output as the kernel on one channel) or 'layer' (each filter as for 'filter')."""
    new = weight.detach().clone()
    view = kernel_view(new, layer_type)
    kernel = kernel.to(new.dtype)
    if tuple(kernel.shape) != tuple(view.shape[2:]):
        raise KernelError(f"The kernel is {_shape(kernel.shape)} but this layer's kernels are {_shape(view.shape[2:])}.")
    n_in = view.shape[1]
    if scope == "kernel":
        view[out_channel, in_channel] = kernel
    elif scope == "all_inputs":
        view[out_channel, :] = kernel
    elif scope == "filter":
        view[out_channel, :] = kernel / n_in
    elif scope == "layer":
        view[:, :] = kernel / n_in
    else:
        raise KernelError(f"Unknown scope '{scope}'.")
    return new


def normalized_to_sum_one(kernel: torch.Tensor) -> torch.Tensor:
    total = float(kernel.sum())
    if abs(total) <= 1e-6 * max(float(kernel.abs().sum()), 1e-30):    # zero up to rounding
        raise KernelError("This kernel sums to 0, so it cannot be scaled to sum to 1; make one value larger first.")
    return kernel / total


def zero_mean(kernel: torch.Tensor) -> torch.Tensor:
    return kernel - kernel.mean()


# ---------------------------------------------------------------- initialisers
INITIALIZERS = {
    "default": "torch's default (from the stack seed)",
    "xavier_normal": "Xavier normal (Glorot), bias 0",
    "kaiming_normal": "Kaiming normal (He, for ReLU), bias 0",
    "zeros": "zeros",
    "new_seed": "torch's default with a new random seed",
}


def initialized_state(spec: LayerSpec, how: str, seed: int, new_seed: int | None = None) -> dict[str, torch.Tensor] | None:
    """The layer's parameters after an initialiser. None for 'default': the layer then takes its
    parameters from the stack seed, as a layer nobody edited does."""
    if how == "default":
        return None
    if how not in INITIALIZERS:
        raise KernelError(f"Unknown initialiser '{how}'; choose one of {', '.join(INITIALIZERS)}.")
    plain = spec.copy(state=None)
    if how == "new_seed":
        module = build_module(plain, new_seed if new_seed is not None else seed + 1)
        return {k: v.detach().clone() for k, v in module.state_dict().items()}
    module = build_module(plain, seed)
    state = {k: v.detach().clone() for k, v in module.state_dict().items()}
    generator = torch.Generator().manual_seed(layer_seed(seed, spec.name) + 7)
    weight = state["weight"]
    if how == "zeros":
        weight.zero_()
    else:
        fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(weight)
        if how == "xavier_normal":
            std = math.sqrt(2.0 / (fan_in + fan_out))
        else:   # kaiming_normal, fan_in mode, ReLU gain
            std = math.sqrt(2.0) / math.sqrt(fan_in)
        weight.copy_(torch.randn(weight.shape, generator=generator) * std)
    if "bias" in state:
        state["bias"].zero_()
    return state


# ---------------------------------------------------------------- resizing
def resize_centered(t: torch.Tensor, kh: int, kw: int) -> torch.Tensor:
    """Crops or zero-pads the last two dimensions to kh x kw around the centre, so a 3x3 Sobel
    stays in the middle of a 5x5 kernel and a 5x5 kernel keeps its middle 3x3."""
    h, w = t.shape[-2:]
    out = t.new_zeros((*t.shape[:-2], kh, kw))
    # Where the old kernel starts in the new one (negative: it is cropped).
    top, left = (kh - h) // 2, (kw - w) // 2
    ys, xs = max(top, 0), max(left, 0)
    ye, xe = min(top + h, kh), min(left + w, kw)
    out[..., ys:ye, xs:xe] = t[..., ys - top:ye - top, xs - left:xe - left]
    return out


def _shape(shape) -> str:
    return "×".join(str(int(s)) for s in shape)


def reconcile_state(before: LayerSpec, after: LayerSpec, seed: int) -> dict[str, torch.Tensor] | None:
    """The state for ``after`` (the same layer with new arguments), keeping what still fits from
    ``before``'s hand-set state: channels that still exist keep their kernels, kernels are cropped
    or padded around their centre, and new channels (or a newly enabled bias) take seeded values."""
    if not before.state:
        return None
    fresh = build_module(after.copy(state=None), seed).state_dict()
    out: dict[str, torch.Tensor] = {}
    for key, target in fresh.items():
        target = target.detach().clone()
        old = before.state.get(key)
        if old is not None and old.dim() == target.dim():
            if old.dim() == 4:
                old = resize_centered(old, *target.shape[-2:])
                target[:old.shape[0], :old.shape[1]] = old[:target.shape[0], :target.shape[1]]
            elif old.dim() == 2:
                target[:old.shape[0], :old.shape[1]] = old[:target.shape[0], :target.shape[1]]
            elif old.dim() == 1:
                target[:old.shape[0]] = old[:target.shape[0]]
            elif old.shape == target.shape:
                target = old.clone()
        out[key] = target
    return out


# ---------------------------------------------------------------- text
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def format_kernel_text(kernel: torch.Tensor) -> str:
    """A kernel as a nested list that Python, torch.tensor and this app's paste all read."""
    def fmt(v: float) -> str:
        return repr(float(v)) if not float(v).is_integer() else str(int(v)) if abs(v) < 1e15 else repr(float(v))

    def nested(t: torch.Tensor, depth: int) -> str:
        if t.dim() == 1:
            return "[" + ", ".join(fmt(v) for v in t.tolist()) + "]"
        sep = ",\n" + " " * (depth + 1)
        return "[" + sep.join(nested(row, depth + 1) for row in t) + "]"

    return nested(kernel.detach().to("cpu", torch.float64), 0)


def parse_kernel_text(text: str) -> torch.Tensor:
    """Reads numbers from text: a nested list, ``torch.tensor([...])`` (any dtype or device argument),
    ``np.array([...])``, or rows of numbers separated by spaces, tabs or commas (as spreadsheets copy
    them). Returns a float32 tensor; raises KernelError with one sentence for anything else."""
    text = text.strip()
    if not text:
        raise KernelError("There is nothing to paste: the text is empty.")
    call = re.fullmatch(r"(?:torch\.tensor|torch\.Tensor|tensor|np\.array|numpy\.array|array)\s*\((.*)\)", text, re.S)
    body = call.group(1) if call else text
    if call:
        # Drop keyword arguments such as dtype=torch.float32 or device='cuda'.
        body = re.sub(r",\s*[A-Za-z_]\w*\s*=.*$", "", body, flags=re.S).strip()
    if body.startswith(("[", "(")) or (call and "[" in body):
        try:
            value = ast.literal_eval(body)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise KernelError("The text looks like a list but is not a valid one; expected e.g. [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]].") from None
        return _tensor_from_nested(value)
    rows = [r for r in (line.strip() for line in body.splitlines()) if r]
    values = []
    for row in rows:
        parts = [p for p in re.split(r"[\s,;]+", row.strip("[](), ")) if p]
        bad = [p for p in parts if not re.fullmatch(_NUMBER, p)]
        if bad:
            raise KernelError(f"'{bad[0][:30]}' is not a number; paste numbers as rows, a nested list or torch.tensor([...]).")
        values.append([float(p) for p in parts])
    if not values:
        raise KernelError("There are no numbers in the pasted text.")
    if len({len(r) for r in values}) != 1:
        raise KernelError("The rows have different lengths; every row of a kernel needs the same number of values.")
    t = torch.tensor(values, dtype=torch.float32) if len(values) > 1 else torch.tensor(values[0], dtype=torch.float32)
    if not torch.isfinite(t).all():                        # 1e999 reads as inf
        raise KernelError("The kernel holds inf or nan; use finite numbers.")
    return t


def _tensor_from_nested(value) -> torch.Tensor:
    def shape(v):
        if isinstance(v, bool):
            raise KernelError("True and False are not kernel values; use numbers.")
        if isinstance(v, (int, float)):
            return ()
        if isinstance(v, (list, tuple)):
            if not v:
                raise KernelError("The list has an empty row; every row of a kernel needs values.")
            inner = [shape(x) for x in v]
            if any(s != inner[0] for s in inner):
                raise KernelError("The rows have different lengths; every row of a kernel needs the same number of values.")
            return (len(v), *inner[0])
        raise KernelError(f"{v!r} is not a number; a kernel holds numbers only.")

    shape(value)
    try:
        t = torch.tensor(value, dtype=torch.float32)
    except (OverflowError, RuntimeError, TypeError):       # e.g. an integer with hundreds of digits
        raise KernelError("A number in the text is too large for a kernel; use values a float32 can hold.") from None
    if t.dim() == 0:
        t = t.reshape(1)
    if not torch.isfinite(t).all():
        raise KernelError("The kernel holds inf or nan; use finite numbers.")
    return t


def kernel_from_text(text: str, kh: int, kw: int) -> torch.Tensor:
    """A pasted kernel that must be exactly kh x kw (a 1-element or one-row text fits 1 x n)."""
    t = parse_kernel_text(text)
    while t.dim() > 2 and t.shape[0] == 1:
        t = t[0]
    if t.dim() == 1:
        t = t.reshape(1, -1)
    if t.dim() != 2:
        raise KernelError(f"The pasted text holds a {t.dim()}-dimensional block ({_shape(t.shape)}); paste one kernel of {kh}×{kw}.")
    if tuple(t.shape) != (kh, kw):
        raise KernelError(f"The pasted kernel is {_shape(t.shape)} but this kernel is {kh}×{kw}.")
    return t


# ---------------------------------------------------------------- a layer's parameters as they run
_SEEDED: dict[tuple, dict[str, torch.Tensor]] = {}


def _seeded_key(spec: LayerSpec, seed: int) -> tuple:
    import json
    return (spec.type, spec.name, json.dumps(spec.args, sort_keys=True, default=list), seed)


def cached_layer_parameters(spec: LayerSpec, seed: int) -> dict[str, torch.Tensor] | None:
    """layer_parameters if it needs no building (hand-set state covers every parameter, or the seed's
    values are cached), else None: building allocates and fills the whole layer, which the GUI
    thread must not wait for (a background call to layer_parameters does it)."""
    from explorer.core.layers import state_shapes
    if spec.state and set(state_shapes(spec)) <= set(spec.state):      # meta tensors: allocates nothing
        return dict(spec.state)
    seeded = _SEEDED.get(_seeded_key(spec, seed))
    if seeded is None:
        return None
    out = dict(seeded)
    if spec.state:
        out.update(spec.state)
    return out


def layer_parameters(spec: LayerSpec, seed: int) -> dict[str, torch.Tensor]:
    """The parameters the engine runs with, on the CPU: hand-set state where there is some, the
    seed's values for the rest. The seeded part is cached (building a large layer takes a while and
    the editor asks on every keystroke); do not modify the tensors returned."""
    key = _seeded_key(spec, seed)
    seeded = _SEEDED.get(key)
    if seeded is None:
        module = build_module(spec.copy(state=None), seed)
        seeded = {k: v.detach() for k, v in module.state_dict().items()}
        if len(_SEEDED) > 32:
            _SEEDED.clear()
        _SEEDED[key] = seeded
    out = dict(seeded)
    if spec.state:
        out.update(spec.state)
    return out

"""Why one output pixel has its value: the input window a Conv2d, ConvTranspose2d, MaxPool2d,
AvgPool2d or MaxUnpool2d reads for it, the values there, the kernel, their products and the sum.

Pure torch. Only the window is copied to the CPU, so probing a pixel of a large layer on the GPU
costs microseconds; the window is gathered with index arithmetic that follows torch's own rules
for stride, padding (numbers, 'same', 'valid', the padding modes), dilation, groups and ceil_mode.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from explorer.core.layers import LAYER_TYPES

# The layer types with a hover explanation: those whose spec names one (LayerType.probe).
PROBED_TYPES = tuple(t.name for t in LAYER_TYPES.values() if t.probe)
NEEDS_WEIGHTS = ("conv", "conv_transpose")      # explanations that multiply by the layer's kernels
ON_OUTPUT = ("max_unpool",)                     # explanations whose window lies on the layer's output


class ProbeError(ValueError):
    """This pixel or layer cannot be probed; one sentence for the user."""


@dataclass
class Probe:
    """One output pixel explained. Positions are (row, column) in the layer's input.

    ``rows``/``cols`` [kH, kW]: the input pixel each kernel tap reads (may lie in the padding).
    ``inside`` [kH, kW]: the tap lands on a real input pixel (else padding, or, for a transposed
    convolution, no input pixel lands there).
    ``values`` [C, kH, kW]: what the tap reads, per input channel (padding already applied).
    ``kernel`` and ``products`` [C, kH, kW] for convolutions; ``channel_sums`` [C].
    """

    kind: str                                # conv, conv_transpose, max_pool, avg_pool, max_unpool
    layer_type: str
    batch: int
    channel: int                             # the output channel probed
    y: int
    x: int
    output_value: float                      # what the layer's output holds there
    rows: np.ndarray
    cols: np.ndarray
    inside: np.ndarray
    in_channels: list[int]
    values: np.ndarray
    kernel: np.ndarray | None = None
    products: np.ndarray | None = None
    channel_sums: np.ndarray | None = None
    bias: float = 0.0
    total: float = 0.0                       # the value recomputed from the window
    winner: tuple[int, int] | None = None    # max pool: the (row, column) that won
    winner_index: int | None = None          # ... as MaxUnpool2d's flat index row * W + column
    divisor: float | None = None             # avg pool
    source: tuple[int, int] | None = None    # max unpool: the pooled pixel whose value landed here
    placed: list[tuple[int, int, float]] = field(default_factory=list)   # max unpool: (row, col, value) put back in this block
    input_size: tuple[int, int] = (0, 0)
    note: str = ""

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(top, left, bottom, right) of the taps, inclusive, in input coordinates."""
        return int(self.rows.min()), int(self.cols.min()), int(self.rows.max()), int(self.cols.max())


def _pair(v) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


def _gather(plane_stack: torch.Tensor, rows: np.ndarray, cols: np.ndarray, mode: str,
            fill: float) -> tuple[np.ndarray, np.ndarray]:
    """Values of [C, H, W] at the taps, with torch's padding rule; returns (values [C,kh,kw], inside)."""
    _, h, w = plane_stack.shape
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    if mode == "reflect":
        r = np.abs(rows)
        r = np.where(r >= h, 2 * (h - 1) - r, r)
        c = np.abs(cols)
        c = np.where(c >= w, 2 * (w - 1) - c, c)
    elif mode == "replicate":
        r, c = np.clip(rows, 0, h - 1), np.clip(cols, 0, w - 1)
    elif mode == "circular":
        r, c = rows % h, cols % w
    else:
        r, c = np.clip(rows, 0, h - 1), np.clip(cols, 0, w - 1)
    index_r = torch.as_tensor(r, device=plane_stack.device, dtype=torch.long)
    index_c = torch.as_tensor(c, device=plane_stack.device, dtype=torch.long)
    values = plane_stack[:, index_r, index_c].detach().to("cpu", torch.float64).numpy()
    if mode == "zeros" or mode == "fill":
        values = np.where(inside[None], values, fill)
    return values, inside


def _check_pixel(output: torch.Tensor, batch: int, channel: int, y: int, x: int) -> float:
    if output.dim() != 4:
        raise ProbeError("Only 4-D feature maps [N, C, H, W] can be probed.")
    n, c, h, w = output.shape
    if not (0 <= batch < n and 0 <= channel < c and 0 <= y < h and 0 <= x < w):
        raise ProbeError(f"Pixel (row {y}, column {x}) of channel {channel} is outside the {h}×{w} output.")
    return float(output[batch, channel, y, x].detach())


# ---------------------------------------------------------------- convolutions
def _conv_padding(padding, kernel: tuple[int, int], dilation: tuple[int, int]) -> tuple[int, int]:
    """Top and left padding as torch applies it ('same' puts the odd extra pixel at the end)."""
    if padding == "valid":
        return 0, 0
    if padding == "same":
        return tuple((d * (k - 1)) // 2 for k, d in zip(kernel, dilation))
    return _pair(padding)


def probe_conv(args: dict, weight: torch.Tensor, bias: torch.Tensor | None, x: torch.Tensor,
               output: torch.Tensor, batch: int, channel: int, y: int, xx: int) -> Probe:
    """Conv2d: output[b, c, y, x] = bias[c] + sum over the group's input channels and kernel taps of
    input[b, ci, y*s - p + ky*d, x*s - p + kx*d] * weight[c, ci, ky, kx]."""
    value = _check_pixel(output, batch, channel, y, xx)
    kh, kw = weight.shape[-2:]
    sh, sw = _pair(args["stride"])
    dh, dw = _pair(args["dilation"])
    ph, pw = _conv_padding(args["padding"], (kh, kw), (dh, dw))
    groups = int(args["groups"])
    per_group = weight.shape[1]
    out_per_group = weight.shape[0] // groups
    first = (channel // out_per_group) * per_group
    rows = (y * sh - ph + np.arange(kh) * dh)[:, None].repeat(kw, 1)
    cols = (xx * sw - pw + np.arange(kw) * dw)[None, :].repeat(kh, 0)
    values, inside = _gather(x[batch, first:first + per_group], rows, cols, args["padding_mode"], 0.0)
    kernel = weight[channel].detach().to("cpu", torch.float64).numpy()
    products = values * kernel
    sums = products.reshape(per_group, -1).sum(axis=1)
    b = float(bias[channel].detach()) if bias is not None else 0.0
    return Probe("conv", "Conv2d", batch, channel, y, xx, value, rows, cols, inside,
                 list(range(first, first + per_group)), values, kernel, products, sums, b, float(sums.sum() + b),
                 input_size=tuple(x.shape[-2:]))


def probe_conv_transpose(args: dict, weight: torch.Tensor, bias: torch.Tensor | None, x: torch.Tensor,
                         output: torch.Tensor, batch: int, channel: int, y: int, xx: int) -> Probe:
    """ConvTranspose2d scatters: input pixel (iy, ix) adds input * weight[ci, c, ky, kx] at output
    (iy*s - p + ky*d, ix*s - p + kx*d). So tap (ky, kx) of output (y, x) reads input row
    (y + p - ky*d) / s where that is a whole number inside the input; other taps add nothing."""
    value = _check_pixel(output, batch, channel, y, xx)
    kh, kw = weight.shape[-2:]
    sh, sw = _pair(args["stride"])
    dh, dw = _pair(args["dilation"])
    ph, pw = _pair(args["padding"])
    groups = int(args["groups"])
    out_per_group = weight.shape[1]
    in_per_group = weight.shape[0] // groups
    group = channel // out_per_group
    first = group * in_per_group
    num_r = y + ph - np.arange(kh) * dh
    num_c = xx + pw - np.arange(kw) * dw
    rows = (num_r // sh)[:, None].repeat(kw, 1)
    cols = (num_c // sw)[None, :].repeat(kh, 0)
    exact = ((num_r % sh) == 0)[:, None] & ((num_c % sw) == 0)[None, :]
    values, inside = _gather(x[batch, first:first + in_per_group], rows, cols, "fill", 0.0)
    inside = inside & exact
    values = np.where(inside[None], values, 0.0)
    kernel = weight[first:first + in_per_group, channel % out_per_group].detach().to("cpu", torch.float64).numpy()
    products = values * kernel
    sums = products.reshape(in_per_group, -1).sum(axis=1)
    b = float(bias[channel].detach()) if bias is not None else 0.0
    note = "" if inside.any() else "No input pixel lands on this output pixel: it holds only the bias."
    return Probe("conv_transpose", "ConvTranspose2d", batch, channel, y, xx, value, rows, cols, inside,
                 list(range(first, first + in_per_group)), values, kernel, products, sums, b,
                 float(sums.sum() + b), input_size=tuple(x.shape[-2:]), note=note)


# ---------------------------------------------------------------- pooling
def _pool_geometry(args: dict) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int]]:
    k = _pair(args["kernel_size"])
    s = _pair(args["stride"]) if args.get("stride") is not None else k
    p = _pair(args.get("padding", 0))
    d = _pair(args.get("dilation", 1))
    return k, s, p, d


def probe_max_pool(args: dict, x: torch.Tensor, output: torch.Tensor, batch: int, channel: int,
                   y: int, xx: int, indices: torch.Tensor | None = None) -> Probe:
    """MaxPool2d: the largest value among the taps inside the input (padding counts as -inf).
    The winner's flat index row * W + column is what MaxUnpool2d uses to put the value back."""
    value = _check_pixel(output, batch, channel, y, xx)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = _pool_geometry(args)
    rows = (y * sh - ph + np.arange(kh) * dh)[:, None].repeat(kw, 1)
    cols = (xx * sw - pw + np.arange(kw) * dw)[None, :].repeat(kh, 0)
    values, inside = _gather(x[batch, channel:channel + 1], rows, cols, "fill", -np.inf)
    w = x.shape[-1]
    if indices is not None:
        flat = int(indices[batch, channel, y, xx])     # torch's own choice (first maximum, NaN wins)
        winner = (flat // w, flat % w)
    else:
        masked = np.where(inside, values[0], -np.inf)
        nan = np.isnan(masked)
        pos = int(np.argmax(nan)) if nan.any() else int(np.argmax(masked))
        winner = (int(rows.flat[pos]), int(cols.flat[pos]))
        flat = winner[0] * w + winner[1]
    return Probe("max_pool", "MaxPool2d", batch, channel, y, xx, value, rows, cols, inside, [channel], values,
                 total=float(np.max(np.where(inside, values[0], -np.inf))),
                 winner=winner, winner_index=flat, input_size=tuple(x.shape[-2:]))


def probe_avg_pool(args: dict, x: torch.Tensor, output: torch.Tensor, batch: int, channel: int,
                   y: int, xx: int) -> Probe:
    """AvgPool2d: the sum of the window divided as torch divides it (divisor_override, or the
    window clipped to the padded input when count_include_pad, else only the real pixels)."""
    value = _check_pixel(output, batch, channel, y, xx)
    (kh, kw), (sh, sw), (ph, pw), _ = _pool_geometry(args)
    h, w = x.shape[-2:]
    rows = (y * sh - ph + np.arange(kh))[:, None].repeat(kw, 1)
    cols = (xx * sw - pw + np.arange(kw))[None, :].repeat(kh, 0)
    values, inside = _gather(x[batch, channel:channel + 1], rows, cols, "fill", 0.0)
    # torch's rule: the window is clipped to the padded input, then (without count_include_pad) to the input.
    in_padded = (rows < h + ph) & (cols < w + pw)
    if args.get("divisor_override"):
        divisor = float(args["divisor_override"])
    elif args.get("count_include_pad", True):
        divisor = float(in_padded.sum())
    else:
        divisor = float(inside.sum())
    total = float((values[0] * inside).sum() / divisor) if divisor else float("nan")
    return Probe("avg_pool", "AvgPool2d", batch, channel, y, xx, value, rows, cols, inside & in_padded, [channel],
                 values, total=total, divisor=divisor, input_size=(int(h), int(w)))


def probe_max_unpool(args: dict, x: torch.Tensor, indices: torch.Tensor, output: torch.Tensor,
                     batch: int, channel: int, y: int, xx: int) -> Probe:
    """MaxUnpool2d: output pixel (y, x) holds the pooled value whose recorded index is y * W + x,
    and 0 when no maximum came from there. The block shown is that pooled pixel's window, with
    every value put back into it."""
    value = _check_pixel(output, batch, channel, y, xx)
    w_out = output.shape[-1]
    (kh, kw), (sh, sw), (ph, pw), _ = _pool_geometry(args)
    flat = y * w_out + xx
    plane = indices[batch, channel]
    hits = (plane == flat).nonzero()
    if len(hits):
        py, px = int(hits[0, 0]), int(hits[0, 1])
    else:   # the pooled pixel whose window covers this one (nearest, for a helpful picture)
        py = min(max((y + ph) // sh, 0), x.shape[-2] - 1)
        px = min(max((xx + pw) // sw, 0), x.shape[-1] - 1)
    rows = (py * sh - ph + np.arange(kh))[:, None].repeat(kw, 1)
    cols = (px * sw - pw + np.arange(kw))[None, :].repeat(kh, 0)
    out_plane = output[batch, channel:channel + 1]
    values, inside = _gather(out_plane, rows, cols, "fill", 0.0)
    # Every pooled value whose index falls inside this block, and where it went.
    r0, c0, r1, c1 = int(rows.min()), int(cols.min()), int(rows.max()), int(cols.max())
    ir, ic = plane // w_out, plane % w_out
    near = ((ir >= r0) & (ir <= r1) & (ic >= c0) & (ic <= c1)).nonzero().tolist()
    placed = [(int(ir[a, b]), int(ic[a, b]), float(x[batch, channel, a, b])) for a, b in near]
    source = (py, px) if len(hits) else None
    note = "" if source else "No maximum was recorded here, so MaxUnpool2d left a 0."
    return Probe("max_unpool", "MaxUnpool2d", batch, channel, y, xx, value, rows, cols, inside, [channel], values,
                 total=float(x[batch, channel, py, px]) if source else 0.0, source=source, placed=placed,
                 input_size=tuple(output.shape[-2:]), note=note)


# ---------------------------------------------------------------- one entry point
def probe_layer(layer_type: str, args: dict, state: dict[str, torch.Tensor] | None, layer_input: torch.Tensor,
                output: torch.Tensor, batch: int, channel: int, y: int, x: int,
                pool_indices: torch.Tensor | None = None, indices: torch.Tensor | None = None) -> Probe:
    """Dispatches by the layer type's explanation (LayerType.probe). ``args`` are the full arguments (LayerSpec.full_args()); ``state``
    the module's parameters (weight, bias) on any device; ``pool_indices`` the indices of the
    MaxPool2d an unpool reads; ``indices`` the indices a MaxPool2d recorded for this output."""
    kind = LAYER_TYPES[layer_type].probe if layer_type in LAYER_TYPES else None
    if kind == "conv":
        return probe_conv(args, state["weight"], state.get("bias"), layer_input, output, batch, channel, y, x)
    if kind == "conv_transpose":
        return probe_conv_transpose(args, state["weight"], state.get("bias"), layer_input, output, batch, channel, y, x)
    if kind == "max_pool":
        return probe_max_pool(args, layer_input, output, batch, channel, y, x, indices)
    if kind == "avg_pool":
        return probe_avg_pool(args, layer_input, output, batch, channel, y, x)
    if kind == "max_unpool":
        if pool_indices is None:
            raise ProbeError(f"This {layer_type} has no pool indices yet; run the stack first.")
        return probe_max_unpool(args, layer_input, pool_indices, output, batch, channel, y, x)
    raise ProbeError(f"Hover explanations cover {', '.join(PROBED_TYPES)}; this layer is a {layer_type}.")

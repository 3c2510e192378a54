"""Receptive fields: which input pixels one output pixel of a convolution / pooling chain sees.

One place for the arithmetic, used by the walkthrough (per stage of a real network) and by the
Insight tools (per layer of a stack, to cut the input patch under a strong activation). Along one
axis a chain of windows (kernel k, stride s, padding p) is summarised by three numbers: ``rf`` (the
side of the input window), ``jump`` (input pixels between neighbouring output pixels, the product
of the strides) and ``start`` (the input coordinate of the centre of output pixel 0)."""

from __future__ import annotations

import math

from torch import nn

from explorer.core.layers import LAYER_TYPES

POOLS = (nn.MaxPool2d, nn.AvgPool2d)


def _pair(v) -> tuple[int, int]:
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def window(module: nn.Module, axis: int = 0) -> tuple[int, int, float] | None:
    """(effective kernel, stride, padding) along H (axis 0) or W (axis 1) of a conv or pool, else None."""
    if isinstance(module, (nn.Conv2d, *POOLS)):
        k = _pair(module.kernel_size)[axis]
        d = _pair(getattr(module, "dilation", 1))[axis]
        s = _pair(module.stride if module.stride is not None else module.kernel_size)[axis]
        k_eff = d * (k - 1) + 1
        p = module.padding
        if isinstance(p, str):
            p = (k_eff - 1) / 2 if p == "same" else 0
        else:
            p = _pair(p)[axis]
        return k_eff, s, p
    return None


class RF:
    """Receptive-field bookkeeping along one axis: rf, jump and start; rf None once it is lost."""

    def __init__(self):
        self.rf, self.jump, self.start = 1, 1, 0.0

    def apply(self, k_eff: int, s: int, p: float) -> None:
        if self.rf is None:
            return
        self.start += ((k_eff - 1) / 2 - p) * self.jump
        self.rf += (k_eff - 1) * self.jump
        self.jump *= s

    def lose(self) -> None:
        self.rf = None


def axis_span(rf: int, jump: int, start: float, i: int) -> tuple[int, int]:
    """[lo, hi) of the input pixels output index ``i`` sees along one axis, not clipped."""
    half = (rf - 1) / 2
    lo = math.floor(start + i * jump - half + 1e-9)
    return lo, lo + rf


def input_box(geometry, y: int, x: int, image_size: tuple[int, int], clip: bool = True) -> tuple[int, int, int, int]:
    """(top, left, bottom, right), bottom and right exclusive, of the input pixels output pixel
    (y, x) depends on, clipped to the image unless ``clip`` is False. ``geometry`` is
    ((rf, jump, start) along H, (rf, jump, start) along W), or None for the whole image."""
    h, w = image_size
    if geometry is None:
        return (0, 0, h, w)
    (rfh, jh, sh), (rfw, jw, sw) = geometry
    y0, y1 = axis_span(rfh, jh, sh, y)
    x0, x1 = axis_span(rfw, jw, sw, x)
    if not clip:
        return (y0, x0, y1, x1)
    return (max(0, y0), max(0, x0), min(h, y1), min(w, x1))


# Layers that act on each value (or each channel) alone: the receptive field passes through them.
# The app's own layer types say so in their spec; the rest are torchvision models' modules.
_POINTWISE = (*(t.name for t in LAYER_TYPES.values() if t.pointwise),
              "SiLU", "Hardtanh", "ReLU6", "Softplus", "Mish", "Hardswish", "Hardsigmoid", "Dropout2d", "Identity")


def chain_geometry(modules: list[nn.Module]):
    """The geometry (see ``input_box``) of the output of a chain of modules run one after the
    other, or None when a module in it mixes all positions or changes the geometry in a way this
    does not follow (Flatten, Linear, Upsample, transposed convolutions, unpooling)."""
    rh, rw = RF(), RF()
    for m in modules:
        wh, ww = window(m, 0), window(m, 1)
        if wh is not None:
            rh.apply(*wh)
            rw.apply(*ww)
        elif type(m).__name__ not in _POINTWISE:
            return None
    return ((rh.rf, rh.jump, rh.start), (rw.rf, rw.jump, rw.start))

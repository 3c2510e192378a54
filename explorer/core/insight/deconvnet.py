"""The deconvnet of Zeiler & Fergus ("Visualizing and Understanding Convolutional Networks", 2014):
one activation of a layer projected back to pixels through the layers below it, run backwards.

Forward, every MaxPool2d records its switches (where each maximum came from). Backward, from a
map that is zero except for the chosen activation:

- MaxPool2d → MaxUnpool2d with the recorded switches: each value goes back to the place its
  maximum came from, zeros elsewhere (this is why MaxUnpool2d exists);
- ReLU → ReLU (keep what is positive, as on the way up);
- Conv2d → ConvTranspose2d with the same weights (the filters flipped), no bias;
- BatchNorm2d (eval) → its per-channel scale (the transpose of its linear part);
- Dropout and Identity pass through.

Any other layer on the way (Linear, Flatten, an opaque block) stops it with a sentence."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from explorer.core.insight.subject import InsightError, Subject
from explorer.core.receptive_field import input_box

_PASS = (nn.Dropout, nn.Dropout2d, nn.Identity)


@dataclass
class Reconstruction:
    layer: str
    channel: int
    y: int
    x: int
    activation: float
    image: torch.Tensor                 # [C, H, W] in model-input space (CPU), signed
    box: tuple[int, int, int, int]      # the activation's receptive field in input pixels (clipped)
    switches_used: int                  # how many MaxPool2d layers were undone with their indices


def _chain(subject: Subject, layer: str) -> list[nn.Module]:
    subject.check_layer(layer)
    chain = subject._chains[layer]
    for m in chain:
        if not isinstance(m, (nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.BatchNorm2d, *_PASS)):
            raise InsightError(f"The deconvnet runs back through Conv2d, ReLU, MaxPool2d and BatchNorm2d only; "
                               f"below '{layer}' there is a {type(m).__name__}.")
        if isinstance(m, nn.Conv2d) and m.groups != 1:
            raise InsightError("The deconvnet needs plain convolutions (groups = 1).")
    return chain


def deconvnet(subject: Subject, x: torch.Tensor, layer: str, channel: int,
              position: tuple[int, int] | None = None) -> Reconstruction:
    """Projects activation (channel, y, x) of ``layer`` for model input x [1, C, H, W] back to the
    input; ``position`` defaults to the channel's strongest place."""
    chain = _chain(subject, layer)
    with torch.no_grad():
        records = []              # per module: (module, input size, switches or None)
        h = x[:1]
        for m in chain:
            size = tuple(h.shape[-2:])
            if isinstance(m, nn.MaxPool2d):
                h, idx = F.max_pool2d(h, m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode,
                                      return_indices=True)
                records.append((m, size, idx))
            else:
                out = m(h)
                if isinstance(out, tuple):
                    out = out[0]
                records.append((m, size, None))
                h = out
        if h.dim() != 4:
            raise InsightError(f"Layer '{layer}' has no feature maps ({list(h.shape)}); the deconvnet starts at a map.")
        if not 0 <= channel < h.shape[1]:
            raise InsightError(f"Layer '{layer}' has channels 0 to {h.shape[1] - 1}; there is no channel {channel}.")
        plane = h[0, channel]
        if position is None:
            pos = int(plane.flatten().argmax())
            position = divmod(pos, plane.shape[1])
        y, xx = position
        if not (0 <= y < plane.shape[0] and 0 <= xx < plane.shape[1]):
            raise InsightError(f"Position ({y}, {xx}) is outside the {plane.shape[0]}×{plane.shape[1]} map.")
        value = float(plane[y, xx])
        r = torch.zeros_like(h)
        r[0, channel, y, xx] = value
        used = 0
        for m, size, idx in reversed(records):
            if isinstance(m, nn.MaxPool2d):
                r = F.max_unpool2d(r, idx, m.kernel_size, m.stride, m.padding, output_size=list(size))
                used += 1
            elif isinstance(m, nn.ReLU):
                r = F.relu(r)
            elif isinstance(m, nn.Conv2d):
                r = _conv_back(r, m, size)
            elif isinstance(m, nn.BatchNorm2d):
                scale = (m.weight if m.weight is not None else 1) / torch.sqrt(m.running_var + m.eps) \
                    if m.running_var is not None else (m.weight if m.weight is not None else torch.ones(1))
                r = r * torch.as_tensor(scale, device=r.device).view(1, -1, 1, 1)
    box = input_box(subject.geometry(layer), y, xx, tuple(x.shape[-2:]))
    return Reconstruction(layer, channel, int(y), int(xx), value, r[0].cpu(), box, used)


def _conv_back(r: torch.Tensor, conv: nn.Conv2d, size: tuple[int, int]) -> torch.Tensor:
    """ConvTranspose2d with the convolution's own weights, sized back to the convolution's input."""
    if isinstance(conv.padding, str):
        k = [conv.dilation[i] * (conv.kernel_size[i] - 1) for i in range(2)]
        padding = tuple(v // 2 for v in k) if conv.padding == "same" else (0, 0)
    else:
        padding = conv.padding
    out = F.conv_transpose2d(r, conv.weight, None, conv.stride, padding, 0, 1, conv.dilation)
    dh, dw = size[0] - out.shape[-2], size[1] - out.shape[-1]
    if dh > 0 or dw > 0:      # a stride that dropped the last rows / columns: give them back as zeros
        out = F.pad(out, (0, max(0, dw), 0, max(0, dh)))
    return out[..., :size[0], :size[1]]


def to_picture(image: torch.Tensor) -> torch.Tensor:
    """A signed reconstruction [C, H, W] as an image in [0, 1]: 0 mid-gray, scaled by its largest |value|."""
    peak = image.abs().max()
    return (0.5 + 0.5 * image / peak).clamp(0, 1) if peak > 0 else torch.full_like(image, 0.5)

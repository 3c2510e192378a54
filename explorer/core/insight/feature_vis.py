"""Feature visualisation by activation maximisation: optimise an input image so one channel's mean
activation grows, with the regularisers of Lucid / Lucent (Olah et al., "Feature Visualization",
Distill 2017) that make the result readable:

- the image is parameterised in Fourier space, each frequency scaled by 1 / frequency, so the
  optimiser moves low frequencies as easily as high ones (no high-frequency noise patterns);
- for RGB the three channels are decorrelated with the square root of ImageNet's colour
  covariance (Lucid's ``color_correlation_svd_sqrt``), then squashed into [0, 1] by a sigmoid;
- every step sees a randomly padded, jittered, scaled and slightly rotated copy (transformation
  robustness), so the pattern must work wherever it lands;
- optionally a total-variation penalty for smoother images.

All channels asked for are one batch (image b maximises channel b), on the subject's device.
torch-lucent itself is unmaintained since 2021, so this is the recipe again in plain torch; the
spatial transforms are one ``affine_grid`` + ``grid_sample`` per step (the size stays, so stacks
that end in Flatten → Linear work too)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from explorer.core.insight.subject import InsightError, Subject

# Lucid's square root of ImageNet's colour correlation (its SVD), normalised by its largest column norm.
_COLOR_SVD_SQRT = torch.tensor([[0.26, 0.09, 0.02],
                                [0.27, 0.00, -0.05],
                                [0.27, -0.09, 0.03]])
_COLOR = _COLOR_SVD_SQRT / _COLOR_SVD_SQRT.norm(dim=0).max()
MAX_BATCH = 32     # channels optimised together; more are done in rounds of this many


@dataclass
class FeatureVisResult:
    layer: str
    channels: list[int]
    images: torch.Tensor               # [N, C, H, W] in [0, 1], on the CPU, one per channel
    activations: list[float]           # the channel's mean activation on its final image
    start_activations: list[float]     # ... on the starting noise
    steps: int                         # steps done (fewer than asked when stopped)
    stopped: bool = False
    seconds: float = 0.0


class FourierImage(torch.nn.Module):
    """N images [N, C, H, W] in [0, 1] from a learnable spectrum (Lucid's ``fft_image`` + ``to_valid_rgb``)."""

    def __init__(self, n: int, c: int, h: int, w: int, sd: float = 0.01, decay_power: float = 1.0,
                 generator: torch.Generator | None = None, device: torch.device | str = "cpu"):
        super().__init__()
        self.shape = (n, c, h, w)
        fy = torch.fft.fftfreq(h)[:, None]
        fx = torch.fft.rfftfreq(w)[None, :]
        freqs = torch.sqrt(fx * fx + fy * fy)
        scale = 1.0 / torch.clamp(freqs, min=1.0 / max(h, w)) ** decay_power
        self.register_buffer("scale", scale[None, None, :, :, None].to(device))
        spectrum = torch.randn((n, c, h, w // 2 + 1, 2), generator=generator) * sd
        self.spectrum = torch.nn.Parameter(spectrum.to(device))

    def forward(self) -> torch.Tensor:
        n, c, h, w = self.shape
        spec = torch.view_as_complex((self.scale * self.spectrum).contiguous())
        image = torch.fft.irfftn(spec, s=(h, w), norm="ortho") / 4.0    # Lucid's "magic" 4
        if c == 3:
            image = torch.einsum("nchw,dc->ndhw", image, _COLOR.to(image.device))
        return torch.sigmoid(image)


def _transform(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Lucid's standard transforms (pad 12, jitter 8, scale 0.9–1.1, rotate ±10°, jitter 4) scaled to
    the image's size (they were chosen for 224 pixels), as one random affine warp per image; the
    output has the input's size, padding mid-gray."""
    n, _, h, w = images.shape
    size = min(h, w)
    pad = max(1, round(12 * size / 224))
    jitter = max(1, round(12 * size / 224))          # jitter 8 then 4 add up to at most 12
    padded = F.pad(images, (pad, pad, pad, pad), mode="constant", value=0.5)
    ph, pw = h + 2 * pad, w + 2 * pad
    scales = torch.tensor([1 + (i - 5) / 50 for i in range(11)])
    angles = torch.tensor(list(range(-10, 11)) + 5 * [0], dtype=torch.float32)
    s = scales[torch.randint(len(scales), (n,), generator=generator)]
    a = angles[torch.randint(len(angles), (n,), generator=generator)] * math.pi / 180
    shift = torch.randint(-jitter, jitter + 1, (n, 2), generator=generator).float()
    cos, sin = torch.cos(a) / s, torch.sin(a) / s
    # theta maps output coordinates (in [-1, 1] of the h×w crop) to input coordinates of the padded image
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos * w / pw, -sin * h / pw
    theta[:, 1, 0], theta[:, 1, 1] = sin * w / ph, cos * h / ph
    theta[:, 0, 2] = shift[:, 1] * 2 / pw
    theta[:, 1, 2] = shift[:, 0] * 2 / ph
    grid = F.affine_grid(theta.to(images.device), [n, images.shape[1], h, w], align_corners=False)
    return F.grid_sample(padded, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _channel_means(act: torch.Tensor, channels: torch.Tensor) -> torch.Tensor:
    """act [N, C, ...] -> [N]: image b's mean activation of channel channels[b]."""
    picked = act[torch.arange(act.shape[0], device=act.device), channels.to(act.device)]
    return picked.flatten(1).mean(1) if picked.dim() > 1 else picked


def layer_channels(subject: Subject, layer: str, size: tuple[int, int] | None = None) -> int:
    """How many channels (or features) the layer's output has."""
    c, h, w = subject.input_shape(size)
    with torch.no_grad():
        out = subject.activation(subject.normalize(torch.full((1, c, h, w), 0.5, device=subject.device())), layer)
    return int(out.shape[1])


def visualize(subject: Subject, layer: str, channels: list[int], steps: int = 256,
              size: tuple[int, int] | None = None, seed: int = 0, lr: float = 0.05, tv_weight: float = 0.0,
              should_stop: Callable[[], bool] | None = None,
              progress: Callable[[int, int, torch.Tensor], None] | None = None,
              preview_every: int = 16) -> FeatureVisResult:
    """Optimises one image per channel (in rounds of at most MAX_BATCH). ``progress(step, steps,
    images)`` gets a CPU copy of the current images every ``preview_every`` steps; when
    ``should_stop()`` says so, the current images are kept and returned (``stopped``)."""
    subject.check_layer(layer)
    if not isinstance(steps, int) or steps < 0:
        raise InsightError(f"steps must be a whole number of at least 0, not {steps!r}.")
    n_channels = layer_channels(subject, layer, size)
    bad = [ch for ch in channels if not 0 <= ch < n_channels]
    if bad:
        raise InsightError(f"Layer '{layer}' has channels 0 to {n_channels - 1}; there is no channel {bad[0]}.")
    if not channels:
        raise InsightError("Name at least one channel.")
    started = time.perf_counter()
    c, h, w = subject.input_shape(size)
    device = subject.device()
    generator = torch.Generator().manual_seed(seed)
    relu = subject.ends_in_relu(layer)
    images, finals, starts = [], [], []
    done_steps, stopped = steps, False
    for lo in range(0, len(channels), MAX_BATCH):
        chunk = channels[lo:lo + MAX_BATCH]
        picked = torch.tensor(chunk)
        param = FourierImage(len(chunk), c, h, w, generator=generator, device=device)
        optimizer = torch.optim.Adam(param.parameters(), lr=lr)
        with torch.no_grad():
            starts += _channel_means(subject.activation(subject.normalize(param()), layer), picked).tolist()
        step = 0
        for step in range(1, steps + 1):
            if should_stop is not None and should_stop():
                stopped, step = True, step - 1
                break
            optimizer.zero_grad(set_to_none=True)
            img = param()
            act = subject.activation(subject.normalize(_transform(img, generator)), layer, pre_relu=True)
            if relu:
                # the ReLU's output, plus a trace of the value before it: where the channel is still off
                # everywhere the ReLU's gradient is zero and the image would never start to change
                # (Lucid redirects the ReLU's gradient for the same reason)
                score = _channel_means(F.relu(act), picked) + 0.01 * _channel_means(act, picked)
            else:
                score = _channel_means(act, picked)
            loss = -score.sum()
            if tv_weight > 0:
                loss = loss + tv_weight * _total_variation(img)
            loss.backward()
            optimizer.step()
            if progress is not None and (step % preview_every == 0 or step == steps):
                with torch.no_grad():
                    progress(step, steps, torch.cat([*images, param().detach().cpu()]))
        done_steps = min(done_steps, step)
        with torch.no_grad():
            final = param().detach()
            finals += _channel_means(subject.activation(subject.normalize(final), layer), picked).tolist()
        images.append(final.cpu())
        if stopped:
            channels = channels[:lo + len(chunk)]     # the rounds not started are left out
            break
    return FeatureVisResult(layer, list(channels), torch.cat(images), finals, starts, done_steps, stopped,
                            time.perf_counter() - started)


def _total_variation(img: torch.Tensor) -> torch.Tensor:
    return ((img[..., 1:, :] - img[..., :-1, :]).abs().mean() + (img[..., :, 1:] - img[..., :, :-1]).abs().mean())


def parse_channels(text: str, count: int | None = None) -> list[int]:
    """'0,1,5-8' -> [0, 1, 5, 6, 7, 8]; InsightError naming the part that is not a channel."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part:
                a, b = part.split("-", 1)
                lo, hi = int(a), int(b)
                if hi < lo:
                    raise ValueError
                out.extend(range(lo, hi + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise InsightError(f"--channels takes numbers and ranges like 0,1,5-8, not '{part}'.") from None
    if count is not None:
        bad = [ch for ch in out if not 0 <= ch < count]
        if bad:
            raise InsightError(f"There is no channel {bad[0]}: the layer has channels 0 to {count - 1}.")
    return list(dict.fromkeys(out))


def export_visualization(result: FeatureVisResult, out_dir, enlarge_to: int = 128) -> dict:
    """DIR/channel_C.png per channel and summary.json."""
    import json
    from pathlib import Path

    from explorer.core.render import render_input_image, save_png
    from explorer.core.stack import atomic_write_text

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for i, ch in enumerate(result.channels):
        img = result.images[i]
        scale = max(1, math.ceil(enlarge_to / max(img.shape[-2:])))
        if scale > 1:      # small inputs (LeNet's 32×32) enlarged with visible pixels
            img = img.repeat_interleave(scale, 1).repeat_interleave(scale, 2)
        save_png(render_input_image(img), out_dir / f"channel_{ch}.png")
        entries.append({"channel": ch, "activation": result.activations[i],
                        "start_activation": result.start_activations[i], "image": f"channel_{ch}.png"})
    data = {"layer": result.layer, "channels": entries}
    atomic_write_text(out_dir / "summary.json", json.dumps(data, indent=2) + "\n")
    return data

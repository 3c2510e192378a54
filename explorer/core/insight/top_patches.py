"""Top patches: for every channel of a layer, the k images of a data set that excite it most (at
most one activation per image), where in each image, and the input patch under that activation's
receptive field.

One batched pass on the device: per batch each channel's maximum over positions and where it is
([B, C]), merged with the running top k ([k, C]) by one ``topk`` over images. Nothing per channel
runs in Python until the end, so 10,000 CIFAR images through LeNet take about a second on a CPU."""

from __future__ import annotations

import bisect
import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from explorer.core.insight.data import DataSource
from explorer.core.insight.subject import InsightError, Subject
from explorer.core.receptive_field import input_box


@dataclass
class Patch:
    image: int                       # the image's position in the data set
    label: str | None                # its class name, None without classes
    activation: float
    y: int                           # the activation's position in the layer's output
    x: int
    box: tuple[int, int, int, int]   # top, left, bottom, right in input pixels, clipped; bottom/right exclusive

    def to_json(self) -> dict:
        return {"image": self.image, "label": self.label, "activation": self.activation,
                "y": self.y, "x": self.x, "box": list(self.box)}


@dataclass
class ChannelPatches:
    channel: int
    patches: list[Patch]             # strongest first

    @property
    def maximum(self) -> float:
        return self.patches[0].activation if self.patches else float("-inf")

    @property
    def dead(self) -> bool:
        """Never active: no image gives this channel a value above 0 anywhere."""
        return not self.patches or self.maximum <= 0.0


@dataclass
class TopPatches:
    layer: str
    k: int
    images: int                      # how many images were run
    channels: list[ChannelPatches]
    geometry: object = None          # the receptive-field geometry (see receptive_field.input_box) or None
    output_hw: tuple[int, int] = (1, 1)
    seconds: float = 0.0
    source_key: str = ""

    def by_maximum(self) -> list[ChannelPatches]:
        """Channels sorted by their strongest activation, dead ones last."""
        return sorted(self.channels, key=lambda c: (c.dead, -c.maximum))

    def dead_channels(self) -> list[int]:
        return [c.channel for c in self.channels if c.dead]

    def to_json(self) -> dict:
        return {"layer": self.layer, "k": self.k, "images": self.images,
                "channels": [{"channel": c.channel, "dead": c.dead, "patches": [p.to_json() for p in c.patches]}
                             for c in self.channels]}


def cache_key(subject: Subject, layer: str, source: DataSource, k: int) -> tuple:
    """(stack weights up to the layer, layer, data set, k): what a result depends on."""
    return (subject.weights_key(layer), layer, source.key, k)


class TopPatchesCache:
    """Results by cache_key; a weight edit changes the key of the layers at and after it only, so
    their entries are simply not found again (and age out: at most ``limit`` are kept)."""

    def __init__(self, limit: int = 32):
        self.limit = limit
        self._entries: dict[tuple, TopPatches] = {}

    def get(self, key: tuple) -> TopPatches | None:
        result = self._entries.pop(key, None)
        if result is not None:
            self._entries[key] = result      # most recently used last
        return result

    def put(self, key: tuple, result: TopPatches) -> None:
        self._entries.pop(key, None)
        self._entries[key] = result
        while len(self._entries) > self.limit:
            self._entries.pop(next(iter(self._entries)))

    def __len__(self) -> int:
        return len(self._entries)


def top_patches(subject: Subject, layer: str, source: DataSource, k: int = 9, batch_size: int = 256,
                should_stop: Callable[[], bool] | None = None,
                progress: Callable[[int, int], None] | None = None) -> TopPatches | None:
    """Runs the data set through the subject (on the subject's device) up to ``layer``; None when
    ``should_stop`` said stop (asked between batches). ``progress(done, total)`` after each batch."""
    subject.check_layer(layer)
    if not isinstance(k, int) or k < 1:
        raise InsightError(f"k must be a whole number of at least 1, not {k!r}.")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InsightError(f"The batch size must be a whole number of at least 1, not {batch_size!r}.")
    total = len(source)
    if total == 0:
        raise InsightError(f"{source.describe()}: there are no images to run.")
    started = time.perf_counter()
    device = subject.device()
    values = index = where = None       # running top k: [k', C] each, on the device
    sizes: list[tuple[int, int, int]] = []   # (first index, H, W) of each batch's prepared images
    labels_of: dict[int, int] = {}
    out_hw = (1, 1)
    done = 0
    with torch.no_grad():
        for first, images, labels in source.batches(batch_size):
            if should_stop is not None and should_stop():
                return None
            # preparation (gray, resize, normalise) runs where the network runs
            raw, x = subject.prepare(images.to(device, non_blocking=True))
            sizes.append((first, raw.shape[-2], raw.shape[-1]))
            act = subject.activation(x, layer)
            if act.dim() == 2:
                act = act[:, :, None, None]
            if act.dim() != 4:
                raise InsightError(f"Layer '{layer}' gives a {act.dim()}-D output {list(act.shape)}; top patches "
                                   "need channels ([N, C, H, W] or [N, F]).")
            out_hw = tuple(act.shape[-2:])
            flat = act.flatten(2).float()
            flat = torch.nan_to_num(flat, nan=-math.inf)
            bmax, barg = flat.max(dim=2)                        # [B, C]
            bidx = torch.arange(first, first + act.shape[0], device=bmax.device)[:, None].expand_as(bmax)
            if values is None:
                cat_v, cat_i, cat_w = bmax, bidx, barg
            else:
                cat_v = torch.cat([values, bmax])
                cat_i = torch.cat([index, bidx])
                cat_w = torch.cat([where, barg])
            top_v, pick = torch.topk(cat_v, min(k, cat_v.shape[0]), dim=0)
            values, index, where = top_v, cat_i.gather(0, pick), cat_w.gather(0, pick)
            if labels is not None:
                for j, lab in enumerate(labels):
                    labels_of[first + j] = int(lab)
            done += act.shape[0]
            if progress is not None:
                progress(done, total)
    values, index, where = values.cpu().tolist(), index.cpu().tolist(), where.cpu().tolist()
    geometry = subject.geometry(layer)       # None after a Flatten / Linear: the box is the whole image
    names = source.class_names()
    firsts = [s[0] for s in sizes]
    channels = []
    for c in range(len(values[0])):
        patches = []
        for r in range(len(values)):
            v = values[r][c]
            if not math.isfinite(v) and v < 0:
                continue
            i, pos = index[r][c], where[r][c]
            y, x = divmod(pos, out_hw[1])
            _, h, w = sizes[bisect.bisect_right(firsts, i) - 1]
            lab = labels_of.get(i)
            label = (names[lab] if names and lab < len(names) else str(lab)) if lab is not None else None
            patches.append(Patch(i, label, float(v), y, x, input_box(geometry, y, x, (h, w))))
        channels.append(ChannelPatches(c, patches))
    return TopPatches(layer, k, done, channels, geometry, out_hw, time.perf_counter() - started, source.key)


# ---------------------------------------------------------------- patches as pictures
def prepared_image(subject: Subject, source: DataSource, index: int) -> torch.Tensor:
    """Image ``index`` of the data set as the subject sees it before normalisation: [C, H, W] in [0, 1]."""
    raw, _ = subject.prepare(source.image(index)[None])
    return raw[0].to("cpu")


def patch_cell(img: torch.Tensor, result: TopPatches, patch: Patch) -> torch.Tensor:
    """The patch of prepared image ``img`` as a [C, h, w] image in [0, 1]: the whole receptive field,
    with the part outside the image (where the field was clipped) mid-gray so every patch of a
    layer has the same size."""
    h, w = img.shape[-2:]
    if result.geometry is None:
        return img
    t, l, b, r = input_box(result.geometry, patch.y, patch.x, (h, w), clip=False)
    cell = torch.full((img.shape[0], b - t, r - l), 0.5, dtype=img.dtype)
    ct, cl, cb, cr = patch.box
    cell[:, ct - t:cb - t, cl - l:cr - l] = img[:, ct:cb, cl:cr]
    return cell


def channel_strip(cells: list[torch.Tensor], min_side: int = 64, gap: int = 2) -> np.ndarray:
    """Patches side by side, each enlarged by a whole factor (nearest neighbour, so pixels stay
    visible) to at least ``min_side``: uint8 (H, W, 3)."""
    if not cells:
        return np.zeros((min_side, min_side, 3), np.uint8)
    h = max(c.shape[-2] for c in cells)
    w = max(c.shape[-1] for c in cells)
    scale = max(1, math.ceil(min_side / max(h, w)))
    H, W = h * scale, w * scale
    out = np.full((H, len(cells) * (W + gap) - gap, 3), 255, np.uint8)
    for i, c in enumerate(cells):
        c = c[:3] if c.shape[0] >= 3 else c[:1].expand(3, *c.shape[1:])
        big = c.clamp(0, 1).mul(255).round().to(torch.uint8)
        big = big.repeat_interleave(scale, 1).repeat_interleave(scale, 2).permute(1, 2, 0).numpy()
        out[:big.shape[0], i * (W + gap):i * (W + gap) + big.shape[1]] = big
    return out


def export_top_patches(subject: Subject, source: DataSource, result: TopPatches, out_dir) -> dict:
    """DIR/top_patches.json and channel_C.png (the k patches side by side, enlarged)."""
    import json
    from pathlib import Path

    from explorer.core.render import save_png
    from explorer.core.stack import atomic_write_text

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = result.to_json()
    images: dict[int, torch.Tensor] = {}    # an image is often a top patch of several channels
    for c in result.channels:
        cells = []
        for p in c.patches:
            if p.image not in images:
                images[p.image] = prepared_image(subject, source, p.image)
            cells.append(patch_cell(images[p.image], result, p))
        save_png(channel_strip(cells), out_dir / f"channel_{c.channel}.png")
    atomic_write_text(out_dir / "top_patches.json", json.dumps(data, indent=2) + "\n")
    return data

"""Turning activation tensors into ready-to-draw uint8 images.

Everything heavy happens on the tensor's own device: the value range, the scaling
to 0..255 and the tiling of all channels into one 2-D canvas. Only the finished
uint8 canvas (plus one low/high pair per tile) is copied to the CPU, once. The
UI draws a grid as a single ImageItem with a 256-entry LUT, so the canvas is
C-contiguous uint8 and colour mapping is left to the LUT.

Normalisations (how values become 0..255):

* ``channel``   each channel to its own min..max.
* ``layer``     every channel to the min..max of the whole tensor given.
* ``symmetric`` every channel to [-m, m] with m = max |value| of the tensor, so
  0 lands on the middle gray (128); meant for the diverging colormap.

Edge cases, chosen so that nothing ever divides by zero:

* NaN draws as 0 (the low end), in every mode.
* +inf/-inf are left out of the range and then clamp to 255/0.
* A constant range (max == min, or no finite values at all) draws every pixel
  as 0 for ``channel``/``layer`` (a dead channel reads as black), and as 128
  for ``symmetric`` (where the only constant range is [0, 0]: all zeros,
  which belong in the middle).
"""

from __future__ import annotations

import math
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .colormaps import apply_colormap

NORMALIZATIONS = ("channel", "layer", "symmetric")


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class GridLayout:
    """Where each tile sits in the grid image: row-major, `pad` pixels between
    tiles and none around the outside."""

    count: int
    rows: int
    cols: int
    tile_h: int
    tile_w: int
    pad: int

    @property
    def width(self) -> int:
        return max(0, self.cols * (self.tile_w + self.pad) - self.pad)

    @property
    def height(self) -> int:
        return max(0, self.rows * (self.tile_h + self.pad) - self.pad)

    def tile_origin(self, index: int) -> tuple[int, int]:
        if not 0 <= index < self.count:
            raise IndexError(f"tile {index} is outside a grid of {self.count}")
        row, col = divmod(index, self.cols)
        return col * (self.tile_w + self.pad), row * (self.tile_h + self.pad)

    def tile_rect(self, index: int) -> tuple[int, int, int, int]:
        x, y = self.tile_origin(index)
        return x, y, self.tile_w, self.tile_h

    def tile_at(self, x: float, y: float) -> int | None:
        if not (self.count and self.tile_w and self.tile_h):
            return None  # no tile has any pixels
        if not (math.isfinite(x) and math.isfinite(y)) or x < 0 or y < 0:
            return None
        col, dx = divmod(math.floor(x), self.tile_w + self.pad)
        row, dy = divmod(math.floor(y), self.tile_h + self.pad)
        if dx >= self.tile_w or dy >= self.tile_h or col >= self.cols:
            return None  # on the padding, or right of the grid
        index = row * self.cols + col
        return index if index < self.count else None


def grid_layout(count: int, tile_h: int, tile_w: int, pad: int = 1,
                cols: int | None = None, aspect: float = 1.0) -> GridLayout:
    """Arrange `count` tiles; without `cols`, pick the column count whose grid is
    closest to `aspect` (width / height), preferring fewer empty cells, then wider."""
    if count < 0 or tile_h < 0 or tile_w < 0 or pad < 0:
        raise ValueError("grid_layout needs non-negative count, tile size and pad")
    if count == 0:
        return GridLayout(0, 0, 0, tile_h, tile_w, pad)
    if cols is None:
        cols = _best_cols(count, tile_h + pad, tile_w + pad, aspect)
    cols = max(1, min(int(cols), count))
    rows = -(-count // cols)
    return GridLayout(count, rows, cols, tile_h, tile_w, pad)


def _best_cols(count: int, step_h: int, step_w: int, aspect: float) -> int:
    # Only columns near the ideal can win, so a narrow window keeps this cheap
    # even for thousands of channels.
    if not (math.isfinite(aspect) and aspect > 0):   # a view with no size yet
        aspect = 1.0
    ideal = math.sqrt(count * aspect * max(step_h, 1) / max(step_w, 1))
    # Clamped to 1..count on both ends: for a tall narrow tile the ideal can exceed count, and an
    # empty range would leave min() nothing to choose from.
    hi = max(1, min(count, int(ideal * 2) + 1))
    lo = min(hi, max(1, int(ideal / 2)))

    def score(cols: int) -> tuple[float, int, int]:
        rows = -(-count // cols)
        off_aspect = abs(math.log((cols * max(step_w, 1)) / (rows * max(step_h, 1)) / aspect))
        # Rounded so mirror-image shapes (3x2 vs 2x3) tie exactly and the later keys decide.
        return round(off_aspect, 9), rows * cols - count, -cols

    return min(range(lo, hi + 1), key=score)


# --------------------------------------------------------------------------- normalisation


def _working(t: torch.Tensor) -> torch.Tensor:
    """Detached float view of `t` on its own device: float64 stays (exact ranges),
    everything else (half, bfloat16, ints, bool) computes in float32."""
    t = t.detach()
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def _finite_minmax(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row min and max of a 2-D tensor, ignoring NaN and ±inf; rows with no
    finite value give (0, 0)."""
    # Separate amin/amax: on CPU they vectorise, aminmax(dim=) runs ~10x slower.
    lo, hi = rows.amin(dim=1), rows.amax(dim=1)
    # These propagate NaN and count infinities; the masked pass below costs
    # three extra sweeps, so only pay for it when the cheap answer is not
    # finite (bool() is one device sync of a single flag).
    if bool(torch.isfinite(lo).all() & torch.isfinite(hi).all()):
        return lo, hi
    finite = torch.isfinite(rows)
    lo = torch.where(finite, rows, math.inf).amin(dim=1)
    hi = torch.where(finite, rows, -math.inf).amax(dim=1)
    empty = ~finite.any(dim=1)
    return lo.masked_fill(empty, 0.0), hi.masked_fill(empty, 0.0)


def _value_range(maps: torch.Tensor, normalization: str,
                 range_source: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-channel (low, high) that map to 0 and 255, for maps [C, ...].
    Layer/symmetric take their single range from `range_source` (default: maps)."""
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"Unknown normalization '{normalization}'; use one of {', '.join(NORMALIZATIONS)}.")
    count = maps.shape[0]
    source = maps if normalization == "channel" or range_source is None else _working(range_source)
    if source.numel() == 0:  # nothing to measure (and reshape(.., -1) would be ambiguous)
        zeros = maps.new_zeros(count)
        return zeros, zeros
    if normalization == "channel":
        return _finite_minmax(maps.reshape(count, -1))
    lo, hi = _finite_minmax(source.reshape(1, -1))
    if normalization == "symmetric":
        hi = torch.maximum(lo.abs(), hi.abs())
        lo = -hi
    return lo.expand(count).to(maps.dtype), hi.expand(count).to(maps.dtype)


def _pixels(maps: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, flat_level: float) -> torch.Tensor:
    """maps [C, ...] -> int16 pixel values 0..255 (rounded), NaN -> 0, channels
    with an empty range -> `flat_level`."""
    span = hi - lo
    flat = span <= 0
    scale = torch.where(flat, 0.0, 255.0 / torch.where(flat, 1.0, span))
    bias = torch.where(flat, flat_level, 0.0) + 0.5 - lo * scale
    shape = (-1,) + (1,) * (maps.dim() - 1)
    # One fused pass for the affine map, then two in-place passes for the bounds.
    out = torch.addcmul(bias.view(shape), maps, scale.view(shape))
    out.clamp_(0.0, 255.0).nan_to_num_(0.0)
    # int16, not uint8: CPU torch casts float->int16 vectorised but float->uint8
    # element by element (~4x slower); int16->uint8 afterwards is a cheap copy.
    return out.to(torch.int16)


def _normalized(maps: torch.Tensor, normalization: str, range_source: torch.Tensor | None = None):
    """(int16 pixels 0..255, lo, hi): the one path every render helper goes through."""
    maps = _working(maps)
    lo, hi = _value_range(maps, normalization, range_source)
    # Symmetric's only empty range is [0, 0]: all zeros, which belong on the
    # middle gray. Elsewhere a constant channel is drawn black, like a dead one.
    flat_level = 128.0 if normalization == "symmetric" else 0.0
    return _pixels(maps, lo, hi, flat_level), lo, hi


def _to_numpy_ranges(lo: torch.Tensor, hi: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    # Cast after the copy: MPS has no float64.
    both = torch.stack((lo, hi)).to("cpu").to(torch.float64).numpy()
    return both[0].copy(), both[1].copy()


# --------------------------------------------------------------------------- tiling


def _tile_into(canvas: torch.Tensor, pixels: torch.Tensor, layout: GridLayout) -> None:
    """Write pixels [C, H, W] into the uint8 canvas as tiles; copy_ casts on the
    way, so tiling costs one write per pixel."""
    step_h, step_w = layout.tile_h + layout.pad, layout.tile_w + layout.pad
    # A strided view of the canvas as [rows, cols, tile_h, tile_w]; no padding
    # ever needs cropping afterwards, so the canvas is contiguous as allocated.
    tiles = canvas.as_strided(
        (layout.rows, layout.cols, layout.tile_h, layout.tile_w),
        (step_h * layout.width, step_w, layout.width, 1),
    )
    full_rows, rest = divmod(layout.count, layout.cols)
    if full_rows:
        tiles[:full_rows].copy_(pixels[: full_rows * layout.cols].view(full_rows, layout.cols, layout.tile_h, layout.tile_w))
    if rest:
        tiles[full_rows, :rest].copy_(pixels[full_rows * layout.cols:])


def _as_planes(maps: torch.Tensor) -> torch.Tensor:
    if maps.dim() == 2:
        return maps.unsqueeze(0)
    if maps.dim() != 3:
        raise ValueError(f"expected maps of shape [C, H, W] or [H, W], got {list(maps.shape)}")
    return maps


# --------------------------------------------------------------------------- public API


@dataclass
class RenderedGrid:
    image: np.ndarray  # uint8 (height, width) for a LUT, or (height, width, 3) rgb
    layout: GridLayout
    lows: np.ndarray   # float64 per tile: the value drawn as 0
    highs: np.ndarray  # float64 per tile: the value drawn as 255


# What the window's grid draws at most: more pixels than a screen shows only make every paint slow
# (a 32 x 1022x1022 layer tiles to 33 megapixels, over 100 ms a paint in Qt). Below this, shrinking
# costs more than it saves (VGG's 64 x 224x224 stage, 3.2 megapixels, paints in ~10 ms as it is).
# Exports stay full size.
DISPLAY_MAX_PIXELS = 1 << 22


def render_grid(maps: torch.Tensor, normalization: str = "channel", pad: int = 1,
                cols: int | None = None, pad_value: int = 0, max_pixels: int | None = None) -> RenderedGrid:
    """All channels of maps [C, H, W] (or one [H, W]) tiled into one uint8 image. With
    ``max_pixels``, tiles are shrunk by a whole factor (area average, on the device) until the
    grid fits; ranges (lows/highs) are always those of the full-size maps."""
    maps = _as_planes(maps)
    count, tile_h, tile_w = maps.shape
    pixels, lo, hi = _normalized(maps, normalization)
    layout = grid_layout(count, tile_h, tile_w, pad=pad, cols=cols)
    if max_pixels and count and layout.width * layout.height > max_pixels:
        factor = math.ceil(math.sqrt(layout.width * layout.height / max_pixels))
        size = (max(1, -(-tile_h // factor)), max(1, -(-tile_w // factor)))
        pixels = torch.nn.functional.interpolate(pixels.unsqueeze(1).float(), size=size, mode="area")
        pixels = pixels.squeeze(1).round_().to(torch.uint8)
        layout = grid_layout(count, size[0], size[1], pad=pad, cols=layout.cols)
    canvas = torch.full((layout.height, layout.width), int(pad_value), dtype=torch.uint8, device=maps.device)
    if count and tile_h and tile_w:
        _tile_into(canvas, pixels, layout)
    del pixels  # the big intermediate; don't keep it alive while copying to the host
    lows, highs = _to_numpy_ranges(lo, hi)
    return RenderedGrid(canvas.to("cpu").numpy(), layout, lows, highs)


def render_channel(plane: torch.Tensor, normalization: str = "channel",
                   layer: torch.Tensor | None = None) -> tuple[np.ndarray, float, float]:
    """One [H, W] channel -> (uint8 (H, W), low, high). For layer/symmetric the range
    comes from `layer` (the whole layer tensor) when given, so the single channel
    matches how it looks in the grid."""
    if plane.dim() != 2:
        raise ValueError(f"expected one channel [H, W], got {list(plane.shape)}")
    pixels, lo, hi = _normalized(plane.unsqueeze(0), normalization, range_source=layer)
    image = pixels[0].to(torch.uint8).to("cpu").numpy()
    lows, highs = _to_numpy_ranges(lo, hi)
    return image, float(lows[0]), float(highs[0])


def render_rgb(maps: torch.Tensor, channels: tuple[int, int, int] = (0, 1, 2),
               normalization: str = "layer") -> np.ndarray:
    """Three channels of maps [C, H, W] as one colour picture (H, W, 3); channels
    the tensor does not have are drawn as zeros. "layer" takes its range from the
    whole tensor, "channel" scales red, green and blue separately."""
    maps = _as_planes(maps)
    if len(channels) != 3:
        raise ValueError("render_rgb needs exactly three channel indices")
    _, height, width = maps.shape
    present = [c for c in channels if 0 <= c < maps.shape[0]]
    rgb = torch.zeros((3, height, width), dtype=torch.uint8, device=maps.device)
    if present:
        pixels, _, _ = _normalized(maps[present], normalization, range_source=maps)
        planes = iter(pixels)
        for slot, c in enumerate(channels):
            if 0 <= c < maps.shape[0]:
                rgb[slot] = next(planes)
    rgb = rgb.permute(1, 2, 0).contiguous()
    return rgb.to("cpu").numpy()


def render_batch_channel(output: torch.Tensor, channel: int, normalization: str = "channel",
                         pad: int = 1, max_pixels: int | None = None) -> RenderedGrid:
    """One channel across the whole batch: output [N, C, H, W] -> a grid of N tiles.
    "layer"/"symmetric" share the range of that channel over the batch."""
    if output.dim() != 4:
        raise ValueError(f"expected a batch [N, C, H, W], got {list(output.shape)}")
    if not 0 <= channel < output.shape[1]:
        raise IndexError(f"channel {channel} is outside 0..{output.shape[1] - 1}")
    return render_grid(output[:, channel], normalization=normalization, pad=pad, max_pixels=max_pixels)


def render_input_image(x: torch.Tensor) -> np.ndarray:
    """An input image [C, H, W] (or [H, W]) with values in [0, 1] -> uint8 (H, W)
    for one channel or (H, W, 3) for three; values clamp, nothing is rescaled.
    A fourth (alpha) channel is dropped."""
    x = _working(_as_planes(x))
    if x.shape[0] not in (1, 3, 4):
        raise ValueError(f"an input image has 1, 3 or 4 channels, got {x.shape[0]}")
    x = x[:3]
    # The fixed range 0..1 through the same scaling as everything else.
    count = x.shape[0]
    pixels = _pixels(x, x.new_zeros(count), x.new_ones(count), flat_level=0.0).to(torch.uint8)
    pixels = pixels[0] if count == 1 else pixels.permute(1, 2, 0).contiguous()
    return pixels.to("cpu").numpy()


def to_png_array(grid: RenderedGrid, colormap: str = "gray") -> np.ndarray:
    """The grid as colour-mapped (H, W, 3) uint8; rgb grids pass through."""
    if grid.image.ndim == 3:
        return grid.image
    return apply_colormap(grid.image, colormap)


def save_png(array: np.ndarray, path) -> None:
    """Write uint8 (H, W) or (H, W, 3) as PNG. Goes through a temporary file in the
    same folder and os.replace, so a reader never sees a half-written file."""
    from PIL import Image  # only the export paths need Pillow

    array = np.ascontiguousarray(array)
    if array.dtype != np.uint8 or not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)):
        raise ValueError(f"save_png expects uint8 (H, W) or (H, W, 3), got {array.dtype} {array.shape}")
    if array.size == 0:
        raise ValueError("save_png cannot write an empty image")
    path = Path(path)
    # Not tempfile.mkstemp: its files are private (0600) and would stay so after
    # the rename; "xb" creates with the usual umask permissions.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as f:
            Image.fromarray(array).save(f, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def feature_grid_png(output: torch.Tensor, path, colormap: str = "gray") -> None:
    """What the headless run writes per 4-D layer output: every channel of the
    first batch item tiled, each scaled to its own range."""
    if output.dim() != 4:
        raise ValueError(f"feature_grid_png expects a 4-D output [N, C, H, W], got {list(output.shape)}")
    grid = render_grid(output[0], normalization="channel")
    save_png(to_png_array(grid, colormap), path)

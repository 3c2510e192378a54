"""render.py and colormaps.py against plain torch/numpy references."""

from __future__ import annotations

import gc
import os
import warnings
import weakref

import numpy as np
import pytest
import torch
from PIL import Image

from explorer.core.colormaps import COLORMAPS, DIVERGING, apply_colormap, colormap_names
from explorer.core.render import (
    NORMALIZATIONS,
    GridLayout,
    feature_grid_png,
    grid_layout,
    render_batch_channel,
    render_channel,
    render_grid,
    render_input_image,
    render_rgb,
    save_png,
    to_png_array,
)


def _devices() -> list[str]:
    names = ["cpu"]
    if torch.cuda.is_available():
        names.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        names.append("mps")
    return names


@pytest.fixture(params=_devices())
def device(request) -> str:
    return request.param


def tile(grid, index: int) -> np.ndarray:
    x, y, w, h = grid.layout.tile_rect(index)
    return grid.image[y:y + h, x:x + w]


def reference(values: torch.Tensor, lo: float, hi: float) -> np.ndarray:
    """What a pixel should be: (v - lo) / (hi - lo) * 255, rounded, in float64."""
    v = values.detach().to("cpu", torch.float64).numpy()
    return np.clip(np.rint((v - lo) / (hi - lo) * 255.0), 0, 255)


def assert_close_to(pixels: np.ndarray, expected: np.ndarray) -> None:
    # float32 arithmetic may land a value sitting on .5 on the other side.
    assert np.abs(pixels.astype(np.int64) - expected).max() <= 1


# --------------------------------------------------------------------------- normalisation


def test_channel_normalisation_maps_each_channel_to_its_own_range(device):
    torch.manual_seed(0)
    maps = torch.randn(5, 7, 9, device=device) * torch.arange(1, 6, device=device).view(5, 1, 1)
    grid = render_grid(maps, "channel")
    cpu = maps.cpu()
    for i in range(5):
        pixels = tile(grid, i)
        lo, hi = cpu[i].min().item(), cpu[i].max().item()
        assert grid.lows[i] == pytest.approx(lo) and grid.highs[i] == pytest.approx(hi)
        flat_min, flat_max = cpu[i].argmin().item(), cpu[i].argmax().item()
        assert pixels.flat[flat_min] == 0 and pixels.flat[flat_max] == 255
        assert_close_to(pixels, reference(cpu[i], lo, hi))


def test_layer_normalisation_shares_one_range(device):
    torch.manual_seed(1)
    maps = torch.randn(4, 6, 6, device=device)
    maps[2] *= 0.01  # a quiet channel must stay dim under a shared range
    grid = render_grid(maps, "layer")
    cpu = maps.cpu()
    lo, hi = cpu.min().item(), cpu.max().item()
    assert np.allclose(grid.lows, lo) and np.allclose(grid.highs, hi)
    for i in range(4):
        assert_close_to(tile(grid, i), reference(cpu[i], lo, hi))
    assert np.ptp(tile(grid, 2)) < 10


def test_symmetric_puts_zero_in_the_middle(device):
    maps = torch.tensor([[[0.0, 1.0, -2.0, 4.0]], [[0.0, -4.0, 0.5, 0.0]]], device=device)
    grid = render_grid(maps, "symmetric")
    assert np.allclose(grid.lows, -4.0) and np.allclose(grid.highs, 4.0)
    first, second = tile(grid, 0)[0], tile(grid, 1)[0]
    assert first[0] in (127, 128) and second[0] in (127, 128) and second[3] in (127, 128)
    assert first[3] == 255 and second[1] == 0
    assert first[1] == round((1 + 4) / 8 * 255)


def test_render_channel_takes_layer_range_from_the_layer(device):
    torch.manual_seed(2)
    layer = torch.randn(3, 5, 5, device=device)
    plane = layer[1]
    own, lo, hi = render_channel(plane)
    assert own.shape == (5, 5) and own.dtype == np.uint8
    assert (lo, hi) == pytest.approx((plane.min().item(), plane.max().item()))
    shared, lo, hi = render_channel(plane, "layer", layer=layer)
    assert (lo, hi) == pytest.approx((layer.min().item(), layer.max().item()))
    assert np.array_equal(shared, tile(render_grid(layer, "layer"), 1))
    sym, lo, hi = render_channel(plane, "symmetric", layer=layer)
    m = layer.abs().max().item()
    assert (lo, hi) == pytest.approx((-m, m))


def test_unknown_normalisation_is_refused():
    with pytest.raises(ValueError, match="normalization"):
        render_grid(torch.zeros(2, 3, 3), "per-pixel")
    assert NORMALIZATIONS == ("channel", "layer", "symmetric")


# --------------------------------------------------------------------------- awkward values


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
def test_constant_channels_do_not_divide_by_zero(normalization, device):
    maps = torch.zeros(3, 4, 4, device=device)
    maps[1] = 5.0
    maps[2] = torch.arange(16.0, device=device).view(4, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        grid = render_grid(maps, normalization)
    assert np.isfinite(grid.lows).all() and np.isfinite(grid.highs).all()
    if normalization == "channel":
        assert (tile(grid, 0) == 0).all() and (tile(grid, 1) == 0).all()
        assert tile(grid, 2).min() == 0 and tile(grid, 2).max() == 255


def test_all_zero_layer_is_mid_gray_when_symmetric():
    grid = render_grid(torch.zeros(2, 3, 3), "symmetric")
    assert (tile(grid, 0) == 128).all() and (tile(grid, 1) == 128).all()
    assert (render_grid(torch.zeros(2, 3, 3), "layer").image == 0).all()


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
def test_nan_and_inf_never_crash_and_stay_out_of_the_range(normalization, device):
    maps = torch.tensor([[[1.0, 2.0, float("nan"), 3.0]],
                         [[float("nan")] * 4],
                         [[float("inf"), -1.0, float("-inf"), 1.0]]], device=device)
    grid = render_grid(maps, normalization)
    assert np.isfinite(grid.lows).all() and np.isfinite(grid.highs).all()
    assert tile(grid, 0)[0, 2] == 0  # NaN draws as the low end
    assert (tile(grid, 1) == 0).all()
    third = tile(grid, 2)[0]
    assert third[0] == 255 and third[2] == 0  # infinities clamp
    if normalization == "channel":
        assert list(tile(grid, 0)[0]) == [0, 128, 0, 255]
        assert grid.lows[2] == -1.0 and grid.highs[2] == 1.0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64, torch.int32, torch.uint8])
def test_other_dtypes_render_like_float32(dtype):
    torch.manual_seed(3)
    base = (torch.rand(6, 5, 5) * 100).round()
    expected = render_grid(base).image
    got = render_grid(base.to(dtype))
    assert got.image.dtype == np.uint8
    assert np.abs(got.image.astype(int) - expected.astype(int)).max() <= 1


def test_empty_inputs_do_not_crash():
    grid = render_grid(torch.empty(0, 4, 4))
    assert grid.image.shape == (0, 0) and grid.layout.count == 0
    assert grid.layout.tile_at(0, 0) is None
    grid = render_grid(torch.empty(3, 0, 4))
    assert grid.image.dtype == np.uint8 and len(grid.lows) == 3


# --------------------------------------------------------------------------- grid image


def test_grid_image_is_one_contiguous_uint8_plane_with_padding(device):
    maps = torch.rand(7, 3, 4, device=device)
    maps[:, 0, 0] = 0.0  # each tile spans 0..255 with 12 pixels, none of them 77 but by chance
    grid = render_grid(maps, pad=2, pad_value=77)
    layout = grid.layout
    assert grid.image.dtype == np.uint8 and grid.image.flags["C_CONTIGUOUS"]
    assert grid.image.shape == (layout.height, layout.width)
    inside = np.zeros(grid.image.shape, dtype=bool)
    for i in range(layout.count):
        x, y, w, h = layout.tile_rect(i)
        inside[y:y + h, x:x + w] = True
    assert (grid.image[~inside] == 77).all()
    assert len(grid.lows) == len(grid.highs) == 7 and grid.lows.dtype == np.float64


def test_two_d_input_is_one_tile():
    grid = render_grid(torch.arange(12.0).view(3, 4))
    assert grid.layout.count == 1 and grid.image.shape == (3, 4)
    assert grid.image[0, 0] == 0 and grid.image[2, 3] == 255


def test_explicit_columns_are_honoured():
    layout = render_grid(torch.rand(10, 2, 2), cols=5).layout
    assert (layout.rows, layout.cols) == (2, 5)


def test_grid_keeps_no_reference_to_the_input():
    maps = torch.randn(8, 16, 16)
    ref = weakref.ref(maps)
    grid = render_grid(maps)
    del maps
    gc.collect()
    assert ref() is None
    assert grid.image.shape == (grid.layout.height, grid.layout.width)


# --------------------------------------------------------------------------- layout


@pytest.mark.parametrize("count", [1, 2, 3, 5, 6, 7, 16, 64, 100, 512, 2048])
def test_layouts_are_near_square_and_not_wasteful(count):
    layout = grid_layout(count, 14, 14)
    assert layout.rows * layout.cols >= count
    assert layout.rows * layout.cols - count < layout.cols  # never a whole empty row
    if count >= 4:
        assert 0.5 <= layout.width / layout.height <= 2.0


@pytest.mark.parametrize("count, cols, rows", [(1, 1, 1), (6, 3, 2), (64, 8, 8), (512, 23, 23)])
def test_familiar_counts_get_familiar_shapes(count, cols, rows):
    layout = grid_layout(count, 28, 28)
    assert (layout.cols, layout.rows) == (cols, rows)


def test_aspect_and_tile_shape_steer_the_columns():
    wide = grid_layout(64, 10, 10, aspect=4.0)
    assert wide.width / wide.height == pytest.approx(4.0, rel=0.5)
    strips = grid_layout(16, 4, 64)  # wide tiles stack in fewer columns
    assert strips.cols < strips.rows


@pytest.mark.parametrize("count, pad", [(1, 1), (3, 1), (6, 0), (64, 1), (10, 3)])
def test_tile_at_and_tile_origin_round_trip(count, pad):
    layout = grid_layout(count, 5, 7, pad=pad)
    expected = np.full((layout.height, layout.width), -1)
    for i in range(count):
        x, y, w, h = layout.tile_rect(i)
        assert (x, y) == layout.tile_origin(i)
        expected[y:y + h, x:x + w] = i
    for y in range(layout.height):
        for x in range(layout.width):
            got = layout.tile_at(x + 0.5, y + 0.5)
            assert got == (None if expected[y, x] < 0 else expected[y, x])
    for x, y in [(-1, 0), (0, -0.5), (layout.width, 0), (0, layout.height), (float("nan"), 0)]:
        assert layout.tile_at(x, y) is None
    with pytest.raises(IndexError):
        layout.tile_origin(count)


def test_layout_size_has_no_outer_border():
    layout = GridLayout(count=6, rows=2, cols=3, tile_h=4, tile_w=5, pad=1)
    assert (layout.width, layout.height) == (17, 9)
    assert layout.tile_origin(4) == (6, 5)


# --------------------------------------------------------------------------- other views


def test_render_rgb_uses_the_first_three_channels(device):
    torch.manual_seed(4)
    maps = torch.rand(6, 5, 5, device=device)
    maps[3:] *= 1000  # would dominate if the wrong channels were used
    rgb = render_rgb(maps, normalization="channel")
    assert rgb.shape == (5, 5, 3) and rgb.dtype == np.uint8 and rgb.flags["C_CONTIGUOUS"]
    for c in range(3):
        assert np.array_equal(rgb[..., c], render_channel(maps[c])[0])
    picked = render_rgb(maps[:3], channels=(2, 0, 1), normalization="layer")
    for slot, c in enumerate((2, 0, 1)):
        assert np.array_equal(picked[..., slot], render_channel(maps[c], "layer", layer=maps[:3])[0])


def test_render_rgb_pads_missing_channels_with_zeros():
    rgb = render_rgb(torch.rand(2, 4, 4))
    assert rgb.shape == (4, 4, 3) and (rgb[..., 2] == 0).all() and rgb[..., :2].max() == 255


def test_render_batch_channel_picks_that_channel_of_every_item(device):
    torch.manual_seed(5)
    output = torch.randn(4, 5, 6, 6, device=device)
    grid = render_batch_channel(output, 3)
    assert grid.layout.count == 4
    for n in range(4):
        assert np.array_equal(tile(grid, n), render_channel(output[n, 3])[0])
    with pytest.raises(IndexError):
        render_batch_channel(output, 5)


def test_render_input_image_clamps_without_normalising(device):
    x = torch.tensor([[[0.0, 0.5, 1.0, 2.0]], [[-1.0, 0.25, 0.0, 1.0]], [[1.0, 1.0, 1.0, 1.0]]], device=device)
    rgb = render_input_image(x)
    assert rgb.shape == (1, 4, 3) and rgb.dtype == np.uint8
    assert list(rgb[0, :, 0]) == [0, 128, 255, 255]
    assert list(rgb[0, :, 1]) == [0, 64, 0, 255]
    gray = render_input_image(x[:1] * 0.5)
    assert gray.shape == (1, 4) and list(gray[0]) == [0, 64, 128, 255]


# --------------------------------------------------------------------------- colormaps


def test_colormap_tables():
    assert {"gray", "viridis", DIVERGING} <= set(colormap_names())
    assert "coolwarm" in COLORMAPS and "coolwarm" not in colormap_names()
    for lut in COLORMAPS.values():
        assert lut.shape == (256, 3) and lut.dtype == np.uint8
    assert np.array_equal(COLORMAPS["gray"][:, 0], np.arange(256))


@pytest.mark.parametrize("name, index, hex_colour", [
    # matplotlib's own values (cm.get_cmap(name)(index / 255), rounded)
    ("viridis", 0, "440154"), ("viridis", 64, "3b528b"), ("viridis", 128, "21918c"),
    ("viridis", 192, "5ec962"), ("viridis", 255, "fde725"),
    ("magma", 0, "000004"), ("magma", 128, "b73779"), ("magma", 255, "fcfdbf"),
    ("diverging", 0, "3b4cc0"), ("diverging", 255, "b40426"),
])
def test_colormaps_match_matplotlib(name, index, hex_colour):
    expected = np.frombuffer(bytes.fromhex(hex_colour), dtype=np.uint8)
    assert np.abs(COLORMAPS[name][index].astype(int) - expected).max() <= 1


def test_diverging_is_light_in_the_middle():
    middle = COLORMAPS[DIVERGING][127:129].astype(int)
    assert middle.min() > 200 and np.ptp(middle) < 8


def test_apply_colormap():
    gray = np.array([[0, 255], [128, 7]], dtype=np.uint8)
    rgb = apply_colormap(gray, "viridis")
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert list(rgb[0, 0]) == [0x44, 0x01, 0x54] and list(rgb[0, 1]) == [0xFD, 0xE7, 0x25]
    with pytest.raises(KeyError, match="viridis"):
        apply_colormap(gray, "jet")
    with pytest.raises(TypeError):
        apply_colormap(gray.astype(np.float32), "gray")


# --------------------------------------------------------------------------- files


@pytest.mark.parametrize("shape", [(5, 7), (5, 7, 3)])
def test_save_png_round_trips(tmp_path, shape):
    array = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    path = tmp_path / "out.png"
    save_png(array, path)
    assert np.array_equal(np.asarray(Image.open(path)), array)
    assert os.listdir(tmp_path) == ["out.png"]  # the temporary file was renamed, not left behind
    (tmp_path / "plain").write_bytes(b"")
    assert os.stat(path).st_mode & 0o777 == os.stat(tmp_path / "plain").st_mode & 0o777  # not private
    (tmp_path / "plain").unlink()
    save_png(array[::-1].copy(), path)  # overwriting works too
    assert np.array_equal(np.asarray(Image.open(path)), array[::-1])


def test_save_png_refuses_wrong_arrays(tmp_path):
    with pytest.raises(ValueError):
        save_png(np.zeros((4, 4), dtype=np.float32), tmp_path / "x.png")
    assert os.listdir(tmp_path) == []


def test_to_png_array_colours_gray_grids_and_passes_rgb(device):
    grid = render_grid(torch.rand(4, 3, 3, device=device))
    colored = to_png_array(grid, "viridis")
    assert colored.shape == grid.image.shape + (3,)
    assert np.array_equal(colored, COLORMAPS["viridis"][grid.image])
    rgb_grid = type(grid)(np.zeros((2, 2, 3), np.uint8), grid.layout, grid.lows, grid.highs)
    assert to_png_array(rgb_grid, "viridis") is rgb_grid.image


def test_feature_grid_png_writes_the_first_items_channels(tmp_path):
    torch.manual_seed(6)
    output = torch.randn(2, 5, 6, 6)
    path = tmp_path / "conv1.png"
    feature_grid_png(output, path, colormap="viridis")
    written = np.asarray(Image.open(path))
    assert np.array_equal(written, to_png_array(render_grid(output[0], "channel"), "viridis"))
    assert not np.array_equal(written, to_png_array(render_grid(output[1], "channel"), "viridis"))
    with pytest.raises(ValueError):
        feature_grid_png(output[0], path)


def test_grid_for_display_is_shrunk_to_the_pixel_budget_with_full_size_ranges():
    torch.manual_seed(0)
    maps = torch.randn(32, 300, 200)
    full = render_grid(maps)
    small = render_grid(maps, max_pixels=200_000)
    assert full.image.size > 200_000
    assert small.image.size <= 200_000
    assert small.layout.cols == full.layout.cols and small.layout.count == 32
    factor = 300 // small.layout.tile_h
    assert factor >= 2 and small.layout.tile_w == -(-200 // factor)
    # The labels of the colour bar are the full-size ranges, not those of the shrunk pixels.
    np.testing.assert_array_equal(small.lows, full.lows)
    np.testing.assert_array_equal(small.highs, full.highs)
    # Each shrunk pixel is the average of the full-size pixels it covers (area averaging).
    tile0_full = torch.from_numpy(full.image[:300, :200].astype(np.float32))
    expected = torch.nn.functional.interpolate(tile0_full[None, None], size=(small.layout.tile_h, small.layout.tile_w),
                                               mode="area")[0, 0]
    tile0_small = torch.from_numpy(small.image[:small.layout.tile_h, :small.layout.tile_w].astype(np.float32))
    assert (tile0_small - expected).abs().max() <= 1.0


def test_grid_within_the_budget_is_untouched():
    maps = torch.rand(6, 40, 40)
    assert np.array_equal(render_grid(maps, max_pixels=1 << 22).image, render_grid(maps).image)

"""Image loading: formats, conversions, 16-bit, EXIF, resizing, samples and every bad input."""

from __future__ import annotations

import io
import struct
import time
import tracemalloc
import warnings
import zlib

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import functional as TF

from explorer.core import inputs
from explorer.core.inputs import (
    InputBatch,
    InputError,
    adapt_batch,
    image_to_batch,
    list_samples,
    load_image,
    load_image_bytes,
    load_sample,
)


def rgb_pattern(width: int = 6, height: int = 4) -> Image.Image:
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 40, y * 60, (x + y) * 20 + 5], axis=2).astype(np.uint8)
    return Image.fromarray(pixels, mode="RGB")


def save(img: Image.Image, path, fmt: str, **options):
    img.save(path, fmt, **options)
    return path


def assert_user_message(exc: InputError, *fragments: str) -> None:
    text = str(exc)
    assert text and "\n" not in text and "Traceback" not in text and "Error" not in text
    for fragment in fragments:
        assert fragment in text


# --------------------------------------------------------------------------- formats


@pytest.mark.parametrize("fmt, suffix", [("PNG", "png"), ("BMP", "bmp"), ("TIFF", "tif"), ("WEBP", "webp")])
def test_lossless_formats_load_exact_pixels(tmp_path, fmt, suffix):
    img = rgb_pattern()
    options = {"lossless": True} if fmt == "WEBP" else {}
    path = save(img, tmp_path / f"a.{suffix}", fmt, **options)

    batch = load_image(path)

    assert batch.tensor.shape == (1, 3, 4, 6)
    assert batch.tensor.dtype == torch.float32
    assert torch.equal(batch.tensor[0], TF.to_tensor(img))
    assert batch.source == str(path)
    assert batch.labels is None and batch.classes is None and batch.class_names is None


def test_jpeg_loads_like_torchvision(tmp_path):
    path = save(rgb_pattern(16, 8), tmp_path / "a.jpg", "JPEG", quality=95)
    batch = load_image(path)
    assert batch.tensor.shape == (1, 3, 8, 16)
    with Image.open(path) as img:
        assert torch.equal(batch.tensor[0], TF.to_tensor(img.convert("RGB")))


def test_phone_style_mpo_jpeg_uses_first_image():
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (255, 0, 0)).save(buffer, "MPO", save_all=True, append_images=[Image.new("RGB", (8, 8))])
    tensor = load_image_bytes(buffer.getvalue(), "phone.jpg").tensor
    assert tensor.shape == (1, 3, 8, 8) and tensor[0, 0].min() > 0.9


def test_gif_uses_first_frame(tmp_path):
    first = Image.new("L", (5, 3), 200)
    second = Image.new("L", (5, 3), 10)
    path = tmp_path / "anim.gif"
    first.save(path, save_all=True, append_images=[second], duration=100, loop=0)
    with Image.open(path) as img:
        assert img.n_frames == 2

    batch = load_image(path, channels=1)

    assert batch.tensor.shape == (1, 1, 3, 5)
    assert torch.allclose(batch.tensor, torch.full((1, 1, 3, 5), 200 / 255))


def test_gif_with_transparency_loads_without_warnings(tmp_path):
    img = Image.new("P", (4, 4), 1)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    path = tmp_path / "t.gif"
    img.save(path, transparency=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        batch = load_image(path)
    assert torch.allclose(batch.tensor[0, :, 0, 0], torch.tensor([1.0, 0.0, 0.0]))


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "1", "CMYK"])
@pytest.mark.parametrize("channels, target", [(3, "RGB"), (1, "L")])
def test_conversion_matches_torchvision(tmp_path, mode, channels, target):
    img = rgb_pattern(7, 5).convert(mode)
    fmt = "TIFF" if mode == "CMYK" else "PNG"
    path = save(img, tmp_path / f"a.{fmt.lower()}", fmt)

    batch = load_image(path, channels=channels)

    with Image.open(path) as saved:
        expected = TF.to_tensor(saved.convert(target))
    assert batch.tensor.shape == (1, channels, 5, 7)
    assert torch.equal(batch.tensor[0], expected)


def test_values_span_zero_to_one(tmp_path):
    pixels = np.array([[[0, 0, 0], [255, 255, 255]]], dtype=np.uint8)
    path = save(Image.fromarray(pixels), tmp_path / "bw.png", "PNG")
    tensor = load_image(path).tensor
    assert tensor.min() == 0.0 and tensor.max() == 1.0


# --------------------------------------------------------------------------- 16 bit


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16_bit_gray_uses_full_range(tmp_path, fmt):
    pixels = np.array([[0, 32768, 65535, 255]], dtype=np.uint16)
    path = save(Image.fromarray(pixels), tmp_path / f"deep.{fmt.lower()}", fmt)
    with Image.open(path) as img:
        assert img.mode.startswith("I")

    gray = load_image(path, channels=1).tensor
    rgb = load_image(path, channels=3).tensor

    assert gray.shape == (1, 1, 1, 4) and rgb.shape == (1, 3, 1, 4)
    assert gray[0, 0, 0, 0] == 0.0
    assert gray[0, 0, 0, 2] == 1.0
    assert gray[0, 0, 0, 1] == pytest.approx(0.5, abs=1e-4)
    assert gray[0, 0, 0, 3] == pytest.approx(255 / 65535)  # would be 1.0 if clipped to 8 bits
    assert torch.equal(rgb, gray.expand(-1, 3, -1, -1))


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I"])
def test_16_bit_modes_in_memory(mode):
    values = np.array([[0, 65535], [32768, 1000]], dtype=np.uint16)
    if mode == "I;16B":
        img = Image.frombytes(mode, (2, 2), values.astype(">u2").tobytes())
    else:
        img = Image.fromarray(values).convert(mode) if mode == "I" else Image.fromarray(values)
    assert img.mode == mode
    tensor = image_to_batch(img, "mem", channels=1).tensor
    assert torch.allclose(tensor[0, 0], torch.from_numpy(values.astype(np.float32) / 65535))


def test_16_bit_resize_keeps_full_range(tmp_path):
    pixels = np.full((8, 8), 65535, dtype=np.uint16)
    path = save(Image.fromarray(pixels), tmp_path / "deep.png", "PNG")
    tensor = load_image(path, channels=1, size=(4, 2)).tensor
    assert tensor.shape == (1, 1, 4, 2)
    assert torch.allclose(tensor, torch.ones_like(tensor))


# --------------------------------------------------------------------------- EXIF, resize


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    img.paste((0, 0, 255), (0, 0, 10, 20))  # blue on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view"
    path = tmp_path / "phone.jpg"
    img.save(path, "JPEG", exif=exif.tobytes(), quality=95)

    tensor = load_image(path).tensor

    assert tensor.shape == (1, 3, 40, 20)  # rotated: tall, not wide
    top_centre = tensor[0, :, 2, 10]
    assert top_centre[2] > 0.8 and top_centre[0] < 0.2  # the blue side is now on top


def test_resize_matches_pil_bilinear(tmp_path):
    img = rgb_pattern(30, 20)
    path = save(img, tmp_path / "a.png", "PNG")

    tensor = load_image(path, size=(7, 11)).tensor

    expected = TF.to_tensor(img.resize((11, 7), Image.BILINEAR))
    assert tensor.shape == (1, 3, 7, 11)
    assert torch.equal(tensor[0], expected)


def test_load_image_bytes(tmp_path):
    buffer = io.BytesIO()
    rgb_pattern().save(buffer, "PNG")
    batch = load_image_bytes(buffer.getvalue(), "clipboard", channels=1, size=(2, 3))
    assert batch.source == "clipboard"
    assert batch.tensor.shape == (1, 1, 2, 3)


def test_image_to_batch_does_not_change_callers_image():
    img = Image.new("RGB", (4, 2), (10, 20, 30))
    batch = image_to_batch(img, "pil", channels=1, size=(4, 8))
    assert img.mode == "RGB" and img.size == (4, 2)
    assert batch.tensor.shape == (1, 1, 4, 8)


# --------------------------------------------------------------------------- adapt_batch


def test_adapt_batch_grayscale_matches_pil_within_rounding():
    img = rgb_pattern(9, 6)
    batch = InputBatch(TF.to_tensor(img).unsqueeze(0), "x", labels=[3], classes=["cat"], class_names=["a"])

    gray = adapt_batch(batch, channels=1, size=None)

    expected = TF.to_tensor(img.convert("L"))
    assert gray.tensor.shape == (1, 1, 6, 9)
    assert (gray.tensor[0] - expected).abs().max() <= 1 / 255
    assert gray.labels == [3] and gray.classes == ["cat"] and gray.class_names == ["a"] and gray.source == "x"


@pytest.mark.parametrize("size", [(12, 18), (3, 5)])
def test_adapt_batch_resize_matches_pil_within_rounding(size):
    img = rgb_pattern(9, 6)
    batch = InputBatch(TF.to_tensor(img).unsqueeze(0), "x")

    resized = adapt_batch(batch, channels=None, size=size)

    expected = TF.to_tensor(img.resize((size[1], size[0]), Image.BILINEAR))
    assert resized.tensor.shape == (1, 3, *size)
    assert (resized.tensor[0] - expected).abs().max() <= 1.5 / 255


def test_adapt_batch_gray_to_rgb_and_no_op():
    batch = InputBatch(torch.rand(2, 1, 4, 4), "x")
    assert adapt_batch(batch, None, None) is batch
    assert adapt_batch(batch, 1, (4, 4)) is batch
    rgb = adapt_batch(batch, 3, None).tensor
    assert rgb.shape == (2, 3, 4, 4) and torch.equal(rgb[:, 2], batch.tensor[:, 0])


def test_adapt_batch_rejects_bad_channels():
    with pytest.raises(InputError) as info:
        adapt_batch(InputBatch(torch.rand(1, 3, 4, 4), "x"), 2, None)
    assert_user_message(info.value, "2 channels")


# --------------------------------------------------------------------------- bad input


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR claiming a huge image, with a tiny IDAT."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def good_png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda p: p, "does not exist"),
        (lambda p: (p.mkdir(), p)[1], "folder"),
        (lambda p: (p.write_bytes(b""), p)[1], "empty"),
        (lambda p: (p.write_bytes(good_png_bytes()[:200]), p)[1], "truncated or corrupt"),
        (lambda p: (p.write_bytes(good_png_bytes()[:20]), p)[1], "truncated or corrupt"),
        (lambda p: (p.write_bytes(b"this is not an image at all" * 10), p)[1], "not a PNG, JPEG"),
        (lambda p: (p.write_bytes(png_header_only(100_000, 100_000)), p)[1], "more than the limit"),
        (lambda p: (p.write_bytes(png_header_only(9000, 9000)), p)[1], "9000 x 9000 pixels"),
    ],
    ids=["missing", "directory", "empty", "truncated", "truncated-header", "garbage", "bomb", "over-limit"],
)
def test_bad_files_give_one_sentence(tmp_path, make, fragment):
    path = make(tmp_path / "bad.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning or anything else on the console
        with pytest.raises(InputError) as info:
            load_image(path)
    assert_user_message(info.value, "'bad.png'", fragment)
    # No chained Pillow/OS exception that a UI printing the error might dump as well.
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__


def test_unsupported_format_is_refused(tmp_path):
    path = tmp_path / "icon.ico"
    Image.new("RGB", (16, 16)).save(path, "ICO")
    with pytest.raises(InputError) as info:
        load_image(path)
    assert_user_message(info.value, "'icon.ico'", "not a PNG, JPEG, BMP, GIF, TIFF or WebP image")


def test_decompression_bomb_is_refused_fast_and_small(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(60_000, 60_000))  # 3.6 gigapixels claimed in ~100 bytes
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(InputError):
        load_image(path)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elapsed < 1.0
    assert peak < 5_000_000


def test_oversized_image_is_never_decoded(tmp_path, monkeypatch):
    from PIL import ImageFile

    def must_not_decode(self):
        raise AssertionError("decoded an oversized image")

    monkeypatch.setattr(ImageFile.ImageFile, "load", must_not_decode)
    path = tmp_path / "big.png"
    path.write_bytes(png_header_only(9000, 9000))  # under Pillow's limits, over ours
    with pytest.raises(InputError) as info:
        load_image(path)
    assert_user_message(info.value, "9000 x 9000 pixels", "64,000,000")


def test_own_limit_applies_below_pillows(tmp_path):
    path = tmp_path / "big.png"
    path.write_bytes(png_header_only(300, 300))
    with pytest.raises(InputError) as info:
        load_image(path, max_pixels=10_000)
    assert_user_message(info.value, "300 x 300 pixels", "10,000")


def test_bad_bytes_name_the_source():
    with pytest.raises(InputError) as info:
        load_image_bytes(b"", "clipboard")
    assert_user_message(info.value, "'clipboard'", "empty")
    with pytest.raises(InputError) as info:
        load_image_bytes(good_png_bytes()[:300], "dropped.png")
    assert_user_message(info.value, "'dropped.png'", "truncated or corrupt")


@pytest.mark.parametrize("channels", [0, 2, 4])
def test_bad_channel_count(tmp_path, channels):
    path = save(rgb_pattern(), tmp_path / "a.png", "PNG")
    with pytest.raises(InputError) as info:
        load_image(path, channels=channels)
    assert_user_message(info.value, "'a.png'", f"{channels} channels", "1 (grayscale) or 3 (RGB)")


@pytest.mark.parametrize("size", [(0, 4), (4,), (2.5, 3), "big", (-1, 3)])
def test_bad_size(tmp_path, size):
    path = save(rgb_pattern(), tmp_path / "a.png", "PNG")
    with pytest.raises(InputError) as info:
        load_image(path, size=size)
    assert_user_message(info.value, "'a.png'", "two positive whole numbers")


# --------------------------------------------------------------------------- samples


def test_list_samples_has_the_promised_ones():
    samples = dict(list_samples())
    assert {"astronaut", "x", "o", "x_shifted", "edges"} <= samples.keys()
    assert all(isinstance(d, str) and d and "\n" not in d for d in samples.values())


@pytest.mark.parametrize("name", [name for name, _ in list_samples()])
def test_every_sample_loads(name):
    batch = load_sample(name)
    assert batch.source == f"sample:{name}"
    assert batch.tensor.ndim == 4 and batch.tensor.shape[:2] == (1, 3)
    assert 0.0 <= batch.tensor.min() and batch.tensor.max() <= 1.0
    assert load_sample(name, channels=1, size=(16, 16)).tensor.shape == (1, 1, 16, 16)


def test_x_and_o_are_exact_9x9_patterns():
    x = load_sample("x", channels=1).tensor[0, 0]
    o = load_sample("o", channels=1).tensor[0, 0]
    assert x.shape == o.shape == (9, 9)
    assert set(x.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(x, x.flip(1)) and torch.equal(x, x.t())  # symmetric diagonals
    assert x[4, 4] == 1.0 and o[4, 4] == 0.0
    assert x.diagonal()[1:-1].eq(1).all()


def test_sample_files_stay_small():
    from explorer.core.resources import resource_path

    for entry in inputs._sample_entries():
        assert resource_path("samples", entry["file"]).stat().st_size < 300_000


def test_unknown_sample_lists_known_names():
    with pytest.raises(InputError) as info:
        load_sample("zebra")
    assert_user_message(info.value, "'zebra'", "astronaut", "edges")

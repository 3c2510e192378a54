"""Turns images (files, bytes, bundled samples) into the float tensors the layers see.

Everything here follows what torchvision tutorials do -- ``Image.open(p).convert("RGB")``,
``resize`` with bilinear filtering, ``to_tensor`` -- so what the user sees in the explorer is
what the same image would look like in their own training code.  Every failure becomes an
``InputError`` whose text is one sentence a user can act on.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from explorer.core.layers import show
from explorer.core.resources import resource_path
from explorer.core.stack import DEFAULT_MAX_PIXELS    # shared with a stack's input size; re-exported


class InputError(Exception):
    """A problem with user input; ``str(e)`` is one sentence meant for the user."""


@dataclass
class InputBatch:
    tensor: torch.Tensor  # float32, CPU, [N, C, H, W], values in [0, 1]
    source: str  # human readable: a file path, "sample:astronaut", "CIFAR-10 test batch 0 (/path)"
    labels: list[int] | None = None  # CIFAR only: label per image
    classes: list[str] | None = None  # CIFAR only: class name per image
    class_names: list[str] | None = None  # CIFAR only: all label names
    # Item index -> the input panel's uint8 picture of it, made where the batch is loaded (a worker):
    # its cost grows with the image (up to 64 MP), so the GUI thread must not make it.
    previews: dict[int, np.ndarray] = field(default_factory=dict, compare=False, repr=False)


# Deliberately limited to the everyday formats: every extra Pillow plugin is more parser
# surface for files the user may have been sent.  JPEG includes MPO (most phone photos).
SUPPORTED_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP")
_FORMATS_IN_WORDS = "PNG, JPEG, BMP, GIF, TIFF or WebP"

# Magic numbers of the supported formats: a file that starts like one of them but cannot
# be identified is damaged, not of the wrong kind, and deserves that message instead.
_SIGNATURES = (b"\x89PNG", b"\xff\xd8\xff", b"BM", b"GIF87a", b"GIF89a", b"II*\x00", b"MM\x00*")

# Pillow reads these as 16 (or 32) bit integers; ``convert("L")`` would clip them at 255,
# turning nearly every pixel white, so they are scaled by the full 16-bit range instead.
_WIDE_INTEGER_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}

# ITU-R 601-2 luma, the weights Pillow's ``convert("L")`` uses.
_LUMA_WEIGHTS = (0.299, 0.587, 0.114)

_EXIF_ORIENTATION = 0x0112


# --------------------------------------------------------------------------- loading


def load_image(
    path: str | os.PathLike,
    channels: int = 3,
    size: tuple[int, int] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> InputBatch:
    """Load one image file as a [1, C, H, W] batch (first frame of animations)."""
    path = Path(path)
    name = path.name or str(path)
    _check_channels(channels, name)
    _check_size(size, name)
    if path.is_dir():
        raise InputError(f"Cannot read image '{name}': it is a folder, not an image file.")
    try:
        with open(path, "rb") as fp:
            if os.fstat(fp.fileno()).st_size == 0:
                raise InputError(f"Cannot read image '{name}': the file is empty.")
            return _decode(fp, name, "file", str(path), channels, size, max_pixels)
    except FileNotFoundError:
        raise InputError(f"Cannot read image '{name}': the file does not exist.") from None
    except PermissionError:
        raise InputError(f"Cannot read image '{name}': permission to read it was denied.") from None
    except OSError as exc:  # only the open()/fstat() above; decoding errors are handled in _decode
        reason = exc.strerror or "the file could not be opened"
        raise InputError(f"Cannot read image '{name}': {reason[0].lower()}{reason[1:]}.") from None


def load_image_bytes(
    data: bytes,
    source: str,
    channels: int = 3,
    size: tuple[int, int] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> InputBatch:
    """Load an image from memory (clipboard, drag and drop); ``source`` names it in messages."""
    _check_channels(channels, source)
    _check_size(size, source)
    if not data:
        raise InputError(f"Cannot read image '{source}': the data is empty.")
    return _decode(io.BytesIO(data), source, "data", source, channels, size, max_pixels)


def image_to_batch(
    img: Image.Image,
    source: str,
    channels: int = 3,
    size: tuple[int, int] | None = None,
) -> InputBatch:
    """Convert an already opened PIL image the way a torchvision tutorial would."""
    _check_channels(channels, source)
    _check_size(size, source)
    img = _apply_exif_orientation(img)
    if img.mode in _WIDE_INTEGER_MODES:
        array = _wide_integer_to_unit(img, channels, size)
    else:
        array = _to_unit(_convert(img, channels, source), size)
    return InputBatch(tensor=_hwc_to_batch(array), source=source)


def adapt_batch(
    batch: InputBatch,
    channels: int | None,
    size: tuple[int, int] | None,
) -> InputBatch:
    """Change channel count and/or spatial size of a batch; labels and source are kept.

    Grayscale uses Pillow's "L" weights and resizing is bilinear with antialiasing, which is
    how torch reproduces Pillow's ``resize(BILINEAR)``; results agree with loading the image
    that way to within rounding (Pillow rounds to 8 bits after each step).
    """
    tensor = batch.tensor
    if channels is not None:
        _check_channels(channels, batch.source)
        tensor = _match_channels(tensor, channels, batch.source)
    if size is not None:
        _check_size(size, batch.source)
        if tuple(tensor.shape[-2:]) != tuple(size):
            tensor = F.interpolate(
                tensor, size=tuple(size), mode="bilinear", align_corners=False, antialias=True
            )
            # Bilinear weights are non-negative, but float rounding can step just outside [0, 1].
            tensor = tensor.clamp_(0.0, 1.0)
    if tensor is batch.tensor:
        return batch
    return dataclasses.replace(batch, tensor=tensor.contiguous())


# --------------------------------------------------------------------------- samples


def list_samples() -> list[tuple[str, str]]:
    """(name, one-line description) of every bundled sample, in display order."""
    return [(entry["name"], entry["description"]) for entry in _sample_entries()]


def load_sample(name: str, channels: int = 3, size: tuple[int, int] | None = None) -> InputBatch:
    entries = {entry["name"]: entry for entry in _sample_entries()}
    if name not in entries:
        known = ", ".join(entries)
        raise InputError(f"There is no sample called '{name}'; the samples are: {known}.")
    batch = load_image(resource_path("samples", entries[name]["file"]), channels=channels, size=size)
    return dataclasses.replace(batch, source=f"sample:{name}")


def _sample_entries() -> list[dict]:
    index = resource_path("samples", "samples.json")
    try:
        entries = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise InputError(f"The list of sample images '{index}' is missing or damaged.") from None
    return [e for e in entries if isinstance(e, dict) and {"name", "file", "description"} <= e.keys()]


# --------------------------------------------------------------------------- decoding


def _decode(
    fp: BinaryIO,
    name: str,
    noun: str,
    source: str,
    channels: int,
    size: tuple[int, int] | None,
    max_pixels: int,
) -> InputBatch:
    # Pillow warns (and past twice its own limit refuses) about huge images; the check below
    # is the one that decides, so the warning would only be noise on the console.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        img = _open_header(fp, name, noun, max_pixels)
        _refuse_if_too_large(img, name, max_pixels)
        try:
            img.load()
        except Image.DecompressionBombError:  # raised by some plugins for later frames/tiles
            raise InputError(_too_large_message(name, None, max_pixels)) from None
        except MemoryError:
            raise InputError(f"Cannot read image '{name}': there is not enough memory to decode it.") from None
        except Exception:
            # Pillow's plugins report damaged data with many exception types (OSError,
            # SyntaxError, ValueError, struct.error, zlib.error, ...); to the user it is one case.
            raise InputError(f"Cannot read image '{name}': the {noun} is truncated or corrupt.") from None
    try:
        return image_to_batch(img, source, channels, size)
    except MemoryError:
        raise InputError(f"Cannot load image '{name}': there is not enough memory to convert it.") from None


def _open_header(fp: BinaryIO, name: str, noun: str, max_pixels: int) -> Image.Image:
    """``Image.open`` only parses the header, so nothing large is allocated yet."""
    try:
        return Image.open(fp, formats=SUPPORTED_FORMATS)
    except Image.DecompressionBombError:
        raise InputError(_too_large_message(name, None, max_pixels)) from None
    except UnidentifiedImageError:
        fp.seek(0)
        if _looks_like_supported_image(fp.read(16)):
            raise InputError(f"Cannot read image '{name}': the {noun} is truncated or corrupt.") from None
        raise InputError(f"Cannot read image '{name}': it is not a {_FORMATS_IN_WORDS} image.") from None
    except Exception:
        raise InputError(f"Cannot read image '{name}': the {noun} is truncated or corrupt.") from None


def _looks_like_supported_image(head: bytes) -> bool:
    is_webp = head[:4] == b"RIFF" and head[8:12] == b"WEBP"
    return is_webp or head.startswith(_SIGNATURES)


def _refuse_if_too_large(img: Image.Image, name: str, max_pixels: int) -> None:
    width, height = img.size
    if width * height > max_pixels:
        raise InputError(_too_large_message(name, (width, height), max_pixels))


def _too_large_message(name: str, dims: tuple[int, int] | None, max_pixels: int) -> str:
    what = f"{dims[0]} x {dims[1]} pixels" if dims else "too many pixels"
    return f"Cannot load image '{name}': it has {what}, more than the limit of {max_pixels:,} pixels."


def _check_channels(channels: int, name: str) -> None:
    if channels not in (1, 3):
        raise InputError(
            f"Cannot load '{name}' with {channels} channels: choose 1 (grayscale) or 3 (RGB)."
        )


def _check_size(size: tuple[int, int] | None, name: str) -> None:
    if size is None:
        return
    valid = (
        isinstance(size, (tuple, list))
        and len(size) == 2
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in size)
    )
    if not valid:
        raise InputError(
            f"Cannot resize '{name}' to {show(size)}: the size must be two positive whole numbers (height, width)."
        )
    if int(size[0]) * int(size[1]) > DEFAULT_MAX_PIXELS:   # the limit a loaded image has, so a resize cannot evade it
        raise InputError(
            f"Cannot resize '{name}' to {int(size[0])} x {int(size[1])}: that is more than the limit of "
            f"{DEFAULT_MAX_PIXELS:,} pixels."
        )


# --------------------------------------------------------------------------- conversion


def _apply_exif_orientation(img: Image.Image) -> Image.Image:
    # Cameras store pixels unrotated plus an orientation tag; viewers (and the user's
    # expectation) honour the tag.  Only transpose when needed: exif_transpose copies.
    try:
        orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # damaged EXIF should not stop the pixels from loading
        return img
    if orientation in (None, 1):
        return img
    try:
        return ImageOps.exif_transpose(img)
    except Exception:
        return img


def _convert(img: Image.Image, channels: int, source: str) -> Image.Image:
    target = "L" if channels == 1 else "RGB"
    if img.mode == target:
        return img
    try:
        return img.convert(target)
    except ValueError:
        raise InputError(
            f"Cannot read image '{source}': its colour mode {img.mode} cannot be converted to {target}."
        ) from None


def _to_unit(img: Image.Image, size: tuple[int, int] | None) -> np.ndarray:
    if size is not None and img.size != (size[1], size[0]):
        img = img.resize((size[1], size[0]), Image.BILINEAR)
    # float32 division by 255, exactly what torchvision's to_tensor does.
    return np.asarray(img, dtype=np.float32) / np.float32(255)


def _wide_integer_to_unit(img: Image.Image, channels: int, size: tuple[int, int] | None) -> np.ndarray:
    unit = np.asarray(img).astype(np.float32) / np.float32(65535)
    np.clip(unit, 0.0, 1.0, out=unit)
    if size is not None and unit.shape != tuple(size):
        # Mode "F" keeps full precision through Pillow's resize.
        resized = Image.fromarray(unit, mode="F").resize((size[1], size[0]), Image.BILINEAR)
        unit = np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)
    if channels == 3:
        unit = np.repeat(unit[:, :, None], 3, axis=2)  # as convert("RGB") does for gray
    return unit


def _hwc_to_batch(array: np.ndarray) -> torch.Tensor:
    if array.ndim == 2:
        array = array[:, :, None]
    chw = np.ascontiguousarray(array.transpose(2, 0, 1), dtype=np.float32)
    return torch.from_numpy(chw).unsqueeze(0)


def to_gray(tensor: torch.Tensor) -> torch.Tensor:
    """RGB images [N, 3, H, W] in 0..1 → [N, 1, H, W] with Pillow's convert("L") weights."""
    weights = torch.tensor(_LUMA_WEIGHTS, dtype=tensor.dtype, device=tensor.device).view(1, 3, 1, 1)
    return (tensor * weights).sum(dim=1, keepdim=True).clamp_(0.0, 1.0)


def _match_channels(tensor: torch.Tensor, channels: int, source: str) -> torch.Tensor:
    have = tensor.shape[1]
    if have == channels:
        return tensor
    if have == 3 and channels == 1:
        return to_gray(tensor)
    if have == 1 and channels == 3:
        return tensor.expand(-1, 3, -1, -1)
    raise InputError(f"Cannot turn the {have}-channel images of '{source}' into {channels}-channel images.")

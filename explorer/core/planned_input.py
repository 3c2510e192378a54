"""The input shape a stack will get, known before the input is decoded and without torch.

The window's first view (explorer/ui/startup.py) shows the stack's shapes while torch is still
loading, so it cannot decode the input (explorer.core.inputs needs torch). The shape follows from
the stack's input spec and, where that gives no size, from the image's header: Pillow's
``Image.open`` reads only the header. The rules are those of explorer.core.inputs: channels are the
spec's (else 3), the size is the spec's (else the image's, turned as its EXIF orientation says),
and a CIFAR-10 batch is batch_size x C x 32 x 32."""

from __future__ import annotations

import json
from pathlib import Path

from explorer.core.resources import resource_path
from explorer.core.stack import InputSpec

CIFAR_SIZE = (32, 32)
_TURNED = {5, 6, 7, 8}          # EXIF orientations that swap width and height
_EXIF_ORIENTATION = 0x0112


def sample_file(name: str) -> Path | None:
    try:
        entries = json.loads(resource_path("samples", "samples.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for entry in entries:
        if isinstance(entry, dict) and entry.get("name") == name and isinstance(entry.get("file"), str):
            return resource_path("samples", entry["file"])
    return None


def header_size(path: str | Path) -> tuple[int, int] | None:
    """(height, width) of the image as explorer.core.inputs will load it, from its header only;
    None when the file cannot be read (the real loader then says why)."""
    try:
        from PIL import Image
        with Image.open(path) as img:
            width, height = img.size
            if img.getexif().get(_EXIF_ORIENTATION) in _TURNED:
                width, height = height, width
    except Exception:  # noqa: BLE001 - any unreadable file: no shape yet, the real loader reports it
        return None
    return (height, width)


def planned_input_shape(spec: InputSpec, kind: str = "sample", where: str | None = "astronaut",
                        batch_size: int = 1) -> tuple[int, int, int, int] | None:
    """The [N, C, H, W] the stack will run on: ``kind`` is 'sample' (``where`` its name), 'image'
    (``where`` its path) or 'cifar' (``batch_size`` images); None when it cannot be known yet."""
    channels = spec.channels or 3
    if kind == "cifar":
        return (batch_size, channels, *CIFAR_SIZE)
    if spec.size is not None:
        return (1, channels, *spec.size)
    path = sample_file(where) if kind == "sample" else where
    size = header_size(path) if path is not None else None
    return None if size is None else (1, channels, *size)

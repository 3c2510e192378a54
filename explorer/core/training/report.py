"""What a training run leaves behind: history.json, confusion.json and kernel pictures."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from explorer.core.colormaps import DIVERGING, apply_colormap
from explorer.core.render import save_png
from explorer.core.stack import Stack, atomic_write_text
from explorer.core.training.datasets import Dataset
from explorer.core.training.trainer import EpochRecord, Evaluation, TrainSettings

KERNEL_ZOOM = 8     # a 5x5 kernel becomes 40x40 pixels: small kernels are unreadable at 1:1
GAP_VALUE = 96     # dark gray between tiles: zero itself is light gray in the diverging map


def first_conv(stack: Stack) -> str | None:
    """The name of the first enabled Conv2d (a layer with [filter, input, kH, kW] kernels), whose
    kernels are the ones worth watching."""
    return next((s.name for s in stack.layers if s.enabled and s.layer_type.weight_layout == "filters"), None)


def kernel_mosaic(weight: torch.Tensor, zoom: int = KERNEL_ZOOM) -> np.ndarray:
    """[filters, inputs, kH, kW] → RGB uint8: one row per filter and one column per input channel
    (filters of a one-channel layer wrap into a near-square grid), blue negative, light gray zero,
    red positive, on one scale for the whole layer."""
    w = weight.detach().to("cpu", torch.float32)
    f, c, kh, kw = w.shape
    peak = float(w.abs().max()) or 1.0
    levels = (w / peak * 127.5 + 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    if c == 1:
        cols = math.ceil(math.sqrt(f))
        rows = math.ceil(f / cols)
        cells = [(i // cols, i % cols, i, 0) for i in range(f)]
    else:
        rows, cols = f, c
        cells = [(i, j, i, j) for i in range(f) for j in range(c)]
    tile_h, tile_w = kh * zoom, kw * zoom
    canvas = np.zeros((rows * (tile_h + 1) - 1, cols * (tile_w + 1) - 1), dtype=np.uint8)
    gap = np.ones_like(canvas, dtype=bool)
    for r, col, i, j in cells:
        y, x = r * (tile_h + 1), col * (tile_w + 1)
        canvas[y:y + tile_h, x:x + tile_w] = np.kron(levels[i, j], np.ones((zoom, zoom), dtype=np.uint8))
        gap[y:y + tile_h, x:x + tile_w] = False
    rgb = apply_colormap(canvas, DIVERGING)
    rgb[gap] = GAP_VALUE
    return rgb


def save_kernels_png(weight: torch.Tensor, path) -> None:
    save_png(kernel_mosaic(weight), path)


def history_json(data: Dataset, epochs: list[EpochRecord], settings: TrainSettings, status: str,
                 message: str, notes: list[str]) -> dict:
    return {
        "data": data.source or data.name,
        "classes": list(data.classes),
        "epochs": [e.to_json() for e in epochs],
        "status": status,
        "message": message,
        "notes": list(notes),
        "settings": {"optimizer": settings.optimizer, "lr": settings.lr, "momentum": settings.momentum,
                     "weight_decay": settings.weight_decay, "batch_size": settings.batch_size,
                     "epochs": settings.epochs, "schedule": settings.schedule, "augment": settings.augment,
                     "seed": settings.seed},
    }


def confusion_json(data: Dataset, evaluation: Evaluation) -> dict:
    return {"classes": list(data.classes), "matrix": evaluation.confusion.tolist(),
            "per_class_accuracy": evaluation.per_class, "accuracy": evaluation.accuracy}


def write_json(path: Path, value: dict) -> None:
    atomic_write_text(path, json.dumps(value, indent=2) + "\n")

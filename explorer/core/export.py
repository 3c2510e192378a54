"""Writes a run to a folder: the input, every layer's full output (.npy), a picture of every 4-D
output (.png, all channels of the first batch item) and summary.json. Used by ``run`` and by the
window's 'Export all layers'."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from explorer.core.engine import RunResult
from explorer.core.inputs import InputBatch
from explorer.core.render import feature_grid_png
from explorer.core.stack import atomic_write_text


def safe_file_stem(index: int, name: str) -> str:
    """'00_conv1': the index keeps files in layer order; odd characters in names become '_'."""
    return f"{index:02d}_{re.sub(r'[^A-Za-z0-9_.-]+', '_', name).strip('.') or 'layer'}"


def _save_npy(tensor: torch.Tensor, path: Path) -> None:
    np.save(path, tensor.detach().to("cpu", torch.float32).numpy())


def _shape(shape) -> list[int] | None:
    return list(shape) if shape is not None else None


def export_run(result: RunResult, batch: InputBatch, out_dir: str | Path, colormap: str = "gray") -> dict[str, Any]:
    """Writes everything and returns the summary it wrote. Layers after a failed one are not listed."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _save_npy(batch.tensor, out / "input.npy")
    summary_input: dict[str, Any] = {"source": batch.source, "shape": list(batch.tensor.shape)}
    if batch.labels is not None:
        summary_input["labels"] = list(batch.labels)
        summary_input["classes"] = list(batch.classes or [])
    layers = []
    for r in result.layers:
        entry: dict[str, Any] = {
            "index": r.index, "name": r.name, "type": r.type, "enabled": r.enabled,
            "input_shape": _shape(r.input_shape) if r.error is None else None,
            "output_shape": _shape(r.output_shape), "params": r.params, "seconds": round(r.seconds, 6),
            "file": None, "image": None, "error": r.error,
        }
        if r.error is None and r.output is not None:
            stem = safe_file_stem(r.index, r.name)
            _save_npy(r.output, out / f"{stem}.npy")
            entry["file"] = f"{stem}.npy"
            if r.output.dim() == 4:
                feature_grid_png(r.output, out / f"{stem}.png", colormap=colormap)
                entry["image"] = f"{stem}.png"
        layers.append(entry)
    summary = {"input": summary_input, "device": str(result.device), "layers": layers}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary

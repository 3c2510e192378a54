"""The ``walkthrough`` command's files: summary.json (its keys are a contract, see
tests/core/test_cli_walkthrough.py) and one PNG grid per stage with a 4-D output."""

from __future__ import annotations

import torch

from explorer.core.model_zoo import check_name
from explorer.core.walkthrough.preprocess import prepare_input
from explorer.core.walkthrough.records import Stage, Walkthrough, WalkthroughError


def stage_image_name(position: int, stage: Stage) -> str:
    """'00_features.0.png': the position in summary.json and the stage's name."""
    from explorer.core.export import safe_file_stem
    return safe_file_stem(position, stage.name) + ".png"


def summary(w: Walkthrough, error: str | None = None) -> dict:
    """summary.json as the ``walkthrough`` command writes it. Stages start at the first layer (the
    input is ``input_shape``); ``image`` names the PNG grid of a 4-D output, else null; ``top5``
    only with real weights."""
    stages = []
    for position, stage in enumerate(w.stages[1:]):
        stages.append({
            "index": position, "name": stage.name, "title": stage.title,
            "output_shape": list(stage.output_shape), "params": stage.params,
            "total_params": stage.total_params, "macs": stage.macs,
            "receptive_field": stage.receptive_field,
            "image": stage_image_name(position, stage) if len(stage.output_shape) == 4 else None,
        })
    out = {"model": w.model_name, "weights": w.weights, "input_shape": list(w.model_input.shape),
           "stages": stages, "total_params": w.total_params}
    top = w.top5()
    if top is not None:
        out["top5"] = [{"class": name, "probability": round(p, 6)} for name, p in top]
    if error is not None:
        out["error"] = error
    return out


def export_walkthrough(w: Walkthrough, out_dir, colormap: str = "gray", error: str | None = None) -> dict:
    """Writes DIR/summary.json and one PNG grid (all channels, each to its own range) per stage
    with a 4-D output; returns the summary."""
    import json
    from pathlib import Path

    from explorer.core.render import feature_grid_png
    from explorer.core.stack import atomic_write_text

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = summary(w, error)
    for entry, output in zip(data["stages"], w.outputs[1:]):
        if entry["image"] is not None:
            feature_grid_png(output, out_dir / entry["image"], colormap)
    atomic_write_text(out_dir / "summary.json", json.dumps(data, indent=2) + "\n")
    return data


def partial_walkthrough(model_name: str, error: WalkthroughError, weights_label: str, image: torch.Tensor) -> Walkthrough:
    """The stages that ran before a failure, as a Walkthrough (no probabilities), for the summary."""
    raw, normalized = prepare_input(model_name, image.detach().to("cpu"))
    stages = error.stages or []
    outputs = error.outputs or []
    model_input = outputs[0] if outputs else normalized
    return Walkthrough(check_name(model_name), str(weights_label), weights_label == "random", raw, model_input,
                       stages, outputs, None, None, model_input.device, None)

#!/usr/bin/env python
"""Real screenshots of the Insight window (offscreen ``QWidget.grab()``):

* ``insight_top_patches.png``: the hand-set X-vs-O template matcher (``x_vs_o``), its three diagonal /
  cross templates after ReLU over the built-in samples: which pictures each template finds, where;
* ``insight_feature_vis.png``: the patterns four hand-set detectors (vertical and horizontal edge,
  diagonal line, centre-surround spot) want, by activation maximisation on a 64×64 gray input;
* ``insight_gradcam.png``: Grad-CAM at VGG-16's last convolution on the astronaut, beside the next
  class; with ``--weights imagenet`` when torchvision's file is in the torch cache, else random
  weights (and the picture says so).

    python tests/benchmarks/take_insight_screenshots.py                 # into resources/screenshots/
    python tests/benchmarks/take_insight_screenshots.py --out /tmp/shots --weights imagenet

Not a test: pytest does not collect this file."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))     # this checkout's explorer, not an installed one
sys.path.insert(0, str(Path(__file__).resolve().parent))
from take_screenshots import DEFAULT_OUT, make_app, wait_events  # noqa: E402  (same folder)


def grab(widget, path: Path) -> None:
    widget.grab().save(str(path))
    print(f"wrote {path} ({path.stat().st_size // 1024} KB)")


def edge_stack():
    """Four hand-set 3×3 detectors (vertical edge, horizontal edge, diagonal line, centre-surround
    spot) and a ReLU on a 64×64 gray input: patterns whose preferred stimulus everyone can check."""
    import torch

    from explorer.core.layers import LayerSpec
    from explorer.core.stack import InputSpec, Stack
    edge = torch.tensor([[-1.0, 0.0, 1.0]] * 3)
    diagonal = torch.full((3, 3), -0.5) + 1.5 * torch.eye(3)
    spot = torch.full((3, 3), -1.0)
    spot[1, 1] = 8.0
    weight = torch.stack([edge, edge.T, diagonal, spot])[:, None]
    return Stack([LayerSpec("Conv2d", "detectors", {"in_channels": 1, "out_channels": 4, "kernel_size": 3},
                            {"weight": weight, "bias": torch.zeros(4)}),
                  LayerSpec("ReLU", "relu")], input=InputSpec(1, (64, 64)),
                 description="hand-set edge, line and spot detectors")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--weights", default="random", help="VGG-16 weights for Grad-CAM: random or imagenet")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    app = make_app()

    from explorer.core.examples import load_example
    from explorer.core.inputs import load_sample
    from explorer.ui.insight.window import InsightWindow

    w = InsightWindow(load_example("x_vs_o"), "relu1", load_sample("x").tensor, "x_vs_o", "cpu")
    w.resize(1000, 520)
    w.show()
    w.data_combo.setCurrentIndex(0)
    w.k_spin.setValue(6)
    w.run_top_patches()
    assert w.worker.wait_until_idle(60_000), "top patches did not finish"
    best = w.rows.result.by_maximum()[0]
    from explorer.ui.insight.window import PatchLabel
    label = next(lbl for lbl in w.rows_widget.findChildren(PatchLabel) if lbl.channel == best.channel and lbl.rank == 0)
    label.hovered.emit(best.channel, 0)
    wait_events(200)
    grab(w, args.out / "insight_top_patches.png")

    w.set_stack(edge_stack(), "relu")
    w.tabs.setCurrentIndex(1)
    w.channels_edit.setText("0-3")
    w.steps_spin.setValue(256)
    w.run_visualize()
    assert w.worker.wait_until_idle(120_000), "feature visualisation did not finish"
    wait_events(200)
    grab(w, args.out / "insight_feature_vis.png")
    w.close()

    from explorer.core.model_zoo import build_model
    from explorer.core.walkthrough import capture
    from explorer.core.weights import load_weights
    model = build_model("vgg16")
    label = load_weights(model, args.weights, "vgg16")
    walk = capture("vgg16", model, load_sample("astronaut").tensor, "cpu", label)
    v = InsightWindow.for_walkthrough(walk, "features.28")
    v.resize(1100, 520)
    v.show()
    v.tabs.setCurrentIndex(2)
    v.method_combo.setCurrentText("grad-cam")
    v.compare_check.setChecked(True)
    v.run_attribution()
    assert v.worker.wait_until_idle(300_000), "Grad-CAM did not finish"
    wait_events(200)
    grab(v, args.out / "insight_gradcam.png")
    v.close()
    app.processEvents()
    return 0


if __name__ == "__main__":
    sys.exit(main())

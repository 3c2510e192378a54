"""Attribution: which input pixels made the network give a class its score. The methods come from
Captum (PyTorch's own interpretability library) rather than being written again:

- saliency (Simonyan et al. 2014): |∂score/∂pixel|, the largest over colour channels;
- integrated gradients (Sundararajan et al. 2017): gradients summed along the straight path from a
  black image to the input, times (input − black); summed over colour channels (signed);
- guided backpropagation (Springenberg et al. 2015): gradients with negative values stopped at
  every ReLU on the way back; the largest |value| over colour channels;
- Grad-CAM (Selvaraju et al. 2017) at a convolution (default: the last one): the channels weighted
  by their mean gradient, ReLU'd, upsampled bilinearly to the input's size;
- occlusion (Zeiler & Fergus 2014): how much the score drops when a gray square hides each place.

Every map is float32 H×W over the model input (as fed, after resizing and cropping)."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from explorer.core.insight.subject import InsightError, Subject

METHODS = ("saliency", "integrated-gradients", "guided-backprop", "grad-cam", "occlusion")


@dataclass
class Prediction:
    probabilities: torch.Tensor          # [K] on the CPU
    top5: list[tuple[int, str | None, float]]   # (index, name or None, probability)

    @property
    def predicted(self) -> int:
        return self.top5[0][0]


@dataclass
class AttributionResult:
    method: str
    target: int
    target_name: str | None
    layer: str | None                    # Grad-CAM's layer, else None
    map: np.ndarray                      # float32 [H, W]
    input_shape: tuple[int, ...]         # [N, C, H, W] as fed to the model
    raw: torch.Tensor                    # [C, H, W] in [0, 1], the input before normalisation (CPU)
    prediction: Prediction
    notice: str | None = None            # random weights: the walkthrough's sentence
    seconds: float = 0.0

    def summary(self) -> dict:
        return {"method": self.method, "target": self.target, "target_name": self.target_name,
                "layer": self.layer, "input_shape": list(self.input_shape)}


def _scores_module(subject: Subject) -> torch.nn.Module:
    ok, why = subject.ends_in_class_scores()
    if not ok:
        raise InsightError(why)
    return subject.module


def class_name(subject: Subject, index: int) -> str | None:
    names = subject.class_names
    return names[index] if names and 0 <= index < len(names) else None


def predict(subject: Subject, x: torch.Tensor) -> Prediction:
    """The class probabilities for model input x [1, C, H, W] and the top 5 with names."""
    module = _scores_module(subject)
    with torch.no_grad():
        out = module(x)[0].float()
    # a stack that ends in Softmax already gives probabilities
    if out.min() >= 0 and abs(float(out.sum()) - 1) < 1e-4:
        probs = out
    else:
        probs = torch.softmax(out, dim=0)
    probs = probs.cpu()
    values, indices = torch.topk(probs, min(5, probs.numel()))
    return Prediction(probs, [(int(i), class_name(subject, int(i)), float(v)) for v, i in zip(values, indices)])


def check_target(subject: Subject, target: int, classes: int) -> int:
    if not isinstance(target, int) or not 0 <= target < classes:
        raise InsightError(f"The target class must be from 0 to {classes - 1} ({subject.name} has {classes} classes), "
                           f"not {target}.")
    return target


def attribute(subject: Subject, raw: torch.Tensor, x: torch.Tensor, method: str, target: int | None = None,
              layer: str | None = None, occlusion_window: int | None = None) -> AttributionResult:
    """The map of ``method`` for model input x [1, C, H, W] (``raw``: the same before normalisation).
    ``target`` defaults to the predicted class; ``layer`` is Grad-CAM's convolution (default the last)."""
    from captum.attr import (GuidedBackprop, IntegratedGradients, LayerAttribution, LayerGradCam, Occlusion,
                             Saliency)

    if method not in METHODS:
        raise InsightError(f"Unknown method '{method}'; the methods are {', '.join(METHODS)}.")
    started = time.perf_counter()
    module = _scores_module(subject)
    prediction = predict(subject, x)
    classes = prediction.probabilities.numel()
    target = prediction.predicted if target is None else check_target(subject, target, classes)
    if layer is not None and method != "grad-cam":
        raise InsightError("--layer goes with --method grad-cam (the convolution whose maps are weighted).")
    x = x.detach().clone().requires_grad_(True)
    h, w = x.shape[-2:]
    if method == "saliency":
        a = Saliency(module).attribute(x, target=target, abs=True)[0].amax(0)
    elif method == "integrated-gradients":
        baseline = subject.normalize(torch.zeros_like(raw[None] if raw.dim() == 3 else raw).to(x.device))
        a = IntegratedGradients(module).attribute(x, baselines=baseline, target=target, n_steps=32,
                                                  internal_batch_size=8)[0].sum(0)
    elif method == "guided-backprop":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")      # Captum says it sets (and removes) hooks on the ReLUs
            a = GuidedBackprop(module).attribute(x, target=target)[0].abs().amax(0)
    elif method == "grad-cam":
        convs = subject.conv_layers()
        if not convs:
            raise InsightError(f"Grad-CAM needs a convolution; {subject.name} has none.")
        layer = convs[-1] if layer is None else subject.check_layer(layer)
        if layer not in convs:
            raise InsightError(f"Grad-CAM works at a convolution; '{layer}' is not one (the convolutions are: "
                               f"{', '.join(convs)}).")
        cam = LayerGradCam(module, subject.layer_module(layer)).attribute(x, target=target, relu_attributions=True)
        a = LayerAttribution.interpolate(cam, (h, w), interpolate_mode="bilinear")[0, 0]
    else:  # occlusion
        side = occlusion_window or max(2, min(h, w) // 8)
        stride = max(1, side // 2)
        c = x.shape[1]
        baseline = float(subject.normalize(torch.full((1, c, 1, 1), 0.5, device=x.device)).mean())
        a = Occlusion(module).attribute(x, sliding_window_shapes=(c, side, side), strides=(c, stride, stride),
                                        baselines=baseline, target=target, perturbations_per_eval=16)[0].sum(0)
    amap = a.detach().float().cpu().numpy().astype(np.float32)
    return AttributionResult(method, target, class_name(subject, target), layer if method == "grad-cam" else None,
                             amap, tuple(x.shape), (raw[0] if raw.dim() == 4 else raw).detach().cpu(), prediction,
                             subject.notice(), time.perf_counter() - started)


# ---------------------------------------------------------------- pictures
def heat_rgb(amap: np.ndarray, colormap: str = "inferno") -> np.ndarray:
    """|map| through a colour map, 0 to its largest value: uint8 (H, W, 3)."""
    from explorer.core.colormaps import apply_colormap
    heat = np.abs(amap)
    peak = float(heat.max()) if heat.size else 0.0
    level = (heat / peak * 255).round().astype(np.uint8) if peak > 0 else np.zeros(heat.shape, np.uint8)
    return apply_colormap(level, colormap)


def overlay(result: AttributionResult, opacity: float = 0.6, colormap: str = "inferno",
            min_side: int = 1) -> np.ndarray:
    """The map over the input: uint8 (H, W, 3), enlarged by a whole factor (nearest neighbour) to at
    least ``min_side`` pixels. Signed maps (integrated gradients) are shown by
    magnitude; the colour map runs from 0 to the map's largest value."""
    img = result.raw
    rgb = img[:3] if img.shape[0] >= 3 else img[:1].expand(3, *img.shape[1:])
    base = rgb.clamp(0, 1).permute(1, 2, 0).numpy().astype(np.float32)
    colored = heat_rgb(result.map, colormap).astype(np.float32) / 255
    out = (1 - opacity) * base * 1.0 + opacity * colored
    out = (out.clip(0, 1) * 255).round().astype(np.uint8)
    scale = -(-min_side // max(out.shape[:2]))
    if scale > 1:
        out = out.repeat(scale, 0).repeat(scale, 1)
    if result.notice:
        out = _stamp(out, result.notice)
    return out


def _stamp(image: np.ndarray, text: str) -> np.ndarray:
    """``text`` on a dark band across the top of the picture (the random-weights notice)."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(image)
    scale = max(1, 256 // max(1, img.width))
    if scale > 1:     # tiny inputs: enlarge so the sentence fits
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, 0, img.width, 13], fill=(0, 0, 0))
    draw.text((3, 1), text, fill=(255, 220, 80))
    return np.asarray(img)


def export_attribution(result: AttributionResult, out_dir) -> dict:
    """DIR/attribution.npy (float32 H×W), overlay.png and summary.json."""
    import json
    from pathlib import Path

    from explorer.core.render import save_png
    from explorer.core.stack import atomic_write_text

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    np.save(out_dir / "attribution.npy", result.map.astype(np.float32))
    save_png(overlay(result, min_side=224), out_dir / "overlay.png")
    data = result.summary()
    atomic_write_text(out_dir / "summary.json", json.dumps(data, indent=2) + "\n")
    return data

"""What each stage says: its title and one sentence (what it does, why the shape is what it is,
where its parameters come from), the input's explanation, and the notes where the classic VGG-16
text and the real model differ."""

from __future__ import annotations

import torch
from torch import nn

from explorer.core.walkthrough.preprocess import imagenet_preset
from explorer.core.walkthrough.records import Stage
from explorer.core.walkthrough.trace import TraceRecord, pair


def input_explanation(name: str, raw: torch.Tensor) -> tuple[str, str]:
    _, c, h, w = raw.shape
    preset = imagenet_preset(name)
    if preset is not None:
        return (f"Input {h}x{w}x{c}",
                f"Your image, resized so its shorter side is {preset.resize_size[0]} and centre-cropped to {h}×{w}, "
                f"then each of the {c} colour channels (red, green, blue) shifted and scaled by ImageNet's mean and "
                f"standard deviation, as the network saw its training images: {h}×{w}×{c}.")
    return (f"Input {h}x{w}x{c}",
            f"Your image as one gray channel of {h}×{w} pixels, the size LeNet was designed for, "
            f"with values from 0 to 1: {h}×{w}×{c}.")


def fmt(n: int) -> str:
    return f"{n:,}"


def size_formula(size: int, k: int, s: int, p: int, d: int = 1) -> str:
    """torch's output-size rule with the numbers in: '(224 + 2·2 − 11) / 4 + 1', floored where it must be."""
    k_text = f"{d}·({k} − 1) − 1" if d > 1 else f"{k}"
    k_eff = d * (k - 1) + 1
    inner = f"({size} + 2·{p} − {k_text}) / {s}" if s > 1 else f"{size} + 2·{p} − {k_text}"
    if s > 1 and (size + 2 * p - k_eff) % s:
        inner = f"⌊{inner}⌋"
    return f"{inner} + 1"


def describe(r: TraceRecord, in_shape, out_shape, params: int, final_linear: bool, model_name: str
              ) -> tuple[str, str, str | None]:
    kind, mods = r.kind, [m for _, m in r.modules]
    extras = [type(m).__name__ for m in mods]
    if kind == "conv":
        conv = next(m for m in mods if isinstance(m, nn.Conv2d))
        kh, kw = pair(conv.kernel_size)
        s = pair(conv.stride)[0]
        p = conv.padding if isinstance(conv.padding, str) else pair(conv.padding)[0]
        hin, hout, wout, cout = in_shape[2], out_shape[2], out_shape[3], out_shape[1]
        title = f"Conv {kh}x{kw}, {cout} filters" + (f", stride {s}" if s > 1 else "")
        if any(isinstance(m, nn.BatchNorm2d) for m in mods):
            title += " + BatchNorm"
        after = _around_phrase(mods, conv)
        if hout == hin and s == 1:
            size = f"padding {p} ('same') keeps the {hout}×{wout} size"
        else:
            size = f"{size_formula(hin, kh, s, p, pair(conv.dilation)[0])} = {hout} gives {hout}×{wout}"
        text = (f"{cout} learned {kh}×{kw}×{conv.in_channels // conv.groups} filters slide over the input, each giving one "
                f"feature map{after}: {size}, and the depth becomes {cout}, one map per filter "
                f"({fmt(params)} parameters: {kh}·{kw}·{conv.in_channels // conv.groups}·{cout} weights + {cout} biases"
                f"{' + BatchNorm scales and shifts' if 'BatchNorm2d' in extras else ''}).")
        return title, text, None
    if kind == "pool":
        pool = r.main
        k, s, p = pair(pool.kernel_size)[0], pair(pool.stride if pool.stride is not None else pool.kernel_size)[0], pair(pool.padding)[0]
        what = "largest value" if isinstance(pool, nn.MaxPool2d) else "average"
        title = f"{'Max' if isinstance(pool, nn.MaxPool2d) else 'Average'} pool {k}x{k}, stride {s}"
        halve = s == 2 and out_shape[2] * 2 == in_shape[2]
        shrink = (f"the {in_shape[2]}×{in_shape[3]} maps {'halve' if halve else 'shrink'} to {out_shape[2]}×{out_shape[3]}"
                  + ("" if halve else f" ({size_formula(in_shape[2], k, s, p, pair(getattr(pool, 'dilation', 1))[0])} = {out_shape[2]})"))
        pad = f", padding {p}" if p else ""
        after = _around_phrase(mods, pool)
        return title, (f"Keeps the {what} of each {k}×{k} window, moving {s} pixel{'s' if s > 1 else ''} at a time{pad}"
                       f"{after}: {shrink} while the {out_shape[1]} channels stay; no parameters."), None
    if kind == "flatten":
        c = "·".join(str(v) for v in in_shape[1:])
        how = "torch.flatten in the model's forward" if r.synthesized else "a Flatten layer"
        return "Flatten", (f"Lays the {'×'.join(str(v) for v in in_shape[2:] + in_shape[1:2])} block out as one vector of "
                           f"{c} = {fmt(out_shape[1])} values ({how}), so the fully connected layers can take it; "
                           "no parameters."), None
    if kind == "linear":
        lin = next(m for m in mods if isinstance(m, nn.Linear))
        title = f"Fully connected {lin.in_features}→{lin.out_features}"
        after = _around_phrase(mods, lin)
        role = (f"; these {lin.out_features} numbers are the class scores (logits)" if final_linear else "")
        bias = f" + {fmt(lin.out_features)} biases" if lin.bias is not None else ""
        return title, (f"Each of the {fmt(lin.out_features)} outputs is a weighted sum of all {fmt(lin.in_features)} "
                       f"inputs{after} ({fmt(lin.in_features)}·{fmt(lin.out_features)} weights{bias} = "
                       f"{fmt(params)} parameters){role}."), None
    if kind == "softmax":
        n = out_shape[-1]
        return f"Softmax over {n} classes", (
            f"Turns the {fmt(n)} scores into probabilities, exp(score) divided by the sum of all exp(score), "
            f"so they are positive and add up to 1 (computed here: torchvision's model ends at the scores); "
            "no parameters."), None
    # opaque
    mod = r.main
    cls = type(mod).__name__
    if isinstance(mod, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        size = "×".join(str(v) for v in out_shape[2:])
        same = in_shape == out_shape
        text = (f"Averages each channel down to a fixed {size} so the classifier always gets "
                f"{out_shape[2]}×{out_shape[3]}×{out_shape[1]}; "
                + (f"the maps are already {size} for this input, so nothing changes here." if same
                   else f"here {in_shape[2]}×{in_shape[3]} becomes {size}."))
        note = ("The classic text has no such step: torchvision adds it so inputs other than 224×224 also reach the "
                "classifier with 7×7×512.") if model_name.startswith("vgg") else None
        return f"Adaptive {'average' if 'Avg' in cls else 'max'} pool to {size}", text, note
    inner = [type(m).__name__ for m in mod.modules() if m is not mod]
    kinds = ", ".join(sorted(set(inner))) or "no sub-layers"
    residual = " and adds its input back (a residual connection)" if hasattr(mod, "downsample") else ""
    return f"{cls} (one step)", (
        f"This {cls} ({len(inner)} inner modules: {kinds}) runs as one step{residual}, taking "
        f"{list(in_shape)} to {list(out_shape)}; its inner layers are not shown one by one."), None


def _around_phrase(mods, main) -> str:
    """', then ReLU sets ...' for the modules after the main one; a Dropout before it is mentioned too."""
    at = next(i for i, m in enumerate(mods) if m is main)
    before = " (after a Dropout, active only in training)" if mods[:at] else ""
    return before + _after_phrase(mods[at + 1:])


def _after_phrase(mods) -> str:
    parts = []
    for m in mods:
        if isinstance(m, nn.BatchNorm2d):
            parts.append("BatchNorm normalises each map")
        elif isinstance(m, nn.ReLU):
            parts.append("ReLU sets the negative values to 0")
        elif isinstance(m, (nn.Dropout, nn.Dropout2d)):
            parts.append("Dropout (active only in training) passes everything through")
        elif isinstance(m, nn.Softmax):
            parts.append("Softmax makes them probabilities")
        else:
            parts.append(f"{type(m).__name__} is applied")
    return (", then " + ", then ".join(parts)) if parts else ""


def classic_notes(model_name: str, stages: list[Stage]) -> None:
    """Where the classic VGG-16 text and the real model differ, the step says so."""
    if model_name not in ("vgg16", "vgg16_bn"):
        return
    convs_256 = [s for s in stages if s.kind == "conv" and s.output_shape[1] == 256]
    if len(convs_256) >= 3:
        convs_256[2].note = ("The classic text lists two 256-filter convolutions in block 3; VGG-16 (and "
                             "torchvision's model) has three, and this is the third.")


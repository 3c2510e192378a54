"""The walkthrough of a real network (VGG-16, LeNet, other torchvision classifiers): one forward
pass with hooks captures every stage's output, and each stage carries what the classic text says
about it: a title, one sentence, its shape, parameters (and the running total), multiply-adds and
the receptive field of one output pixel on the input. No Qt here; the window only displays this.

A stage is what the classic explanation calls one step: a convolution with its BatchNorm and ReLU,
a pooling, the flatten, a fully connected layer with its ReLU (and Dropout, which does nothing in
evaluation), the softmax. Blocks that are not plain layers (a ResNet BasicBlock, an adaptive pool)
are one "opaque" stage. torchvision's VGG flattens with ``torch.flatten`` in its forward and has no
softmax: both stages are synthesized from the tensors the hooks see (the flatten is a view, no copy).

Captured maps stay on the device; they are kept by reference (no copy) unless a later in-place
operation changed one, in which case the pass is repeated once with copies (checked via the
tensors' version counters), so what is kept is always what the stage produced."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from explorer.core.devices import is_out_of_memory, out_of_memory_message, resolve_device
from explorer.core.inputs import to_gray
from explorer.core.layers import LayerSpec
from explorer.core.receptive_field import POOLS as _POOLS, RF as _RF, input_box, window
from explorer.core.model_zoo import build_model, check_name, class_names, input_shape, is_imagenet, weights_enum
from explorer.core.stack import InputSpec, Stack

KINDS = ("input", "conv", "pool", "flatten", "linear", "softmax", "opaque")
RANDOM_NOTICE = "random weights: these maps show no learned features"

_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.Sigmoid, nn.Tanh, nn.SiLU,
                nn.Hardswish, nn.Hardsigmoid, nn.PReLU, nn.RReLU, nn.Mish)
_ROLES = ((nn.Conv2d, "conv"), (_POOLS, "pool"), (nn.BatchNorm2d, "bn"), (_ACTIVATIONS, "act"),
          ((nn.Dropout, nn.Dropout2d), "drop"), (nn.Linear, "linear"), (nn.Flatten, "flatten"),
          (nn.Softmax, "softmax"))
_BRANCH_NAMES = ("downsample", "shortcut")   # parallel paths inside a block: not on the receptive-field path


class WalkthroughError(RuntimeError):
    """A stage failed during the capture; ``stage`` names it, ``stages`` holds those that ran."""

    def __init__(self, message: str, stage: str | None = None, stages: list | None = None,
                 outputs: list | None = None):
        super().__init__(message)
        self.stage = stage
        self.stages = stages or []
        self.outputs = outputs or []


# ---------------------------------------------------------------- stages
@dataclass
class Stage:
    index: int                      # 0 is the Input stage
    name: str                       # module path ("features.0"); "input", "flatten", "softmax" when synthesized
    kind: str                       # one of KINDS
    title: str                      # "Conv 3x3, 64 filters"
    explanation: str                # one sentence: what it does and why the shape is what it is
    note: str | None                # where the classic text differs from the real model, else None
    input_shape: tuple[int, ...]    # NCHW / NF as torch has it
    output_shape: tuple[int, ...]
    params: int                     # parameters of this stage's modules
    total_params: int               # running total up to and including this stage
    macs: int                       # multiply-adds of this stage (one image)
    receptive_field: int | None     # side of the input square one output pixel sees; None after Flatten
    jump: int = 1                   # input pixels between neighbouring output pixels (product of strides)
    start: float = 0.0              # input coordinate of the centre of output pixel 0
    image_size: tuple[int, int] = (0, 0)   # (H, W) of the model input, for clipping
    modules: list[str] = field(default_factory=list)   # module paths in this stage, in the order they ran

    def input_region(self, y: int, x: int) -> tuple[int, int, int, int]:
        """(y0, x0, y1, x1), end exclusive, of the input pixels output pixel (y, x) depends on,
        clipped to the image; the whole image for stages without a spatial map."""
        if self.receptive_field is None or len(self.output_shape) != 4:
            return input_box(None, y, x, self.image_size)
        axis = (self.receptive_field, self.jump, self.start)    # the known models are square
        return input_box((axis, axis), y, x, self.image_size)

    def shape_hwc(self) -> str:
        """The output shape as the classic text writes it: '224×224×64', or '25088'."""
        s = self.output_shape
        if len(s) == 4:
            return f"{s[2]}×{s[3]}×{s[1]}"
        return "×".join(str(v) for v in s[1:])

    def shape_nchw(self) -> str:
        return "[" + ", ".join(str(v) for v in self.output_shape) + "]"


@dataclass
class Walkthrough:
    model_name: str
    weights: str                    # "random" | "imagenet" | a file path
    random_weights: bool
    raw_input: torch.Tensor         # [1, C, H, W] in [0, 1], resized/cropped as the model expects (on the CPU)
    model_input: torch.Tensor       # normalised, on the device
    stages: list[Stage]
    outputs: list[torch.Tensor]     # one per stage, on the device; outputs[0] is model_input
    probabilities: torch.Tensor | None   # [1, classes] softmax of the logits (on the device)
    categories: list[str] | None
    device: torch.device = torch.device("cpu")
    model: nn.Module | None = field(default=None, repr=False)

    @property
    def total_params(self) -> int:
        return self.stages[-1].total_params if self.stages else 0

    def notice(self) -> str | None:
        """RANDOM_NOTICE with random weights, else None."""
        return RANDOM_NOTICE if self.random_weights else None

    def top5(self) -> list[tuple[str, float]] | None:
        """The five most probable classes with names; None for random weights."""
        if self.random_weights or self.probabilities is None:
            return None
        p = self.probabilities[0].detach().float()
        values, indices = torch.topk(p, min(5, p.numel()))
        names = self.categories
        return [((names[i] if names and i < len(names) else f"class {i}"), float(v))
                for v, i in zip(values.tolist(), indices.tolist())]


# ---------------------------------------------------------------- input
def _preset(model_name: str):
    return weights_enum(model_name).transforms()


def prepare_input(model_name: str, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """image [1, C, H, W] in [0, 1] -> (raw, normalised). ImageNet models: 3 channels,
    Resize(256) + CenterCrop(224) + Normalize(mean, std) as torchvision's weights transforms do;
    LeNet: one gray channel resized to 32×32, no normalisation (raw == normalised)."""
    from torchvision.transforms.v2 import functional as TF

    name = check_name(model_name)
    if image.dim() == 3:
        image = image.unsqueeze(0)
    if image.dim() != 4 or image.shape[0] < 1 or image.shape[1] not in (1, 3, 4):
        raise ValueError(f"An input image must be [1, C, H, W] with 1, 3 or 4 channels, not {list(image.shape)}.")
    image = image[:1, :3].float()
    if is_imagenet(name):
        preset = _preset(name)
        if image.shape[1] == 1:
            image = image.expand(1, 3, *image.shape[2:])
        raw = TF.resize(image, list(preset.resize_size), interpolation=preset.interpolation, antialias=preset.antialias)
        raw = TF.center_crop(raw, list(preset.crop_size)).contiguous()
        return raw, TF.normalize(raw, list(preset.mean), list(preset.std))
    if image.shape[1] == 3:
        image = to_gray(image)
    _, _, h, w = input_shape(name)
    raw = TF.resize(image, [h, w], interpolation=TF.InterpolationMode.BILINEAR, antialias=True).contiguous()
    return raw, raw


def _input_explanation(name: str, raw: torch.Tensor) -> tuple[str, str]:
    _, c, h, w = raw.shape
    if is_imagenet(name):
        preset = _preset(name)
        return (f"Input {h}x{w}x{c}",
                f"Your image, resized so its shorter side is {preset.resize_size[0]} and centre-cropped to {h}×{w}, "
                f"then each of the {c} colour channels (red, green, blue) shifted and scaled by ImageNet's mean and "
                f"standard deviation, as the network saw its training images: {h}×{w}×{c}.")
    return (f"Input {h}x{w}x{c}",
            f"Your image as one gray channel of {h}×{w} pixels, the size LeNet was designed for, "
            f"with values from 0 to 1: {h}×{w}×{c}.")


# ---------------------------------------------------------------- the capture
def _role(module: nn.Module) -> str | None:
    for types, role in _ROLES:
        if isinstance(module, types):
            return role
    return None


def _targets(model: nn.Module) -> list[tuple[str, nn.Module, str]]:
    """(path, module, role) for every module that becomes or joins a stage: the model and its
    Sequentials are opened, known layers are stages, anything else is one opaque stage."""
    out = []

    def visit(prefix: str, module: nn.Module) -> None:
        for name, child in module.named_children():
            path = f"{prefix}.{name}" if prefix else name
            role = _role(child)
            if role is not None:
                out.append((path, child, role))
            elif isinstance(child, nn.Sequential):
                visit(path, child)
            elif isinstance(child, nn.Identity):
                continue
            else:
                out.append((path, child, "opaque"))

    visit("", model)
    return out


def _pair(v) -> tuple[int, int]:
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _window(module: nn.Module) -> tuple[int, int, float] | None:
    """(effective kernel, stride, padding) along H of a conv or pool (the known models are square)."""
    return window(module, 0)


def _numel_per_image(shape) -> int:
    n = 1
    for v in shape[1:]:
        n *= v
    return n


def _conv_macs(module: nn.Conv2d, out_shape) -> int:
    kh, kw = _pair(module.kernel_size)
    return _numel_per_image(out_shape) * (module.in_channels // module.groups) * kh * kw


class _Tracer:
    """Turns the hook calls of one forward pass into stages."""

    def __init__(self, model: nn.Module, keep_copies: bool):
        self.model = model
        self.keep_copies = keep_copies
        self.records: list[dict] = []     # one per stage: kind, name, modules, tensors, input_shape ...
        self.live = None                  # the current stage's output as the network has it
        self.pending: list[tuple[str, nn.Module]] = []   # Dropout waiting for the stage it precedes
        self.running: str | None = None
        self.opaque: dict | None = None   # inner bookkeeping of the opaque module running now
        self.handles = []

    # -- set-up
    def attach(self) -> None:
        for path, module, role in _targets(self.model):
            self.handles.append(module.register_forward_pre_hook(self._pre(path, module, role)))
            self.handles.append(module.register_forward_hook(self._post(path, module, role)))
            if role == "opaque":
                for inner_path, inner in module.named_modules():
                    if inner is module or not isinstance(inner, (nn.Conv2d, nn.Linear, *_POOLS)):
                        continue
                    self.handles.append(inner.register_forward_hook(self._inner(f"{path}.{inner_path}", inner)))

    def detach(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []

    def _pre(self, path, module, role):
        def hook(mod, args):
            self.running = path
            if role == "opaque":
                self.opaque = {"macs": 0, "windows": [], "path": path}
        return hook

    def _inner(self, path, module):
        def hook(mod, args, out):
            if self.opaque is None or not isinstance(out, torch.Tensor):
                return
            if isinstance(mod, nn.Conv2d):
                self.opaque["macs"] += _conv_macs(mod, out.shape)
            elif isinstance(mod, nn.Linear):
                rows = out.numel() // max(1, out.shape[-1]) // max(1, out.shape[0])
                self.opaque["macs"] += mod.in_features * mod.out_features * rows
            window = _window(mod)
            inner_name = path[len(self.opaque["path"]) + 1:]
            if window is not None and not any(part in _BRANCH_NAMES for part in inner_name.split(".")):
                self.opaque["windows"].append(window)
        return hook

    def _post(self, path, module, role):
        def hook(mod, args, out):
            x = args[0] if args else None
            if not isinstance(out, torch.Tensor):
                raise WalkthroughError(f"'{path}' ({type(mod).__name__}) did not return one tensor; "
                                       "the walkthrough only follows single-tensor models.", path)
            self._maybe_flatten(x, role)
            current = self.records[-1] if self.records else None
            follows = current is not None and x is self.live
            foldable = ("conv", "linear", "opaque", "pool") if role == "act" else ("conv", "linear", "opaque")
            if role in ("bn", "act", "drop", "softmax") and follows and current["kind"] in foldable:
                current["modules"].append((path, mod))   # folded into the conv / linear (/ pool) before it
                self._set_output(current, out)
                return
            if role == "drop":
                self.pending.append((path, mod))          # e.g. AlexNet: Dropout before a Linear
                self.live = out
                return
            kind = {"conv": "conv", "pool": "pool", "linear": "linear", "flatten": "flatten",
                    "softmax": "softmax"}.get(role, "opaque")
            self._new(kind, path, [*self.pending, (path, mod)], x, out, main=mod)
            self.pending = []
            if role == "opaque":
                self.records[-1]["inner"] = self.opaque
                self.opaque = None
        return hook

    def _maybe_flatten(self, x, role) -> None:
        """torch.flatten called in a model's forward: a stage made from the tensor that arrived."""
        if role == "flatten" or not isinstance(x, torch.Tensor) or not self.records:
            return
        last = self.records[-1]
        if x.dim() == 2 and len(last["output_shape"]) >= 3 and x.shape[1] == _numel_per_image(last["output_shape"]):
            self._new("flatten", "flatten", [], self.live, x, synthesized=True)

    def _new(self, kind, name, modules, x, out, synthesized=False, main=None) -> None:
        record = {"kind": kind, "name": name, "modules": list(modules), "synthesized": synthesized, "main": main,
                  "input_shape": tuple(x.shape) if isinstance(x, torch.Tensor) else (),
                  "output": None, "output_shape": (), "version": 0}
        self.records.append(record)
        self._set_output(record, out)

    def _set_output(self, record, out) -> None:
        self.live = out
        record["output"] = out.detach().clone() if self.keep_copies else out
        record["output_shape"] = tuple(out.shape)
        record["version"] = out._version


def _run(model: nn.Module, x: torch.Tensor, keep_copies: bool, params=None) -> tuple[_Tracer, torch.Tensor]:
    tracer = _Tracer(model, keep_copies)
    tracer.attach()
    try:
        with torch.no_grad():
            if params is None:
                logits = model(x)
            else:
                logits = torch.func.functional_call(model, params, (x,))
    except WalkthroughError:
        raise
    except Exception as e:
        where = tracer.running or "the model"
        text = (out_of_memory_message(x.device, f"'{where}'") if is_out_of_memory(e)
                else f"'{where}' failed: {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}")
        err = WalkthroughError(text, where)
        err.tracer = tracer
        raise err from e
    finally:
        tracer.detach()
    return tracer, logits


def _probabilities(tracer: _Tracer, logits: torch.Tensor) -> torch.Tensor | None:
    """The softmax of the class scores; the model's own output when it already ends in a Softmax."""
    if logits.dim() != 2:
        return None
    last = tracer.records[-1] if tracer.records else None
    if last is not None and (last["kind"] == "softmax" or isinstance(last["modules"][-1][1], nn.Softmax)):
        return logits
    return torch.softmax(logits.detach(), dim=-1)


def _stages_from(tracer: _Tracer, model_name: str, model_input: torch.Tensor, raw: torch.Tensor,
                 logits: torch.Tensor | None, probabilities: torch.Tensor | None) -> tuple[list[Stage], list]:
    """Stage metadata (titles, sentences, parameters, multiply-adds, receptive fields) for the records."""
    h, w = model_input.shape[-2:]
    title, explanation = _input_explanation(model_name, raw)
    shape = tuple(model_input.shape)
    stages = [Stage(0, "input", "input", title, explanation, None, shape, shape, 0, 0, 0, 1, 1, 0.0, (h, w))]
    outputs = [model_input]
    rf = _RF()
    seen: set[int] = set()
    total = 0
    records = list(tracer.records)
    if probabilities is not None and probabilities is not logits:
        records.append({"kind": "softmax", "name": "softmax", "modules": [], "synthesized": True, "main": None,
                        "input_shape": tuple(logits.shape), "output_shape": tuple(probabilities.shape),
                        "output": probabilities})
    last_linear = max((i for i, r in enumerate(records) if r["kind"] == "linear"), default=-1)
    for i, r in enumerate(records):
        params = 0
        for _, mod in r["modules"]:
            if id(mod) not in seen:
                seen.add(id(mod))
                params += sum(p.numel() for p in mod.parameters())
        total += params
        out_shape, in_shape = r["output_shape"], r["input_shape"]
        macs = _macs(r)
        _advance_rf(rf, r)
        spatial = len(out_shape) == 4 and rf.rf is not None
        title, explanation, note = _describe(r, in_shape, out_shape, params, i == last_linear, model_name)
        stages.append(Stage(len(stages), r["name"], r["kind"], title, explanation, note, in_shape, out_shape,
                            params, total, macs, rf.rf if spatial else None, rf.jump if spatial else 1,
                            rf.start if spatial else 0.0, (h, w), [p for p, _ in r["modules"]]))
        outputs.append(r["output"])
    _classic_notes(model_name, stages)
    return stages, outputs


def _macs(r: dict) -> int:
    out_shape = r["output_shape"]
    macs = 0
    for _, mod in r["modules"]:
        if isinstance(mod, nn.Conv2d):
            macs += _conv_macs(mod, out_shape)
        elif isinstance(mod, nn.Linear):
            macs += mod.in_features * mod.out_features
        elif isinstance(mod, nn.BatchNorm2d):
            macs += _numel_per_image(out_shape)
    if r["kind"] == "opaque" and "inner" in r:
        macs = r["inner"]["macs"]
    return macs


def _advance_rf(rf: _RF, r: dict) -> None:
    kind, in_shape, out_shape = r["kind"], r["input_shape"], r["output_shape"]
    if kind in ("flatten", "linear", "softmax") or len(out_shape) != 4 or len(in_shape) != 4:
        if len(out_shape) != 4:
            rf.lose()
        return
    if kind in ("conv", "pool"):
        for _, mod in r["modules"]:
            window = _window(mod)
            if window is not None:
                rf.apply(*window)
        return
    # opaque: an adaptive pool, or a block whose main path is its convolutions and pools in order
    mod = r["main"]
    in_h, out_h = in_shape[2], out_shape[2]
    if isinstance(mod, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        if in_h % out_h == 0:
            k = in_h // out_h
            rf.apply(k, k, 0)
        else:
            rf.lose()
        return
    windows = r.get("inner", {}).get("windows", [])
    stride = math.prod(window[1] for window in windows)
    if windows and out_h in (in_h // stride, math.ceil(in_h / stride)):
        for window in windows:
            rf.apply(*window)
    elif in_h != out_h or not windows:
        rf.lose()     # a block whose geometry the walkthrough cannot follow


def _fmt(n: int) -> str:
    return f"{n:,}"


def _size_formula(size: int, k: int, s: int, p: int, d: int = 1) -> str:
    """torch's output-size rule with the numbers in: '(224 + 2·2 − 11) / 4 + 1', floored where it must be."""
    k_text = f"{d}·({k} − 1) − 1" if d > 1 else f"{k}"
    k_eff = d * (k - 1) + 1
    inner = f"({size} + 2·{p} − {k_text}) / {s}" if s > 1 else f"{size} + 2·{p} − {k_text}"
    if s > 1 and (size + 2 * p - k_eff) % s:
        inner = f"⌊{inner}⌋"
    return f"{inner} + 1"


def _describe(r: dict, in_shape, out_shape, params: int, final_linear: bool, model_name: str
              ) -> tuple[str, str, str | None]:
    kind, mods = r["kind"], [m for _, m in r["modules"]]
    extras = [type(m).__name__ for m in mods]
    if kind == "conv":
        conv = next(m for m in mods if isinstance(m, nn.Conv2d))
        kh, kw = _pair(conv.kernel_size)
        s = _pair(conv.stride)[0]
        p = conv.padding if isinstance(conv.padding, str) else _pair(conv.padding)[0]
        hin, hout, wout, cout = in_shape[2], out_shape[2], out_shape[3], out_shape[1]
        title = f"Conv {kh}x{kw}, {cout} filters" + (f", stride {s}" if s > 1 else "")
        if any(isinstance(m, nn.BatchNorm2d) for m in mods):
            title += " + BatchNorm"
        after = _around_phrase(mods, conv)
        if hout == hin and s == 1:
            size = f"padding {p} ('same') keeps the {hout}×{wout} size"
        else:
            size = f"{_size_formula(hin, kh, s, p, _pair(conv.dilation)[0])} = {hout} gives {hout}×{wout}"
        text = (f"{cout} learned {kh}×{kw}×{conv.in_channels // conv.groups} filters slide over the input, each giving one "
                f"feature map{after}: {size}, and the depth becomes {cout}, one map per filter "
                f"({_fmt(params)} parameters: {kh}·{kw}·{conv.in_channels // conv.groups}·{cout} weights + {cout} biases"
                f"{' + BatchNorm scales and shifts' if 'BatchNorm2d' in extras else ''}).")
        return title, text, None
    if kind == "pool":
        pool = r["main"]
        k, s, p = _pair(pool.kernel_size)[0], _pair(pool.stride if pool.stride is not None else pool.kernel_size)[0], _pair(pool.padding)[0]
        what = "largest value" if isinstance(pool, nn.MaxPool2d) else "average"
        title = f"{'Max' if isinstance(pool, nn.MaxPool2d) else 'Average'} pool {k}x{k}, stride {s}"
        halve = s == 2 and out_shape[2] * 2 == in_shape[2]
        shrink = (f"the {in_shape[2]}×{in_shape[3]} maps {'halve' if halve else 'shrink'} to {out_shape[2]}×{out_shape[3]}"
                  + ("" if halve else f" ({_size_formula(in_shape[2], k, s, p, _pair(getattr(pool, 'dilation', 1))[0])} = {out_shape[2]})"))
        pad = f", padding {p}" if p else ""
        after = _around_phrase(mods, pool)
        return title, (f"Keeps the {what} of each {k}×{k} window, moving {s} pixel{'s' if s > 1 else ''} at a time{pad}"
                       f"{after}: {shrink} while the {out_shape[1]} channels stay; no parameters."), None
    if kind == "flatten":
        c = "·".join(str(v) for v in in_shape[1:])
        how = "torch.flatten in the model's forward" if r["synthesized"] else "a Flatten layer"
        return "Flatten", (f"Lays the {'×'.join(str(v) for v in in_shape[2:] + in_shape[1:2])} block out as one vector of "
                           f"{c} = {_fmt(out_shape[1])} values ({how}), so the fully connected layers can take it; "
                           "no parameters."), None
    if kind == "linear":
        lin = next(m for m in mods if isinstance(m, nn.Linear))
        title = f"Fully connected {lin.in_features}→{lin.out_features}"
        after = _around_phrase(mods, lin)
        role = (f"; these {lin.out_features} numbers are the class scores (logits)" if final_linear else "")
        bias = f" + {_fmt(lin.out_features)} biases" if lin.bias is not None else ""
        return title, (f"Each of the {_fmt(lin.out_features)} outputs is a weighted sum of all {_fmt(lin.in_features)} "
                       f"inputs{after} ({_fmt(lin.in_features)}·{_fmt(lin.out_features)} weights{bias} = "
                       f"{_fmt(params)} parameters){role}."), None
    if kind == "softmax":
        n = out_shape[-1]
        return f"Softmax over {n} classes", (
            f"Turns the {_fmt(n)} scores into probabilities, exp(score) divided by the sum of all exp(score), "
            f"so they are positive and add up to 1 (computed here: torchvision's model ends at the scores); "
            "no parameters."), None
    # opaque
    mod = r["main"]
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


def _classic_notes(model_name: str, stages: list[Stage]) -> None:
    """Where the classic VGG-16 text and the real model differ, the step says so."""
    if model_name not in ("vgg16", "vgg16_bn"):
        return
    convs_256 = [s for s in stages if s.kind == "conv" and s.output_shape[1] == 256]
    if len(convs_256) >= 3:
        convs_256[2].note = ("The classic text lists two 256-filter convolutions in block 3; VGG-16 (and "
                             "torchvision's model) has three, and this is the third.")


# ---------------------------------------------------------------- public entry points
def capture(model_name: str, model: nn.Module, image: torch.Tensor, device: str | torch.device = "auto",
            weights_label: str = "random", categories: list[str] | None = None) -> Walkthrough:
    """One forward pass with hooks on ``image`` ([1, C, H, W] in [0, 1], any size: prepare_input
    is applied). Moves the model to the device. Raises WalkthroughError naming a failed stage."""
    name = check_name(model_name)
    dev = resolve_device(device)
    # resize/crop/normalise where the model runs: one small copy up, and only the 224×224 crop comes back
    raw, x = prepare_input(name, image.detach().to(dev))
    return capture_prepared(name, model, x, raw, weights_label, categories)


def capture_prepared(model_name: str, model: nn.Module, model_input: torch.Tensor, raw: torch.Tensor | None = None,
                     weights_label: str = "random", categories: list[str] | None = None) -> Walkthrough:
    """The capture of an input already prepared for the model (``prepare_input``'s normalised
    tensor), on the device it is on; ``raw`` defaults to the input with the normalisation undone."""
    name = check_name(model_name)
    x = model_input.detach()
    dev = x.device
    if raw is None:
        raw = _denormalise(name, x)
    was_training = model.training
    model.to(dev).eval()
    try:
        try:
            tracer, logits = _run(model, x, keep_copies=False)
            if any(r["output"]._version != r["version"] for r in tracer.records):
                tracer, logits = _run(model, x, keep_copies=True)    # an in-place op changed a kept map
            probabilities = _probabilities(tracer, logits)
        except WalkthroughError as e:
            partial = getattr(e, "tracer", None)
            if partial is not None:
                e.stages, e.outputs = _stages_from(partial, name, x, raw, None, None)
            raise
    finally:
        model.train(was_training)
    stages, outputs = _stages_from(tracer, name, x, raw, logits, probabilities)
    raw = raw.to("cpu")      # after the forward is queued, so on a GPU this copy waits for nothing else
    if categories is None:
        categories = class_names(name)
    return Walkthrough(name, str(weights_label), weights_label == "random", raw, x, stages, outputs,
                       probabilities, categories, dev, model)


def _denormalise(name: str, x: torch.Tensor) -> torch.Tensor:
    if not is_imagenet(name):
        return x
    preset = _preset(name)
    mean = torch.tensor(preset.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(preset.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return x * std + mean


def plan(model_name: str, model: nn.Module | None = None) -> list[Stage]:
    """The stages without computing anything (meta tensors): for the overview strip before a run.
    ``model`` may hold real weights; they are not touched."""
    name = check_name(model_name)
    if model is None:
        model = build_model(name, "meta")
    params = {k: torch.empty_like(v, device="meta") for k, v in
              [*model.named_parameters(), *model.named_buffers()]}
    x = torch.empty(input_shape(name), device="meta")
    tracer, logits = _run(model, x, keep_copies=False, params=params)
    probabilities = _probabilities(tracer, logits)
    raw = torch.empty(input_shape(name), device="meta")
    stages, _ = _stages_from(tracer, name, x, raw, logits, probabilities)
    return stages


def to_stack(walkthrough_or_model: Walkthrough | nn.Module, n_stages: int, model_name: str | None = None) -> Stack:
    """'Send to stack': the layers of stages 1..n_stages (stage 0 is the input) as LayerSpecs with
    their weights in ``state``, preceded for ImageNet models by a 'normalize' BatchNorm2d that does
    torchvision's Normalize. Run on ``walkthrough.raw_input``, StackRunner's last output equals
    ``walkthrough.outputs[n_stages]``. Raises ValueError for a stage the stack cannot hold."""
    if isinstance(walkthrough_or_model, Walkthrough):
        w = walkthrough_or_model
        name, model, stages, label = w.model_name, w.model, w.stages, w.weights
    else:
        from explorer.core.weights import infer_model_name
        model = walkthrough_or_model
        name = model_name or infer_model_name(model)
        if name is None:
            raise ValueError("Name the architecture (model_name=...) to send this model to the stack.")
        name = check_name(name)
        stages, label = plan(name, model), "its weights"
    if not isinstance(n_stages, int) or not 1 <= n_stages < len(stages):
        raise ValueError(f"Send 1 to {len(stages) - 1} stages to the stack, not {n_stages!r}.")
    modules = dict(model.named_modules())
    specs: list[LayerSpec] = []
    taken: set[str] = set()

    def unique(base: str) -> str:
        n, candidate = 1, base
        while candidate in taken:
            n += 1
            candidate = f"{base}_{n}"
        taken.add(candidate)
        return candidate

    _, c, h, w_ = input_shape(name)
    if is_imagenet(name):
        specs.append(_normalize_spec(name, unique("normalize")))
    for stage in stages[1:n_stages + 1]:
        if stage.kind == "flatten" and not stage.modules:
            specs.append(LayerSpec("Flatten", unique("flatten")))
            continue
        if stage.kind == "softmax" and not stage.modules:
            specs.append(LayerSpec("Softmax", unique("softmax"), {"dim": 1}))
            continue
        for path in stage.modules:
            spec = _module_spec(modules[path], unique(path), stage)
            if spec is None:
                raise ValueError(f"Stage {stage.index} '{stage.name}' ({type(modules[path]).__name__}) is a block the "
                                 f"layer stack cannot hold; send at most the first {stage.index - 1} stages.")
            specs.append(spec)
    description = f"The first {n_stages} stages of {name} ({label}), sent from the walkthrough."
    return Stack(specs, 0, InputSpec(c, (h, w_)), "eval", description)


def _normalize_spec(name: str, spec_name: str) -> LayerSpec:
    """torchvision's Normalize(mean, std) as an eval-mode BatchNorm2d: (x − mean) · 1 / std."""
    preset = _preset(name)
    mean = torch.tensor(preset.mean, dtype=torch.float32)
    std = torch.tensor(preset.std, dtype=torch.float32)
    state = {"weight": 1.0 / std, "bias": torch.zeros(3), "running_mean": mean, "running_var": torch.ones(3),
             "num_batches_tracked": torch.tensor(0)}
    return LayerSpec("BatchNorm2d", spec_name, {"num_features": 3, "eps": 0.0}, state)


def _state(module: nn.Module) -> dict[str, torch.Tensor] | None:
    state = {k: v.detach().to("cpu").clone() for k, v in module.state_dict().items()}
    return state or None


def _list(v):
    return list(v) if isinstance(v, tuple) else v


def _module_spec(m: nn.Module, name: str, stage: Stage) -> LayerSpec | None:
    if isinstance(m, nn.Conv2d) and type(m) is nn.Conv2d:
        args = {"in_channels": m.in_channels, "out_channels": m.out_channels, "kernel_size": _list(m.kernel_size),
                "stride": _list(m.stride), "padding": _list(m.padding), "dilation": _list(m.dilation),
                "groups": m.groups, "bias": m.bias is not None, "padding_mode": m.padding_mode}
        return LayerSpec("Conv2d", name, args, _state(m))
    if type(m) is nn.MaxPool2d:
        args = {"kernel_size": _list(m.kernel_size), "stride": _list(m.stride), "padding": _list(m.padding),
                "dilation": _list(m.dilation), "ceil_mode": m.ceil_mode}
        return LayerSpec("MaxPool2d", name, args)
    if type(m) is nn.AvgPool2d:
        args = {"kernel_size": _list(m.kernel_size), "stride": _list(m.stride), "padding": _list(m.padding),
                "ceil_mode": m.ceil_mode, "count_include_pad": m.count_include_pad,
                "divisor_override": m.divisor_override}
        return LayerSpec("AvgPool2d", name, args)
    if type(m) is nn.AdaptiveAvgPool2d:
        # with sizes that divide evenly an adaptive average pool is a plain one with kernel = stride = in / out
        in_hw, out_hw = stage.input_shape[2:], stage.output_shape[2:]
        if len(in_hw) == 2 and all(i % o == 0 for i, o in zip(in_hw, out_hw)):
            k = [i // o for i, o in zip(in_hw, out_hw)]
            return LayerSpec("AvgPool2d", name, {"kernel_size": k, "stride": k})
        return None
    if type(m) is nn.BatchNorm2d:
        args = {"num_features": m.num_features, "eps": m.eps, "momentum": m.momentum, "affine": m.affine,
                "track_running_stats": m.track_running_stats}
        return LayerSpec("BatchNorm2d", name, args, _state(m))
    if type(m) is nn.Linear:
        args = {"in_features": m.in_features, "out_features": m.out_features, "bias": m.bias is not None}
        return LayerSpec("Linear", name, args, _state(m))
    simple = {nn.ReLU: ("ReLU", {}), nn.Sigmoid: ("Sigmoid", {}), nn.Tanh: ("Tanh", {})}
    if type(m) in simple:
        t, args = simple[type(m)]
        return LayerSpec(t, name, args)
    if type(m) is nn.LeakyReLU:
        return LayerSpec("LeakyReLU", name, {"negative_slope": m.negative_slope})
    if type(m) is nn.ELU:
        return LayerSpec("ELU", name, {"alpha": m.alpha})
    if type(m) is nn.GELU:
        return LayerSpec("GELU", name, {"approximate": m.approximate})
    if type(m) is nn.Dropout:
        return LayerSpec("Dropout", name, {"p": m.p})
    if type(m) is nn.Flatten:
        return LayerSpec("Flatten", name, {"start_dim": m.start_dim, "end_dim": m.end_dim})
    if type(m) is nn.Softmax:
        return LayerSpec("Softmax", name, {"dim": m.dim})
    return None


# ---------------------------------------------------------------- headless export
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
    raw, normalised = prepare_input(model_name, image.detach().to("cpu"))
    stages = error.stages or []
    outputs = error.outputs or []
    model_input = outputs[0] if outputs else normalised
    return Walkthrough(check_name(model_name), str(weights_label), weights_label == "random", raw, model_input,
                       stages, outputs, None, None, model_input.device, None)

"""'Send to stack': the first stages of a walkthrough (or of a model) as the layer stack's
LayerSpecs, weights included, so they can be edited in the main window."""

from __future__ import annotations

import torch
from torch import nn

from explorer.core.layers import LayerSpec
from explorer.core.model_zoo import check_name, input_shape, is_imagenet
from explorer.core.stack import InputSpec, Stack
from explorer.core.walkthrough.capture import plan
from explorer.core.walkthrough.preprocess import imagenet_preset
from explorer.core.walkthrough.records import Stage, Walkthrough


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
    preset = imagenet_preset(name)
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


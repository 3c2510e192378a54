"""What the Insight tools look into: a stack (a file or a built-in example) or a walkthrough model
(``vgg16``, ``resnet18``, ... with random, ImageNet or file weights), as one ``nn.Module`` with
named layers, its input preparation, its receptive fields and its class names.

A stack becomes a ``StackModule``: its enabled layers built as the engine builds them (same seeds,
same state), run in order, with MaxPool2d indices handed to a later MaxUnpool2d, so autograd and
Captum can go through it. A model's layers are named as in the walkthrough (``features.28``): the
stage's output, i.e. after the ReLU folded into a convolution's stage."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from explorer.core.checks import explain_exception
from explorer.core.devices import is_out_of_memory
from explorer.core.layers import LayerSpec, build_module, forward_layer, indices_recorders
from explorer.core.receptive_field import chain_geometry
from explorer.core.stack import InputSpec, Stack, StackError


class InsightError(ValueError):
    """A request the Insight tools cannot answer; the message is one sentence for the user."""


class LayerFailed(RuntimeError):
    """A layer refused the data it was given, in one sentence naming the layer: the network failed
    on the data (the command line's exit code 1), not the request (InsightError, exit code 2)."""


class _Stop(Exception):
    """Raised by a hook to end a forward pass once the wanted layer has run."""


class StackModule(nn.Module):
    """The enabled layers of a stack as one module; ``forward(x, until=NAME)`` stops after NAME."""

    def __init__(self, stack: Stack, device: torch.device | str = "cpu"):
        super().__init__()
        specs = [s for s in stack.layers if s.enabled]
        self.names = [s.name for s in specs]
        self.specs: list[LayerSpec] = specs
        self.layers = nn.ModuleList(build_module(s, stack.seed, device) for s in specs)
        for m in self.layers:
            if hasattr(m, "inplace"):
                m.inplace = False     # autograd (and Captum's hooks) need every layer's input kept
        self.eval()

    def module(self, name: str) -> nn.Module:
        return self.layers[self.names.index(name)]

    def forward(self, x: torch.Tensor, until: str | None = None) -> torch.Tensor:
        kept: dict[str, tuple[torch.Tensor, tuple[int, int]]] = {}      # indices for later unpools
        for name, spec, m in zip(self.names, self.specs, self.layers):
            if spec.layer_type.takes_indices and spec.indices_from not in kept:
                pool = " or ".join(indices_recorders())
                raise InsightError(f"{spec.type} '{name}' takes its indices from '{spec.indices_from}', "
                                   f"which is not an enabled {pool} before it.")
            try:
                x, _ = forward_layer(spec, m, x, kept)
            except RuntimeError as e:      # torch refused this input (too small for the layer, ...)
                if is_out_of_memory(e):
                    raise                  # said as such by whoever asked
                raise LayerFailed(explain_exception(spec, e)) from e
            if name == until:
                break
        return x


@dataclass
class Subject:
    """A network to look into. ``module(x)`` gives the final output (class scores for classifiers);
    ``activation(x, layer)`` the output of one layer; images enter as [N, C, H, W] in [0, 1] and
    ``prepare`` turns them into what the module takes (channels, size, normalisation)."""

    kind: str                           # "stack" | "model"
    name: str                           # the example / file / model name, for messages
    module: nn.Module
    layers: list[str]                   # the names --layer accepts, in order
    input_spec: InputSpec               # channels and size the module expects (size None: any)
    class_names: list[str] | None = None
    weights: str = "stack"              # "random" | "imagenet" | a file | "stack" (weights in the stack)
    stack: Stack | None = None
    _hook_modules: dict = field(default_factory=dict, repr=False)   # layer -> module whose output it is
    _chains: dict = field(default_factory=dict, repr=False)         # layer -> modules from the input to it
    _stages: dict = field(default_factory=dict, repr=False)         # model: layer -> walkthrough Stage

    # ------------------------------------------------------------ facts
    @property
    def random_weights(self) -> bool:
        return self.kind == "model" and self.weights == "random"

    def notice(self) -> str | None:
        from explorer.core.walkthrough import RANDOM_NOTICE
        return RANDOM_NOTICE if self.random_weights else None

    def check_layer(self, layer: str) -> str:
        if layer not in self.layers:
            raise InsightError(f"There is no layer '{layer}' in {self.name}; the layers are: {', '.join(self.layers)}.")
        return layer

    def layer_module(self, layer: str) -> nn.Module:
        """The module whose output is the layer's output (for hooks and Captum's layer methods)."""
        self.check_layer(layer)
        return self._hook_modules[layer]

    def conv_layers(self) -> list[str]:
        """The layers that are (or whose walkthrough stage is) a convolution, for Grad-CAM."""
        if self.kind == "model":
            return [n for n in self.layers if self._stages[n].kind == "conv"]
        return [n for n in self.layers if isinstance(self._hook_modules[n], nn.Conv2d)]

    def geometry(self, layer: str):
        """The receptive-field geometry of the layer's output (see receptive_field.input_box), or None."""
        self.check_layer(layer)
        if self.kind == "model":      # the walkthrough's numbers, which also follow ResNet blocks
            stage = self._stages[layer]
            if stage.receptive_field is None or len(stage.output_shape) != 4:
                return None
            axis = (stage.receptive_field, stage.jump, stage.start)
            return (axis, axis)
        return chain_geometry(self._chains[layer])

    def device(self) -> torch.device:
        p = next(self.module.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    def to(self, device: torch.device | str) -> "Subject":
        self.module.to(device)
        return self

    # ------------------------------------------------------------ running
    def prepare(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images [N, C, H, W] in [0, 1] (any channel count of 1, 3, 4) -> (raw, model input):
        ``raw`` is the image as the model sees it before normalisation ([0, 1], its size), for patches."""
        if self.kind == "model":
            from explorer.core.walkthrough import prepare_input
            pairs = [prepare_input(self.name, img[None]) for img in images]
            return torch.cat([r for r, _ in pairs]), torch.cat([x for _, x in pairs])
        from explorer.core.inputs import InputBatch, adapt_batch
        batch = adapt_batch(InputBatch(images, self.name), self.input_spec.channels, self.input_spec.size)
        return batch.tensor, batch.tensor

    def normalize(self, raw: torch.Tensor) -> torch.Tensor:
        """raw (prepared, in [0, 1]) -> model input, differentiably (feature visualisation optimises raw)."""
        if self.kind == "model":
            from explorer.core.walkthrough import imagenet_preset
            preset = imagenet_preset(self.name)
            if preset is not None:
                mean = torch.tensor(preset.mean, device=raw.device).view(1, -1, 1, 1)
                std = torch.tensor(preset.std, device=raw.device).view(1, -1, 1, 1)
                return (raw - mean) / std
        return raw

    def input_shape(self, size: tuple[int, int] | None = None) -> tuple[int, int, int]:
        """(C, H, W) for one input; ``size`` overrides the spatial size."""
        c = self.input_spec.channels or 3
        hw = size or self.input_spec.size or (128, 128)
        return (c, int(hw[0]), int(hw[1]))

    def ends_in_relu(self, layer: str) -> bool:
        """True when ``activation(x, layer, pre_relu=True)`` gives the value before a final ReLU."""
        self.check_layer(layer)
        if isinstance(self.module, StackModule):
            i = self.module.names.index(layer)
            return i > 0 and isinstance(self.module.layers[i], nn.ReLU)
        return (isinstance(self._hook_modules[layer], nn.ReLU) and layer in self._stages
                and len(self._stages[layer].modules) > 1)

    def activation(self, x: torch.Tensor, layer: str, pre_relu: bool = False) -> torch.Tensor:
        """The layer's output for model input x; the forward stops there. ``pre_relu``: when the
        layer is (or its stage ends in) a ReLU, the value before it instead, whose gradient is not
        zero where the ReLU's output is (activation maximisation would stay stuck there)."""
        self.check_layer(layer)
        if isinstance(self.module, StackModule):
            if pre_relu and self.ends_in_relu(layer):
                layer = self.module.names[self.module.names.index(layer) - 1]
            return self.module(x, until=layer)
        box = {}
        target = self._hook_modules[layer]
        chain = self._chains[layer]
        if pre_relu and self.ends_in_relu(layer):
            target = chain[-2]

        def hook(mod, args, out):
            box["out"] = out
            raise _Stop

        handle = target.register_forward_hook(hook)
        try:
            self.module(x)
        except _Stop:
            pass
        finally:
            handle.remove()
        return box["out"]

    # ------------------------------------------------------------ identity for caches
    def weights_key(self, layer: str) -> str:
        """A digest of everything the layer's output depends on: the layers up to it (types, args,
        weights) for a stack; the model, its weights label and the weights up to it for a model.
        Editing a later layer leaves it unchanged; editing an earlier weight changes it."""
        self.check_layer(layer)
        h = hashlib.sha1()
        h.update(f"{self.kind}:{self.name}:{self.weights}:{layer}".encode())
        if self.kind == "model":    # the walkthrough's weights are never edited: the label says it all
            return h.hexdigest()
        for m in self._chains[layer]:
            h.update(type(m).__name__.encode())
            h.update(repr(m).encode())
            for t in m.state_dict().values():
                t = t.detach()
                h.update(str((t.dtype, tuple(t.shape))).encode())
                # flat first: a 0-d buffer (BatchNorm's num_batches_tracked) has no bytes view
                h.update(t.to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
                         if t.numel() else b"")
        return h.hexdigest()

    # ------------------------------------------------------------ classes
    def ends_in_class_scores(self) -> tuple[bool, str]:
        """(True, "") when the output is [N, K] class scores; else (False, why) in one sentence."""
        c, h, w = self.input_shape()
        try:
            with torch.no_grad():
                out = tuple(self.module(torch.zeros((1, c, h, w), device=self.device())).shape)
        except Exception as e:   # the stack does not run on its input: say so instead
            return False, f"{self.name} does not run on a {c}×{h}×{w} input ({e})."
        if len(out) == 2 and out[1] >= 2:
            return True, ""
        last = self.layers[-1] if self.layers else "nothing"
        return False, (f"Attribution needs a network that ends in class scores (an output [1, K], e.g. a final "
                       f"Linear); {self.name} ends with '{last}', whose output is {list(out)}.")


# ---------------------------------------------------------------- building subjects
MODEL_PREFIX, EXAMPLE_PREFIX = "model:", "example:"


def is_model_name(text: str) -> bool:
    from explorer.core.model_zoo import MODEL_NAMES
    return text.strip().lower() in MODEL_NAMES


def resolve_subject(text: str, weights: str | None = None, layer: str | None = None,
                    device: torch.device | str = "cpu") -> Subject:
    """STACK_OR_MODEL: a stack file, a built-in example or a walkthrough model name. A name that is
    both an example and a model (``lenet``, ``vgg16``) is the example unless ``weights`` is given
    or ``layer`` is one of the model's layers only; ``model:NAME`` / ``example:NAME`` say it outright."""
    from explorer.core.examples import find_example, resolve_stack
    from explorer.core.model_zoo import check_name

    if text.startswith(MODEL_PREFIX):
        return model_subject(check_name(text[len(MODEL_PREFIX):]), weights or "random", device)
    if text.startswith(EXAMPLE_PREFIX):
        return _stack_or_weights_refusal(resolve_stack(text[len(EXAMPLE_PREFIX):]),
                                         text[len(EXAMPLE_PREFIX):], weights, device)
    if Path(text).exists():
        return _stack_or_weights_refusal(resolve_stack(text), text, weights, device)
    if is_model_name(text):
        name = check_name(text)
        if find_example(name) is None or (weights is not None and weights != "stack"):
            return model_subject(name, weights or "random", device)
        stack = resolve_stack(name)
        if layer is not None and layer not in stack.names() and layer in _model_layer_names(name):
            return model_subject(name, weights or "random", device)
        return stack_subject(stack, name, device)
    return _stack_or_weights_refusal(resolve_stack(text), text, weights, device)


def _stack_or_weights_refusal(stack: Stack, name: str, weights: str | None, device) -> Subject:
    if weights is not None and weights != "stack":
        raise InsightError(f"--weights goes with a walkthrough model; the stack {name} carries its own weights.")
    return stack_subject(stack, name, device)


def stack_subject(stack: Stack, name: str = "the stack", device: torch.device | str = "cpu") -> Subject:
    try:
        module = StackModule(stack, device)
    except Exception as e:
        raise StackError(f"{name} cannot be built: {e}") from None
    names = list(module.names)
    hooks = {n: m for n, m in zip(names, module.layers)}
    chains = {n: list(module.layers[:i + 1]) for i, n in enumerate(names)}
    return Subject("stack", name, module, names, InputSpec(stack.input.channels, stack.input.size),
                   None, "stack", stack, hooks, chains)


def _model_layer_names(name: str) -> list[str]:
    from explorer.core.walkthrough import plan
    return [s.name for s in plan(name)[1:] if s.modules]


def model_subject(name: str, weights: str = "random", device: torch.device | str = "cpu",
                  model: nn.Module | None = None) -> Subject:
    """A walkthrough model; ``model`` may be given already built (with its weights)."""
    from explorer.core.model_zoo import build_model, class_names, input_shape
    from explorer.core.walkthrough import plan
    from explorer.core.weights import load_weights

    if model is None:
        if weights == "random":
            model = build_model(name)
        else:
            model = build_model(name, "meta").to_empty(device="cpu")
        weights = load_weights(model, weights, name)
    for m in model.modules():
        if hasattr(m, "inplace"):
            m.inplace = False      # VGG's ReLU(inplace=True) would overwrite what hooks and autograd keep
    model.to(device).eval()
    modules = dict(model.named_modules())
    stages = [s for s in plan(name, model)[1:] if s.modules]
    names = [s.name for s in stages]
    hooks = {s.name: modules[s.modules[-1]] for s in stages}
    chains: dict[str, list[nn.Module]] = {}
    chain: list[nn.Module] = []
    for s in stages:
        chain = chain + [modules[p] for p in s.modules]
        chains[s.name] = chain
    _, c, h, w = input_shape(name)
    return Subject("model", name, model, names, InputSpec(c, (h, w)), class_names(name), str(weights), None,
                   hooks, chains, {s.name: s for s in stages})

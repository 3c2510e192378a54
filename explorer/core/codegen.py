"""A stack as plain PyTorch: what ``print(model)`` shows, its named parameters, and a runnable,
self-contained module that computes exactly what the app computes (same weights, same ops).

Everything here builds modules on the meta device: nothing is allocated, so it is cheap enough to
call on every edit. The generated code and ``model_repr`` describe the same module, so the repr
shown in the window is what ``print(ExplorerNet())`` prints."""

from __future__ import annotations

import keyword
import math
import re
import textwrap
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from explorer.core.layers import LAYER_TYPES, LayerArgError, LayerSpec, check_args, indices_recorders, layer_seed
from explorer.core.stack import Stack

DEFAULT_CLASS_NAME = "ExplorerNet"
RANDOM_FLAG = "reproduce_app_randomness"     # instance attribute of generated train-mode models


class CodegenError(ValueError):
    """A stack that cannot be written as a module (an argument torch would refuse); one sentence."""


# ---------------------------------------------------------------- names
def _reserved_names() -> set[str]:
    names = set(dir(nn.Module)) | set(vars(nn.Module()))
    return names | {"training", RANDOM_FLAG}


_RESERVED = _reserved_names()


def identifier(name: str) -> str:
    """A valid Python attribute name for a layer name: 'conv 1' -> 'conv_1', '1st' -> 'layer_1st',
    'class' -> 'class_' (keywords and nn.Module's own attributes such as 'forward' get a trailing _)."""
    s = re.sub(r"[^0-9A-Za-z_]", "_", name.strip()).lstrip("_")   # a leading __ would be name-mangled
    if not s:
        s = "layer"
    elif s[0].isdigit():
        s = "layer_" + s
    if keyword.iskeyword(s) or keyword.issoftkeyword(s) or s in _RESERVED:
        s += "_"
    return s


def attribute_names(stack: Stack) -> dict[str, str]:
    """Layer name -> the attribute name the generated module uses, unique over all layers (disabled
    ones too, so that enabling a layer never renames another one)."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for spec in stack.layers:
        base = identifier(spec.name)
        attr, n = base, 2
        while attr in taken:
            attr = f"{base}_{n}"
            n += 1
        taken.add(attr)
        out[spec.name] = attr
    return out


def _comment(text: str) -> str:
    """Text that is safe on one comment line."""
    return re.sub(r"[\x00-\x1f\x7f\u2028\u2029]", " ", text)


# ---------------------------------------------------------------- what each layer is built from
@dataclass
class _Layer:
    spec: LayerSpec
    attr: str
    kwargs: dict          # the given arguments as torch takes them, in torch's order
    positional: int       # how many leading kwargs are written positionally
    needs_indices: bool   # MaxPool2d that a later enabled MaxUnpool2d reads
    returns_indices: bool


def _plan(stack: Stack) -> list[_Layer]:
    """The enabled layers with their constructor arguments (only those the user gave; the defaults
    stay torch's) and the pool/unpool wiring."""
    attrs = attribute_names(stack)
    wanted = {s.indices_from for s in stack.layers if s.enabled and s.layer_type.takes_indices and s.indices_from}
    plan = []
    for spec in stack.layers:
        if not spec.enabled:
            continue
        t = spec.layer_type
        unknown = [k for k in spec.args if k not in t.arg_names]
        if unknown:
            raise CodegenError(f"{spec.type} '{spec.name}' has no argument '{unknown[0]}'.")
        kwargs = {}
        try:
            check_args(spec.type, spec.args)          # the rules between arguments, as build_module checks them
            for a in t.args:
                if a.name in spec.args:
                    kwargs[a.name] = a.check(spec.args[a.name])
        except LayerArgError as e:
            raise CodegenError(f"{spec.type} '{spec.name}': {e}") from None
        positional = 0
        for a in t.args:
            if a.required and a.name in kwargs:
                positional += 1
            else:
                break
        needs = t.records_indices and spec.name in wanted
        returns = t.records_indices and (needs or bool(kwargs.get("return_indices", False)))
        if needs:
            kwargs["return_indices"] = True
        plan.append(_Layer(spec, attrs[spec.name], kwargs, positional, needs, returns))
    return plan


def _printable(stack: Stack, class_name: str = DEFAULT_CLASS_NAME) -> nn.Module:
    """The generated module's layers on the meta device, in a class with the generated class name."""
    cls = type(class_name, (nn.Module,), {"__module__": "__main__"})
    model = cls()
    for layer in _plan(stack):
        try:
            with torch.device("meta"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                module = layer.spec.layer_type.cls(**layer.kwargs)
        except Exception as e:   # torch refused an argument check_args let through
            raise CodegenError(f"{layer.spec.type} '{layer.spec.name}': {e}") from None
        model.add_module(layer.attr, module)
    return model


def model_repr(stack: Stack, class_name: str = DEFAULT_CLASS_NAME) -> str:
    """What ``print(model)`` prints for the module ``pytorch_code`` writes (disabled layers left out)."""
    return repr(_printable(stack, class_name))


def named_parameters(stack: Stack) -> list[tuple[str, tuple[int, ...], int]]:
    """(name, shape, count) of every parameter of the enabled layers, named as in the generated
    module (e.g. 'conv1.weight'); nothing is allocated."""
    return [(name, tuple(p.shape), p.numel()) for name, p in _printable(stack).named_parameters()]


# ---------------------------------------------------------------- values as Python source
def _value(v) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "float('nan')"
        if math.isinf(v):
            return "float('inf')" if v > 0 else "float('-inf')"
        return repr(v)
    if isinstance(v, tuple):
        return "(" + ", ".join(_value(x) for x in v) + ("," if len(v) == 1 else "") + ")"
    return repr(v)


def _constructor(layer: _Layer) -> str:
    parts = []
    for i, (k, v) in enumerate(layer.kwargs.items()):
        parts.append(_value(v) if i < layer.positional else f"{k}={_value(v)}")
    return f"nn.{layer.spec.type}({', '.join(parts)})"


def _nested(values, indent: str, width: int = 100) -> str:
    """A nested list of numbers as readable source: innermost lists wrapped at ``width``."""
    if not isinstance(values, list):
        return _value(values)
    if not values:
        return "[]"
    leaves, v = 1, values
    while isinstance(v, list) and v:      # rectangular: the first path gives the shape
        leaves, v = leaves * len(v), v[0]
    if leaves * 3 <= width:               # short enough that one line might do
        flat = _flat(values)
        if len(flat) + len(indent) + 2 <= width:
            return flat
    if not isinstance(values[0], list):
        text = ", ".join(_value(v) for v in values)
        if len(text) + len(indent) + 2 <= width:
            return f"[{text}]"
        lines = textwrap.wrap(text, width=max(40, width - len(indent) - 4), break_long_words=False,
                              break_on_hyphens=False)
        inner = indent + "    "
        return "[\n" + "\n".join(inner + line for line in lines) + "\n" + indent + "]"
    inner = indent + "    "
    items = [inner + _nested(v, inner, width) + "," for v in values]
    return "[\n" + "\n".join(items) + "\n" + indent + "]"


def _flat(values) -> str:
    if isinstance(values, list):
        return "[" + ", ".join(_flat(v) for v in values) + "]"
    return _value(values)


def _tensor_source(t: torch.Tensor, indent: str) -> str:
    t = t.detach().cpu()
    dtype = str(t.dtype)        # 'torch.float32'
    values = t.tolist()         # float32 -> Python float is exact, and repr() round-trips it
    if t.dim() == 0:
        return f"torch.tensor({_value(values)}, dtype={dtype})"
    return f"torch.tensor({_nested(values, indent)}, dtype={dtype})"


def _has_parameters(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


# ---------------------------------------------------------------- the module
def _input_shape(stack: Stack, plan: list[_Layer]) -> tuple[int, int, int]:
    channels = stack.input.channels
    if channels is None:   # the first layer that needs a channel count says what fits
        for layer in plan:
            channels = layer.spec.layer_type.input_channels(layer.spec.full_args())
            if channels is not None:
                break
    h, w = stack.input.size if stack.input.size is not None else (32, 32)
    return (channels or 3, h, w)


def pytorch_code(stack: Stack, class_name: str = DEFAULT_CLASS_NAME) -> str:
    """A runnable, self-contained Python module defining ``class_name`` (an nn.Module) that gives the
    same outputs as the app for this stack: same layers, same weights, same wiring of pool indices."""
    if not class_name.isidentifier() or keyword.iskeyword(class_name):
        raise CodegenError(f"{class_name!r} is not a valid class name.")
    plan = _plan(stack)
    printable = _printable(stack, class_name)
    modules = dict(printable.named_children())
    train = stack.mode == "train"
    random_layers = [l for l in plan if train and l.spec.layer_type.random_in_training]
    by_name = {s.name: s for s in stack.layers}
    position = {s.name: i for i, s in enumerate(stack.layers)}
    attrs = attribute_names(stack)
    plan_by_name = {l.spec.name: l for l in plan}

    out: list[str] = []
    w = out.append
    w('"""A stack from Feature Map Explorer as a PyTorch module.')
    w("")
    w("Run this file to build the model and pass a random image through it; print(model) shows its layers.")
    w('"""')
    w("")
    w("import torch")
    w("from torch import nn")
    w("")
    w("")
    w(f"class {class_name}(nn.Module):")
    w("    def __init__(self):")
    w("        super().__init__()")
    seeded = [l for l in plan if _has_parameters(modules[l.attr])]
    body_indent = "        "
    if seeded:
        w(f"        # Feature Map Explorer seeds each layer's initial weights from the stack seed ({stack.seed})")
        w("        # and the layer's name, so adding, removing or moving a layer leaves the other layers'")
        w("        # weights alone. Seeding the same way here gives exactly the weights the app shows.")
        w("        # fork_rng leaves the global random state as it was.")
        w("        with torch.random.fork_rng(devices=[]):")
        body_indent = "            "
    if random_layers:
        w(f"{body_indent}# The app draws each {'/'.join(t.name for t in LAYER_TYPES.values() if t.random_in_training)} layer's randomness from a fixed seed,")
        w(f"{body_indent}# so every run shows the same mask; set this to False to train with fresh randomness.")
        w(f"{body_indent}self.{RANDOM_FLAG} = True")
    for spec in stack.layers:
        if not spec.enabled:
            w(f"{body_indent}# {_comment(spec.name)} ({spec.type}) is disabled: its input passes through unchanged")
            continue
        layer = plan_by_name[spec.name]
        if layer in seeded:
            w(f"{body_indent}torch.manual_seed({layer_seed(stack.seed, spec.name)})  # seed of '{_comment(spec.name)}'")
        line = f"{body_indent}self.{layer.attr} = {_constructor(layer)}"
        if layer.attr != spec.name:
            line += f"  # '{_comment(spec.name)}' in the app"
        w(line)
        if spec.state:
            w(f"{body_indent}# Values set in the app (the stack's saved state), exact to the bit:")
            w(f"{body_indent}self.{layer.attr}.load_state_dict({{")
            inner = body_indent + "    "
            for key, tensor in spec.state.items():
                w(f"{inner}{key!r}: {_tensor_source(tensor, inner)},")
            w(f"{body_indent}}}, strict=False)")

    w("")
    w("    def forward(self, x):")
    for spec in stack.layers:
        if not spec.enabled:
            w(f"        # {_comment(spec.name)} ({spec.type}) is disabled")
            continue
        layer = plan_by_name[spec.name]
        a = layer.attr
        if layer.spec.layer_type.records_indices:
            if layer.needs_indices:
                w(f"        {a}_size = x.shape[-2:]  # the unpooling restores this size")
            if layer.returns_indices:
                w(f"        x, {a}_indices = self.{a}(x)")
            else:
                w(f"        x = self.{a}(x)")
            continue
        if layer.spec.layer_type.takes_indices:
            source = by_name.get(spec.indices_from) if spec.indices_from else None
            if source is None or not source.layer_type.records_indices or not source.enabled \
                    or position[source.name] > position[spec.name]:
                why = ("which is disabled" if source is not None and not source.enabled
                       else f"which is not an earlier {' or '.join(indices_recorders())}")
                msg = f"{spec.type} '{spec.name}' takes its indices from {spec.indices_from!r}, {why}."
                w(f"        raise RuntimeError({msg!r})")
                continue
            p = attrs[source.name]
            w(f"        x = self.{a}(x, {p}_indices, output_size={p}_size)  # where '{_comment(source.name)}' found each maximum")
            continue
        if layer in random_layers:
            w(f"        if self.training and self.{RANDOM_FLAG}:")
            w(f"            torch.manual_seed({layer_seed(stack.seed, spec.name) + 1})  # the app's seed for this layer's randomness")
        w(f"        x = self.{a}(x)")
    w("        return x")
    w("")
    w("")
    c, h, wd = _input_shape(stack, plan)
    w('if __name__ == "__main__":')
    w(f"    model = {class_name}()")
    if train:
        w("    # The app runs this stack in training mode: BatchNorm normalises with the batch's own")
        w("    # statistics and Dropout drops values. model.eval() switches both to inference behaviour.")
        w("    model.train()")
    else:
        w("    model.eval()  # as the app runs it: BatchNorm uses running statistics, Dropout passes everything")
    w("    print(model)")
    w(f"    x = torch.rand(1, {c}, {h}, {wd})")
    w("    with torch.no_grad():")
    w("        y = model(x)")
    w('    print("output shape:", tuple(y.shape))')
    return "\n".join(out) + "\n"

"""The hooked forward pass: every module that becomes or joins a stage gets a pre- and a post-hook,
and the hook calls of one pass become one ``TraceRecord`` per stage.

Captured maps stay on the device; they are kept by reference (no copy) unless a later in-place
operation changed one, in which case the pass is repeated once with copies (checked via the
tensors' version counters), so what is kept is always what the stage produced."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from explorer.core.devices import is_out_of_memory, out_of_memory_message
from explorer.core.receptive_field import POOLS, window
from explorer.core.walkthrough.records import Kind, WalkthroughError

_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.Sigmoid, nn.Tanh, nn.SiLU,
                nn.Hardswish, nn.Hardsigmoid, nn.PReLU, nn.RReLU, nn.Mish)
_ROLES = ((nn.Conv2d, "conv"), (POOLS, "pool"), (nn.BatchNorm2d, "bn"), (_ACTIVATIONS, "act"),
          ((nn.Dropout, nn.Dropout2d), "drop"), (nn.Linear, "linear"), (nn.Flatten, "flatten"),
          (nn.Softmax, "softmax"))
_BRANCH_NAMES = ("downsample", "shortcut")   # parallel paths inside a block: not on the receptive-field path


@dataclass
class OpaqueInner:
    """What the hooks inside one opaque block (a ResNet BasicBlock) saw while it ran: the
    multiply-adds of its convolutions and linears, and the windows of its main path in order."""
    path: str
    macs: int = 0
    windows: list[tuple[int, int, float]] = field(default_factory=list)


@dataclass
class TraceRecord:
    """One stage as the hooks saw it, before it is measured and described."""
    kind: Kind
    name: str                                  # module path, or "flatten" / "softmax" when synthesized
    modules: list[tuple[str, nn.Module]]       # (path, module) folded into this stage, in the order they ran
    input_shape: tuple[int, ...]
    synthesized: bool = False                  # made from the tensors the hooks saw, no module of its own
    main: nn.Module | None = None              # the module the stage is named after
    output: torch.Tensor | None = None         # the stage's output as kept (by reference, or a copy)
    output_shape: tuple[int, ...] = ()
    version: int = 0                           # the output's version counter when it was kept
    inner: OpaqueInner | None = None           # opaque stages only


def numel_per_image(shape) -> int:
    n = 1
    for v in shape[1:]:
        n *= v
    return n


def pair(v) -> tuple[int, int]:
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def conv_macs(module: nn.Conv2d, out_shape) -> int:
    kh, kw = pair(module.kernel_size)
    return numel_per_image(out_shape) * (module.in_channels // module.groups) * kh * kw


def role_of(module: nn.Module) -> str | None:
    for types, role in _ROLES:
        if isinstance(module, types):
            return role
    return None


def targets(model: nn.Module) -> list[tuple[str, nn.Module, str]]:
    """(path, module, role) for every module that becomes or joins a stage: the model and its
    Sequentials are opened, known layers are stages, anything else is one opaque stage."""
    out = []

    def visit(prefix: str, module: nn.Module) -> None:
        for name, child in module.named_children():
            path = f"{prefix}.{name}" if prefix else name
            role = role_of(child)
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


class Tracer:
    """Turns the hook calls of one forward pass into stages."""

    def __init__(self, model: nn.Module, keep_copies: bool):
        self.model = model
        self.keep_copies = keep_copies
        self.records: list[TraceRecord] = []
        self.live = None                  # the current stage's output as the network has it
        self.pending: list[tuple[str, nn.Module]] = []   # Dropout waiting for the stage it precedes
        self.running: str | None = None
        self.opaque: OpaqueInner | None = None   # inner bookkeeping of the opaque module running now
        self.handles = []

    # -- set-up
    def attach(self) -> None:
        for path, module, role in targets(self.model):
            self.handles.append(module.register_forward_pre_hook(self._pre(path, module, role)))
            self.handles.append(module.register_forward_hook(self._post(path, module, role)))
            if role == "opaque":
                for inner_path, inner in module.named_modules():
                    if inner is module or not isinstance(inner, (nn.Conv2d, nn.Linear, *POOLS)):
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
                self.opaque = OpaqueInner(path)
        return hook

    def _inner(self, path, module):
        def hook(mod, args, out):
            if self.opaque is None or not isinstance(out, torch.Tensor):
                return
            if isinstance(mod, nn.Conv2d):
                self.opaque.macs += conv_macs(mod, out.shape)
            elif isinstance(mod, nn.Linear):
                rows = out.numel() // max(1, out.shape[-1]) // max(1, out.shape[0])
                self.opaque.macs += mod.in_features * mod.out_features * rows
            found = window(mod, 0)      # along H: the known models are square
            inner_name = path[len(self.opaque.path) + 1:]
            if found is not None and not any(part in _BRANCH_NAMES for part in inner_name.split(".")):
                self.opaque.windows.append(found)
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
            if role in ("bn", "act", "drop", "softmax") and follows and current.kind in foldable:
                current.modules.append((path, mod))   # folded into the conv / linear (/ pool) before it
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
                self.records[-1].inner = self.opaque
                self.opaque = None
        return hook

    def _maybe_flatten(self, x, role) -> None:
        """torch.flatten called in a model's forward: a stage made from the tensor that arrived."""
        if role == "flatten" or not isinstance(x, torch.Tensor) or not self.records:
            return
        last = self.records[-1]
        if x.dim() == 2 and len(last.output_shape) >= 3 and x.shape[1] == numel_per_image(last.output_shape):
            self._new("flatten", "flatten", [], self.live, x, synthesized=True)

    def _new(self, kind, name, modules, x, out, synthesized=False, main=None) -> None:
        record = TraceRecord(kind, name, list(modules), tuple(x.shape) if isinstance(x, torch.Tensor) else (),
                             synthesized, main)
        self.records.append(record)
        self._set_output(record, out)

    def _set_output(self, record, out) -> None:
        self.live = out
        record.output = out.detach().clone() if self.keep_copies else out
        record.output_shape = tuple(out.shape)
        record.version = out._version


def run_traced(model: nn.Module, x: torch.Tensor, keep_copies: bool, params=None) -> tuple[Tracer, torch.Tensor]:
    """One forward pass with the hooks on (``params``: run with these tensors instead, e.g. meta ones).
    Raises WalkthroughError naming the module that failed, with the trace so far."""
    tracer = Tracer(model, keep_copies)
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


def probabilities_of(tracer: Tracer, logits: torch.Tensor) -> torch.Tensor | None:
    """The softmax of the class scores; the model's own output when it already ends in a Softmax."""
    if logits.dim() != 2:
        return None
    last = tracer.records[-1] if tracer.records else None
    if last is not None and (last.kind == "softmax" or isinstance(last.modules[-1][1], nn.Softmax)):
        return logits
    return torch.softmax(logits.detach(), dim=-1)


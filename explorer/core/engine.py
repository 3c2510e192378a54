"""Runs a stack layer by layer and keeps, for every layer, its shapes, parameter count, time and
output (left on the device). A runner remembers its last run, so after an edit only the layers at
and after the edited one are computed again. Shapes come from the layers' shape rules (shapes.py), without torch."""

from __future__ import annotations

import copy
import dataclasses
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from explorer.core.checks import LayerRunError, explain_exception
from explorer.core.devices import is_out_of_memory, out_of_memory_message, resolve_device, synchronize
from explorer.core.identity import SameTensor
from explorer.core.layers import (LayerArgError, LayerSpec, ShapeContext, build_module, format_bytes, forward_layer,
                                  layer_bytes, layer_seed, param_count)
from explorer.core.shapes import ShapeRow, infer_shapes
from explorer.core.stack import Stack, layer_structure


@dataclass
class LayerResult:
    index: int
    name: str
    type: str
    enabled: bool
    input_shape: tuple[int, ...] | None = None
    output_shape: tuple[int, ...] | None = None
    params: int = 0
    seconds: float = 0.0
    output: torch.Tensor | None = None
    error: str | None = None
    indices: torch.Tensor | None = field(default=None, repr=False)   # layers that record indices (MaxPool2d)
    reused: bool = False                                              # taken from the previous run


@dataclass
class RunResult:
    layers: list[LayerResult]
    device: torch.device
    input_shape: tuple[int, ...]
    seconds: float = 0.0
    cancelled: bool = False

    @property
    def error(self) -> str | None:
        for layer in self.layers:
            if layer.error:
                return layer.error
        return None

    @property
    def failed_index(self) -> int | None:
        for layer in self.layers:
            if layer.error:
                return layer.index
        return None

    @property
    def ok(self) -> bool:
        return not self.cancelled and self.error is None

    @property
    def computed(self) -> list[int]:
        return [r.index for r in self.layers if not r.reused]


def spec_key(spec: LayerSpec) -> tuple:
    """What identifies a layer's computation. State tensors count by identity (edits replace them)
    and version (in-place edits bump it), never by a bare id() that a new tensor could reuse."""
    state = tuple((k, SameTensor(v)) for k, v in sorted(spec.state.items())) if spec.state else ()
    return (*layer_structure(spec), state)


def _module_key(key: tuple, seed: int) -> tuple:
    """A module's key, from its layer's ``spec_key``: modules depend on type, name, args, the seed
    and state, not on enabled or indices_from. The state comes last: ``_same_but_state`` compares
    everything before it."""
    return (*key[:3], seed, key[5])


def _same_but_state(old: tuple, new: tuple) -> bool:
    """Whether two module keys differ in their tensors' numbers only, each naming the same tensors."""
    return old[:-1] == new[:-1] and [name for name, _ in old[-1]] == [name for name, _ in new[-1]]


def _forward(spec: LayerSpec, module: nn.Module | None, x: torch.Tensor, done: dict[str, LayerResult],
             source: LayerSpec | None = None, train: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One layer on its input (the output of ``source``, None for the stack's input); raises
    LayerRunError (or torch's error) if it cannot run. The layer's shape rule runs first, so a run
    refuses an input with the same sentence as the shape table."""
    if not spec.enabled:
        return x, None
    spec.layer_type.output_shape(spec, spec.full_args(), tuple(x.shape), ShapeContext(source, done, train))
    if getattr(module, "inplace", False):
        x = x.clone()    # an in-place layer would overwrite the previous layer's kept output
    # the indices earlier layers recorded (the rule has checked that the one this layer takes ran)
    kept = {name: (r.indices, tuple(r.input_shape[-2:])) for name, r in done.items() if r.indices is not None}
    return forward_layer(spec, module, x, kept)


def _tensor_bytes(shape: tuple[int, ...] | None, itemsize: int) -> int:
    n = itemsize
    for s in shape or ():
        n *= int(s)
    return n if shape is not None else 0


def available_memory(device: torch.device) -> int | None:
    """Bytes that can still be allocated on the device, or None when it cannot be told."""
    try:
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
        if device.type == "cpu":
            with open("/proc/meminfo") as f:
                for line in f:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
            return None
    except (OSError, RuntimeError, ValueError):
        return None
    return None


def layer_run_bytes(spec: LayerSpec, plan: LayerResult | ShapeRow, itemsize: int = 4) -> int:
    """What running one layer adds to memory: its output (and MaxPool2d's int64 indices), kept
    for the view, plus its parameters."""
    if not spec.enabled:
        return 0
    out = _tensor_bytes(plan.output_shape, itemsize)
    if spec.layer_type.records_indices:
        out += _tensor_bytes(plan.output_shape, 8)
    return out + layer_bytes(spec)


def estimate_run_bytes(stack: Stack, input_shape: tuple[int, ...], itemsize: int = 4) -> int:
    """Memory a whole run keeps (the input, every layer's output, the parameters), from shape
    inference alone: nothing is computed or allocated."""
    total = _tensor_bytes(tuple(input_shape), itemsize)
    for r in infer_shapes(stack, tuple(input_shape)):
        if r.error is None:
            total += layer_run_bytes(stack.layers[r.index], r, itemsize)
    return total


# Leave room for what a layer needs while it runs (workspaces, temporaries) and for the app itself.
MEMORY_MARGIN = 0.8


class StackRunner:
    """Runs stacks on one device and remembers the last run for incremental re-runs.
    Not thread-safe: one worker owns a runner."""

    def __init__(self, device: str | torch.device = "auto"):
        self.device = resolve_device(device)
        self._source: torch.Tensor | None = None      # held so its id cannot be reused by another tensor
        self._source_version = -1
        self._moved: torch.Tensor | None = None       # the source on the runner's device
        self._keys: list[tuple] = []
        self._results: list[LayerResult] = []
        self._modules: dict[tuple, nn.Module] = {}
        self._plan_key: tuple | None = None           # the shape inference of the last structure run
        self._plan: list[ShapeRow] = []

    def clear(self) -> None:
        self._source, self._moved = None, None
        self._keys, self._results, self._modules = [], [], {}
        self._plan_key, self._plan = None, []

    def _shape_plan(self, stack: Stack, input_shape: tuple[int, ...], layer_keys: list[tuple]) -> list[ShapeRow]:
        """Shapes from the layers' shape rules, for the memory check. Shapes depend on the layers'
        types, names, arguments, switches and the mode, never on their weights: a kernel-cell or
        seed edit reuses the last plan instead of inferring again."""
        # structure_key(stack), from the keys the run has written already (each spec_key without its state)
        key = (tuple(k[:-1] for k in layer_keys), input_shape, stack.mode)
        if key != self._plan_key:
            self._plan, self._plan_key = infer_shapes(stack, input_shape), key
        return self._plan

    def _module(self, spec: LayerSpec, key: tuple, seed: int, train: bool) -> nn.Module:
        """The module for ``key`` (``_module_key``), built, reloaded or as it was."""
        module = self._modules.get(key)
        if module is None:
            module = self._reload(key, spec) or build_module(spec, seed, self.device)
            self._modules[key] = module
        if train and any(True for _ in module.buffers()):
            # Training updates BatchNorm's running stats: run a fresh copy, so every training run starts
            # from the same state and the cached module keeps its untouched stats for evaluation.
            module = copy.deepcopy(module)
        module.train(train)
        return module

    def _reload(self, key: tuple, spec: LayerSpec) -> nn.Module | None:
        """The module this layer had before an edit of its tensors only (a kernel cell, a preset, a
        training preview), given the new numbers. Building it again repeats its seeded
        initialisation: 1.3 ms of a 3.3 ms layer for a 32->32 3x3 conv on 128x128 (the kernel-edit
        benchmark's layer 8). Only when the edit names the same tensors: a tensor no longer given
        must go back to its seeded value, which only a build makes. The old key goes, since its
        module now holds the new numbers (undo comes back here with the old ones)."""
        if not spec.state:
            return None
        for old_key, module in self._modules.items():
            if _same_but_state(old_key, key):
                del self._modules[old_key]
                module.load_state_dict(spec.state, strict=False)     # copies into its tensors, on its device
                return module
        return None

    def run(self, stack: Stack, x: torch.Tensor,
            should_stop: Callable[[], bool] | None = None,
            on_layer: Callable[[LayerResult, int], None] | None = None) -> RunResult:
        """Runs every layer on x (moved to the runner's device). ``should_stop`` is asked between layers;
        ``on_layer(result, total)`` is told after each one (for progress)."""
        started = time.perf_counter()
        train = stack.mode == "train"
        same_input = self._source is x and self._source_version == x._version
        if not same_input:
            self._source, self._source_version, self._moved = x, x._version, x.to(self.device)
        x = self._moved
        prefix = (stack.seed, stack.mode)
        keys, results = [], []
        done: dict[str, LayerResult] = {}
        reusable = same_input
        live_modules: set[tuple] = set()
        total = len(stack.layers)
        plan: list[ShapeRow] | None = None        # shapes from the shape rules, for the memory check
        budget: float | None = None
        kept = _tensor_bytes(tuple(x.shape), x.element_size())
        source: LayerSpec | None = None           # the layer whose output x is
        # Once per layer and run: the key writes the arguments out as JSON (a 10-layer stack spent
        # about 1 ms a run on keys when the cache, the kept modules, the module lookup and the shape
        # plan each made their own).
        layer_keys = [spec_key(spec) for spec in stack.layers]
        for i, spec in enumerate(stack.layers):
            if should_stop is not None and should_stop():
                self._keys, self._results = keys, results    # what ran is valid for this input
                return RunResult(results, self.device, tuple(self._moved.shape), time.perf_counter() - started,
                                 cancelled=True)
            key = layer_keys[i]
            module_key = _module_key(key, stack.seed)
            prefix = (prefix, key)
            keys.append(prefix)
            if reusable and i < len(self._keys) and self._keys[i] == prefix and self._results[i].error is None:
                result = self._results[i]          # the last run's result stays as it was
                if not result.reused:
                    result = dataclasses.replace(result, reused=True)
            else:
                if plan is None:
                    plan = self._shape_plan(stack, tuple(x.shape), layer_keys)
                    free = available_memory(self.device)
                    # The last run's outputs count as free: the reused ones are counted again in ``kept``,
                    # the others are let go as this run replaces them.
                    held = sum(_tensor_bytes(r.output_shape, x.element_size()) for r in self._results if r.output is not None)
                    budget = None if free is None else (free + held) * MEMORY_MARGIN
                reusable = False
                # a layer the shape rules refuse fails the same way below, before allocating anything
                ok = i < len(plan) and plan[i].error is None
                need = layer_run_bytes(spec, plan[i], x.element_size()) if ok else 0
                if budget is not None and kept + need > budget:
                    result = LayerResult(i, spec.name, spec.type, spec.enabled, input_shape=tuple(x.shape))
                    result.error = (f"{spec.type} '{spec.name}': running it would need {format_bytes(need)} more "
                                    f"({format_bytes(kept + need)} with the layers before it), more than the "
                                    f"{format_bytes(budget)} of memory the app can use on {self.device.type}; "
                                    f"use a smaller input or fewer channels.")
                else:
                    result = self._run_layer(i, spec, module_key, x, done, stack.seed, train, source)
            kept += layer_run_bytes(spec, result, x.element_size()) if result.error is None else 0
            live_modules.add(module_key)
            if spec.enabled:
                source = spec
            results.append(result)
            done[spec.name] = result
            if on_layer is not None:
                on_layer(result, total)
            if result.error:
                break
            x = result.output
        self._keys, self._results = keys, results
        self._modules = {k: m for k, m in self._modules.items() if k in live_modules}
        return RunResult(results, self.device, tuple(self._moved.shape), time.perf_counter() - started)

    def _run_layer(self, i: int, spec: LayerSpec, module_key: tuple, x: torch.Tensor, done: dict[str, LayerResult],
                   seed: int, train: bool, source: LayerSpec | None = None) -> LayerResult:
        result = LayerResult(i, spec.name, spec.type, spec.enabled, input_shape=tuple(x.shape))
        t0 = time.perf_counter()
        try:
            result.params = param_count(spec) if spec.enabled else 0
            module = self._module(spec, module_key, seed, train) if spec.enabled else None
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")          # e.g. Softmax's implicit-dim warning
                if train:
                    with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                        torch.manual_seed(layer_seed(seed, spec.name) + 1)
                        out, indices = _forward(spec, module, x, done, source, train)
                else:
                    out, indices = _forward(spec, module, x, done, source, train)
            synchronize(self.device)
        except (LayerRunError, LayerArgError) as e:
            result.error = f"{spec.type} '{spec.name}': {e}" if isinstance(e, LayerArgError) else str(e)
        except Exception as e:  # torch's own refusal, or running out of memory
            result.error = (out_of_memory_message(self.device, f"{spec.type} '{spec.name}'")
                            if is_out_of_memory(e) else explain_exception(spec, e))
            if is_out_of_memory(e) and self.device.type == "cuda":
                torch.cuda.empty_cache()
        else:
            result.output, result.indices = out, indices
            result.output_shape = tuple(out.shape)
        result.seconds = time.perf_counter() - t0
        return result


def run_stack(stack: Stack, x: torch.Tensor, device: str | torch.device = "auto") -> RunResult:
    """One run, nothing remembered: the headless entry point."""
    return StackRunner(device).run(stack, x)

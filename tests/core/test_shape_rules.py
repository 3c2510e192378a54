"""The layer types' output-shape rules (layers.py) against torch, and shape inference without torch.

The fuzz draws random arguments for every layer type from the type's own argument table (kinds,
minimums, choices), so a new layer type is covered without editing this file. For each case the
shape, the parameter count and whether the layer fails must agree with torch itself running the
layer on a small real tensor (stricter than the meta device, which skips some checks); so must
its weights' shapes and bytes."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import warnings

import pytest
import torch
from torch import nn

from explorer.core.layers import (LAYER_TYPES, Arg, LayerArgError, LayerSpec, check_args, layer_bytes, param_count,
                                  state_shapes)
from explorer.core.shapes import infer_shapes
from explorer.core.stack import Stack


pytestmark = pytest.mark.usefixtures("one_torch_thread")     # tests/core/conftest.py


# ---------------------------------------------------------------- without torch
def test_stacks_load_and_infer_shapes_without_importing_torch():
    """The first window shows the stack and its shapes before torch has loaded: loading, checking
    and shape inference must not import it. Every built-in example, in a fresh interpreter."""
    code = """
import json, sys
from explorer.core.examples import examples, load_example
from explorer.core.shapes import infer_shapes, total_params
out = []
for e in examples():
    stack = load_example(e.name)
    channels = stack.input.channels or 3
    h, w = stack.input.size or (64, 64)
    rows = infer_shapes(stack, (2, channels, h, w))
    out.append([e.name, len(stack.layers), [list(r.output_shape or []) for r in rows],
                [r.error for r in rows], total_params(rows)])
print(json.dumps({"torch": "torch" in sys.modules, "rows": out}))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["torch"] is False
    assert len(result["rows"]) >= 10
    for name, count, shapes, errors, params in result["rows"]:
        assert errors == [None] * count, name        # every example runs on its own input size
        assert all(shapes), name
    by_name = {r[0]: r for r in result["rows"]}
    assert by_name["vgg16"][2][-1] == [2, 1000] and by_name["vgg16"][4] == 138_357_544
    assert by_name["lenet"][2][-1] == [2, 10]


# ---------------------------------------------------------------- random arguments from the spec
def _random_value(rng: random.Random, arg: Arg, shape: tuple[int, ...]):
    """A random value of the argument's kind; channel and feature counts mostly match the input."""
    if arg.name in ("in_channels", "num_features") and len(shape) >= 3 and rng.random() < 0.8:
        return shape[-3] if arg.name == "in_channels" else shape[1]
    if arg.name == "in_features" and rng.random() < 0.8:
        return shape[-1]
    if arg.name == "num_parameters" and len(shape) >= 2 and rng.random() < 0.5:
        return shape[1]
    low = int(arg.minimum) if arg.minimum is not None else -3
    k = arg.kind
    small = lambda lo=low: rng.randint(lo, lo + 5)                          # noqa: E731
    if k in ("int", "opt_int"):
        return None if k == "opt_int" and rng.random() < 0.3 else small()
    if k == "dim":
        return None if rng.random() < 0.3 else rng.randint(-5, 4)
    if k in ("float", "opt_float"):
        if k == "opt_float" and rng.random() < 0.2:
            return None
        lo = arg.minimum if arg.minimum is not None else -2.0
        hi = arg.maximum if arg.maximum is not None else lo + 3.0
        return rng.uniform(lo, hi)
    if k in ("bool", "opt_bool"):
        return rng.choice([True, False, None] if k == "opt_bool" else [True, False])
    if k == "choice":
        return rng.choice(arg.choices)
    if k in ("pair", "opt_pair", "padding", "size"):
        if k in ("opt_pair", "size") and rng.random() < 0.4:
            return None
        if k == "padding" and rng.random() < 0.3:
            return rng.choice(["same", "valid"])
        lo = low if k != "size" else 1
        return small(lo) if rng.random() < 0.6 else [small(lo), small(lo)]
    if k == "scale":
        if rng.random() < 0.4:
            return None
        f = lambda: round(rng.uniform(0.2, 3.0), rng.choice([0, 1, 3]))  # noqa: E731
        return f() if rng.random() < 0.7 else [f(), f()]
    raise AssertionError(f"no generator for argument kind {k}; add one here")


def _random_shape(rng: random.Random) -> tuple[int, ...]:
    dims = rng.choices([4, 3, 2], weights=[8, 1, 1])[0]
    sizes = (1, 1, 2, 3, 4, 5, 7, 8, 12)              # small sizes often: that is where the edge cases are
    shape = [rng.choice((1, 1, 2, 3)), rng.randint(1, 4), rng.choice(sizes), rng.choice(sizes)]
    return tuple(shape[:dims]) if dims != 3 else tuple(shape[1:])


def _random_spec(rng: random.Random, type_name: str, shape: tuple[int, ...], name: str = "x") -> LayerSpec | None:
    """A spec whose arguments pass the app's own checks, or None after too many tries."""
    for _ in range(50):
        args = {a.name: _random_value(rng, a, shape) for a in LAYER_TYPES[type_name].args
                if a.required or rng.random() < 0.6}
        try:
            check_args(type_name, args)
        except LayerArgError:
            continue
        return LayerSpec(type_name, name, args)
    return None


def _torch_run(specs: list[LayerSpec], shape: tuple[int, ...], train: bool):
    """What torch itself does with the layers: (output shape, and of the last layer the parameter
    count, state_dict() shapes and bytes),
    or None where it refuses the input or gives an empty output (the app refuses that: nothing to show)."""
    x = torch.rand(shape)
    indices, pool_in = None, None
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for spec in specs:
                kwargs = check_args(spec.type, spec.args)
                if spec.type == "MaxPool2d":
                    kwargs["return_indices"] = True
                module = getattr(nn, spec.type)(**kwargs).train(train)
                if spec.type == "MaxPool2d":
                    pool_in = x.shape
                    x, indices = module(x)
                elif spec.type == "MaxUnpool2d":
                    x = module(x, indices, output_size=list(pool_in[-2:]))
                else:
                    x = module(x)
    except (RuntimeError, ValueError, IndexError):
        return None
    if not x.numel():
        return None
    state = module.state_dict()
    return (tuple(x.shape), sum(p.numel() for p in module.parameters()),
            [(k, tuple(v.shape)) for k, v in state.items()], sum(v.numel() * v.element_size() for v in state.values()))


def _final_number(line: str) -> int:
    return int(re.findall(r"= (-?\d+)\s*(?:\(|;|$)", line)[-1])


CASES_PER_TYPE = 300

# Inputs torch takes but the app refuses on purpose, with the reason.
DELIBERATE_REFUSALS = [
    # on [C, L, W] torch's interpolate resizes a batch of 1-D signals, not an image
    ("Upsample", re.compile(r"needs an image-shaped input .* but its input has shape \[\d+, \d+, \d+\]")),
]


@pytest.mark.parametrize("type_name", sorted(LAYER_TYPES))
def test_shape_rules_agree_with_torch_on_random_arguments(type_name):
    rng = random.Random(f"shape-rules-{type_name}")
    wrong, ran, refused = [], 0, 0
    for _ in range(CASES_PER_TYPE):
        shape = _random_shape(rng)
        train = rng.random() < 0.4
        spec = _random_spec(rng, type_name, shape)
        if spec is None:
            continue
        specs = [spec]
        if type_name == "MaxUnpool2d":                  # it needs an earlier MaxPool2d's indices
            pool = _random_spec(rng, "MaxPool2d", shape, "pool")
            if pool is None:
                continue
            if rng.random() < 0.5:                       # often the pool's own window, as users set it
                spec.args = {k: v for k, v in pool.args.items() if k in ("kernel_size", "stride", "padding")}
            spec.indices_from = "pool"
            specs = [pool, spec]
        rows = infer_shapes(Stack(specs, mode="train" if train else "eval"), shape)
        row = rows[-1]
        real = _torch_run(specs, shape, train)
        case = f"{[(s.type, s.args) for s in specs]} on {list(shape)} ({'train' if train else 'eval'})"
        if len(rows) < len(specs):                      # the pool before an unpool failed
            real_pool = _torch_run(specs[:1], shape, train)
            if real_pool is not None:
                wrong.append(f"{case}: the pool fails here ({rows[-1].error}) but not in torch")
            continue
        if real is None:
            refused += 1
            if row.error is None:
                wrong.append(f"{case}: torch refuses it but the rule gives {row.output_shape}")
            continue
        ran += 1
        real_shape, real_params, real_state, real_bytes = real
        if row.error is not None and any(t == type_name and r.search(row.error) for t, r in DELIBERATE_REFUSALS):
            continue
        if row.error is not None:
            wrong.append(f"{case}: torch gives {real_shape} but the rule says: {row.error}")
        elif row.output_shape != real_shape:
            wrong.append(f"{case}: the rule gives {row.output_shape}, torch {real_shape}")
        elif row.params != real_params or param_count(spec) != real_params:
            wrong.append(f"{case}: {row.params} parameters, torch {real_params}")
        elif list(state_shapes(spec).items()) != real_state or layer_bytes(spec) != real_bytes:
            wrong.append(f"{case}: state {state_shapes(spec)} ({layer_bytes(spec)} bytes), torch {real_state} ({real_bytes})")
        elif row.formula and [_final_number(line) for line in row.formula] != list(real_shape[-2:]):
            if not all("is used" in line or _final_number(line) == n for line, n in zip(row.formula, real_shape[-2:])):
                wrong.append(f"{case}: formulas {row.formula}, torch {real_shape}")
        assert "\n" not in (row.error or "")
    assert wrong == [], f"{len(wrong)} disagreements, e.g.\n" + "\n".join(wrong[:8])
    assert ran >= CASES_PER_TYPE // 10, f"only {ran} cases ran: the generator needs care for {type_name}"
    if type_name in ("Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d", "Linear", "BatchNorm2d", "Flatten"):
        assert refused > 0, "the random cases should include inputs torch refuses"

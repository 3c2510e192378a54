"""The ordered stack of layers and its JSON file format (``feature-map-explorer/stack``, version 1).

Loading checks everything and names the layer (index and name) and the key in its message;
saving writes atomically and round-trips weights bit-exactly (float32 → JSON double → float32)."""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from explorer.core.layers import (LAYER_TYPES, LayerArgError, LayerSpec, PendingState, check_args, default_stem,
                                  indices_recorders, show, state_dtypes,
                                  state_shapes)

FORMAT = "feature-map-explorer/stack"
VERSION = 1
MODES = ("eval", "train")
MAX_NAME_LENGTH = 100
MAX_SEED = 2**63 - 1
# The most pixels an input may have, an image file or a stack's resize (inputs.py uses it too; it
# lives here because a stack is loaded and checked without torch, and inputs.py imports torch).
DEFAULT_MAX_PIXELS = 64_000_000
_FLOAT32_MAX = 3.4028234663852886e38       # float(torch.finfo(torch.float32).max), without importing torch


class StackError(ValueError):
    """A stack file or dict that cannot be used; the message is one sentence for the user."""


@dataclass
class InputSpec:
    """How an input is prepared: channels 1 (grayscale) or 3 (RGB), and an optional [H, W] resize."""

    channels: int | None = None
    size: tuple[int, int] | None = None


@dataclass
class Stack:
    layers: list[LayerSpec] = field(default_factory=list)
    seed: int = 0
    input: InputSpec = field(default_factory=InputSpec)
    mode: str = "eval"
    description: str = ""

    def names(self) -> list[str]:
        return [layer.name for layer in self.layers]

    def index_of(self, name: str) -> int:
        return self.names().index(name)

    def copy(self) -> "Stack":
        return Stack([layer.copy() for layer in self.layers], self.seed,
                     InputSpec(self.input.channels, self.input.size), self.mode, self.description)


def layer_structure(spec: LayerSpec) -> tuple:
    """One layer's type, name, arguments (written out as JSON) and switches: its part of
    ``structure_key``, and the engine's cache key without the tensors."""
    return (spec.type, spec.name, json.dumps(spec.args, sort_keys=True, default=list), spec.enabled, spec.indices_from)


def structure_key(stack: Stack) -> tuple:
    """The layers' types, names, arguments and switches: what the shapes, ``print(model)`` and the
    parameter list depend on, never the weights or the seed (a kernel edit or a training preview
    keeps the key)."""
    return tuple(layer_structure(s) for s in stack.layers)


def default_name(stack_names: list[str] | set[str], type_name: str, hints: dict[str, int] | None = None) -> str:
    """A readable unique name: conv1, conv2, relu1, pool1, ... ``hints`` (base -> first number
    worth trying) lets a loader that only ever adds names find each one without starting at 1."""
    base = default_stem(type_name)
    taken = stack_names if isinstance(stack_names, (set, frozenset)) else set(stack_names)
    n = hints.get(base, 1) if hints is not None else 1
    while f"{base}{n}" in taken:
        n += 1
    if hints is not None:
        hints[base] = n
    return f"{base}{n}"


def name_problem(name: Any) -> str | None:
    """Why a layer name cannot be used (it appears in messages, file names and generated code),
    or None when it can."""
    if not isinstance(name, str) or not name.strip():
        return "'name' must be a non-empty string"
    if len(name) > MAX_NAME_LENGTH:
        return f"'name' must be at most {MAX_NAME_LENGTH} characters long, not {len(name):,}"
    if not name.isprintable():   # newlines, tabs, control characters, lone surrogates
        return f"'name' must be printable text on one line, not {show(name)}"
    if name != name.strip():
        return f"'name' must not start or end with spaces, not {show(name)}"
    return None


class _TooLarge:
    """A JSON number too large for Python to read or for a float to hold: kept as a marker so
    the check of the field it is in names the key instead of failing inside the JSON parser."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        digits = sum(c.isdigit() for c in self.text)
        return self.text if len(self.text) <= 24 else f"a {digits:,}-digit number"


def _parse_int(text: str) -> Any:
    return int(text) if len(text) <= 4000 else _TooLarge(text)   # Python refuses more than 4300 digits


def _parse_float(text: str) -> Any:
    value = float(text)
    return _TooLarge(text) if math.isinf(value) else value       # 1e400 would silently become infinity


# ---------------------------------------------------------------- reading
def _where(index: int, raw: dict) -> str:
    name = raw.get("name") if isinstance(raw, dict) else None
    t = raw.get("type") if isinstance(raw, dict) else None
    label = f"layer {index}"
    if name_problem(name) is None:
        label += f" '{name}'"
    if isinstance(t, str) and t in LAYER_TYPES:
        label += f" ({t})"
    return label


class _StateValueError(ValueError):
    pass


def _nested_shape(value: Any, depth: int) -> tuple[int, ...] | None:
    """Shape of a rectangular nested list of numbers at most ``depth`` deep, or None if ragged,
    too deep or not numeric. Raises _StateValueError for a number too large to hold."""
    if _is_number(value):
        return ()
    if isinstance(value, _TooLarge):
        raise _StateValueError(f"holds {value!r}, which is too large for a float32")
    if not isinstance(value, list) or depth <= 0:
        return None
    if not value:
        return (0,)
    inner = [_nested_shape(v, depth - 1) for v in value]
    if inner[0] is None or any(s != inner[0] for s in inner):
        return None
    return (len(value), *inner[0])


def _flat(value: Any) -> list:
    out, todo = [], [value]
    while todo:
        v = todo.pop()
        if isinstance(v, list):
            todo.extend(v)
        else:
            out.append(v)
    return out


_INT64_RANGE = (-2**63, 2**63 - 1)


def _check_state_values(value: Any, dtype_name: str) -> None:
    """Raises _StateValueError for a number the dtype cannot hold exactly (instead of torch's
    overflow error, or a silent conversion to infinity), in pure Python: the tensor is made later."""
    if dtype_name == "float32":
        largest = None
        for v in _flat(value):
            try:
                f = abs(float(v))
            except OverflowError:
                raise _StateValueError("holds a number too large for a float32") from None
            if math.isfinite(f) and (largest is None or f > largest):
                largest = f
        if largest is not None and largest > _FLOAT32_MAX:
            raise _StateValueError(f"holds {largest:g}, which is too large for a float32 "
                                   f"(at most {_FLOAT32_MAX:.4g})")
        return
    for v in _flat(value):
        if not _is_int(v) or not _INT64_RANGE[0] <= v <= _INT64_RANGE[1]:
            raise _StateValueError(f"must hold whole numbers (it counts something), not {show(v)}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _state_from_json(raw_state: Any, spec: LayerSpec, where: str) -> PendingState:
    """The checked state; its tensors are made when first used (that imports torch)."""
    if not isinstance(raw_state, dict):
        raise StackError(f"{where}: 'state' must be an object of tensors such as {{\"weight\": [...]}}.")
    expected = state_shapes(spec)
    dtypes = state_dtypes(spec)
    out = {}
    for key, value in raw_state.items():
        if key not in expected:
            names = ", ".join(expected) or "nothing (this layer has no parameters)"
            raise StackError(f"{where}: state has no entry {show(key)}; this layer's state holds {names}.")
        try:
            shape = _nested_shape(value, len(expected[key]))
            if shape is None:
                raise StackError(f"{where}: state '{key}' must be a rectangular nested list of numbers "
                                 f"with {len(expected[key])} levels.")
            if shape != expected[key]:
                raise StackError(f"{where}: state '{key}' has shape {list(shape)} but this layer expects {list(expected[key])}.")
            _check_state_values(value, dtypes[key])
            out[key] = (value, dtypes[key])
        except _StateValueError as e:
            raise StackError(f"{where}: state '{key}' {e}.") from None
    return PendingState(out)


def _layer_from_json(index: int, raw: Any, earlier: set[str], pools: set[str],
                     avoid: set[str] = frozenset(), hints: dict[str, int] | None = None) -> LayerSpec:
    """``earlier``: the names of the earlier layers; ``avoid``: those and the names given anywhere
    in the file, which a default name must not take; ``hints`` keeps default naming linear."""
    where = _where(index, raw)
    if not isinstance(raw, dict):
        raise StackError(f"{where}: each layer must be an object like {{\"type\": \"ReLU\"}}.")
    allowed = {"type", "name", "args", "state", "enabled", "indices_from"}
    extra = sorted(set(raw) - allowed)
    if extra:
        raise StackError(f"{where}: unknown key {show(extra[0])}; a layer has {', '.join(sorted(allowed))}.")
    t = raw.get("type")
    if not isinstance(t, str) or t not in LAYER_TYPES:
        known = ", ".join(LAYER_TYPES)
        raise StackError(f"{where}: unknown layer type {show(t)}; the known types are {known}.")
    name = raw.get("name")
    if name is None:
        name = default_name(avoid, t, hints)
        where = _where(index, {**raw, "name": name})
    elif (problem := name_problem(name)) is not None:
        raise StackError(f"{where}: {problem}.")
    if name in earlier:
        raise StackError(f"{where}: the name '{name}' is used by an earlier layer; names must be unique.")
    args = raw.get("args", {})
    if not isinstance(args, dict):
        raise StackError(f"{where}: 'args' must be an object of keyword arguments.")
    try:
        check_args(t, args)
    except LayerArgError as e:
        raise StackError(f"{where}: args '{e.key}': {e}") from None
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise StackError(f"{where}: 'enabled' must be true or false.")
    indices_from = raw.get("indices_from")
    if LAYER_TYPES[t].takes_indices:
        if not isinstance(indices_from, str) or indices_from not in pools:
            earlier = ", ".join(sorted(pools)) or "none in this stack"
            pool = " or ".join(indices_recorders())
            raise StackError(f"{where}: 'indices_from' must name an earlier {pool} (earlier {pool} layers: {earlier}), not {show(indices_from)}.")
    elif indices_from is not None:
        takers = " and ".join(n for n, lt in LAYER_TYPES.items() if lt.takes_indices)
        raise StackError(f"{where}: only {takers} takes 'indices_from'.")
    spec = LayerSpec(t, name, dict(args), None, enabled, indices_from)
    if "state" in raw and raw["state"] is not None:
        spec.state = _state_from_json(raw["state"], spec, where)
    return spec


def stack_from_dict(data: Any) -> Stack:
    if not isinstance(data, dict):
        raise StackError("A stack file must hold a JSON object with a 'layers' list.")
    fmt = data.get("format", FORMAT)
    if fmt != FORMAT:
        raise StackError(f"This is not a Feature Map Explorer stack: 'format' is {show(fmt)}, expected {FORMAT!r}.")
    version = data.get("version", VERSION)
    if not _is_int(version) or version != VERSION:
        raise StackError(f"Stack format version {show(version)} is not supported; this version of the app reads version {VERSION}.")
    allowed = {"format", "version", "seed", "input", "layers", "mode", "description"}
    extra = sorted(set(data) - allowed)
    if extra:
        raise StackError(f"Unknown top-level key {show(extra[0])}; a stack has {', '.join(sorted(allowed))}.")
    seed = data.get("seed", 0)
    if not _is_int(seed) or not 0 <= seed <= MAX_SEED:
        raise StackError(f"'seed' must be a whole number from 0 to {MAX_SEED:,}, not {show(seed)}.")
    mode = data.get("mode", "eval")
    if not isinstance(mode, str) or mode not in MODES:
        raise StackError(f"'mode' must be 'eval' or 'train', not {show(mode)}.")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise StackError("'description' must be a string.")
    input_spec = _input_from_json(data.get("input"))
    raw_layers = data.get("layers", [])
    if not isinstance(raw_layers, list):
        raise StackError("'layers' must be a list of layer objects.")
    layers: list[LayerSpec] = []
    pools: set[str] = set()
    # Sets grown as layers are read keep loading linear in the number of layers.
    avoid = {raw["name"] for raw in raw_layers if isinstance(raw, dict) and isinstance(raw.get("name"), str)}
    earlier: set[str] = set()
    hints: dict[str, int] = {}
    for i, raw in enumerate(raw_layers):
        spec = _layer_from_json(i, raw, earlier, pools, avoid, hints)
        layers.append(spec)
        earlier.add(spec.name)
        avoid.add(spec.name)
        if spec.layer_type.records_indices:
            pools.add(spec.name)
    return Stack(layers, seed, input_spec, mode, description)


def _input_from_json(raw: Any) -> InputSpec:
    if raw is None:
        return InputSpec()
    if not isinstance(raw, dict):
        raise StackError("'input' must be an object like {\"channels\": 3, \"size\": [32, 32]}.")
    extra = sorted(set(raw) - {"channels", "size"})
    if extra:
        raise StackError(f"input: unknown key {show(extra[0])}; input has channels and size.")
    channels = raw.get("channels")
    if channels is not None and (not _is_int(channels) or channels not in (1, 3)):
        raise StackError(f"input 'channels' must be 1 (grayscale) or 3 (RGB), not {show(channels)}.")
    size = raw.get("size")
    if size is not None:
        if (not isinstance(size, list) or len(size) != 2
                or not all(_is_int(v) and v >= 1 for v in size)):
            raise StackError(f"input 'size' must be [height, width] with whole numbers of at least 1, not {show(size)}.")
        if size[0] * size[1] > DEFAULT_MAX_PIXELS:   # the same limit as an image file; Python ints do not overflow
            raise StackError(f"input 'size' {size[0]} x {size[1]} has {size[0] * size[1]:,} pixels, more than the "
                             f"limit of {DEFAULT_MAX_PIXELS:,} that images have.")
        size = (size[0], size[1])
    return InputSpec(channels, size)


def parse_stack(text: str, source: str = "stack") -> Stack:
    try:
        data = json.loads(text, parse_int=_parse_int, parse_float=_parse_float)
    except json.JSONDecodeError as e:
        raise StackError(f"{source} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}).") from None
    except RecursionError:
        raise StackError(f"{source} is not valid JSON for a stack: it is nested too deeply.") from None
    return stack_from_dict(data)


def load_stack(path: str | os.PathLike) -> Stack:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StackError(f"Stack file '{path}' does not exist.") from None
    except IsADirectoryError:
        raise StackError(f"'{path}' is a folder, not a stack file.") from None
    except UnicodeDecodeError:
        raise StackError(f"Stack file '{path}' is not a text (JSON) file.") from None
    except OSError as e:
        raise StackError(f"Cannot read stack file '{path}': {e.strerror or e}.") from None
    try:
        return parse_stack(text, f"Stack file '{path.name}'")
    except StackError as e:
        msg = str(e)
        if not msg.startswith("Stack file"):
            msg = f"{path.name}: {msg}"
        raise StackError(msg) from None


# ---------------------------------------------------------------- writing
def _json_value(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def layer_to_dict(spec: LayerSpec) -> dict[str, Any]:
    d: dict[str, Any] = {"type": spec.type, "name": spec.name}
    if spec.args:
        d["args"] = {k: _json_value(v) for k, v in spec.args.items()}
    if spec.indices_from is not None:
        d["indices_from"] = spec.indices_from
    if not spec.enabled:
        d["enabled"] = False
    if spec.pending_state is not None:                  # still the lists it was loaded from
        d["state"] = spec.pending_state.lists()
    elif spec.state:
        d["state"] = {k: v.detach().cpu().tolist() for k, v in spec.state.items()}
    return d


def stack_to_dict(stack: Stack) -> dict[str, Any]:
    d: dict[str, Any] = {"format": FORMAT, "version": VERSION}
    if stack.description:
        d["description"] = stack.description
    d["seed"] = stack.seed
    if stack.mode != "eval":
        d["mode"] = stack.mode
    inp = {}
    if stack.input.channels is not None:
        inp["channels"] = stack.input.channels
    if stack.input.size is not None:
        inp["size"] = list(stack.input.size)
    if inp:
        d["input"] = inp
    d["layers"] = [layer_to_dict(layer) for layer in stack.layers]
    return d


def dump_stack(stack: Stack) -> str:
    return json.dumps(stack_to_dict(stack), indent=2, allow_nan=True) + "\n"


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write to a temporary file beside the target, flush it to disk, then rename over the target,
    so a crash mid-save leaves the old file or the new one, never half of either."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def save_stack(stack: Stack, path: str | os.PathLike) -> None:
    atomic_write_text(path, dump_stack(stack))

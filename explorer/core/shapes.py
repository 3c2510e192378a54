"""Shape inference without computing anything, and the output-size formula of each
Conv/ConvTranspose/Pool layer with the numbers filled in (as torch's documentation writes it)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from explorer.core.checks import pool_output_size
from explorer.core.engine import run_on_meta
from explorer.core.layers import LayerArgError, LayerSpec
from explorer.core.stack import Stack


@dataclass
class ShapeRow:
    index: int
    name: str
    type: str
    enabled: bool
    input_shape: tuple[int, ...] | None
    output_shape: tuple[int, ...] | None
    params: int
    formula: list[str] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index, "name": self.name, "type": self.type, "enabled": self.enabled,
            "input_shape": list(self.input_shape) if self.input_shape else None,
            "output_shape": list(self.output_shape) if self.output_shape else None,
            "params": self.params, "formula": self.formula, "error": self.error,
        }


def _pair(v: Any) -> tuple:
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _formula_lines(spec: LayerSpec, in_hw: tuple[int, int], out_hw: tuple[int, int] | None) -> list[str]:
    try:
        a = spec.full_args()
    except LayerArgError:
        return []
    lines = []
    for axis, n in zip("HW", range(2)):
        size = in_hw[n]
        t = spec.type
        if t == "Conv2d":
            k, s, d = _pair(a["kernel_size"])[n], _pair(a["stride"])[n], _pair(a["dilation"])[n]
            if a["padding"] == "same":
                lines.append(f"{axis}_out = {axis}_in = {size}  (padding='same')")
                continue
            p = 0 if a["padding"] == "valid" else _pair(a["padding"])[n]
            value = (size + 2 * p - d * (k - 1) - 1) // s + 1
            lines.append(f"{axis}_out = floor(({size} + 2*{p} - {d}*({k}-1) - 1) / {s} + 1) = {value}")
        elif t == "ConvTranspose2d":
            k, s, d = _pair(a["kernel_size"])[n], _pair(a["stride"])[n], _pair(a["dilation"])[n]
            p, op = _pair(a["padding"])[n], _pair(a["output_padding"])[n]
            value = (size - 1) * s - 2 * p + d * (k - 1) + op + 1
            lines.append(f"{axis}_out = ({size}-1)*{s} - 2*{p} + {d}*({k}-1) + {op} + 1 = {value}")
        elif t in ("MaxPool2d", "AvgPool2d"):
            k = _pair(a["kernel_size"])[n]
            s = _pair(a["stride"] if a["stride"] is not None else a["kernel_size"])[n]
            p = _pair(a["padding"])[n]
            d = _pair(a.get("dilation", 1))[n]
            rnd = "ceil" if a["ceil_mode"] else "floor"
            value = pool_output_size(size, k, s, p, d, a["ceil_mode"])
            if t == "MaxPool2d":
                lines.append(f"{axis}_out = {rnd}(({size} + 2*{p} - {d}*({k}-1) - 1) / {s} + 1) = {value}")
            else:
                lines.append(f"{axis}_out = {rnd}(({size} + 2*{p} - {k}) / {s} + 1) = {value}")
        elif t == "MaxUnpool2d":
            k = _pair(a["kernel_size"])[n]
            s = _pair(a["stride"] if a["stride"] is not None else a["kernel_size"])[n]
            p = _pair(a["padding"])[n]
            value = (size - 1) * s - 2 * p + k
            line = f"{axis}_out = ({size}-1)*{s} - 2*{p} + {k} = {value}"
            if out_hw is not None and out_hw[n] != value:
                line += f"; the input size of '{spec.indices_from}', {out_hw[n]}, is used"
            lines.append(line)
        elif t == "Upsample":
            if a["size"] is not None:
                lines.append(f"{axis}_out = size = {_pair(a['size'])[n]}")
            else:
                f = _pair(a["scale_factor"])[n]
                lines.append(f"{axis}_out = floor({size} * {f:g}) = {math.floor(size * f)}")
    return lines


def infer_shapes(stack: Stack, input_shape: tuple[int, ...]) -> list[ShapeRow]:
    """Per-layer shapes, parameter counts, formulas and the first error, for any input size, instantly.
    Layers after the first failing one are not listed (they have no input)."""
    rows = []
    for r in run_on_meta(stack, tuple(input_shape)):
        spec = stack.layers[r.index]
        formula = []
        if r.enabled and r.input_shape is not None and len(r.input_shape) >= 3:
            out_hw = tuple(r.output_shape[-2:]) if r.output_shape and len(r.output_shape) >= 3 else None
            formula = _formula_lines(spec, tuple(r.input_shape[-2:]), out_hw)
        rows.append(ShapeRow(r.index, r.name, r.type, r.enabled, r.input_shape, r.output_shape,
                             r.params, formula, r.error))
    return rows


def total_params(rows: list[ShapeRow]) -> int:
    return sum(r.params for r in rows)

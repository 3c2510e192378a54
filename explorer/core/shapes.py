"""Shape inference without torch: each layer type's output-shape rule (layers.py) applied along the
stack, with parameter counts, the output-size formula of each Conv/ConvTranspose/Pool/Upsample
layer with the numbers filled in (as torch's documentation writes it), and the first error.

The rules are the only source of shapes: a real run calls the same rule before each forward pass
(so the table and the run report the same sentence), and tests/core/test_shape_rules.py checks
them against torch for every layer type. What a rule cannot see (running out of memory) is
reported by the run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from explorer.core.checks import LayerRunError
from explorer.core.layers import LayerArgError, LayerSpec, ShapeContext, check_args, param_count
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


def infer_shapes(stack: Stack, input_shape: tuple[int, ...]) -> list[ShapeRow]:
    """Per-layer shapes, parameter counts, formulas and the first error, for any input size, instantly
    and without torch. Layers after the first failing one are not listed (they have no input)."""
    shape = tuple(int(n) for n in input_shape)
    rows: list[ShapeRow] = []
    earlier: dict[str, ShapeRow] = {}
    source = None
    train = stack.mode == "train"
    for i, spec in enumerate(stack.layers):
        row = ShapeRow(i, spec.name, spec.type, spec.enabled, shape, None, 0)
        if not spec.enabled:
            row.output_shape = shape
        else:
            try:
                row.params = param_count(spec)
                args = check_args(spec.type, spec.args)
                row.output_shape = spec.layer_type.output_shape(spec, args, shape, ShapeContext(source, earlier, train))
            except LayerArgError as e:
                row.error = f"{spec.type} '{spec.name}': {e}"
            except LayerRunError as e:
                row.error = str(e)
            else:
                source = spec
            row.formula = _formula(spec, shape, row.output_shape)
        rows.append(row)
        earlier[spec.name] = row
        if row.error:
            break
        shape = row.output_shape
    return rows


def _formula(spec: LayerSpec, shape: tuple[int, ...], output_shape: tuple[int, ...] | None) -> list[str]:
    """The formula lines, also for a layer that failed on its input (they show why)."""
    if len(shape) < 3:
        return []
    try:
        args = spec.full_args()
    except LayerArgError:
        return []
    out_hw = tuple(output_shape[-2:]) if output_shape and len(output_shape) >= 3 else None
    return spec.layer_type.formula(spec, args, tuple(shape[-2:]), out_hw)


def total_params(rows: list[ShapeRow]) -> int:
    return sum(r.params for r in rows)

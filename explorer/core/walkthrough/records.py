"""The walkthrough's typed results: a Stage per step (what torchinfo's ``LayerInfo`` is per layer),
the Walkthrough holding them with the captured outputs, and the error naming a failed stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

import torch
from torch import nn

from explorer.core.receptive_field import input_box

Kind = Literal["input", "conv", "pool", "flatten", "linear", "softmax", "opaque"]
KINDS: tuple[str, ...] = get_args(Kind)
RANDOM_NOTICE = "random weights: these maps show no learned features"


class WalkthroughError(RuntimeError):
    """A stage failed during the capture; ``stage`` names it, ``stages`` holds those that ran."""

    def __init__(self, message: str, stage: str | None = None, stages: list | None = None,
                 outputs: list | None = None):
        super().__init__(message)
        self.stage = stage
        self.stages = stages or []
        self.outputs = outputs or []
        self.tracer = None          # the trace up to the failure, set by the forward pass


@dataclass
class Stage:
    index: int                      # 0 is the Input stage
    name: str                       # module path ("features.0"); "input", "flatten", "softmax" when synthesized
    kind: Kind                      # one of KINDS
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


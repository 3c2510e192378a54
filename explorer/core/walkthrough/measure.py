"""The numbers of a stage: its parameters, its multiply-adds (one image) and how it moves the
receptive field, whose arithmetic is ``core.receptive_field``'s (shared with the Insight tools)."""

from __future__ import annotations

import math

from torch import nn

from explorer.core.receptive_field import RF, window
from explorer.core.walkthrough.trace import TraceRecord, conv_macs, numel_per_image


def new_params(record: TraceRecord, seen: set[int]) -> int:
    """Parameters of the record's modules not counted before (``seen`` holds the ids counted)."""
    params = 0
    for _, mod in record.modules:
        if id(mod) not in seen:
            seen.add(id(mod))
            params += sum(p.numel() for p in mod.parameters())
    return params


def macs(record: TraceRecord) -> int:
    if record.kind == "opaque" and record.inner is not None:
        return record.inner.macs
    out_shape = record.output_shape
    total = 0
    for _, mod in record.modules:
        if isinstance(mod, nn.Conv2d):
            total += conv_macs(mod, out_shape)
        elif isinstance(mod, nn.Linear):
            total += mod.in_features * mod.out_features
        elif isinstance(mod, nn.BatchNorm2d):
            total += numel_per_image(out_shape)
    return total


def advance_rf(rf: RF, record: TraceRecord) -> None:
    """Moves ``rf`` (along H: the known models are square) through the record's stage."""
    kind, in_shape, out_shape = record.kind, record.input_shape, record.output_shape
    if kind in ("flatten", "linear", "softmax") or len(out_shape) != 4 or len(in_shape) != 4:
        if len(out_shape) != 4:
            rf.lose()
        return
    if kind in ("conv", "pool"):
        for _, mod in record.modules:
            found = window(mod, 0)
            if found is not None:
                rf.apply(*found)
        return
    # opaque: an adaptive pool, or a block whose main path is its convolutions and pools in order
    mod = record.main
    in_h, out_h = in_shape[2], out_shape[2]
    if isinstance(mod, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        if in_h % out_h == 0:
            k = in_h // out_h
            rf.apply(k, k, 0)
        else:
            rf.lose()
        return
    windows = record.inner.windows if record.inner is not None else []
    stride = math.prod(w[1] for w in windows)
    if windows and out_h in (in_h // stride, math.ceil(in_h / stride)):
        for w in windows:
            rf.apply(*w)
    elif in_h != out_h or not windows:
        rf.lose()     # a block whose geometry the walkthrough cannot follow

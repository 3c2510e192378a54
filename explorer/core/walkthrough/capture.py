"""The entry points: ``capture`` (one hooked forward pass on an image: every stage measured,
described and its output kept), ``capture_prepared`` (the same from an already prepared input)
and ``plan`` (the stages with their shapes only, on meta tensors, before any real run)."""

from __future__ import annotations

import torch
from torch import nn

from explorer.core.devices import resolve_device
from explorer.core.model_zoo import build_model, check_name, class_names, input_shape
from explorer.core.receptive_field import RF
from explorer.core.walkthrough.describe import classic_notes, describe, input_explanation
from explorer.core.walkthrough.measure import advance_rf, macs, new_params
from explorer.core.walkthrough.preprocess import denormalize, prepare_input
from explorer.core.walkthrough.records import Stage, Walkthrough, WalkthroughError
from explorer.core.walkthrough.trace import Tracer, TraceRecord, probabilities_of, run_traced


def capture(model_name: str, model: nn.Module, image: torch.Tensor, device: str | torch.device = "auto",
            weights_label: str = "random", categories: list[str] | None = None) -> Walkthrough:
    """One forward pass with hooks on ``image`` ([1, C, H, W] in [0, 1], any size: prepare_input
    is applied). Moves the model to the device. Raises WalkthroughError naming a failed stage."""
    name = check_name(model_name)
    dev = resolve_device(device)
    # resize/crop/normalise where the model runs: one small copy up, and only the 224×224 crop comes back
    raw, x = prepare_input(name, image.detach().to(dev))
    return capture_prepared(name, model, x, raw, weights_label, categories)


def capture_prepared(model_name: str, model: nn.Module, model_input: torch.Tensor, raw: torch.Tensor | None = None,
                     weights_label: str = "random", categories: list[str] | None = None) -> Walkthrough:
    """The capture of an input already prepared for the model (``prepare_input``'s normalised
    tensor), on the device it is on; ``raw`` defaults to the input with the normalisation undone."""
    name = check_name(model_name)
    x = model_input.detach()
    dev = x.device
    if raw is None:
        raw = denormalize(name, x)
    was_training = model.training
    model.to(dev).eval()
    try:
        try:
            tracer, logits = run_traced(model, x, keep_copies=False)
            if any(r.output._version != r.version for r in tracer.records):
                tracer, logits = run_traced(model, x, keep_copies=True)    # an in-place op changed a kept map
            probabilities = probabilities_of(tracer, logits)
        except WalkthroughError as e:
            if e.tracer is not None:
                e.stages, e.outputs = stages_from(e.tracer, name, x, raw, None, None)
            raise
    finally:
        model.train(was_training)
    stages, outputs = stages_from(tracer, name, x, raw, logits, probabilities)
    raw = raw.to("cpu")      # after the forward is queued, so on a GPU this copy waits for nothing else
    if categories is None:
        categories = class_names(name)
    return Walkthrough(name, str(weights_label), weights_label == "random", raw, x, stages, outputs,
                       probabilities, categories, dev, model)


def plan(model_name: str, model: nn.Module | None = None) -> list[Stage]:
    """The stages without computing anything (meta tensors): for the overview strip before a run.
    ``model`` may hold real weights; they are not touched."""
    name = check_name(model_name)
    if model is None:
        model = build_model(name, "meta")
    params = {k: torch.empty_like(v, device="meta") for k, v in
              [*model.named_parameters(), *model.named_buffers()]}
    x = torch.empty(input_shape(name), device="meta")
    tracer, logits = run_traced(model, x, keep_copies=False, params=params)
    probabilities = probabilities_of(tracer, logits)
    raw = torch.empty(input_shape(name), device="meta")
    stages, _ = stages_from(tracer, name, x, raw, logits, probabilities)
    return stages


def stages_from(tracer: Tracer, model_name: str, model_input: torch.Tensor, raw: torch.Tensor,
                logits: torch.Tensor | None, probabilities: torch.Tensor | None) -> tuple[list[Stage], list]:
    """Stage metadata (titles, sentences, parameters, multiply-adds, receptive fields) for the records,
    and the outputs, one per stage (the model input first)."""
    h, w = model_input.shape[-2:]
    title, explanation = input_explanation(model_name, raw)
    shape = tuple(model_input.shape)
    stages = [Stage(0, "input", "input", title, explanation, None, shape, shape, 0, 0, 0, 1, 1, 0.0, (h, w))]
    outputs = [model_input]
    rf = RF()
    seen: set[int] = set()
    total = 0
    records = list(tracer.records)
    if probabilities is not None and probabilities is not logits:
        records.append(TraceRecord("softmax", "softmax", [], tuple(logits.shape), synthesized=True,
                                   output=probabilities, output_shape=tuple(probabilities.shape)))
    last_linear = max((i for i, r in enumerate(records) if r.kind == "linear"), default=-1)
    for i, r in enumerate(records):
        params = new_params(r, seen)
        total += params
        out_shape, in_shape = r.output_shape, r.input_shape
        advance_rf(rf, r)
        spatial = len(out_shape) == 4 and rf.rf is not None
        title, explanation, note = describe(r, in_shape, out_shape, params, i == last_linear, model_name)
        stages.append(Stage(len(stages), r.name, r.kind, title, explanation, note, in_shape, out_shape,
                            params, total, macs(r), rf.rf if spatial else None, rf.jump if spatial else 1,
                            rf.start if spatial else 0.0, (h, w), [p for p, _ in r.modules]))
        outputs.append(r.output)
    classic_notes(model_name, stages)
    return stages, outputs

"""Crash-recovery copies of the stack being edited.

A small stack is written as the ordinary stack file. Hand-set or imported weights beyond a few
thousand numbers go to a binary sidecar instead (``torch.save``, read back with
``weights_only=True``): writing millions of numbers as JSON text takes seconds, all of them holding
the interpreter's lock, so even a background thread would freeze the window (a VGG-16 sent to the
stack is 138 million numbers)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

from explorer.core.stack import Stack, StackError, atomic_write_text, dump_stack, parse_stack

INLINE_VALUES = 50_000


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.stem + ".state.pt")


def state_values(stack: Stack) -> int:
    return sum(t.numel() for spec in stack.layers for t in (spec.state or {}).values())


def write_autosave(stack: Stack, path: str | os.PathLike) -> None:
    """Writes ``stack`` to ``path`` (and its sidecar when the weights are big); each file atomically.
    The sidecar is written first, so a JSON file never names weights that are not there yet."""
    path = Path(path)
    sidecar = sidecar_path(path)
    if state_values(stack) <= INLINE_VALUES:
        atomic_write_text(path, dump_stack(stack))
        sidecar.unlink(missing_ok=True)
        return
    light = stack.copy()
    states = {}
    for spec in light.layers:
        if spec.state:
            states[spec.name] = {k: v.detach().to("cpu") for k, v in spec.state.items()}
            spec.state = None
    partial = sidecar.with_name(sidecar.name + ".partial")
    torch.save(states, partial)
    os.replace(partial, sidecar)
    atomic_write_text(path, dump_stack(light))


def read_autosave(path: str | os.PathLike) -> Stack:
    """The autosaved stack with its weights; StackError (one sentence) if it cannot be read."""
    path = Path(path)
    try:
        stack = parse_stack(path.read_text(encoding="utf-8"), "The autosaved stack")
    except OSError as e:
        raise StackError(f"The autosaved stack cannot be read: {e.strerror or e}.") from None
    sidecar = sidecar_path(path)
    if not sidecar.exists():
        return stack
    try:
        with warnings.catch_warnings():       # torch warns about protocols of foreign pickles
            warnings.simplefilter("ignore")
            states = torch.load(sidecar, map_location="cpu", weights_only=True)
    except Exception as e:       # a damaged file: unpickling errors come in many types
        raise StackError(f"The autosaved weights cannot be read ({type(e).__name__}).") from None
    if not isinstance(states, dict):
        raise StackError("The autosaved weights file does not hold weights.")
    for spec in stack.layers:
        state = states.get(spec.name)
        if isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values()):
            spec.state = dict(state)
    return stack


def remove_autosave(path: str | os.PathLike) -> None:
    path = Path(path)
    path.unlink(missing_ok=True)
    sidecar_path(path).unlink(missing_ok=True)

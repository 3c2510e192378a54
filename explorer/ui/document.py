"""The open stack as the window sees it: the one place edits go through, each one undoable.

Widgets never change ``document.stack`` themselves; they call an edit method, which pushes an
undo command; applying or undoing it replaces the stack and emits ``changed(first_index)``, the
first layer whose output the edit can affect (so the runner recomputes only from there)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from explorer.core.editing import new_layer
from explorer.core.kernels import reconcile_state
from explorer.core.layers import LayerSpec, check_args
from explorer.core.stack import InputSpec, Stack, default_name, name_problem


MERGE_SECONDS = 1.5   # keystrokes into one field within this time are one undo step


class StackEdit(QUndoCommand):
    """Swaps one stack snapshot for another. Snapshots share tensors; specs are copied."""

    def __init__(self, doc: "StackDocument", text: str, after: Stack, first_index: int,
                 merge_key: tuple | None = None, select: int | None = None):
        super().__init__(text)
        self.doc = doc
        self.before = doc.stack.copy()
        self.after = after
        self.first_index = first_index
        self.merge_key = merge_key
        self.created = time.monotonic()
        self.select_before = doc.selected
        self.select_after = doc.selected if select is None else select

    def id(self) -> int:
        return 1 if self.merge_key is not None else -1

    def mergeWith(self, other: QUndoCommand) -> bool:
        # Typing 1, 2, 8 into a spin box is one edit, not three.
        if not isinstance(other, StackEdit) or other.merge_key != self.merge_key or self.merge_key is None:
            return False
        if other.created - self.created > MERGE_SECONDS:
            return False          # a separate edit of the same field, later on: its own undo step
        self.after = other.after
        self.created = other.created
        self.first_index = min(self.first_index, other.first_index)
        self.select_after = other.select_after
        return True

    def redo(self) -> None:
        self.doc._apply(self.after.copy(), self.first_index, self.select_after)

    def undo(self) -> None:
        self.doc._apply(self.before.copy(), self.first_index, self.select_before)


class StackDocument(QObject):
    changed = Signal(int)            # first affected layer index (0 = everything)
    selection_changed = Signal(int)  # -1 when nothing is selected
    path_changed = Signal(object)    # Path | None
    dirty_changed = Signal(bool)

    def __init__(self, stack: Stack | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.stack = stack or Stack()
        self.path: Path | None = None
        self.selected = 0 if self.stack.layers else -1
        self.input_shape: tuple[int, ...] = (1, 3, 32, 32)   # kept current by the window, for sizing new layers
        self.undo_stack = QUndoStack(self)
        self.undo_stack.cleanChanged.connect(self._clean_changed)
        self._preview_base: Stack | None = None   # the real stack while a preview is shown

    def _clean_changed(self, clean: bool) -> None:
        self.dirty_changed.emit(not clean)

    # ------------------------------------------------------------ state
    @property
    def dirty(self) -> bool:
        return not self.undo_stack.isClean()

    def layer(self, index: int) -> LayerSpec:
        return self.stack.layers[index]

    def select(self, index: int) -> None:
        index = index if 0 <= index < len(self.stack.layers) else -1
        if index != self.selected:
            self.selected = index
            self.selection_changed.emit(index)

    def replace(self, stack: Stack, path: Path | None = None) -> None:
        """New or opened stack: a fresh start, history cleared."""
        self._preview_base = None
        self.undo_stack.clear()
        self.path = Path(path) if path else None
        self.stack = stack
        self.selected = -1
        self.changed.emit(0)
        self.select(0 if stack.layers else -1)
        self.path_changed.emit(self.path)
        self.dirty_changed.emit(False)

    def mark_saved(self, path: Path) -> None:
        self.path = Path(path)
        self.undo_stack.setClean()
        self.path_changed.emit(self.path)

    def _apply(self, stack: Stack, first_index: int, select: int) -> None:
        before = (self.selected, self._selected_name())
        self.stack = stack
        # Listeners of `changed` (the run's focus, the form) read `selected`: set it first.
        self.selected = select if 0 <= select < len(stack.layers) else -1
        self.changed.emit(first_index)
        # Announce the selection only when the selected layer is another one (a different index, or
        # another layer under the same index): re-showing the same layer on every keystroke costs
        # a render of its stale output while the new run is already on its way.
        if (self.selected, self._selected_name()) != before:
            self.selection_changed.emit(self.selected)

    def _selected_name(self) -> str | None:
        return self.stack.layers[self.selected].name if 0 <= self.selected < len(self.stack.layers) else None

    def _push(self, text: str, after: Stack, first_index: int, merge_key: tuple | None = None,
              select: int | None = None) -> None:
        if self._preview_base is not None:
            # An edit ends a preview: its undo step leads back to the real stack, not the preview.
            self.stack, self._preview_base = self._preview_base, None
        self.undo_stack.push(StackEdit(self, text, after, first_index, merge_key, select))

    # ------------------------------------------------------------ previews (training)
    @property
    def previewing(self) -> bool:
        return self._preview_base is not None

    @property
    def real_stack(self) -> Stack:
        """The stack as edited, also while a preview is shown."""
        return self._preview_base if self._preview_base is not None else self.stack

    def preview(self, stack: Stack) -> None:
        """Shows ``stack`` in every view without an undo step (training's live weights, a moment of the
        weights history). ``end_preview`` or any edit goes back to the real stack."""
        if self._preview_base is None:
            self._preview_base = self.stack
        self.stack = stack
        self.changed.emit(0)

    def end_preview(self) -> None:
        if self._preview_base is not None:
            self.stack, self._preview_base = self._preview_base, None
            self.changed.emit(0)

    def set_weights(self, after: Stack, text: str) -> None:
        """Replaces the stack by ``after`` (the same layers with other ``state``) as one undo step:
        training results, kept history weights, reset weights."""
        self._push(text, after, 0)

    # ------------------------------------------------------------ edits
    def set_arg(self, index: int, key: str, value: Any) -> None:
        """Sets one argument. Raises LayerArgError with the reason if torch would refuse the value;
        the stack is then unchanged."""
        self.set_args(index, {key: value})

    def set_args(self, index: int, changes: dict[str, Any]) -> None:
        """Sets several arguments in one undoable step (Upsample's size and scale_factor go together).
        None means torch's default where that default is None, and an explicit None otherwise
        (BatchNorm2d's momentum=None is a cumulative average, not the default 0.1)."""
        spec = self.stack.layers[index]
        args = dict(spec.args)
        for key, value in changes.items():
            if value is None and spec.layer_type.arg(key).default is None:
                args.pop(key, None)
            else:
                args[key] = value
        check_args(spec.type, args)
        if args == spec.args:
            return
        after = self.stack.copy()
        layer = after.layers[index]
        layer.args = args
        if spec.state and _state_shape_changes(spec, layer):
            # Keep the hand-set weights that still fit: kernels stay centred, surviving channels stay.
            layer.state = reconcile_state(spec, layer, self.stack.seed)
        keys = ", ".join(changes)
        self._push(f"Change {keys} of {spec.name}", after, index, merge_key=("arg", index, keys))

    def set_enabled(self, index: int, enabled: bool) -> None:
        if self.stack.layers[index].enabled == enabled:
            return
        after = self.stack.copy()
        after.layers[index].enabled = enabled
        verb = "Enable" if enabled else "Disable"
        self._push(f"{verb} {after.layers[index].name}", after, index)

    def set_indices_from(self, index: int, pool_name: str) -> None:
        if self.stack.layers[index].indices_from == pool_name:
            return
        pools = [l.name for l in self.stack.layers[:index] if l.type == "MaxPool2d"]
        if pool_name not in pools:
            raise ValueError(f"'{pool_name}' is not a MaxPool2d before this layer; choose one of: {', '.join(pools) or 'none'}.")
        after = self.stack.copy()
        after.layers[index].indices_from = pool_name
        self._push(f"Take indices from {pool_name}", after, index)

    def rename(self, index: int, name: str) -> None:
        name = name.strip()
        old = self.stack.layers[index].name
        if not name or name == old:
            return
        if name in self.stack.names():
            raise ValueError(f"Another layer is already called '{name}'.")
        if (problem := name_problem(name)) is not None:   # the rule a saved stack is loaded with
            raise ValueError(f"{problem}.")
        after = self.stack.copy()
        after.layers[index].name = name
        for layer in after.layers:
            if layer.indices_from == old:
                layer.indices_from = name
        self._push(f"Rename {old} to {name}", after, index)

    def set_state(self, index: int, key: str, tensor: torch.Tensor) -> None:
        """Replaces one parameter tensor (the kernel editor); the shape must stay."""
        after = self.stack.copy()
        layer = after.layers[index]
        state = dict(layer.state or {})
        state[key] = tensor.detach().to("cpu", torch.float32).clone()
        layer.state = state
        self._push(f"Edit {key} of {layer.name}", after, index, merge_key=("state", index, key))

    def edit_state(self, index: int, tensors: dict[str, torch.Tensor] | None, text: str,
                   merge_key: tuple | None = None) -> None:
        """Replaces several parameter tensors in one undo step (the kernel editor: a cell, a preset,
        an initialiser). ``tensors`` None drops the hand-set state (the seed's values return).
        Edits with the same ``merge_key`` within MERGE_SECONDS are one step (keystrokes in one cell)."""
        after = self.stack.copy()
        layer = after.layers[index]
        if tensors is None:
            layer.state = None
        else:
            state = dict(layer.state or {})
            state.update({k: v.detach().to("cpu", torch.float32).clone() for k, v in tensors.items()})
            layer.state = state
        self._push(text, after, index, merge_key=merge_key)

    def add_layer(self, type_name: str, position: int | None = None) -> int:
        """Inserts a new layer after the selection (or at ``position``); returns its index.
        Raises ValueError with a sentence when it cannot go there."""
        if position is None:
            position = self.selected + 1 if self.selected >= 0 else len(self.stack.layers)
        spec = new_layer(self.stack, type_name, position, self.input_shape)
        return self.insert_layer(position, spec, f"Add {type_name}")

    def insert_layer(self, position: int, spec: LayerSpec, text: str | None = None) -> int:
        after = self.stack.copy()
        if spec.name in after.names() or not spec.name:
            spec = spec.copy(name=default_name(after.names(), spec.type))
        after.layers.insert(position, spec)
        self._push(text or f"Insert {spec.name}", after, position, select=position)
        return position

    def remove_layer(self, index: int) -> None:
        after = self.stack.copy()
        removed = after.layers.pop(index)
        users = [l.name for l in after.layers if l.indices_from == removed.name]
        if users:
            raise ValueError(f"'{removed.name}' gives its indices to {', '.join(users)}; remove or change that first.")
        select = min(index, len(after.layers) - 1)
        self._push(f"Remove {removed.name}", after, index, select=select)

    def duplicate_layer(self, index: int) -> int:
        spec = self.stack.layers[index]
        copy = spec.copy(name=default_name(self.stack.names(), spec.type))
        return self.insert_layer(index + 1, copy, f"Duplicate {spec.name}")

    def move_layer(self, src: int, dst: int) -> None:
        """Moves layer ``src`` so that it ends at index ``dst``."""
        n = len(self.stack.layers)
        if src == dst or not (0 <= src < n and 0 <= dst < n):
            return
        after = self.stack.copy()
        spec = after.layers.pop(src)
        after.layers.insert(dst, spec)
        pools_seen = set()
        for layer in after.layers:
            if layer.indices_from is not None and layer.indices_from not in pools_seen:
                raise ValueError(f"'{layer.name}' would come before '{layer.indices_from}', whose indices it needs.")
            if layer.type == "MaxPool2d":
                pools_seen.add(layer.name)
        self._push(f"Move {spec.name}", after, min(src, dst), select=dst)

    def set_input_spec(self, channels: int | None, size: tuple[int, int] | None) -> None:
        if (channels, size) == (self.stack.input.channels, self.stack.input.size):
            return
        after = self.stack.copy()
        after.input = InputSpec(channels, size)
        self._push("Change input", after, 0)

    def set_seed(self, seed: int) -> None:
        after = self.stack.copy()
        after.seed = seed
        self._push("Change seed", after, 0)

    def set_mode(self, mode: str) -> None:
        after = self.stack.copy()
        after.mode = mode
        self._push(f"Run in {mode} mode", after, 0)


def _state_shape_changes(before: LayerSpec, after: LayerSpec) -> bool:
    from explorer.core.layers import state_shapes
    try:
        return state_shapes(before) != state_shapes(after)
    except Exception:
        return True

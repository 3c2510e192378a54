"""The open stack as the window sees it: the one place edits go through, each one undoable.

Widgets never change ``document.stack`` themselves; they call an edit method, which pushes an
undo command; applying or undoing it replaces the stack and emits ``changed(first_index)``, the
first layer whose output the edit can affect (so the runner recomputes only from there)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from explorer.core.editing import earlier_pool_names, new_layer, pool_order_problem, removal_problem, renamed
from explorer.core.kernels import reconcile_state
from explorer.core.layers import LayerSpec, check_args
from explorer.core.stack import InputSpec, Stack, default_name
from explorer.ui.qt_signals import qt_signals_blocked


MERGE_SECONDS = 1.5   # keystrokes into one field within this time are one undo step
HISTORY_BYTES = 256 * 1024 * 1024   # the undo history's own tensors; older steps are dropped beyond it
PATCH_FRACTION = 0.25               # a changed tensor is kept as its changed values up to this share


# ---------------------------------------------------------------- compact snapshots
# A step of the history that is no longer the newest keeps its two snapshots "hollow": a state
# tensor that the other side of the step has too is a reference to it, and one that differs in a
# few values (a cell edit of a 512×512×3×3 conv: one value of 2.4 million) is a patch against it.
# Undo and redo rebuild the side they need from the stack on screen, which is then the other side.

@dataclass(frozen=True)
class _Same:
    layer: int              # index of the layer on the other side
    key: str


@dataclass(frozen=True)
class _Patch:
    layer: int
    key: str
    index: torch.Tensor     # flat indices that differ
    values: torch.Tensor    # this side's values there

    @property
    def nbytes(self) -> int:
        return self.index.numel() * self.index.element_size() + self.values.numel() * self.values.element_size()


def _hollow(side: Stack, other: Stack) -> Stack:
    """``side`` with every state tensor that can be rebuilt from ``other`` replaced by a _Same or a _Patch."""
    where = {id(t): (j, k) for j, layer in enumerate(other.layers) for k, t in (layer.state or {}).items()}
    out = side.copy()
    for i, layer in enumerate(out.layers):
        if not layer.state:
            continue
        state = {}
        for key, t in layer.state.items():
            state[key] = t
            if not isinstance(t, torch.Tensor):
                continue
            if id(t) in where:
                state[key] = _Same(*where[id(t)])
                continue
            if i < len(other.layers) and other.layers[i].name == layer.name and other.layers[i].state:
                o = other.layers[i].state.get(key)
                if isinstance(o, torch.Tensor) and o.shape == t.shape and o.dtype == t.dtype and o.device == t.device:
                    changed = (o.reshape(-1) != t.reshape(-1)).nonzero().reshape(-1)
                    if changed.numel() <= PATCH_FRACTION * t.numel():
                        state[key] = _Patch(i, key, changed, t.reshape(-1)[changed].clone())
        layer.state = state
    return out


def _rebuild(side: Stack, current: Stack) -> Stack:
    """A hollow snapshot made whole again from ``current`` (the other side of its step)."""
    out = side.copy()
    for layer in out.layers:
        if not layer.state:
            continue
        state = {}
        for key, v in layer.state.items():
            if isinstance(v, _Same):
                v = current.layers[v.layer].state[v.key]
            elif isinstance(v, _Patch):
                base = current.layers[v.layer].state[v.key]
                t = base.clone()            # tensors of the document are never changed in place
                t.view(-1)[v.index] = v.values
                v = t
            state[key] = v
        layer.state = state
    return out


def _tensors(stack: Stack):
    """The whole tensors a (possibly hollow) snapshot holds, and the patches' bytes."""
    for layer in stack.layers:
        for v in (layer.state or {}).values():
            yield v


class StackEdit(QUndoCommand):
    """Swaps one stack snapshot for another. Snapshots share tensors; specs are copied. Once a newer
    step is on the history, both snapshots are kept hollow (see _hollow)."""

    def __init__(self, doc: "StackDocument", text: str, after: Stack, first_index: int,
                 merge_key: tuple | None = None, select: int | None = None, before: Stack | None = None):
        super().__init__(text)
        self.doc = doc
        self.before = doc.stack.copy() if before is None else before
        self.after = after
        self.first_index = first_index
        self.merge_key = merge_key
        self.created = time.monotonic()
        self.select_before = doc.selected
        self.select_after = doc.selected if select is None else select
        self.hollow = False
        self._skip_redo = False         # re-pushed after the oldest steps were dropped: already applied
        self._kept: tuple | None = None  # what a hollow step holds, listed once (it never changes again)

    def compact(self) -> None:
        """Keeps only what this step changed (it is done, the stack on screen is its ``after``)."""
        if self.hollow:
            return
        before = _hollow(self.before, self.after)
        self.after = _hollow(self.after, self.before)
        self.before = before
        self.hollow = True

    def history_tensors(self):
        if not self.hollow:
            return (*_tensors(self.before), *_tensors(self.after))
        # The history is measured after every edit: a hollow step is listed once, not on each edit
        # (walking every layer of every step made each edit slower the longer the history).
        if self._kept is None:
            self._kept = (*_tensors(self.before), *_tensors(self.after))
        return self._kept

    def copy_for(self, doc: "StackDocument") -> "StackEdit":
        """The same step as a new command (QUndoStack cannot drop its oldest steps: it is refilled)."""
        twin = StackEdit(doc, self.text(), self.after, self.first_index, self.merge_key, self.select_after,
                         before=self.before)
        twin.select_before, twin.created, twin.hollow = self.select_before, self.created, self.hollow
        twin._skip_redo = True
        return twin

    def id(self) -> int:
        return 1 if self.merge_key is not None else -1

    def mergeWith(self, other: QUndoCommand) -> bool:
        # Typing 1, 2, 8 into a spin box is one edit, not three.
        if not isinstance(other, StackEdit) or other.merge_key != self.merge_key or self.merge_key is None:
            return False
        if self.hollow:
            return False          # an older step made the newest again by undo: merged no more
        if other.created - self.created > MERGE_SECONDS:
            return False          # a separate edit of the same field, later on: its own undo step
        self.after = other.after
        self.created = other.created
        self.first_index = min(self.first_index, other.first_index)
        self.select_after = other.select_after
        return True

    def redo(self) -> None:
        if self._skip_redo:
            self._skip_redo = False
            return
        after = _rebuild(self.after, self.doc.stack) if self.hollow else self.after.copy()
        self.doc._apply(after, self.first_index, self.select_after)

    def undo(self) -> None:
        before = _rebuild(self.before, self.doc.stack) if self.hollow else self.before.copy()
        self.doc._apply(before, self.first_index, self.select_before)


class StackDocument(QObject):
    changed = Signal(int)            # first affected layer index (0 = everything)
    selection_changed = Signal(int)  # -1 when nothing is selected
    path_changed = Signal(object)    # Path | None
    dirty_changed = Signal(bool)
    history_trimmed = Signal(int)    # how many of the oldest undo steps were dropped (memory)

    def __init__(self, stack: Stack | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.stack = stack or Stack()
        self.path: Path | None = None
        self.selected = 0 if self.stack.layers else -1
        self._input_shape = lambda: (1, 3, 32, 32)
        self.undo_stack = QUndoStack(self)
        self.undo_stack.cleanChanged.connect(self._clean_changed)
        self._preview_base: Stack | None = None   # the real stack while a preview is shown
        self.history_limit = HISTORY_BYTES

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape the stack's first layer gets, for sizing new layers: asked of the session state
        (``input_shape_from``), never written back from runs."""
        return self._input_shape()

    def input_shape_from(self, provider) -> None:
        self._input_shape = provider

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
        self.push(StackEdit(self, text, after, first_index, merge_key, select))

    def push(self, command: StackEdit) -> None:
        """Every undoable edit comes here: the step before the new one keeps only what it changed,
        and the history stays within ``history_limit`` bytes."""
        stack = self.undo_stack
        stack.push(command)
        for i in range(stack.index() - 1):
            done = stack.command(i)
            if isinstance(done, StackEdit) and not done.hollow:
                done.compact()
        self._trim_history()

    # ------------------------------------------------------------ the history's memory
    def history_bytes(self) -> int:
        """Bytes of the tensors only the undo history keeps (not those of the stack on screen)."""
        live, seen = {id(v) for v in _tensors(self.stack)}, set()
        return sum(self._step_bytes(i, live, seen) for i in range(self.undo_stack.count()))

    def _step_bytes(self, i: int, live: set, seen: set) -> int:
        command = self.undo_stack.command(i)
        total = 0
        for v in command.history_tensors() if isinstance(command, StackEdit) else ():
            if isinstance(v, _Patch):
                total += v.nbytes
            elif isinstance(v, torch.Tensor) and id(v) not in live and id(v) not in seen:
                seen.add(id(v))
                total += v.numel() * v.element_size()
        return total

    def _trim_history(self) -> None:
        stack = self.undo_stack
        count, index = stack.count(), stack.index()
        if count < 2 or index != count:
            return
        live = {id(v) for v in _tensors(self.stack)}
        seen: set = set()
        total, keep = 0, 0
        for i in range(count - 1, -1, -1):           # newest first: the newest step always stays
            total += self._step_bytes(i, live, seen)
            if total > self.history_limit and keep >= 1:
                break
            keep += 1
        dropped = count - keep
        if dropped <= 0:
            return
        clean = stack.cleanIndex()
        kept = [stack.command(i).copy_for(self) for i in range(dropped, count)]
        with qt_signals_blocked(stack):        # the actions and the title see one change, not a refill
            stack.clear()
            for i, command in enumerate(kept):
                if clean == dropped + i:
                    stack.setClean()
                stack.push(command)
            if clean == count:
                stack.setClean()
            elif clean < dropped:
                stack.resetClean()      # the saved state was among the dropped steps: unreachable now
        stack.indexChanged.emit(stack.index())
        stack.canUndoChanged.emit(stack.canUndo())
        stack.undoTextChanged.emit(stack.undoText())
        stack.cleanChanged.emit(stack.isClean())
        self.history_trimmed.emit(dropped)

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

    def replace_layers(self, stack: Stack, text: str) -> None:
        """Every layer replaced by ``stack``'s, as one undoable step with the last layer selected
        (a walkthrough's 'Send to stack')."""
        self._push(text, stack, 0, select=len(stack.layers) - 1)

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
        pools = earlier_pool_names(self.stack, index)
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
        after = renamed(self.stack, index, name)
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
        if (problem := removal_problem(self.stack, index)) is not None:
            raise ValueError(problem)
        after = self.stack.copy()
        removed = after.layers.pop(index)
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
        if (problem := pool_order_problem(after)) is not None:
            raise ValueError(problem)
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

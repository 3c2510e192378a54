"""The one session state of a window, with a Qt signal per field (glue's viewer state and napari's
evented models work this way): the input asked for, the device, the view settings (the batch item is
one of them) and the last finished run. Widgets write to it and render what it says; nothing else keeps
a copy. Derived values (the input shown now, its batch and result, the input shape, the shape rows of
the stack) are properties, computed from the facts when asked.

Not echoing an update back: the state emits only when a value really changes, and a widget that pushes
a state value into its own Qt controls does so inside ``qt_signals_blocked`` (the one idiom used
across the window); a widget that both writes and draws a field draws from the state's signal only."""

from __future__ import annotations

from dataclasses import fields, replace

from PySide6.QtCore import QObject, Signal

from explorer.core.display import ViewSettings
from explorer.core.engine import RunResult
from explorer.core.input_source import InputSource
from explorer.core.inputs import InputBatch
from explorer.core.session import LastRun, Session
from explorer.core.shapes import ShapeRow, infer_shapes
from explorer.core.stack import InputSpec
from explorer.ui.document import StackDocument

_FIELDS = tuple(f.name for f in fields(Session))


def _same(a, b) -> bool:
    # A run holds tensors (== on them is elementwise): a new run is a new object.
    return a is b or (not isinstance(a, LastRun) and not isinstance(b, LastRun) and a == b)


class SessionState(QObject):
    requested_source_changed = Signal(object)   # InputSource: the next run loads it
    device_changed = Signal(str)
    view_changed = Signal(object)               # ViewSettings
    batch_item_changed = Signal(int)            # view.batch_index, signalled on its own too
    last_run_changed = Signal(object)           # LastRun
    shapes_changed = Signal()                   # input_shape or the stack's shape rows changed

    def __init__(self, document: StackDocument | None = None, parent: QObject | None = None, **initial):
        super().__init__(parent)
        self._data = Session(**initial)
        self.document = document
        self._shapes_key: tuple | None = None
        self._shape_rows: list[ShapeRow] | None = None
        if document is not None:
            document.input_shape_from(lambda: self.input_shape)
            document.changed.connect(self._stack_changed)
            self._check_shapes()

    # ---------------------------------------------------------------- the facts
    @property
    def data(self) -> Session:
        """The plain value (a frozen core dataclass) of everything the state holds."""
        return self._data

    def update(self, **changes) -> None:
        """Sets several fields at once; each field that really changed is signalled once."""
        old = self._data
        new = replace(old, **changes)
        changed = [name for name in _FIELDS if not _same(getattr(old, name), getattr(new, name))]
        if not changed:
            return
        self._data = new
        for name in changed:
            getattr(self, f"{name}_changed").emit(getattr(new, name))
            if name == "view" and old.batch_item != new.batch_item:
                self.batch_item_changed.emit(new.batch_item)
        if "last_run" in changed:
            self._check_shapes()

    @property
    def requested_source(self) -> InputSource | None:
        return self._data.requested_source

    @requested_source.setter
    def requested_source(self, source: InputSource) -> None:
        self.update(requested_source=source)

    @property
    def device(self) -> str:
        return self._data.device

    @device.setter
    def device(self, name: str) -> None:
        self.update(device=name)

    @property
    def view(self) -> ViewSettings:
        return self._data.view

    @view.setter
    def view(self, view: ViewSettings) -> None:
        self.update(view=view)

    def update_view(self, **changes) -> None:
        self.update(view=replace(self._data.view, **changes))

    @property
    def batch_item(self) -> int:
        return self._data.batch_item

    @batch_item.setter
    def batch_item(self, index: int) -> None:
        self.update_view(batch_index=int(index))

    @property
    def last_run(self) -> LastRun | None:
        return self._data.last_run

    @last_run.setter
    def last_run(self, run: LastRun | None) -> None:
        self.update(last_run=run)

    # ---------------------------------------------------------------- derived
    @property
    def source(self) -> InputSource | None:
        return self._data.source

    @property
    def batch(self) -> InputBatch | None:
        return self._data.batch

    @property
    def result(self) -> RunResult | None:
        return self._data.result

    @property
    def input_shape(self) -> tuple[int, ...]:
        """What the stack's first layer gets: the loaded input as the document's input block converts it."""
        spec = self.document.stack.input if self.document is not None else InputSpec()
        return self._data.input_shape(spec)

    @property
    def shape_rows(self) -> list[ShapeRow]:
        """Shape inference of the document's stack for ``input_shape``, computed when first asked."""
        if self._shape_rows is None:
            self._shape_rows = infer_shapes(self.document.stack, self.input_shape) if self.document is not None else []
        return self._shape_rows

    def _stack_changed(self, _first: int) -> None:
        self._check_shapes()

    def _check_shapes(self) -> None:
        # Hand-set weights (the kernel editor, every keystroke) never change a shape: the ~20 ms
        # inference is skipped when only `state` changed.
        if self.document is None:
            return
        stack = self.document.stack
        key = (self.input_shape, stack.mode,
               [(l.type, l.name, repr(l.args), l.enabled, l.indices_from) for l in stack.layers])
        if key == self._shapes_key:
            return
        self._shapes_key, self._shape_rows = key, None
        self.shapes_changed.emit()

"""The session's plain data: what the window runs the stack on and shows, kept once.

``Session`` holds the facts (the input asked for, the device, the view settings with the batch item
inside them, and the last finished run); everything else (the input shown now, its batch, the result,
the input shape new layers are sized for) is derived from them by properties, so no copy can go stale.
The Qt change notification around it lives in ``explorer.ui.session_state``."""

from __future__ import annotations

from dataclasses import dataclass, field

from explorer.core.display import ViewSettings
from explorer.core.engine import RunResult
from explorer.core.input_source import InputSource
from explorer.core.inputs import InputBatch
from explorer.core.stack import InputSpec, Stack

#: The input shape assumed before anything has run (the sample pictures are this big).
DEFAULT_SIZE = (224, 224)


@dataclass(frozen=True)
class LastRun:
    """A finished run with its input: what every view explains."""

    stack: Stack                   # the stack the run used (the document may have moved on)
    source: InputSource
    batch: InputBatch
    result: RunResult
    batch_count: int | None = None  # CIFAR: batches in the split at this batch size


@dataclass(frozen=True)
class Session:
    requested_source: InputSource | None = None   # the input asked for (the next run loads it)
    device: str = "cpu"
    view: ViewSettings = field(default_factory=ViewSettings)   # view.batch_index is the batch item
    last_run: LastRun | None = None

    @property
    def batch_item(self) -> int:
        return self.view.batch_index

    @property
    def source(self) -> InputSource | None:
        """The input shown now: the last finished run's."""
        return self.last_run.source if self.last_run is not None else None

    @property
    def batch(self) -> InputBatch | None:
        return self.last_run.batch if self.last_run is not None else None

    @property
    def result(self) -> RunResult | None:
        return self.last_run.result if self.last_run is not None else None

    def input_shape(self, spec: InputSpec) -> tuple[int, ...]:
        """The shape the stack's first layer gets: the loaded batch converted by ``spec`` (CIFAR keeps
        its 32x32), or one ``spec``-sized picture before anything has run."""
        return run_input_shape(spec, tuple(self.batch.tensor.shape) if self.batch is not None else None,
                               self.source.kind if self.source is not None else None)


def run_input_shape(spec: InputSpec, batch_shape: tuple[int, ...] | None, source_kind: str | None) -> tuple[int, ...]:
    channels = spec.channels or 3
    if batch_shape is None:
        return (1, channels, *(spec.size or DEFAULT_SIZE))
    n, _, h, w = batch_shape
    if source_kind == "cifar":
        return (n, channels, h, w)
    return (n, channels, *(spec.size or (h, w)))

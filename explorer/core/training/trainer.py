"""Trains a stack as a classifier: cross-entropy on its last output, built from the same modules the
engine runs (``layers.build_module``), so the trained weights written back into the layers' ``state``
give exactly the trained model's outputs in every view and in ``run``.

No Qt here: the window runs ``train`` in its worker thread and talks to it through a ``TrainControl``
(stop / pause between steps) and the ``on_step`` / ``on_epoch`` callbacks."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from explorer.core.checks import shape_str
from explorer.core.devices import resolve_device, synchronize
from explorer.core.shapes import infer_shapes
from explorer.core.layers import build_module, forward_layer
from explorer.core.stack import Stack
from explorer.core.training.datasets import Dataset

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("none", "step", "cosine")
HISTORY_BUDGET = 48 * 1024 * 1024     # bytes of weight snapshots kept (step 0 and each epoch)
MISCLASSIFIED_KEPT = 48
LIVE_SECONDS = 0.33                   # how often on_step carries the current weights for the live views (3 a second)


class TrainError(ValueError):
    """Settings or a stack that cannot be trained; the message is one sentence naming the fix."""


@dataclass
class TrainSettings:
    optimizer: str = "adam"
    lr: float = 3e-3
    momentum: float = 0.9            # SGD only
    weight_decay: float = 0.0
    batch_size: int = 64
    epochs: int = 5
    schedule: str = "none"
    augment: bool | None = None      # None: on for CIFAR-10, off otherwise
    seed: int = 0
    device: str = "auto"

    def check(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise TrainError(f"The optimiser must be one of {', '.join(OPTIMIZERS)}, not '{self.optimizer}'.")
        if self.schedule not in SCHEDULES:
            raise TrainError(f"The schedule must be one of {', '.join(SCHEDULES)}, not '{self.schedule}'.")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise TrainError(f"The learning rate must be a number above 0, not {self.lr}.")
        if not (isinstance(self.epochs, int) and self.epochs >= 1):
            raise TrainError(f"The number of epochs must be a whole number of at least 1, not {self.epochs}.")
        if not (isinstance(self.batch_size, int) and self.batch_size >= 1):
            raise TrainError(f"The batch size must be a whole number of at least 1, not {self.batch_size}.")
        if not (math.isfinite(self.momentum) and 0 <= self.momentum < 1):
            raise TrainError(f"The momentum must be at least 0 and below 1, not {self.momentum}.")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise TrainError(f"The weight decay must be 0 or more, not {self.weight_decay}.")


class TrainControl:
    """Stop and pause, set from any thread, honoured between steps."""

    def __init__(self):
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()

    def stop(self) -> None:
        self._stop.set()
        self._running.set()          # a paused run wakes up to stop

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def wait(self) -> bool:
        """Blocks while paused; True when the run should stop."""
        while not self._running.wait(0.1):
            pass
        return self._stop.is_set()


# ---------------------------------------------------------------- the model
class StackModel(nn.Module):
    """The stack's enabled layers as one module, built by ``build_module`` (the engine's modules),
    with MaxUnpool2d fed from its MaxPool2d as the engine does. ``upto`` leaves out a last Softmax."""

    def __init__(self, stack: Stack, upto: int, device: torch.device):
        super().__init__()
        self.specs = [s for s in stack.layers[:upto] if s.enabled]
        self.layers = nn.ModuleDict()
        for spec in self.specs:
            self.layers[_key(spec.name)] = build_module(spec, stack.seed, device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kept: dict[str, tuple[torch.Tensor, tuple[int, int]]] = {}      # indices for later unpools
        for spec in self.specs:
            x, _ = forward_layer(spec, self.layers[_key(spec.name)], x, kept)
        return x

    def layer_states(self) -> dict[str, dict[str, torch.Tensor]]:
        """Every layer with weights or buffers: name -> state_dict, detached CPU copies."""
        out = {}
        for spec in self.specs:
            state = self.layers[_key(spec.name)].state_dict()
            if state:
                out[spec.name] = {k: v.detach().to("cpu", copy=True) for k, v in state.items()}
        return out

    def load_layer_states(self, states: dict[str, dict[str, torch.Tensor]]) -> None:
        for name, state in states.items():
            self.layers[_key(name)].load_state_dict(state)


def _key(name: str) -> str:
    # ModuleDict keys may not contain dots; layer names may.
    return "l_" + name.replace(".", "\u2024")


# ---------------------------------------------------------------- checking the stack
@dataclass
class Plan:
    upto: int                 # layers [0, upto) make the logits
    notes: list[str]


def plan_training(stack: Stack, input_shape: tuple[int, int, int], num_classes: int) -> Plan:
    """Checks that the stack gives [N, num_classes] logits on this input, without computing anything.
    Raises TrainError with one sentence that names the fix."""
    enabled = [i for i, s in enumerate(stack.layers) if s.enabled]
    if not enabled:
        raise TrainError("The stack has no enabled layers; add Flatten and a Linear layer to train.")
    notes = []
    upto = len(stack.layers)
    last = stack.layers[enabled[-1]]
    if last.layer_type.gives_probabilities:
        upto = enabled[-1]
        notes.append(f"The last layer '{last.name}' is a {last.type}: training uses the logits before it "
                     "(cross-entropy applies its own softmax).")
    rows = infer_shapes(stack, (2, *input_shape))
    for r in rows[:upto] if upto < len(stack.layers) else rows:
        if r.error:
            raise TrainError(f"The stack cannot run on {shape_str((1, *input_shape))} images: {r.error}")
    shapes = [r for r in rows[:upto] if r.enabled]
    if not shapes:
        raise TrainError(f"The stack has only a {last.type}; add Flatten and a Linear layer before it.")
    out = shapes[-1].output_shape
    out_n = "[N, " + ", ".join(map(str, out[1:])) + "]"
    k = num_classes
    if len(out) != 2:
        features = math.prod(out[1:])
        raise TrainError(f"The last layer gives {out_n}; add Flatten and Linear({features}, {k}) for {k} classes.")
    if out[1] != k:
        spec = stack.layers[shapes[-1].index]
        if spec.layer_type.width_arg is not None:
            raise TrainError(f"The last {spec.type} '{spec.name}' gives {out[1]} outputs but the data has {k} classes; "
                             f"set its {spec.layer_type.width_arg} to {k}.")
        raise TrainError(f"The last layer gives {out_n}; add Linear({out[1]}, {k}) for {k} classes.")
    probe = [build_module(s, device="meta") for s in stack.layers[:upto] if s.enabled]
    if not any(p.requires_grad for m in probe for p in m.parameters()):
        raise TrainError("No layer of the stack has weights to train; add a Conv2d or Linear layer.")
    return Plan(upto, notes)


# ---------------------------------------------------------------- results
@dataclass
class StepInfo:
    step: int                 # 1-based, over the whole run
    total_steps: int
    epoch: int                # 1-based
    loss: float
    samples_per_second: float
    elapsed: float
    states: dict[str, dict[str, torch.Tensor]] | None = None   # the weights now, every LIVE_SECONDS


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    train_accuracy: float
    test_loss: float
    test_accuracy: float
    seconds: float
    samples_per_second: float
    lr: float                 # the learning rate of the epoch's last step

    def to_json(self) -> dict:
        return {"epoch": self.epoch, "train_loss": self.train_loss, "train_accuracy": self.train_accuracy,
                "test_loss": self.test_loss, "test_accuracy": self.test_accuracy,
                "seconds": self.seconds, "samples_per_second": self.samples_per_second, "lr": self.lr}


@dataclass
class Evaluation:
    loss: float
    accuracy: float
    confusion: torch.Tensor              # int64 [K, K], rows true, columns predicted
    per_class: list[float | None]        # accuracy per true class (None: no test image of it)
    misclassified: list[tuple[int, int, int]]   # (test index, true, predicted), the first few


@dataclass
class Snapshot:
    epoch: int                           # 0 = before training
    step: int
    states: dict[str, dict[str, torch.Tensor]]


@dataclass
class EpochInfo:
    record: EpochRecord
    evaluation: Evaluation
    states: dict[str, dict[str, torch.Tensor]]   # the weights at the end of this epoch
    snapshot: Snapshot | None            # None when the history budget skips this epoch


@dataclass
class TrainResult:
    status: str                          # "done", "stopped" (by the user) or "nan"
    message: str                         # one sentence on how it ended
    epochs: list[EpochRecord]
    states: dict[str, dict[str, torch.Tensor]]     # the weights to keep (last good ones after NaN)
    evaluation: Evaluation | None        # on the test split, for `states`
    snapshots: list[Snapshot]
    notes: list[str]
    losses: list[float]                  # every step's training loss
    steps: int = 0

    @property
    def completed_epochs(self) -> int:
        return len(self.epochs)


# ---------------------------------------------------------------- helpers
def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """CIFAR's standard augmentation on a batch at once: random crop with padding 4, random flip."""
    n, c, h, w = x.shape
    oy = torch.randint(0, 9, (n,), generator=g).to(x.device)
    ox = torch.randint(0, 9, (n,), generator=g).to(x.device)
    flip = (torch.rand(n, generator=g) < 0.5).to(x.device)
    padded = F.pad(x, (4, 4, 4, 4))
    rows = (oy.view(n, 1) + torch.arange(h, device=x.device)).view(n, 1, h, 1).expand(n, c, h, w + 8)
    x = padded.gather(2, rows)
    cols = ox.view(n, 1) + torch.arange(w, device=x.device)
    cols = torch.where(flip.view(n, 1), cols.flip(1), cols).view(n, 1, 1, w).expand(n, c, h, w)
    return x.gather(3, cols)


def _optimizer(params, s: TrainSettings) -> torch.optim.Optimizer:
    if s.optimizer == "sgd":
        return torch.optim.SGD(params, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)
    if s.optimizer == "adam":
        return torch.optim.Adam(params, lr=s.lr, weight_decay=s.weight_decay)
    return torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay)


def _scheduler(opt, s: TrainSettings, steps_per_epoch: int):
    """Stepped once per training step: step decays ×0.1 at each third of the run, cosine anneals to 0."""
    total = s.epochs * steps_per_epoch
    if s.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, math.ceil(total / 3)), gamma=0.1)
    if s.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, total))
    return None


def history_plan(snapshot_bytes: int, epochs: int, budget: int = HISTORY_BUDGET) -> tuple[set[int], str | None]:
    """Which epochs (0 = before training) get a snapshot within the budget, and a note when not all."""
    wanted = epochs + 1
    fit = budget // max(1, snapshot_bytes)
    if fit >= wanted:
        return set(range(wanted)), None
    mb = snapshot_bytes / 2 ** 20
    if fit <= 1:
        return ({0} if fit == 1 else set()), (
            f"The weights are {mb:.1f} MB, too big to keep one per epoch within {budget // 2 ** 20} MB: "
            f"the history keeps {'only the start' if fit == 1 else 'nothing'}.")
    kept = {round(i * epochs / (fit - 1)) for i in range(fit)}
    return kept, (f"The weights are {mb:.1f} MB, so the history keeps {len(kept)} of {wanted} snapshots "
                  f"(evenly spread) to stay within {budget // 2 ** 20} MB.")


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, num_classes: int,
             device: torch.device, batch_size: int = 500) -> Evaluation:
    """Loss, accuracy, confusion matrix, per-class accuracy and misclassified examples, in eval mode."""
    was_training = model.training
    model.eval()
    total_loss, confusion = 0.0, torch.zeros(num_classes, num_classes, dtype=torch.int64)
    wrong: list[tuple[int, int, int]] = []
    n = len(labels)
    try:
        with torch.no_grad():
            for start in range(0, n, batch_size):
                x = images[start:start + batch_size].to(device).to(torch.float32).div_(255)
                y = labels[start:start + batch_size].to(device)
                out = model(x)
                total_loss += float(F.cross_entropy(out, y, reduction="sum"))
                pred = out.argmax(1)
                confusion += torch.bincount((y * num_classes + pred).cpu(),
                                            minlength=num_classes ** 2).view(num_classes, num_classes)
                if len(wrong) < MISCLASSIFIED_KEPT:
                    bad = torch.nonzero(pred != y).flatten().cpu()
                    for i in bad[:MISCLASSIFIED_KEPT - len(wrong)].tolist():
                        wrong.append((start + i, int(y[i]), int(pred[i])))
    finally:
        model.train(was_training)
    per_row = confusion.sum(1)
    per_class = [int(confusion[i, i]) / int(per_row[i]) if per_row[i] else None for i in range(num_classes)]
    correct = int(confusion.diagonal().sum())
    return Evaluation(total_loss / max(1, n), correct / max(1, n), confusion, per_class, wrong)


# ---------------------------------------------------------------- training
def train(stack: Stack, data: Dataset, settings: TrainSettings, control: TrainControl | None = None,
          on_step: Callable[[StepInfo], None] | None = None,
          on_epoch: Callable[[EpochInfo], None] | None = None,
          history_budget: int = HISTORY_BUDGET,
          on_start: Callable[[list[Snapshot], list[str]], None] | None = None) -> TrainResult:
    """Trains a copy of the stack's modules; the stack itself is not changed (see ``apply_states``).
    Raises TrainError before anything runs when the settings or the stack do not fit. ``on_start`` gets
    the step-0 snapshot (an empty list when the history budget keeps none) and the notes so far."""
    settings.check()
    control = control or TrainControl()
    num_classes = len(data.classes)
    plan = plan_training(stack, data.image_shape, num_classes)
    device = resolve_device(settings.device)
    notes = list(data.notes) + plan.notes
    augment = data.kind == "cifar" if settings.augment is None else settings.augment

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        # Dropout draws from the global generator: seed it so a run repeats exactly.
        torch.manual_seed(settings.seed)
        model = StackModel(stack, plan.upto, device)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = _optimizer(params, settings)
        n = len(data.train)
        bs = settings.batch_size
        steps_per_epoch = math.ceil(n / bs)
        sched = _scheduler(opt, settings, steps_per_epoch)
        total_steps = steps_per_epoch * settings.epochs
        shuffle = torch.Generator().manual_seed(settings.seed)
        aug_gen = torch.Generator().manual_seed(settings.seed + 1)
        train_x = data.train.images.to(device)
        train_y = data.train.labels.to(device)

        start_states = model.layer_states()
        snap_bytes = sum(t.numel() * t.element_size() for s in start_states.values() for t in s.values())
        keep_epochs, note = history_plan(snap_bytes, settings.epochs, history_budget)
        if note:
            notes.append(note)
        snapshots = [Snapshot(0, 0, start_states)] if 0 in keep_epochs else []
        if on_start is not None:
            on_start(list(snapshots), list(notes))
        last_good = start_states          # weights at the end of the last finished epoch
        records: list[EpochRecord] = []
        losses: list[float] = []
        last_eval: Evaluation | None = None
        status, message = "done", ""
        step = 0
        started = time.perf_counter()
        last_live = started
        model.train()
        for epoch in range(1, settings.epochs + 1):
            epoch_start = time.perf_counter()
            order = torch.randperm(n, generator=shuffle).to(device)
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), dtype=torch.int64, device=device)
            seen = 0
            for b in range(steps_per_epoch):
                if control.wait():
                    status = "stopped"
                    break
                idx = order[b * bs:(b + 1) * bs]
                x = train_x[idx].to(torch.float32).div_(255)
                y = train_y[idx]
                if augment:
                    x = _augment(x, aug_gen)
                out = model(x)
                loss = F.cross_entropy(out, y)
                value = loss.item()
                step += 1
                if not math.isfinite(value):
                    status = "nan"
                    where = f"step {step} (epoch {epoch})"
                    kept = f"the end of epoch {epoch - 1}" if epoch > 1 else "the start"
                    message = (f"The loss became {'NaN' if math.isnan(value) else 'infinite'} at {where}; "
                               f"training stopped and kept the weights from {kept}. "
                               f"Try a lower learning rate (e.g. {settings.lr / 10:g}).")
                    break
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                lr_used = opt.param_groups[0]["lr"]
                if sched is not None:
                    sched.step()
                losses.append(value)
                loss_sum += loss.detach() * len(y)
                correct += (out.detach().argmax(1) == y).sum()
                seen += len(y)
                if on_step is not None:
                    now = time.perf_counter()
                    live = now - last_live >= LIVE_SECONDS
                    if live:
                        last_live = now
                    elapsed = now - started
                    on_step(StepInfo(step, total_steps, epoch, value,
                                     (step - (epoch - 1) * steps_per_epoch) * bs / max(1e-9, now - epoch_start),
                                     elapsed, model.layer_states() if live else None))
            if status == "nan":
                model.load_layer_states(last_good)
                break
            if seen == 0:
                break
            synchronize(device)
            seconds = time.perf_counter() - epoch_start
            evaluation = evaluate(model, data.test.images, data.test.labels, num_classes, device)
            model.train()
            last_eval = evaluation
            record = EpochRecord(epoch, float(loss_sum) / seen, int(correct) / seen, evaluation.loss,
                                 evaluation.accuracy, seconds, seen / max(1e-9, seconds), lr_used)
            if status == "stopped":
                # A stopped epoch is a partial one: its numbers are kept, its weights are the result.
                record_note = f"Stopped during epoch {epoch} after {seen} of {n} images."
                notes.append(record_note)
            records.append(record)
            last_good = model.layer_states()
            snap = Snapshot(epoch, step, last_good) if (epoch in keep_epochs or status == "stopped") else None
            if snap is not None:
                snapshots.append(snap)
            if on_epoch is not None:
                on_epoch(EpochInfo(record, evaluation, last_good, snap))
            if status == "stopped":
                break
        states = last_good if status == "nan" else model.layer_states()
        if status == "nan":
            last_eval = evaluate(model, data.test.images, data.test.labels, num_classes, device)
        elif status == "stopped":
            message = (f"Stopped by the user after {len(records)} epoch(s) ({step} steps)."
                       if records else "Stopped by the user before the first step finished; the weights are unchanged.")
        else:
            message = (f"Trained {settings.epochs} epoch(s) on {data.name}: test accuracy "
                       f"{records[-1].test_accuracy:.1%}.")
    return TrainResult(status, message, records, states, last_eval, snapshots, notes, losses, step)


def apply_states(stack: Stack, states: dict[str, dict[str, torch.Tensor]]) -> Stack:
    """A copy of ``stack`` whose layers hold ``states`` (layer name -> state_dict) as their ``state``,
    so running or saving the stack gives the trained model. Layers not named keep theirs."""
    out = stack.copy()
    for spec in out.layers:
        if spec.name in states:
            spec.state = {k: v.detach().to("cpu", copy=True) for k, v in states[spec.name].items()}
    return out

"""``feature-map-explorer train``: trains a stack headless and writes stack.json, history.json,
confusion.json and kernels_epoch_K.png to --out.

Exit codes: 0 trained; 1 stopped by a NaN/inf loss (files up to the last good epoch); 2 bad arguments,
unreadable data or a stack that cannot be trained (nothing written); 130 Ctrl+C (stops after the
current step and writes the files up to that point)."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

PROG = "feature-map-explorer"


def add_train_parser(sub) -> None:
    p = sub.add_parser("train", help="train a stack as a classifier on xo, CIFAR-10 or an image folder")
    p.add_argument("stack", metavar="STACK", help="a stack file, or the name of a built-in example (xo_net, lenet_cifar)")
    p.add_argument("--data", required=True, metavar="xo|DIR",
                   help="xo (generated X-versus-O glyphs), a CIFAR-10 folder or tarball, or a folder with one "
                        "sub-folder of images per class")
    p.add_argument("--epochs", type=int, default=5, metavar="N", help="passes over the training split (default 5)")
    p.add_argument("--batch-size", type=int, default=64, metavar="B", help="images per step (default 64)")
    p.add_argument("--lr", type=float, default=0.003, metavar="LR", help="learning rate (default 0.003)")
    p.add_argument("--optimizer", choices=("sgd", "adam", "adamw"), default="adam", help="default adam")
    p.add_argument("--momentum", type=float, default=0.9, metavar="M", help="SGD momentum (default 0.9)")
    p.add_argument("--weight-decay", type=float, default=0.0, metavar="W", help="L2 penalty (default 0)")
    p.add_argument("--schedule", choices=("none", "step", "cosine"), default="none",
                   help="learning-rate schedule: none, step (x0.1 at each third) or cosine (default none)")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="random crop (padding 4) and horizontal flip; default on for CIFAR-10, off otherwise")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="shuffling, augmentation and dropout (default 0)")
    p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps")
    p.add_argument("--download", action="store_true",
                   help="download CIFAR-10 into DIR first if it is not there (needs the internet)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="folder for stack.json, history.json, confusion.json and kernels_epoch_K.png")


def _check(args, usage_error) -> None:
    if not args.lr > 0:
        raise usage_error(f"--lr must be above 0, not {args.lr:g}.")
    if args.epochs < 1:
        raise usage_error(f"--epochs must be at least 1, not {args.epochs}.")
    if args.batch_size < 1:
        raise usage_error(f"--batch-size must be at least 1, not {args.batch_size}.")
    if args.seed < 0:
        raise usage_error(f"--seed must be 0 or more, not {args.seed}.")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise usage_error(f"--out '{args.out}' is a file, not a folder.")
    if args.download and args.data == "xo":
        raise usage_error("--download only goes with a CIFAR-10 folder for --data.")


class _Progress:
    """One updating line on a terminal (at most ten times a second), one line per epoch otherwise."""

    def __init__(self, epochs: int):
        self.tty = sys.stderr.isatty()
        self.epochs = epochs
        self.last = 0.0

    def step(self, info) -> None:
        if not self.tty:
            return
        now = time.monotonic()
        if now - self.last < 0.1 and info.step != info.total_steps:
            return
        self.last = now
        remaining = info.elapsed / info.step * (info.total_steps - info.step)
        sys.stderr.write(f"\repoch {info.epoch}/{self.epochs}  step {info.step}/{info.total_steps}  "
                         f"loss {info.loss:.4f}  {info.samples_per_second:,.0f} samples/s  "
                         f"elapsed {info.elapsed:.0f}s  remaining {remaining:.0f}s\033[K")
        sys.stderr.flush()

    def epoch(self, r) -> None:
        line = (f"epoch {r.epoch}/{self.epochs}: train loss {r.train_loss:.4f} accuracy {r.train_accuracy:.1%}, "
                f"test loss {r.test_loss:.4f} accuracy {r.test_accuracy:.1%}, "
                f"{r.samples_per_second:,.0f} samples/s, {r.seconds:.1f} s")
        sys.stderr.write(("\r" + line + "\033[K\n") if self.tty else line + "\n")
        sys.stderr.flush()

    def note(self, text: str) -> None:
        sys.stderr.write(("\r\033[K" if self.tty else "") + f"{PROG} train: {text}\n")
        sys.stderr.flush()


def cmd_train(args) -> int:
    from explorer.cli import UsageError
    from explorer.core.examples import resolve_stack
    from explorer.core.layers import build_module
    from explorer.core.stack import save_stack
    from explorer.core.training.datasets import load_dataset
    from explorer.core.training.report import (confusion_json, first_conv, history_json, save_kernels_png,
                                               write_json)
    from explorer.core.training.trainer import (TrainControl, TrainError, TrainSettings, apply_states,
                                                plan_training, train)
    from explorer.core.devices import resolve_device

    _check(args, UsageError)
    stack = resolve_stack(args.stack)
    resolve_device(args.device)                     # an unknown device is refused before data is read
    settings = TrainSettings(args.optimizer, args.lr, args.momentum, args.weight_decay, args.batch_size,
                             args.epochs, args.schedule, args.augment, args.seed, args.device)
    try:
        settings.check()
        data = load_dataset(args.data, stack.input, args.seed, download=args.download)
        plan_training(stack, data.image_shape, len(data.classes))
    except TrainError as e:
        raise UsageError(str(e)) from None

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    progress = _Progress(args.epochs)
    for note in data.notes:
        progress.note(note)
    conv = first_conv(stack)
    if conv is not None:
        spec = stack.layers[stack.index_of(conv)]
        save_kernels_png(build_module(spec, stack.seed).weight, out / "kernels_epoch_0.png")

    def on_epoch(info) -> None:
        progress.epoch(info.record)
        if conv is not None:
            save_kernels_png(info.states[conv]["weight"], out / f"kernels_epoch_{info.record.epoch}.png")

    control = TrainControl()
    interrupted = []

    def on_sigint(signum, frame) -> None:
        if interrupted:               # a second Ctrl+C: stop now, without writing
            raise KeyboardInterrupt
        interrupted.append(True)
        control.stop()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        result = train(stack, data, settings, control, on_step=progress.step, on_epoch=on_epoch)
    except TrainError as e:
        raise UsageError(str(e)) from None
    finally:
        signal.signal(signal.SIGINT, previous)
    if progress.tty:
        sys.stderr.write("\r\033[K")
    for note in result.notes:
        if note not in data.notes:
            progress.note(note)

    save_stack(apply_states(stack, result.states), out / "stack.json")
    write_json(out / "history.json", history_json(data, result.epochs, settings, result.status,
                                                  result.message, result.notes))
    if result.evaluation is not None:
        write_json(out / "confusion.json", confusion_json(data, result.evaluation))
    print(f"{result.message} Wrote stack.json, history.json, confusion.json and "
          f"{len(result.epochs) + (conv is not None)} kernel picture(s) to {out}."
          if conv is not None else f"{result.message} Wrote stack.json, history.json and confusion.json to {out}.")
    if result.status == "nan":
        print(f"{PROG} train: {result.message}", file=sys.stderr)
        return 1
    if interrupted:
        return 130
    return 0

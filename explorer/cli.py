"""The ``feature-map-explorer`` command: a thin layer over explorer.core (and the window for ``gui``).

Exit codes: 0 all layers ran; 1 a layer (or walkthrough stage) failed (the summary is still written);
2 bad arguments, an unreadable stack, input or model name, or refused weights. Errors are one line on stderr, never a traceback."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

PROG = "feature-map-explorer"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):   # one line, not argparse's usage block
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


class UsageError(Exception):
    """Bad arguments, or a stack or input that cannot be read: exit code 2."""


def _add_input_options(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument("--image", metavar="PATH", help="an image file (PNG, JPEG, BMP, GIF, TIFF, WebP)")
    src.add_argument("--sample", metavar="NAME", help="a built-in sample (see `samples`)")
    src.add_argument("--cifar", metavar="DIR", help="a CIFAR-10 folder (python version) or cifar-10-python.tar.gz")
    p.add_argument("--split", choices=("test", "train"), default="test", help="CIFAR-10 split (default test)")
    p.add_argument("--batch-size", type=int, default=64, metavar="N", help="CIFAR-10 images per batch (default 64)")
    p.add_argument("--batch", type=int, default=0, metavar="K", help="CIFAR-10 batch index (default 0)")
    p.add_argument("--download", action="store_true",
                   help="download CIFAR-10 into DIR first if it is not there (needs the internet)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="See what convolutional networks do. With no command, opens the window.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("--self-test", action="store_true",
                        help="check this installation (resources, torch, torchvision's compiled ops, the examples, "
                             "the walkthrough and the window) and exit 0 if all is well")
    parser.add_argument("--screenshot", metavar="PATH", help="with --self-test: save a picture of the window to PATH")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    run = sub.add_parser("run", help="run a stack on an input and write every layer's output to a folder")
    run.add_argument("stack", metavar="STACK", help="a stack file, or the name of a built-in example")
    _add_input_options(run)
    run.add_argument("--out", required=True, metavar="DIR", help="folder for input.npy, summary.json and one .npy/.png per layer")
    run.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps")

    shapes = sub.add_parser("shapes", help="the shape table of a stack, without computing anything")
    shapes.add_argument("stack", metavar="STACK", help="a stack file, or the name of a built-in example")
    shapes.add_argument("--input-shape", required=True, metavar="N,C,H,W", help="e.g. 1,3,32,32")
    shapes.add_argument("--json", action="store_true", help="print JSON instead of a table")

    walk = sub.add_parser("walkthrough", help="walk a network (vgg16, lenet, ...) through one image, stage by stage")
    walk.add_argument("model", metavar="MODEL", help="vgg16, lenet, alexnet, vgg11, vgg13, vgg19, resnet18 (also vgg11_bn, vgg13_bn, "
                           "vgg16_bn, vgg19_bn, resnet34, resnet50)")
    src = walk.add_mutually_exclusive_group()
    src.add_argument("--image", metavar="PATH", help="an image file (PNG, JPEG, BMP, GIF, TIFF, WebP)")
    src.add_argument("--sample", metavar="NAME", help="a built-in sample (see `samples`)")
    walk.add_argument("--weights", default="random", metavar="FILE|imagenet",
                      help="random (the default), imagenet (torchvision's file from the local torch cache; "
                           "never downloaded) or a .pth/.pt/.safetensors state_dict")
    walk.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps")
    walk.add_argument("--out", required=True, metavar="DIR", help="folder for summary.json and one .png per 4-D stage")

    from explorer.cli_train import add_train_parser
    add_train_parser(sub)
    from explorer import cli_insight
    cli_insight.add_parsers(sub)     # top-patches, visualize, attribute

    sub.add_parser("samples", help="list the built-in sample images")
    sub.add_parser("examples", help="list the built-in example stacks")

    gui = sub.add_parser("gui", help="open the window (the default)")
    gui.add_argument("stack", nargs="?", metavar="STACK", help="a stack file, or the name of a built-in example")
    _add_input_options(gui)
    gui.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    return parser


def _version() -> str:
    from explorer import __version__
    return __version__


def _print_list(items: list[tuple[str, str]]) -> None:
    width = max((len(name) for name, _ in items), default=0)
    for name, description in items:
        print(f"{name.ljust(width)}  {description}")


def _input_source(args):
    from explorer.core.cifar import download_cifar
    from explorer.core.input_source import InputSource

    if args.cifar:
        path = args.cifar
        if args.download:
            path = str(download_cifar(path))
        return InputSource.cifar(path, args.split, args.batch_size, args.batch)
    if args.download:
        raise UsageError("--download only goes with --cifar DIR.")
    if args.image:
        return InputSource.image(args.image)
    if args.sample:
        return InputSource.sample(args.sample)
    raise UsageError("run needs an input: --image PATH, --sample NAME or --cifar DIR.")


def _parse_shape(text: str) -> tuple[int, ...]:
    from explorer.core.checks import MAX_OUTPUT_ELEMENTS
    from explorer.core.layers import MAX_INT_ARG, show

    shown = show(text)
    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise UsageError(f"--input-shape must be numbers like 1,3,32,32, not {shown}.") from None
    if not 1 <= len(shape) <= 4 or any(v < 1 for v in shape):
        raise UsageError(f"--input-shape must be up to four numbers of at least 1, like N,C,H,W = 1,3,32,32, not {shown}.")
    count = 1
    for v in shape:
        count *= v
    if any(v > MAX_INT_ARG for v in shape) or count > MAX_OUTPUT_ELEMENTS:
        raise UsageError(f"--input-shape {shown} is too large: each number must be at most {MAX_INT_ARG:,} and "
                         f"all together at most {MAX_OUTPUT_ELEMENTS:,} values.")
    return shape


def cmd_run(args) -> int:
    from explorer.core.devices import resolve_device
    from explorer.core.engine import run_stack
    from explorer.core.examples import resolve_stack
    from explorer.core.export import export_run
    from explorer.core.input_source import load_input

    stack = resolve_stack(args.stack)
    device = resolve_device(args.device)
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise UsageError(f"--out '{args.out}' is a file, not a folder.")
    batch = load_input(_input_source(args), stack.input)
    _check_memory(stack, tuple(batch.tensor.shape), device)
    result = run_stack(stack, batch.tensor, device)
    summary = export_run(result, batch, args.out)
    for layer in summary["layers"]:
        shape = layer["output_shape"]
        status = layer["error"] or _fmt_shape(shape)
        print(f"{layer['index']:>3}  {layer['name']:<14} {layer['type']:<16} {status}")
    print(f"wrote {len(summary['layers'])} layer(s) to {args.out} (device {summary['device']})")
    if result.error:
        print(f"{PROG}: {_one_line(result.error)}", file=sys.stderr)
        return 1
    return 0


def _check_memory(stack, input_shape: tuple[int, ...], device) -> None:
    """Refuses a run that would not fit in memory before anything is computed (a 30000x30000 input
    once ran for a minute, peaked at 14.6 GB and wrote 7.2 GB of files)."""
    from explorer.core.engine import MEMORY_MARGIN, available_memory, estimate_run_bytes
    from explorer.core.layers import format_bytes

    need = estimate_run_bytes(stack, input_shape)
    free = available_memory(device)
    if free is not None and need > free * MEMORY_MARGIN:
        raise UsageError(f"Running this stack on a {_fmt_shape(input_shape)} input would need {format_bytes(need)} "
                         f"for the layer outputs, more than the {format_bytes(free * MEMORY_MARGIN)} of memory free "
                         f"on {device.type}; use a smaller input (the stack's input size) or fewer channels.")


def _fmt_shape(shape) -> str:
    return "[" + ", ".join(map(str, shape)) + "]" if shape else "—"


def cmd_shapes(args) -> int:
    from explorer.core.examples import resolve_stack
    from explorer.core.shapes import infer_shapes, total_params

    stack = resolve_stack(args.stack)
    rows = infer_shapes(stack, _parse_shape(args.input_shape))
    if args.json:
        print(json.dumps({"layers": [r.to_json() for r in rows], "total_params": total_params(rows)}, indent=2))
    else:
        header = f"{'#':>3}  {'name':<14} {'type':<16} {'input':<20} {'output':<20} {'params':>10}"
        print(header)
        print("-" * len(header))
        for r in rows:
            name = r.name if r.enabled else f"{r.name} (off)"
            print(f"{r.index:>3}  {name:<14} {r.type:<16} {_fmt_shape(r.input_shape):<20} "
                  f"{_fmt_shape(r.output_shape):<20} {r.params:>10,}")
            for line in r.formula:
                print(f"{'':>5}{line}")
            if r.error:
                print(f"{'':>5}error: {r.error}")
        print(f"total parameters: {total_params(rows):,}")
    return 1 if any(r.error for r in rows) else 0


def cmd_walkthrough(args) -> int:
    from explorer.core.devices import resolve_device
    from explorer.core.input_source import InputSource, load_input
    from explorer.core.model_zoo import build_model, check_name
    from explorer.core.stack import InputSpec
    from explorer.core.walkthrough import WalkthroughError, capture, export_walkthrough, partial_walkthrough
    from explorer.core.weights import load_weights

    name = check_name(args.model)
    device = resolve_device(args.device)
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise UsageError(f"--out '{args.out}' is a file, not a folder.")
    if args.image:
        source = InputSource.image(args.image)
    elif args.sample:
        source = InputSource.sample(args.sample)
    else:
        raise UsageError("walkthrough needs an input: --image PATH or --sample NAME.")
    image = load_input(source, InputSpec(channels=3)).tensor
    if args.weights == "random":
        model = build_model(name)
    else:   # every tensor comes from the file: skip drawing random weights first
        model = build_model(name, "meta").to_empty(device="cpu")
    label = load_weights(model, args.weights, name)
    try:
        walk = capture(name, model, image, device, label)
    except WalkthroughError as e:
        summary = export_walkthrough(partial_walkthrough(name, e, label, image), args.out, error=str(e))
        _print_walkthrough(summary, args.out, device)
        print(f"{PROG}: {_one_line(str(e))}", file=sys.stderr)
        return 1
    summary = export_walkthrough(walk, args.out)
    _print_walkthrough(summary, args.out, device)
    if walk.random_weights:
        print("random weights: these maps show no learned features (no top-5 classes)")
    return 0


def _print_walkthrough(summary: dict, out: str, device) -> None:
    for stage in summary["stages"]:
        rf = stage["receptive_field"]
        print(f"{stage['index']:>3}  {stage['name']:<14} {stage['title']:<42} {_fmt_shape(stage['output_shape']):<20} "
              f"{stage['params']:>12,} {stage['total_params']:>13,}  rf {rf if rf is not None else '-'}")
    print(f"total parameters: {summary['total_params']:,}  weights: {summary['weights']}")
    for entry in summary.get("top5", []):
        print(f"  {entry['probability']:7.2%}  {entry['class']}")
    print(f"wrote {len(summary['stages'])} stage(s) to {out} (device {device})")


def cmd_gui(args) -> int:
    # Before Qt is even imported: a missing X11 library or no display gets one paragraph and exit 2,
    # not Qt's abort ("could not load the Qt platform plugin").
    from explorer.platform_check import check_gui_platform
    problem = check_gui_platform()
    if problem is not None:
        print(f"{PROG}: {problem.message}", file=sys.stderr)
        return 2
    from explorer.ui.app import run_app
    return run_app(args)


COMMANDS = ("run", "shapes", "walkthrough", "samples", "examples", "gui")


def _with_command(argv: list[str]) -> list[str]:
    """The window's options work without the word gui: `feature-map-explorer --image x.png` and
    `feature-map-explorer lenet` mean `gui --image x.png` and `gui lenet`."""
    if not argv or argv[0] in COMMANDS or argv[0] in ("-h", "--help", "--version") or "--self-test" in argv or "--screenshot" in argv:
        return argv
    first = argv[0]
    if first.startswith("-") or first.endswith(".json") or _is_example(first) or os.path.exists(first):
        return ["gui", *argv]
    return argv     # a mistyped command keeps argparse's "invalid choice" with the list of commands


def _is_example(name: str) -> bool:
    from explorer.core.examples import list_examples
    return any(name == example for example, _ in list_examples())


def _one_line(message: str) -> str:
    """A message as one printable line: what the user typed (a path, a name) may hold newlines or
    characters no terminal can show; those are written as escapes (\\n, \\ud800)."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape", "backslashreplace").decode("ascii")
                   for c in message)


def expected_errors() -> tuple[type[Exception], ...]:
    """Errors that mean bad arguments, input, stack, device, model or weights (exit 2, one line).
    Imported when asked: they live in modules that import torch, and the window starts without it."""
    from explorer.core.devices import DeviceError
    from explorer.core.inputs import InputError
    from explorer.core.model_zoo import ModelError
    from explorer.core.stack import StackError
    from explorer.core.weights import WeightsError
    from explorer import cli_insight
    return (UsageError, StackError, InputError, DeviceError, ModelError, WeightsError, *cli_insight.handled_errors())


def main(argv: list[str] | None = None) -> int:
    from explorer.core.malloc_arena import use_one_arena
    use_one_arena()          # first: it holds only before a second thread allocates (the window starts several)
    parser = build_parser()
    argv = _with_command(list(sys.argv[1:] if argv is None else argv))
    for stream in (sys.stdout, sys.stderr):   # a name in any script prints on any terminal
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError):
            pass
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:    # bad arguments (2), --help or --version (0): return the code, as documented
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    from explorer import cli_insight

    if args.screenshot and not args.self_test:
        print(f"{PROG}: --screenshot only goes with --self-test (see {PROG} --help)", file=sys.stderr)
        return 2
    try:
        if args.self_test:
            from explorer.selftest import run_self_test
            return run_self_test(args.screenshot)
        if args.command == "run":
            return cmd_run(args)
        if args.command == "shapes":
            return cmd_shapes(args)
        if args.command == "walkthrough":
            return cmd_walkthrough(args)
        if args.command == "train":
            from explorer.cli_train import cmd_train
            return cmd_train(args)
        if args.command in cli_insight.COMMANDS:
            return cli_insight.run(args)
        if args.command == "samples":
            from explorer.core.inputs import list_samples
            _print_list(list_samples())
            return 0
        if args.command == "examples":
            from explorer.core.examples import list_examples
            _print_list(list_examples())
            return 0
        if args.command is None:
            args = parser.parse_args(["gui", *argv])
        return cmd_gui(args)
    except (UsageError, *expected_errors()) as e:     # evaluated only when something was raised
        print(f"{PROG}: {_one_line(str(e))}", file=sys.stderr)
        return 2
    except BrokenPipeError:   # `... | head` closed the pipe: nothing left to say
        sys.stderr.close()
        return 0
    except OSError as e:   # e.g. the output folder cannot be written
        where = f"cannot write '{e.filename}': " if e.filename else ""
        print(f"{PROG}: {_one_line(f'{where}{e.strerror or e}.')}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a bug of ours: still one line, with the way to see the traceback
        if os.environ.get("FME_DEBUG"):
            raise
        print(f"{PROG}: {_one_line(f'unexpected error ({type(e).__name__}: {e})')}; set FME_DEBUG=1 to see the "
              f"traceback.", file=sys.stderr)
        return 2

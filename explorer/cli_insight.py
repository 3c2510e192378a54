"""The Insight commands of ``feature-map-explorer``: ``top-patches``, ``visualize`` and ``attribute``.
Kept apart from cli.py (which only adds the parsers and dispatches here) so each stays small.

Exit codes as for ``run``: 0 done; 1 the network failed while computing (the message says where);
2 bad arguments, an unreadable stack, input, model or weights, a layer or class that does not exist."""

from __future__ import annotations

import sys
from pathlib import Path

COMMANDS = ("top-patches", "visualize", "attribute")
_DEVICE_HELP = "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps"
_SUBJECT_HELP = ("a stack file, a built-in example, or a walkthrough model (vgg16, resnet18, lenet, ...); "
                 "a name that is both (lenet, vgg16) is the example unless --weights is given; "
                 "model:NAME / example:NAME say which")
_WEIGHTS_HELP = ("walkthrough models only: random (the default), imagenet (from the local torch cache) or a "
                 ".pth/.pt/.safetensors state_dict")


class ComputeError(Exception):
    """The network failed on the data: exit code 1."""


def add_parsers(sub) -> None:
    tp = sub.add_parser("top-patches", help="for every channel of a layer, the k images (and patches) of a data "
                                            "set that excite it most")
    tp.add_argument("stack", metavar="STACK", help=_SUBJECT_HELP)
    tp.add_argument("--layer", required=True, metavar="NAME", help="the layer whose channels are looked at")
    src = tp.add_mutually_exclusive_group(required=True)
    src.add_argument("--cifar", metavar="DIR", help="a CIFAR-10 folder (python version) or cifar-10-python.tar.gz")
    src.add_argument("--images", metavar="DIR", help="a folder of images (sub-folders are classes)")
    src.add_argument("--samples", action="store_true", help="the built-in sample images")
    tp.add_argument("--split", choices=("train", "test"), default="test", help="CIFAR-10 split (default test)")
    tp.add_argument("--k", type=int, default=9, help="patches per channel (default 9)")
    tp.add_argument("--batch-size", type=int, default=256, metavar="B", help="images per batch (default 256)")
    tp.add_argument("--weights", default=None, metavar="W", help=_WEIGHTS_HELP)
    tp.add_argument("--device", default="auto", help=_DEVICE_HELP)
    tp.add_argument("--out", required=True, metavar="DIR", help="folder for top_patches.json and channel_C.png")

    vis = sub.add_parser("visualize", help="the pattern a channel wants: an image optimised to excite it "
                                           "(activation maximisation)")
    vis.add_argument("stack", metavar="STACK_OR_MODEL", help=_SUBJECT_HELP)
    vis.add_argument("--layer", required=True, metavar="NAME", help="the layer whose channels are visualised")
    vis.add_argument("--channels", default=None, metavar="LIST", help="e.g. 0,1,5-8 (default: every channel)")
    vis.add_argument("--steps", type=int, default=256, help="optimisation steps (default 256)")
    vis.add_argument("--size", default=None, metavar="H,W", help="image size (default: the network's input size)")
    vis.add_argument("--seed", type=int, default=0, help="random seed of the starting noise and transforms")
    vis.add_argument("--tv", type=float, default=0.0, metavar="WEIGHT", help="total-variation penalty (default 0)")
    vis.add_argument("--weights", default=None, metavar="W", help=_WEIGHTS_HELP)
    vis.add_argument("--device", default="auto", help=_DEVICE_HELP)
    vis.add_argument("--out", required=True, metavar="DIR", help="folder for channel_C.png and summary.json")

    att = sub.add_parser("attribute", help="which pixels made the network decide: saliency, integrated gradients, "
                                           "guided backprop, Grad-CAM, occlusion")
    att.add_argument("stack", metavar="STACK_OR_MODEL", help=_SUBJECT_HELP)
    src = att.add_mutually_exclusive_group(required=True)
    src.add_argument("--image", metavar="PATH", help="an image file (PNG, JPEG, BMP, GIF, TIFF, WebP)")
    src.add_argument("--sample", metavar="NAME", help="a built-in sample (see `samples`)")
    att.add_argument("--method", required=True,
                     choices=("saliency", "integrated-gradients", "guided-backprop", "grad-cam", "occlusion"))
    att.add_argument("--layer", default=None, metavar="NAME", help="Grad-CAM's convolution (default: the last one)")
    att.add_argument("--target", type=int, default=None, metavar="CLASS_INDEX",
                     help="the class to explain (default: the predicted one)")
    att.add_argument("--weights", default=None, metavar="W", help=_WEIGHTS_HELP)
    att.add_argument("--device", default="auto", help=_DEVICE_HELP)
    att.add_argument("--out", required=True, metavar="DIR", help="folder for attribution.npy, overlay.png, summary.json")


def handled_errors() -> tuple[type[Exception], ...]:
    """Errors that mean bad arguments or input (exit 2), beside those cli.main already knows."""
    from explorer.core.insight.subject import InsightError
    return (InsightError,)


def run(args) -> int:
    """Runs one Insight command; ComputeError becomes exit code 1 with its sentence."""
    from explorer.cli import PROG
    try:
        if args.command == "top-patches":
            return cmd_top_patches(args)
        if args.command == "visualize":
            return cmd_visualize(args)
        return cmd_attribute(args)
    except ComputeError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 1


def _check_out(out: str) -> None:
    from explorer.cli import UsageError
    if Path(out).exists() and not Path(out).is_dir():
        raise UsageError(f"--out '{out}' is a file, not a folder.")


def _subject(args, layer: str | None):
    from explorer.core.devices import resolve_device
    from explorer.core.insight.subject import resolve_subject
    device = resolve_device(args.device)
    subject = resolve_subject(args.stack, args.weights, layer, device)
    if layer is not None:
        subject.check_layer(layer)
    return subject


def _computing(what: str):
    """Turns torch's refusal while computing into ComputeError (exit 1) naming what failed."""
    from contextlib import contextmanager

    from explorer.core.devices import is_out_of_memory

    @contextmanager
    def guard():
        try:
            yield
        except RuntimeError as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            if is_out_of_memory(e):
                first = "the device ran out of memory"
            raise ComputeError(f"{what} failed: {first}") from None
    return guard()


def cmd_top_patches(args) -> int:
    from explorer.cli import UsageError
    from explorer.core.insight.data import CifarSource, FolderSource, SamplesSource
    from explorer.core.insight.top_patches import export_top_patches, top_patches

    if args.k < 1:
        raise UsageError(f"--k must be at least 1, not {args.k}.")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, not {args.batch_size}.")
    _check_out(args.out)
    subject = _subject(args, args.layer)
    if args.cifar:
        source = CifarSource(args.cifar, args.split)
    elif args.images:
        source = FolderSource(args.images)
    else:
        source = SamplesSource()
    with _computing(f"Running {source.describe()} through '{args.layer}'"):
        result = top_patches(subject, args.layer, source, args.k, args.batch_size)
    data = export_top_patches(subject, source, result, args.out)
    dead = result.dead_channels()
    print(f"{len(data['channels'])} channel(s) of '{args.layer}', top {args.k} of {result.images} images "
          f"in {result.seconds:.2f} s (device {subject.device()})")
    if dead:
        print(f"dead (never active): channel(s) {', '.join(map(str, dead))}")
    if subject.notice():
        print(subject.notice())
    print(f"wrote top_patches.json and {len(data['channels'])} channel PNG(s) to {args.out}")
    return 0


def _parse_size(text: str | None) -> tuple[int, int] | None:
    from explorer.cli import UsageError
    if text is None:
        return None
    try:
        parts = [int(v) for v in text.replace("x", ",").split(",")]
    except ValueError:
        parts = []
    if len(parts) != 2 or min(parts) < 1:
        raise UsageError(f"--size must be two numbers of at least 1 like 224,224, not '{text}'.")
    return parts[0], parts[1]


def cmd_visualize(args) -> int:
    from explorer.cli import UsageError
    from explorer.core.insight.feature_vis import export_visualization, layer_channels, parse_channels, visualize

    if args.steps < 0:
        raise UsageError(f"--steps must be 0 or more, not {args.steps}.")
    size = _parse_size(args.size)
    _check_out(args.out)
    subject = _subject(args, args.layer)
    with _computing(f"Layer '{args.layer}' on a {'×'.join(map(str, subject.input_shape(size)[1:]))} input"):
        count = layer_channels(subject, args.layer, size)
    channels = parse_channels(args.channels, count) if args.channels else list(range(count))
    with _computing(f"Optimising the images for '{args.layer}'"):
        result = visualize(subject, args.layer, channels, args.steps, size, args.seed, tv_weight=args.tv)
    data = export_visualization(result, args.out)
    for entry in data["channels"]:
        print(f"channel {entry['channel']:>4}  mean activation {entry['start_activation']:+.4f} -> "
              f"{entry['activation']:+.4f}")
    if subject.notice():
        print(subject.notice())
    print(f"wrote {len(data['channels'])} image(s) and summary.json to {args.out} in {result.seconds:.1f} s "
          f"(device {subject.device()})")
    return 0


def cmd_attribute(args) -> int:
    from explorer.core.inputs import load_image, load_sample
    from explorer.core.insight.attribution import attribute, export_attribution

    _check_out(args.out)
    subject = _subject(args, None)
    if args.layer is not None:
        subject.check_layer(args.layer)
    image = load_image(args.image, channels=3) if args.image else load_sample(args.sample, channels=3)
    raw, x = subject.prepare(image.tensor.to(subject.device()))
    with _computing(f"{args.method} on {subject.name}"):
        result = attribute(subject, raw, x, args.method, args.target, args.layer)
    export_attribution(result, args.out)
    for index, name, p in result.prediction.top5:
        print(f"  {p:7.2%}  {index:>4}  {name or ''}")
    target = f"{result.target}" + (f" ({result.target_name})" if result.target_name else "")
    where = f" at '{result.layer}'" if result.layer else ""
    print(f"{args.method}{where} for class {target}: map {result.map.shape[0]}×{result.map.shape[1]}")
    if result.notice:
        print(result.notice)
    print(f"wrote attribution.npy, overlay.png and summary.json to {args.out}")
    return 0

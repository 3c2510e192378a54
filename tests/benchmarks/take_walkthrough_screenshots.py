#!/usr/bin/env python
"""Real screenshots of the VGG-16 walkthrough window on the astronaut sample, at the steps the
classic text walks through: the input, a convolution (with a receptive field outlined), a pooling,
the flatten and the softmax; and LeNet with its named parameters.

    python tests/benchmarks/take_walkthrough_screenshots.py                 # into resources/screenshots/
    python tests/benchmarks/take_walkthrough_screenshots.py --weights imagenet --out /tmp/shots

Without --weights the model has random weights (nothing is downloaded) and every step says so.
Runs offscreen unless a Qt platform is set; window settings go to a temporary file.

Not a test: pytest does not collect this file.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from take_screenshots import DEFAULT_OUT, make_app, save_png, wait_events  # noqa: E402  (same folder)

WINDOW_SIZE = (1400, 900)


def open_walkthrough(folder: Path, model_name: str, weights: str):
    from PySide6.QtCore import QSettings
    from explorer.core.input_source import InputSource
    from explorer.ui.walkthrough.window import WalkthroughWindow
    settings = QSettings(str(folder / f"settings-{model_name}.ini"), QSettings.Format.IniFormat)
    window = WalkthroughWindow(model_name, source=InputSource.sample("astronaut"), device="cpu", weights=weights,
                               settings=settings)
    window.resize(*WINDOW_SIZE)
    window.show()
    if not window.wait_until_idle(300_000) or window.walkthrough is None:
        raise RuntimeError(f"the {model_name} walkthrough did not open: {window.problem.text()}")
    wait_events(300)
    return window


def first(window, kind: str, skip: int = 0) -> int:
    return [s.index for s in window.walkthrough.stages if s.kind == kind][skip]


def hover(window, y: int, x: int) -> None:
    """What the mouse over output pixel (y, x) of the big channel view does."""
    from PySide6.QtCore import QPointF
    view = window.feature_view.channel_view
    view.graphics.scene().sigMouseMoved.emit(view.image_item.mapToScene(QPointF(x + 0.5, y + 0.5)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Screenshots of the model walkthrough window.")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"folder for the PNGs (default {DEFAULT_OUT})")
    parser.add_argument("--weights", default="random",
                        help="'random' (default), 'imagenet' (from the torch cache) or a weights file")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    make_app()
    written = []
    with tempfile.TemporaryDirectory(prefix="fme-walk-shots-") as tmp:
        window = open_walkthrough(Path(tmp), "vgg16", args.weights)
        conv = first(window, "conv", 3)                  # block 2's second conv: 112×112×128
        steps = [("input", 0, None), ("conv", conv, (56, 70)), ("pool", first(window, "pool")),
                 ("flatten", first(window, "flatten")), ("softmax", window.stage_count - 1)]
        for name, index, *pixel in steps:
            window.go_to(index)
            wait_events(300)
            if pixel and pixel[0] is not None:
                hover(window, *pixel[0])
                wait_events(100)
            path = args.out / f"walkthrough_{name}.png"
            written.append((path, save_png(window, path)))
        window.close()

        lenet = open_walkthrough(Path(tmp), "lenet", "random")
        lenet.go_to(first(lenet, "conv"))
        lenet.side_tabs.setCurrentIndex(1)               # named_parameters()
        wait_events(300)
        path = args.out / "walkthrough_lenet.png"
        written.append((path, save_png(lenet, path)))
        lenet.close()
    for path, size in written:
        print(f"{path}  {size / 1024:.0f} KB", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

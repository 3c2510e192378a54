#!/usr/bin/env python
"""Real screenshots of the explorer window in its main states, for the README and for review.

    python tests/benchmarks/take_screenshots.py                  # all, into resources/screenshots/
    python tests/benchmarks/take_screenshots.py --only main,cifar --out /tmp/shots

Runs offscreen (QT_QPA_PLATFORM=offscreen) unless a platform is set, so it also works under Xvfb
(``QT_QPA_PLATFORM=xcb xvfb-run python tests/benchmarks/take_screenshots.py``). Every state gets a
fresh 1400x900 window with settings in a temporary file (Qt test mode), so the user's own settings
and autosave are never touched. The CIFAR-10 batch is fabricated in the official on-disk format
from the bundled sample pictures, downscaled to 32x32; nothing is downloaded.

Not a test: pytest does not collect this file.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import argparse
import io
import pickle
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "resources" / "screenshots"
WINDOW_SIZE = (1400, 900)
MAX_BYTES = 390_000          # the README's limit is 400 KB; keep a margin

CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


# =========================================================================== a fabricated CIFAR-10 batch


def _crop(img, box):
    """box in fractions of the picture: (left, top, right, bottom)."""
    w, h = img.size
    l, t, r, b = box
    return img.crop((int(l * w), int(t * h), int(r * w), int(b * h)))


def cifar_pictures() -> list[tuple[np.ndarray, int]]:
    """16 recognisable 32x32 RGB pictures from the bundled samples, each with a class index."""
    from PIL import Image, ImageOps
    from explorer.core.resources import resource_path

    def sample(name):
        with Image.open(resource_path("samples", f"{name}.png")) as img:
            return img.convert("RGB")

    astronaut, cat = sample("astronaut"), sample("cat")
    full = (0, 0, 1, 1)
    pictures = [
        (astronaut, full, "airplane"),
        (cat, full, "cat"),
        (astronaut, (0.25, 0.0, 0.75, 0.5), "dog"),          # the face
        (cat, (0.3, 0.05, 0.85, 0.75), "cat"),                # the cat's face
        (astronaut, (0.72, 0.0, 1.0, 0.9), "ship"),           # the shuttle
        (sample("x"), full, "truck"),
        (sample("o"), full, "frog"),
        (sample("checkerboard"), full, "automobile"),
        (sample("edges"), full, "bird"),
        (sample("gradient"), full, "horse"),
        (ImageOps.mirror(cat), full, "cat"),
        (ImageOps.mirror(astronaut), full, "deer"),
        (sample("x_shifted"), full, "truck"),
        (sample("edges"), (0.0, 0.0, 0.5, 0.5), "bird"),
        (cat, (0.0, 0.3, 0.5, 1.0), "dog"),
        (ImageOps.flip(sample("gradient")), full, "horse"),
    ]
    out = []
    for img, box, label in pictures:
        small = _crop(img, box).resize((32, 32), Image.Resampling.LANCZOS if img.size[0] > 32 else Image.Resampling.NEAREST)
        out.append((np.asarray(small, dtype=np.uint8), CLASS_NAMES.index(label)))
    return out


def write_cifar_folder(parent: Path) -> Path:
    """``cifar-10-batches-py`` with a 16-image test_batch and batches.meta, as the official files
    are laid out: each row is 1024 red, 1024 green, then 1024 blue bytes, row-major 32x32."""
    folder = parent / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    pictures = cifar_pictures()
    data = np.stack([rgb.transpose(2, 0, 1).reshape(-1) for rgb, _ in pictures]).astype(np.uint8)
    labels = [label for _, label in pictures]
    batch = {
        b"batch_label": b"testing batch 1 of 1",
        b"labels": labels,
        b"data": data,
        b"filenames": [f"screenshot_{i:02d}.png".encode() for i in range(len(labels))],
    }
    with open(folder / "test_batch", "wb") as f:
        pickle.dump(batch, f, protocol=2)
    meta = {b"num_cases_per_batch": len(labels), b"label_names": [n.encode() for n in CLASS_NAMES], b"num_vis": 3072}
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump(meta, f, protocol=2)
    return folder


# =========================================================================== the window


def make_app():
    from PySide6.QtCore import QStandardPaths
    QStandardPaths.setTestModeEnabled(True)
    from explorer.ui.app import make_application
    return make_application()


def wait_events(ms: int) -> None:
    from PySide6.QtCore import QEventLoop, QTimer
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def settle(window, ms: int = 400) -> None:
    if not window.runner.wait_until_idle(30_000):
        raise RuntimeError("the run did not finish in 30 s")
    wait_events(ms)


def open_window(folder: Path, stack=None, source=None):
    from PySide6.QtCore import QSettings
    from explorer.ui.main_window import MainWindow
    settings = QSettings(str(folder / f"settings-{os.urandom(4).hex()}.ini"), QSettings.Format.IniFormat)
    window = MainWindow(stack=stack, source=source, device="cpu", settings=settings)
    window.resize(*WINDOW_SIZE)
    window.show()
    settle(window)
    return window


def close_window(window) -> None:
    window.document.undo_stack.setClean()          # no "save changes?" question
    window.close()
    window.deleteLater()
    wait_events(50)


def save_png(window, path: Path) -> int:
    """The window's own pixels (no frame) as PNG, under MAX_BYTES. Too big, it first drops the lowest
    bit or two of each channel (an error of 1-3 in 255 that nobody can see, and no banding), and
    only then falls back to a 256-colour palette. Returns the file size."""
    from PIL import Image, ImageOps
    from PySide6.QtCore import QBuffer, QIODevice

    pixmap = window.grab()
    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    pixmap.toImage().save(buffer, "PNG")
    image = Image.open(io.BytesIO(bytes(buffer.data()))).convert("RGB")
    candidates = [lambda: image, lambda: ImageOps.posterize(image, 7), lambda: ImageOps.posterize(image, 6),
                  lambda: image.quantize(colors=256, method=Image.Quantize.MAXCOVERAGE, kmeans=3)]
    for make in candidates:
        out = io.BytesIO()
        make().save(out, format="PNG", optimize=True)
        if out.tell() <= MAX_BYTES:
            break
    path.write_bytes(out.getvalue())
    return out.tell()


# =========================================================================== the states


def _qt():
    from PySide6.QtCore import Qt
    return Qt


def shot_main(folder: Path, cifar: Path):
    """The default start: astronaut, default stack, conv1 selected."""
    window = open_window(folder)
    window.document.select(0)
    settle(window)
    return window


def shot_cifar(folder: Path, cifar: Path):
    """LeNet on a CIFAR-10 batch of 16, pool1 selected, one channel across the whole batch."""
    from explorer.core.examples import load_example
    from explorer.core.input_source import InputSource
    stack = load_example("lenet")
    window = open_window(folder, stack, InputSource.cifar(cifar, batch_size=16))
    pool1 = stack.index_of("pool1")
    window.document.select(pool1)
    view = window.feature_view
    view.mode_combo.setCurrentIndex(view.mode_combo.findData("batch"))       # as the user picks it
    # After a ReLU some random filters answer almost nowhere; show the liveliest channel.
    out = window.result.layers[pool1].output
    liveliest = int((out > 0).float().mean(dim=(0, 2, 3)).argmax())
    view.channel_spin.setValue(liveliest)
    window.input_panel.set_batch_item(1)            # the cat
    settle(window)
    return window


def shot_symmetric(folder: Path, cifar: Path):
    """conv1 in symmetric normalisation; the view switches to the diverging map by itself."""
    window = open_window(folder)
    window.document.select(0)
    settle(window)
    view = window.feature_view
    view.norm_combo.setCurrentIndex(view.norm_combo.findData("symmetric"))   # as the user picks it
    settle(window)
    return window


def shot_linear(folder: Path, cifar: Path):
    """Flatten -> Linear(3072, 10) on the CIFAR batch: ten scores with the class names."""
    from explorer.core.examples import load_example
    from explorer.core.input_source import InputSource
    stack = load_example("flatten_linear")
    window = open_window(folder, stack, InputSource.cifar(cifar, batch_size=16))
    window.document.select(stack.index_of("fc1"))
    settle(window)
    return window


def shot_error(folder: Path, cifar: Path):
    """LeNet with conv2's in_channels set wrong: the layer turns red and says why."""
    from explorer.core.examples import load_example
    from explorer.core.input_source import InputSource
    stack = load_example("lenet")
    window = open_window(folder, stack, InputSource.cifar(cifar, batch_size=16))
    conv2 = stack.index_of("conv2")
    window.document.set_arg(conv2, "in_channels", 3)
    window.document.select(conv2)
    settle(window)
    table = window.shapes_view.table                 # the user scrolls down to the red row
    table.scrollTo(window.shapes_view.model.index(conv2, 0))
    settle(window, 100)
    return window


def shot_model(folder: Path, cifar: Path):
    """The Model tab (print(model) and the parameters) for LeNet."""
    from explorer.core.examples import load_example
    from explorer.core.input_source import InputSource
    stack = load_example("lenet")
    window = open_window(folder, stack, InputSource.cifar(cifar, batch_size=16))
    window.bottom_tabs.setCurrentWidget(window.model_view)
    # The default bottom dock (190 px) shows only ~7 lines of print(model); give it the room a
    # user would drag it to.
    window.resizeDocks([window.bottom_dock], [330], _qt().Orientation.Vertical)
    settle(window, 100)
    window.document.select(stack.index_of("fc1"))
    settle(window)
    return window


def shot_kernel(folder: Path, cifar: Path):
    """The Kernel tab: conv1's first filter set to Sobel x on every input channel."""
    window = open_window(folder)
    window.document.select(0)
    window.layer_tabs.setCurrentWidget(window.kernel_editor)
    editor = window.kernel_editor
    editor.all_inputs.setChecked(True)
    editor.apply_preset("Sobel x (vertical edges)")
    settle(window)
    return window


SHOTS = {
    "main": shot_main,
    "cifar": shot_cifar,
    "symmetric": shot_symmetric,
    "linear": shot_linear,
    "error": shot_error,
    "model": shot_model,
    "kernel": shot_kernel,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Screenshots of the explorer window in its main states.")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"folder for the PNGs (default {DEFAULT_OUT})")
    parser.add_argument("--only", default="", help=f"comma list of states: {', '.join(SHOTS)}")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(SHOTS)
    unknown = [n for n in names if n not in SHOTS]
    if unknown:
        parser.error(f"unknown state(s) {', '.join(unknown)}; choose from {', '.join(SHOTS)}")
    args.out.mkdir(parents=True, exist_ok=True)

    make_app()
    with tempfile.TemporaryDirectory(prefix="fme-shots-") as tmp:
        folder = Path(tmp)
        cifar = write_cifar_folder(folder)
        for name in names:
            window = SHOTS[name](folder, cifar)
            path = args.out / f"{name}.png"
            size = save_png(window, path)
            print(f"{path}  {window.width()}x{window.height()}  {size / 1024:.0f} KB", flush=True)
            close_window(window)
    return 0


if __name__ == "__main__":
    sys.exit(main())

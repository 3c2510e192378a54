#!/usr/bin/env python
"""Screenshots of the kernel editor and the pixel probe, done as a learner would do them:

    python tests/benchmarks/take_kernel_screenshots.py            # into resources/screenshots/
    python tests/benchmarks/take_kernel_screenshots.py --out /tmp/shots

1. ``kernel_sobel.png``: the photo sample (astronaut), conv1 of the default stack; a Sobel x kernel
   typed cell by cell into filter 0 with 'same kernel on every input channel' on, then the mouse
   rests on an output pixel on an edge and the probe panel explains its value.
2. ``kernel_x_vs_o.png``: the X-versus-O example on the 'x' sample, the '\\' template of the
   templates layer in the editor, and the probe on the pixel where that template fires most.

Runs offscreen unless a Qt platform is set. Not a test: pytest does not collect this file.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from take_screenshots import DEFAULT_OUT, close_window, make_app, open_window, save_png, settle, wait_events  # noqa: E402


def type_into_cell(editor, row: int, col: int, text: str) -> None:
    """Double-click-free typing: open the cell's editor and type the characters one by one."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QLineEdit
    table = editor.table
    table.setCurrentCell(row, col)
    table.editItem(table.item(row, col))
    line = next(e for e in table.findChildren(QLineEdit, "kernelCellEditor") if e.isVisible())
    line.selectAll()
    QTest.keyClicks(line, text)
    QTest.keyClick(line, Qt.Key.Key_Return)
    wait_events(30)          # the view commits and closes the editor on its next turn


def hover(window, x: int, y: int) -> None:
    view = window.feature_view.channel_view
    view.graphics.scene().sigMouseMoved.emit(view.scene_point_of_pixel(x, y))


def arrange(window) -> None:
    from PySide6.QtCore import Qt
    window.resizeDocks([window.layers_dock, window.probe_dock], [400, 470], Qt.Orientation.Horizontal)
    window.resizeDocks([window.input_dock, window.probe_dock], [150, 650], Qt.Orientation.Vertical)
    window.resizeDocks([window.bottom_dock], [120], Qt.Orientation.Vertical)
    window.layer_tabs.setCurrentWidget(window.kernel_editor)
    splitter = window.layers_dock.widget()
    splitter.setSizes([150, 700])


def shot_sobel(folder: Path):
    window = open_window(folder)
    window.resize(1500, 950)
    arrange(window)
    window.document.select(0)
    editor = window.kernel_editor
    editor.all_inputs.setChecked(True)
    editor.apply_preset("Zeros")
    settle(window)
    sobel = [["-1", "0", "1"], ["-2", "0", "2"], ["-1", "0", "1"]]
    for r, row in enumerate(sobel):
        for c, text in enumerate(row):
            if text != "0":
                type_into_cell(editor, r, c, text)
    settle(window)
    window.feature_view.set_selected_channel(0)
    settle(window)
    out = window.result.layers[0].output[0, 0]
    # Rest on the strongest edge of the upper half (the helmet's rim).
    upper = out[: out.shape[0] // 2]
    y, x = divmod(int(upper.abs().argmax()), upper.shape[1])
    hover(window, x, y)
    wait_events(300)
    return window


def shot_x_vs_o(folder: Path):
    from explorer.core.examples import load_example
    from explorer.core.input_source import InputSource
    stack = load_example("x_vs_o")
    window = open_window(folder, stack, InputSource.sample("x"))
    window.resize(1500, 950)
    arrange(window)
    window.document.select(0)
    settle(window)
    window.feature_view.set_selected_channel(0)
    window.kernel_editor.select_kernel(0, 0)
    settle(window)
    out = window.result.layers[0].output[0, 0]
    y, x = divmod(int(out.argmax()), out.shape[1])
    hover(window, x, y)
    wait_events(300)
    return window


SHOTS = {"kernel_sobel": shot_sobel, "kernel_x_vs_o": shot_x_vs_o}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Screenshots of the kernel editor and the pixel probe.")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    make_app()
    with tempfile.TemporaryDirectory(prefix="fme-kernel-shots-") as tmp:
        for name, shot in SHOTS.items():
            window = shot(Path(tmp))
            path = args.out / f"{name}.png"
            size = save_png(window, path)
            print(f"{path}  {window.width()}x{window.height()}  {size / 1024:.0f} KB", flush=True)
            close_window(window)
    return 0


if __name__ == "__main__":
    sys.exit(main())

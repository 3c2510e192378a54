#!/usr/bin/env python
"""The README's picture of training: xo_net on xo in the window, mid-way through epoch 3 of 5,
with conv1 selected in the Kernel tab (its kernels follow the live weights).

    python tests/benchmarks/take_train_screenshot.py            # resources/screenshots/train.png
    python tests/benchmarks/take_train_screenshot.py --out /tmp/shots

Writes ``train.png`` (the whole window); with --panel also ``train_panel.png`` (the Train panel alone).
Runs offscreen unless a Qt platform is set. Not a test: pytest does not collect this file.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))   # this checkout's explorer
sys.path.insert(1, str(Path(__file__).resolve().parent))

from take_screenshots import DEFAULT_OUT, close_window, make_app, open_window, save_png, settle, wait_events  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--panel", action="store_true", help="also write train_panel.png")
    p.add_argument("--epochs-before", type=int, default=2, help="epochs finished before the picture")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    app = make_app()
    from PySide6.QtCore import Qt
    from explorer.core.examples import load_example
    from explorer.core.input_source import InputSource

    with tempfile.TemporaryDirectory() as tmp:
        window = open_window(Path(tmp), stack=load_example("xo_net"), source=InputSource.sample("x"))
        window.resize(1500, 1000)
        panel = window.training.show()
        window.resizeDocks([panel.parentWidget()], [380], Qt.Orientation.Vertical)
        window.document.select(0)
        window.layer_tabs.setCurrentWidget(window.kernel_editor)
        settle(window)
        panel.epochs.setValue(5)
        panel.start_button.click()
        while len(panel._epochs) < args.epochs_before:
            wait_events(50)
        steps_per_epoch = 63
        while len(panel._losses) < args.epochs_before * steps_per_epoch + steps_per_epoch // 2:
            wait_events(20)
        panel.pause_button.click()          # hold still for the picture
        settle(window, 800)
        panel.results.setCurrentIndex(0)
        size = save_png(window, args.out / "train.png")
        if args.panel:
            panel.grab().save(str(args.out / "train_panel.png"))
        print(f"wrote {args.out / 'train.png'} ({size:,} bytes)")
        panel.pause_button.click()
        panel.stop_button.click()
        while panel.controller.busy:
            wait_events(50)
        close_window(window)
    del app
    return 0


if __name__ == "__main__":
    sys.exit(main())

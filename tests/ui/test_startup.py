"""Start-up: the window shows the stack before torch is imported, says "loading torch…", and the
real window takes its place (with the stack and the feature maps) when torch is ready."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from PIL import Image

from explorer.cli import build_parser
from explorer.core.engine import run_stack
from explorer.core.examples import load_example
from explorer.core.inputs import load_image, load_sample
from explorer.core.layers import describe
from explorer.core.stack import save_stack
from explorer.ui.app import WindowStarter
from explorer.ui.main_window import MainWindow
from explorer.ui.startup import LOADING_TEXT, TorchLoader

ROOT = Path(__file__).resolve().parents[2]

FIRST_WINDOW = r"""
import json, sys
from explorer.cli import _with_command, build_parser
argv = _with_command(sys.argv[1:])
from PySide6.QtWidgets import QApplication
from explorer.ui.app import WindowStarter, make_application
app = make_application(pyqtgraph=False)
starter = WindowStarter(build_parser().parse_args(argv))      # the loader thread is not started
window = starter.shell
window.show()
app.processEvents()
model = window.shapes_view.model
cells = [[model.data(model.index(r, c)) for c in range(model.columnCount())] for r in range(model.rowCount())]
print(json.dumps({
    "argv": argv, "layers": window.layer_texts(), "status": window.statusBar().currentMessage(),
    "title": window.windowTitle(), "visible": window.isVisible(), "cells": cells,
    "input_shape": window.input_shape,
    "heavy": sorted(m for m in ("torch", "numpy", "pyqtgraph", "torchvision") if m in sys.modules),
}))
"""


def _first_window(tmp_path: Path, *argv: str) -> dict:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT), XDG_CONFIG_HOME=str(tmp_path / "config"))
    run = subprocess.run([sys.executable, "-c", FIRST_WINDOW, *argv], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])


def _shape_text(shape) -> str:
    return "[" + ", ".join(str(v) for v in shape) + "]"


def _ran(stack, batch) -> list:
    """Each layer's output shape, by running the stack through torch."""
    return [layer.output_shape for layer in run_stack(stack, batch, "cpu").layers]


def test_first_window_shows_the_stack_and_its_shapes_without_importing_torch(tmp_path):
    seen = _first_window(tmp_path, "lenet")
    assert seen["heavy"] == []                      # neither torch nor numpy nor pyqtgraph
    assert seen["argv"] == ["gui", "lenet"]          # telling an example from a command needs no torch either
    stack = load_example("lenet")
    batch = load_sample("astronaut", channels=1, size=(32, 32)).tensor
    shapes = _ran(stack, batch)
    assert seen["input_shape"] == list(batch.shape)
    assert seen["layers"] == [f"{describe(layer)} · {_shape_text(shape)}\n{layer.name}"
                              for layer, shape in zip(stack.layers, shapes)]
    assert [(row[1], row[2], row[4]) for row in seen["cells"]] == [
        (layer.name, layer.type, _shape_text(shape)) for layer, shape in zip(stack.layers, shapes)]
    assert seen["status"] == LOADING_TEXT and seen["visible"]
    assert seen["title"] == "untitled — Feature Map Explorer"      # as the real window calls an example


def test_first_window_takes_the_size_from_the_image_and_shows_layers_that_are_off(tmp_path):
    stack = load_example("default")                # no input size: the image's own
    stack.layers[1].enabled = False
    path = tmp_path / "mine.json"
    save_stack(stack, path)
    image = tmp_path / "wide.png"
    Image.new("RGB", (40, 24), (200, 30, 30)).save(image)
    seen = _first_window(tmp_path, str(path), "--image", str(image))
    assert seen["heavy"] == []
    batch = load_image(image).tensor
    shapes = _ran(stack, batch)
    assert seen["input_shape"] == list(batch.shape) == [1, 3, 24, 40]
    assert seen["layers"][1] == f"{describe(stack.layers[1])} · off\n{stack.layers[1].name}"
    assert seen["layers"][2] == f"{describe(stack.layers[2])} · {_shape_text(shapes[2])}\n{stack.layers[2].name}"
    assert seen["title"] == "mine.json — Feature Map Explorer"


def test_a_stack_the_loader_refuses_is_one_line_before_any_window(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"layers": [{"type": "Conv2d", "name": "c", "args": {"in_channels": 3}}]}')
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT), XDG_CONFIG_HOME=str(tmp_path / "config"))
    run = subprocess.run([sys.executable, "-m", "explorer", str(bad)], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 2 and run.stdout == ""
    line = [l for l in run.stderr.splitlines() if "propagateSizeHints" not in l]
    assert len(line) == 1 and line[0].startswith("feature-map-explorer: ") and "out_channels" in line[0]


def _starter(tmp_path, *argv: str) -> WindowStarter:
    args = build_parser().parse_args(["gui", *argv, "--device", "cpu"])
    return WindowStarter(args, settings=QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat))


def test_loading_torch_then_the_real_window_takes_over_with_the_feature_maps(qtbot, tmp_path):
    starter = _starter(tmp_path, "lenet")
    shell = starter.shell
    starter.start()
    assert shell.isVisible() and starter.window is shell
    assert shell.statusBar().currentMessage() == LOADING_TEXT
    assert [r.output_shape for r in shell.rows] == [tuple(x) for x in _ran(load_example("lenet"),
                                                                        load_sample("astronaut", 1, (32, 32)).tensor)]
    with qtbot.waitSignal(starter.window_ready, timeout=60_000) as ready:
        pass
    window = ready.args[0]
    try:
        assert isinstance(window, MainWindow) and starter.window is window
        assert window.isVisible() and shell.handed_over and not shell.isVisible()
        assert window.statusBar().currentMessage() != LOADING_TEXT
        assert window.document.stack.names() == load_example("lenet").names()
        assert window.geometry() == shell.geometry()          # in the same place, the same size
        assert window.runner.wait_until_idle(20_000) and window.feature_view.wait_until_ready(20_000)
        qtbot.waitUntil(lambda: window.feature_view.grid.image_item.image is not None, timeout=20_000)
        assert window.result is not None and [r.name for r in window.result.layers] == window.document.stack.names()
    finally:
        window.document.undo_stack.setClean()
        window.close()


def test_a_device_the_loader_refuses_ends_the_app_with_its_sentence(qtbot, tmp_path, capsys):
    args = build_parser().parse_args(["gui", "lenet", "--device", "cuda:99"])
    starter = WindowStarter(args, settings=QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat))
    gave_up = []
    starter.gave_up.connect(gave_up.append)
    starter.start()
    qtbot.waitUntil(lambda: starter.exit_code is not None, timeout=60_000)
    assert starter.exit_code == 2 and gave_up == [2] and not starter.shell.isVisible()
    err = capsys.readouterr().err.strip()
    assert err.startswith("feature-map-explorer: ") and "cuda:99" in err and "\n" not in err
    assert not any(isinstance(w, MainWindow) and w.isVisible() for w in QApplication.topLevelWidgets())


def test_closing_the_first_window_before_torch_is_ready_opens_nothing(qtbot, tmp_path):
    starter = _starter(tmp_path, "lenet")
    closed = []
    starter.shell.closed.connect(lambda: closed.append(True))
    starter.start()
    starter.shell.close()
    starter.loader.thread.join(60)
    qtbot.wait(50)          # the loader's queued signal is delivered, and ignored
    assert closed == [True] and starter.window is starter.shell
    assert not any(isinstance(w, MainWindow) and w.isVisible() for w in QApplication.topLevelWidgets())


def test_loader_reports_a_failure_on_the_gui_thread(qtbot):
    def prepare():
        raise OSError("disk gone")
    loader = TorchLoader(prepare)
    with qtbot.waitSignal(loader.failed, timeout=10_000) as failed:
        loader.start()
    assert isinstance(failed.args[0], OSError) and str(failed.args[0]) == "disk gone"


def test_extensions_imported_with_the_gil_released_still_work(tmp_path):
    code = ("import sys, threading\n"
            "from explorer.ui.startup import GilFreeExtensionLoading\n"
            "before = list(sys.meta_path)\n"
            "def load():\n"
            "    with GilFreeExtensionLoading():\n"
            "        import lzma\n"
            "    assert lzma.decompress(lzma.compress(b'feature maps')) == b'feature maps'\n"
            "t = threading.Thread(target=load); t.start(); t.join()\n"
            "import lzma\n"
            "print(sys.meta_path == before, '_lzma' in sys.modules)\n")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["True", "True"]

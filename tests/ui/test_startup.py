"""Start-up: the window shows the stack before torch is imported, says "loading torch…", and the
real window takes its place (with the stack and the feature maps) when torch is ready."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from explorer.cli import build_parser
from explorer.core.examples import load_example
from explorer.core.stack import save_stack
from explorer.ui.app import WindowStarter
from explorer.ui.main_window import MainWindow
from explorer.ui.startup import LOADING_TEXT, WAITING, TorchLoader

ROOT = Path(__file__).resolve().parents[2]

FIRST_WINDOW = r"""
import json, sys
from explorer.cli import _with_command
argv = _with_command([sys.argv[1]])
from PySide6.QtWidgets import QApplication
from explorer.core.outline import outline_stack
from explorer.ui.startup import StartupWindow
app = QApplication([])
window = StartupWindow(outline_stack(sys.argv[1]))
window.show()
app.processEvents()
table = window.shape_table
print(json.dumps({
    "argv": argv, "layers": window.layer_texts(), "status": window.statusBar().currentMessage(),
    "title": window.windowTitle(), "visible": window.isVisible(),
    "table": [[table.item(r, c).text() for c in range(table.columnCount())] for r in range(table.rowCount())],
    "heavy": sorted(m for m in ("torch", "numpy", "pyqtgraph", "PIL") if m in sys.modules),
}))
"""


def _first_window(stack: str, tmp_path: Path) -> dict:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT), XDG_CONFIG_HOME=str(tmp_path / "config"))
    run = subprocess.run([sys.executable, "-c", FIRST_WINDOW, stack], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_first_window_lists_the_stack_without_importing_torch(tmp_path):
    seen = _first_window("lenet", tmp_path)
    assert seen["heavy"] == []                      # neither torch nor numpy, PIL, pyqtgraph
    assert seen["argv"] == ["gui", "lenet"]          # telling an example from a command needs no torch either
    stack = load_example("lenet")
    assert seen["layers"] == [f"{layer.name}  ·  {layer.type}" for layer in stack.layers]
    assert [row[1:3] for row in seen["table"]] == [[layer.name, layer.type] for layer in stack.layers]
    assert seen["status"] == LOADING_TEXT and seen["visible"]
    assert seen["title"].startswith("lenet")


def test_first_window_shows_a_stack_file_and_its_layers_that_are_off(tmp_path):
    stack = load_example("default")
    stack.layers[1].enabled = False
    path = tmp_path / "mine.json"
    save_stack(stack, path)
    seen = _first_window(str(path), tmp_path)
    assert seen["heavy"] == []
    expected = [f"{layer.name}  ·  {layer.type}" + ("" if layer.enabled else " · off") for layer in stack.layers]
    assert seen["layers"] == expected and seen["layers"][1].endswith(" · off")
    assert seen["title"].startswith("mine.json")


def _starter(tmp_path, *argv: str) -> WindowStarter:
    args = build_parser().parse_args(["gui", *argv, "--device", "cpu"])
    return WindowStarter(args, settings=QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat))


def test_loading_torch_then_the_real_window_takes_over_with_the_feature_maps(qtbot, tmp_path):
    starter = _starter(tmp_path, "lenet")
    shell = starter.shell
    starter.start()
    assert shell.isVisible() and starter.window is shell
    assert shell.statusBar().currentMessage() == LOADING_TEXT
    assert {shell.shape_table.item(r, 3).text() for r in range(shell.shape_table.rowCount())} == {WAITING}
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


def test_a_stack_the_loader_refuses_ends_the_app_with_its_sentence(qtbot, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"layers": [{"type": "Conv2d", "name": "c", "args": {"in_channels": 3}}]}')
    starter = _starter(tmp_path, str(bad))
    starter.start()
    assert starter.shell.layer_texts() == ["c  ·  Conv2d"]     # shown while torch loads: not checked yet
    qtbot.waitUntil(lambda: starter.exit_code is not None, timeout=60_000)
    assert starter.exit_code == 2 and not starter.shell.isVisible()
    err = capsys.readouterr().err.strip()
    assert err.startswith("feature-map-explorer: ") and "out_channels" in err and "\n" not in err
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

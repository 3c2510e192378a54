import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


import sys
import threading

import pytest


@pytest.fixture(autouse=True)
def gui_thread_gc(qapp):
    """As in the application: cyclic garbage is collected only on the GUI thread (see
    explorer/ui/gc_collector.py); a collection on a worker thread can free a Qt object there."""
    from explorer.ui.gc_collector import install_gc_collector
    return install_gc_collector(qapp)


@pytest.fixture
def make_window(qtbot, tmp_path, monkeypatch):
    """Main windows as a user gets them (CPU, settings in a temporary file); an unexpected error
    dialog fails the test, and closing never asks about unsaved changes."""
    from PySide6.QtCore import QSettings, QStandardPaths

    from explorer.ui import dialogs
    from explorer.ui.app import configure_pyqtgraph
    from explorer.ui.main_window import MainWindow

    QStandardPaths.setTestModeEnabled(True)
    configure_pyqtgraph()
    windows = []
    monkeypatch.setattr(dialogs, "show_error", lambda *a, **k: pytest.fail(f"unexpected error dialog: {a[2:]}"))
    monkeypatch.setattr(dialogs, "save_changes", lambda *a: "discard")

    def make(**kwargs):
        settings = QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)
        window = MainWindow(settings=settings, device="cpu", **kwargs)
        qtbot.addWidget(window)
        window.resize(1400, 900)
        window.show()
        assert window.runner.wait_until_idle(20_000)
        assert window.feature_view.wait_until_ready(20_000) and window.kernel_editor.wait_until_ready(20_000)
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.document.undo_stack.setClean()
        window.close()


@pytest.fixture
def doc():
    """A small document (conv1, relu1, pool1 on a 32x32 RGB input) for the layer panel and form tests."""
    from explorer.core.layers import LayerSpec
    from explorer.core.stack import InputSpec, Stack
    from explorer.ui.document import StackDocument

    return StackDocument(Stack([
        LayerSpec("Conv2d", "conv1", {"in_channels": 3, "out_channels": 6, "kernel_size": 3}),
        LayerSpec("ReLU", "relu1"),
        LayerSpec("MaxPool2d", "pool1", {"kernel_size": 2}),
    ], input=InputSpec(size=(32, 32))))


@pytest.fixture
def state(doc):
    """The session state over ``doc``, as the window has it (nothing has run: shapes for the input block)."""
    from explorer.ui.session_state import SessionState
    return SessionState(doc)


@pytest.fixture
def panel(qtbot, doc, state):
    """The layer list over ``doc``, showing the state's shape rows as the window does."""
    from explorer.ui.layer_panel import LayerPanel

    p = LayerPanel(doc, state)
    qtbot.addWidget(p)
    p.resize(340, 500)
    p.show()
    qtbot.waitExposed(p)
    return p


TENSOR_WORK = ("layer_stats", "render_grid", "render_rgb", "render_batch_channel", "render_view",
               "prepare_display", "bucket_max_abs", "render_input_image")


@pytest.fixture
def tensor_work_threads(monkeypatch):
    """Records the thread of every call to the functions whose cost grows with a layer's size,
    wherever a module of the app took them from (``from ... import`` copies the name)."""
    calls: list[tuple[str, int]] = []
    for module in [m for name, m in list(sys.modules.items()) if name.startswith("explorer") and m is not None]:
        for name in TENSOR_WORK:
            original = getattr(module, name, None)
            if callable(original) and not getattr(original, "_recording", False):
                def recording(*args, _original=original, _name=name, **kwargs):
                    calls.append((_name, threading.get_ident()))
                    return _original(*args, **kwargs)
                recording._recording = True
                monkeypatch.setattr(module, name, recording)
    return calls

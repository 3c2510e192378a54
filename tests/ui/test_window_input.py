"""The window's keys, fields, error display and layout, driven as a person would: Redo on both its
keys, no key bound twice, numbers refused at the field, background failures shown in place (never
one dialog each), one reason per layer, a bad input named in the view, a small screen."""

from __future__ import annotations

from collections import defaultdict

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QGuiApplication, QKeySequence, QShortcut


def settle(window):
    assert window.runner.wait_until_idle(20_000)


def press(qtbot, widget, key: str) -> None:
    """A key combination as typed, through Qt's shortcut handling."""
    seq = QKeySequence(key)
    combo = seq[0]
    qtbot.keyClick(widget, combo.key(), combo.keyboardModifiers())


# ---------------------------------------------------------------- keys
def portable(keys) -> list[str]:
    return [k.toString(QKeySequence.SequenceFormat.PortableText) for k in keys]


def test_redo_has_the_platform_keys_ctrl_shift_z_and_ctrl_y_each_once(make_window):
    """On Linux desktops QKeySequence.Redo is Ctrl+Shift+Z, which the window also bound by hand: Qt
    then calls the key ambiguous and Redo never runs."""
    redo = portable(make_window().redo_action.shortcuts())
    wanted = portable(QKeySequence.keyBindings(QKeySequence.StandardKey.Redo)) + ["Ctrl+Shift+Z", "Ctrl+Y"]
    assert set(redo) == set(wanted)
    assert len(redo) == len(set(redo))


@pytest.mark.parametrize("redo_key", ["Ctrl+Shift+Z", "Ctrl+Y"])
def test_redo_works_with_both_keys(make_window, qtbot, qtlog, redo_key):
    window = make_window()
    window.activateWindow()
    qtbot.waitActive(window)
    window.layer_panel.list.setFocus()
    window.document.set_arg(0, "out_channels", 9)
    press(qtbot, window.layer_panel.list, "Ctrl+Z")
    assert window.document.stack.layers[0].args["out_channels"] == 6
    press(qtbot, window.layer_panel.list, redo_key)
    assert window.document.stack.layers[0].args["out_channels"] == 9
    assert not [r for r in qtlog.records if "Ambiguous" in r.message]


def window_shortcuts(window) -> dict[str, list[str]]:
    """Every key that triggers something window-wide (actions and QShortcuts), with what it triggers."""
    keys: dict[str, list[str]] = defaultdict(list)
    for action in window.findChildren(QAction):
        if action.shortcutContext() == Qt.ShortcutContext.WidgetShortcut:
            continue
        for key in portable(action.shortcuts()):
            keys[key].append(action.text())
    for shortcut in window.findChildren(QShortcut):
        if shortcut.context() != Qt.ShortcutContext.WidgetShortcut:
            for key in portable(shortcut.keys()):
                keys[key].append(shortcut.objectName())
    return keys


def test_no_key_is_bound_twice_in_the_main_window(make_window):
    keys = window_shortcuts(make_window())
    assert {"Ctrl+Z", "Ctrl+Shift+Z", "Ctrl+Y", "Ctrl+S"} <= set(keys)
    twice = {k: v for k, v in keys.items() if len(v) > 1}
    assert twice == {}


def test_paste_in_the_kernel_grid_pastes_numbers_not_an_image(make_window, qtbot):
    """Ctrl+V is the window's 'Paste image'; in the kernel grid it must paste the numbers there."""
    window = make_window()
    window.activateWindow()
    qtbot.waitActive(window)
    window.document.select(0)
    window.layer_tabs.setCurrentWidget(window.kernel_editor)
    table = window.kernel_editor.table
    table.setFocus()
    table.setCurrentCell(0, 0)
    QGuiApplication.clipboard().setText("7 8\n9 10")
    press(qtbot, table, "Ctrl+V")
    weight = window.document.stack.layers[0].state["weight"]
    assert weight[0, 0, :2, :2].tolist() == [[7, 8], [9, 10]]
    assert not window.banner.isVisible()


# ---------------------------------------------------------------- errors in place, not in dialogs
def test_failing_background_runs_open_no_dialog_and_say_why_in_the_window(make_window, monkeypatch, qtbot):
    """A display step failing in the worker opened one modal dialog per run; a burst of edits stacked
    them. (make_window fails the test on any error dialog.)"""
    from explorer.ui import workers

    window = make_window()

    def broken(*_a, **_k):
        raise ValueError("min() arg is an empty sequence")

    working = workers.prepare_display
    monkeypatch.setattr(workers, "prepare_display", broken)
    for k in (3, 5, 7, 9, 11):                     # a burst of fast edits
        window.document.set_arg(0, "kernel_size", k)
    settle(window)
    assert window.banner.isVisible()
    assert "min() arg is an empty sequence" in window.banner.text()
    # The run itself worked: its result is what the window holds now.
    assert window.result.layers[0].output_shape == (1, 6, 246, 246)
    assert "Ran 3 layers" in window.time_status.text()
    monkeypatch.setattr(workers, "prepare_display", working)   # the next good run takes the banner away
    window.document.set_arg(0, "kernel_size", 3)
    settle(window)
    assert not window.banner.isVisible()


def test_unexpected_errors_show_one_dialog_at_a_time(make_window, monkeypatch, qtbot):
    """sys.excepthook used to open one modal dialog per error, stacked; from a worker thread its
    QTimer never fired at all."""
    import sys
    import threading

    from explorer.ui import app, dialogs

    window = make_window()
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)
    shown = []

    def show_error(parent, title, text, details=""):
        shown.append(text)
        if len(shown) == 1:              # while this one is open, three more errors arrive
            for i in range(3):
                try:
                    raise RuntimeError(f"again {i}")
                except RuntimeError:
                    sys.excepthook(*sys.exc_info())
            qtbot.wait(50)               # the modal dialog's own event loop runs them

    monkeypatch.setattr(dialogs, "show_error", show_error)
    app.install_error_hooks(lambda: window)

    def fail_in_a_thread():
        raise KeyError("from a worker")

    thread = threading.Thread(target=fail_in_a_thread)
    thread.start()
    thread.join()
    qtbot.waitUntil(lambda: len(shown) == 1, timeout=2000)
    qtbot.wait(100)
    assert len(shown) == 1 and "KeyError: 'from a worker'" in shown[0]
    assert window.banner.isVisible() and window.banner.text().startswith("3 more unexpected errors")


def test_a_layer_row_and_the_shapes_table_give_the_same_reason(make_window):
    """The row said 'ran out of memory' (an older run) while the Shapes tab said 'needs an
    image-shaped input' (the stack as it is now)."""
    import dataclasses

    from explorer.core.engine import run_stack
    from explorer.ui.shapes_view import COL_OUTPUT
    from explorer.ui.workers import RunReply

    window = make_window()
    # A run that found pool1 out of memory, as the worker reports it.
    result = run_stack(window.document.stack, window.batch.tensor, "cpu")
    result.layers[2] = dataclasses.replace(result.layers[2], error="MaxPool2d 'pool1' ran out of memory.",
                                           output=None)
    request = _last_request(window)
    window._run_finished(RunReply(request.generation, request, window.batch, result=result))
    shapes = window.shapes_view.model
    assert window.layer_panel.model.error(2) == "MaxPool2d 'pool1' ran out of memory."
    assert shapes.data(shapes.index(2, COL_OUTPUT)) == "MaxPool2d 'pool1' ran out of memory."
    # A Flatten before pool1: now it cannot run for another reason, and both say that one.
    window.document.add_layer("Flatten", position=1)
    reason = window.layer_panel.model.error(3)
    assert reason and "out of memory" not in reason
    assert shapes.data(shapes.index(3, COL_OUTPUT)) == reason
    assert window.layer_panel.problems() == {i: shapes.data(shapes.index(i, COL_OUTPUT))
                                            for i in range(shapes.rowCount())
                                            if shapes.data(shapes.index(i, 0), Qt.ItemDataRole.UserRole) == "error"}


def _last_request(window):
    from explorer.ui.workers import RunRequest
    return RunRequest(window.runner.latest_generation, window.document.stack.copy(), window.source,
                      window.document.stack.input, "cpu")


# ---------------------------------------------------------------- numbers refused at the field
def type_into(qtbot, spin, text: str) -> None:
    spin.setFocus()
    spin.selectAll()
    qtbot.keyClicks(spin.lineEdit(), text)
    qtbot.keyClick(spin.lineEdit(), Qt.Key.Key_Return)


def test_resize_refuses_99999_instead_of_taking_999(make_window, qtbot):
    window = make_window()
    panel = window.input_panel
    panel.resize_check.setChecked(True)
    settle(window)
    assert window.document.stack.input.size == (32, 32)
    type_into(qtbot, panel.resize_h, "99999")
    settle(window)
    assert window.document.stack.input.size == (32, 32)
    assert panel.resize_h.value() == 32
    assert panel.error_label.isVisibleTo(panel)
    assert panel.error_label.text() == "Resize height can be at most 8,192, not 99999; it stays 32."
    type_into(qtbot, panel.resize_h, "0")
    assert panel.error_label.text() == "Resize height must be at least 1, not 0; it stays 32."
    type_into(qtbot, panel.resize_h, "64")
    settle(window)
    assert window.document.stack.input.size == (64, 32)
    assert not panel.error_label.isVisibleTo(panel)


def test_index_fields_refuse_a_number_past_the_end_with_a_sentence_at_the_field(make_window, qtbot):
    """The kernel editor's filter, the feature view's channel, the probe's channel: typing 99 with 6
    channels showed 9 (the second 9 was dropped) and went there."""
    window = make_window()
    window.document.select(0)
    window.layer_tabs.setCurrentWidget(window.kernel_editor)
    for spin, name in ((window.kernel_editor.out_spin, "Filter"), (window.feature_view.channel_spin, "Channel")):
        assert spin.maximum() == 5
        before = spin.value()
        with qtbot.waitSignal(spin.refused, timeout=1000) as blocker:
            type_into(qtbot, spin, "99")
        assert blocker.args[0] == f"{name} can be at most 5, not 99; it stays {before}."
        assert spin.value() == before and spin.problem == blocker.args[0]
        assert blocker.args[0] in spin.toolTip()
        type_into(qtbot, spin, "4")
        assert spin.value() == 4 and spin.problem == "" and "99" not in spin.toolTip()
    assert window.feature_view.selected_channel == 4


# ---------------------------------------------------------------- a bad input at start
def test_an_unreadable_image_at_start_is_named_in_the_feature_view(make_window, tmp_path):
    from explorer.core.input_source import InputSource

    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    window = make_window(source=InputSource.image(broken))
    settle(window)
    assert window.document.selected == 0 and window.result is None
    message = window.feature_view.message
    assert message.startswith("There is no input to run the stack on.") and "broken.png" in message
    assert "Select a layer" not in message
    window.document.select(2)                      # another layer: still the same reason
    assert window.feature_view.message == message
    window.set_source(InputSource.sample("astronaut"))
    settle(window)
    assert window.result.ok and window.feature_view.message is None


# ---------------------------------------------------------------- a small screen
def _no_overlap(widgets) -> bool:
    """No two of the widgets (visible ones) cover the same window pixels."""
    from PySide6.QtCore import QRect
    rects = [QRect(w.mapTo(w.window(), w.rect().topLeft()), w.size()) for w in widgets if w.isVisible()]
    return all(not a.intersects(b) for i, a in enumerate(rects) for b in rects[i + 1:])


def test_the_window_fits_a_1024x600_screen_and_shrinks_more_without_docks(make_window, qtbot, tmp_path):
    window = make_window()
    window.resize(1024, 600)
    qtbot.waitUntil(lambda: (window.width(), window.height()) == (1024, 600), timeout=2000)
    fv = window.feature_view
    for widget, least in ((fv.grid, (120, 100)), (fv.channel_view, (140, 100)), (window.layer_panel.list, (200, 60)),
                          (window.layer_form, (200, 100)), (window.input_panel.view, (100, 100)),
                          (window.shapes_view.table, (300, 40))):
        assert widget.isVisible() and widget.width() >= least[0] and widget.height() >= least[1], \
            (widget.objectName(), widget.size())
    # Texts under the maps are laid out beside them, never drawn over them. The toolbar's extra rows
    # at this width raise the view's minimum height in a second layout pass (FlowLayout.setGeometry):
    # wait for it rather than catch the window between the two.
    maps = [fv.grid, fv.hover_label, fv.grid_title, fv.channel_view.graphics, fv.channel_view.readout, fv.stats_view]
    qtbot.waitUntil(lambda: _no_overlap(maps), timeout=3000)
    # The statistics' names and numbers are whole (they were cut to "channels:" and "1,560,60");
    # only the title may end in '…'.
    stats = fv.stats_view
    labels = list(stats.value_labels.values()) + list(stats._name_labels.values())
    assert all(label.width() >= label.sizeHint().width() for label in labels if label.isVisible()), \
        [(label.text(), label.width(), label.sizeHint().width()) for label in labels]
    assert window.grab().save(str(tmp_path / "window_1024x600.png"))
    for dock in (window.layers_dock, window.input_dock, window.probe_dock, window.bottom_dock):
        dock.hide()
    window.layout().activate()             # what the next event loop turn does before the user drags
    window.resize(640, 480)
    qtbot.waitUntil(lambda: (window.width(), window.height()) == (640, 480), timeout=2000)
    assert fv.grid.height() >= 100 and _no_overlap([fv.grid, fv.hover_label, fv.stats_view])
    assert window.minimumSizeHint().width() <= 400


def test_numbers_use_the_system_fixed_font_not_a_family_called_monospace(make_window):
    """'monospace' is a fontconfig alias that resolved to a proportional font on a machine with more
    fonts installed; Qt's system fixed font is what the shapes table uses, and so does every readout."""
    from PySide6.QtGui import QFontDatabase
    from PySide6.QtWidgets import QLabel

    window = make_window()
    fixed = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont).family()
    fv = window.feature_view
    for widget in (fv.channel_view.readout, fv.vector_view.readout, fv.stats_view.findChild(QLabel, "statMin")):
        assert widget.font().family() == fixed, widget.objectName()


def test_a_kernel_cell_refuses_a_number_float32_cannot_hold(make_window):
    """1e39 was taken and became inf in the float32 weights (every map then NaN)."""
    from PySide6.QtWidgets import QLabel
    import torch

    window = make_window()
    window.document.select(0)
    editor = window.kernel_editor
    window.layer_tabs.setCurrentWidget(editor)
    before = editor.current_kernel().clone()
    editor.table.item(0, 0).setText("1e39")                   # what finishing a cell edit does
    assert editor.findChild(QLabel, "kernelError").text() == \
        "1e39 is too large for a weight (float32 holds at most ±3.4e38)."
    state = window.document.stack.layers[0].state
    assert state is None or torch.isfinite(state["weight"]).all()
    assert torch.equal(editor.current_kernel(), before)
    editor.table.item(0, 0).setText("3e38")                   # large, but a float32
    assert float(window.document.stack.layers[0].state["weight"][0, 0, 0, 0]) == pytest.approx(3e38, rel=1e-6)

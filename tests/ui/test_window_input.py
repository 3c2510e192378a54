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

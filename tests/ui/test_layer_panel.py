"""The layer list: rows, shapes, errors, the add menu and the buttons, driven like a person would."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtWidgets import QMenu, QSplitter, QStyle, QStyleOptionViewItem, QToolButton

from explorer.core.layers import CATEGORIES, LAYER_TYPES, LayerSpec
from explorer.core.shapes import infer_shapes
from explorer.core.stack import Stack
from explorer.ui.document import StackDocument
from explorer.ui.layer_form import LayerForm
from explorer.ui.layer_panel import ERROR_COLOR, MIME_TYPE, ErrorRole, LayerPanel, StatusRole


def texts(panel) -> list[str]:
    return [panel.model.index(i).data() for i in range(panel.model.rowCount())]


def status(panel, row: int) -> str:
    return panel.model.index(row).data(StatusRole)


def click(qtbot, panel, name: str) -> None:
    button = panel.findChild(QToolButton, name)
    assert button is not None, name
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def click_row(qtbot, panel, row: int) -> None:
    rect = panel.list.visualRect(panel.model.index(row))
    qtbot.mouseClick(panel.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def click_check_box(qtbot, panel, row: int) -> None:
    view = panel.list
    opt = QStyleOptionViewItem()
    opt.initFrom(view)
    opt.rect = view.visualRect(panel.model.index(row))
    view.itemDelegate().initStyleOption(opt, panel.model.index(row))
    check = view.style().subElementRect(QStyle.SubElement.SE_ItemViewItemCheckIndicator, opt, view)
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=check.center())


# ---------------------------------------------------------------- rows
def test_rows_show_description_and_output_shape(panel):
    assert texts(panel) == [
        "Conv2d 3→6 k3 s1 · [1, 6, 30, 30]",
        "ReLU · [1, 6, 30, 30]",
        "MaxPool2d k2 s2 · [1, 6, 15, 15]",
    ]
    assert panel.list.objectName() == "layerList"
    assert [panel.model.index(i).data(Qt.ItemDataRole.CheckStateRole) for i in range(3)] == [Qt.CheckState.Checked] * 3
    assert "conv1" in panel.model.index(0).data(Qt.ItemDataRole.ToolTipRole)


def test_selection_follows_both_ways(qtbot, panel, doc):
    assert panel.list.currentIndex().row() == 0
    click_row(qtbot, panel, 2)
    assert doc.selected == 2
    doc.select(1)
    assert panel.list.currentIndex().row() == 1
    assert panel.list.selectionModel().isSelected(panel.model.index(1))


def test_add_menu_has_every_type_grouped_with_summaries(panel):
    menu = panel.add_menu
    assert isinstance(menu, QMenu)
    submenus = [a.menu() for a in menu.actions() if a.menu() is not None]
    assert [m.title() for m in submenus] == list(CATEGORIES)
    listed = [a.text() for m in submenus for a in m.actions()]
    assert sorted(listed) == sorted(LAYER_TYPES)
    actions = panel.add_actions()
    assert set(actions) == set(LAYER_TYPES)
    for name, action in actions.items():
        assert action.toolTip() == LAYER_TYPES[name].summary
    assert panel.findChild(QToolButton, "addButton").menu() is menu


ADD_ORDER = ["Conv2d", "BatchNorm2d", "ReLU", "LeakyReLU", "PReLU", "RReLU", "ELU", "GELU", "Sigmoid", "Tanh",
             "Dropout", "MaxPool2d", "MaxUnpool2d", "AvgPool2d", "Upsample", "ConvTranspose2d", "Softmax",
             "Flatten", "Linear"]


def test_add_every_layer_type_after_the_selection(panel, doc):
    assert sorted(ADD_ORDER) == sorted(LAYER_TYPES)
    doc.select(2)
    actions = panel.add_actions()
    for type_name in ADD_ORDER:
        before = doc.selected
        actions[type_name].trigger()
        assert doc.selected == before + 1, type_name
        assert doc.stack.layers[before + 1].type == type_name
        assert panel.list.currentIndex().row() == before + 1
        assert texts(panel)[before + 1].startswith(type_name), texts(panel)[before + 1]
    assert len(texts(panel)) == 3 + len(ADD_ORDER)
    rows = infer_shapes(doc.stack, doc.input_shape)
    assert [r.error for r in rows if r.error] == []
    assert all(status(panel, i) == "ok" for i in range(len(doc.stack.layers)))
    unpool = doc.stack.layers[3 + ADD_ORDER.index("MaxUnpool2d")]
    assert unpool.indices_from == "pool2"


def test_new_conv_after_a_six_channel_layer_takes_six_input_channels(panel, doc):
    doc.select(1)
    panel.add_actions()["Conv2d"].trigger()
    assert doc.selected == 2
    assert doc.stack.layers[2].value("in_channels") == 6
    assert texts(panel)[2] == "Conv2d 6→8 k3 s1 · [1, 8, 28, 28]"
    assert texts(panel)[3] == "MaxPool2d k2 s2 · [1, 8, 14, 14]"


def test_linear_after_flatten_takes_the_flattened_size(panel, doc):
    doc.select(2)
    panel.add_actions()["Flatten"].trigger()
    panel.add_actions()["Linear"].trigger()
    fc = doc.stack.layers[4]
    assert fc.type == "Linear" and fc.value("in_features") == 6 * 15 * 15
    assert texts(panel)[3] == "Flatten 1..-1 · [1, 1350]"
    assert texts(panel)[4] == "Linear 1350→10 · [1, 10]"
    assert not any(r.error for r in infer_shapes(doc.stack, doc.input_shape))


def test_unpool_without_pool_is_refused_with_a_message(qtbot, doc):
    doc = StackDocument(Stack([LayerSpec("ReLU", "relu1")]))
    panel = LayerPanel(doc)
    qtbot.addWidget(panel)
    with qtbot.waitSignal(panel.message, timeout=1000) as blocker:
        panel.add_actions()["MaxUnpool2d"].trigger()
    assert "MaxPool2d" in blocker.args[0]
    assert len(doc.stack.layers) == 1


# ---------------------------------------------------------------- buttons and keys
def test_remove_button(qtbot, panel, doc):
    click_row(qtbot, panel, 1)
    click(qtbot, panel, "removeButton")
    assert doc.stack.names() == ["conv1", "pool1"]
    assert texts(panel) == ["Conv2d 3→6 k3 s1 · [1, 6, 30, 30]", "MaxPool2d k2 s2 · [1, 6, 15, 15]"]
    assert doc.selected == 1 and panel.list.currentIndex().row() == 1
    doc.undo_stack.undo()
    assert doc.stack.names() == ["conv1", "relu1", "pool1"]
    assert texts(panel)[1] == "ReLU · [1, 6, 30, 30]"


def test_duplicate_button(qtbot, panel, doc):
    click_row(qtbot, panel, 0)
    click(qtbot, panel, "duplicateButton")
    assert doc.stack.names() == ["conv1", "conv2", "relu1", "pool1"]
    assert doc.selected == 1
    # The copy takes 6 channels where the original took 3: the panel marks it.
    assert status(panel, 1) == "error"
    assert "expects 3 input channels but its input has 6" in panel.model.index(1).data(ErrorRole)


def test_move_up_and_down_buttons(qtbot, panel, doc):
    click_row(qtbot, panel, 1)
    click(qtbot, panel, "upButton")
    assert doc.stack.names() == ["relu1", "conv1", "pool1"]
    assert doc.selected == 0 and panel.list.currentIndex().row() == 0
    assert not panel.findChild(QToolButton, "upButton").isEnabled()
    click(qtbot, panel, "downButton")
    click(qtbot, panel, "downButton")
    assert doc.stack.names() == ["conv1", "pool1", "relu1"]
    assert doc.selected == 2
    assert not panel.findChild(QToolButton, "downButton").isEnabled()
    assert texts(panel)[1] == "MaxPool2d k2 s2 · [1, 6, 15, 15]"


def test_delete_key_removes_the_selected_layer(qtbot, panel, doc):
    click_row(qtbot, panel, 2)
    qtbot.keyClick(panel.list, Qt.Key.Key_Delete)
    assert doc.stack.names() == ["conv1", "relu1"]
    assert doc.selected == 1


def test_buttons_disabled_without_selection(qtbot):
    doc = StackDocument(Stack([]))
    panel = LayerPanel(doc)
    qtbot.addWidget(panel)
    for name in ("removeButton", "duplicateButton", "upButton", "downButton"):
        assert not panel.findChild(QToolButton, name).isEnabled(), name
    assert panel.findChild(QToolButton, "addButton").isEnabled()
    panel.add_actions()["ReLU"].trigger()
    assert doc.stack.names() == ["relu1"]
    assert panel.findChild(QToolButton, "removeButton").isEnabled()


def test_refused_remove_and_move_become_messages(qtbot, panel, doc):
    doc.select(2)
    panel.add_actions()["MaxUnpool2d"].trigger()
    assert doc.stack.layers[3].indices_from == "pool1"
    click_row(qtbot, panel, 2)
    with qtbot.waitSignal(panel.message, timeout=1000) as blocker:
        click(qtbot, panel, "removeButton")
    assert "gives its indices to unpool1" in blocker.args[0]
    assert len(doc.stack.layers) == 4
    with qtbot.waitSignal(panel.message, timeout=1000) as blocker:
        click(qtbot, panel, "downButton")
    assert "would come before 'pool1'" in blocker.args[0]
    assert doc.stack.names() == ["conv1", "relu1", "pool1", "unpool1"]


# ---------------------------------------------------------------- enabled, errors, undo
def test_check_box_disables_the_layer_and_greys_the_row(qtbot, panel, doc):
    click_check_box(qtbot, panel, 1)
    assert doc.stack.layers[1].enabled is False
    index = panel.model.index(1)
    assert index.data(Qt.ItemDataRole.CheckStateRole) == Qt.CheckState.Unchecked
    assert status(panel, 1) == "disabled"
    assert index.data(Qt.ItemDataRole.FontRole).strikeOut()
    assert index.data(Qt.ItemDataRole.ForegroundRole) is not None
    assert index.data() == "ReLU · off"
    doc.undo_stack.undo()
    assert doc.stack.layers[1].enabled is True
    assert panel.model.index(1).data(Qt.ItemDataRole.CheckStateRole) == Qt.CheckState.Checked
    assert status(panel, 1) == "ok"


def test_a_layer_that_cannot_run_is_red_with_its_reason_and_later_rows_grey(panel, doc):
    doc.select(1)
    panel.add_actions()["Conv2d"].trigger()          # conv2: 6 → 8 after relu1
    doc.set_arg(0, "out_channels", 5)
    assert texts(panel)[0] == "Conv2d 3→5 k3 s1 · [1, 5, 30, 30]"
    assert status(panel, 2) == "error"
    row = panel.model.index(2)
    assert row.data().startswith("⚠")
    assert row.data(Qt.ItemDataRole.ForegroundRole) == ERROR_COLOR
    assert "expects 6 input channels but its input has 5" in row.data(Qt.ItemDataRole.ToolTipRole)
    assert status(panel, 3) == "after_error"
    assert "conv2" in panel.model.index(3).data(Qt.ItemDataRole.ToolTipRole)
    doc.undo_stack.undo()
    assert all(status(panel, i) == "ok" for i in range(4))


def test_run_errors_are_shown_like_shape_errors(panel, doc):
    panel.set_run_errors({1: "The GPU ran out of memory in relu1."})
    assert status(panel, 0) == "ok"
    assert status(panel, 1) == "error"
    assert "ran out of memory" in panel.model.index(1).data(Qt.ItemDataRole.ToolTipRole)
    assert status(panel, 2) == "after_error"
    # An edit at or before relu1 makes that run's verdict stale: gone until the next run says again.
    doc.select(0)
    panel.add_actions()["ReLU"].trigger()
    assert all(status(panel, i) == "ok" for i in range(4))
    # The error belongs to relu1 (now at 2), and an edit after it leaves it standing.
    panel.set_run_errors({2: "The GPU ran out of memory in relu1."})
    doc.set_arg(3, "kernel_size", 3)
    assert status(panel, 1) == "ok" and status(panel, 2) == "error" and status(panel, 3) == "after_error"
    panel.set_run_errors({})
    assert all(status(panel, i) == "ok" for i in range(4))


def test_the_shape_error_of_the_stack_as_it_is_wins_over_an_older_run_error(panel, doc):
    panel.set_run_errors({2: "The GPU ran out of memory in pool1."})
    doc.add_layer("Flatten", 1)          # now pool1 gets a flat input
    reason = panel.model.error(3)
    assert "out of memory" not in reason and "pool1" in reason
    assert panel.problems() == {3: reason}


def test_stale_shapes_are_ignored(qtbot, doc):
    panel = LayerPanel(doc)                        # no state: shapes are never sent after edits
    qtbot.addWidget(panel)
    panel.set_shapes(infer_shapes(doc.stack, doc.input_shape))
    doc.select(-1)
    doc.add_layer("ReLU", 0)
    assert panel.model.index(0).data() == "ReLU"      # no shape rather than conv1's
    assert panel.model.index(1).data() == "Conv2d 3→6 k3 s1"


# ---------------------------------------------------------------- drag and drop
def test_drop_reorders_through_the_document(panel, doc):
    model = panel.model
    # What QListView does on an internal move: moveRow into the gap before row 3 (the end).
    assert model.moveRow(QModelIndex(), 0, QModelIndex(), 3)
    assert doc.stack.names() == ["relu1", "pool1", "conv1"]
    assert doc.selected == 2
    # The fallback path through mime data.
    data = model.mimeData([model.index(2)])
    assert data.hasFormat(MIME_TYPE)
    model.dropMimeData(data, Qt.DropAction.MoveAction, 0, 0, QModelIndex())
    assert doc.stack.names() == ["conv1", "relu1", "pool1"]
    assert model.rowCount() == 3
    assert panel.list.dragDropMode() == panel.list.DragDropMode.InternalMove


def test_refused_drop_is_a_message(qtbot, panel, doc):
    doc.select(2)
    panel.add_actions()["MaxUnpool2d"].trigger()
    with qtbot.waitSignal(panel.message, timeout=1000):
        panel.model.moveRow(QModelIndex(), 3, QModelIndex(), 0)
    assert doc.stack.names() == ["conv1", "relu1", "pool1", "unpool1"]


# ---------------------------------------------------------------- how it looks
def _side_by_side(qtbot, doc, state):
    panel = LayerPanel(doc, state)
    form = LayerForm(doc)
    split = QSplitter()
    split.addWidget(panel)
    split.addWidget(form)
    split.resize(700, 600)
    qtbot.addWidget(split)
    split.show()
    qtbot.waitExposed(split)
    return split, panel, form


def test_screenshots_conv_and_upsample(qtbot, doc, state, tmp_path):
    split, panel, form = _side_by_side(qtbot, doc, state)
    doc.select(2)
    panel.add_actions()["Upsample"].trigger()
    panel.add_actions()["Conv2d"].trigger()
    doc.set_arg(0, "out_channels", 5)
    doc.set_enabled(1, False)
    doc.select(0)
    image = split.grab()
    assert not image.isNull() and image.width() >= 700
    image.save(str(tmp_path / "panel_conv.png"))
    doc.select(3)
    assert form.title.text() == "Upsample"
    split.grab().save(str(tmp_path / "panel_upsample.png"))
    # Rows are two lines tall: description and shape, then the name.
    fm = panel.list.fontMetrics()
    assert panel.list.visualRect(panel.model.index(0)).height() >= 2 * fm.height()

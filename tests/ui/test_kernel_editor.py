"""The kernel editor and the pixel probe, driven as a learner would: type into cells, roll the wheel,
paste text, apply presets and initialisers, resize a kernel, undo, save and reopen; hover output
pixels and check the explanation against torch."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QGuiApplication, QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QLineEdit, QTableWidgetSelectionRange

from explorer.core.examples import load_example
from explorer.core.input_source import InputSource
from explorer.core.kernels import PRESETS, SCOPES, layer_parameters, preset_kernel
from explorer.core.layers import LayerSpec, build_module
from explorer.core.stack import Stack, load_stack
from explorer.ui.document import StackDocument
from explorer.ui.kernel_editor import KernelEditor

SOBEL_X = [[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]


# ---------------------------------------------------------------- helpers
def settle(window):
    """The run, then what the window prepares from it in the background (maps, weights)."""
    assert window.runner.wait_until_idle(20_000)
    assert window.feature_view.wait_until_ready(20_000) and window.kernel_editor.wait_until_ready(20_000)


def type_into(qtbot, grid, row: int, col: int, text: str) -> None:
    """Open the cell's editor and type like a person, key by key, then Return."""
    grid.setCurrentCell(row, col)
    grid.editItem(grid.item(row, col))
    line = next(e for e in grid.findChildren(QLineEdit, "kernelCellEditor") if e.isVisible())
    line.selectAll()
    QTest.keyClicks(line, text)
    QTest.keyClick(line, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: grid.state() != grid.State.EditingState, timeout=2000)


def wheel(grid, row: int, col: int, notches: int, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    pos = QPointF(grid.visualRect(grid.model().index(row, col)).center())
    event = QWheelEvent(pos, QPointF(grid.viewport().mapToGlobal(pos.toPoint())), QPoint(0, 0),
                        QPoint(0, 120 * notches), Qt.MouseButton.NoButton, modifiers, Qt.ScrollPhase.NoScrollPhase,
                        False)
    grid.wheelEvent(event)


def hover(window, x: int, y: int) -> None:
    view = window.feature_view.channel_view
    view.plot.autoRange(padding=0.02)          # the whole channel in view, as after a double-click
    point = view.scene_point_of_pixel(x, y)
    assert view.plot.vb.sceneBoundingRect().contains(point), "the pixel is not on screen"
    view.graphics.scene().sigMouseMoved.emit(point)


def conv_doc(**args) -> StackDocument:
    a = {"in_channels": 3, "out_channels": 4, "kernel_size": 3, **args}
    return StackDocument(Stack([LayerSpec("Conv2d", "conv1", a), LayerSpec("ReLU", "relu1")]))


@pytest.fixture
def editor(qtbot):
    doc = conv_doc()
    ed = KernelEditor(doc)
    assert ed.wait_until_ready()          # the seed's weights are built in the background
    qtbot.addWidget(ed)
    ed.resize(420, 800)
    ed.show()
    return ed


def weight_of(doc, index=0):
    return layer_parameters(doc.stack.layers[index], doc.stack.seed)["weight"]


# ---------------------------------------------------------------- typing into the live window
def test_typing_a_sobel_by_hand_drives_the_maps_as_you_type(make_window, qtbot):
    window = make_window()                         # the photo sample and Conv2d(3, 6, 3) -> ReLU -> MaxPool2d
    window.document.select(0)
    window.layer_tabs.setCurrentWidget(window.kernel_editor)
    editor = window.kernel_editor
    editor.all_inputs.setChecked(True)
    editor.apply_preset("Zeros")
    settle(window)
    grid = editor.table
    seen_while_typing = []
    for r, row in enumerate(SOBEL_X):
        for c, value in enumerate(row):
            if value:
                type_into(qtbot, grid, r, c, f"{value:g}")
                settle(window)
                seen_while_typing.append(window.result.layers[0].output[0, 0].abs().sum().item())
    weight = window.document.stack.layers[0].state["weight"]
    assert torch.equal(weight[0], torch.tensor(SOBEL_X).expand(3, 3, 3))
    assert [grid.item(r, c).text() for r in range(3) for c in range(3)] == ["-1", "0", "1", "-2", "0", "2", "-1", "0", "1"]
    assert len(set(seen_while_typing)) == len(seen_while_typing)      # every cell changed what is on screen
    spec = window.document.stack.layers[0]
    expected = F.conv2d(window.batch.tensor, weight, build_module(spec, window.document.stack.seed).bias).detach()
    assert torch.allclose(window.result.layers[0].output, expected, atol=1e-5)
    # The large channel view shows filter 0's new map, value for value.
    window.feature_view.set_selected_channel(0)
    shown = window.feature_view.channel_view.values
    assert np.allclose(shown, expected[0, 0].numpy(), atol=1e-5)
    # Only conv1 and what follows ran again after the last keystroke; typing wrote one undo step per cell.
    assert window.result.computed == [0, 1, 2]
    texts = [window.document.undo_stack.text(i) for i in range(window.document.undo_stack.count())]
    assert sum("cell" in t for t in texts) == 6


def test_keystrokes_into_one_cell_are_one_undo_step_and_undo_walks_back(editor, qtbot):
    doc = editor.document
    before = weight_of(doc).clone()
    type_into(qtbot, editor.table, 0, 0, "-1.25")      # five keystrokes, live, one step
    type_into(qtbot, editor.table, 1, 1, "3")
    assert doc.undo_stack.count() == 2
    w = weight_of(doc)
    assert w[0, 0, 0, 0] == -1.25 and w[0, 0, 1, 1] == 3
    doc.undo_stack.undo()
    assert weight_of(doc)[0, 0, 1, 1] == before[0, 0, 1, 1] and weight_of(doc)[0, 0, 0, 0] == -1.25
    assert editor.table.item(1, 1).text() == f"{before[0, 0, 1, 1].item():.4g}"
    doc.undo_stack.undo()
    assert torch.equal(weight_of(doc), before)
    doc.undo_stack.redo()
    assert editor.table.item(0, 0).text() == "-1.25"


def test_wheel_and_arrow_keys(editor, qtbot):
    doc = editor.document
    editor.apply_preset("Zeros")
    wheel(editor.table, 1, 2, 3)
    assert weight_of(doc)[0, 0, 1, 2].item() == pytest.approx(0.3)
    wheel(editor.table, 1, 2, -1, Qt.KeyboardModifier.ShiftModifier)      # Shift: steps of 1
    assert weight_of(doc)[0, 0, 1, 2].item() == pytest.approx(-0.7)
    assert editor.table.item(1, 2).text() == "-0.7"
    editor.table.setFocus()
    editor.table.setCurrentCell(0, 0)
    QTest.keyClick(editor.table, Qt.Key.Key_Right)
    QTest.keyClick(editor.table, Qt.Key.Key_Down)
    assert (editor.table.currentRow(), editor.table.currentColumn()) == (1, 1)
    # While typing, Down finishes the cell and moves on, like a spreadsheet.
    editor.table.editItem(editor.table.item(1, 1))
    line = next(e for e in editor.table.findChildren(QLineEdit, "kernelCellEditor") if e.isVisible())
    line.selectAll()
    QTest.keyClicks(line, "7")
    QTest.keyClick(line, Qt.Key.Key_Down)
    qtbot.waitUntil(lambda: editor.table.state() != editor.table.State.EditingState, timeout=2000)
    assert (editor.table.currentRow(), editor.table.currentColumn()) == (2, 1)
    assert weight_of(doc)[0, 0, 1, 1] == 7 and editor.table.item(1, 1).text() == "7"
    # Delete zeroes the selection in one undo step.
    steps = doc.undo_stack.count()
    editor.table.setRangeSelected(QTableWidgetSelectionRange(0, 1, 2, 2), True)
    QTest.keyClick(editor.table, Qt.Key.Key_Delete)
    assert weight_of(doc)[0, 0, :, 1:].abs().sum() == 0 and doc.undo_stack.count() == steps + 1


def test_bad_typing_is_one_sentence_and_changes_nothing(editor, qtbot):
    doc = editor.document
    before = weight_of(doc).clone()
    type_into(qtbot, editor.table, 2, 2, "abc")
    assert editor.error.text() == "'abc' is not a number."
    assert editor.error.isVisible()
    assert torch.equal(weight_of(doc), before)
    assert editor.table.item(2, 2).text() == f"{before[0, 0, 2, 2].item():.4g}"
    type_into(qtbot, editor.table, 2, 2, "0.5")
    assert not editor.error.isVisible()


def test_bias_is_editable_beside_the_kernel(editor, qtbot):
    doc = editor.document
    editor.out_spin.setValue(2)
    type_into(qtbot, editor.bias_grid, 0, 0, "0.75")
    bias = layer_parameters(doc.stack.layers[0], doc.stack.seed)["bias"]
    assert bias[2] == 0.75
    assert editor.bias_grid.horizontalHeaderItem(0).text() == "bias[2]"


# ---------------------------------------------------------------- paste and copy
def test_paste_text_as_a_whole_kernel_a_block_and_garbage(editor):
    doc = editor.document
    editor.out_spin.setValue(1)
    editor.in_spin.setValue(2)
    QGuiApplication.clipboard().setText("torch.tensor([[-1., 0., 1.],\n        [-2., 0., 2.],\n        [-1., 0., 1.]])")
    editor.table.setFocus()
    QTest.keyClick(editor.table, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    assert torch.equal(weight_of(doc)[1, 2], torch.tensor(SOBEL_X))
    editor.table.setCurrentCell(1, 1)
    editor.paste_kernel("9\t8\n7\t6")                       # a spreadsheet block at the selected cell
    assert weight_of(doc)[1, 2, 1:, 1:].tolist() == [[9, 8], [7, 6]]
    assert weight_of(doc)[1, 2, 0].tolist() == [-1, 0, 1]
    before = weight_of(doc).clone()
    editor.paste_kernel("[[1, 2, 3], [4, 5]]")
    assert editor.error.text() == "The rows have different lengths; every row of a kernel needs the same number of values."
    editor.table.setCurrentCell(2, 2)
    editor.paste_kernel("[[1, 2], [3, 4]]")
    assert "only 1×1 cells remain" in editor.error.text()
    assert torch.equal(weight_of(doc), before)
    editor.copy_kernel()
    assert json.loads(QGuiApplication.clipboard().text()) == weight_of(doc)[1, 2].tolist()


# ---------------------------------------------------------------- presets, tools, initialisers
@pytest.mark.parametrize("name", list(PRESETS))
def test_each_preset_in_each_scope_matches_its_definition(qtbot, name):
    doc = conv_doc(kernel_size=5)
    editor = KernelEditor(doc)
    assert editor.wait_until_ready()          # the seed's weights are built in the background
    qtbot.addWidget(editor)
    editor.out_spin.setValue(3)
    editor.in_spin.setValue(1)
    kernel = preset_kernel(name, 5, 5)
    seeded = weight_of(doc).clone()
    for scope in SCOPES:
        doc.edit_state(0, None, "back to the seed")
        assert editor.apply_preset(name, scope)
        w = weight_of(doc)
        if scope == "kernel":
            expected = seeded.clone()
            expected[3, 1] = kernel
        elif scope == "filter":
            expected = seeded.clone()
            expected[3] = kernel / 3
        else:
            expected = (kernel / 3).expand(4, 3, 5, 5)
        assert torch.allclose(w, expected), scope
    # the combo, as a person uses it
    editor.scope.setCurrentIndex(editor.scope.findData("kernel"))
    editor.preset.activated.emit(editor.preset.findText(name))
    assert torch.equal(weight_of(doc)[3, 1], kernel)
    assert editor.preset_help.text() == f"{name}: {PRESETS[name].explanation}"


def test_presets_that_do_not_fit_say_why(qtbot):
    doc = conv_doc(kernel_size=[4, 4])
    editor = KernelEditor(doc)
    assert editor.wait_until_ready()          # the seed's weights are built in the background
    qtbot.addWidget(editor)
    before = weight_of(doc).clone()
    assert not editor.apply_preset("Sobel x (vertical edges)")
    assert editor.error.text() == "Sobel x (vertical edges) needs a centre pixel, so an odd kernel size; this kernel is 4×4."
    assert torch.equal(weight_of(doc), before)
    row = editor.preset.findText("Sobel x (vertical edges)")
    assert not editor.preset.model().item(row).isEnabled()
    assert editor.preset.model().item(editor.preset.findText("Blur (box average)")).isEnabled()


def test_normalise_zero_mean_and_initialisers(editor):
    doc = editor.document
    editor.paste_kernel("[[1, 2, 1], [2, 4, 2], [1, 2, 1]]")
    editor.normalize_button.click()
    assert torch.allclose(weight_of(doc)[0, 0], preset_kernel("Gaussian blur", 3, 3))
    editor.zero_mean_button.click()
    assert weight_of(doc)[0, 0].mean().item() == pytest.approx(0, abs=1e-7)
    editor.normalize_button.click()
    assert editor.error.text().startswith("This kernel sums to 0")
    editor.init_combo.setCurrentIndex(editor.init_combo.findData("zeros"))
    editor.init_button.click()
    params = layer_parameters(doc.stack.layers[0], doc.stack.seed)
    assert params["weight"].abs().sum() == 0 and params["bias"].abs().sum() == 0
    assert editor.table.item(1, 1).text() == "0"
    editor.init_combo.setCurrentIndex(editor.init_combo.findData("xavier_normal"))
    editor.init_button.click()
    assert weight_of(doc).std().item() > 0.05
    editor.init_combo.setCurrentIndex(editor.init_combo.findData("default"))
    editor.init_button.click()
    assert doc.stack.layers[0].state is None                        # the seed's weights again
    assert torch.equal(weight_of(doc), build_module(doc.stack.layers[0], doc.stack.seed).weight)
    editor.init_combo.setCurrentIndex(editor.init_combo.findData("new_seed"))
    editor.init_button.click()
    assert not torch.equal(weight_of(doc), build_module(doc.stack.layers[0].copy(state=None), 0).weight)


# ---------------------------------------------------------------- shapes: resize, channels, transposed, Linear
def test_changing_kernel_size_keeps_the_kernel_centred_and_channels_keep_what_fits(editor):
    doc = editor.document
    editor.apply_preset("Sobel x (vertical edges)", "layer")
    doc.set_arg(0, "kernel_size", 5)
    w = weight_of(doc)
    assert w.shape == (4, 3, 5, 5)
    assert torch.allclose(w[:, :, 1:4, 1:4], (torch.tensor(SOBEL_X) / 3).expand(4, 3, 3, 3))
    assert w[:, :, 0].abs().sum() == 0 and w[:, :, :, 4].abs().sum() == 0
    assert (editor.table.rowCount(), editor.table.columnCount()) == (5, 5)
    assert editor.table.item(2, 4).text() == "0" and editor.table.item(2, 1).text() == "-0.6667"
    doc.set_arg(0, "out_channels", 6)
    assert weight_of(doc).shape == (6, 3, 5, 5)
    assert torch.allclose(weight_of(doc)[:4, :, 1:4, 1:4], (torch.tensor(SOBEL_X) / 3).expand(4, 3, 3, 3))
    assert editor.out_spin.maximum() == 5
    doc.set_arg(0, "kernel_size", 1)
    assert weight_of(doc)[:4, :, 0, 0].abs().sum() == 0        # the centre of Sobel x is 0
    doc.undo_stack.undo()
    doc.undo_stack.undo()
    doc.undo_stack.undo()
    assert weight_of(doc).shape == (4, 3, 3, 3)


def test_conv_transpose_kernels_are_edited_where_torch_keeps_them(make_window, qtbot, tmp_path):
    stack = Stack([LayerSpec("ConvTranspose2d", "deconv1", {"in_channels": 3, "out_channels": 2, "kernel_size": 3,
                                                           "stride": 2})])
    stack.input.size = (24, 24)
    window = make_window(stack=stack)
    window.document.select(0)
    window.layer_tabs.setCurrentWidget(window.kernel_editor)
    editor = window.kernel_editor
    editor.select_kernel(1, 2)                 # filter (output channel) 1, input channel 2
    assert editor.where.text().startswith("deconv1.weight[2, 1]")
    type_into(qtbot, editor.table, 0, 2, "4")
    settle(window)
    weight = window.document.stack.layers[0].state["weight"]
    assert weight.shape == (3, 2, 3, 3) and weight[2, 1, 0, 2] == 4
    bias = build_module(window.document.stack.layers[0], 0).bias.detach()
    expected = F.conv_transpose2d(window.batch.tensor, weight, bias, stride=2)
    assert torch.allclose(window.result.layers[0].output, expected, atol=1e-5)


def test_linear_worked_example_is_typed_in_and_checked_in_the_window(make_window, qtbot, tmp_path):
    from PIL import Image
    # A 1x3 gray picture of 85, 170, 255 is [1/3, 2/3, 1]; a 1x1 conv of weight 3 makes it [1, 2, 3].
    picture = tmp_path / "one_two_three.png"
    Image.fromarray(np.array([[85, 170, 255]], dtype=np.uint8), mode="L").save(picture)
    stack = Stack([
        LayerSpec("Conv2d", "times3", {"in_channels": 1, "out_channels": 1, "kernel_size": 1, "bias": False},
                  state={"weight": torch.full((1, 1, 1, 1), 3.0)}),
        LayerSpec("Flatten", "flatten1"),
        LayerSpec("Linear", "fc", {"in_features": 3, "out_features": 4}),
    ])
    stack.input.channels = 1
    window = make_window(stack=stack, source=InputSource.image(picture))
    window.document.select(2)
    window.layer_tabs.setCurrentWidget(window.kernel_editor)
    settle(window)                                 # fc's seeded weights are built in the background
    editor = window.kernel_editor
    assert (editor.table.rowCount(), editor.table.columnCount()) == (4, 3)
    assert editor.out_spin.isHidden() and editor.overview.isHidden()
    for r in range(4):
        for c in range(3):
            type_into(qtbot, editor.table, r, c, str(r + 1))
        type_into(qtbot, editor.bias_grid, r, 0, "0.5")
    settle(window)
    assert torch.allclose(window.result.layers[1].output, torch.tensor([[1.0, 2.0, 3.0]]), atol=1e-6)
    assert torch.allclose(window.result.layers[2].output, torch.tensor([[6.5, 12.5, 18.5, 24.5]]), atol=1e-5)
    assert np.allclose(window.feature_view.vector_view.bar_values, [6.5, 12.5, 18.5, 24.5], atol=1e-5)
    # save and reopen: the hand-typed weights come back exactly
    path = tmp_path / "worked.json"
    window._write(path)
    reopened = load_stack(path)
    assert reopened.layers[2].state["weight"].tolist() == [[1, 1, 1], [2, 2, 2], [3, 3, 3], [4, 4, 4]]
    assert reopened.layers[2].state["bias"].tolist() == [0.5] * 4


def test_layers_the_editor_cannot_show_get_a_sentence(qtbot):
    doc = StackDocument(Stack([LayerSpec("ReLU", "relu1"),
                               LayerSpec("Linear", "fc", {"in_features": 400, "out_features": 10}),
                               LayerSpec("Conv2d", "big", {"in_channels": 1, "out_channels": 1, "kernel_size": 31})]))
    editor = KernelEditor(doc)
    assert editor.wait_until_ready()          # the seed's weights are built in the background
    qtbot.addWidget(editor)
    assert "'relu1' is a ReLU" in editor.hint.text() and editor.body.isHidden()
    doc.select(1)
    assert editor.hint.text() == "The grid shows Linear layers up to 64×64; 'fc' is 10×400."
    doc.select(2)
    assert editor.hint.text() == "The kernel editor shows kernels up to 15×15; this one is 31×31."


# ---------------------------------------------------------------- the overview
def test_overview_shows_every_kernel_and_a_click_picks_one(editor):
    doc = editor.document
    editor.apply_preset("Identity", "kernel")
    overview = editor.overview
    assert overview.shape == (4, 3, 3, 3)
    image = overview.image.image
    assert image.shape == (4 * 4 - 1, 3 * 4 - 1, 3)
    assert tuple(image[1, 1]) == (255, 0, 0)          # the identity's 1 is the layer's largest weight: full red
    assert tuple(image[3, 0]) == (200, 200, 200)      # the gap between filters 0 and 1
    overview._clicked(2 * 4 + 1.5, 3 * 4 + 0.5)          # the tile of filter 3, input channel 2
    assert (editor.out_spin.value(), editor.in_spin.value()) == (3, 2)
    kernel = weight_of(doc)[3, 2]
    assert float(editor.table.item(0, 0).text()) == pytest.approx(kernel[0, 0].item(), rel=1e-3)


# ---------------------------------------------------------------- saving
def test_edits_are_saved_with_the_stack_and_reopen(make_window, qtbot, tmp_path):
    window = make_window()
    window.document.select(0)
    window.layer_tabs.setCurrentWidget(window.kernel_editor)
    editor = window.kernel_editor
    editor.select_kernel(4, 1)
    type_into(qtbot, editor.table, 1, 1, "2.5")
    type_into(qtbot, editor.bias_grid, 0, 0, "-0.25")
    window.document.set_arg(0, "kernel_size", 5)
    settle(window)
    path = tmp_path / "edited.json"
    window._write(path)
    window.open_stack(path)
    settle(window)
    spec = window.document.stack.layers[0]
    assert spec.state["weight"][4, 1, 2, 2] == 2.5 and spec.state["bias"][4] == -0.25
    window.document.select(0)
    window.kernel_editor.select_kernel(4, 1)
    assert window.kernel_editor.table.item(2, 2).text() == "2.5"


# ---------------------------------------------------------------- the pixel probe
def test_hover_explains_a_strided_padded_dilated_conv_pixel(make_window):
    stack = Stack([
        LayerSpec("Conv2d", "conv1", {"in_channels": 3, "out_channels": 4, "kernel_size": 3, "stride": 2,
                                      "padding": 2, "dilation": 2}),
        LayerSpec("ReLU", "relu1"),
        LayerSpec("Conv2d", "conv2", {"in_channels": 4, "out_channels": 3, "kernel_size": [3, 5], "stride": [1, 2],
                                      "padding": [1, 3], "dilation": [2, 1]}),
    ])
    window = make_window(stack=stack)
    panel = window.probe_panel
    for index in (0, 2):
        window.document.select(index)
        settle(window)
        window.feature_view.set_selected_channel(1)
        out = window.result.layers[index].output
        for y, x in [(0, 0), (5, 7), (out.shape[2] - 1, out.shape[3] - 1)]:
            hover(window, x, y)
            p = panel.current
            assert (p.y, p.x, p.channel) == (y, x, 1)
            value = float(out[0, 1, y, x])
            assert p.total == pytest.approx(value, abs=1e-4) and p.output_value == value
            assert "✓ matches" in panel.summary.text()
            assert f"= {value:.3g}" in panel.title.text()
    # Layer conv1's corner pixel reads rows -2, 0, 2: the top taps are padding and shown gray.
    window.document.select(0)
    settle(window)
    hover(window, 0, 0)
    assert panel.current.rows[:, 0].tolist() == [-2, 0, 2]
    assert "Gray cells lie in the padding." in panel.details.text()
    # The outline on the input covers exactly the taps.
    assert panel.box.rect().getRect() == (-2.0, -2.0, 5.0, 5.0)


def test_hover_on_pool_and_unpool_outputs(make_window):
    window = make_window(stack=load_example("maxpool_unpool"))
    stack = window.document.stack
    pool_index = next(i for i, l in enumerate(stack.layers) if l.type == "MaxPool2d")
    unpool_index = next(i for i, l in enumerate(stack.layers) if l.type == "MaxUnpool2d")
    panel = window.probe_panel
    window.document.select(pool_index)
    settle(window)
    hover(window, 3, 2)
    result = window.result.layers[pool_index]
    channel = window.feature_view.selected_channel
    p = panel.current
    assert p.winner_index == int(result.indices[0, channel, 2, 3])
    assert p.total == float(result.output[0, channel, 2, 3])
    assert f"index {p.winner_index}" in panel.details.text()
    window.document.select(unpool_index)
    settle(window)
    w = window.result.layers[unpool_index].output.shape[-1]
    y, x = divmod(p.winner_index, w)
    hover(window, x, y)
    q = panel.current
    assert q.source == (2, 3) and q.output_value == p.total
    assert "put back where the pool found it" in panel.summary.text()
    window.document.select(1 if stack.layers[1].type == "ReLU" else 0)
    assert panel.current is None


def test_channel_view_reports_value_coordinates_even_when_drawn_shrunk(qtbot):
    from explorer.ui.channel_view import ChannelView
    view = ChannelView()
    qtbot.addWidget(view)
    view.resize(500, 400)
    view.show()
    values = np.arange(40 * 60, dtype=np.float32).reshape(40, 60)
    shrunk = np.zeros((20, 30), np.uint8)                 # a huge layer arrives at half size
    view.set_channel(shrunk, values, 0.0, float(values.max()), "gray", reset_view=True)
    hovered = []
    view.pixel_hovered.connect(lambda x, y: hovered.append((x, y)))
    view.graphics.scene().sigMouseMoved.emit(view.scene_point_of_pixel(47, 31))
    assert hovered == [(47, 31)]
    assert view.readout.text() == f"x=47 y=31 value={31 * 60 + 47}.0000"
    view.graphics.scene().sigMouseMoved.emit(QPointF(-500, -500))      # off the plot: one "left" signal
    assert hovered[-1] == (-1, -1)


def test_the_edited_filter_and_the_channel_on_screen_follow_each_other(make_window):
    window = make_window()
    window.document.select(0)
    window.layer_tabs.setCurrentWidget(window.kernel_editor)
    editor = window.kernel_editor
    window.feature_view.set_selected_channel(4)              # a click on tile 4 of conv1
    assert editor.out_spin.value() == 4
    assert editor.where.text().startswith("conv1.weight[4, 0]")
    editor.out_spin.setValue(2)                               # the user picks filter 2 in the editor
    assert window.feature_view.selected_channel == 2
    editor.overview._clicked(1 * 4 + 1, 5 * 4 + 1)            # filter 5, input channel 1 in the overview
    assert window.feature_view.selected_channel == 5 and editor.in_spin.value() == 1


def test_grouped_conv_transpose_is_refused_with_the_reason(qtbot):
    """Its weight pairs filters and inputs per group; rather than edit the wrong kernels, the
    editor says why it does not edit it."""
    spec = LayerSpec("ConvTranspose2d", "up", {"in_channels": 4, "out_channels": 4, "kernel_size": 3, "groups": 2})
    doc = StackDocument(Stack([spec]))
    editor = KernelEditor(doc)
    assert editor.wait_until_ready()          # the seed's weights are built in the background
    qtbot.addWidget(editor)
    doc.select(0)
    editor.refresh()
    assert editor.body.isHidden()
    assert "groups=2" in editor.hint.text() and "set groups to 1" in editor.hint.text()


def test_selecting_a_layer_never_builds_its_parameters_on_the_gui_thread(qtbot, monkeypatch):
    """A ConvTranspose2d auto-sized to 96774→96774 asked for 150 GB inside kernel_editor.refresh on
    the GUI thread. Building the seed's values happens on a background thread; the editor says it
    is preparing, then shows them; a build that fails is one sentence in the editor."""
    import threading

    import explorer.core.layers as layers
    from explorer.core import kernels
    built_on = []
    real_build = layers.build_module

    def recording_build(spec, seed=0, device="cpu"):
        built_on.append((str(device), threading.get_ident()))
        return real_build(spec, seed, device)

    monkeypatch.setattr(kernels, "build_module", recording_build)
    doc = StackDocument(Stack([LayerSpec("Conv2d", "big", {"in_channels": 64, "out_channels": 96, "kernel_size": 5}),
                               LayerSpec("Conv2d", "huge", {"in_channels": 8, "out_channels": 8, "kernel_size": 3})]))
    editor = KernelEditor(doc)
    qtbot.addWidget(editor)
    editor.show()
    assert editor.loading and editor.hint.text() == "Preparing the weights of 'big'…"
    assert editor.wait_until_ready()
    assert not editor.loading and editor.out_spin.maximum() == 95 and editor.in_spin.maximum() == 63
    assert torch.equal(editor.kernels()[7, 5], layer_parameters(doc.stack.layers[0], doc.stack.seed)["weight"][7, 5])
    gui = threading.get_ident()
    assert built_on and all(thread != gui for device, thread in built_on if device != "meta")

    def out_of_memory(spec, seed=0, device="cpu"):
        if str(device) != "meta":
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 149843313216 bytes.")
        return real_build(spec, seed, device)

    monkeypatch.setattr(kernels, "build_module", out_of_memory)
    doc.select(1)
    assert editor.wait_until_ready()
    assert editor.hint.text() == "The weights of 'huge' do not fit in memory, so they cannot be shown or edited."
    assert editor.body.isHidden()

"""The argument form: one editor per argument, edits through the document, refusals at the field."""

from __future__ import annotations

import pytest
import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QAbstractButton, QCheckBox, QComboBox, QDoubleSpinBox, QLabel, QLineEdit, QSpinBox, QWidget)

from explorer.core.layers import LAYER_TYPES, LayerSpec
from explorer.core.shapes import infer_shapes
from explorer.core.stack import Stack
from explorer.ui.document import StackDocument
from explorer.ui.layer_form import LayerForm, label_text
from explorer.ui.layer_panel import StatusRole


@pytest.fixture
def form(qtbot, doc):
    f = LayerForm(doc)
    qtbot.addWidget(f)
    f.resize(420, 600)
    f.show()
    qtbot.waitExposed(f)
    return f


def child(form, cls, name):
    w = form.findChild(cls, name)
    assert w is not None, f"no {cls.__name__} named {name}"
    return w


def type_into(qtbot, spin, text: str) -> None:
    """Select all, type, Enter: what a person does in a spin box."""
    spin.setFocus()
    spin.selectAll()
    qtbot.keyClicks(spin.lineEdit(), text)
    qtbot.keyClick(spin.lineEdit(), Qt.Key.Key_Return)


def error_text(form, name: str) -> str:
    label = child(form, QLabel, f"error_{name}")
    return "" if label.isHidden() else label.text()


def shapes(doc):
    return [r.output_shape for r in infer_shapes(doc.stack, doc.input_shape)]


# ---------------------------------------------------------------- building
def test_conv_form_has_every_argument(form, doc):
    assert form.title.text() == "Conv2d"
    assert form.summary.text() == LAYER_TYPES["Conv2d"].summary
    assert child(form, QLineEdit, "nameEdit").text() == "conv1"
    assert child(form, QSpinBox, "arg_in_channels").value() == 3
    assert child(form, QSpinBox, "arg_out_channels").value() == 6
    assert child(form, QSpinBox, "arg_kernel_size_h").value() == 3
    assert child(form, QSpinBox, "arg_kernel_size_w").value() == 3
    assert child(form, QAbstractButton, "arg_kernel_size_link").isChecked()
    assert child(form, QComboBox, "arg_padding").currentText() == "number"
    assert child(form, QSpinBox, "arg_padding_h").value() == 0
    assert child(form, QSpinBox, "arg_groups").value() == 1
    assert child(form, QCheckBox, "arg_bias").isChecked()
    assert child(form, QComboBox, "arg_padding_mode").currentText() == "zeros"
    assert "weight [6, 3, 3, 3], bias [6]" in form.params_note.text()
    assert "seeded from the stack seed" in form.params_note.text()


def test_nothing_selected_shows_a_hint(qtbot):
    doc = StackDocument(Stack([]))
    form = LayerForm(doc)
    qtbot.addWidget(form)
    assert form.pages.currentWidget() is form.hint
    assert "Select a layer" in form.hint.text()
    doc.add_layer("ReLU")
    assert form.pages.currentWidget() is form.scroll
    assert form.title.text() == "ReLU"


@pytest.mark.parametrize("type_name", sorted(LAYER_TYPES))
def test_every_argument_of_every_type_has_an_editor_with_a_tooltip(qtbot, doc, type_name):
    doc.select(2)
    doc.add_layer("MaxPool2d")          # so MaxUnpool2d has a pool right before it
    doc.add_layer(type_name)
    form = LayerForm(doc)
    qtbot.addWidget(form)
    assert form.title.text() == type_name
    for arg in LAYER_TYPES[type_name].args:
        editors = [w for w in form.findChildren(QWidget)
                   if w.objectName() in (f"arg_{arg.name}", f"arg_{arg.name}_h", f"arg_{arg.name}_w", f"arg_{arg.name}_set")]
        assert editors, f"{type_name}.{arg.name} has no editor"
        for w in editors:
            assert arg.help in w.toolTip(), f"{type_name}.{w.objectName()}"
        assert form.findChild(QLabel, f"error_{arg.name}") is not None
    for w in form.findChildren(QWidget):
        if w.objectName().startswith("arg_"):
            assert w.toolTip().strip(), w.objectName()


def test_label_text_breaks_long_names():
    assert label_text("recompute_scale_factor") == "recompute_\nscale_factor"
    assert label_text("kernel_size") == "kernel_size"


# ---------------------------------------------------------------- edits
def test_kernel_size_spin_box_changes_the_document_and_the_shapes(qtbot, form, panel, doc):
    spin = child(form, QSpinBox, "arg_kernel_size_h")
    spin.setValue(5)
    assert doc.stack.layers[0].args["kernel_size"] == 5
    assert child(form, QSpinBox, "arg_kernel_size_w").value() == 5
    assert shapes(doc)[0] == (1, 6, 28, 28)
    assert panel.model.index(0).data() == "Conv2d 3→6 k5 s1 · [1, 6, 28, 28]"
    assert child(form, QSpinBox, "arg_kernel_size_h") is spin    # updated in place, not rebuilt
    doc.undo_stack.undo()
    assert doc.stack.layers[0].args["kernel_size"] == 3
    assert spin.value() == 3


def test_typing_into_a_spin_box(qtbot, form, doc):
    type_into(qtbot, child(form, QSpinBox, "arg_out_channels"), "16")
    assert doc.stack.layers[0].args["out_channels"] == 16
    assert doc.undo_stack.count() == 1
    assert "weight [16, 3, 3, 3], bias [16]" in form.params_note.text()


def test_non_square_kernel(qtbot, form, doc):
    child(form, QAbstractButton, "arg_kernel_size_link").setChecked(False)
    child(form, QSpinBox, "arg_kernel_size_w").setValue(5)
    assert doc.stack.layers[0].args["kernel_size"] == [3, 5]
    assert shapes(doc)[0] == (1, 6, 30, 28)
    assert not child(form, QAbstractButton, "arg_kernel_size_link").isChecked()
    child(form, QAbstractButton, "arg_kernel_size_link").setChecked(True)   # square again: w follows h
    assert doc.stack.layers[0].args["kernel_size"] == 3


def test_invalid_value_is_refused_at_the_field(qtbot, form, panel, doc):
    before = doc.stack.layers[0].args.copy()
    with qtbot.waitSignal(form.message, timeout=1000) as blocker:
        type_into(qtbot, child(form, QSpinBox, "arg_groups"), "4")
    assert "must divide" in blocker.args[0]
    assert doc.stack.layers[0].args == before
    assert doc.undo_stack.count() == 0
    message = error_text(form, "groups")
    assert "groups (4) must divide in_channels (3) evenly" in message
    label = child(form, QLabel, "error_groups")
    assert label.isVisible() and "#d0312d" in label.styleSheet()
    assert error_text(form, "kernel_size") == ""
    # The next valid edit clears it.
    type_into(qtbot, child(form, QSpinBox, "arg_groups"), "3")
    assert doc.stack.layers[0].args["groups"] == 3
    assert error_text(form, "groups") == ""


@pytest.mark.parametrize("field, arg, text, reason", [
    ("arg_stride_h", "stride", "0", "stride height must be at least 1, not 0"),
    ("arg_stride_h", "stride", "-1", "stride height must be at least 1, not -1"),
    ("arg_dilation_h", "dilation", "0", "dilation height must be at least 1, not 0"),
    ("arg_kernel_size_h", "kernel_size", "-1", "kernel_size height must be at least 1, not -1"),
    ("arg_out_channels", "out_channels", "0", "out_channels must be at least 1, not 0"),
    ("arg_out_channels", "out_channels", "-1", "out_channels must be at least 1, not -1"),
    ("arg_out_channels", "out_channels", "1e9", "out_channels can be at most 1,000,000, not 1e9"),
    ("arg_out_channels", "out_channels", "2.5", "out_channels must be a whole number, not 2.5"),
])
def test_a_number_out_of_range_is_refused_at_the_field_never_changed(qtbot, form, doc, field, arg, text, reason):
    """0 or -1 were put back without a word, and '1e9' became 19 (the 'e' was dropped)."""
    before = doc.stack.layers[0].args.copy()
    spin = child(form, QSpinBox, field)
    shown = spin.value()
    with qtbot.waitSignal(form.message, timeout=1000) as blocker:
        type_into(qtbot, spin, text)
    assert blocker.args[0] == f"{reason}; it stays {shown}."
    assert error_text(form, arg) == f"{reason}; it stays {shown}."
    assert doc.stack.layers[0].args == before and doc.undo_stack.count() == 0
    assert spin.value() == shown and spin.text() == str(shown)
    type_into(qtbot, spin, "2")                   # the next number it takes clears the sentence
    assert error_text(form, arg) == ""


def test_scientific_notation_in_an_int_field_is_the_number_it_says(qtbot, form, doc):
    type_into(qtbot, child(form, QSpinBox, "arg_out_channels"), "1e2")
    assert doc.stack.layers[0].args["out_channels"] == 100


def test_a_refused_number_is_also_refused_when_focus_leaves(qtbot, form, doc):
    spin = child(form, QSpinBox, "arg_stride_h")
    form.activateWindow()
    qtbot.waitActive(form)
    spin.setFocus()
    spin.selectAll()
    qtbot.keyClicks(spin.lineEdit(), "0")
    child(form, QLineEdit, "nameEdit").setFocus()      # click elsewhere
    qtbot.waitUntil(lambda: error_text(form, "stride") != "", timeout=1000)
    assert error_text(form, "stride") == "stride height must be at least 1, not 0; it stays 1."
    assert "stride" not in doc.stack.layers[0].args


def test_a_float_out_of_range_is_refused_with_the_reason(qtbot, form, doc):
    doc.select(0)
    doc.add_layer("BatchNorm2d")
    momentum = child(form, QDoubleSpinBox, "arg_momentum")
    type_into(qtbot, momentum, "2")
    assert error_text(form, "momentum") == "momentum can be at most 1, not 2; it stays 0.1."
    type_into(qtbot, momentum, "-0.5")
    assert error_text(form, "momentum") == "momentum must be at least 0, not -0.5; it stays 0.1."
    assert doc.stack.layers[1].args.get("momentum", 0.1) == pytest.approx(0.1)


def test_value_that_breaks_a_later_layer_is_accepted(qtbot, form, panel, doc):
    doc.select(1)
    panel.add_actions()["Conv2d"].trigger()          # conv2: 6 → 8
    doc.select(0)
    type_into(qtbot, child(form, QSpinBox, "arg_out_channels"), "5")
    assert doc.stack.layers[0].args["out_channels"] == 5
    assert error_text(form, "out_channels") == ""
    row = panel.model.index(2)
    assert row.data(StatusRole) == "error"
    assert "expects 6 input channels but its input has 5" in row.data(Qt.ItemDataRole.ToolTipRole)


def test_padding_same_and_its_refusal_with_stride(qtbot, form, doc):
    combo = child(form, QComboBox, "arg_padding")
    combo.setCurrentText("same")
    assert doc.stack.layers[0].args["padding"] == "same"
    assert not child(form, QSpinBox, "arg_padding_h").isEnabled()
    assert shapes(doc)[0] == (1, 6, 32, 32)
    child(form, QSpinBox, "arg_stride_h").setValue(2)
    assert "stride 1" in error_text(form, "stride")
    assert "stride" not in doc.stack.layers[0].args
    combo.setCurrentText("number")
    assert doc.stack.layers[0].args["padding"] == 0
    assert child(form, QSpinBox, "arg_padding_h").isEnabled()


def test_bool_and_choice(qtbot, form, doc):
    qtbot.mouseClick(child(form, QCheckBox, "arg_bias"), Qt.MouseButton.LeftButton)
    assert doc.stack.layers[0].args["bias"] is False
    assert "bias" not in form.params_note.text().split("—")[0]
    child(form, QComboBox, "arg_padding_mode").setCurrentText("reflect")
    assert doc.stack.layers[0].args["padding_mode"] == "reflect"


def test_rename_and_taken_name(qtbot, form, doc):
    edit = child(form, QLineEdit, "nameEdit")
    edit.setFocus()
    edit.selectAll()
    qtbot.keyClicks(edit, "edges")
    qtbot.keyClick(edit, Qt.Key.Key_Return)
    assert doc.stack.names()[0] == "edges"
    edit.selectAll()
    qtbot.keyClicks(edit, "relu1")
    qtbot.keyClick(edit, Qt.Key.Key_Return)
    assert doc.stack.names()[0] == "edges"
    assert "already called 'relu1'" in child(form, QLabel, "nameError").text()
    assert not child(form, QLabel, "nameError").isHidden()


def test_optional_pool_stride(qtbot, form, doc):
    doc.select(2)
    assert form.title.text() == "MaxPool2d"
    tick = child(form, QCheckBox, "arg_stride_set")
    h = child(form, QSpinBox, "arg_stride_h")
    assert not tick.isChecked() and not h.isEnabled()
    assert h.value() == 2                       # shows what torch uses: the kernel size
    tick.setChecked(True)
    assert doc.stack.layers[2].args["stride"] == 2
    h.setValue(1)
    assert doc.stack.layers[2].args["stride"] == 1
    assert shapes(doc)[2] == (1, 6, 29, 29)
    tick.setChecked(False)
    assert "stride" not in doc.stack.layers[2].args
    assert shapes(doc)[2] == (1, 6, 15, 15)


def test_float_editor_shows_small_numbers_and_takes_scientific_notation(qtbot, form, doc):
    doc.select(0)
    doc.add_layer("BatchNorm2d")
    eps = child(form, QDoubleSpinBox, "arg_eps")
    assert eps.text() == "1e-05"
    assert eps.value() == pytest.approx(1e-5)
    type_into(qtbot, eps, "1e-3")
    assert doc.stack.layers[1].args["eps"] == pytest.approx(1e-3)
    assert eps.text() == "0.001"
    momentum = child(form, QDoubleSpinBox, "arg_momentum")
    assert momentum.text() == "0.1"
    type_into(qtbot, momentum, "0.5")
    assert doc.stack.layers[1].args["momentum"] == pytest.approx(0.5)
    type_into(qtbot, momentum, "2")              # out of range: refused at the field, with the reason
    assert doc.stack.layers[1].args["momentum"] == pytest.approx(0.5)
    assert "at most 1" in error_text(form, "momentum")


def test_negative_dims_for_flatten(qtbot, form, doc):
    doc.select(2)
    doc.add_layer("Flatten")
    end = child(form, QSpinBox, "arg_end_dim")
    assert end.value() == -1 and end.minimum() < 0
    type_into(qtbot, end, "-2")
    assert doc.stack.layers[3].args["end_dim"] == -2


def test_upsample_switches_between_scale_factor_and_size_in_one_step(qtbot, form, doc):
    doc.select(2)
    doc.add_layer("Upsample")
    assert form.title.text() == "Upsample"
    size_tick = child(form, QCheckBox, "arg_size_set")
    scale_tick = child(form, QCheckBox, "arg_scale_factor_set")
    assert scale_tick.isChecked() and not size_tick.isChecked()
    assert child(form, QSpinBox, "arg_size_h").value() == 30        # the current output size
    count = doc.undo_stack.count()
    size_tick.setChecked(True)
    assert doc.stack.layers[3].args == {"size": 30}
    assert not scale_tick.isChecked()
    assert doc.undo_stack.count() == count + 1
    doc.undo_stack.undo()
    assert doc.stack.layers[3].args == {"scale_factor": 2.0}
    assert scale_tick.isChecked() and not size_tick.isChecked()
    # Unticking the only one is refused: Upsample needs one of them.
    scale_tick.setChecked(False)
    assert "exactly one of size or scale_factor" in error_text(form, "scale_factor")
    assert doc.stack.layers[3].args == {"scale_factor": 2.0}


def test_opt_bool_align_corners(qtbot, form, doc):
    doc.select(2)
    doc.add_layer("Upsample")
    combo = child(form, QComboBox, "arg_align_corners")
    assert combo.currentText().startswith("default")
    combo.setCurrentText("True")
    assert "bilinear or bicubic" in error_text(form, "align_corners")
    assert "align_corners" not in doc.stack.layers[3].args
    child(form, QComboBox, "arg_mode").setCurrentText("bilinear")
    combo.setCurrentText("True")
    assert doc.stack.layers[3].args["align_corners"] is True
    combo.setCurrentIndex(0)
    assert "align_corners" not in doc.stack.layers[3].args


def test_unpool_combo_lists_earlier_pools(qtbot, form, doc):
    doc.select(2)
    doc.add_layer("MaxPool2d")        # pool2 at 3
    doc.add_layer("MaxUnpool2d")      # unpool1 at 4, from pool2
    doc.add_layer("MaxPool2d")        # pool3 after the unpool: not offered
    doc.select(4)
    combo = child(form, QComboBox, "indicesFromCombo")
    assert [combo.itemText(i) for i in range(combo.count())] == ["pool1", "pool2"]
    assert combo.currentText() == "pool2"
    combo.setCurrentText("pool1")
    assert doc.stack.layers[4].indices_from == "pool1"
    assert combo.toolTip()
    doc.undo_stack.undo()
    assert combo.currentText() == "pool2"


def test_form_rebuilds_only_when_the_layer_changes(qtbot, form, doc):
    spin = child(form, QSpinBox, "arg_out_channels")
    doc.set_arg(0, "out_channels", 7)
    assert child(form, QSpinBox, "arg_out_channels") is spin and spin.value() == 7
    doc.select(2)
    assert form.title.text() == "MaxPool2d"
    assert form.findChild(QSpinBox, "arg_out_channels") is None
    doc.select(0)
    assert child(form, QSpinBox, "arg_out_channels").value() == 7


def test_a_type_shown_before_gets_its_form_back_with_the_selected_layers_values(qtbot, form, doc):
    # Rebuilding ~20 widgets on every click was most of a layer click's time on the GUI thread.
    doc.insert_layer(3, LayerSpec("Conv2d", "conv2", {"in_channels": 6, "out_channels": 9, "kernel_size": 5}))
    doc.select(0)
    spin = child(form, QSpinBox, "arg_out_channels")
    doc.select(1)
    assert form.title.text() == "ReLU" and form.findChild(QSpinBox, "arg_out_channels") is None
    doc.select(3)
    assert child(form, QSpinBox, "arg_out_channels") is spin
    assert spin.value() == 9 and form.name_edit.text() == "conv2"
    assert form.editors["kernel_size"].value() in (5, (5, 5))
    doc.select(0)
    assert spin.value() == 6 and form.name_edit.text() == "conv1"
    type_into(qtbot, spin, "8")
    assert doc.stack.layers[0].args["out_channels"] == 8 and doc.stack.layers[3].args["out_channels"] == 9


def test_typed_text_left_in_a_field_never_edits_the_next_layer(qtbot, form, doc):
    doc.insert_layer(3, LayerSpec("Conv2d", "conv2", {"in_channels": 6, "out_channels": 9, "kernel_size": 5}))
    doc.select(0)
    spin = child(form, QSpinBox, "arg_out_channels")
    spin.setFocus()
    spin.selectAll()
    qtbot.keyClicks(spin.lineEdit(), "4")          # no Enter: the selection moves first (say, by a shortcut)
    doc.select(1)
    doc.select(3)
    assert doc.stack.layers[3].args["out_channels"] == 9
    assert child(form, QSpinBox, "arg_out_channels").value() == 9


def test_errors_clear_when_another_layer_is_selected(qtbot, form, doc):
    type_into(qtbot, child(form, QSpinBox, "arg_groups"), "4")
    assert error_text(form, "groups")
    doc.select(2)
    doc.select(0)
    assert error_text(form, "groups") == ""
    assert child(form, QSpinBox, "arg_groups").value() == 1


def test_params_note_says_when_weights_are_set_by_hand(qtbot, form, doc):
    doc.set_state(0, "weight", torch.zeros(6, 3, 3, 3))
    assert "weight set by hand" in form.params_note.text()
    assert "bias seeded from the stack seed" in form.params_note.text()
    doc.select(1)
    assert form.params_note.isHidden()


# ---------------------------------------------------------------- the kernel editor (optional widget)
def test_kernel_editor_edits_one_kernel_through_the_document(qtbot, doc):
    from PySide6.QtWidgets import QTableWidget
    from explorer.core.layers import build_module
    from explorer.ui.kernel_editor import KernelEditor, preset_kernel

    editor = KernelEditor(doc)
    assert editor.wait_until_ready()          # the seed's weights are built in the background
    qtbot.addWidget(editor)
    editor.show()
    table = editor.findChild(QTableWidget, "kernelTable")
    seeded = build_module(doc.stack.layers[0], doc.stack.seed).weight.detach()
    assert (table.rowCount(), table.columnCount()) == (3, 3)
    assert float(table.item(1, 1).text()) == pytest.approx(float(seeded[0, 0, 1, 1]), rel=1e-3)
    editor.findChild(QSpinBox, "kernelOutChannel").setValue(2)
    editor.findChild(QSpinBox, "kernelInChannel").setValue(1)
    editor.apply_preset("Sobel x (vertical edges)")
    weight = doc.stack.layers[0].state["weight"]
    assert torch.equal(weight[2, 1], preset_kernel("Sobel x (vertical edges)", 3, 3))
    assert torch.equal(weight[0], seeded[0])                      # the other kernels stay
    assert table.item(1, 0).text() == "-2"
    table.item(0, 0).setText("0.5")                               # what finishing a cell edit does
    assert float(doc.stack.layers[0].state["weight"][2, 1, 0, 0]) == 0.5
    table.item(0, 1).setText("abc")
    assert editor.findChild(QLabel, "kernelError").text() == "'abc' is not a number."
    assert table.item(0, 1).text() == "0"
    editor.findChild(QCheckBox, "kernelAllInputs").setChecked(True)
    editor.apply_preset("Identity")
    assert torch.equal(doc.stack.layers[0].state["weight"][2], preset_kernel("Identity", 3, 3).expand(3, 3, 3))
    doc.select(1)
    assert editor.body.isHidden() and "Conv2d" in editor.hint.text()



def test_refusals_reach_the_field_through_optional_and_padding_editors(qtbot, form, doc):
    doc.select(2)                                       # MaxPool2d: stride is optional
    child(form, QCheckBox, "arg_stride_set").setChecked(True)
    type_into(qtbot, child(form, QSpinBox, "arg_stride_h"), "0")
    assert error_text(form, "stride") == "stride height must be at least 1, not 0; it stays 2."
    type_into(qtbot, child(form, QSpinBox, "arg_padding_h"), "-1")
    assert error_text(form, "padding") == "padding height must be at least 0, not -1; it stays 0."
    doc.select(0)                                       # Conv2d: padding is number / same / valid
    type_into(qtbot, child(form, QSpinBox, "arg_padding_w"), "-3")
    assert error_text(form, "padding") == "padding width must be at least 0, not -3; it stays 0."
    assert doc.stack.layers[0].args.get("padding", 0) == 0 and doc.stack.layers[2].args["stride"] == 2

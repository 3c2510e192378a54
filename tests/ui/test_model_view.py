"""The model panel: print(model), the parameter table and "Copy as PyTorch code"."""

from __future__ import annotations

import pytest
import torch
from PySide6 import QtCore, QtGui, QtWidgets

from explorer.core.codegen import model_repr, named_parameters, pytorch_code
from explorer.core.engine import run_stack
from explorer.core.examples import load_example
from explorer.core.layers import LayerSpec
from explorer.core.stack import InputSpec, Stack
from explorer.ui.model_view import ModelView


def L(type_, name, enabled=True, indices_from=None, state=None, **args):
    return LayerSpec(type_, name, args, state, enabled, indices_from)


def lenet_stack():
    return load_example("lenet")     # the classic tutorial's LeNet-5, as the app ships it


def unpool_stack():
    return Stack([
        L("Conv2d", "conv 1", in_channels=3, out_channels=4, kernel_size=3, padding=1,
          state={"bias": torch.tensor([0.5, -0.25, 1e-8, 3.0])}),
        L("MaxPool2d", "pool1", kernel_size=2), L("ReLU", "relu1", enabled=False),
        L("MaxUnpool2d", "unpool1", indices_from="pool1", kernel_size=2),
        L("BatchNorm2d", "bn1", num_features=4),
    ], seed=5)


@pytest.fixture
def view(qtbot):
    w = ModelView()
    qtbot.addWidget(w)
    w.resize(900, 500)
    w.show()
    qtbot.waitExposed(w)
    return w


def params_cell(view, row, col):
    return view.params_model.data(view.params_model.index(row, col))


def exec_model(code: str):
    namespace = {"__name__": "copied"}
    exec(compile(code, "<clipboard>", "exec"), namespace)
    return namespace["ExplorerNet"]()


def test_lenet_repr_and_parameters(view):
    stack = lenet_stack()
    view.set_stack(stack)
    assert view.repr_text.toPlainText() == model_repr(stack)
    assert view.repr_text.isReadOnly()
    assert "(fc3): Linear(in_features=84, out_features=10, bias=True)" in view.repr_text.toPlainText()
    assert view.params_model.rowCount() == 10
    assert params_cell(view, 0, 0) == "conv1.weight"
    assert params_cell(view, 0, 1) == "[6, 1, 5, 5]"
    assert params_cell(view, 0, 2) == "150"
    assert params_cell(view, 4, 0) == "fc1.weight"
    assert params_cell(view, 4, 2) == "48,000"
    nn = torch.nn
    ref = [nn.Conv2d(1, 6, 5), nn.Conv2d(6, 16, 5), nn.Linear(400, 120), nn.Linear(120, 84), nn.Linear(84, 10)]
    total = sum(p.numel() for m in ref for p in m.parameters())
    assert total == 61706
    assert view.params_total.text() == f"Total parameters: {total:,}"
    assert not view.error_label.isVisible()


def test_copy_button_puts_code_that_matches_the_app_on_the_clipboard(view, qtbot):
    stack = lenet_stack()
    view.set_stack(stack)
    button = view.findChild(QtWidgets.QPushButton, "copyCodeButton")
    assert button is view.copy_button and button.isEnabled()
    with qtbot.waitSignal(view.code_copied, timeout=2000) as blocker:
        qtbot.mouseClick(button, QtCore.Qt.MouseButton.LeftButton)
    code = QtGui.QGuiApplication.clipboard().text()
    assert code == blocker.args[0] == pytorch_code(stack)
    model = exec_model(code)
    model.eval()
    x = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    expected = run_stack(stack, x, "cpu").layers[-1].output
    with torch.no_grad():
        got = model(x.clone())
    assert torch.equal(got, expected)


def test_copy_with_unpool_state_and_odd_names(view, qtbot):
    stack = unpool_stack()
    view.set_stack(stack)
    assert "(conv_1): Conv2d" in view.repr_text.toPlainText()
    assert [view.params_model.params[i][0] for i in range(4)] == ["conv_1.weight", "conv_1.bias", "bn1.weight", "bn1.bias"]
    with qtbot.waitSignal(view.code_copied, timeout=2000):
        qtbot.mouseClick(view.copy_button, QtCore.Qt.MouseButton.LeftButton)
    model = exec_model(QtGui.QGuiApplication.clipboard().text()).eval()
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x.clone()), run_stack(stack, x, "cpu").layers[-1].output)


def test_later_edits_to_the_stack_do_not_change_what_is_copied(view):
    stack = lenet_stack()
    view.set_stack(stack)
    stack.layers[0].args["out_channels"] = 8       # the caller edits its own stack afterwards
    assert "nn.Conv2d(1, 6, 5)" in view.copy_code()


def test_show_code_toggle(view, qtbot):
    stack = lenet_stack()
    view.set_stack(stack)
    toggle = view.findChild(QtWidgets.QPushButton, "showCodeButton")
    assert view.text_stack.currentWidget() is view.repr_text
    qtbot.mouseClick(toggle, QtCore.Qt.MouseButton.LeftButton)
    assert toggle.isChecked()
    assert view.text_stack.currentWidget() is view.code_text
    qtbot.waitUntil(lambda: view.code_text.toPlainText() == pytorch_code(stack), timeout=10_000)
    # while the code is shown, a new stack updates it
    stack2 = lenet_stack()
    stack2.layers[4].enabled = False
    view.set_stack(stack2)
    qtbot.waitUntil(lambda: "# relu2 (ReLU) is disabled" in view.code_text.toPlainText(), timeout=10_000)
    qtbot.mouseClick(toggle, QtCore.Qt.MouseButton.LeftButton)
    assert view.text_stack.currentWidget() is view.repr_text
    assert "relu2" not in view.repr_text.toPlainText()


def test_invalid_arguments_show_an_error_and_disable_copy(view):
    bad = Stack([L("Conv2d", "conv1", in_channels=3, out_channels=4, kernel_size=3, groups=2)])
    view.set_stack(bad)
    assert view.error_label.isVisible()
    assert "conv1" in view.error_label.text() and "groups" in view.error_label.text()
    assert not view.copy_button.isEnabled()
    assert view.params_model.rowCount() == 0
    view.set_stack(lenet_stack())
    assert not view.error_label.isVisible() and view.copy_button.isEnabled()


def test_empty_and_none(view):
    view.set_stack(Stack())
    assert view.repr_text.toPlainText() == "ExplorerNet()"
    assert view.params_total.text() == "Total parameters: 0"
    view.set_stack(None)
    assert view.repr_text.toPlainText() == ""
    assert not view.copy_button.isEnabled()
    assert view.copy_code() == ""


def test_parameter_table_and_repr_are_not_cramped(view):
    view.set_stack(lenet_stack())
    table = view.params_table
    fm = QtGui.QFontMetrics(view.params_model.mono)
    for col in range(3):
        widest = max(fm.horizontalAdvance(params_cell(view, r, col)) for r in range(10))
        assert table.columnWidth(col) >= widest
    assert table.horizontalHeader().length() <= table.viewport().width()
    assert named_parameters(lenet_stack())[0][1] == (6, 1, 5, 5)


def test_the_code_is_written_off_the_gui_thread_and_only_for_the_newest_stack(view, qtbot, monkeypatch):
    """Formatting a trained stack's weights into code took seconds on the GUI thread (found by the
    random-input session: training finished while the code was shown)."""
    import threading
    from explorer.ui import model_view
    threads, written = [], []

    def recording(stack):
        threads.append(threading.get_ident())
        code = pytorch_code(stack)
        written.append(code)
        return code
    monkeypatch.setattr(model_view, "pytorch_code", recording)
    first, second = lenet_stack(), lenet_stack()
    second.layers[4].enabled = False
    view.set_stack(first)
    view.show_code_button.click()
    assert view.code_text.toPlainText() == "# Writing the code…"
    view.set_stack(second)                        # replaced before (or while) the first was written
    qtbot.waitUntil(lambda: view.code_text.toPlainText() == pytorch_code(second), timeout=10_000)
    assert threads and threading.get_ident() not in threads
    with qtbot.waitSignal(view.code_copied, timeout=10_000) as blocker:
        view.copy_button.click()                  # already written: copied from what is shown
    assert blocker.args[0] == pytorch_code(second)
    assert QtGui.QGuiApplication.clipboard().text() == pytorch_code(second)


def test_new_weights_reuse_the_printed_model_and_new_arguments_rebuild_it(view, monkeypatch):
    """A training preview or a kernel edit changes weights only: print(model) and the parameter list
    are not built again (they cost ~10 ms of every preview); an argument change rebuilds both."""
    from explorer.ui import model_view

    built = []
    monkeypatch.setattr(model_view, "model_repr", lambda stack, *a: built.append("repr") or model_repr(stack, *a))
    stack = lenet_stack()
    view.set_stack(stack)
    first = view.repr_text.toPlainText()
    reseeded = stack.copy()
    reseeded.seed = 7
    view.set_stack(reseeded)
    assert built == ["repr"] and view.repr_text.toPlainText() == first
    assert view.params_total.text() == "Total parameters: 61,706"
    wider = stack.copy()
    wider.layers[0] = LayerSpec("Conv2d", "conv1", {**wider.layers[0].args, "out_channels": 8})
    view.set_stack(wider)
    assert built == ["repr", "repr"] and view.repr_text.toPlainText() == model_repr(wider)
    assert view.repr_text.toPlainText() != first

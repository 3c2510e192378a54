"""The Train panel in a real window, on a small xo set: Start trains and becomes one undo step; Pause
holds between steps and Stop keeps what was reached; the history slider makes every view show a
moment, Keep makes it the stack's weights (undoable); a stack that cannot classify is refused in place."""

from __future__ import annotations

import pytest
import torch

from explorer.core.stack import stack_from_dict
from explorer.core.training import datasets

TIMEOUT = 60_000


def small_stack():
    return stack_from_dict({"seed": 0, "input": {"channels": 1, "size": [12, 12]}, "layers": [
        {"type": "Conv2d", "name": "conv1", "args": {"in_channels": 1, "out_channels": 3, "kernel_size": 3}},
        {"type": "ReLU", "name": "relu1"},
        {"type": "MaxPool2d", "name": "pool1", "args": {"kernel_size": 2}},
        {"type": "Flatten", "name": "flatten1"},
        {"type": "Linear", "name": "fc1", "args": {"in_features": 75, "out_features": 2}},
    ]})


@pytest.fixture
def panel(make_window, monkeypatch):
    monkeypatch.setattr(datasets, "XO_TRAIN", 256)
    monkeypatch.setattr(datasets, "XO_TEST", 64)
    window = make_window(stack=small_stack())
    panel = window.training.show()
    panel.batch_size.setValue(32)
    panel.epochs.setValue(2)
    panel.window_ = window
    yield panel
    panel.controller.shutdown()


def _train(qtbot, panel):
    panel.start_button.click()
    qtbot.waitUntil(lambda: not panel.controller.busy, timeout=TIMEOUT)


def test_start_trains_and_the_result_is_one_undo_step(qtbot, panel):
    doc = panel.document
    assert doc.stack.layers[0].state is None
    _train(qtbot, panel)
    assert doc.undo_stack.undoText() == "Train 2 epochs on xo"
    trained = doc.stack.layers[0].state["weight"].clone()
    assert doc.stack.layers[4].state["weight"].shape == (2, 75)
    assert not doc.previewing
    # Curves: one loss per step (8 steps per epoch), one accuracy point per epoch.
    assert len(panel.loss_raw.getData()[0]) == 16
    assert list(panel.test_curve.getData()[0]) == [1, 2]
    # The confusion table counts the 64 test images; the last column is the per-class accuracy.
    counts = [[int(panel.confusion.item(i, j).text()) for j in range(2)] for i in range(2)]
    assert sum(map(sum, counts)) == 64 and counts[0][0] + counts[0][1] == 32
    assert panel.confusion.item(0, 2).text() == f"{counts[0][0] / 32:.1%}"
    assert panel.history_slider.maximum() == 3 and panel.history_slider.value() == 3    # start, 2 epochs, now
    doc.undo_stack.undo()
    assert doc.stack.layers[0].state is None
    doc.undo_stack.redo()
    assert torch.equal(doc.stack.layers[0].state["weight"], trained)


def test_pause_holds_and_stop_keeps_the_weights_so_far(qtbot, panel):
    panel.epochs.setValue(200)
    panel.start_button.click()
    qtbot.waitUntil(lambda: len(panel._losses) > 3, timeout=TIMEOUT)
    panel.pause_button.click()
    assert panel.pause_button.text() == "Resume"
    qtbot.wait(300)                      # a step in flight may still arrive
    held = len(panel._losses)
    qtbot.wait(400)
    assert len(panel._losses) == held and panel.controller.busy
    panel.pause_button.click()
    qtbot.waitUntil(lambda: len(panel._losses) > held, timeout=TIMEOUT)
    panel.stop_button.click()
    qtbot.waitUntil(lambda: not panel.controller.busy, timeout=TIMEOUT)
    assert panel.document.undo_stack.undoText().endswith("on xo (stopped)")
    assert panel.document.stack.layers[0].state is not None
    assert "Stopped by the user" in panel.status.text()
    assert panel.start_button.isEnabled() and not panel.stop_button.isEnabled()


def test_scrub_shows_a_moment_everywhere_and_keep_is_undoable(qtbot, panel):
    _train(qtbot, panel)
    doc, window = panel.document, panel.window_
    trained = doc.stack.layers[0].state["weight"].clone()
    start = panel._snapshots[0].states["conv1"]["weight"]
    assert not torch.equal(start, trained)
    panel.history_slider.setValue(0)
    assert doc.previewing and torch.equal(doc.stack.layers[0].state["weight"], start)
    assert panel.history_label.text() == "Weights: the start (before training)"
    doc.select(0)
    window.layer_tabs.setCurrentIndex(1)
    assert torch.equal(window.kernel_editor.kernels(), start)          # the Kernel tab shows that moment
    assert window.runner.wait_until_idle(20_000)
    # The feature maps come from the previewed weights: conv1 of the window's run = conv with `start`.
    x = window.batch.tensor
    expected = torch.nn.functional.conv2d(x, start, panel._snapshots[0].states["conv1"]["bias"])
    torch.testing.assert_close(window.result.layers[0].output, expected)
    assert panel.keep_button.isEnabled()
    panel.keep_button.click()
    assert doc.undo_stack.undoText() == "Keep the weights of the start (before training)"
    assert not doc.previewing and torch.equal(doc.stack.layers[0].state["weight"], start)
    assert panel.history_slider.value() == panel.history_slider.maximum()
    doc.undo_stack.undo()
    assert torch.equal(doc.stack.layers[0].state["weight"], trained)
    # Back to 'now' ends a preview without an undo step.
    panel.history_slider.setValue(1)
    panel.history_slider.setValue(panel.history_slider.maximum())
    assert not doc.previewing and doc.undo_stack.undoText() == "Train 2 epochs on xo"


def test_live_weights_reach_the_views_while_training(qtbot, panel, monkeypatch):
    from explorer.core.training import trainer
    monkeypatch.setattr(trainer, "LIVE_SECONDS", 0.0)
    panel.epochs.setValue(30)
    panel.start_button.click()
    qtbot.waitUntil(lambda: panel.document.previewing, timeout=TIMEOUT)
    assert panel.document.stack.layers[0].state is not None
    assert panel.document.real_stack.layers[0].state is None
    panel.stop_button.click()
    qtbot.waitUntil(lambda: not panel.controller.busy, timeout=TIMEOUT)
    assert not panel.document.previewing


def test_reset_weights_and_misclassified_click(qtbot, panel):
    panel.epochs.setValue(1)
    panel.lr.setValue(0.000001)          # barely trained: plenty of mistakes to show
    _train(qtbot, panel)
    assert panel.gallery.count() > 0
    item = panel.gallery.item(0)
    index, true, predicted = item.data(0x0100)
    panel.gallery.itemClicked.emit(item)
    source = panel.window_.requested_source
    assert source.kind == "bytes" and f"test image {index}" in source.name
    panel.reset_button.click()
    assert panel.document.undo_stack.undoText() == "Reset weights"
    assert all(spec.state is None for spec in panel.document.stack.layers)


def test_a_stack_that_cannot_classify_is_refused_in_place(qtbot, panel):
    doc = panel.document
    doc.remove_layer(4)
    before = doc.undo_stack.count()
    _train(qtbot, panel)
    assert panel.status.text() == "The last layer gives [N, 75]; add Linear(75, 2) for 2 classes."
    assert doc.undo_stack.count() == before


def test_the_data_folder_question_goes_through_the_dialogs_module(qtbot, panel, monkeypatch, tmp_path):
    # The random-input session found this one modal question asked straight from QFileDialog, where
    # neither tests nor scripted sessions that answer ui/dialogs could answer it.
    from PySide6.QtWidgets import QFileDialog
    from explorer.ui import dialogs
    asked = []
    monkeypatch.setattr(QFileDialog, "getExistingDirectory",
                        staticmethod(lambda *a, **k: pytest.fail("a modal file dialog outside ui/dialogs")))
    monkeypatch.setattr(dialogs, "choose_folder", lambda parent, title, folder: asked.append(title) or str(tmp_path))
    panel.choose_folder()
    assert asked and "CIFAR-10" in asked[0]
    assert panel.data_combo.findData(str(tmp_path)) >= 0

"""The whole window driven as a person would: edits flow to shapes, runs and views; files, undo,
CIFAR stepping, the code export, superseded runs and a responsive event loop."""

from __future__ import annotations

import gc
import json
import time

import numpy as np
import pytest
import torch
from PySide6.QtCore import QCoreApplication, QEvent, QObject, QPoint, Qt, QTimer
from PySide6.QtGui import QGuiApplication, QImage

from explorer.core.engine import run_stack
from explorer.core.input_source import InputSource, load_input
from explorer.core.layers import build_module
from explorer.core.stack import load_stack, stack_from_dict
from explorer.ui import dialogs
from explorer.ui.app_paths import autosave_path


def settle(window):
    assert window.runner.wait_until_idle(20_000)


def test_starts_alive_on_the_sample_and_default_stack(make_window):
    window = make_window()
    assert [l.type for l in window.document.stack.layers] == ["Conv2d", "ReLU", "MaxPool2d"]
    assert window.result is not None and window.result.ok
    assert window.result.layers[0].output_shape == (1, 6, 254, 254)
    assert "CPU" in window.device_status.text()
    assert "Ran 3 layers" in window.time_status.text()
    assert window.feature_view.message is None          # a grid is on screen, not a hint
    assert window.layer_panel.row_text(0).startswith("Conv2d 3→6 k3 s1 · [1, 6, 254, 254]")


def test_an_edit_updates_shapes_at_once_and_the_run_after(make_window, qtbot):
    window = make_window()
    window.document.select(0)
    window.document.set_arg(0, "kernel_size", 5)
    # shapes come from inference, before the run answers
    assert window.shapes_view.model.rowCount() >= 3
    assert "[1, 6, 252, 252]" in window.layer_panel.row_text(0)
    settle(window)
    assert window.result.layers[0].output_shape == (1, 6, 252, 252)
    expected = run_stack(window.document.stack, window.batch.tensor, "cpu").layers[2].output
    assert torch.equal(window.result.layers[2].output, expected)


def test_only_layers_from_the_edit_on_are_recomputed(make_window):
    window = make_window()
    window.document.set_arg(2, "kernel_size", 3)
    settle(window)
    assert window.result.computed == [2]
    window.document.set_enabled(1, False)
    settle(window)
    assert window.result.computed == [1, 2]
    assert torch.equal(window.result.layers[1].output, window.result.layers[0].output)


def test_a_broken_layer_shows_why_and_earlier_layers_keep_their_output(make_window):
    window = make_window()
    window.document.select(2)
    window.document.add_layer("Conv2d")           # sized to fit: 6 input channels
    settle(window)
    assert window.result.ok
    window.document.set_arg(0, "out_channels", 4)  # now the new conv gets 4 channels
    settle(window)
    message = "expects 6 input channels but its input has 4"
    assert message in window.result.error
    assert window.result.layers[2].output is not None
    window.document.select(3)
    assert message in window.feature_view.message


def test_undo_and_redo_through_the_menu_actions(make_window):
    window = make_window()
    window.document.set_arg(0, "out_channels", 9)
    settle(window)
    assert window.result.layers[0].output_shape[1] == 9
    window.undo_action.trigger()
    settle(window)
    assert window.result.layers[0].output_shape[1] == 6
    window.redo_action.trigger()
    settle(window)
    assert window.result.layers[0].output_shape[1] == 9
    assert window.windowTitle().startswith("untitled*")


def test_reorder_and_remove(make_window):
    window = make_window()
    window.document.move_layer(1, 2)
    settle(window)
    assert [l.type for l in window.document.stack.layers] == ["Conv2d", "MaxPool2d", "ReLU"]
    window.document.remove_layer(1)
    settle(window)
    assert [l.type for l in window.result.layers] == ["Conv2d", "ReLU"]


def test_save_and_reopen_bit_exact(make_window, tmp_path, monkeypatch):
    window = make_window()
    weight = torch.randn(6, 3, 3, 3)
    weight[0, 0, 0, 0] = 1e-40        # a subnormal survives too
    window.document.set_state(0, "weight", weight)
    settle(window)
    before = window.result.layers[-1].output.clone()
    path = tmp_path / "mine.json"
    monkeypatch.setattr(dialogs, "save_file", lambda *a: str(path))
    assert window.save()
    assert not window.document.dirty and window.windowTitle().startswith("mine.json")
    assert torch.equal(load_stack(path).layers[0].state["weight"], weight)

    window.document.set_arg(0, "out_channels", 3)
    monkeypatch.setattr(dialogs, "save_changes", lambda *a: "discard")
    assert window.open_stack(path)
    settle(window)
    assert torch.equal(window.result.layers[-1].output, before)
    assert str(path.resolve()) in [a.text() for a in window.recent_menu.actions()]


def test_unsaved_changes_are_asked_about_and_cancel_keeps_them(make_window, monkeypatch):
    window = make_window()
    window.document.set_arg(0, "out_channels", 7)
    monkeypatch.setattr(dialogs, "save_changes", lambda *a: "cancel")
    window.new_stack()
    assert window.document.stack.layers[0].args["out_channels"] == 7
    assert window.document.dirty


def test_autosave_is_offered_back(make_window, monkeypatch):
    window = make_window()
    window.document.set_arg(0, "out_channels", 11)
    window.autosaver.autosave()
    window.autosaver.finish()
    assert autosave_path().exists()
    window.document.undo_stack.setClean()
    window.close()

    # The window above closed cleanly and removed its autosave; a crash would have left it.
    autosave_path().write_text(json.dumps({"layers": [{"type": "ReLU", "name": "kept"}]}))
    monkeypatch.setattr(dialogs, "restore_autosave", lambda *a: True)
    second = make_window()
    second.offer_autosave()
    assert second.document.stack.names() == ["kept"]
    assert second.document.dirty
    assert not autosave_path().exists()


def test_a_bad_stack_file_or_image_leaves_everything_as_it_was(make_window, tmp_path):
    window = make_window()
    bad = tmp_path / "bad.json"
    bad.write_text('{"layers": [{"type": "Conv3d"}]}')
    assert not window.open_stack(bad)
    assert "unknown layer type 'Conv3d'" in window.banner.text()
    assert window.document.stack.layers[0].type == "Conv2d"

    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    window.set_source(InputSource.image(broken))
    settle(window)
    settle(window)
    assert "broken.png" in window.banner.text()
    assert window.source == InputSource.sample("astronaut")
    assert window.result is not None and window.result.ok


def test_cifar_batches_step_through_with_class_names(make_window, cifar_dir, qtbot):
    window = make_window()
    window.set_source(InputSource.cifar(cifar_dir, "test", batch_size=8))
    settle(window)
    assert window.batch.tensor.shape == (8, 3, 32, 32)
    panel = window.input_panel
    assert panel.batch_of.text() == "of 3"                 # 20 test images, 8 per batch
    assert panel.class_label.text().startswith(f"Image 0: {window.batch.classes[0]}")
    first_labels = list(window.batch.labels)

    qtbot.mouseClick(panel.findChild(QObject, "batchNext"), Qt.LeftButton)
    settle(window)
    assert window.source.batch_index == 1
    assert window.batch.labels != first_labels
    expected = load_input(InputSource.cifar(cifar_dir, "test", 8, 1)).tensor
    assert torch.equal(window.batch.tensor, expected)

    qtbot.mouseClick(panel.findChild(QObject, "itemNext"), Qt.LeftButton)
    assert panel.batch_item == 1
    assert panel.class_label.text().startswith(f"Image 1: {window.batch.classes[1]}")
    assert window.feature_view.batch_index == 1


def test_click_a_channel_and_switch_normalisation(make_window, qtbot):
    window = make_window()
    window.document.select(0)
    view = window.feature_view
    qtbot.waitExposed(window)
    # The statistics appear under the maps after the first run: wait until the grid has its size.
    qtbot.waitUntil(lambda: view.grid.viewport().rect().contains(view.grid.widget_point_of_tile(4)), timeout=2000)
    point = view.grid.widget_point_of_tile(4)
    qtbot.mouseClick(view.grid.viewport(), Qt.LeftButton, pos=point)
    qtbot.wait(10)
    assert view.selected_channel == 4
    assert view.findChild(QObject, "channelTitle").text().startswith("Channel 4")
    view.findChild(QObject, "normCombo").setCurrentIndex(view.findChild(QObject, "normCombo").findData("symmetric"))
    assert view.normalization == "symmetric"
    assert view.colormap == "diverging"


def test_copied_pytorch_code_gives_the_windows_outputs(make_window, qtbot):
    window = make_window()
    window.bottom_tabs.setCurrentWidget(window.model_view)
    with qtbot.waitSignal(window.model_view.code_copied, timeout=10_000):     # written in the background
        qtbot.mouseClick(window.model_view.findChild(QObject, "copyCodeButton"), Qt.LeftButton)
    code = QGuiApplication.clipboard().text()
    namespace: dict = {}
    exec(compile(code, "generated", "exec"), namespace)
    model = namespace["ExplorerNet"]().eval()
    with torch.no_grad():
        out = model(window.batch.tensor.clone())
    assert torch.equal(out, window.result.layers[-1].output)


def test_a_run_superseded_by_a_later_edit_is_dropped(make_window):
    window = make_window()
    seen = []
    window.runner.finished.connect(lambda reply: seen.append(reply.generation))
    for channels in (7, 8, 9, 10):
        window.document.set_arg(0, "out_channels", channels)
    settle(window)
    assert seen == [window.runner.latest_generation]       # only the newest result reached the views
    assert window.result.layers[0].output_shape[1] == 10


def test_the_selected_layer_is_drawn_before_the_layers_after_it_have_run(make_window, monkeypatch):
    """Editing conv1 shows conv1's maps as soon as conv1 has run; the rest of the stack follows."""
    from explorer.core import engine

    window = make_window()
    window.document.select(0)
    settle(window)
    order = []
    slow = engine.StackRunner._run_layer

    def run_layer(self, i, *args, **kwargs):
        if i == 2:
            time.sleep(0.3)                  # a slow layer after the one on screen
        return slow(self, i, *args, **kwargs)

    monkeypatch.setattr(engine.StackRunner, "_run_layer", run_layer)
    window.runner.focus_ready.connect(
        lambda focus: order.append(("focus", focus.generation, focus.layer, window.feature_view.result,
                                    window.feature_view.grid.grid_layout.count)))
    window.runner.finished.connect(lambda reply: order.append(("run", reply.generation, reply.result)))
    window.document.set_arg(0, "out_channels", 7)
    settle(window)
    assert [entry[0] for entry in order] == ["focus", "run"]
    (_, focus_generation, focus_layer, shown, tiles), (_, run_generation, result) = order
    assert focus_generation == run_generation == window.runner.latest_generation
    assert shown is focus_layer and tiles == 7          # the new conv1's 7 maps, drawn before the run ended
    assert result.layers[0] is focus_layer and window.feature_view.result is focus_layer


def test_no_early_drawing_when_the_selected_layer_is_the_last(make_window):
    window = make_window()
    window.document.select(2)
    settle(window)
    early = []
    window.runner.focus_ready.connect(early.append)
    window.document.set_arg(0, "out_channels", 7)
    settle(window)
    assert early == [] and window.feature_view.result.output.shape[1] == 7


def test_pasting_an_image_makes_it_the_input(make_window):
    window = make_window()
    image = QImage(40, 30, QImage.Format_RGB32)
    image.fill(Qt.red)
    QGuiApplication.clipboard().setImage(image)
    window.paste_image()
    settle(window)
    assert window.batch.tensor.shape == (1, 3, 30, 40)
    assert torch.allclose(window.batch.tensor[0, 0], torch.ones(30, 40))


def test_grayscale_and_resize_from_the_input_panel(make_window):
    window = make_window()
    panel = window.input_panel
    panel.channels_combo.setCurrentIndex(1)
    panel.channels_combo.activated.emit(1)
    settle(window)
    # the default conv wants 3 channels: the window says why instead of failing silently
    assert "expects 3 input channels but its input has 1" in window.result.error
    window.document.undo_stack.undo()
    settle(window)
    panel.resize_check.setChecked(True)
    settle(window)
    assert window.batch.tensor.shape == (1, 3, 32, 32)
    assert window.document.stack.input.size == (32, 32)


def test_heavy_runs_stay_off_the_gui_thread(make_window, qtbot, monkeypatch, tensor_work_threads):
    """Edits during heavy runs (a 1024x1024 input): every run and every grid/statistics pass happens
    on a worker thread, and the newest edit's result is what the window ends with. How long the GUI
    thread is held is a benchmark figure (bench_explorer.py's stall row), not a test: timing limits
    failed at random on a loaded machine."""
    import threading

    from explorer.core import engine
    window = make_window()
    window.document.set_input_spec(3, (1024, 1024))     # heavy enough that a run takes a while
    settle(window)
    window.document.select(0)
    threads: list[tuple[str, int]] = []

    def recorded(owner, name):
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            threads.append((name, threading.get_ident()))
            return original(*args, **kwargs)
        monkeypatch.setattr(owner, name, wrapper)
    recorded(engine.StackRunner, "run")
    tensor_work_threads.clear()
    for channels in (6, 12, 16, 24, 32):
        window.document.set_arg(0, "out_channels", channels)
        qtbot.wait(30)
    settle(window)
    assert window.result.layers[0].output_shape[1] == 32
    assert "run" in {name for name, _ in threads}
    assert {"render_view", "layer_stats"} <= {name for name, _ in tensor_work_threads} or \
        {"prepare_display"} <= {name for name, _ in tensor_work_threads}, tensor_work_threads
    on_gui = [name for name, ident in threads + tensor_work_threads if ident == threading.get_ident()]
    assert on_gui == [], on_gui


def test_a_hand_set_kernel_from_the_kernel_tab_drives_the_output(make_window):
    window = make_window()
    window.document.select(0)
    window.layer_tabs.setCurrentWidget(window.kernel_editor)
    window.kernel_editor.findChild(QObject, "kernelAllInputs").setChecked(True)
    window.kernel_editor.apply_preset("Sobel x (vertical edges)")
    settle(window)
    weight = window.document.stack.layers[0].state["weight"]
    sobel = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    assert torch.equal(weight[0, 0], sobel)
    spec = window.document.stack.layers[0]
    bias = build_module(spec, window.document.stack.seed).bias      # the seeded bias is untouched
    expected = torch.nn.functional.conv2d(window.batch.tensor, weight, bias)
    assert torch.allclose(window.result.layers[0].output, expected, atol=1e-6)


def test_dropping_an_image_file_on_the_window_loads_it(make_window, tmp_path):
    from PIL import Image
    from PySide6.QtCore import QMimeData, QPointF, QUrl
    from PySide6.QtGui import QDropEvent

    window = make_window()
    path = tmp_path / "dropped.png"
    Image.new("RGB", (20, 10), (0, 255, 0)).save(path)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    event = QDropEvent(QPointF(50, 50), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    window.dropEvent(event)
    settle(window)
    assert window.source == InputSource.image(path)
    assert window.batch.tensor.shape == (1, 3, 10, 20)
    assert torch.equal(window.batch.tensor[0, 1], torch.ones(10, 20))


def test_export_all_layers_and_the_grid(make_window, tmp_path, monkeypatch):
    window = make_window()
    window.export_all(tmp_path / "all")
    summary = json.loads((tmp_path / "all" / "summary.json").read_text())
    assert [l["name"] for l in summary["layers"]] == ["conv1", "relu1", "pool1"]
    saved = np.load(tmp_path / "all" / "02_pool1.npy")
    assert np.array_equal(saved, window.result.layers[2].output.numpy())

    window.document.select(0)
    png = tmp_path / "grid.png"
    monkeypatch.setattr(dialogs, "save_file", lambda *a: str(png))
    window._export_png("grid")
    from PIL import Image
    assert Image.open(png).size == (window.feature_view.current_grid_png().shape[1],
                                    window.feature_view.current_grid_png().shape[0])


def test_dropping_old_undo_steps_for_memory_is_said_in_the_status_bar(make_window):
    import torch
    window = make_window()
    doc = window.document
    doc.history_limit = 1                   # every whole-tensor step is over it: only the newest stays
    from explorer.core.kernels import layer_parameters
    weight = layer_parameters(doc.stack.layers[0], doc.stack.seed)["weight"]
    for n in range(3):
        doc.edit_state(0, {"weight": torch.full_like(weight, float(n + 1))}, f"Initialise {n}")
    assert doc.undo_stack.count() == 1 and doc.undo_stack.undoText() == "Initialise 2"
    assert window.statusBar().currentMessage() == \
        "Undo history over 256 MB: the oldest 1 step can no longer be undone."


def test_saving_while_training_previews_weights_writes_the_stack_as_edited(make_window, tmp_path):
    """The Train panel shows live weights through a preview; Ctrl+S meanwhile must save the stack's
    own weights, not a moment of training that is not (yet) an undo step."""
    window = make_window()
    real = window.document.stack
    previewed = real.copy()
    weight = build_module(real.layers[0]).weight.detach()
    previewed.layers[0].state = {"weight": torch.full_like(weight, 7.0), "bias": torch.zeros(weight.shape[0])}
    window.document.preview(previewed)
    assert window.document.stack is previewed
    path = tmp_path / "saved.json"
    assert window._write(path)
    saved = load_stack(path)
    assert not saved.layers[0].state or not torch.equal(saved.layers[0].state["weight"], torch.full_like(weight, 7.0))
    window.document.end_preview()
    assert window.document.stack is real


def test_the_shapes_table_is_filled_when_the_window_opens_before_any_edit(make_window):
    """The session state inferred the opening stack's shapes before the window listened, and the
    table stayed empty ("Total parameters: 0") until the first edit."""
    from explorer.core.examples import resolve_stack
    from explorer.core.shapes import infer_shapes, total_params
    window = make_window(stack=resolve_stack("lenet"))
    rows = infer_shapes(window.document.stack, window.state.input_shape)
    table = window.shapes_view.table.model()
    assert table.rowCount() == len(window.document.stack.layers) == len(rows)
    assert [table.index(i, 1).data() for i in range(table.rowCount())] == [r.name for r in rows]
    assert f"{total_params(rows):,}" in window.shapes_view.total_label.text()


def test_panels_repaint_right_after_the_new_maps(make_window, qtbot):
    """The shapes table and the layer rows wait with their repaint while an edit's run is on its way
    (their contents change at once), and repaint as soon as the maps are drawn."""
    window = make_window()
    panels = (window.bottom_dock, window.layer_panel.list)
    window.document.set_arg(0, "out_channels", 9)
    assert window.paint_priority.held and not any(w.updatesEnabled() for w in panels)
    assert window.shapes_view.model.entries[0].cells[4].startswith("[1, 9, ")   # the text is new already
    settle(window)
    qtbot.waitUntil(lambda: all(w.updatesEnabled() for w in panels), timeout=2_000)
    assert not window.paint_priority.held
    window.bottom_tabs.setCurrentWidget(window.model_view)     # the code is not held (nor repainted whole)
    window.document.set_arg(0, "out_channels", 10)
    assert window.bottom_dock.updatesEnabled() and not window.layer_panel.list.updatesEnabled()
    settle(window)


def test_a_weights_only_edit_leaves_the_panels_painting_as_usual(make_window):
    """A kernel cell or the seed changes no shape and no row: holding the panels bought nothing, and
    turning their painting back on repainted the whole table and list after every keystroke."""
    window = make_window()
    panels = (window.bottom_dock, window.layer_panel.list)
    window.document.set_seed(window.document.stack.seed + 1)
    assert not window.paint_priority.held and all(w.updatesEnabled() for w in panels)
    settle(window)
    window.document.set_arg(0, "out_channels", 9)          # the shapes change: held again
    assert window.paint_priority.held
    settle(window)
    window.document.set_input_spec(1, (64, 64))             # so does a new input size
    assert window.paint_priority.held
    settle(window)


def test_panels_never_wait_longer_than_the_limit(qtbot):
    from PySide6.QtWidgets import QLabel

    from explorer.ui.paint_priority import PaintPriority

    label = QLabel("rows")
    qtbot.addWidget(label)
    label.show()
    priority = PaintPriority(lambda: [label], limit_ms=50)
    priority.hold()
    assert not label.updatesEnabled()
    qtbot.waitUntil(lambda: label.updatesEnabled(), timeout=2_000)   # no answer came: released anyway
    assert not priority.held


def test_the_arguments_form_behind_the_kernel_tab_is_current_when_shown(make_window, qtbot):
    """Behind the Kernel tab the form is brought up to date when it comes to the front, not on
    every keystroke; what it shows then is the document's value."""
    window = make_window()
    window.document.select(0)
    window.layer_tabs.setCurrentWidget(window.kernel_editor)
    window.document.set_arg(0, "out_channels", 11)
    window.document.set_arg(0, "kernel_size", 5)
    window.layer_tabs.setCurrentWidget(window.layer_form)
    qtbot.waitUntil(lambda: window.layer_form.isVisible(), timeout=2_000)
    assert window.layer_form.editors["out_channels"].value() == 11
    assert window.layer_form.editors["kernel_size"].value() in (5, (5, 5))


def test_the_bottom_docks_pages_have_no_frame_of_their_own(make_window):
    """The dock frames the Shapes and Model pages. The tab widget's own frame was a gradient over the
    whole dock, and it was painted again with the table after every edit."""
    window = make_window()
    assert window.bottom_tabs.documentMode()
    assert window.bottom_tabs.tabText(0) == "Shapes" and window.bottom_tabs.tabText(1) == "Model"

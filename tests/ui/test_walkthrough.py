"""The model walkthrough window driven as a person would: step through every VGG-16 stage and read
what each step says (checked against torchvision's own forward pass), hover a feature map, open
weights files (a real state_dict, and a pickle that must not run), download with progress and
cancel (no network: the download is replaced), LeNet's named parameters, and 'Send to stack'
reproducing the walkthrough's outputs in the main window."""

from __future__ import annotations

import threading
import time

import pytest
import torch
import torchvision
from PySide6.QtCore import QPointF, QSettings, QStandardPaths, Qt
from PySide6.QtWidgets import QPushButton

from explorer.core import walkthrough as core_walkthrough, weights as core_weights
from explorer.core.input_source import InputSource
from explorer.ui import dialogs
from explorer.ui.walkthrough import window as walkthrough_window
from explorer.ui.app import configure_pyqtgraph
from explorer.ui.main_window import MainWindow
from explorer.ui.walkthrough.window import WalkthroughWindow

NOTICE = "random weights: these maps show no learned features"
VGG16_PARAMETERS = 138_357_544


def open_walkthrough(settings_path, model_name: str, weights: str = "random") -> WalkthroughWindow:
    QStandardPaths.setTestModeEnabled(True)
    configure_pyqtgraph()
    window = WalkthroughWindow(model_name, source=InputSource.sample("astronaut"), device="cpu", weights=weights,
                               settings=QSettings(str(settings_path), QSettings.IniFormat))
    window.resize(1300, 850)
    window.show()
    assert window.wait_until_idle(120_000)
    assert window.walkthrough is not None, window.problem.text()
    return window


@pytest.fixture(scope="module")
def vgg(qapp, tmp_path_factory):
    """One VGG-16 walkthrough (random weights, the astronaut) shared by the tests that only look."""
    window = open_walkthrough(tmp_path_factory.mktemp("vgg") / "settings.ini", "vgg16")
    yield window
    window.close()


@pytest.fixture(scope="module")
def torchvision_vgg(vgg):
    """torchvision's VGG-16 with the walkthrough's weights, run on the walkthrough's input: every
    module's output (cloned: the ReLUs work in place) and the logits."""
    model = torchvision.models.vgg16(weights=None).eval()
    model.load_state_dict(vgg.model.state_dict())
    outputs = {}
    handles = [m.register_forward_hook(lambda mod, args, out, name=name: outputs.__setitem__(name, out.clone()))
               for name, m in model.named_modules() if name]
    with torch.no_grad():
        logits = model(vgg.walkthrough.model_input.to("cpu"))
    for h in handles:
        h.remove()
    return model, outputs, logits


@pytest.fixture
def lenet(qapp, tmp_path):
    window = open_walkthrough(tmp_path / "settings.ini", "lenet")
    yield window
    window.close()


@pytest.fixture(scope="module")
def resnet18_weights(tmp_path_factory):
    """A state_dict of the right shapes for resnet18 (seeded random values), as a user would save one."""
    torch.manual_seed(1)
    model = torchvision.models.resnet18(weights=None)
    path = tmp_path_factory.mktemp("weights") / "my_resnet18.pth"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture
def empty_torch_cache(tmp_path):
    """torch's cache folder (where ImageNet weights are looked for and downloaded to), empty and
    private to the test; set_dir because an earlier set_dir makes TORCH_HOME be ignored."""
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "hub"
    torch.hub.set_dir(old)


@pytest.fixture
def main_window(qtbot, tmp_path, monkeypatch):
    QStandardPaths.setTestModeEnabled(True)
    configure_pyqtgraph()
    monkeypatch.setattr(dialogs, "show_error", lambda *a, **k: pytest.fail(f"unexpected error dialog: {a[2:]}"))
    monkeypatch.setattr(dialogs, "save_changes", lambda *a: "discard")
    window = MainWindow(settings=QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat), device="cpu")
    qtbot.addWidget(window)
    window.resize(1300, 850)
    window.show()
    assert window.runner.wait_until_idle(20_000)
    yield window
    window.document.undo_stack.setClean()
    window.close()


def expected_hwc(shape) -> str:
    return f"{shape[2]}×{shape[3]}×{shape[1]}" if len(shape) == 4 else str(shape[1])


def vgg_receptive_fields(model) -> dict[str, int]:
    """The classic formula over torchvision's modules: rf += (k − 1)·jump, jump ·= stride."""
    rf, jump, fields = 1, 1, {}
    for name, m in model.features.named_children():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.MaxPool2d)):
            k = m.kernel_size[0] if isinstance(m.kernel_size, tuple) else m.kernel_size
            s = m.stride[0] if isinstance(m.stride, tuple) else m.stride
            rf += (k - 1) * jump
            jump *= s
        fields[f"features.{name}"] = rf
    return fields


# ============================================================================ VGG-16, step by step

def test_every_vgg16_stage_shows_torchvision_shapes_maps_and_the_notice(vgg, torchvision_vgg, qtbot):
    model, outputs, logits = torchvision_vgg
    walk = vgg.walkthrough
    fields = vgg_receptive_fields(model)
    vgg.go_to(0)
    kinds = []
    for step in range(vgg.stage_count):
        if step:
            qtbot.mouseClick(vgg.next_button, Qt.LeftButton)
        assert vgg.current == step
        stage = walk.stages[step]
        kinds.append(stage.kind)
        last_module = stage.modules[-1] if stage.modules else None
        if stage.kind == "input":
            expected = walk.model_input
        elif stage.kind == "flatten":
            expected = torch.flatten(outputs["avgpool"], 1)
        elif stage.kind == "softmax":
            expected = torch.softmax(logits, dim=1)
        else:
            expected = outputs[last_module]
        shape = tuple(expected.shape)
        assert vgg.fact_labels["hwc"].text() == expected_hwc(shape), stage.title
        assert vgg.fact_labels["nchw"].text().startswith("[" + ", ".join(map(str, shape)) + "]")
        # The maps (or bars) on screen are torchvision's values for this stage.
        shown = vgg.feature_view.result.output
        assert tuple(shown.shape) == shape
        assert torch.allclose(shown.cpu(), expected, rtol=1e-4, atol=1e-5), stage.title
        assert vgg.notice.isVisible() and vgg.notice.text() == NOTICE
        assert vgg.title_label.text().startswith(f"{step}. ")
        assert vgg.explanation_label.text()
        if last_module in fields:
            assert vgg.fact_labels["field"].text().startswith(f"{fields[last_module]}×{fields[last_module]} pixels")
        if stage.kind == "conv":
            assert vgg.feature_view.result.type == "Conv2d + ReLU"     # the ReLU is part of the step
        if stage.kind == "flatten":
            assert vgg.fact_labels["hwc"].text() == "25088"
    assert kinds.count("conv") == 13 and kinds.count("pool") == 5 and kinds.count("linear") == 3
    assert kinds[0] == "input" and kinds[-1] == "softmax" and "flatten" in kinds
    assert sum(p.numel() for p in model.parameters()) == VGG16_PARAMETERS
    assert vgg.fact_labels["total"].text() == f"{VGG16_PARAMETERS:,} of {VGG16_PARAMETERS:,}"
    assert not vgg.next_button.isEnabled()
    # Random weights: the last step shows the notice and the probabilities, not a top-5 that means nothing.
    assert vgg.view_stack.currentWidget() is vgg.feature_view


def test_conv_steps_show_parameters_running_total_and_multiply_adds(vgg):
    vgg.go_to(1)                                    # the first 3×3 convolution, 3 → 64 channels
    assert vgg.fact_labels["params"].text() == f"{3 * 3 * 3 * 64 + 64:,}"
    assert vgg.fact_labels["total"].text().startswith("1,792 of ")
    assert vgg.fact_labels["macs"].text().startswith(f"{224 * 224 * 64 * 3 * 3 * 3:,}")
    vgg.go_to(2)
    assert vgg.fact_labels["total"].text().startswith(f"{1792 + 36928:,} of ")


def test_the_block_3_note_says_where_the_classic_text_differs(vgg):
    noted = [s.index for s in vgg.walkthrough.stages if s.note]
    assert noted
    vgg.go_to(noted[0])
    assert vgg.note_label.isVisible() and "256" in vgg.note_label.text()
    vgg.go_to(1)
    assert not vgg.note_label.isVisible()


def test_keys_strip_and_combo_jump_between_stages(vgg, qtbot):
    vgg.go_to(0)
    qtbot.keyClick(vgg, Qt.Key_End)
    assert vgg.current == vgg.stage_count - 1
    qtbot.keyClick(vgg, Qt.Key_Home)
    assert vgg.current == 0
    qtbot.keyClick(vgg, Qt.Key_Right)
    qtbot.keyClick(vgg, Qt.Key_Right)
    assert vgg.current == 2
    qtbot.keyClick(vgg, Qt.Key_Left)
    assert vgg.current == 1
    qtbot.mouseClick(vgg.strip, Qt.LeftButton, pos=vgg.strip.block_rect(7).center().toPoint())
    assert vgg.current == 7 and vgg.strip.current == 7
    assert vgg.stage_combo.currentIndex() == 7
    vgg.stage_combo.setCurrentIndex(10)
    assert vgg.current == 10 and vgg.strip.current == 10
    assert vgg.step_label.text() == f"Stage 10 of {vgg.stage_count - 1}"
    vgg.strip.setFocus()
    qtbot.keyClick(vgg.strip, Qt.Key_Right)
    assert vgg.current == 11


def test_the_strip_shows_maps_shrinking_and_channels_growing(vgg):
    stages = vgg.walkthrough.stages
    first_conv = next(s.index for s in stages if s.kind == "conv")
    last_pool = max(s.index for s in stages if s.kind == "pool")
    wide_early, deep_late = vgg.strip.block_rect(first_conv), vgg.strip.block_rect(last_pool)
    assert deep_late.height() < wide_early.height()       # 7×7 drawn lower than 224×224
    assert deep_late.width() > wide_early.width()         # 512 channels drawn wider than 64
    assert vgg.strip.block_rect(0).width() < wide_early.width()


def test_raw_and_normalised_inputs_are_shown(vgg):
    assert vgg.raw_view.image_shape == (224, 224, 3)
    assert vgg.normalized_view.image_shape == (224, 224, 3)
    assert "224×224×3" in vgg.raw_view.title.text()
    assert "mean" in vgg.normalized_view.caption.text()


def _scene_point(item, x: float, y: float):
    return item.mapToScene(QPointF(x, y))


def test_hovering_a_feature_map_pixel_outlines_its_receptive_field_on_the_input(vgg, torchvision_vgg, qapp):
    fields = vgg_receptive_fields(torchvision_vgg[0])
    stage = next(s for s in vgg.walkthrough.stages if s.kind == "conv" and s.output_shape[2] == 112
                 and fields[s.modules[-1]] == 14)
    vgg.go_to(stage.index)
    assert vgg.wait_until_idle()                          # the maps are prepared in the background
    qapp.processEvents()                                  # the views lay themselves out
    # The big channel view: output pixel (y=50, x=60).
    channel = vgg.feature_view.channel_view
    channel.graphics.scene().sigMouseMoved.emit(_scene_point(channel.image_item, 60.5, 50.5))
    region = vgg.raw_view.region
    assert region == stage.input_region(50, 60)
    y0, x0, y1, x1 = region
    assert (y1 - y0, x1 - x0) == (14, 14)                 # an inner pixel sees the whole field
    assert y0 <= 50 * 2 < y1 and x0 <= 60 * 2 < x1        # around its own place (stride 2 so far)
    assert vgg.normalized_view.region == region
    assert "y=50, x=60" in vgg.region_label.text()
    # The grid: the same pixel in tile 3.
    grid = vgg.feature_view.grid
    tx, ty = grid.grid_layout.tile_origin(3)
    grid.scene().sigMouseMoved.emit(_scene_point(grid.image_item, tx + 60.5, ty + 50.5))
    assert vgg.raw_view.region == region
    # A corner pixel: the field is clipped by the image border.
    channel.graphics.scene().sigMouseMoved.emit(_scene_point(channel.image_item, 0.5, 0.5))
    y0, x0, y1, x1 = vgg.raw_view.region
    assert (y0, x0) == (0, 0) and y1 - y0 < 14


def test_the_capture_runs_off_the_gui_thread_with_a_busy_indication(qapp, qtbot, tmp_path, monkeypatch):
    threads = []
    release = threading.Event()
    real_capture = core_walkthrough.capture

    def recording_capture(*args, **kwargs):
        threads.append(threading.current_thread())
        assert release.wait(30)                   # the GUI stays live meanwhile
        return real_capture(*args, **kwargs)

    monkeypatch.setattr(core_walkthrough, "capture", recording_capture)
    configure_pyqtgraph()
    window = WalkthroughWindow("lenet", source=InputSource.sample("cat"), device="cpu", weights="random",
                               settings=QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat))
    try:
        window.show()
        assert window.busy and not window.busy_bar.isHidden()
        assert "Running LeNet" in window.busy_label.text()
        assert not window.next_button.isEnabled()
        # While the forward pass runs, the strip already shows the model's plan (shapes only).
        qtbot.waitUntil(lambda: len(window.strip.blocks) == 10, timeout=10_000)
        assert window.stage_combo.count() == 10 and "9 stages" in window.waiting.text()
        assert window.busy and window.walkthrough is None
        release.set()
        assert window.wait_until_idle(60_000)
        assert threads and threads[0] is not threading.main_thread()
        assert window.busy_bar.isHidden() and window.next_button.isEnabled()
    finally:
        window.close()


# ============================================================================ weights

def test_opening_a_weights_file_shows_the_top5_classes(qapp, tmp_path, monkeypatch, resnet18_weights):
    window = open_walkthrough(tmp_path / "settings.ini", "resnet18")
    try:
        assert window.walkthrough.random_weights and window.notice.isVisible()
        monkeypatch.setattr(dialogs, "open_file", lambda *a: str(resnet18_weights))
        window.open_weights_action.trigger()
        assert window.wait_until_idle(120_000)
        assert not window.problem.isVisible(), window.problem.text()
        walk = window.walkthrough
        assert not walk.random_weights
        window.go_to(window.stage_count - 1)
        assert window.view_stack.currentWidget() is window.top_classes
        assert not window.notice.isVisible()
        # The same five classes torchvision's resnet18 gives with these weights on this input.
        reference = torchvision.models.resnet18(weights=None).eval()
        reference.load_state_dict(torch.load(resnet18_weights, weights_only=True))
        with torch.no_grad():
            probabilities = torch.softmax(reference(walk.model_input.cpu()), dim=1)[0]
        top = torch.topk(probabilities, 5)
        names = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"]
        expected = [names[i] for i in top.indices.tolist()]
        assert window.top_classes.labels() == expected
        for name, p in zip(expected, top.values.tolist()):
            assert f"{name}" in window.top_classes.list_label.text()
            assert f"{p * 100:6.2f}%" in window.top_classes.list_label.text()
        assert "my_resnet18.pth" in window.windowTitle()
        # ResNet blocks are one opaque step each, with their input and output shapes.
        block = next(s for s in walk.stages if s.kind == "opaque" and "BasicBlock" in s.title)
        window.go_to(block.index)
        assert "BasicBlock" in window.title_label.text()
        assert window.fact_labels["nchw"].text().startswith("[1, ")
    finally:
        window.close()


class _RunsCodeWhenLoaded:
    """Unpickling this calls open(marker, 'w'): a stand-in for a file that would run code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickled_object_file_is_refused_without_running_it(lenet, tmp_path, monkeypatch):
    marker = tmp_path / "code_ran.txt"
    evil = tmp_path / "weights.pth"
    torch.save({"conv1.weight": _RunsCodeWhenLoaded(marker)}, evil)
    before = lenet.walkthrough
    monkeypatch.setattr(dialogs, "open_file", lambda *a: str(evil))
    lenet.open_weights_action.trigger()
    assert lenet.wait_until_idle(60_000)
    assert not marker.exists()
    assert lenet.problem.isVisible()
    text = lenet.problem.text()
    assert "weights.pth" in text and "pickled" in text and "Traceback" not in text and "\n" not in text
    assert lenet.walkthrough is before and lenet.notice.isVisible()   # still the random walkthrough
    lenet.go_to(2)                                                     # and still usable
    assert lenet.current == 2


def test_a_weights_file_of_the_wrong_model_is_refused_in_one_sentence(lenet, tmp_path, monkeypatch,
                                                                        resnet18_weights):
    monkeypatch.setattr(dialogs, "open_file", lambda *a: str(resnet18_weights))
    lenet.open_weights_action.trigger()
    assert lenet.wait_until_idle(60_000)
    assert lenet.problem.isVisible() and "do not fit" in lenet.problem.text()
    assert lenet.walkthrough.random_weights


def test_download_shows_size_progress_and_loads_the_weights(qapp, tmp_path, monkeypatch, resnet18_weights,
                                                            empty_torch_cache):
    seen = []

    def fake_download(name, progress, cancelled):
        assert name == "resnet18"
        target = core_weights.imagenet_path(name)
        assert target.is_relative_to(empty_torch_cache)
        total = resnet18_weights.stat().st_size
        for done in range(0, total, total // 4):
            assert not cancelled()
            progress(done, total)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(resnet18_weights.read_bytes())
        progress(total, total)
        return target

    monkeypatch.setattr(core_weights, "download_imagenet", fake_download)
    window = open_walkthrough(tmp_path / "settings.ini", "resnet18", weights=None)   # nothing cached: random
    try:
        assert window.walkthrough.random_weights
        assert "MB)…" in window.download_action.text() and window.download_action.isEnabled()
        window.jobs.progressed.connect(lambda done, total: seen.append((done, total, threading.current_thread())))
        window.download_action.trigger()
        dialog = window._progress_dialog
        assert dialog is not None and "MB" in dialog.labelText()
        assert window.wait_until_idle(120_000)
        # (QProgressDialog.setValue processes events when modal, so reports may reach this observer nested.)
        total = resnet18_weights.stat().st_size
        assert {done for done, _, _ in seen} == {0, total // 4, 2 * (total // 4), 3 * (total // 4),
                                                  4 * (total // 4), total}
        assert all(thread is threading.main_thread() for _, _, thread in seen)
        assert window._progress_dialog is None                        # closed when done
        assert window.walkthrough.weights == "imagenet" and not window.walkthrough.random_weights
        assert not window.problem.isVisible(), window.problem.text()
        window.go_to(window.stage_count - 1)
        assert len(window.top_classes.labels()) == 5
    finally:
        window.close()


def test_a_cancelled_download_leaves_the_walkthrough_as_it_was(qapp, tmp_path, monkeypatch, qtbot, empty_torch_cache):
    started = threading.Event()

    def slow_download(name, progress, cancelled):
        for i in range(2000):
            if cancelled():
                raise core_weights.DownloadCancelled("The download was cancelled.")
            progress(i, 2000)
            started.set()
            time.sleep(0.005)
        raise AssertionError("ran to the end")

    monkeypatch.setattr(core_weights, "download_imagenet", slow_download)
    window = open_walkthrough(tmp_path / "settings.ini", "resnet18")
    try:
        before = window.walkthrough
        window.download_action.trigger()
        qtbot.waitUntil(started.is_set, timeout=10_000)
        window._progress_dialog.findChild(QPushButton).click()          # the dialog's Cancel button
        assert window.wait_until_idle(5_000)
        assert window.problem.isVisible() and window.problem.text() == "Download cancelled; nothing was saved."
        assert window.walkthrough is before and window._progress_dialog is None
    finally:
        window.close()


def test_lenet_has_no_imagenet_download(lenet):
    assert not lenet.download_action.isEnabled()


# ============================================================================ LeNet

def test_lenet_lists_its_named_parameters_as_the_tutorial_prints_them(lenet):
    text = lenet.parameters_text.toPlainText()
    expected = ["conv1.weight torch.Size([6, 1, 5, 5])", "conv1.bias torch.Size([6])",
                "conv2.weight torch.Size([16, 6, 5, 5])", "conv2.bias torch.Size([16])",
                "fc1.weight torch.Size([120, 400])", "fc1.bias torch.Size([120])",
                "fc2.weight torch.Size([84, 120])", "fc2.bias torch.Size([84])",
                "fc3.weight torch.Size([10, 84])", "fc3.bias torch.Size([10])"]
    assert text.splitlines()[:10] == expected
    assert "61,706 parameters" in text
    lenet.go_to(0)
    assert lenet.fact_labels["hwc"].text() == "32×32×1"
    assert lenet.raw_view.image_shape == (32, 32)
    assert lenet.normalized_view.title.text().startswith("Normalised: not used")
    lenet.go_to(lenet.stage_count - 1)
    assert lenet.notice.isVisible()


# ============================================================================ with the main window

def test_the_models_menu_opens_walkthroughs_on_the_current_input(main_window, monkeypatch, resnet18_weights):
    titles = [a.text() for a in main_window.walkthroughs.menu.actions()]
    assert "&VGG-16 walkthrough…" in titles and "&LeNet walkthrough…" in titles and "&Open model…" in titles
    monkeypatch.setattr(walkthrough_window, "ask_model", lambda parent, folder: ("resnet18", str(resnet18_weights)))
    window = main_window.walkthroughs.open_model_dialog()
    try:
        assert window.wait_until_idle(120_000)
        assert window.model_name == "resnet18" and window.source == main_window.source
        assert window.walkthrough.weights == str(resnet18_weights)
    finally:
        window.close()


def test_send_to_stack_reproduces_the_walkthrough_outputs_in_the_main_window(main_window, monkeypatch):
    before = [layer.type for layer in main_window.document.stack.layers]
    window = main_window.walkthroughs.open("vgg16", "random")
    try:
        assert window.wait_until_idle(120_000)
        window.go_to(4)                                    # conv, conv, pool, conv
        asked = {}

        def answer(parent, titles, default):
            asked["default"] = default
            return default

        monkeypatch.setattr(walkthrough_window, "ask_stage_count", answer)
        window.send_button.click()
        assert asked["default"] == 4                       # up to the step on screen
        assert main_window.runner.wait_until_idle(60_000)
        stack = main_window.document.stack
        assert [layer.type for layer in stack.layers] == ["BatchNorm2d", "Conv2d", "ReLU", "Conv2d", "ReLU",
                                                          "MaxPool2d", "Conv2d", "ReLU"]
        result = main_window.result
        assert result.ok
        assert tuple(main_window.batch.tensor.shape) == (1, 3, 224, 224)
        assert torch.equal(main_window.batch.tensor, window.walkthrough.raw_input)
        # The main window's run gives the walkthrough's maps, stage by stage.
        assert torch.allclose(result.layers[0].output, window.walkthrough.outputs[0], rtol=1e-5, atol=1e-5)
        assert torch.allclose(result.layers[-1].output, window.walkthrough.outputs[4], rtol=1e-4, atol=1e-4)
        assert torch.allclose(result.layers[5].output, window.walkthrough.outputs[3], rtol=1e-4, atol=1e-4)
        # One undoable step.
        main_window.document.undo_stack.undo()
        assert [layer.type for layer in main_window.document.stack.layers] == before
    finally:
        window.close()


def test_a_walkthrough_follows_the_main_window_input_on_request(main_window):
    window = main_window.walkthroughs.open("lenet", "random")
    try:
        assert window.wait_until_idle(60_000)
        assert window.source == main_window.source == InputSource.sample("astronaut")
        before = window.walkthrough.raw_input.clone()
        window.go_to(3)
        main_window.set_source(InputSource.sample("cat"))
        assert main_window.runner.wait_until_idle(20_000)
        window.rerun_action.trigger()
        assert window.wait_until_idle(60_000)
        assert window.source == InputSource.sample("cat")
        assert not torch.equal(window.walkthrough.raw_input, before)
        assert window.current == 3                         # still on the same step
        assert window.walkthrough.random_weights
    finally:
        window.close()


def test_closing_a_walkthrough_lets_go_of_its_model_and_maps(main_window, qapp):
    import gc
    import weakref
    window = main_window.walkthroughs.open("lenet", "random")
    assert window.wait_until_idle(60_000)
    model, output = weakref.ref(window.model), weakref.ref(window.walkthrough.outputs[1])
    window.close()
    assert main_window.walkthroughs.windows == []

    def gone() -> bool:       # the reaper thread drops them once nobody else holds them (HOLD_S)
        qapp.processEvents()
        gc.collect()
        return model() is None and output() is None

    deadline = time.monotonic() + 10
    while not gone() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert model() is None and output() is None


def test_the_send_to_stack_question_is_a_spin_box_starting_at_the_current_step(qapp):
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QDialog, QSpinBox
    titles = [f"{i}. stage {i}" for i in range(6)]
    seen = {}

    def answer():
        dialog = next(w for w in QApplication.topLevelWidgets() if isinstance(w, QDialog) and w.isVisible())
        spin = dialog.findChild(QSpinBox)
        seen["default"], seen["range"] = spin.value(), (spin.minimum(), spin.maximum())
        spin.setValue(2)
        dialog.accept()

    QTimer.singleShot(50, answer)
    assert walkthrough_window.ask_stage_count(None, titles, 4) == 2
    assert seen == {"default": 4, "range": (1, 5)}


def test_open_model_asks_for_an_architecture_and_an_optional_weights_file(qapp, monkeypatch):
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QComboBox, QDialog
    from explorer.core.model_zoo import MODEL_NAMES
    seen = {}

    def answer():
        dialog = next(w for w in QApplication.topLevelWidgets() if isinstance(w, QDialog) and w.isVisible())
        combo = dialog.findChild(QComboBox)
        seen["names"] = [combo.itemData(i) for i in range(combo.count())]
        seen["default"] = combo.currentData()
        combo.setCurrentIndex(combo.findData("resnet18"))
        dialog.accept()

    QTimer.singleShot(50, answer)
    assert walkthrough_window.ask_model(None, "/tmp") == ("resnet18", None)
    assert seen["default"] == "vgg16"
    assert set(seen["names"]) == set(MODEL_NAMES) >= {"alexnet", "vgg11", "vgg13", "vgg16", "vgg19", "resnet18",
                                                     "lenet"}


def test_an_input_that_cannot_be_read_is_one_sentence_in_the_window(qapp, tmp_path):
    configure_pyqtgraph()
    missing = tmp_path / "gone.png"
    window = WalkthroughWindow("lenet", source=InputSource.image(missing), device="cpu", weights="random",
                               settings=QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat))
    try:
        window.show()
        assert window.wait_until_idle(60_000)
        assert window.walkthrough is None
        assert window.problem.isVisible() and "gone.png" in window.problem.text()
        assert "Traceback" not in window.problem.text()
        assert window.view_stack.currentWidget() is window.waiting
        assert not window.next_button.isEnabled() and not window.send_button.isEnabled()
    finally:
        window.close()


def test_hover_on_a_map_drawn_shrunk_outlines_the_right_region(vgg, qapp):
    """Maps that tile to more pixels than the grid draws are shown shrunk (here: 224x224x64 under a
    lowered budget); hovering must still name the map pixel under the mouse, not the shrunk one."""
    vgg.feature_view.state.update_view(max_pixels=1 << 21)
    stage = next(s for s in vgg.walkthrough.stages if s.kind == "conv" and s.output_shape[1:] == (64, 224, 224))
    vgg.go_to(stage.index)
    assert vgg.wait_until_idle()
    qapp.processEvents()
    grid = vgg.feature_view.grid
    layout = grid.grid_layout
    assert layout.tile_h < 224                               # drawn shrunk
    scale = layout.tile_h / 224
    tx, ty = layout.tile_origin(2)
    grid.scene().sigMouseMoved.emit(_scene_point(grid.image_item, tx + 150.5 * scale, ty + 100.5 * scale))
    assert vgg.raw_view.region == stage.input_region(100, 150)
    channel = vgg.feature_view.channel_view
    channel.plot.vb.prepareForPaint()      # pyqtgraph applies a new range lazily; a real mouse comes after a paint
    point = channel.plot.vb.mapViewToScene(QPointF(150.5, 100.5))
    channel.graphics.scene().sigMouseMoved.emit(point)
    assert vgg.raw_view.region == stage.input_region(100, 150)


# ============================================================================ closing mid-job

def test_closing_mid_capture_returns_at_once_and_stops_the_forward_pass(qapp, qtbot, tmp_path, monkeypatch):
    """Each LeNet module is made to take 0.2 s (a big model on a slow CPU); closing during the pass
    must neither wait for the rest of it (it did, for up to 30 s) nor let it run to the end."""
    from explorer.core import model_zoo
    ran, started = [], threading.Event()
    real_build = model_zoo.build_model

    def slow_build(name):
        net = real_build(name)
        for module_name, module in net.named_modules():
            if module_name:
                def slow(_module, _args, module_name=module_name):
                    ran.append(module_name)
                    started.set()
                    time.sleep(0.2)
                module.register_forward_pre_hook(slow)
        return net

    monkeypatch.setattr(walkthrough_window.model_zoo, "build_model", slow_build)
    configure_pyqtgraph()
    window = WalkthroughWindow("lenet", source=InputSource.sample("cat"), device="cpu", weights="random",
                               settings=QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat))
    window.show()
    assert started.wait(30)
    jobs = window.jobs
    t0 = time.perf_counter()
    window.close()
    closed_in = time.perf_counter() - t0
    assert closed_in < 0.5 and not window.isVisible()
    qtbot.waitUntil(lambda: not jobs.busy, timeout=5_000)
    stopped_in = time.perf_counter() - t0
    assert stopped_in < 0.5 + 0.2, stopped_in          # at the next module
    assert len(ran) < 4, ran                             # LeNet has 10 modules: it did not run on


def test_closing_mid_download_returns_at_once_even_if_the_network_stalls(qapp, qtbot, tmp_path, monkeypatch,
                                                                          empty_torch_cache):
    """A read stuck in the network (the 30 s socket timeout) cannot look at the cancel flag: the
    window goes at once anyway, and the job's late answer is dropped."""
    stalled, finished = threading.Event(), threading.Event()

    def stalled_download(name, progress, cancelled):
        progress(1, 100)
        stalled.set()
        time.sleep(1.5)                          # a read that does not come back for a while
        finished.set()
        if cancelled():
            raise core_weights.DownloadCancelled("The download was cancelled.")
        raise AssertionError("not cancelled")

    monkeypatch.setattr(core_weights, "download_imagenet", stalled_download)
    window = open_walkthrough(tmp_path / "settings.ini", "resnet18")
    window.download_action.trigger()
    assert stalled.wait(10)
    jobs = window.jobs
    t0 = time.perf_counter()
    window.close()
    assert time.perf_counter() - t0 < 0.5 and not window.isVisible()
    qtbot.waitUntil(lambda: not jobs.busy, timeout=10_000)     # the late answer arrives and is dropped
    assert finished.is_set() and window._progress_dialog is None


def test_send_to_stack_refuses_a_count_past_the_end_and_stays_open(qapp, qtbot):
    """'99' with 5 stages became 9, then the old count, and Enter closed the dialog with it."""
    from PySide6.QtCore import Qt, QTimer
    from PySide6.QtWidgets import QApplication, QDialog, QSpinBox
    titles = [f"{i}. stage {i}" for i in range(6)]
    seen = {}

    def answer():
        dialog = next(w for w in QApplication.topLevelWidgets() if isinstance(w, QDialog) and w.isVisible())
        spin = dialog.findChild(QSpinBox)
        spin.setFocus()
        spin.selectAll()
        qtbot.keyClicks(spin.lineEdit(), "99")
        qtbot.keyClick(spin.lineEdit(), Qt.Key.Key_Return)
        seen["open"], seen["problem"], seen["value"] = dialog.isVisible(), spin.problem, spin.value()
        spin.selectAll()
        qtbot.keyClicks(spin.lineEdit(), "3")
        qtbot.keyClick(spin.lineEdit(), Qt.Key.Key_Return)

    QTimer.singleShot(50, answer)
    assert walkthrough_window.ask_stage_count(None, titles, 4) == 3
    assert seen == {"open": True, "problem": "Stages (N) can be at most 5, not 99; it stays 4.", "value": 4}


def test_no_key_is_bound_twice_in_a_walkthrough_window(lenet):
    from PySide6.QtGui import QAction, QKeySequence, QShortcut
    keys = {}
    for action in lenet.findChildren(QAction):
        for key in action.shortcuts():
            name = (key.toString(QKeySequence.SequenceFormat.PortableText), action.shortcutContext())
            keys.setdefault(name, []).append(action.text())
    for shortcut in lenet.findChildren(QShortcut):
        for key in shortcut.keys():
            name = (key.toString(QKeySequence.SequenceFormat.PortableText), shortcut.context())
            keys.setdefault(name, []).append(shortcut.objectName())
    assert any(k == "Right" for k, _ in keys)
    assert {k: v for k, v in keys.items() if len(v) > 1} == {}

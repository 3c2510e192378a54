"""The Insight window: top-patch rows, live feature visualisation with Stop, attribution over the
input with opacity and class picker, the deconvnet view; all computed in its worker."""

from __future__ import annotations

import pytest
import torch

from explorer.core.examples import load_example
from explorer.core.input_source import InputSource
from explorer.core.inputs import load_sample


@pytest.fixture
def make_insight(qtbot):
    from explorer.ui.insight.window import InsightWindow
    windows = []

    def make(example="lenet", layer=None, image=None, **kwargs):
        w = InsightWindow(load_example(example), layer, image, example, "cpu", **kwargs)
        qtbot.addWidget(w)
        w.show()
        windows.append(w)
        return w

    yield make
    for w in windows:
        w.close()


def _top_patches_of(make_insight, stack, layer: str):
    """An Insight window on ``stack`` (opened as the default example), its top 2 patches of
    ``layer`` over the samples run to the end."""
    w = make_insight("default", layer)
    w.set_stack(stack, layer)
    w.data_combo.setCurrentIndex(0)
    w.k_spin.setValue(2)
    w.run_top_patches()
    assert w.worker.wait_until_idle(60_000)
    return w


def _labels(window):
    from explorer.ui.insight.window import PatchLabel
    return window.rows_widget.findChildren(PatchLabel)


def test_top_patch_rows_hover_and_click(make_insight, cifar_dir):
    opened = []
    w = make_insight("lenet", "conv2", cifar_path=str(cifar_dir), open_input=opened.append)
    w.data_combo.setCurrentIndex(1)
    w.k_spin.setValue(4)
    w.run_top_patches()
    assert w.worker.wait_until_idle(60_000)
    rows = w.rows
    assert rows is not None and rows.result.images == 20
    labels = _labels(w)
    assert len(labels) == 16 * 4
    maxima = [c.maximum for c in rows.result.by_maximum() if not c.dead]
    assert maxima == sorted(maxima, reverse=True)
    first = next(lbl for lbl in labels if lbl.rank == 0)
    patch = w._patch(first.channel, 0)
    assert f"image {patch.image}" in first.toolTip() and f"activation {patch.activation:.4g}" in first.toolTip()
    assert first.pixmap().width() == 56
    first.hovered.emit(first.channel, 0)
    assert not w.place_label.pixmap().isNull()
    first.clicked.emit(first.channel, 0)
    assert opened == [InputSource.cifar(str(cifar_dir), "test", 1, patch.image)]
    w.run_top_patches()                      # the same layer and data again: from the cache
    assert w.worker.wait_until_idle(60_000)
    assert "from the cache" in w.status.text()


def test_dead_channels_are_marked(make_insight):
    from PySide6.QtWidgets import QLabel
    stack = load_example("default")
    stack.layers[0].state = {"weight": torch.zeros(6, 3, 3, 3), "bias": torch.tensor([1.0, -1, -1, -1, -1, -1])}
    w = _top_patches_of(make_insight, stack, "relu1")
    assert w.rows.result.dead_channels() == [1, 2, 3, 4, 5]
    heads = [lbl.text() for lbl in w.rows_widget.findChildren(QLabel) if lbl.text().startswith("<b>ch")]
    assert heads[0].startswith("<b>ch 0</b>") and sum("dead" in h for h in heads) == 5
    assert "5 dead" in w.status.text()


def test_cancel_stops_the_run(make_insight, qtbot):
    w = make_insight("vgg16", "conv1_1")
    w.data_combo.setCurrentIndex(0)
    w.run_top_patches()
    w.cancel()
    assert not w.worker.busy and w.status.text() == "Cancelled."
    assert w.rows is None


def test_feature_visualisation_previews_and_stop(make_insight, qtbot):
    w = make_insight("lenet", "conv1")
    w.channels_edit.setText("0-2")
    w.steps_spin.setValue(32)
    previews = []
    w.worker.progress.connect(lambda g, p: previews.append(p[0]))
    w.run_visualize()
    assert w.worker.wait_until_idle(60_000)
    assert previews[:2] == [16, 32]
    assert len(w.vis_labels) == 3 and all(not pic.pixmap().isNull() for pic, _ in w.vis_labels)
    assert "→" in w.vis_labels[0][1].text() and w.status.text().startswith("Done after 32 steps")
    # Stop keeps the images reached so far
    w.steps_spin.setValue(4000)
    w.run_visualize()
    qtbot.waitUntil(lambda: len(previews) >= 3, timeout=60_000)
    w.stop_button.click()
    assert w.worker.wait_until_idle(60_000)
    assert w.status.text().startswith("Stopped after") and not w.vis_labels[2][0].pixmap().isNull()


def test_attribution_map_opacity_and_classes(make_insight):
    image = load_sample("cat").tensor
    w = make_insight("lenet", "conv2", image)
    w.method_combo.setCurrentText("grad-cam")
    w.compare_check.setChecked(True)
    w.run_attribution()
    assert w.worker.wait_until_idle(60_000)
    view = w.attribution
    assert len(view.results) == 2 and view.results[0].layer == "conv2"
    assert view.results[0].map.shape == (32, 32)
    assert w.class_combo.count() == 6 and "%" in w.class_combo.itemText(1)
    first = w.attr_labels[0].pixmap().toImage()
    w.opacity.setValue(0)
    plain = w.attr_labels[0].pixmap().toImage()
    assert first != plain and not w.attr_labels[1].pixmap().isNull()
    w.class_combo.setCurrentIndex(3)
    w.compare_check.setChecked(False)
    w.run_attribution()
    assert w.worker.wait_until_idle(60_000)
    assert w.attribution.results[0].target == w.class_combo.currentData()
    assert w.attr_labels[1].pixmap().isNull()


def test_attribution_on_a_stack_without_class_scores_says_why(make_insight):
    w = make_insight("default", "conv1", load_sample("cat").tensor)
    w.run_attribution()
    assert w.worker.wait_until_idle(60_000)
    assert "ends in class scores" in w.status.text()


def test_deconvnet_view(make_insight):
    w = make_insight("x_vs_o", "best_match", load_sample("x").tensor)
    w.deconv_channel.setValue(0)
    w.run_deconvnet()
    assert w.worker.wait_until_idle(60_000)
    assert not w.deconv_recon.pixmap().isNull() and not w.deconv_patch.pixmap().isNull()
    assert "1 pooling switch" in w.status.text()


def test_the_main_window_opens_insight_on_the_selected_layer(make_window):
    window = make_window()
    window.document.select(0)
    insight = window.insight.open()
    assert insight.layer == window.document.stack.layers[0].name
    assert insight.image is not None and insight.image.shape[0] == 1
    assert window.insight.open() is insight
    window.document.select(2)                                  # the window follows the selection ...
    assert insight.layer == window.document.stack.layers[2].name
    ones = torch.ones(6, 3, 3, 3)
    window.document.set_state(0, "weight", ones)                # a weight edit reaches its snapshot
    assert torch.equal(insight.stack.layers[0].state["weight"], ones)
    window.set_source(InputSource.sample("x"))                 # ... and the input once it has run
    assert window.runner.wait_until_idle(20_000)
    assert insight.image is not None and torch.equal(insight.image, window.batch.tensor[:1])


def test_a_walkthrough_model_opens_insight_on_its_stage(qtbot, tmp_path):
    from PySide6.QtCore import QSettings

    from explorer.ui.walkthrough.window import WalkthroughWindow
    walk = WalkthroughWindow("lenet", source=InputSource.sample("cat"), device="cpu",
                             settings=QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat))
    walk.show()      # not given to qtbot: the window deletes itself when closed
    assert walk.wait_until_idle(120_000) and walk.walkthrough is not None
    walk.go_to(3)                                   # conv2 (with its ReLU)
    insight = walk.open_insight()
    assert insight.layer == "conv2" and insight.layer_combo.count() == 8
    insight.method_combo.setCurrentText("grad-cam")
    insight.run_attribution()
    assert insight.worker.wait_until_idle(60_000)
    result = insight.attribution.results[0]
    assert result.layer == "conv2" and result.map.shape == (32, 32)
    assert "random weights" in insight.notice_label.text()
    # the input is the walkthrough's own 32×32 gray picture, not resized again
    assert torch.equal(result.raw, walk.walkthrough.raw_input[0].cpu())
    walk.close()
    assert not insight.isVisible()


def test_a_layer_that_refuses_the_data_is_said_in_the_window_not_logged_as_a_crash(make_insight, caplog):
    """Found by random input: top patches through a pool bigger than the pictures that reach it
    logged a traceback and said torch's bare message; a BatchNorm layer made every run fail."""
    import logging

    from explorer.core.layers import LayerSpec
    stack = load_example("default")
    stack.layers.insert(1, LayerSpec("BatchNorm2d", "bn1", {"num_features": 6}))
    w = _top_patches_of(make_insight, stack, "relu1")
    assert w.rows is not None and len(w.rows.result.channels) == 6      # with BatchNorm in the stack
    too_big = stack.copy()
    too_big.layers[-1].args["kernel_size"] = 4096
    w.set_stack(too_big, "pool1")
    with caplog.at_level(logging.ERROR):
        w.run_top_patches()
        assert w.worker.wait_until_idle(60_000)
    assert "pool1" in w.status.text() and "empty" in w.status.text()
    assert not w.status.text().startswith("Unexpected")        # an expected refusal, said as one
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

"""FeatureView driven as a user would: real layer outputs from the engine, real
clicks and key presses on the offscreen widget."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from PySide6 import QtCore, QtGui, QtWidgets
from PySide6.QtCore import Qt

from explorer.core.colormaps import COLORMAPS, DIVERGING
from explorer.core.engine import LayerResult, StackRunner
from explorer.core.render import DISPLAY_MAX_PIXELS, render_batch_channel, render_channel, render_grid, render_rgb
from explorer.core.stack import stack_from_dict
from explorer.ui.feature_view import NO_LAYER_MESSAGE, FeatureView
from explorer.ui.vector_view import MAX_BARS

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
N, H, W = 3, 24, 20


def smooth_images(n: int = N, h: int = H, w: int = W, seed: int = 0) -> torch.Tensor:
    """Natural-ish pictures: coarse random colour blobs, smoothly upsampled."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 5, 4, generator=g)
    return F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)


@pytest.fixture(scope="module")
def run():
    stack = stack_from_dict({"layers": [
        {"type": "Conv2d", "name": "conv1",
         "args": {"in_channels": 3, "out_channels": 6, "kernel_size": 3, "padding": 1}},
        {"type": "ReLU", "name": "relu1"},
        {"type": "Flatten", "name": "flat"},
        {"type": "Linear", "name": "fc", "args": {"in_features": 6 * H * W, "out_features": 10}},
    ]})
    result = StackRunner("cpu").run(stack, smooth_images())
    assert result.ok, result.error
    return {layer.name: layer for layer in result.layers}


def drawn_when_ready(v: FeatureView) -> FeatureView:
    """The view counts and renders in the background; these tests look at what it draws, so each
    call that can change the picture waits until the picture is there."""
    for name in ("set_layer", "set_mode", "set_normalization", "set_batch_index", "set_selected_channel"):
        method = getattr(v, name)

        def waiting(*args, _method=method, **kwargs):
            _method(*args, **kwargs)
            assert v.wait_until_ready(30_000)
        setattr(v, name, waiting)
    return v


@pytest.fixture
def view(qtbot):
    v = FeatureView()
    qtbot.addWidget(v)
    v.resize(1000, 700)
    v.show()
    qtbot.waitExposed(v)
    return drawn_when_ready(v)


def settle(qtbot):
    QtWidgets.QApplication.processEvents()
    qtbot.wait(10)


def click_tile(qtbot, view: FeatureView, index: int) -> None:
    settle(qtbot)
    point = view.grid.widget_point_of_tile(index)
    assert view.grid.viewport().rect().contains(point)
    qtbot.mouseClick(view.grid.viewport(), Qt.MouseButton.LeftButton, pos=point)
    settle(qtbot)


# --------------------------------------------------------------------------- grid


def test_toolbar_combos_have_object_names(view):
    for name in ("modeCombo", "normCombo", "cmapCombo", "channelSpin"):
        assert view.findChild(QtWidgets.QWidget, name) is not None, name
    cmap = view.findChild(QtWidgets.QComboBox, "cmapCombo")
    names = [cmap.itemData(i) for i in range(cmap.count())]
    assert "gray" in names and DIVERGING in names


def test_grid_shows_render_grid_of_selected_item(view, run, qtbot):
    conv = run["conv1"]
    view.set_layer(conv)
    assert view.message is None
    item = view.grid.image_item
    expected = render_grid(conv.output[0], "channel").image
    assert item.image.dtype == np.uint8 and item.image.ndim == 2
    assert item.image.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(item.image, expected)
    assert tuple(item.levels) == (0, 255)
    np.testing.assert_array_equal(item.lut, COLORMAPS["gray"])
    assert view.grid.grid_layout.count == 6

    view.set_batch_index(2)
    assert view.grid.image_item is item            # reused, not rebuilt
    np.testing.assert_array_equal(item.image, render_grid(conv.output[2], "channel").image)
    view.set_batch_index(99)                          # clamps to the last item
    assert view.batch_index == N - 1


def test_clicking_a_tile_selects_that_channel(view, run, qtbot):
    conv = run["conv1"]
    view.set_layer(conv)
    with qtbot.waitSignal(view.channel_selected, timeout=1000) as blocker:
        click_tile(qtbot, view, 4)
    assert blocker.args == [4]
    assert view.selected_channel == 4
    assert view.findChild(QtWidgets.QSpinBox, "channelSpin").value() == 4

    plane = conv.output[0, 4]
    cv = view.channel_view
    np.testing.assert_array_equal(cv.values, plane.numpy())
    image, low, high = render_channel(plane, "channel")
    np.testing.assert_array_equal(cv.image_item.image, image)
    # The colour bar shows the channel's real values, not 0..255.
    assert cv.value_range == pytest.approx((low, high))
    assert cv.colorbar.levels() == pytest.approx((low, high))
    assert low == pytest.approx(float(plane.min())) and high == pytest.approx(float(plane.max()))
    # The highlight sits on tile 4.
    x, y, w, h = view.grid.grid_layout.tile_rect(4)
    assert view.grid._highlight.isVisible()
    assert view.grid._highlight.rect().center() == QtCore.QPointF(x + w / 2, y + h / 2)


def test_arrow_keys_move_the_selection(view, run, qtbot):
    view.set_layer(run["conv1"])
    click_tile(qtbot, view, 4)
    assert view.grid.hasFocus()
    qtbot.keyClick(view.grid, Qt.Key.Key_Right)
    assert view.selected_channel == 5
    qtbot.keyClick(view.grid, Qt.Key.Key_Right)      # past the last tile: stays
    assert view.selected_channel == 5
    cols = view.grid.grid_layout.cols
    qtbot.keyClick(view.grid, Qt.Key.Key_Up)
    assert view.selected_channel == 5 - cols
    qtbot.keyClick(view.grid, Qt.Key.Key_Left)
    assert view.selected_channel == 4 - cols
    np.testing.assert_array_equal(view.channel_view.values, run["conv1"].output[0, 4 - cols].numpy())


def test_symmetric_switches_to_diverging_and_back(view, run, qtbot):
    conv = run["conv1"]
    view.set_layer(conv)
    before = view.grid.image_item.image.copy()
    norm = view.findChild(QtWidgets.QComboBox, "normCombo")
    cmap = view.findChild(QtWidgets.QComboBox, "cmapCombo")
    norm.setCurrentIndex(norm.findData("symmetric"))
    assert view.normalization == "symmetric"
    assert view.colormap == DIVERGING and cmap.currentData() == DIVERGING
    image = view.grid.image_item.image
    np.testing.assert_array_equal(image, render_grid(conv.output[0], "symmetric").image)
    assert not np.array_equal(image, before)
    np.testing.assert_array_equal(view.grid.image_item.lut, COLORMAPS[DIVERGING])
    # Symmetric range: -m..m in the colour bar too.
    low, high = view.channel_view.colorbar.levels()
    assert low == pytest.approx(-high) and high > 0

    norm.setCurrentIndex(norm.findData("layer"))       # automatic switch is undone
    assert view.colormap == "gray"
    np.testing.assert_array_equal(view.grid.image_item.image, render_grid(conv.output[0], "layer").image)

    view.normalization = "symmetric"
    cmap.setCurrentIndex(cmap.findData("viridis"))     # the user's own choice sticks
    view.normalization = "channel"
    assert view.colormap == "viridis"


def test_colormap_change_only_swaps_the_lut(view, run):
    view.set_layer(run["conv1"])
    image = view.grid.image_item.image
    view.colormap = "viridis"
    assert view.grid.image_item.image is image
    np.testing.assert_array_equal(view.grid.image_item.lut, COLORMAPS["viridis"])
    np.testing.assert_array_equal(view.channel_view.image_item.lut, COLORMAPS["viridis"])
    with pytest.raises(ValueError):
        view.colormap = "no-such-map"


def test_rgb_mode_shows_first_three_channels(view, run):
    conv = run["conv1"]
    view.set_layer(conv)
    mode = view.findChild(QtWidgets.QComboBox, "modeCombo")
    mode.setCurrentIndex(mode.findData("rgb"))
    assert view.mode == "rgb"
    image = view.grid.image_item.image
    assert image.shape == (H, W, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image, render_rgb(conv.output[0], (0, 1, 2), "channel"))
    np.testing.assert_array_equal(view.current_grid_png(), image)
    # The channel view still follows the selected channel.
    view.selected_channel = 2
    np.testing.assert_array_equal(view.channel_view.values, conv.output[0, 2].numpy())


def test_batch_mode_shows_one_channel_for_every_item(view, run, qtbot):
    conv = run["conv1"]
    view.set_layer(conv)
    view.selected_channel = 3
    view.mode = "batch"
    assert view.grid.grid_layout.count == N
    np.testing.assert_array_equal(view.grid.image_item.image, render_batch_channel(conv.output, 3, "channel").image)
    with qtbot.waitSignal(view.batch_index_selected, timeout=1000) as blocker:
        click_tile(qtbot, view, 2)
    assert blocker.args == [2]
    assert view.batch_index == 2 and view.selected_channel == 3
    np.testing.assert_array_equal(view.channel_view.values, conv.output[2, 3].numpy())
    view.selected_channel = 1                       # another channel across the batch
    np.testing.assert_array_equal(view.grid.image_item.image, render_batch_channel(conv.output, 1, "channel").image)


def test_selection_survives_switching_layers(view, run):
    view.set_layer(run["conv1"])
    view.selected_channel = 5
    view.set_layer(run["relu1"])
    assert view.selected_channel == 5
    np.testing.assert_array_equal(view.channel_view.values, run["relu1"].output[0, 5].numpy())


def test_channel_readout_follows_the_mouse(view, run, qtbot):
    conv = run["conv1"]
    view.set_layer(conv)
    view.selected_channel = 1
    cv = view.channel_view
    plane = conv.output[0, 1]
    assert cv.readout_at(12, 7) == f"x=12 y=7 value={float(plane[7, 12]):.4f}"
    assert cv.readout_at(W, 0) is None
    settle(qtbot)
    scene_point = cv.image_item.mapToScene(QtCore.QPointF(12.5, 7.5))
    point = cv.graphics.mapFromScene(scene_point)
    qtbot.mouseMove(cv.graphics.viewport(), point)
    settle(qtbot)
    assert cv.readout.text() == cv.readout_at(12, 7)


# --------------------------------------------------------------------------- vectors


def test_linear_output_shows_bars_with_class_names(view, run):
    fc = run["fc"]
    view.set_layer(fc, CLASSES)
    vv = view.vector_view
    assert view.stack.currentWidget() is vv
    assert vv.bar_count == 10 and vv.bucket_size == 1
    np.testing.assert_allclose(vv.bar_values, fc.output[0].numpy(), rtol=1e-6)
    labels = vv.tick_labels()
    assert len(labels) == 10
    for label, name in zip(labels, CLASSES):
        assert name.startswith(label.rstrip("…"))
    view.set_batch_index(1)
    np.testing.assert_allclose(vv.bar_values, fc.output[1].numpy(), rtol=1e-6)
    # Map controls make no sense for a vector.
    assert not view.findChild(QtWidgets.QComboBox, "modeCombo").isEnabled()
    assert view.current_grid_png() is None


def test_large_vector_is_downsampled(view, qtbot):
    values = torch.zeros(2, 196608)
    values[0, 123456] = -7.0
    values[0, 5] = 3.0
    result = LayerResult(7, "flat", "Flatten", True, output=values, output_shape=tuple(values.shape))
    view.set_layer(result)
    vv = view.vector_view
    assert 0 < vv.bar_count <= MAX_BARS
    assert vv.bucket_size > 1
    assert vv.bar_values.min() == -7.0 and vv.bar_values.max() == 3.0    # peaks survive
    assert "showing" in vv.note.text()


# --------------------------------------------------------------------------- messages, stats, export


def test_no_layer_and_errored_layer_show_a_message(view):
    assert view.message == NO_LAYER_MESSAGE
    bad = LayerResult(2, "conv2", "Conv2d", True, error="Conv2d 'conv2' expects 16 input channels but got 6.")
    view.set_layer(bad)
    assert "expects 16 input channels but got 6" in view.message
    assert view.findChild(QtWidgets.QLabel, "messageLabel").isVisible()
    assert view.current_grid_png() is None and view.current_channel_png() is None
    view.set_layer(None)
    assert view.message == NO_LAYER_MESSAGE


def test_stats_show_the_whole_layer(view, run):
    relu = run["relu1"]
    view.set_layer(relu)
    out = relu.output
    stats = view.stats_view

    def text(key):
        return view.findChild(QtWidgets.QLabel, "stat" + key).text()

    assert float(text("Min")) == pytest.approx(float(out.min()), abs=1e-4)
    assert float(text("Max")) == pytest.approx(float(out.max()), abs=1e-4)
    zero_pct = float((out == 0).float().mean()) * 100
    assert text("Zeros") == f"{zero_pct:.1f}%"
    assert text("Dead").endswith("of 6")
    assert text("Numel") == f"{out.numel():,}"
    assert int(stats.histogram.yData.sum()) == out.numel()


def test_export_grid_and_channel(view, run, tmp_path):
    conv = run["conv1"]
    view.set_layer(conv)
    view.colormap = "viridis"
    grid_path, channel_path = tmp_path / "grid.png", tmp_path / "channel.png"
    view.export_grid(grid_path)
    view.export_channel(channel_path)
    layout = view.grid.grid_layout
    with Image.open(grid_path) as img:
        assert img.size == (layout.width, layout.height) and img.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(img), view.current_grid_png())
    expected = COLORMAPS["viridis"][render_grid(conv.output[0], "channel").image]
    np.testing.assert_array_equal(view.current_grid_png(), expected)
    with Image.open(channel_path) as img:
        assert img.size == (W, H)
    view.set_layer(run["fc"])
    with pytest.raises(ValueError):
        view.export_grid(tmp_path / "nothing.png")


def test_many_channels_render_and_label(view, qtbot):
    out = torch.randn(1, 300, 6, 6)
    result = LayerResult(0, "wide", "Conv2d", True, output=out, output_shape=tuple(out.shape))
    view.set_layer(result)
    settle(qtbot)
    view.grid.viewport().repaint()
    layout = view.grid.grid_layout
    assert layout.count == 300
    assert all(tile.contains(label) for _, label, tile in view.grid.labels.painted)   # numbers fit their tiles
    np.testing.assert_array_equal(view.grid.image_item.image, render_grid(out[0], "channel").image)


def test_tile_numbers_shrink_then_hide_instead_of_covering_smaller_tiles(view, qtbot):
    """Zoomed out, numbers bigger than their tiles covered the maps and each other."""
    out = torch.randn(1, 300, 6, 6)
    view.set_layer(LayerResult(0, "wide", "Conv2d", True, output=out, output_shape=tuple(out.shape)))
    settle(qtbot)
    labels, box = view.grid.labels, view.grid.view_box
    seen = {}
    for name, scale in (("zoomed in", 0.15), ("in between", 2.2), ("zoomed out", 6.0)):
        box.scaleBy((scale, scale))
        settle(qtbot)
        view.grid.viewport().repaint()
        assert all(tile.contains(label) for _, label, tile in labels.painted), name
        seen[name] = (labels.stride, sorted(i for i, _, _ in labels.painted))
    stride, painted = seen["zoomed in"]
    assert stride == 1 and painted
    cols = view.grid.grid_layout.cols
    first_row = [i for i in painted if i // cols == painted[0] // cols]
    assert first_row == list(range(first_row[0], first_row[-1] + 1))   # every tile in view, not every k-th
    assert seen["zoomed out"] == (0, [])


@pytest.mark.parametrize("out", [
    torch.randn(1, 4, 5, 5).half(),                          # half precision
    torch.randn(2, 8, 1, 1),                                 # after global pooling
    torch.tensor([[[[float("nan"), 1.0], [2.0, 3.0]]]]),     # a NaN in the maps
    torch.randn(2, 4, 6),                                    # 3-D: shown as a vector per item
    torch.randn(10),                                         # 1-D: one vector
], ids=["half", "1x1", "nan", "3d", "1d"])
def test_unusual_outputs_render(view, out, qtbot):
    result = LayerResult(0, "odd", "Conv2d", True, output=out, output_shape=tuple(out.shape))
    view.set_layer(result)
    settle(qtbot)
    assert view.message is None
    if out.dim() == 4:
        np.testing.assert_array_equal(view.grid.image_item.image, render_grid(out[0], "channel").image)
        view.normalization = "symmetric"
        view.mode = "batch"
        view.mode = "rgb"
        assert view.grid.image_item.image.shape[2] == 3
    else:
        assert view.vector_view.bar_count == (out[0].numel() if out.dim() > 1 else out.numel())
    view.grab()          # paints without raising


def test_empty_output_and_missing_output_show_messages(view):
    empty = torch.zeros(0, 3, 4, 4)
    view.set_layer(LayerResult(0, "e", "Conv2d", True, output=empty, output_shape=(0, 3, 4, 4)))
    assert "empty" in view.message
    view.set_layer(LayerResult(0, "later", "ReLU", True))
    assert "no output yet" in view.message
    assert not view.stats_view.isVisible()


def test_disabled_layer_is_marked(view, run):
    conv = run["conv1"]
    off = LayerResult(conv.index, conv.name, conv.type, False, output=conv.output, output_shape=conv.output_shape)
    view.set_layer(off)
    assert "disabled" in view.findChild(QtWidgets.QLabel, "infoLabel").text()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_outputs(view, qtbot):
    out = torch.randn(2, 5, 9, 7, device="cuda")
    view.set_layer(LayerResult(0, "gpu", "Conv2d", True, output=out, output_shape=tuple(out.shape)))
    np.testing.assert_array_equal(view.grid.image_item.image, render_grid(out[0].cpu(), "channel").image)
    view.selected_channel = 3
    np.testing.assert_array_equal(view.channel_view.values, out[0, 3].cpu().numpy())
    view.mode = "batch"
    view.mode = "rgb"
    vec = torch.randn(2, 50000, device="cuda")
    view.set_layer(LayerResult(1, "fc", "Linear", True, output=vec, output_shape=tuple(vec.shape)))
    assert view.vector_view.bar_count <= MAX_BARS
    assert view.stats_view.stats.numel == vec.numel()


def test_worker_prepared_displays_do_not_pile_up(view, run):
    """Every run hands the view a prepared display for a new output tensor; a long editing session
    must not keep them all (each holds a histogram and a reference to its output's stats)."""
    from explorer.core.display import ViewSettings, prepare_display
    from explorer.ui import feature_view as module

    settings = view.view_settings()
    assert isinstance(settings, ViewSettings)
    outputs = [run["relu1"].output.clone() for _ in range(3 * module._STATS_CACHE_SIZE)]
    for out in outputs:
        view.prime(out, prepare_display(out, 1, settings))
    assert len(view._stats_cache) <= module._STATS_CACHE_SIZE


def test_a_huge_layer_is_drawn_shrunk_but_exported_at_full_size(view, tmp_path):
    stack = stack_from_dict({"layers": [
        {"type": "Conv2d", "name": "wide", "args": {"in_channels": 3, "out_channels": 32, "kernel_size": 3, "padding": 1}},
    ]})
    result = StackRunner("cpu").run(stack, smooth_images(1, 700, 650))
    view.set_layer(result.layers[0])
    shown = view.grid.image_item.image
    assert shown.size <= DISPLAY_MAX_PIXELS          # what Qt paints stays screen-sized
    view.export_grid(tmp_path / "grid.png")
    exported = Image.open(tmp_path / "grid.png")
    cols = view._grid.layout.cols
    rows = -(-32 // cols)
    assert exported.size == (cols * 651 - 1, rows * 701 - 1)   # every pixel of every channel, 1 px gaps


def test_statistics_wait_while_a_run_is_on_its_way(qtbot, run):
    """Counting beside a run slowed both: held, the numbers are counted once the run has answered."""
    v = FeatureView()
    qtbot.addWidget(v)
    v.resize(1000, 700)
    v.show()
    asked = []
    request = v.preparer.request
    v.preparer.request = lambda source, settings, need_stats, need_view: (
        asked.append(need_stats), request(source, settings, need_stats, need_view))[1]
    v.hold_statistics(True)
    v.set_layer(run["relu1"])
    assert v.wait_until_ready(30_000)
    assert asked == [False]                                    # the picture only
    assert v.grid.image_item.image is not None
    assert v.stats_view.stats is None and "counting" in v.stats_view.title.text()
    v.hold_statistics(False)
    assert v.wait_until_ready(30_000)
    assert asked == [False, True]
    assert v.stats_view.stats is not None and v.stats_view.stats.numel == run["relu1"].output.numel()


def test_holding_stops_counting_that_has_started(qtbot, run, monkeypatch):
    from explorer.ui import display_worker

    v = FeatureView()
    qtbot.addWidget(v)
    started, stopped = threading.Event(), threading.Event()
    counting = display_worker.layer_stats

    def slow_stats(source, should_stop=None):
        started.set()
        while not should_stop():               # a count that only ends when asked to
            time.sleep(0.005)
        stopped.set()
        return counting(source, should_stop=should_stop)

    v.hold_statistics(True)
    v.set_layer(run["relu1"])                   # drawn; the numbers wait
    assert v.wait_until_ready(30_000)
    monkeypatch.setattr(display_worker, "layer_stats", slow_stats)
    v.hold_statistics(False)                    # the run answered: counting starts
    assert started.wait(10)
    v.hold_statistics(True)                     # the next edit: a run is on its way again
    assert stopped.wait(10)
    qtbot.waitUntil(lambda: not v.preparer.busy, timeout=10_000)
    assert not v.preparing and v.stats_view.stats is None


def test_new_numbers_do_not_resize_the_histogram(qtbot):
    """The numbers' column kept following its texts' widths, so every edit resized the histogram
    beside it (and it was laid out and painted again)."""
    from explorer.core.stats import layer_stats
    from explorer.ui.stats_view import StatsView

    stats_view = StatsView()
    qtbot.addWidget(stats_view)
    stats_view.resize(700, 200)
    stats_view.show()
    qtbot.waitExposed(stats_view)
    long = layer_stats(torch.tensor([[-123456.5, 0.000123, 98765.25, 1.0]]))
    short = layer_stats(torch.tensor([[0.0, 1.0]]))
    stats_view.set_stats(long, (1, 4))
    settle(qtbot)
    width = stats_view.plot.width()
    for stats in (short, long, short):
        stats_view.set_stats(stats, (1, 2))
        stats_view.title.setText("Layer statistics: counting…")
        settle(qtbot)
        assert stats_view.plot.width() == width
    assert stats_view.findChild(QtWidgets.QLabel, "statMin").text() == "0"


def test_every_tick_of_the_histogram_has_its_number(qtbot):
    """The histogram's axes are laid out again on every edit (a new value range). Unlabelled minor
    ticks cost a third of that and were too fine to read at this size: only numbered ticks are drawn,
    and the numbers still span the values."""
    from explorer.core.stats import layer_stats
    from explorer.ui.stats_view import StatsView

    stats_view = StatsView()
    qtbot.addWidget(stats_view)
    stats_view.resize(700, 220)
    stats_view.show()
    qtbot.waitExposed(stats_view)
    torch.manual_seed(0)
    stats_view.set_stats(layer_stats(torch.randn(1, 6, 50, 50)), (1, 6, 50, 50))
    settle(qtbot)
    for name in ("left", "bottom"):
        ticks, texts = _axis_marks(stats_view.plot.getPlotItem().getAxis(name))
        assert len(texts) >= 3, name
        assert len(ticks) == len(texts), f"{name}: {len(ticks) - len(texts)} ticks without a number"
    numbers = [float(text.replace("−", "-")) for *_rect, _flags, text in texts]
    assert min(numbers) < 0 < max(numbers)             # the values of a standard normal, both sides of 0


def _axis_marks(axis) -> tuple[list, list]:
    """The tick marks and the numbers a pyqtgraph axis draws, measured as its paint measures them."""
    canvas = QtGui.QImage(1000, 1000, QtGui.QImage.Format.Format_ARGB32)
    painter = QtGui.QPainter(canvas)
    try:
        _axis_line, ticks, texts = axis.generateDrawSpecs(painter)
    finally:
        painter.end()
    return ticks, texts


def test_the_channel_views_axes_keep_their_numbers_without_the_finest_ticks(qtbot):
    """The colour bar gets a new range on every edit and the map's axes on every new size, and each
    is laid out again: only numbered ticks are drawn (the left axis drew 46 marks for 10 numbers)."""
    from explorer.ui.channel_view import ChannelView

    channel_view = ChannelView()
    qtbot.addWidget(channel_view)
    channel_view.resize(330, 360)
    channel_view.show()
    qtbot.waitExposed(channel_view)
    values = np.linspace(-0.55, -0.1, 510 * 510, dtype=np.float32).reshape(510, 510)
    image = ((values - values.min()) / np.ptp(values) * 255).astype(np.uint8)
    channel_view.set_channel(image, values, float(values.min()), float(values.max()), "gray", "conv1")
    settle(qtbot)
    for axis in (channel_view.plot.getAxis("left"), channel_view.colorbar.getAxis("right")):
        ticks, texts = _axis_marks(axis)
        assert len(texts) >= 4 and len(ticks) == len(texts)
    numbers = sorted(float(text.replace("−", "-")) for *_rect, _flags, text in texts)
    assert -0.55 <= numbers[0] and numbers[-1] <= -0.1      # the colour bar numbers the channel's range

"""The session state and the widgets bound to it, built directly (no window): the input panel and the
pixel probe render what the state says and write the user's choices back to it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.core.engine import run_stack
from explorer.core.input_source import InputSource
from explorer.core.inputs import InputBatch, list_samples
from explorer.core.layers import LayerSpec
from explorer.core.render import render_input_image
from explorer.core.session import LastRun
from explorer.core.shapes import infer_shapes
from explorer.core.stack import InputSpec, Stack
from explorer.ui.input_panel import InputPanel
from explorer.ui.probe_panel import ProbePanel
from explorer.ui.session_state import SessionState


def pictures(n: int, h: int = 12, w: int = 10, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


def finished_run(stack: Stack, source: InputSource, images: torch.Tensor, batch_count: int | None = None) -> LastRun:
    result = run_stack(stack, images, "cpu")
    assert result.ok, result.error
    return LastRun(stack, source, InputBatch(images, source.describe()), result, batch_count)


def conv_stack(seed: int = 0) -> Stack:
    return Stack([LayerSpec("Conv2d", "conv1", {"in_channels": 3, "out_channels": 4, "kernel_size": 3}),
                  LayerSpec("ReLU", "relu1")], seed=seed)


class Recorder:
    """Every emission of the state's signals, in order."""

    def __init__(self, state: SessionState):
        self.seen: list[tuple[str, object]] = []
        for name in ("requested_source", "device", "view", "batch_item", "last_run"):
            getattr(state, f"{name}_changed").connect(lambda value, n=name: self.seen.append((n, value)))
        state.shapes_changed.connect(lambda: self.seen.append(("shapes", None)))

    def names(self) -> list[str]:
        return [n for n, _ in self.seen]


# ---------------------------------------------------------------- the state itself
def test_derived_values_come_from_the_last_run(qapp):
    state = SessionState()
    assert state.source is None and state.batch is None and state.result is None
    run = finished_run(conv_stack(), InputSource.sample("astronaut"), pictures(2))
    state.last_run = run
    assert state.source == InputSource.sample("astronaut")
    assert state.batch is run.batch and state.result is run.result
    assert state.data.result is run.result            # the plain core value says the same


def test_the_input_shape_is_derived_from_the_input_block_and_the_loaded_batch(qapp, doc):
    state = SessionState(doc)
    assert state.input_shape == (1, 3, 32, 32)          # nothing ran: the input block's size
    doc.set_input_spec(1, None)
    assert state.input_shape == (1, 1, 224, 224)        # no size: the samples' 224x224
    state.last_run = finished_run(conv_stack(), InputSource.sample("astronaut"), pictures(2, 12, 10))
    assert state.input_shape == (2, 1, 12, 10)          # the loaded pictures, converted to grayscale
    doc.set_input_spec(3, (20, 30))
    assert state.input_shape == (2, 3, 20, 30)          # resized
    state.last_run = finished_run(conv_stack(), InputSource.cifar("/data/cifar"), pictures(4, 32, 32))
    assert state.input_shape == (4, 3, 32, 32)          # CIFAR keeps its 32x32
    assert doc.input_shape == state.input_shape         # the document asks the state; nobody writes it back


def test_each_changed_field_is_signalled_once_and_an_unchanged_one_not_at_all(qapp):
    state = SessionState(requested_source=InputSource.sample("astronaut"))
    seen = Recorder(state)
    state.requested_source = InputSource.sample("astronaut")
    state.device = "cpu"
    state.batch_item = 0
    assert seen.seen == []
    state.batch_item = 3
    assert seen.names() == ["view", "batch_item"] and seen.seen[1] == ("batch_item", 3)
    assert state.view.batch_index == 3                  # the batch item is one of the view settings
    state.update(device="meta", view=state.view, requested_source=InputSource.sample("coins"))
    assert seen.names()[2:] == ["requested_source", "device"]


def test_shapes_are_signalled_for_shape_changes_only(qapp, doc, state):
    seen = Recorder(state)
    assert [r.output_shape for r in state.shape_rows] == [r.output_shape for r in infer_shapes(doc.stack, (1, 3, 32, 32))]
    doc.add_layer("ReLU", 1)
    assert seen.names() == ["shapes"]
    assert [r.name for r in state.shape_rows] == doc.stack.names()
    doc.select(0)
    state.device = "meta"
    assert seen.names() == ["shapes", "device"]         # no new shapes for a selection or a device


# ---------------------------------------------------------------- the input panel
@pytest.fixture
def input_panel(qtbot):
    state = SessionState(requested_source=InputSource.sample("astronaut"))
    panel = InputPanel(state)
    qtbot.addWidget(panel)
    panel.resize(300, 500)
    panel.show()
    qtbot.waitExposed(panel)
    return panel


def drawn(panel: InputPanel) -> np.ndarray:
    return panel.image_item.image


def test_the_panel_shows_the_last_run_and_steps_through_its_pictures(input_panel):
    state, images = input_panel.state, pictures(3)
    state.last_run = finished_run(conv_stack(), InputSource.sample("astronaut"), images)
    assert input_panel.item_of.text() == "of 3" and input_panel.item_spin.maximum() == 2
    assert input_panel.source_label.text() == "sample 'astronaut' · [3×3×12×10]"
    assert np.array_equal(drawn(input_panel), render_input_image(images[0]))
    input_panel.item_spin.setValue(2)                   # the user steps to the third picture
    assert state.batch_item == 2
    assert np.array_equal(drawn(input_panel), render_input_image(images[2]))


def test_the_batch_item_chosen_elsewhere_is_followed_without_echo(input_panel):
    state, images = input_panel.state, pictures(3)
    state.last_run = finished_run(conv_stack(), InputSource.sample("astronaut"), images)
    seen = Recorder(state)
    state.batch_item = 1                                 # a tile click in the feature view's batch mode
    assert input_panel.item_spin.value() == 1
    assert np.array_equal(drawn(input_panel), render_input_image(images[1]))
    assert seen.names() == ["view", "batch_item"]       # the spin box did not write it back again


def test_a_smaller_batch_moves_the_item_to_its_last_picture(input_panel):
    state = input_panel.state
    state.last_run = finished_run(conv_stack(), InputSource.sample("astronaut"), pictures(4))
    state.batch_item = 3
    smaller = pictures(2, seed=1)
    state.last_run = finished_run(conv_stack(), InputSource.sample("astronaut"), smaller)
    assert state.batch_item == 1 and input_panel.item_spin.value() == 1
    assert np.array_equal(drawn(input_panel), render_input_image(smaller[1]))


def test_choosing_a_sample_asks_the_state_for_it(input_panel):
    name = list_samples()[-1][0]
    combo = input_panel.sample_combo
    combo.activated.emit(combo.findData(name))           # what a click on the entry sends
    assert input_panel.state.requested_source == InputSource.sample(name)
    assert input_panel.state.source is None              # shown only once a run has loaded it


def test_cifar_batches_are_asked_for_through_the_state(input_panel):
    state = input_panel.state
    source = InputSource.cifar("/data/cifar-10-batches-py", batch_size=4, batch_index=0)
    state.last_run = finished_run(conv_stack(), source, pictures(4, 32, 32), batch_count=5)
    assert input_panel.cifar_box.isVisible() and input_panel.batch_of.text() == "of 5"
    assert state.requested_source == InputSource.sample("astronaut")   # showing a run asks for nothing
    input_panel.batch_spin.setValue(3)
    assert state.requested_source == source.with_batch(3, 4, "test")


def test_the_input_block_is_shown_without_being_sent_back(input_panel, qtbot):
    edits = []
    input_panel.input_spec_edited.connect(edits.append)
    input_panel.set_input_spec(InputSpec(1, (20, 30)))
    assert edits == []
    assert input_panel.channels_combo.currentData() == 1 and input_panel.resize_check.isChecked()
    assert (input_panel.resize_h.value(), input_panel.resize_w.value()) == (20, 30)
    assert input_panel.resize_h.isEnabled()
    input_panel.resize_check.setChecked(False)          # the user turns resizing off
    assert edits == [InputSpec(1, None)] and not input_panel.resize_h.isEnabled()


# ---------------------------------------------------------------- the pixel probe
@pytest.fixture
def probe(qtbot):
    panel = ProbePanel(SessionState())
    qtbot.addWidget(panel)
    panel.resize(400, 500)
    panel.show()
    return panel


def test_nothing_to_explain_before_a_run(probe):
    assert probe.probe_pixel(0, 0, 0, 1, 1) is None
    assert not probe.body.isVisible()


def test_a_hovered_pixel_is_explained_with_the_value_torch_computed(probe):
    images = pictures(2)
    probe.state.last_run = run = finished_run(conv_stack(), InputSource.sample("astronaut"), images)
    out = run.result.layers[0].output
    p = probe.probe_pixel("conv1", 1, 2, 4, 5)
    assert (p.batch, p.channel, p.y, p.x) == (1, 2, 5, 4)
    assert p.output_value == pytest.approx(float(out[1, 2, 5, 4]))
    assert p.total == pytest.approx(float(out[1, 2, 5, 4]), abs=1e-5)
    assert "conv1 (Conv2d) · channel 2 · row 5, column 4" in probe.title.text()
    assert probe.body.isVisible() and "✓ matches" in probe.summary.text()


def test_a_new_run_re_explains_the_pixel_under_the_mouse(probe):
    images = pictures(1)
    probe.state.last_run = finished_run(conv_stack(seed=0), InputSource.sample("astronaut"), images)
    first = probe.probe_pixel("conv1", 0, 1, 3, 3).output_value
    again = finished_run(conv_stack(seed=7), InputSource.sample("astronaut"), images)   # other weights
    probe.state.last_run = again
    now = probe.current.output_value
    assert now == pytest.approx(float(again.result.layers[0].output[0, 1, 3, 3]))
    assert now != pytest.approx(first)


def test_a_layer_without_an_explanation_says_so(probe):
    probe.state.last_run = finished_run(conv_stack(), InputSource.sample("astronaut"), pictures(1))
    assert probe.probe_pixel("relu1", 0, 0, 2, 2) is None
    assert probe.title.text().startswith("relu1 is a ReLU; hover explanations cover")
    assert probe.probe_pixel("gone", 0, 0, 2, 2) is None      # a layer the run did not have


# ---------------------------------------------------------------- the feature view
def test_the_feature_view_draws_the_view_settings_of_the_state(qtbot):
    from explorer.ui.feature_view import FeatureView

    state = SessionState()
    view = FeatureView(state)
    qtbot.addWidget(view)
    view.resize(900, 600)
    view.show()
    run = finished_run(conv_stack(), InputSource.sample("astronaut"), pictures(3))
    view.set_layer(run.result.layers[0])
    assert view.wait_until_ready(30_000)
    state.update_view(mode="batch", channel=2)           # e.g. a saved layout or another widget
    assert view.wait_until_ready(30_000)
    assert view.mode_combo.currentData() == "batch" and view.selected_channel == 2
    assert view.grid_title.text() == "Channel 2 across all 3 batch items"
    seen = Recorder(state)
    view.set_batch_index(1)                             # a click on tile 1 does this
    assert state.batch_item == 1 and seen.names() == ["view", "batch_item"]
    view.set_batch_index(99)                            # more than the layer has: its last item
    assert state.batch_item == 2

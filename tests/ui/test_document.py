"""The undoable document behind the window: edits, refusals, undo steps."""

import pytest

from explorer.core.layers import LayerArgError
from explorer.core.stack import stack_from_dict
from explorer.ui import document as document_module
from explorer.ui.document import StackDocument


@pytest.fixture
def doc(qapp):
    return StackDocument(stack_from_dict({"layers": [
        {"type": "Conv2d", "name": "conv1", "args": {"in_channels": 3, "out_channels": 6, "kernel_size": 3}},
        {"type": "MaxPool2d", "name": "pool1", "args": {"kernel_size": 2}},
        {"type": "MaxUnpool2d", "name": "unpool1", "args": {"kernel_size": 2}, "indices_from": "pool1"},
        {"type": "Upsample", "name": "up1", "args": {"scale_factor": 2.0}},
        {"type": "BatchNorm2d", "name": "bn1", "args": {"num_features": 6}},
    ]}))


def test_upsample_switches_from_scale_factor_to_size_in_one_step(doc):
    doc.set_args(3, {"size": [40, 50], "scale_factor": None})
    assert doc.stack.layers[3].args == {"size": [40, 50]}
    assert doc.undo_stack.count() == 1
    doc.undo_stack.undo()
    assert doc.stack.layers[3].args == {"scale_factor": 2.0}


def test_a_refused_value_leaves_the_stack_alone(doc):
    with pytest.raises(LayerArgError, match="groups"):
        doc.set_arg(0, "groups", 4)
    assert doc.stack.layers[0].args == {"in_channels": 3, "out_channels": 6, "kernel_size": 3}
    assert doc.undo_stack.count() == 0


def test_momentum_none_is_kept_because_its_default_is_not_none(doc):
    doc.set_arg(4, "momentum", None)
    assert doc.stack.layers[4].args["momentum"] is None
    assert doc.stack.layers[4].full_args()["momentum"] is None


def test_quick_edits_of_one_field_merge_and_later_ones_do_not(doc, monkeypatch):
    clock = iter([0.0, 0.2, 0.4, 10.0])
    monkeypatch.setattr(document_module.time, "monotonic", lambda: next(clock))
    for channels in (7, 8, 9):
        doc.set_arg(0, "out_channels", channels)
    assert doc.undo_stack.count() == 1
    doc.set_arg(0, "out_channels", 12)
    assert doc.undo_stack.count() == 2
    doc.undo_stack.undo()
    assert doc.stack.layers[0].args["out_channels"] == 9


def test_indices_must_come_from_an_earlier_pool(doc):
    with pytest.raises(ValueError, match="not a MaxPool2d before this layer"):
        doc.set_indices_from(2, "conv1")
    doc.set_indices_from(2, "pool1")      # unchanged: no undo step
    assert doc.undo_stack.count() == 0


def test_a_pool_that_an_unpool_needs_cannot_be_removed_or_moved_after_it(doc):
    with pytest.raises(ValueError, match="gives its indices to unpool1"):
        doc.remove_layer(1)
    with pytest.raises(ValueError, match="would come before 'pool1'"):
        doc.move_layer(1, 3)
    assert doc.stack.names() == ["conv1", "pool1", "unpool1", "up1", "bn1"]


def test_renaming_a_pool_renames_the_unpools_reference(doc):
    doc.rename(1, "p")
    assert doc.stack.layers[2].indices_from == "p"
    with pytest.raises(ValueError, match="already called"):
        doc.rename(0, "p")

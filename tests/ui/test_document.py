"""The undoable document behind the window: edits, refusals, undo steps."""

from pathlib import Path

import pytest
import torch

from explorer.core.layers import LayerArgError, LayerSpec
from explorer.core.stack import Stack, stack_from_dict
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


# ---------------------------------------------------------------- the history's memory

def big_conv_doc() -> StackDocument:
    """A 512×512×3×3 conv (9.4 MB of weights) with hand-set weights, as after a first edit."""
    torch.manual_seed(0)
    spec = LayerSpec("Conv2d", "conv", {"in_channels": 512, "out_channels": 512, "kernel_size": 3},
                     state={"weight": torch.randn(512, 512, 3, 3), "bias": torch.zeros(512)})
    return StackDocument(Stack([spec, LayerSpec("ReLU", "relu")]))


def edit_cell(doc: StackDocument, o: int, i: int, value: float) -> None:
    """What the kernel editor does for one cell: a new whole weight with one value changed."""
    weight = doc.stack.layers[0].state["weight"].clone()
    weight[o, i, 1, 1] = value
    doc.edit_state(0, {"weight": weight}, f"Edit cell {o}/{i}", ("cell", 0, o, i))


def test_a_cell_edit_keeps_only_what_changed_and_undo_redo_are_exact(qapp):
    """Each cell edit kept a whole copy of the weight (9 MB per edit here): 40 edits held 377 MB."""
    doc = big_conv_doc()
    first = doc.stack.layers[0].state["weight"].clone()
    full = first.numel() * 4
    for n in range(40):
        edit_cell(doc, n, n + 1, float(n) + 0.5)
    last = doc.stack.layers[0].state["weight"].clone()
    assert doc.undo_stack.count() == 40
    assert doc.history_bytes() < 1.1 * full         # the newest step's "before" is the one whole copy
    for _ in range(40):
        doc.undo_stack.undo()
    assert torch.equal(doc.stack.layers[0].state["weight"], first)
    for _ in range(40):
        doc.undo_stack.redo()
    assert torch.equal(doc.stack.layers[0].state["weight"], last)
    assert last[39, 40, 1, 1] == 39.5 and last[0, 1, 1, 1] == 0.5
    # Undo half-way and edit: the redo steps go, the rest still undoes exactly.
    for _ in range(20):
        doc.undo_stack.undo()
    edit_cell(doc, 500, 500, -7.0)
    assert doc.undo_stack.count() == 21
    for _ in range(21):
        doc.undo_stack.undo()
    assert torch.equal(doc.stack.layers[0].state["weight"], first)


def test_structural_steps_between_cell_edits_still_undo_exactly(qapp):
    doc = big_conv_doc()
    first = doc.stack.layers[0].state["weight"].clone()
    edit_cell(doc, 1, 2, 3.0)
    doc.rename(0, "renamed")
    edit_cell(doc, 4, 5, 6.0)
    doc.add_layer("ReLU", 1)
    edit_cell(doc, 7, 8, 9.0)
    doc.remove_layer(1)
    assert [l.name for l in doc.stack.layers] == ["renamed", "relu"]
    for _ in range(doc.undo_stack.count()):
        doc.undo_stack.undo()
    assert doc.stack.layers[0].name == "conv" and torch.equal(doc.stack.layers[0].state["weight"], first)
    for _ in range(doc.undo_stack.count()):
        doc.undo_stack.redo()
    w = doc.stack.layers[0].state["weight"]
    assert doc.stack.layers[0].name == "renamed" and w[1, 2, 1, 1] == 3.0 and w[4, 5, 1, 1] == 6.0
    assert w[7, 8, 1, 1] == 9.0 and len(doc.stack.layers) == 2


def test_the_history_is_capped_dropping_the_oldest_steps_with_a_note(qapp):
    """Edits that change a whole tensor (an initialiser) cannot be patched: beyond the limit the
    oldest steps go, and the window is told how many."""
    doc = big_conv_doc()
    full = doc.stack.layers[0].state["weight"].numel() * 4
    doc.history_limit = int(3.5 * full)
    dropped = []
    doc.history_trimmed.connect(dropped.append)
    doc.mark_saved(Path("saved.json"))
    weights = []
    for n in range(8):
        w = torch.full((512, 512, 3, 3), float(n))
        weights.append(w)
        doc.edit_state(0, {"weight": w}, f"Initialise {n}")
    assert doc.history_bytes() <= doc.history_limit
    assert sum(dropped) == 8 - doc.undo_stack.count() and dropped
    assert doc.undo_stack.count() == 3 and doc.undo_stack.undoText() == "Initialise 7"
    assert doc.dirty
    while doc.undo_stack.canUndo():
        doc.undo_stack.undo()
    # The oldest step kept undoes to what came before it; the saved state is out of reach.
    assert torch.equal(doc.stack.layers[0].state["weight"], weights[4]) and doc.dirty
    while doc.undo_stack.canRedo():
        doc.undo_stack.redo()
    assert torch.equal(doc.stack.layers[0].state["weight"], weights[7])


def test_an_edit_costs_the_same_however_long_the_history(doc, monkeypatch):
    """The history's size is checked after every edit. A step that is done never changes again, so
    it is read once: the 200th edit reads no more layers than the 20th."""
    walked = []
    real = document_module._tensors
    monkeypatch.setattr(document_module, "_tensors", lambda stack: (walked.append(1), real(stack))[1])

    def edit(i: int) -> int:
        walked.clear()
        # alternating fields: every edit is its own undo step
        doc.set_arg(0, ("out_channels", "kernel_size")[i % 2], 6 + i % 4 if i % 2 == 0 else 3 + 2 * (i % 4 == 1))
        return len(walked)

    early = [edit(i) for i in range(20)][-4:]
    late = [edit(i) for i in range(20, 200)][-4:]
    assert doc.undo_stack.count() > 100
    assert max(late) <= max(early)

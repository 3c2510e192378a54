"""A name the window accepts is one a saved stack loads back with: the same rule on both sides."""

import pytest

from explorer.core.stack import dump_stack, parse_stack, stack_from_dict
from explorer.ui.document import StackDocument


@pytest.fixture
def doc(qapp):
    return StackDocument(stack_from_dict({"layers": [{"type": "ReLU", "name": "relu1"}]}))


@pytest.mark.parametrize("name,reason", [("n" * 101, "at most 100 characters"), ("a\nb", "printable text on one line"),
                                         ("a\tb", "printable text on one line"), ("\ud800", "printable text")])
def test_rename_refuses_a_name_a_stack_file_could_not_hold(doc, name, reason):
    with pytest.raises(ValueError, match=reason):
        doc.rename(0, name)
    assert doc.stack.layers[0].name == "relu1" and doc.undo_stack.count() == 0


def test_a_renamed_layer_saves_and_loads_back(doc):
    doc.rename(0, "ünïcode ✓ " + "n" * 80)
    assert parse_stack(dump_stack(doc.stack)).names() == ["ünïcode ✓ " + "n" * 80]

"""Crash-recovery copies: small stacks as the ordinary file, big weights in a binary sidecar that
is read back without running code."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from explorer.core.autosave import INLINE_VALUES, read_autosave, remove_autosave, sidecar_path, write_autosave
from explorer.core.layers import LayerSpec
from explorer.core.stack import Stack, StackError, load_stack


def conv_stack(cin: int, cout: int, k: int, seed: int = 0) -> Stack:
    g = torch.Generator().manual_seed(seed)
    spec = LayerSpec("Conv2d", "conv1", {"in_channels": cin, "out_channels": cout, "kernel_size": k},
                     state={"weight": torch.randn(cout, cin, k, k, generator=g), "bias": torch.randn(cout, generator=g)})
    return Stack([spec, LayerSpec("ReLU", "relu1")])


def test_a_small_stack_is_autosaved_as_the_ordinary_stack_file(tmp_path):
    stack = conv_stack(3, 6, 3)
    path = tmp_path / "autosave.json"
    write_autosave(stack, path)
    assert not sidecar_path(path).exists()
    again = load_stack(path)                       # any stack reader opens it
    assert torch.equal(again.layers[0].state["weight"], stack.layers[0].state["weight"])


def test_big_weights_go_to_a_sidecar_and_come_back_bit_exact(tmp_path):
    stack = conv_stack(64, 128, 3)                 # 73,856 numbers
    assert sum(t.numel() for t in stack.layers[0].state.values()) > INLINE_VALUES
    path = tmp_path / "autosave.json"
    write_autosave(stack, path)
    assert sidecar_path(path).exists()
    assert "state" not in json.loads(path.read_text())["layers"][0]       # the text stays small
    assert stack.layers[0].state is not None                              # the snapshot's copy was stripped, not this
    again = read_autosave(path)
    for key, tensor in stack.layers[0].state.items():
        assert torch.equal(again.layers[0].state[key], tensor)
    # Smaller again: the stale sidecar goes.
    write_autosave(conv_stack(3, 6, 3), path)
    assert not sidecar_path(path).exists()
    remove_autosave(path)
    assert not path.exists()


class _Marker:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


def test_a_sidecar_that_would_run_code_is_refused_without_running_it(tmp_path):
    path = tmp_path / "autosave.json"
    write_autosave(conv_stack(64, 128, 3), path)
    marker = tmp_path / "ran.txt"
    with open(sidecar_path(path), "wb") as f:
        pickle.dump({"conv1": _Marker(marker)}, f)
    with pytest.raises(StackError, match="cannot be read"):
        read_autosave(path)
    assert not marker.exists()

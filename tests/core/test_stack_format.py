"""The stack JSON format: what loads, what is refused (with a message naming the layer and the key),
exact round trips and atomic saves."""

from __future__ import annotations

import json
import math
import os
import struct

import numpy as np
import pytest
import torch

from explorer.core import stack as stack_module
from explorer.core.engine import run_stack
from explorer.core.examples import examples
from explorer.core.layers import LayerSpec
from explorer.core.stack import (
    FORMAT,
    InputSpec,
    Stack,
    StackError,
    default_name,
    dump_stack,
    load_stack,
    parse_stack,
    save_stack,
    stack_from_dict,
    stack_to_dict,
)

CONV = {"type": "Conv2d", "name": "conv1", "args": {"in_channels": 3, "out_channels": 6, "kernel_size": 3}}


def _refused(data) -> str:
    with pytest.raises(StackError) as e:
        stack_from_dict(data)
    text = str(e.value)
    assert "\n" not in text
    return text


# ---------------------------------------------------------------- what loads
def test_the_spec_example_loads():
    stack = stack_from_dict({
        "format": "feature-map-explorer/stack", "version": 1, "seed": 0,
        "input": {"channels": 3, "size": [32, 32]},
        "layers": [
            {"type": "Conv2d", "name": "conv1", "args": {"in_channels": 3, "out_channels": 6, "kernel_size": 3},
             "enabled": True},
            {"type": "MaxPool2d", "name": "pool1", "args": {"kernel_size": 2}},
            {"type": "MaxUnpool2d", "name": "unpool1", "args": {"kernel_size": 2}, "indices_from": "pool1"},
        ],
    })
    assert stack.names() == ["conv1", "pool1", "unpool1"]
    assert stack.input == InputSpec(3, (32, 32))
    assert stack.seed == 0 and stack.mode == "eval"
    assert stack.layers[2].indices_from == "pool1"


def test_minimal_stack_takes_defaults():
    stack = stack_from_dict({"layers": [{"type": "ReLU"}]})
    assert stack.seed == 0 and stack.mode == "eval"
    assert stack.input == InputSpec(None, None)
    spec = stack.layers[0]
    assert spec.enabled and spec.args == {} and spec.state is None and spec.full_args() == {"inplace": False}


def test_zero_layers_load_and_run():
    stack = stack_from_dict({"layers": []})
    assert stack.layers == []
    result = run_stack(stack, torch.ones(1, 3, 4, 4), "cpu")
    assert result.ok and result.layers == [] and result.input_shape == (1, 3, 4, 4)
    assert stack_from_dict(json.loads(dump_stack(stack))).layers == []


def test_default_names_are_readable_and_unique():
    stack = stack_from_dict({"layers": [
        {"type": "Conv2d", "args": CONV["args"]}, {"type": "ReLU"}, {"type": "MaxPool2d", "args": {"kernel_size": 2}},
        {"type": "Conv2d", "args": {"in_channels": 6, "out_channels": 6, "kernel_size": 1}}, {"type": "ReLU"},
        {"type": "Flatten"}, {"type": "Linear", "args": {"in_features": 1, "out_features": 1}},
        {"type": "BatchNorm2d", "args": {"num_features": 1}}, {"type": "AvgPool2d", "args": {"kernel_size": 1}},
    ]})
    assert stack.names() == ["conv1", "relu1", "pool1", "conv2", "relu2", "flatten1", "fc1", "bn1", "avgpool1"]


@pytest.mark.parametrize("layers,names", [
    ([{"type": "ReLU"}, {"type": "ReLU", "name": "relu1"}], ["relu2", "relu1"]),
    ([{"type": "ReLU", "name": "relu1"}, {"type": "ReLU"}], ["relu1", "relu2"]),
    ([{"type": "ReLU"}, {"type": "ReLU"}, {"type": "ReLU", "name": "relu2"}], ["relu1", "relu3", "relu2"]),
    ([{"type": "MaxPool2d", "args": {"kernel_size": 2}}, {"type": "MaxPool2d", "name": "pool1", "args": {"kernel_size": 1}}],
     ["pool2", "pool1"]),
])
def test_default_names_never_take_a_name_given_later(layers, names):
    assert stack_from_dict({"layers": layers}).names() == names


def test_default_name_function():
    assert default_name([], "Conv2d") == "conv1"
    assert default_name(["conv1", "conv3"], "Conv2d") == "conv2"
    assert default_name({"fc1"}, "Linear") == "fc2"
    assert default_name([], "LeakyReLU") == "leakyrelu1"
    assert default_name([], "ConvTranspose2d") == "deconv1"


def test_input_block_optional_fields():
    assert stack_from_dict({"input": {"channels": 1}, "layers": []}).input == InputSpec(1, None)
    assert stack_from_dict({"input": {"size": [9, 7]}, "layers": []}).input == InputSpec(None, (9, 7))


# ---------------------------------------------------------------- what is refused
def _layer_error(layer: dict, index: int = 1, name: str | None = None) -> str:
    """The layer is put second, after a ReLU, so the index in the message is checked too."""
    text = _refused({"layers": [{"type": "ReLU", "name": "first"}, layer]})
    assert f"layer {index}" in text
    if name:
        assert f"'{name}'" in text
    return text


def test_unknown_type_lists_the_known_types():
    text = _layer_error({"type": "Conv3d", "name": "c"}, name="c")
    assert "'Conv3d'" in text and "Conv2d" in text and "MaxUnpool2d" in text


def test_misspelt_arg_names_layer_key_and_lists_the_args():
    text = _layer_error({"type": "Conv2d", "name": "c", "args": {
        "in_channels": 3, "out_channels": 6, "kernal_size": 3}}, name="c")
    assert "kernal_size" in text
    assert "its arguments are: in_channels, out_channels, kernel_size, stride, padding" in text


def test_an_unnamed_layer_is_named_by_its_default_name():
    text = _layer_error({"type": "Conv2d", "args": {"in_channels": 3, "out_channels": 6}})
    assert "layer 1 'conv1' (Conv2d)" in text and "kernel_size" in text


@pytest.mark.parametrize("args,key,words", [
    ({"in_channels": 3, "out_channels": 6, "kernel_size": "3"}, "kernel_size", "whole number or a pair"),
    ({"in_channels": 3, "out_channels": 6, "kernel_size": 2.5}, "kernel_size", "2.5"),
    ({"in_channels": True, "out_channels": 6, "kernel_size": 3}, "in_channels", "whole number"),
    ({"in_channels": 3, "out_channels": 6, "kernel_size": [3, 3, 3]}, "kernel_size", "[3, 3, 3]"),
    ({"in_channels": 3, "out_channels": 6, "kernel_size": 3, "stride": 0}, "stride", "at least 1"),
    ({"in_channels": 3, "out_channels": 6, "kernel_size": 3, "padding": -1}, "padding", "at least 0"),
    ({"in_channels": 3, "out_channels": 6, "kernel_size": 3, "padding": "full"}, "padding", "'same' or 'valid'"),
    ({"in_channels": 3, "out_channels": 6, "kernel_size": 3, "bias": 1}, "bias", "true or false"),
    ({"in_channels": 3, "out_channels": 6, "kernel_size": 3, "padding_mode": "mirror"}, "padding_mode", "'reflect'"),
    ({"in_channels": 3, "out_channels": 6, "kernel_size": 3, "groups": 2}, "groups", "divide"),
    ({"in_channels": 3, "out_channels": 6, "kernel_size": 3, "padding": "same", "stride": 2}, "padding", "stride 1"),
    ({"in_channels": 3, "out_channels": 6, "kernel_size": 3, "stride": None}, "stride", "not null"),
])
def test_wrong_conv_arg_values(args, key, words):
    text = _layer_error({"type": "Conv2d", "name": "c", "args": args}, name="c")
    assert f"'{key}'" in text and words in text


@pytest.mark.parametrize("layer,key,words", [
    ({"type": "ConvTranspose2d", "args": {"in_channels": 1, "out_channels": 1, "kernel_size": 3, "output_padding": 1}},
     "output_padding", "smaller than either stride or dilation"),
    ({"type": "MaxPool2d", "args": {"kernel_size": 2, "padding": 2}}, "padding", "half the kernel"),
    ({"type": "AvgPool2d", "args": {"kernel_size": 2, "divisor_override": 0}}, "divisor_override", "at least 1"),
    ({"type": "Upsample", "args": {"scale_factor": 2, "align_corners": True}}, "align_corners", "bilinear or bicubic"),
    ({"type": "Upsample", "args": {}}, "scale_factor", "exactly one of size or scale_factor"),
    ({"type": "Upsample", "args": {"size": 4, "scale_factor": 2}}, "size", "exactly one"),
    ({"type": "Upsample", "args": {"size": 4, "mode": "trilinear"}}, "mode", "'bicubic'"),
    ({"type": "RReLU", "args": {"lower": 0.5, "upper": 0.2}}, "lower", "must not exceed"),
    ({"type": "Dropout", "args": {"p": 1.5}}, "p", "at most 1"),
    ({"type": "LeakyReLU", "args": {"negative_slope": "small"}}, "negative_slope", "a number"),
    ({"type": "Softmax", "args": {"dim": 1.0}}, "dim", "dimension number"),
    ({"type": "BatchNorm2d", "args": {"num_features": 0}}, "num_features", "at least 1"),
    ({"type": "Linear", "args": {"in_features": 3}}, "out_features", "needs"),
    ({"type": "Flatten", "args": {"start_dim": "1"}}, "start_dim", "whole number"),
    ({"type": "Sigmoid", "args": {"inplace": True}}, "inplace", "none"),
])
def test_wrong_arg_values_other_layers(layer, key, words):
    text = _layer_error({**layer, "name": "L"}, name="L")
    assert f"'{key}'" in text and words in text


def test_args_must_be_an_object():
    assert "'args'" in _layer_error({"type": "ReLU", "name": "r", "args": [1]}, name="r")


@pytest.mark.parametrize("name", ["", "   ", 3, ["x"]])
def test_bad_names(name):
    assert "'name'" in _layer_error({"type": "ReLU", "name": name})


def test_duplicate_names():
    text = _refused({"layers": [{"type": "ReLU", "name": "a"}, {"type": "Sigmoid", "name": "b"},
                                {"type": "Tanh", "name": "a"}]})
    assert "layer 2 'a' (Tanh)" in text and "used by an earlier layer" in text


def test_enabled_must_be_a_bool():
    assert "'enabled'" in _layer_error({"type": "ReLU", "name": "r", "enabled": "no"}, name="r")


def test_unknown_layer_key():
    text = _layer_error({"type": "ReLU", "name": "r", "arguments": {}}, name="r")
    assert "'arguments'" in text and "indices_from" in text


def test_layer_must_be_an_object():
    assert "layer 1" in _refused({"layers": [{"type": "ReLU"}, "ReLU"]})


@pytest.mark.parametrize("layers,words", [
    ([{"type": "MaxUnpool2d", "name": "u", "args": {"kernel_size": 2}}], "none in this stack"),
    ([{"type": "MaxUnpool2d", "name": "u", "args": {"kernel_size": 2}, "indices_from": "p"},
      {"type": "MaxPool2d", "name": "p", "args": {"kernel_size": 2}}], "'p'"),                      # later, not earlier
    ([{"type": "AvgPool2d", "name": "p", "args": {"kernel_size": 2}},
      {"type": "MaxUnpool2d", "name": "u", "args": {"kernel_size": 2}, "indices_from": "p"}], "none in this stack"),
    ([{"type": "MaxPool2d", "name": "pool", "args": {"kernel_size": 2}},
      {"type": "MaxUnpool2d", "name": "u", "args": {"kernel_size": 2}, "indices_from": "poool"}], "pool"),
])
def test_indices_from_must_name_an_earlier_maxpool(layers, words):
    text = _refused({"layers": layers})
    assert "'u'" in text and "'indices_from'" in text and "earlier MaxPool2d" in text and words in text


def test_only_unpool_takes_indices_from():
    text = _refused({"layers": [{"type": "MaxPool2d", "name": "p", "args": {"kernel_size": 2}},
                                {"type": "ReLU", "name": "r", "indices_from": "p"}]})
    assert "layer 1 'r'" in text and "'indices_from'" in text


def test_state_of_wrong_shape_says_expected_and_got():
    text = _layer_error({**CONV, "state": {"weight": [[[[0.0] * 3] * 3] * 3] * 5}}, name="conv1")
    assert "'weight'" in text and "[5, 3, 3, 3]" in text and "[6, 3, 3, 3]" in text


@pytest.mark.parametrize("state,words", [
    ({"weights": []}, "no entry 'weights'"),
    ({"bias": [1, 2, [3], 4, 5, 6]}, "rectangular"),
    ({"bias": [1, 2, "3", 4, 5, 6]}, "rectangular"),
    ({"bias": [1, 2, True, 4, 5, 6]}, "rectangular"),
    ([1, 2], "'state'"),
])
def test_bad_state(state, words):
    text = _layer_error({**CONV, "state": state}, name="conv1")
    assert words in text


def test_state_for_a_layer_without_params():
    text = _layer_error({"type": "ReLU", "name": "r", "state": {"weight": [1.0]}}, name="r")
    assert "no parameters" in text


@pytest.mark.parametrize("data,words", [
    ([], "JSON object"),
    ({"format": "something-else", "layers": []}, "'something-else'"),
    ({"version": 2, "layers": []}, "version 2 is not supported"),
    ({"layers": [], "extra": 1}, "'extra'"),
    ({"seed": -1, "layers": []}, "'seed'"),
    ({"seed": True, "layers": []}, "'seed'"),
    ({"seed": "0", "layers": []}, "'seed'"),
    ({"mode": "training", "layers": []}, "'mode'"),
    ({"description": 3, "layers": []}, "'description'"),
    ({"input": [3, 32, 32], "layers": []}, "'input'"),
    ({"input": {"channels": 2}, "layers": []}, "'channels'"),
    ({"input": {"channels": True}, "layers": []}, "'channels'"),
    ({"input": {"size": [32]}, "layers": []}, "'size'"),
    ({"input": {"size": [0, 32]}, "layers": []}, "'size'"),
    ({"input": {"size": "32x32"}, "layers": []}, "'size'"),
    ({"input": {"colour": True}, "layers": []}, "'colour'"),
    ({"layers": {"type": "ReLU"}}, "'layers'"),
])
def test_top_level_errors(data, words):
    assert words in _refused(data)


def test_parse_errors_say_where(tmp_path):
    with pytest.raises(StackError) as e:
        parse_stack('{"layers": [\n  {"type": "ReLU",}\n]}')
    assert "line 2" in str(e.value)
    missing = tmp_path / "nope.json"
    with pytest.raises(StackError, match="does not exist"):
        load_stack(missing)
    with pytest.raises(StackError, match="folder"):
        load_stack(tmp_path)
    binary = tmp_path / "bin.json"
    binary.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(StackError, match="not a text"):
        load_stack(binary)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"layers": [{"type": "Conv3d"}]}))
    with pytest.raises(StackError) as e:
        load_stack(bad)
    assert str(e.value).startswith("bad.json: layer 0")


# ---------------------------------------------------------------- round trips
def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view(torch.int32) if t.dtype == torch.float32 else t


def _awkward_floats(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = rng.standard_normal(n).astype(np.float32) * np.float32(10) ** rng.integers(-30, 30, n).astype(np.float32)
    special = np.array([0.0, -0.0, 1e-45, -1e-45, 1.17549435e-38, 5.9e-39, -3.4028235e38, 3.4028235e38,
                        np.float32(1) / np.float32(3), np.inf, -np.inf], dtype=np.float32)
    values[: min(n, len(special))] = special[:n]
    return values


def test_round_trip_is_bit_exact(tmp_path):
    conv = LayerSpec("Conv2d", "conv1", {"in_channels": 2, "out_channels": 3, "kernel_size": [3, 2]})
    weight = torch.from_numpy(_awkward_floats(3 * 2 * 3 * 2, 0).reshape(3, 2, 3, 2))
    bias = torch.from_numpy(_awkward_floats(3, 1))
    bn = LayerSpec("BatchNorm2d", "bn1", {"num_features": 3, "momentum": None})
    bn_state = {"weight": torch.from_numpy(_awkward_floats(3, 2)), "bias": torch.tensor([-0.0, 0.0, 1e-40]),
                "running_mean": torch.tensor([1.5, -2.0, 3.0]), "running_var": torch.tensor([1.0, 2.0, 1e-38]),
                "num_batches_tracked": torch.tensor(12345678901)}
    stack = Stack([
        conv.copy(state={"weight": weight, "bias": bias}),
        bn.copy(state=bn_state),
        LayerSpec("MaxPool2d", "pool1", {"kernel_size": [2, 1], "ceil_mode": True}),
        LayerSpec("MaxUnpool2d", "unpool1", {"kernel_size": [2, 1]}, enabled=False, indices_from="pool1"),
        LayerSpec("Upsample", "up1", {"scale_factor": [1.5, 2.0], "mode": "bilinear", "align_corners": None}),
    ], seed=42, input=InputSpec(1, (20, 30)), mode="train", description="round trip ✓ «ünïcode»")
    path = tmp_path / "s.json"
    save_stack(stack, path)
    loaded = load_stack(path)
    assert loaded.seed == 42 and loaded.mode == "train" and loaded.input == InputSpec(1, (20, 30))
    assert loaded.description == stack.description
    assert loaded.names() == stack.names()
    for a, b in zip(stack.layers, loaded.layers):
        assert (a.type, a.name, a.enabled, a.indices_from) == (b.type, b.name, b.enabled, b.indices_from)
        assert a.full_args() == b.full_args()
        assert (a.state is None) == (b.state is None)
        for key, value in (a.state or {}).items():
            assert b.state[key].dtype == value.dtype
            assert torch.equal(_bits(b.state[key]), _bits(value)), key
    # negative zero and subnormals survive
    w = loaded.layers[0].state["weight"].flatten()
    assert math.copysign(1.0, float(w[1])) == -1.0 and float(w[1]) == 0.0
    assert struct.pack("<f", float(w[2])) == struct.pack("<f", 1e-45)
    # saving what was loaded gives the same file
    assert dump_stack(loaded) == path.read_text(encoding="utf-8")


def test_round_trip_gives_the_same_outputs(tmp_path):
    stack = stack_from_dict({"seed": 3, "layers": [
        CONV, {"type": "ReLU"}, {"type": "Linear", "args": {"in_features": 6, "out_features": 2}}]})
    x = torch.rand(1, 3, 8, 8)
    path = tmp_path / "s.json"
    save_stack(stack, path)
    a = run_stack(stack, x, "cpu")
    b = run_stack(load_stack(path), x, "cpu")
    assert all(torch.equal(p.output, q.output) for p, q in zip(a.layers, b.layers))


@pytest.mark.parametrize("example", examples(), ids=lambda e: e.name)
def test_example_files_round_trip(example):
    data = json.loads(example.path.read_text(encoding="utf-8"))
    stack = load_stack(example.path)
    assert stack_to_dict(stack_from_dict(stack_to_dict(stack))) == stack_to_dict(stack)
    assert stack_to_dict(stack)["format"] == FORMAT
    saved = stack_to_dict(stack)["layers"]
    assert len(saved) == len(data["layers"])
    for ours, theirs in zip(saved, data["layers"]):
        for key in ("type", "name", "args", "indices_from"):
            assert ours.get(key) == theirs.get(key)
        assert ours.get("enabled", True) == theirs.get("enabled", True)
        # the file's numbers as float32, exactly
        assert (ours.get("state") or {}).keys() == (theirs.get("state") or {}).keys()
        for key, value in (theirs.get("state") or {}).items():
            assert torch.equal(torch.tensor(ours["state"][key]), torch.tensor(value, dtype=torch.float32))


def test_dump_writes_defaults_compactly():
    data = stack_to_dict(stack_from_dict({"layers": [{"type": "ReLU"}]}))
    assert data == {"format": FORMAT, "version": 1, "seed": 0, "layers": [{"type": "ReLU", "name": "relu1"}]}


# ---------------------------------------------------------------- atomic save
def _files(folder):
    return sorted(p.name for p in folder.iterdir())


def test_save_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "s.json"
    save_stack(stack_from_dict({"layers": [CONV]}), path)
    save_stack(stack_from_dict({"layers": []}), path)
    assert _files(tmp_path) == ["s.json"]
    assert load_stack(path).layers == []


def test_a_failing_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "s.json"
    save_stack(stack_from_dict({"layers": [CONV]}), path)
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(stack_module.os, "replace", broken_replace)
    with pytest.raises(OSError):
        save_stack(stack_from_dict({"layers": []}), path)
    assert path.read_bytes() == before
    assert _files(tmp_path) == ["s.json"]


def test_a_failing_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "s.json"
    save_stack(stack_from_dict({"layers": [CONV]}), path)
    before = path.read_bytes()

    def broken_fsync(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(stack_module.os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        save_stack(stack_from_dict({"layers": []}), path)
    assert path.read_bytes() == before
    assert _files(tmp_path) == ["s.json"]
    assert os.path.exists(path)

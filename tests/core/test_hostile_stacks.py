"""Stack files a user or a generator can write never reach the "unexpected error" fallback: each
is refused on load (exit code 2) with one sentence naming the layer and the key, or runs as torch
would. Also the limits behind that: parameter memory from the arguments, the input size, a run's
memory, and the CLI's top-level window options."""

from __future__ import annotations

import json
import random
import re

import pytest
import torch
from torch import nn

from explorer import cli
from explorer.cli import main
from explorer.core import engine
from explorer.core.checks import MAX_OUTPUT_ELEMENTS
from explorer.core.editing import new_layer
from explorer.core.engine import StackRunner, estimate_run_bytes, run_stack
from explorer.core.inputs import DEFAULT_MAX_PIXELS
from explorer.core.layers import (LAYER_TYPES, LayerArgError, LayerSpec, build_module, check_args, layer_bytes,
                                  param_count, state_shapes)
from explorer.core.render import grid_layout
from explorer.core.shapes import infer_shapes, total_params
from explorer.core.stack import StackError, parse_stack, stack_from_dict

H = '"format": "feature-map-explorer/stack", "version": 1'
CONV = '{"type": "Conv2d", "name": "c", "args": {"in_channels": 1, "out_channels": 1, "kernel_size": 1}'


def _cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err + out
    assert "unexpected error" not in err, err
    return code, out, err


def _one_sentence(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert re.match(r"feature-map-explorer: ", lines[0]), lines[0]
    assert len(lines[0]) < 400, lines[0]
    return lines[0]


# text of the file -> what its one sentence must say
HOSTILE = {
    "deep_array": ("[" * 100000, "nested too deeply"),
    "deep_in_state": ("{" + H + ', "layers": [' + CONV + ', "state": {"bias": ' + "[" * 1500 + "]" * 1500 + "}}]}",
                      "nested too deeply"),
    "deep_in_args": ("{" + H + ', "layers": [{"type": "ReLU", "name": "r", "args": {"inplace": '
                     + "[" * 1500 + "]" * 1500 + "}}]}", "nested too deeply"),
    "deep_but_parseable_state": ("{" + H + ', "layers": [' + CONV + ', "state": {"bias": ' + "[" * 500 + "]" * 500
                                 + "}}]}", "layer 0 'c' (Conv2d): state 'bias' must be a rectangular nested list"),
    "deep_but_parseable_arg": ("{" + H + ', "layers": [{"type": "ReLU", "name": "r", "args": {"inplace": '
                               + "[" * 500 + "]" * 500 + "}}]}", "layer 0 'r' (ReLU): args 'inplace'"),
    "type_list": ("{" + H + ', "layers": [{"type": ["ReLU"], "name": "r"}]}', "layer 0 'r': unknown layer type ['ReLU']"),
    "type_object": ("{" + H + ', "layers": [{"type": {"t": 1}, "name": "r"}]}', "layer 0 'r': unknown layer type"),
    "indices_from_list": ("{" + H + ', "layers": [{"type": "MaxPool2d", "name": "p", "args": {"kernel_size": 2}}, '
                          '{"type": "MaxUnpool2d", "name": "u", "args": {"kernel_size": 2}, "indices_from": ["p"]}]}',
                          "layer 1 'u' (MaxUnpool2d): 'indices_from' must name an earlier MaxPool2d"),
    "indices_from_object": ("{" + H + ', "layers": [{"type": "MaxPool2d", "name": "p", "args": {"kernel_size": 2}}, '
                            '{"type": "MaxUnpool2d", "name": "u", "args": {"kernel_size": 2}, "indices_from": {"p": 1}}]}',
                            "'indices_from' must name an earlier MaxPool2d"),
    "mode_list": ("{" + H + ', "mode": ["eval"], "layers": []}', "'mode' must be 'eval' or 'train'"),
    "prelu_2_64": ("{" + H + ', "layers": [{"type": "PReLU", "name": "pr", "args": {"num_parameters": 18446744073709551616}}]}',
                   "layer 0 'pr' (PReLU): args 'num_parameters'"),
    "prelu_2_31": ("{" + H + ', "layers": [{"type": "PReLU", "name": "pr", "args": {"num_parameters": 2147483647}}]}',
                   "layer 0 'pr' (PReLU): args 'num_parameters': its weights would need 8.6 GB"),
    "digits_5000_seed": ("{" + H + ', "seed": ' + "9" * 5000 + ', "layers": []}', "'seed' must be a whole number"),
    "digits_5000_arg": ("{" + H + ', "layers": [{"type": "Conv2d", "name": "c", "args": {"in_channels": 1, '
                        '"out_channels": ' + "7" * 5000 + ', "kernel_size": 1}}]}',
                        "layer 0 'c' (Conv2d): args 'out_channels'"),
    "digits_5000_state": ("{" + H + ', "layers": [' + CONV + ', "state": {"bias": [' + "1" * 5000 + "]}}]}",
                          "layer 0 'c' (Conv2d): state 'bias' holds a 5,000-digit number"),
    "int_1e400_state": ("{" + H + ', "layers": [' + CONV + ', "state": {"bias": [1' + "0" * 400 + "]}}]}",
                        "layer 0 'c' (Conv2d): state 'bias' holds a number too large for a float32"),
    "float_1e400_state": ("{" + H + ', "layers": [' + CONV + ', "state": {"bias": [1e400]}}]}',
                          "layer 0 'c' (Conv2d): state 'bias' holds 1e400"),
    "float_1e39_state": ("{" + H + ', "layers": [' + CONV + ', "state": {"bias": [1e39]}}]}',
                         "state 'bias' holds 1e+39, which is too large for a float32"),
    "float_1e400_arg": ("{" + H + ', "layers": [{"type": "LeakyReLU", "name": "l", "args": {"negative_slope": 1e400}}]}',
                        "layer 0 'l' (LeakyReLU): args 'negative_slope'"),
    "nan_num_batches_tracked": ("{" + H + ', "layers": [{"type": "BatchNorm2d", "name": "b", "args": {"num_features": 1}, '
                                '"state": {"num_batches_tracked": NaN}}]}',
                                "layer 0 'b' (BatchNorm2d): state 'num_batches_tracked' must hold whole numbers"),
    "float_num_batches_tracked": ("{" + H + ', "layers": [{"type": "BatchNorm2d", "name": "b", "args": {"num_features": 1}, '
                                  '"state": {"num_batches_tracked": 2.5}}]}', "state 'num_batches_tracked'"),
    "huge_num_batches_tracked": ("{" + H + ', "layers": [{"type": "BatchNorm2d", "name": "b", "args": {"num_features": 1}, '
                                 '"state": {"num_batches_tracked": 9223372036854775808}}]}', "state 'num_batches_tracked'"),
    "input_size_1e12": ("{" + H + ', "input": {"size": [1000000000000, 1000000000000]}, "layers": []}',
                        "input 'size' 1000000000000 x 1000000000000 has"),
    "input_size_30000": ("{" + H + ', "input": {"size": [30000, 30000]}, "layers": []}',
                         f"more than the limit of {DEFAULT_MAX_PIXELS:,}"),
    "input_channels_float": ("{" + H + ', "input": {"channels": 1.0}, "layers": []}', "input 'channels' must be 1"),
    "upsample_nan": ("{" + H + ', "layers": [{"type": "Upsample", "name": "u", "args": {"scale_factor": NaN}}]}',
                     "layer 0 'u' (Upsample): args 'scale_factor'"),
    "upsample_infinity": ("{" + H + ', "layers": [{"type": "Upsample", "name": "u", "args": {"scale_factor": Infinity}}]}',
                          "layer 0 'u' (Upsample): args 'scale_factor'"),
    "upsample_pair_nan": ("{" + H + ', "layers": [{"type": "Upsample", "name": "u", "args": {"scale_factor": [2, NaN]}}]}',
                          "args 'scale_factor'"),
    "upsample_recompute_with_size": ("{" + H + ', "layers": [{"type": "Upsample", "name": "u", "args": {"size": 4, '
                                     '"recompute_scale_factor": true}}]}', "args 'recompute_scale_factor'"),
    "upsample_huge_scale": ("{" + H + ', "layers": [{"type": "Upsample", "name": "u", "args": {"scale_factor": 1e300}}]}',
                            "args 'scale_factor'"),
    "name_lone_surrogate": ("{" + H + ', "layers": [{"type": "ReLU", "name": "\\ud800"}]}',
                            "layer 0 (ReLU): 'name' must be printable text on one line, not '\\ud800'"),
    "name_newline": ("{" + H + ', "layers": [{"type": "ReLU", "name": "a\\nb"}]}',
                     "layer 0 (ReLU): 'name' must be printable text on one line, not 'a\\nb'"),
    "name_too_long": ("{" + H + ', "layers": [{"type": "ReLU", "name": "' + "n" * 5000 + '"}]}',
                      "'name' must be at most 100 characters long"),
    "conv_weights_150_gb": ("{" + H + ', "layers": [{"type": "ConvTranspose2d", "name": "d", "args": {"in_channels": 96774, '
                            '"out_channels": 96774, "kernel_size": 2, "stride": 2}}]}',
                            "layer 0 'd' (ConvTranspose2d): args 'in_channels': its weights would need 149.8 GB"),
    "kernel_2_40": ("{" + H + ', "layers": [{"type": "MaxPool2d", "name": "p", "args": {"kernel_size": 1099511627776}}]}',
                    "layer 0 'p' (MaxPool2d): args 'kernel_size'"),
    "unknown_key_newline": ("{" + H + ', "layers": [{"type": "ReLU", "name": "r", "x\\ny": 1}]}',
                            "layer 0 'r' (ReLU): unknown key 'x\\ny'"),
}


@pytest.mark.parametrize("command", ["shapes", "run"])
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_stack_files_get_one_sentence_naming_layer_and_key(case, command, tmp_path, capsys):
    text, expected = HOSTILE[case]
    path = tmp_path / "s.json"
    path.write_text(text, encoding="utf-8")
    argv = ["shapes", path, "--input-shape", "1,1,8,8"] if command == "shapes" else \
        ["run", path, "--sample", "cat", "--out", tmp_path / "out"]
    code, _, err = _cli(capsys, *argv)
    line = _one_sentence(err)
    assert code == 2, line
    assert expected in line, line
    assert not (tmp_path / "out").exists()        # refused before anything ran or was written


def test_numbers_that_fit_still_load_exactly():
    # the new limits leave ordinary large values alone: a state of float32 extremes round-trips,
    # infinity and NaN weights written by the app load back, the largest whole argument is accepted
    big = float(torch.finfo(torch.float32).max)
    stack = parse_stack("{" + H + ', "seed": 9223372036854775807, "layers": [' + CONV
                        + f', "state": {{"bias": [{big!r}], "weight": [[[[-Infinity]]]]}}}}]}}')
    assert stack.seed == 2**63 - 1
    assert stack.layers[0].state["bias"].item() == big
    assert stack.layers[0].state["weight"].item() == float("-inf")
    assert check_args("Softmax", {"dim": -2147483647})["dim"] == -2147483647


@pytest.mark.parametrize("shape", ["1,3,99999999999,99999999999", "2147483647,2147483647,3,3", "1,1,1," + "9" * 5000])
def test_shapes_refuses_an_input_shape_too_large_with_one_sentence(shape, capsys):
    code, _, err = _cli(capsys, "shapes", "lenet", "--input-shape", shape)
    assert code == 2
    assert "--input-shape" in _one_sentence(err)


def test_shapes_takes_a_large_input_shape_that_fits():
    rows = infer_shapes(stack_from_dict({"layers": [{"type": "Upsample", "name": "u", "args": {"scale_factor": 2}}]}),
                        (1, 3, 100000, 100000))
    assert rows[0].output_shape == (1, 3, 200000, 200000) and rows[0].error is None


def test_an_output_larger_than_any_memory_is_a_layer_error_not_an_overflow():
    stack = stack_from_dict({"layers": [
        {"type": "Upsample", "name": "u", "args": {"size": [2147483647, 2147483647]}},
        {"type": "ConvTranspose2d", "name": "d", "args": {"in_channels": 3, "out_channels": 3, "kernel_size": 1,
                                                          "stride": 2147483647}},
    ]})
    rows = infer_shapes(stack, (4, 3, 8, 8))
    assert rows[0].error == ("Upsample 'u': its output would be [4, 3, 2147483647, 2147483647], "
                             f"{4 * 3 * 2147483647 ** 2:,} values, more than any memory holds.")
    stack.layers[0].enabled = False
    assert "ConvTranspose2d 'd': its output would be" in infer_shapes(stack, (4, 3, 8, 8))[1].error
    assert 4 * 3 * 2147483647 ** 2 > MAX_OUTPUT_ELEMENTS


# ---------------------------------------------------------------- names
def test_names_are_checked_and_quoted(capsys, tmp_path):
    ok = stack_from_dict({"layers": [{"type": "Conv2d", "name": "é conv ✓",
                                      "args": {"in_channels": 3, "out_channels": 4, "kernel_size": 99}}]})
    rows = infer_shapes(ok, (1, 3, 8, 8))
    assert rows[0].error.startswith("Conv2d 'é conv ✓': kernel 99x99")
    for bad in ["\t", " x", "x\r", "\x00", "a\u2028b"]:
        with pytest.raises(StackError, match="'name' must"):
            stack_from_dict({"layers": [{"type": "ReLU", "name": bad}]})


# ---------------------------------------------------------------- BatchNorm2d without per-channel tensors
@pytest.mark.parametrize("affine,track", [(False, False), (True, False), (False, True), (True, True)])
def test_batchnorm_channel_mismatch_matches_torch(affine, track):
    args = {"num_features": 3, "affine": affine, "track_running_stats": track}
    stack = stack_from_dict({"layers": [{"type": "BatchNorm2d", "name": "bn", "args": args}]})
    x = torch.rand(2, 1, 5, 5)
    module = nn.BatchNorm2d(**args).eval()
    try:
        expected = module(x)
    except RuntimeError:
        expected = None
    result = run_stack(stack, x, "cpu")
    meta = infer_shapes(stack, (2, 1, 5, 5))
    if expected is None:
        assert result.error == ("BatchNorm2d 'bn' expects 3 channels (num_features) but its input has 1 "
                                "(shape [2, 1, 5, 5]).")
        assert meta[0].error == result.error
    else:
        assert result.ok and meta[0].error is None
        torch.testing.assert_close(result.layers[0].output, expected, rtol=0, atol=0)


# ---------------------------------------------------------------- parameters from the arguments
def _random_args(rng: random.Random, type_name: str) -> dict:
    if type_name in ("Conv2d", "ConvTranspose2d"):
        g = rng.choice([1, 2, 3])
        return {"in_channels": g * rng.randint(1, 5), "out_channels": g * rng.randint(1, 5), "groups": g,
                "kernel_size": rng.choice([1, 3, [2, 5]]), "bias": rng.random() < 0.5}
    if type_name == "Linear":
        return {"in_features": rng.randint(1, 50), "out_features": rng.randint(1, 50), "bias": rng.random() < 0.5}
    if type_name == "PReLU":
        return {"num_parameters": rng.randint(1, 9)}
    if type_name == "BatchNorm2d":
        args = {"num_features": rng.randint(1, 9), "affine": rng.random() < 0.5, "track_running_stats": rng.random() < 0.5}
        if "bias" in LAYER_TYPES["BatchNorm2d"].arg_names:
            args["bias"] = rng.random() < 0.5
        return args
    if type_name in ("MaxPool2d", "AvgPool2d", "MaxUnpool2d"):
        return {"kernel_size": 2}
    if type_name == "Upsample":
        return {"scale_factor": 2.0}
    return {}


@pytest.mark.parametrize("type_name", sorted(LAYER_TYPES))
def test_parameter_counts_and_state_shapes_from_arguments_match_torch(type_name):
    rng = random.Random(type_name)
    for _ in range(25):
        spec = LayerSpec(type_name, "x", _random_args(rng, type_name))
        module = build_module(spec)
        assert param_count(spec) == sum(p.numel() for p in module.parameters())
        assert list(state_shapes(spec).items()) == [(k, tuple(v.shape)) for k, v in module.state_dict().items()]
        assert layer_bytes(spec) == sum(v.numel() * v.element_size() for v in module.state_dict().values())


def test_a_layer_too_large_for_memory_is_refused_before_anything_is_allocated(monkeypatch):
    built = []
    monkeypatch.setattr(nn.ConvTranspose2d, "__init__", lambda *a, **k: built.append(a))
    with pytest.raises(LayerArgError) as e:
        check_args("ConvTranspose2d", {"in_channels": 96774, "out_channels": 96774, "kernel_size": 2, "stride": 2})
    assert e.value.key == "in_channels"
    assert str(e.value) == ("its weights would need 149.8 GB (37,460,925,078 parameters), more than the 4.0 GB "
                            "one layer may use; make in_channels smaller.")
    with pytest.raises(LayerArgError, match=r"^its weights would need 160.0 GB \(40,000,200,000 parameters\)"):
        check_args("Linear", {"in_features": 200000, "out_features": 200000})
    assert built == []


def test_total_parameters_never_build_a_module(monkeypatch):
    stack = stack_from_dict({"layers": [
        {"type": "Conv2d", "name": "c", "args": {"in_channels": 3, "out_channels": 8, "kernel_size": 3}},
        {"type": "Flatten"}, {"type": "Linear", "name": "fc", "args": {"in_features": 8 * 30 * 30, "out_features": 10}}]})

    def refuse(*a, **k):
        raise AssertionError("a module was built for a parameter count")
    rows = infer_shapes(stack, (1, 3, 32, 32))
    monkeypatch.setattr("explorer.core.layers.build_module", refuse)
    from explorer.core import layers
    assert [layers.param_count(s) for s in stack.layers] == [r.params for r in rows] == [3 * 8 * 9 + 8, 0, 7200 * 10 + 10]
    assert total_params(rows) == 224 + 72010


# ---------------------------------------------------------------- auto-sized new layers
def _flattened():
    return stack_from_dict({"layers": [
        {"type": "Conv2d", "name": "conv1", "args": {"in_channels": 3, "out_channels": 6, "kernel_size": 3}},
        {"type": "MaxPool2d", "name": "pool1", "args": {"kernel_size": 2}},
        {"type": "Flatten", "name": "flatten1"}]})


@pytest.mark.parametrize("type_name", ["Conv2d", "ConvTranspose2d", "BatchNorm2d"])
def test_a_conv_after_flatten_is_not_sized_from_the_features_and_says_why(type_name):
    stack = _flattened()
    input_shape = (1, 3, 256, 256)
    spec = new_layer(stack, type_name, 3, input_shape)
    channels = spec.args.get("in_channels", spec.args.get("num_features"))
    assert channels == 6                      # the channels before the Flatten, not its 6*127*127 features
    assert layer_bytes(spec) < 10_000
    stack.layers.append(spec)
    rows = infer_shapes(stack, input_shape)
    kind = "a 4-D input" if type_name == "BatchNorm2d" else "an image-shaped input"
    assert rows[3].error == (f"{type_name} '{spec.name}' needs {kind} [N, C, H, W] but its input has shape "
                             f"[1, 96774], the output of Flatten 'flatten1'; a {type_name} cannot follow a Flatten.")
    assert run_stack(stack, torch.rand(input_shape), "cpu").error == rows[3].error


def test_a_new_layer_that_cannot_fit_in_memory_is_refused_with_a_sentence():
    stack = stack_from_dict({"layers": [{"type": "Flatten"}]})
    with pytest.raises(ValueError, match=r"^A new Linear here cannot be sized to fit: its weights would need 7.7 GB"):
        new_layer(stack, "Linear", 1, (1, 3, 8000, 8000))


def test_a_new_transposed_conv_keeps_a_free_channel_count_reasonable():
    stack = stack_from_dict({"layers": [{"type": "Conv2d", "name": "c",
                                         "args": {"in_channels": 3, "out_channels": 20000, "kernel_size": 1}}]})
    spec = new_layer(stack, "ConvTranspose2d", 1, (1, 3, 4, 4))
    assert spec.args["in_channels"] == 20000 and spec.args["out_channels"] == 512


# ---------------------------------------------------------------- grids of tall narrow maps
@pytest.mark.parametrize("count,h,w", [(1, 254, 10), (10, 640, 32), (1, 999, 32), (2, 160, 9), (3, 10000, 1),
                                       (5, 1, 10000), (1, 16, 0), (64, 4096, 2)])
def test_grid_layout_of_tall_narrow_maps(count, h, w):
    layout = grid_layout(count, h, w)
    assert 1 <= layout.cols <= count and layout.rows * layout.cols >= count
    assert (layout.rows - 1) * layout.cols < count
    assert grid_layout(count, h, w, aspect=0.0).count == count


def test_grid_layout_tall_maps_sit_side_by_side():
    assert grid_layout(10, 640, 32).cols == 10    # one row of tall tiles is closest to a square


# ---------------------------------------------------------------- the engine's cache
def test_a_freed_state_tensors_reused_id_cannot_give_a_stale_result():
    runner = StackRunner("cpu")
    x = torch.rand(1, 1, 4, 4)

    def stack_with(weight):
        return stack_from_dict({"layers": [{"type": "Conv2d", "name": "c", "args": {
            "in_channels": 1, "out_channels": 1, "kernel_size": 1, "bias": False}}]}), weight

    stack, weight = stack_with(None)
    stack.layers[0].state = {"weight": torch.full((1, 1, 1, 1), 1.0)}
    runner.run(stack, x)
    old_id = id(stack.layers[0].state["weight"])
    del stack, weight
    # Allocate new tensors until one lands where the freed one was (CPython reuses the address at
    # once when nothing holds the old tensor); the new weights must be used whatever their id.
    kept = []
    for _ in range(200):
        w = torch.full((1, 1, 1, 1), 3.0)
        if id(w) == old_id:
            break
        kept.append(w)
    stack, _ = stack_with(None)
    stack.layers[0].state = {"weight": w}
    result = runner.run(stack, x)
    torch.testing.assert_close(result.layers[0].output, 3.0 * x)


def test_an_in_place_edit_of_a_state_tensor_is_seen():
    runner = StackRunner("cpu")
    x = torch.rand(1, 1, 4, 4)
    stack = stack_from_dict({"layers": [{"type": "Conv2d", "name": "c", "args": {
        "in_channels": 1, "out_channels": 1, "kernel_size": 1, "bias": False}}]})
    stack.layers[0].state = {"weight": torch.full((1, 1, 1, 1), 1.0)}
    runner.run(stack, x)
    stack.layers[0].state["weight"].fill_(2.0)
    torch.testing.assert_close(runner.run(stack, x).layers[0].output, 2.0 * x)
    assert runner.run(stack, x).computed == []      # unchanged since: reused


# ---------------------------------------------------------------- memory for a run
def test_a_run_that_would_not_fit_in_memory_is_refused_before_it_starts(tmp_path, capsys, monkeypatch):
    stack = tmp_path / "s.json"
    stack.write_text(json.dumps({"format": "feature-map-explorer/stack", "version": 1, "input": {"size": [1000, 1000]},
                                 "layers": [{"type": "Conv2d", "name": "c", "args": {
                                     "in_channels": 3, "out_channels": 64, "kernel_size": 3, "padding": 1}}]}))
    need = estimate_run_bytes(stack_from_dict(json.loads(stack.read_text())), (1, 3, 1000, 1000))
    assert need == 4 * (3 * 1000 * 1000 + 64 * 1000 * 1000 + 64 * 27 + 64)
    monkeypatch.setattr(engine, "available_memory", lambda device: 100_000_000)
    code, _, err = _cli(capsys, "run", stack, "--sample", "cat", "--out", tmp_path / "out")
    assert code == 2
    assert _one_sentence(err) == ("feature-map-explorer: Running this stack on a [1, 3, 1000, 1000] input would need "
                                  "268.0 MB for the layer outputs, more than the 80.0 MB of memory free on cpu; "
                                  "use a smaller input (the stack's input size) or fewer channels.")
    assert not (tmp_path / "out").exists()


def test_the_runner_refuses_a_layer_whose_output_would_not_fit(monkeypatch):
    stack = stack_from_dict({"layers": [
        {"type": "ReLU", "name": "r"},
        {"type": "Upsample", "name": "up", "args": {"scale_factor": 100}}]})
    monkeypatch.setattr(engine, "available_memory", lambda device: 50_000_000)
    result = StackRunner("cpu").run(stack, torch.rand(1, 3, 64, 64))
    assert result.layers[0].error is None
    assert result.layers[1].output is None
    assert result.error == ("Upsample 'up': running it would need 491.5 MB more (491.6 MB with the layers before it), "
                            "more than the 40.0 MB of memory the app can use on cpu; use a smaller input or fewer channels.")


# ---------------------------------------------------------------- the window's options without `gui`
@pytest.mark.parametrize("argv,expected", [
    (["--image", "x.png"], {"stack": None, "image": "x.png"}),
    (["lenet", "--sample", "cat", "--device", "cpu"], {"stack": "lenet", "sample": "cat", "device": "cpu"}),
    (["--cifar", "d", "--batch", "2"], {"cifar": "d", "batch": 2}),
    ([], {"stack": None, "image": None}),
    (["gui", "--image", "x.png"], {"image": "x.png"}),
])
def test_window_options_work_without_the_word_gui(argv, expected, monkeypatch):
    seen = []
    monkeypatch.setattr(cli, "cmd_gui", lambda args: seen.append(args) or 0)
    assert main(argv) == 0
    assert seen[0].command == "gui"
    assert {k: getattr(seen[0], k) for k in expected} == expected


def test_commands_and_help_are_not_taken_for_window_options(monkeypatch, capsys):
    monkeypatch.setattr(cli, "cmd_gui", lambda args: pytest.fail("the window opened"))
    assert main(["--version"]) == 0
    assert main(["examples"]) == 0
    assert main(["--imagee", "x.png"]) == 2
    assert "unrecognized arguments: --imagee" in capsys.readouterr().err
    assert main(["shape", "lenet"]) == 2          # a mistyped command is not taken for a stack name
    assert "invalid choice: 'shape'" in capsys.readouterr().err


def test_a_stack_file_opens_the_window_without_gui(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(cli, "cmd_gui", lambda args: seen.append(args) or 0)
    path = tmp_path / "my stack"
    path.write_text("{}")
    assert main([str(path), "--device", "cpu"]) == 0
    assert (seen[0].command, seen[0].stack, seen[0].device) == ("gui", str(path), "cpu")


# ---------------------------------------------------------------- a bounded fuzz
def _mutations(rng: random.Random):
    weird = [None, True, -1, 0, 2**31, 2**64, 10**30, -(10**30), 1e308, float("nan"), float("inf"), -0.0, 0.5,
             "", "\ud800", "a\nb", "same", [], [1], [1, 2, 3], [[1]], {}, {"a": 1}, [float("nan"), 1], [2**40, 1]]
    plausible = [1, 2, 3, 4, 8, 12, 0.5, 2.0, False, True, "bilinear", [2, 2], [1, 3]]
    return rng.choice(weird if rng.random() < 0.6 else plausible)


def _slots(value, out=None):
    """Every (container, key) inside a JSON-like value: each is equally likely to be mutated."""
    out = [] if out is None else out
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        out.append((value, key))
        _slots(child, out)
    return out


def _mutate(rng: random.Random, value):
    """One random change somewhere inside a JSON-like value: a value replaced, a key added or
    removed, a list entry duplicated or removed."""
    container, key = rng.choice(_slots(value))
    action = rng.random()
    if action < 0.75:
        container[key] = _mutations(rng)
    elif action < 0.85:
        del container[key]
    elif isinstance(container, dict):
        container[rng.choice(["extra", "state", "indices_from", "enabled", "args", "name", "type", "size"])] = \
            _mutations(rng)
    else:
        container.insert(key, json.loads(json.dumps(container[key])))
    return value


def _seed_stacks():
    base = {"format": "feature-map-explorer/stack", "version": 1, "seed": 0, "input": {"channels": 3, "size": [12, 12]}}
    return [
        {**base, "layers": [
            {"type": "Conv2d", "name": "conv1", "args": {"in_channels": 3, "out_channels": 4, "kernel_size": 3,
                                                         "padding": 1}, "state": {"bias": [0.1, 0.2, 0.3, 0.4]}},
            {"type": "BatchNorm2d", "name": "bn", "args": {"num_features": 4}},
            {"type": "PReLU", "name": "pr", "args": {"num_parameters": 4}},
            {"type": "MaxPool2d", "name": "pool1", "args": {"kernel_size": 2}},
            {"type": "MaxUnpool2d", "name": "unpool1", "args": {"kernel_size": 2}, "indices_from": "pool1"},
            {"type": "Upsample", "name": "up", "args": {"scale_factor": 0.5, "mode": "bilinear"}},
            {"type": "Flatten", "name": "flat"},
            {"type": "Linear", "name": "fc", "args": {"in_features": 144, "out_features": 5}},
            {"type": "Softmax", "name": "sm", "args": {"dim": 1}}]},
        {**base, "mode": "train", "layers": [
            {"type": "ConvTranspose2d", "name": "d", "args": {"in_channels": 3, "out_channels": 2, "kernel_size": 2,
                                                              "stride": 2, "output_padding": 1}},
            {"type": "AvgPool2d", "name": "a", "args": {"kernel_size": 3, "ceil_mode": True, "padding": 1}},
            {"type": "LeakyReLU", "name": "l", "args": {"negative_slope": 0.2}},
            {"type": "Dropout", "name": "drop", "args": {"p": 0.3}},
            {"type": "RReLU", "name": "rr"}, {"type": "GELU", "name": "g", "args": {"approximate": "tanh"}}]},
    ]


def test_fuzzed_stacks_never_reach_the_unexpected_error_fallback(tmp_path, capsys):
    rng = random.Random(20261128)
    seeds = _seed_stacks()
    outcomes = {0: 0, 1: 0, 2: 0}
    for i in range(300):
        data = json.loads(json.dumps(rng.choice(seeds)))
        for _ in range(rng.randint(1, 2)):
            data = _mutate(rng, data)
        path = tmp_path / f"s{i}.json"
        path.write_text(json.dumps(data, allow_nan=True), encoding="utf-8")
        if i % 10 == 0:   # the slower full run (with files written) on a tenth of them
            argv = ["run", path, "--sample", "cat", "--out", tmp_path / f"out{i}", "--device", "cpu"]
        else:
            argv = ["shapes", path, "--input-shape", rng.choice(["1,3,12,12", "2,3,5,7", "1,1,1,1", "1,12"])]
        code, _, err = _cli(capsys, *argv)
        assert code in (0, 1, 2), (data, err)
        if code == 2:
            _one_sentence(err)
        outcomes[code] += 1
    assert outcomes[2] > 100 and outcomes[0] + outcomes[1] >= 15, outcomes     # the mutations reach both sides


@pytest.mark.parametrize("argv,fragment", [
    (["run", "x\ny", "--sample", "cat", "--out", "OUT"], "'x\\ny' is neither a stack file"),
    (["run", "lenet", "--sample", "x\ny", "--out", "OUT"], "no sample called 'x\\ny'"),
    (["run", "lenet", "--sample", "cat", "--out", "OUT", "--device", "a\nb"], "Unknown device 'a\\nb'"),
    (["walkthrough", "lenet", "--sample", "cat", "--weights", "w\n.pth", "--out", "OUT"], "'w\\n.pth'"),
    (["run", "\ud800", "--sample", "cat", "--out", "OUT"], "'\\ud800' is neither"),
])
def test_what_the_user_typed_is_echoed_on_one_printable_line(argv, fragment, tmp_path, capsys):
    code, _, err = _cli(capsys, *[str(tmp_path / "out") if a == "OUT" else a for a in argv])
    assert code == 2
    line = _one_sentence(err)
    assert fragment in line and line.isprintable()


def test_a_resize_has_the_pixel_limit_of_an_image():
    from explorer.core.inputs import InputError, adapt_batch, load_sample
    batch = load_sample("cat")
    with pytest.raises(InputError, match=r"^Cannot resize '.*' to 30000 x 30000: that is more than the limit of "
                                         r"64,000,000 pixels\.$"):
        adapt_batch(batch, None, (30000, 30000))
    with pytest.raises(InputError, match="more than the limit"):
        load_sample("cat", size=(1, DEFAULT_MAX_PIXELS + 1))
    assert adapt_batch(batch, None, (1, DEFAULT_MAX_PIXELS // 100)).tensor.shape[-2:] == (1, DEFAULT_MAX_PIXELS // 100)


def test_a_long_stack_loads_in_linear_time_with_the_same_default_names():
    import time
    layers = [{"type": "ReLU"}] * 6000
    layers[4] = {"type": "ReLU", "name": "relu2"}       # a given name is never taken by a default one
    started = time.perf_counter()
    stack = parse_stack(json.dumps({"layers": layers}))
    assert time.perf_counter() - started < 6        # was about 27 s (quadratic) before
    assert stack.names()[:6] == ["relu1", "relu3", "relu4", "relu5", "relu2", "relu6"]
    assert len(set(stack.names())) == 6000


def test_a_layer_with_refused_arguments_is_a_layer_error_in_every_pass():
    from explorer.core.stack import Stack
    stack = Stack([LayerSpec("ReLU", "r"), LayerSpec("Conv2d", "c", {"in_channels": 3, "out_channels": -1, "kernel_size": 1})])
    expected = "Conv2d 'c': 'out_channels' must be at least 1, not -1."
    assert StackRunner("cpu").run(stack, torch.rand(1, 3, 4, 4)).error == expected
    assert infer_shapes(stack, (1, 3, 4, 4))[1].error == expected
    assert estimate_run_bytes(stack, (1, 3, 4, 4)) == 2 * 4 * 48


def test_a_view_key_of_a_freed_output_never_matches_a_new_output():
    from explorer.core.display import ViewSettings
    settings = ViewSettings()
    edited = torch.rand(1, 2, 3, 3)
    key = settings.render_key(edited)
    assert key == settings.render_key(edited)
    edited.mul_(2)                                # an in-place change is a different picture
    assert key != settings.render_key(edited)
    out = torch.rand(1, 2, 3, 3)
    key, old_id = settings.render_key(out), id(out)
    del out
    for _ in range(200):                          # until a new tensor lands at the freed address
        new = torch.rand(1, 2, 3, 3)
        if id(new) == old_id:
            break
    assert key != settings.render_key(new)


def test_same_tensor_keys():
    from explorer.core.identity import SameTensor
    a, b = torch.zeros(2), torch.zeros(2)
    assert SameTensor(a) == SameTensor(a) and hash(SameTensor(a)) == hash(SameTensor(a))
    assert SameTensor(a) != SameTensor(b) and SameTensor(a) != ("not", "a tensor")
    assert {SameTensor(a): 1}.get(SameTensor(a)) == 1

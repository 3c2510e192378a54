"""Running stacks: eval and train behaviour, per-layer results, learner messages for failing layers,
the same errors as the shape table, incremental re-runs and running out of memory."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from explorer.core.engine import StackRunner, run_stack
from explorer.core.shapes import infer_shapes
from explorer.core.stack import stack_from_dict


def _stack(*layers, **top):
    return stack_from_dict({"layers": list(layers), **top})


def _rand(shape, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


CONV = {"type": "Conv2d", "name": "conv1", "args": {"in_channels": 3, "out_channels": 6, "kernel_size": 3}}


# ---------------------------------------------------------------- the tutorial's worked examples
def test_max_pooling_worked_example():
    x = torch.tensor([[1, 3, 2, 0], [4, 6, 1, 2], [7, 5, 3, 1], [0, 2, 9, 8]], dtype=torch.float32).view(1, 1, 4, 4)
    out = run_stack(_stack({"type": "MaxPool2d", "args": {"kernel_size": 2, "stride": 2}}), x, "cpu").layers[0].output
    assert out.view(2, 2).tolist() == [[6, 2], [7, 9]]


def test_linear_worked_example():
    stack = _stack({"type": "Linear", "args": {"in_features": 3, "out_features": 4},
                    "state": {"weight": [[1, 1, 1], [2, 2, 2], [3, 3, 3], [4, 4, 4]], "bias": [0.5] * 4}})
    out = run_stack(stack, torch.tensor([[1.0, 2.0, 3.0]]), "cpu").layers[0].output
    assert out.tolist() == [[6.5, 12.5, 18.5, 24.5]]


def test_avgpool_divisor_override_worked_example():
    stack = _stack({"type": "AvgPool2d", "args": {"kernel_size": 2, "stride": 2, "divisor_override": 3}})
    out = run_stack(stack, torch.ones(1, 1, 4, 4), "cpu").layers[0].output
    assert out.shape == (1, 1, 2, 2)
    assert torch.allclose(out, torch.full((1, 1, 2, 2), 4 / 3))
    assert round(float(out[0, 0, 0, 0]), 4) == 1.3333


def test_conv_on_a_cifar_sized_batch_and_flattening_the_whole_batch():
    x = torch.rand(64, 3, 32, 32)
    result = run_stack(_stack(CONV), x, "cpu")
    assert result.layers[0].output_shape == (64, 6, 30, 30)
    assert result.layers[0].params == 6 * 3 * 3 * 3 + 6
    flat = run_stack(_stack({"type": "Flatten", "args": {"start_dim": 0}}), x, "cpu").layers[0]
    assert flat.output_shape == (196608,)
    assert torch.equal(flat.output, x.flatten())


# ---------------------------------------------------------------- results of a run
def test_layer_results_hold_shapes_params_time_and_outputs():
    stack = _stack(CONV, {"type": "ReLU"}, {"type": "MaxPool2d", "args": {"kernel_size": 2}},
                   {"type": "Flatten"}, {"type": "Linear", "args": {"in_features": 6 * 15 * 15, "out_features": 10}})
    x = torch.rand(2, 3, 32, 32)
    result = run_stack(stack, x, "cpu")
    assert result.ok and result.error is None and result.failed_index is None
    assert result.device == torch.device("cpu") and result.input_shape == (2, 3, 32, 32)
    shapes = [(r.input_shape, r.output_shape) for r in result.layers]
    assert shapes == [((2, 3, 32, 32), (2, 6, 30, 30)), ((2, 6, 30, 30), (2, 6, 30, 30)),
                      ((2, 6, 30, 30), (2, 6, 15, 15)), ((2, 6, 15, 15), (2, 1350)), ((2, 1350), (2, 10))]
    assert [r.params for r in result.layers] == [168, 0, 0, 0, 13510]
    assert [r.name for r in result.layers] == ["conv1", "relu1", "pool1", "flatten1", "fc1"]
    assert all(r.seconds >= 0 for r in result.layers)
    assert all(r.output.dtype == torch.float32 and tuple(r.output.shape) == r.output_shape for r in result.layers)
    assert result.computed == [0, 1, 2, 3, 4]
    # each output is the previous one through that layer
    assert torch.equal(result.layers[1].output, F.relu(result.layers[0].output))
    assert torch.equal(result.layers[2].output, F.max_pool2d(result.layers[1].output, 2))


def test_runs_under_no_grad():
    result = run_stack(_stack(CONV), torch.rand(1, 3, 8, 8, requires_grad=True), "cpu")
    assert not result.layers[0].output.requires_grad


def test_disabled_layer_passes_through():
    stack = _stack(CONV, {"type": "Sigmoid", "enabled": False}, {"type": "ReLU"})
    result = run_stack(stack, torch.rand(1, 3, 8, 8), "cpu")
    assert result.ok
    sig = result.layers[1]
    assert not sig.enabled and sig.params == 0
    assert torch.equal(sig.output, result.layers[0].output)
    assert torch.equal(result.layers[2].output, F.relu(result.layers[0].output))


def test_a_disabled_conv_with_wrong_channels_is_skipped():
    stack = _stack({**CONV, "args": {**CONV["args"], "in_channels": 5}, "enabled": False}, {"type": "ReLU"})
    result = run_stack(stack, _rand((1, 3, 4, 4)), "cpu")
    assert result.ok
    assert torch.equal(result.layers[1].output, F.relu(_rand((1, 3, 4, 4))))


# ---------------------------------------------------------------- eval and train
def test_eval_is_the_default_and_dropout_passes_through():
    x = _rand((2, 3, 8, 8))
    out = run_stack(_stack({"type": "Dropout", "args": {"p": 0.9}}), x, "cpu").layers[0].output
    assert torch.equal(out, x)


def test_train_mode_dropout_is_random_but_seeded():
    x = torch.ones(4, 3, 16, 16)
    stack = _stack({"type": "Dropout", "args": {"p": 0.5}}, mode="train")
    a = run_stack(stack, x, "cpu").layers[0].output
    b = run_stack(stack, x, "cpu").layers[0].output
    assert torch.equal(a, b), "the same file gives the same outputs on every run"
    assert set(a.unique().tolist()) == {0.0, 2.0}
    assert 0.4 < float((a == 0).float().mean()) < 0.6
    other = run_stack(_stack({"type": "Dropout", "args": {"p": 0.5}}, mode="train", seed=1), x, "cpu").layers[0].output
    assert not torch.equal(a, other)


def test_train_mode_rrelu_draws_slopes_between_lower_and_upper():
    x = -torch.ones(1, 2, 16, 16)
    stack = _stack({"type": "RReLU", "args": {"lower": 0.1, "upper": 0.3}}, mode="train")
    a = run_stack(stack, x, "cpu").layers[0].output
    b = run_stack(stack, x, "cpu").layers[0].output
    assert torch.equal(a, b)
    slopes = -a
    assert float(slopes.min()) >= 0.1 and float(slopes.max()) <= 0.3
    assert slopes.unique().numel() > 100, "each element gets its own random slope"
    assert torch.equal(run_stack(stack, torch.ones(1, 2, 4, 4), "cpu").layers[0].output, torch.ones(1, 2, 4, 4))
    evaluated = run_stack(_stack({"type": "RReLU", "args": {"lower": 0.1, "upper": 0.3}}), x, "cpu").layers[0].output
    assert torch.allclose(evaluated, torch.full_like(x, -0.2))


def test_train_mode_batchnorm_uses_batch_stats_and_is_repeatable():
    x = _rand((4, 3, 5, 5)) * 4 + 2
    stack = _stack({"type": "BatchNorm2d", "args": {"num_features": 3}}, mode="train")
    runner = StackRunner("cpu")
    a = runner.run(stack, x).layers[0].output.clone()
    b = runner.run(stack, x.clone()).layers[0].output       # a new input tensor: computed again
    assert torch.equal(a, b)
    expected = F.batch_norm(x, None, None, torch.ones(3), torch.zeros(3), training=True)
    assert torch.allclose(a, expected, atol=1e-5)


def test_eval_after_train_uses_untouched_running_stats():
    x = _rand((4, 3, 5, 5)) * 4 + 2
    layer = {"type": "BatchNorm2d", "args": {"num_features": 3}}
    fresh = run_stack(_stack(layer), x, "cpu").layers[0].output
    runner = StackRunner("cpu")
    runner.run(_stack(layer), x)
    runner.run(_stack(layer, mode="train"), x)
    runner.run(_stack(layer, mode="train"), x.clone())
    after = runner.run(_stack(layer), x.clone()).layers[0].output
    assert torch.equal(after, fresh)
    assert torch.allclose(fresh, x / (1 + 1e-5) ** 0.5), "fresh running stats are mean 0, variance 1"


# ---------------------------------------------------------------- failing layers
@pytest.mark.parametrize("layers,shape,message", [
    ([{"type": "Conv2d", "name": "conv1", "args": {"in_channels": 3, "out_channels": 3, "kernel_size": 3}},
      {"type": "Conv2d", "name": "conv2", "args": {"in_channels": 6, "out_channels": 16, "kernel_size": 5}}],
     (1, 3, 32, 32), "Conv2d 'conv2' expects 6 input channels but its input has 3 (shape [1, 3, 30, 30])"),
    ([{"type": "MaxPool2d", "name": "pool1", "args": {"kernel_size": 2}},
      {"type": "MaxPool2d", "name": "pool2", "args": {"kernel_size": 5}}],
     (1, 3, 8, 8), "MaxPool2d 'pool2': kernel 5x5 is larger than its padded input 4x4"),
    ([{"type": "ReLU"}, {"type": "Flatten"}, {"type": "Linear", "name": "fc1", "args": {"in_features": 400, "out_features": 120}}],
     (1, 3, 32, 32), "Linear 'fc1' expects 400 input features but the flattened input has 3072"),
    ([{"type": "ReLU"}, {"type": "Linear", "name": "fc1", "args": {"in_features": 400, "out_features": 120}}],
     (1, 3, 32, 32), "Linear 'fc1' expects 400 input features but its input has shape [1, 3, 32, 32] (32 in the last "
                     "dimension); put a Flatten before it (flattened it has 3072)"),
    ([{"type": "ReLU"}, {"type": "Conv2d", "name": "c", "args": {"in_channels": 3, "out_channels": 3, "kernel_size": 3, "dilation": 3}}],
     (1, 3, 6, 6), "Conv2d 'c': kernel 3x3 (dilated to 7x7) is larger than its padded input 6x6"),
    ([{"type": "ReLU"}, {"type": "Conv2d", "name": "c", "args": {"in_channels": 3, "out_channels": 3, "kernel_size": 3,
                                                                  "padding": 4, "padding_mode": "reflect"}}],
     (1, 3, 4, 4), "Conv2d 'c': reflect padding 4 must be smaller than the input size 4"),
    ([{"type": "ReLU"}, {"type": "Conv2d", "name": "c", "args": {"in_channels": 3, "out_channels": 3, "kernel_size": 9,
                                                                  "padding": "same", "padding_mode": "reflect"}}],
     (1, 3, 4, 4), "Conv2d 'c': reflect padding 4 must be smaller than the input size 4"),
    ([{"type": "ReLU"}, {"type": "ConvTranspose2d", "name": "d", "args": {"in_channels": 3, "out_channels": 3, "kernel_size": 2, "padding": 3}}],
     (1, 3, 4, 4), "ConvTranspose2d 'd': padding 3x3 is too large for its input 4x4; the output would be -1x-1"),
    ([{"type": "ReLU"}, {"type": "AvgPool2d", "name": "a", "args": {"kernel_size": 5}}],
     (1, 3, 4, 4), "AvgPool2d 'a': kernel 5x5 is larger than its padded input 4x4"),
    ([{"type": "ReLU"}, {"type": "Upsample", "name": "u", "args": {"scale_factor": 0.1}}],
     (1, 3, 4, 4), "Upsample 'u': scale_factor 0.1x0.1 turns its input 4x4 into 0x0, which is empty"),
    ([{"type": "Flatten"}, {"type": "Conv2d", "name": "c", "args": {"in_channels": 3, "out_channels": 3, "kernel_size": 1}}],
     (1, 3, 4, 4), "Conv2d 'c' needs an image-shaped input [N, C, H, W] but its input has shape [1, 48]"),
    ([{"type": "Flatten"}, {"type": "MaxPool2d", "name": "p", "args": {"kernel_size": 2}}],
     (1, 3, 4, 4), "MaxPool2d 'p' needs an image-shaped input [N, C, H, W] but its input has shape [1, 48]"),
    ([{"type": "Flatten", "args": {"start_dim": 2}}, {"type": "Upsample", "name": "u", "args": {"scale_factor": 2}}],
     (1, 3, 4, 4), "Upsample 'u' needs an image-shaped input [N, C, H, W] but its input has shape [1, 3, 16]"),
    ([{"type": "Flatten"}, {"type": "BatchNorm2d", "name": "bn", "args": {"num_features": 48}}],
     (1, 3, 4, 4), "BatchNorm2d 'bn' needs a 4-D input [N, C, H, W] but its input has shape [1, 48]"),
    ([{"type": "ReLU"}, {"type": "BatchNorm2d", "name": "bn", "args": {"num_features": 4}}],
     (1, 3, 4, 4), "BatchNorm2d 'bn' expects 4 channels (num_features) but its input has 3 (shape [1, 3, 4, 4])"),
    ([{"type": "ReLU"}, {"type": "PReLU", "name": "pr", "args": {"num_parameters": 4}}],
     (1, 3, 4, 4), "PReLU 'pr' has num_parameters 4, which must be 1 or the number of channels of its input (3, shape [1, 3, 4, 4])"),
    ([{"type": "ReLU"}, {"type": "Flatten", "name": "f", "args": {"start_dim": 2, "end_dim": 1}}],
     (1, 3, 4, 4), "Flatten 'f': start_dim 2 comes after end_dim 1 for an input of shape [1, 3, 4, 4]"),
    ([{"type": "ReLU"}, {"type": "Flatten", "name": "f", "args": {"start_dim": -1, "end_dim": 1}}],
     (1, 3, 4, 4), "Flatten 'f': start_dim -1 comes after end_dim 1"),
    ([{"type": "ReLU"}, {"type": "Flatten", "name": "f", "args": {"end_dim": 4}}],
     (1, 3, 4, 4), "Flatten 'f': end_dim 4 is out of range for an input with 4 dimensions [1, 3, 4, 4]"),
    ([{"type": "ReLU"}, {"type": "Softmax", "name": "s", "args": {"dim": -5}}],
     (1, 3, 4, 4), "Softmax 's': dim -5 is out of range for an input with 4 dimensions [1, 3, 4, 4]"),
    ([{"type": "MaxPool2d", "name": "p", "args": {"kernel_size": 2}, "enabled": False},
      {"type": "MaxUnpool2d", "name": "u", "args": {"kernel_size": 2}, "indices_from": "p"}],
     (1, 3, 4, 4), "MaxUnpool2d 'u' takes its indices from 'p', which is disabled"),
    ([{"type": "MaxPool2d", "name": "p", "args": {"kernel_size": 2}}, {"type": "MaxPool2d", "args": {"kernel_size": 2}},
      {"type": "MaxUnpool2d", "name": "u", "args": {"kernel_size": 2}, "indices_from": "p"}],
     (1, 3, 8, 8), "MaxUnpool2d 'u' needs an input shaped like the output of 'p' [1, 3, 4, 4] but its input has shape [1, 3, 2, 2]"),
])
def test_failing_layer_stops_the_run_with_a_learner_message(layers, shape, message):
    stack = _stack(*layers)
    x = _rand(shape)
    result = run_stack(stack, x, "cpu")
    failed = len(layers) - 1
    assert not result.ok
    assert result.failed_index == failed
    assert message in result.error
    assert "\n" not in result.error and "Traceback" not in result.error
    bad = result.layers[failed]
    assert bad.error == result.error and bad.output is None and bad.output_shape is None
    assert len(result.layers) == failed + 1, "later layers are not run"
    for earlier in result.layers[:failed]:
        assert earlier.error is None and earlier.output is not None
    # the same message and the same shapes without computing anything
    meta = infer_shapes(stack, shape)
    assert [(r.error, r.output_shape) for r in meta] == [(r.error, r.output_shape) for r in result.layers]


def test_failing_layer_keeps_the_layers_after_it_out_of_the_result():
    stack = _stack(CONV, {"type": "Conv2d", "name": "conv2", "args": {"in_channels": 7, "out_channels": 1, "kernel_size": 1}},
                   {"type": "ReLU"}, {"type": "Sigmoid"})
    result = run_stack(stack, torch.rand(1, 3, 8, 8), "cpu")
    assert [r.name for r in result.layers] == ["conv1", "conv2"]
    assert result.layers[0].output_shape == (1, 6, 6, 6)


# ---------------------------------------------------------------- inferred shapes
META_STACKS = [
    [CONV, {"type": "ReLU"}, {"type": "MaxPool2d", "args": {"kernel_size": 2}}],
    [{"type": "MaxPool2d", "name": "p", "args": {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}},
     {"type": "ConvTranspose2d", "args": {"in_channels": 3, "out_channels": 3, "kernel_size": 3, "stride": 1, "padding": 1}},
     {"type": "MaxUnpool2d", "args": {"kernel_size": 3, "stride": 2, "padding": 1}, "indices_from": "p"},
     {"type": "Upsample", "args": {"scale_factor": 1.5, "mode": "bicubic"}},
     {"type": "BatchNorm2d", "args": {"num_features": 3}}, {"type": "PReLU", "args": {"num_parameters": 3}},
     {"type": "Dropout"}, {"type": "RReLU"}, {"type": "Softmax"},
     {"type": "AvgPool2d", "args": {"kernel_size": 2, "ceil_mode": True}},
     {"type": "Flatten"}, {"type": "Linear", "args": {"in_features": 3 * 8 * 8, "out_features": 4}}, {"type": "GELU"}],
]


@pytest.mark.parametrize("mode", ["eval", "train"])
@pytest.mark.parametrize("layers", META_STACKS)
def test_inferred_shapes_equal_real_shapes(layers, mode):
    stack = _stack(*layers, mode=mode)
    x = _rand((2, 3, 11, 11))
    real = run_stack(stack, x, "cpu")
    meta = infer_shapes(stack, (2, 3, 11, 11))
    assert real.ok, real.error
    assert [(r.input_shape, r.output_shape, r.params, r.error) for r in meta] == \
           [(r.input_shape, r.output_shape, r.params, r.error) for r in real.layers]


# ---------------------------------------------------------------- incremental re-runs
def _edit(stack, index, **args):
    new = stack.copy()
    new.layers[index].args.update(args)
    return new


def _assert_same_as_fresh(result, stack, x):
    fresh = run_stack(stack, x, "cpu")
    assert [r.error for r in result.layers] == [r.error for r in fresh.layers]
    for a, b in zip(result.layers, fresh.layers):
        assert (a.input_shape, a.output_shape, a.params) == (b.input_shape, b.output_shape, b.params)
        if b.output is not None:
            assert torch.equal(a.output, b.output), a.name


LENETISH = [
    {"type": "Conv2d", "name": "conv1", "args": {"in_channels": 3, "out_channels": 6, "kernel_size": 5}},
    {"type": "ReLU", "name": "relu1"},
    {"type": "MaxPool2d", "name": "pool1", "args": {"kernel_size": 2}},
    {"type": "Conv2d", "name": "conv2", "args": {"in_channels": 6, "out_channels": 16, "kernel_size": 5}},
    {"type": "ReLU", "name": "relu2"},
    {"type": "MaxUnpool2d", "name": "unpool", "args": {"kernel_size": 2}, "indices_from": "pool1"},
]


def test_editing_layer_k_recomputes_from_k_only():
    runner = StackRunner("cpu")
    x = torch.rand(1, 3, 32, 32)
    layers = LENETISH[:5] + [{"type": "LeakyReLU", "name": "leaky"}]
    stack = _stack(*layers)
    assert runner.run(stack, x).computed == [0, 1, 2, 3, 4, 5]
    again = runner.run(stack, x)
    assert again.computed == [] and all(r.reused for r in again.layers)
    _assert_same_as_fresh(again, stack, x)

    edited = _edit(stack, 3, out_channels=8, padding=2)
    result = runner.run(edited, x)
    assert result.computed == [3, 4, 5]
    _assert_same_as_fresh(result, edited, x)

    edited2 = _edit(edited, 5, negative_slope=0.3)
    result = runner.run(edited2, x)
    assert result.computed == [5]
    _assert_same_as_fresh(result, edited2, x)


def test_a_reused_result_does_not_change_the_previous_run_result():
    runner = StackRunner("cpu")
    x = torch.rand(1, 3, 16, 16)
    stack = _stack(CONV, {"type": "ReLU"})
    first = runner.run(stack, x)
    runner.run(stack, x)
    assert first.computed == [0, 1]


def test_disabling_and_enabling_a_layer():
    runner = StackRunner("cpu")
    x = torch.rand(1, 3, 16, 16) - 0.5
    stack = _stack(CONV, {"type": "ReLU", "name": "relu1"}, {"type": "Sigmoid"})
    runner.run(stack, x)
    off = stack.copy()
    off.layers[1].enabled = False
    result = runner.run(off, x)
    assert result.computed == [1, 2]
    assert torch.equal(result.layers[1].output, result.layers[0].output)
    assert torch.equal(result.layers[2].output, torch.sigmoid(result.layers[0].output))
    _assert_same_as_fresh(result, off, x)
    on = runner.run(stack, x)
    assert on.computed == [1, 2]
    _assert_same_as_fresh(on, stack, x)


def test_a_new_input_recomputes_everything():
    runner = StackRunner("cpu")
    stack = _stack(CONV, {"type": "ReLU"})
    x = torch.rand(1, 3, 8, 8)
    runner.run(stack, x)
    y = torch.rand(1, 3, 8, 8)
    result = runner.run(stack, y)
    assert result.computed == [0, 1]
    _assert_same_as_fresh(result, stack, y)
    x.mul_(2)             # the same tensor changed in place counts as a new input
    result = runner.run(stack, x)
    assert result.computed == [0, 1]
    _assert_same_as_fresh(result, stack, x)


def test_changing_seed_or_mode_recomputes_everything():
    runner = StackRunner("cpu")
    stack = _stack(CONV, {"type": "Dropout"})
    x = torch.rand(1, 3, 8, 8)
    runner.run(stack, x)
    other = stack.copy()
    other.seed = 7
    assert runner.run(other, x).computed == [0, 1]
    other.mode = "train"
    result = runner.run(other, x)
    assert result.computed == [0, 1]
    _assert_same_as_fresh(result, other, x)


def test_editing_state_in_place_is_noticed():
    runner = StackRunner("cpu")
    stack = _stack({"type": "ReLU"}, {**CONV, "state": {"bias": [0.0] * 6}})
    x = torch.rand(1, 3, 8, 8)
    runner.run(stack, x)
    stack.layers[1].state["bias"] += 1.0
    result = runner.run(stack, x)
    assert result.computed == [1]
    _assert_same_as_fresh(result, stack, x)


def test_a_tensors_only_edit_reuses_the_module_and_undo_brings_back_the_old_numbers(monkeypatch):
    """A kernel cell edit gives new tensors only: the runner loads them into the module it has
    instead of building (seeding) it again, and the outputs still equal torch's."""
    import explorer.core.engine as engine
    builds = []
    real = engine.build_module
    monkeypatch.setattr(engine, "build_module", lambda spec, *a: builds.append(spec.name) or real(spec, *a))
    runner = StackRunner("cpu")
    x = torch.rand(1, 3, 12, 12)

    def run(stack):
        """The run's output of conv1 and how many times conv1 was built for it."""
        before = builds.count("conv1")
        result = runner.run(stack, x)
        assert result.ok
        return result, builds.count("conv1") - before

    w0 = _rand((6, 3, 3, 3), seed=1)
    stack = _stack({"type": "ReLU", "name": "relu0"}, {**CONV, "state": {"weight": w0.tolist()}})
    first, built = run(stack)
    assert built == 1
    seeded_bias = real(stack.layers[1], stack.seed).bias
    edited = stack.copy()
    w1 = edited.layers[1].state["weight"].clone()
    w1[2, 1, 0, 2] = 5.0
    edited.layers[1].state = {"weight": w1}
    result, built = run(edited)
    assert built == 0 and result.computed == [1]
    assert torch.allclose(result.layers[1].output, F.conv2d(torch.relu(x), w1, seeded_bias), atol=1e-6)
    back, built = run(stack)            # undo: the first tensors again
    assert built == 0 and torch.equal(back.layers[1].output, first.layers[1].output)
    # A bias given as well names other tensors: a new build, so no tensor keeps a stale number.
    with_bias = edited.copy()
    with_bias.layers[1].state = {"weight": w1, "bias": torch.ones(6)}
    result, built = run(with_bias)
    assert built == 1
    assert torch.allclose(result.layers[1].output, F.conv2d(torch.relu(x), w1, torch.ones(6)), atol=1e-6)
    # ... and taking the bias away again builds again: the seeded bias comes back.
    result, built = run(edited)
    assert built == 1
    assert torch.allclose(result.layers[1].output, F.conv2d(torch.relu(x), w1, seeded_bias), atol=1e-6)


def test_unpool_after_an_edit_uses_the_kept_indices():
    runner = StackRunner("cpu")
    x = torch.rand(1, 3, 32, 32)
    stack = _stack(*LENETISH[:3], {"type": "Sigmoid", "name": "sig"},
                   {"type": "MaxUnpool2d", "name": "unpool", "args": {"kernel_size": 2}, "indices_from": "pool1"})
    runner.run(stack, x)
    off = stack.copy()
    off.layers[3].enabled = False
    result = runner.run(off, x)
    assert result.computed == [3, 4]
    _assert_same_as_fresh(result, off, x)


def test_a_fixed_error_recomputes_from_the_failed_layer():
    runner = StackRunner("cpu")
    x = torch.rand(1, 3, 32, 32)
    broken = _stack(*LENETISH[:3], {**LENETISH[3], "args": {**LENETISH[3]["args"], "in_channels": 5}}, LENETISH[4])
    result = runner.run(broken, x)
    assert result.failed_index == 3 and len(result.layers) == 4
    fixed = _stack(*LENETISH[:5])
    result = runner.run(fixed, x)
    assert result.ok and result.computed == [3, 4]
    _assert_same_as_fresh(result, fixed, x)


@pytest.mark.parametrize("layer", [
    {"type": "ReLU", "args": {"inplace": True}},
    {"type": "LeakyReLU", "args": {"inplace": True}},
    {"type": "ELU", "args": {"inplace": True}},
    {"type": "RReLU", "args": {"inplace": True}},
    {"type": "Dropout", "args": {"inplace": True}},
])
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_inplace_layers_do_not_corrupt_kept_outputs(layer, mode):
    x = _rand((1, 3, 8, 8))
    x_copy = x.clone()
    stack = _stack(CONV, layer, mode=mode)
    result = run_stack(stack, x, "cpu")
    conv_alone = run_stack(_stack(CONV, mode=mode), x, "cpu").layers[0].output
    assert torch.equal(result.layers[0].output, conv_alone)
    assert (result.layers[0].output < 0).any()
    first = run_stack(_stack(layer, mode=mode), x, "cpu")
    assert torch.equal(x, x_copy), "an in-place first layer must not change the input"
    assert first.ok


def test_should_stop_cancels_between_layers_and_the_next_run_is_right():
    runner = StackRunner("cpu")
    stack = _stack(CONV, {"type": "ReLU"}, {"type": "Sigmoid"})
    x = torch.rand(1, 3, 8, 8)
    runner.run(stack, x)
    y = torch.rand(1, 3, 8, 8)
    seen = []
    result = runner.run(stack, y, should_stop=lambda: len(seen) >= 1, on_layer=lambda r, total: seen.append((r.index, total)))
    assert result.cancelled and not result.ok
    assert [r.index for r in result.layers] == [0] and seen == [(0, 3)]
    again = runner.run(stack, y)
    assert not again.cancelled
    assert again.computed == [1, 2]
    _assert_same_as_fresh(again, stack, y)


# ---------------------------------------------------------------- running out of memory
@pytest.mark.parametrize("error", [
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"),
    RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
                 "you tried to allocate 140737488355328 bytes. Error code 12 (Cannot allocate memory)"),
])
def test_out_of_memory_is_a_clear_error_and_the_runner_keeps_working(monkeypatch, error):
    runner = StackRunner("cpu")
    stack = _stack({"type": "ReLU"}, CONV, {"type": "Sigmoid"})
    x = torch.rand(2, 3, 16, 16)

    def exhausted(self, input):
        raise error

    with monkeypatch.context() as m:
        m.setattr(nn.Conv2d, "forward", exhausted)
        result = runner.run(stack, x)
    assert result.failed_index == 1
    message = result.error
    assert message.startswith("Conv2d 'conv1' ran out of memory on CPU")
    assert "smaller batch" in message and "\n" not in message
    assert "switch to the CPU" not in message, "it already runs on the CPU"
    assert result.layers[0].output is not None
    again = runner.run(stack, x)
    assert again.ok and again.computed == [1, 2]
    _assert_same_as_fresh(again, stack, x)


def test_torch_function_running_out_of_memory(monkeypatch):
    def exhausted(*args, **kwargs):
        raise torch.OutOfMemoryError("out of memory")

    monkeypatch.setattr(torch, "sigmoid", exhausted)
    result = run_stack(_stack({"type": "Sigmoid", "name": "s"}), torch.rand(1, 1, 2, 2), "cpu")
    assert result.error == ("Sigmoid 's' ran out of memory on CPU; try a smaller batch or input size.")


def test_the_memory_check_reuses_its_shape_pass_for_weight_edits_only(monkeypatch):
    """A seed or kernel edit keeps every shape: no second shape pass. A new argument needs one."""
    import explorer.core.engine as engine
    from explorer.core.examples import load_example
    passes = []
    real = engine.infer_shapes
    monkeypatch.setattr(engine, "infer_shapes", lambda stack, shape: passes.append(shape) or real(stack, shape))
    stack = load_example("default")
    x = torch.rand(1, 3, 32, 32)
    runner = engine.StackRunner("cpu")
    runner.run(stack, x)
    reseeded = stack.copy()
    reseeded.seed = 5
    out = runner.run(reseeded, x)
    assert len(passes) == 1 and out.ok
    wider = stack.copy()
    wider.layers[0].args = {**wider.layers[0].args, "out_channels": 7}
    out = runner.run(wider, x)
    assert len(passes) == 2 and out.layers[-1].output_shape[1] == 7


def test_a_run_writes_each_layers_key_once(monkeypatch):
    """The key of a layer writes its arguments out as JSON; a run that took it once for the cache,
    once for the kept modules and once for the module spent about 1 ms on keys in a 10-layer stack."""
    import explorer.core.engine as engine
    keys = []
    real = engine.spec_key
    monkeypatch.setattr(engine, "spec_key", lambda spec: keys.append(spec.name) or real(spec))
    stack = _stack(*(LENETISH[:5] + [{"type": "LeakyReLU", "name": "leaky"}]))
    x = torch.rand(1, 3, 32, 32)
    runner = engine.StackRunner("cpu")
    runner.run(stack, x)
    assert sorted(keys) == sorted(layer.name for layer in stack.layers)
    keys.clear()
    edited = _edit(stack, 3, out_channels=8)
    result = runner.run(edited, x)
    assert result.computed == [3, 4, 5] and sorted(keys) == sorted(layer.name for layer in edited.layers)
    _assert_same_as_fresh(result, edited, x)
    again = runner.run(edited, x)
    assert all(r.reused for r in again.layers) and again.computed == []

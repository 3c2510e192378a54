"""Every layer type against torch itself: the argument table matches torch's signatures, the
values the engine computes equal a direct torch call with the same arguments and weights, and the
argument checks refuse what torch refuses."""

from __future__ import annotations

import inspect
import itertools
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from explorer.core.engine import run_stack
from explorer.core.layers import (
    CATEGORIES,
    HELP,
    LAYER_TYPES,
    LayerArgError,
    LayerSpec,
    build_module,
    check_args,
    describe,
    param_count,
    parameter_shapes,
    state_shapes,
    types_by_category,
)
from explorer.core.stack import stack_from_dict

SPEC_TYPES = {
    "Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d", "MaxUnpool2d", "Upsample", "ReLU", "Sigmoid",
    "Tanh", "LeakyReLU", "PReLU", "RReLU", "ELU", "GELU", "Softmax", "BatchNorm2d", "Dropout", "Flatten", "Linear",
}


def _torch_signature(cls) -> list[tuple[str, object]]:
    out = []
    for p in inspect.signature(cls.__init__).parameters.values():
        if p.name in ("self", "device", "dtype") or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        out.append((p.name, None if p.default is inspect.Parameter.empty else p.default))
    return out


# ---------------------------------------------------------------- the table itself
def test_every_layer_type_of_the_spec_is_there():
    assert set(LAYER_TYPES) == SPEC_TYPES


@pytest.mark.parametrize("type_name", sorted(SPEC_TYPES))
def test_args_match_torch_signature(type_name):
    t = LAYER_TYPES[type_name]
    assert t.cls is getattr(nn, type_name)
    ours = [(a.name, a.default) for a in t.args]
    assert ours == _torch_signature(t.cls)
    # required exactly where torch has no default
    required = {name for name, p in inspect.signature(t.cls.__init__).parameters.items()
                if p.default is inspect.Parameter.empty and name != "self"
                and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    assert {a.name for a in t.args if a.required} == required


@pytest.mark.parametrize("type_name", sorted(SPEC_TYPES))
def test_every_arg_has_a_help_sentence(type_name):
    t = LAYER_TYPES[type_name]
    assert t.summary
    for a in t.args:
        assert a.help and a.help in HELP.values()


def test_categories_cover_every_type_once():
    by = types_by_category()
    assert list(by) == list(CATEGORIES)
    flat = [n for names in by.values() for n in names]
    assert sorted(flat) == sorted(LAYER_TYPES)


# ---------------------------------------------------------------- values against torch
def _rand(shape, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g)


def _random_state(spec: LayerSpec, seed: int) -> dict[str, torch.Tensor]:
    """Random values for every state entry (running_var positive), independent of the app's seeding."""
    state = {}
    for i, (key, shape) in enumerate(sorted(state_shapes(spec).items())):
        if key == "num_batches_tracked":
            state[key] = torch.tensor(7)
        elif key == "running_var":
            state[key] = _rand(shape, seed + i).abs() + 0.5
        else:
            state[key] = _rand(shape, seed + i)
    return state


C = "Conv2d"
CT = "ConvTranspose2d"
CASES = [
    # (type, args, input shape)
    (C, {"in_channels": 3, "out_channels": 4, "kernel_size": 3}, (2, 3, 9, 9)),
    (C, {"in_channels": 3, "out_channels": 4, "kernel_size": [3, 2], "stride": [2, 1], "padding": [1, 2]}, (1, 3, 9, 8)),
    (C, {"in_channels": 3, "out_channels": 2, "kernel_size": 4, "padding": "same"}, (1, 3, 7, 6)),
    (C, {"in_channels": 3, "out_channels": 2, "kernel_size": 4, "padding": "same", "dilation": 2}, (1, 3, 11, 10)),
    (C, {"in_channels": 3, "out_channels": 2, "kernel_size": [2, 3], "padding": "same", "dilation": [3, 1]}, (1, 3, 8, 8)),
    (C, {"in_channels": 3, "out_channels": 2, "kernel_size": 4, "padding": "same", "padding_mode": "reflect"}, (1, 3, 7, 6)),
    (C, {"in_channels": 3, "out_channels": 2, "kernel_size": 3, "padding": "valid", "dilation": 2}, (1, 3, 9, 9)),
    (C, {"in_channels": 4, "out_channels": 6, "kernel_size": 3, "groups": 2, "bias": False}, (1, 4, 6, 6)),
    (C, {"in_channels": 4, "out_channels": 4, "kernel_size": 3, "groups": 4, "padding": 1}, (1, 4, 6, 6)),
    (C, {"in_channels": 2, "out_channels": 3, "kernel_size": 3, "padding": 2, "padding_mode": "reflect"}, (1, 2, 6, 7)),
    (C, {"in_channels": 2, "out_channels": 3, "kernel_size": 3, "padding": [1, 3], "padding_mode": "replicate"}, (1, 2, 6, 7)),
    (C, {"in_channels": 2, "out_channels": 3, "kernel_size": 3, "padding": 2, "padding_mode": "circular", "stride": 2}, (1, 2, 6, 7)),
    (CT, {"in_channels": 3, "out_channels": 2, "kernel_size": 3}, (2, 3, 5, 5)),
    (CT, {"in_channels": 3, "out_channels": 2, "kernel_size": 3, "stride": 2, "padding": 1, "output_padding": 1}, (1, 3, 5, 4)),
    (CT, {"in_channels": 4, "out_channels": 2, "kernel_size": [2, 3], "stride": [2, 3], "groups": 2, "bias": False}, (1, 4, 3, 3)),
    (CT, {"in_channels": 2, "out_channels": 2, "kernel_size": 3, "dilation": 2, "output_padding": 1}, (1, 2, 4, 4)),
    ("MaxPool2d", {"kernel_size": 2}, (2, 3, 8, 8)),
    ("MaxPool2d", {"kernel_size": 2, "return_indices": True}, (1, 3, 8, 8)),
    ("MaxPool2d", {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}, (1, 2, 8, 7)),
    ("MaxPool2d", {"kernel_size": [2, 3], "stride": [1, 2], "dilation": [2, 1]}, (1, 2, 9, 9)),
    ("MaxPool2d", {"kernel_size": 3, "dilation": 2, "padding": 1, "ceil_mode": True, "stride": 2}, (1, 1, 10, 11)),
    ("MaxPool2d", {"kernel_size": 3, "ceil_mode": True}, (1, 2, 2, 5)),        # kernel larger than the input
    ("AvgPool2d", {"kernel_size": 2}, (2, 3, 8, 8)),
    ("AvgPool2d", {"kernel_size": [3, 2], "stride": 2, "ceil_mode": True}, (1, 2, 2, 5)),
    ("AvgPool2d", {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True, "count_include_pad": False}, (1, 2, 8, 7)),
    ("AvgPool2d", {"kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": True}, (1, 2, 8, 7)),
    ("AvgPool2d", {"kernel_size": 2, "divisor_override": 3}, (1, 2, 6, 6)),
    ("Upsample", {"scale_factor": 2}, (1, 3, 4, 5)),
    ("Upsample", {"size": [7, 9], "mode": "bilinear"}, (1, 3, 4, 5)),
    ("Upsample", {"size": 6, "mode": "bicubic", "align_corners": True}, (1, 3, 4, 5)),
    ("Upsample", {"scale_factor": [1.5, 2.25], "mode": "bilinear", "align_corners": False}, (1, 2, 4, 5)),
    ("Upsample", {"scale_factor": 1.7, "mode": "bilinear", "recompute_scale_factor": True}, (1, 2, 5, 5)),
    ("Upsample", {"scale_factor": 0.5, "mode": "nearest-exact"}, (1, 2, 8, 6)),
    ("ReLU", {}, (2, 3, 4, 4)),
    ("ReLU", {"inplace": True}, (2, 3, 4, 4)),
    ("Sigmoid", {}, (2, 3, 4, 4)),
    ("Tanh", {}, (2, 3, 4, 4)),
    ("LeakyReLU", {"negative_slope": 0.2}, (2, 3, 4, 4)),
    ("LeakyReLU", {"negative_slope": 0.2, "inplace": True}, (2, 3, 4, 4)),
    ("PReLU", {}, (2, 3, 4, 4)),
    ("PReLU", {"num_parameters": 3, "init": 0.1}, (2, 3, 4, 4)),
    ("RReLU", {}, (2, 3, 4, 4)),
    ("RReLU", {"lower": 0.05, "upper": 0.4}, (2, 3, 4, 4)),
    ("ELU", {"alpha": 0.7}, (2, 3, 4, 4)),
    ("GELU", {}, (2, 3, 4, 4)),
    ("GELU", {"approximate": "tanh"}, (2, 3, 4, 4)),
    ("Softmax", {}, (2, 3, 4, 4)),
    ("Softmax", {"dim": 1}, (2, 3, 4, 4)),
    ("Softmax", {"dim": -1}, (2, 3, 4, 4)),
    ("Softmax", {"dim": 0}, (2, 3, 4, 4)),
    ("BatchNorm2d", {"num_features": 3}, (2, 3, 4, 4)),
    ("BatchNorm2d", {"num_features": 3, "eps": 0.1, "momentum": None}, (2, 3, 4, 4)),
    ("BatchNorm2d", {"num_features": 3, "affine": False}, (2, 3, 4, 4)),
    ("BatchNorm2d", {"num_features": 3, "track_running_stats": False}, (2, 3, 4, 4)),
    ("Dropout", {}, (2, 3, 4, 4)),
    ("Dropout", {"p": 0.9, "inplace": True}, (2, 3, 4, 4)),
    ("Flatten", {}, (2, 3, 4, 4)),
    ("Flatten", {"start_dim": 0}, (2, 3, 4, 4)),
    ("Flatten", {"start_dim": 2}, (2, 3, 4, 4)),
    ("Flatten", {"start_dim": 1, "end_dim": 2}, (2, 3, 4, 4)),
    ("Flatten", {"start_dim": -3, "end_dim": -2}, (2, 3, 4, 4)),
    ("Linear", {"in_features": 5, "out_features": 3}, (4, 5)),
    ("Linear", {"in_features": 5, "out_features": 3, "bias": False}, (4, 5)),
    ("Linear", {"in_features": 4, "out_features": 2}, (1, 3, 4, 4)),   # torch applies it to the last dimension
]


def _case_id(case):
    t, args, shape = case
    return f"{t}-" + "-".join(f"{k}={v}" for k, v in args.items()).replace(" ", "") + f"-{'x'.join(map(str, shape))}"


def _torch_module(type_name: str, args: dict) -> nn.Module:
    """The same layer built straight from torch with the JSON args (lists as torch takes them)."""
    return getattr(nn, type_name)(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in args.items()})


def _torch_reference(type_name: str, args: dict, state: dict, x: torch.Tensor) -> torch.Tensor:
    module = _torch_module(type_name, args)
    if state:
        module.load_state_dict(state, strict=True)
    module.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = module(x.clone())
    return out[0] if isinstance(out, tuple) else out


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_layer_equals_direct_torch_call(case):
    type_name, args, shape = case
    spec = LayerSpec(type_name, "layer", dict(args))
    state = _random_state(spec, seed=len(shape) * 100 + len(args))
    stack = stack_from_dict({
        "layers": [{"type": type_name, "name": "layer", "args": args,
                    **({"state": {k: v.tolist() for k, v in state.items()}} if state else {})}],
    })
    x = _rand(shape, 1) * 2
    x_before = x.clone()
    result = run_stack(stack, x, "cpu")
    assert result.ok, result.error
    got = result.layers[0].output
    expected = _torch_reference(type_name, args, state, x)
    assert got.dtype == torch.float32
    assert got.shape == expected.shape
    assert torch.equal(got, expected)
    assert torch.equal(x, x_before), "the input must not be changed, even by an in-place layer"
    r = result.layers[0]
    assert r.input_shape == tuple(shape) and r.output_shape == tuple(expected.shape)
    assert r.params == sum(p.numel() for p in _torch_module(type_name, args).parameters())


@pytest.mark.parametrize("pool_args,shape", [
    ({"kernel_size": 2}, (1, 2, 8, 8)),
    ({"kernel_size": 2}, (1, 2, 7, 9)),                      # floor: the unpool restores 7x9, not 6x8
    ({"kernel_size": 3, "stride": 2, "padding": 1}, (2, 3, 9, 8)),
    ({"kernel_size": [2, 3], "stride": [2, 1]}, (1, 1, 6, 6)),
    ({"kernel_size": 2, "ceil_mode": True}, (1, 2, 7, 7)),
    ({"kernel_size": 2, "return_indices": True}, (1, 2, 8, 8)),
])
def test_maxunpool_equals_torch_with_the_pools_indices(pool_args, shape):
    unpool_args = {k: v for k, v in pool_args.items() if k in ("kernel_size", "stride", "padding")}
    stack = stack_from_dict({"layers": [
        {"type": "MaxPool2d", "name": "pool", "args": pool_args},
        {"type": "MaxUnpool2d", "name": "unpool", "args": unpool_args, "indices_from": "pool"},
    ]})
    x = _rand(shape, 3)
    result = run_stack(stack, x, "cpu")
    assert result.ok, result.error
    kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in pool_args.items() if k != "return_indices"}
    pooled, indices = nn.MaxPool2d(**kw, return_indices=True)(x)
    ukw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in unpool_args.items()}
    expected = nn.MaxUnpool2d(**ukw)(pooled, indices, output_size=x.shape[-2:])
    assert torch.equal(result.layers[0].output, pooled)
    assert torch.equal(result.layers[0].indices, indices)
    assert torch.equal(result.layers[1].output, expected)
    assert result.layers[1].output_shape == tuple(shape), "the default output size is the pool's input size"


def test_maxpool_output_is_the_same_with_or_without_return_indices():
    x = _rand((1, 3, 8, 8), 4)
    outs = []
    for flag in (True, False):
        stack = stack_from_dict({"layers": [{"type": "MaxPool2d", "args": {"kernel_size": 2, "return_indices": flag}}]})
        r = run_stack(stack, x, "cpu").layers[0]
        assert r.error is None and r.indices is not None
        outs.append(r.output)
    assert torch.equal(outs[0], outs[1])
    assert torch.equal(outs[0], F.max_pool2d(x, 2))


def test_softmax_without_dim_is_torchs_implicit_choice_dim_1_for_images():
    x = _rand((2, 3, 4, 4), 5)
    out = run_stack(stack_from_dict({"layers": [{"type": "Softmax"}]}), x, "cpu").layers[0].output
    assert torch.allclose(out.sum(dim=1), torch.ones(2, 4, 4))
    assert torch.equal(out, F.softmax(x, dim=1))


def test_rrelu_eval_uses_the_mean_slope():
    x = _rand((1, 2, 5, 5), 6)
    out = run_stack(stack_from_dict({"layers": [{"type": "RReLU", "args": {"lower": 0.1, "upper": 0.3}}]}), x, "cpu")
    assert torch.allclose(out.layers[0].output, F.leaky_relu(x, 0.2), atol=0, rtol=1e-6)


def test_batchnorm_eval_uses_the_running_stats():
    x = _rand((4, 2, 3, 3), 7) * 5 + 3
    state = {"weight": [2.0, 0.5], "bias": [1.0, -1.0], "running_mean": [3.0, -2.0], "running_var": [4.0, 0.25]}
    out = run_stack(stack_from_dict({"layers": [
        {"type": "BatchNorm2d", "args": {"num_features": 2, "eps": 0.0}, "state": state}]}), x, "cpu")
    w, b, m, v = (torch.tensor(state[k]).view(1, 2, 1, 1) for k in ("weight", "bias", "running_mean", "running_var"))
    assert torch.allclose(out.layers[0].output, (x - m) / v.sqrt() * w + b, atol=1e-5)


# ---------------------------------------------------------------- parameters from the seed
def _weights(stack_dict, name="c"):
    stack = stack_from_dict(stack_dict)
    x = torch.ones(1, 1, 3, 3)
    return run_stack(stack, x, "cpu").layers[stack.index_of(name)].output


def test_params_without_state_are_deterministic_per_seed_and_name():
    conv = {"type": "Conv2d", "name": "c", "args": {"in_channels": 1, "out_channels": 4, "kernel_size": 3}}
    a = _weights({"seed": 5, "layers": [conv]})
    b = _weights({"seed": 5, "layers": [conv]})
    other_seed = _weights({"seed": 6, "layers": [conv]})
    moved = _weights({"seed": 5, "layers": [{"type": "Dropout"}, {"type": "ReLU"}, conv]})   # ones stay ones
    assert torch.equal(a, b)
    assert not torch.equal(a, other_seed)
    assert torch.equal(a, moved), "adding layers before a layer leaves its weights alone"


def test_state_overrides_the_seeded_params():
    weight = [[[[1.0, 0, 0], [0, 1, 0], [0, 0, 1]]]]
    out = _weights({"layers": [{"type": "Conv2d", "name": "c", "args": {
        "in_channels": 1, "out_channels": 1, "kernel_size": 3}, "state": {"weight": weight, "bias": [0.25]}}]})
    assert out.flatten().tolist() == [3.25]


def test_partial_state_keeps_seeded_values_for_the_rest():
    conv = {"type": "Conv2d", "name": "c", "args": {"in_channels": 1, "out_channels": 1, "kernel_size": 3}}
    seeded = _weights({"layers": [conv]})
    zero_bias = _weights({"layers": [{**conv, "state": {"bias": [0.0]}}]})
    seeded_module = build_module(stack_from_dict({"layers": [conv]}).layers[0], seed=0)
    # on a 3x3 of ones the output is sum(weight) + bias: the same seeded weight, only the bias differs
    assert torch.allclose(zero_bias.flatten(), seeded_module.weight.sum().view(1), atol=1e-6)
    assert torch.allclose((seeded - zero_bias).flatten(), seeded_module.bias, atol=1e-6)


# ---------------------------------------------------------------- argument checks against torch
def _torch_accepts(type_name, args, x):
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in args.items()}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            getattr(nn, type_name)(**kwargs)(x)
        return True
    except Exception:
        return False


def _we_accept(type_name, args):
    try:
        check_args(type_name, args)
        return True
    except LayerArgError:
        return False


@pytest.mark.parametrize("type_name", ["MaxPool2d", "AvgPool2d"])
def test_pool_padding_rule_is_torchs(type_name):
    x = torch.zeros(1, 1, 30, 30)
    disagree = []
    for k, d, p in itertools.product(range(1, 6), range(1, 4), range(0, 5)):
        if type_name == "AvgPool2d" and d > 1:
            continue
        args = {"kernel_size": k, "padding": p, **({"dilation": d} if type_name == "MaxPool2d" else {})}
        if _we_accept(type_name, args) != _torch_accepts(type_name, args, x):
            disagree.append(args)
    assert disagree == []


def test_conv_transpose_output_padding_rule_is_torchs():
    x = torch.zeros(1, 1, 5, 5)
    disagree = []
    for s, d, op in itertools.product(range(1, 4), range(1, 4), range(0, 4)):
        args = {"in_channels": 1, "out_channels": 1, "kernel_size": 2, "stride": s, "dilation": d, "output_padding": op}
        if _we_accept("ConvTranspose2d", args) != _torch_accepts("ConvTranspose2d", args, x):
            disagree.append(args)
    assert disagree == []


@pytest.mark.parametrize("type_name,args", [
    ("Conv2d", {"in_channels": 3, "out_channels": 4, "kernel_size": 3, "padding": "same", "stride": 2}),
    ("Conv2d", {"in_channels": 3, "out_channels": 4, "kernel_size": 3, "groups": 2}),
    ("Conv2d", {"in_channels": 4, "out_channels": 3, "kernel_size": 3, "groups": 2}),
    ("Conv2d", {"in_channels": 3, "out_channels": 4, "kernel_size": 3, "padding_mode": "mirror"}),
    ("Conv2d", {"in_channels": 3, "out_channels": 4, "kernel_size": 0}),
    ("ConvTranspose2d", {"in_channels": 3, "out_channels": 4, "kernel_size": 3, "padding_mode": "reflect"}),
    ("Upsample", {"scale_factor": 2, "align_corners": True}),
    ("Upsample", {"scale_factor": 2, "align_corners": False}),
    ("Upsample", {"scale_factor": 2, "mode": "nearest-exact", "align_corners": False}),
    ("Upsample", {}),
    ("Upsample", {"size": 4, "scale_factor": 2}),
    ("Dropout", {"p": 1.5}),
    ("GELU", {"approximate": "fast"}),
])
def test_refused_like_torch(type_name, args):
    assert not _we_accept(type_name, args)
    x = torch.zeros(1, 4, 8, 8) if type_name != "Conv2d" or args["in_channels"] == 4 else torch.zeros(1, 3, 8, 8)
    assert not _torch_accepts(type_name, args, x)


def test_rrelu_lower_above_upper_is_refused():
    with pytest.raises(LayerArgError) as e:
        check_args("RReLU", {"lower": 0.5, "upper": 0.2})
    assert e.value.key == "lower" and "0.5" in str(e.value) and "0.2" in str(e.value)


@pytest.mark.parametrize("value", ["3", 2.5, True, [3, 3, 3], [3, "3"], None, {"h": 3}])
def test_kernel_size_wrong_value_type(value):
    with pytest.raises(LayerArgError) as e:
        check_args("Conv2d", {"in_channels": 1, "out_channels": 1, "kernel_size": value})
    assert e.value.key == "kernel_size"
    assert "kernel_size" in str(e.value)


def test_unknown_arg_lists_the_real_ones():
    with pytest.raises(LayerArgError) as e:
        check_args("MaxPool2d", {"kernal_size": 2})
    assert e.value.key == "kernal_size"
    for name in ("kernel_size", "stride", "padding", "dilation", "return_indices", "ceil_mode"):
        assert name in str(e.value)


def test_missing_required_arg():
    with pytest.raises(LayerArgError) as e:
        check_args("Linear", {"in_features": 3})
    assert e.value.key == "out_features"


def test_omitted_args_take_torchs_defaults():
    full = check_args("Conv2d", {"in_channels": 3, "out_channels": 6, "kernel_size": 3})
    assert full == {"in_channels": 3, "out_channels": 6, "kernel_size": 3, "stride": 1, "padding": 0,
                    "dilation": 1, "groups": 1, "bias": True, "padding_mode": "zeros"}
    assert check_args("MaxPool2d", {"kernel_size": [2, 3]})["kernel_size"] == (2, 3)


def test_param_count_matches_torch():
    for type_name, args, _ in CASES:
        spec = LayerSpec(type_name, "x", dict(args))
        kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in args.items()}
        assert param_count(spec) == sum(p.numel() for p in getattr(nn, type_name)(**kwargs).parameters())


def test_parameter_shapes_match_torch_in_its_order():
    for type_name, args, _ in CASES:
        spec = LayerSpec(type_name, "x", dict(args))
        kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in args.items()}
        module = getattr(nn, type_name)(**kwargs)
        assert parameter_shapes(spec) == [(k, tuple(p.shape)) for k, p in module.named_parameters()]


@pytest.mark.parametrize("type_name,args,text", [
    ("Conv2d", {"in_channels": 3, "out_channels": 6, "kernel_size": 3}, "Conv2d 3→6 k3 s1"),
    ("Conv2d", {"in_channels": 3, "out_channels": 6, "kernel_size": [3, 5], "padding": "same"}, "Conv2d 3→6 k3x5 s1 psame"),
    ("MaxPool2d", {"kernel_size": 2}, "MaxPool2d k2 s2"),
    ("Linear", {"in_features": 400, "out_features": 120}, "Linear 400→120"),
    ("Upsample", {"scale_factor": 2}, "Upsample ×2.0 nearest"),
    ("Dropout", {"p": 0.25}, "Dropout p=0.25"),
    ("ReLU", {}, "ReLU"),
])
def test_describe(type_name, args, text):
    assert describe(LayerSpec(type_name, "x", args)) == text

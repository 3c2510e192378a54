"""The generated PyTorch module computes exactly what the app computes, and model_repr /
named_parameters describe that module."""

from __future__ import annotations

import math

import pytest
import torch

from explorer.core.codegen import (
    CodegenError, attribute_names, identifier, model_repr, named_parameters, pytorch_code,
)
from explorer.core.engine import run_stack
from explorer.core.examples import load_example
from explorer.core.layers import LayerSpec
from explorer.core.stack import InputSpec, Stack, stack_from_dict


def L(type_, name, enabled=True, indices_from=None, state=None, **args):
    return LayerSpec(type_, name, args, state, enabled, indices_from)


def default_stack():
    return Stack([L("Conv2d", "conv1", in_channels=3, out_channels=6, kernel_size=3),
                  L("ReLU", "relu1"), L("MaxPool2d", "pool1", kernel_size=2)], seed=0)


def lenet_stack():
    return load_example("lenet")     # the classic tutorial's LeNet-5, as the app ships it


def unpool_stack():
    return Stack([
        L("Conv2d", "conv1", in_channels=3, out_channels=4, kernel_size=3, padding=1),
        L("MaxPool2d", "pool1", kernel_size=2),
        L("ReLU", "relu1", inplace=True),
        L("MaxPool2d", "pool2", kernel_size=3, stride=2),      # floors 16 -> 7; unpool must restore 16
        L("MaxUnpool2d", "unpool2", indices_from="pool2", kernel_size=3, stride=2),
        L("MaxUnpool2d", "unpool1", indices_from="pool1", kernel_size=2),
    ], seed=3)


def disabled_stack():
    return Stack([
        L("Conv2d", "conv1", in_channels=3, out_channels=6, kernel_size=3),
        L("ReLU", "relu1", enabled=False),
        L("Conv2d", "conv2", in_channels=6, out_channels=8, kernel_size=3, enabled=False),
        L("LeakyReLU", "lrelu1", negative_slope=0.2),
        L("MaxPool2d", "pool1", kernel_size=2, enabled=False),
        L("AvgPool2d", "avg1", kernel_size=2, ceil_mode=True),
    ], seed=11)


def state_stack():
    g = torch.Generator().manual_seed(5)
    w = torch.randn(4, 3, 3, 3, generator=g)
    b = torch.randn(4, generator=g) * 1e-9
    bn = {"running_mean": torch.randn(4, generator=g), "running_var": torch.rand(4, generator=g) + 0.5,
          "weight": torch.randn(4, generator=g)}
    return Stack([
        L("Conv2d", "conv1", state={"weight": w, "bias": b}, in_channels=3, out_channels=4, kernel_size=3),
        L("BatchNorm2d", "bn1", state=bn, num_features=4),
        L("Conv2d", "conv2", state={"weight": torch.randn(2, 4, 1, 1, generator=g)},
          in_channels=4, out_channels=2, kernel_size=1),      # bias from the seed, weight from the state
    ], seed=1)


def misc_stack():
    return Stack([
        L("Conv2d", "conv1", in_channels=3, out_channels=6, kernel_size=[3, 5], stride=[1, 2], padding=[1, 2], dilation=1, bias=False, padding_mode="reflect"),
        L("BatchNorm2d", "bn1", num_features=6, eps=1e-3, momentum=None),
        L("PReLU", "prelu1", num_parameters=6, init=0.1),
        L("Upsample", "up1", scale_factor=2, mode="bilinear", align_corners=False),
        L("ConvTranspose2d", "deconv1", in_channels=6, out_channels=3, kernel_size=3, stride=2, padding=1,
          output_padding=1),
        L("Upsample", "up2", size=[20, 24]),
        L("Conv2d", "conv2", in_channels=3, out_channels=3, kernel_size=3, padding="same", groups=3),
        L("ELU", "elu1"), L("GELU", "gelu1", approximate="tanh"), L("Tanh", "tanh1"), L("Sigmoid", "sig1"),
        L("RReLU", "rrelu1"), L("Dropout", "drop1", p=0.3),
        L("Softmax", "softmax1", dim=1),
    ], seed=42)


def odd_names_stack():
    return Stack([
        L("Conv2d", "conv 1", in_channels=3, out_channels=4, kernel_size=3),
        L("ReLU", "1st"), L("ReLU", "class"), L("ReLU", "forward"), L("ReLU", "conv_1"),
        L("MaxPool2d", "pool.1", kernel_size=2), L("ReLU", "training"), L("ReLU", "ä\nb"),
        L("MaxUnpool2d", "unpool-1", indices_from="pool.1", kernel_size=2),
        L("Conv2d", "x", in_channels=4, out_channels=2, kernel_size=1),
    ], seed=7)


def train_stack():
    return Stack([
        L("Conv2d", "conv1", in_channels=3, out_channels=8, kernel_size=3),
        L("BatchNorm2d", "bn1", num_features=8),
        L("RReLU", "rrelu1"),
        L("Dropout", "drop1", p=0.5),
        L("Flatten", "flat"),
        L("Linear", "fc", in_features=8 * 30 * 30, out_features=5),
    ], seed=2, mode="train")


STACKS = {
    "default": (default_stack, (1, 3, 32, 32)),
    "lenet": (lenet_stack, (1, 1, 32, 32)),
    "unpool": (unpool_stack, (2, 3, 32, 32)),
    "disabled": (disabled_stack, (1, 3, 17, 19)),
    "state": (state_stack, (1, 3, 12, 12)),
    "misc": (misc_stack, (1, 3, 16, 16)),
    "odd_names": (odd_names_stack, (1, 3, 16, 16)),
    "train": (train_stack, (4, 3, 32, 32)),
}


def exec_module(code: str, class_name: str = "ExplorerNet"):
    namespace: dict = {"__name__": "generated"}
    exec(compile(code, "<generated>", "exec"), namespace)
    return namespace[class_name]


def app_output(stack: Stack, x: torch.Tensor) -> torch.Tensor:
    result = run_stack(stack, x.clone(), "cpu")
    assert result.ok, result.error
    return result.layers[-1].output


def model_output(stack: Stack, x: torch.Tensor) -> torch.Tensor:
    model = exec_module(pytorch_code(stack))()
    model.train(stack.mode == "train")
    with torch.no_grad():
        return model(x.clone())


@pytest.mark.parametrize("key", list(STACKS))
def test_generated_module_gives_the_apps_output_exactly(key):
    make, shape = STACKS[key]
    stack = make()
    x = torch.rand(shape, generator=torch.Generator().manual_seed(99))
    expected = app_output(stack, x)
    got = model_output(stack, x)
    assert got.shape == expected.shape
    assert torch.equal(got, expected)


@pytest.mark.parametrize("key", list(STACKS))
def test_repr_and_parameters_describe_the_generated_module(key):
    stack = STACKS[key][0]()
    model = exec_module(pytorch_code(stack))()
    assert model_repr(stack) == repr(model)
    expected = [(n, tuple(p.shape), p.numel()) for n, p in model.named_parameters()]
    assert named_parameters(stack) == expected


def test_lenet_parameters_match_torch():
    stack = lenet_stack()
    params = named_parameters(stack)
    assert [n for n, _, _ in params] == ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias",
                                         "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias",
                                         "fc3.weight", "fc3.bias"]
    ref = torch.nn.Sequential(torch.nn.Conv2d(1, 6, 5), torch.nn.Conv2d(6, 16, 5), torch.nn.Linear(400, 120),
                              torch.nn.Linear(120, 84), torch.nn.Linear(84, 10))
    assert sum(n for _, _, n in params) == sum(p.numel() for p in ref.parameters()) == 61706
    assert params[0][1] == (6, 1, 5, 5)


def test_default_repr_text():
    assert model_repr(default_stack()) == (
        "ExplorerNet(\n"
        "  (conv1): Conv2d(3, 6, kernel_size=(3, 3), stride=(1, 1))\n"
        "  (relu1): ReLU()\n"
        "  (pool1): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)\n"
        ")")
    assert model_repr(Stack()) == "ExplorerNet()"
    assert model_repr(default_stack(), class_name="Net").startswith("Net(\n")


def test_code_is_readable():
    code = pytorch_code(unpool_stack())
    assert "import torch\nfrom torch import nn\n" in code
    assert "class ExplorerNet(nn.Module):" in code
    assert "self.conv1 = nn.Conv2d(3, 4, 3, padding=1)" in code
    assert "self.pool1 = nn.MaxPool2d(2, return_indices=True)" in code
    assert "pool1_size = x.shape[-2:]" in code
    assert "x, pool1_indices = self.pool1(x)" in code
    assert "x = self.unpool1(x, pool1_indices, output_size=pool1_size)" in code
    assert "model.eval()" in code and 'if __name__ == "__main__":' in code
    assert "torch.rand(1, 3, 32, 32)" in code
    # a pool nobody unpools returns no indices
    assert "x = self.pool1(x)" in pytorch_code(default_stack())
    assert "return_indices" not in pytorch_code(default_stack())
    # the input the example builds fits the first layer
    assert "torch.rand(1, 1, 32, 32)" in pytorch_code(lenet_stack())


def test_disabled_layers_are_comments():
    code = pytorch_code(disabled_stack())
    assert "# relu1 (ReLU) is disabled" in code
    assert "# conv2 (Conv2d) is disabled" in code
    assert "self.relu1" not in code and "self.conv2" not in code
    assert [n for n, _, _ in named_parameters(disabled_stack())] == ["conv1.weight", "conv1.bias"]


def test_train_mode_footer_and_seeded_randomness():
    code = pytorch_code(train_stack())
    assert "\n    model.train()\n" in code and "\n    model.eval()" not in code
    model = exec_module(code)()
    model.train()
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))          # the app's fixed seed: the same mask every call
        model.reproduce_app_randomness = False
        assert not torch.equal(model(x), model(x))      # fresh randomness for real training


def test_global_random_state_is_left_alone():
    cls = exec_module(pytorch_code(lenet_stack()))
    torch.manual_seed(123)
    a = torch.rand(3)
    torch.manual_seed(123)
    cls()
    assert torch.equal(torch.rand(3), a)


def test_state_is_bit_exact_with_special_values():
    w = torch.tensor([[[[math.nan, math.inf]], [[-math.inf, -0.0]]]] * 2, dtype=torch.float32)
    w[1, 0, 0, 0] = 1.0000001
    w[1, 1, 0, 1] = 3.4e38
    stack = Stack([L("Conv2d", "conv1", state={"weight": w}, in_channels=2, out_channels=2, kernel_size=[1, 2])])
    model = exec_module(pytorch_code(stack))()
    assert torch.equal(model.conv1.weight.detach().view(torch.int32), w.view(torch.int32))


def test_names_are_sanitised_and_unique():
    assert identifier("conv 1") == "conv_1"
    assert identifier("1st") == "layer_1st"
    assert identifier("class") == "class_"
    assert identifier("forward") == "forward_"
    assert identifier("a.b") == "a_b"
    assert identifier("???") == "layer"
    assert identifier("__init") == "init"
    attrs = attribute_names(odd_names_stack())
    assert attrs["conv 1"] == "conv_1" and attrs["conv_1"] == "conv_1_2"
    assert len(set(attrs.values())) == len(attrs)
    assert all(a.isidentifier() for a in attrs.values())
    code = pytorch_code(odd_names_stack())
    compile(code, "<generated>", "exec")
    assert "'conv 1' in the app" in code


def test_from_a_stack_file_dict():
    stack = stack_from_dict({"seed": 4, "layers": [
        {"type": "Conv2d", "args": {"in_channels": 3, "out_channels": 2, "kernel_size": [2, 3]}},
        {"type": "MaxPool2d", "args": {"kernel_size": 2}},
        {"type": "MaxUnpool2d", "args": {"kernel_size": 2}, "indices_from": "pool1"},
        {"type": "Linear", "args": {"in_features": 30, "out_features": 3},
         "state": {"bias": [0.1, -2.5, 1e-30]}},
    ]})
    x = torch.rand(1, 3, 9, 32)
    assert torch.equal(model_output(stack, x), app_output(stack, x))


def test_unrunnable_wiring_raises_in_forward():
    stack = unpool_stack()
    stack.layers[3].enabled = False     # pool2 disabled: unpool2 has no indices, in the app too
    assert run_stack(stack, torch.rand(1, 3, 32, 32), "cpu").error
    model = exec_module(pytorch_code(stack))()
    with pytest.raises(RuntimeError, match="disabled"):
        model(torch.rand(1, 3, 32, 32))


def test_invalid_arguments_raise_codegen_error():
    stack = Stack([L("Conv2d", "conv1", in_channels=3, out_channels=4, kernel_size=3, groups=2)])
    with pytest.raises(CodegenError, match="conv1"):
        model_repr(stack)
    with pytest.raises(CodegenError):
        pytorch_code(stack)
    with pytest.raises(CodegenError):
        pytorch_code(default_stack(), class_name="not a name")


def test_empty_stack():
    model = exec_module(pytorch_code(Stack()))()
    x = torch.rand(1, 3, 4, 4)
    assert torch.equal(model(x), x)
    assert named_parameters(Stack()) == []


def test_generated_file_runs_as_a_script(tmp_path):
    import subprocess
    import sys
    path = tmp_path / "net.py"
    path.write_text(pytorch_code(lenet_stack()))
    out = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "output shape: (1, 10)" in out.stdout
    assert "(fc3): Linear(in_features=84, out_features=10, bias=True)" in out.stdout

"""The built-in example stacks: each loads, runs on the sample it lists, and shows what it says."""

from __future__ import annotations

import pytest
import torch

from explorer.core.engine import run_stack
from explorer.core.examples import examples, find_example, list_examples, load_example, resolve_stack
from explorer.core.input_source import InputSource, load_input
from explorer.core.inputs import list_samples
from explorer.core.resources import resource_path, resources_dir
from explorer.core.stack import StackError, save_stack, stack_from_dict

ALL = examples()


def test_examples_index():
    names = [e.name for e in ALL]
    assert len(names) == len(set(names)) >= 9
    assert names[0] == "default"
    files = {p.name for p in resource_path("examples").glob("*.json")} - {"examples.json"}
    assert sorted(e.file for e in ALL) == sorted(files), "every file is listed, every listed file exists"
    samples = {name for name, _ in list_samples()}
    for e in ALL:
        assert e.description and "\n" not in e.description
        assert e.sample in samples
    assert list_examples() == [(e.name, e.description) for e in ALL]
    assert resources_dir().is_dir()


@pytest.mark.parametrize("example", ALL, ids=lambda e: e.name)
def test_every_example_runs_on_its_sample(example):
    stack = load_example(example.name)
    assert stack.description
    batch = load_input(InputSource.sample(example.sample), stack.input)
    if stack.input.channels:
        assert batch.tensor.shape[1] == stack.input.channels
    if stack.input.size:
        assert tuple(batch.tensor.shape[-2:]) == stack.input.size
    result = run_stack(stack, batch.tensor, "cpu")
    assert result.ok, result.error
    assert len(result.layers) == len(stack.layers)


@pytest.mark.parametrize("example", [e for e in ALL if e.cifar], ids=lambda e: e.name)
def test_cifar_examples_run_on_a_cifar_batch(example, cifar_dir):
    stack = load_example(example.name)
    batch = load_input(InputSource.cifar(cifar_dir, "train", 16, 1), stack.input)
    result = run_stack(stack, batch.tensor, "cpu")
    assert result.ok, result.error
    assert result.layers[0].input_shape[0] == 16


def test_what_the_examples_say():
    x = torch.rand(64, 3, 32, 32)
    assert run_stack(load_example("cifar_conv"), x, "cpu").layers[0].output_shape == (64, 6, 30, 30)
    assert run_stack(load_example("cifar_maxpool"), x, "cpu").layers[0].output_shape == (64, 3, 10, 10)
    assert run_stack(load_example("flatten_linear"), x, "cpu").layers[-1].output_shape == (64, 10)
    lenet = run_stack(load_example("lenet"), x[:, :1], "cpu")
    assert [r.output_shape for r in lenet.layers][5:8] == [(64, 16, 5, 5), (64, 400), (64, 120)]
    avg = run_stack(load_example("avgpool_divisor"), torch.ones(1, 1, 32, 32), "cpu").layers[0].output
    assert torch.allclose(avg, torch.full((1, 1, 16, 16), 4 / 3))
    image = torch.rand(1, 3, 64, 64)
    unpooled = run_stack(load_example("maxpool_unpool"), image, "cpu").layers[1].output
    kept = unpooled != 0
    assert torch.equal(unpooled[kept], image[kept])
    assert int(kept.sum()) == 3 * 32 * 32


@pytest.mark.parametrize("sample,winner", [("x", 0), ("o", 1), ("x_shifted", 0)])
def test_x_vs_o_tells_x_from_o(sample, winner):
    stack = load_example("x_vs_o")
    batch = load_input(InputSource.sample(sample), stack.input)
    probabilities = run_stack(stack, batch.tensor, "cpu").layers[-1].output
    assert torch.allclose(probabilities.sum(), torch.tensor(1.0))
    assert int(probabilities.argmax()) == winner


def test_resolve_stack(tmp_path, monkeypatch):
    assert resolve_stack("lenet").names() == load_example("lenet").names()
    path = tmp_path / "mine.json"
    save_stack(stack_from_dict({"layers": [{"type": "Tanh"}]}), path)
    assert resolve_stack(str(path)).names() == ["tanh1"]
    monkeypatch.chdir(tmp_path)
    assert resolve_stack("mine.json").names() == ["tanh1"]
    with pytest.raises(StackError, match="does not exist"):
        resolve_stack("missing.json")
    with pytest.raises(StackError, match="does not exist"):
        resolve_stack("some/dir/stack")
    with pytest.raises(StackError) as e:
        resolve_stack("lenett")
    assert "neither a stack file nor a built-in example" in str(e.value) and "lenet" in str(e.value)
    with pytest.raises(StackError, match="no built-in example 'nope'"):
        load_example("nope")
    assert find_example("nope") is None


def test_vgg16_example_has_torchvisions_shapes_and_parameter_count():
    import torchvision

    from explorer.core.examples import load_example
    from explorer.core.shapes import infer_shapes, total_params

    stack = load_example("vgg16")
    rows = infer_shapes(stack, (1, 3, 224, 224))
    with torch.device("meta"):
        reference = torchvision.models.vgg16(weights=None)
    x = torch.empty(1, 3, 224, 224, device="meta")
    expected_shapes = []
    for module in list(reference.features) + [torch.nn.Flatten()] + list(reference.classifier):
        x = module(x)
        expected_shapes.append(tuple(x.shape))
    assert [r.output_shape for r in rows] == expected_shapes
    assert total_params(rows) == sum(p.numel() for p in reference.parameters()) == 138_357_544

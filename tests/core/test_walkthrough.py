"""The walkthrough core: one hooked forward pass of the real torchvision VGG-16 (random weights, no
network) gives every stage of the classic text with torchvision's own shapes and values; parameters,
multiply-adds and receptive fields are right; top-5 appears only with real weights; LeNet, AlexNet
and ResNet-18 walk the same way; 'Send to stack' reproduces the outputs through StackRunner."""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from torch import nn

from explorer.core.engine import StackRunner, run_stack
from explorer.core.model_zoo import MODEL_NAMES, build_model, class_names, input_shape, lenet
from explorer.core.stack import stack_from_dict, stack_to_dict
from explorer.core.walkthrough import (RANDOM_NOTICE, WalkthroughError, capture, plan,
                                       prepare_input, summary, to_stack)
from explorer.core.weights import load_weights

VGG16_RF = [3, 5, 6, 10, 14, 16, 24, 32, 40, 44, 60, 76, 92, 100, 132, 164, 196, 212]


def _image(h=180, w=240, c=3, seed=0):
    return torch.rand(1, c, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def vgg():
    model = build_model("vgg16")
    return capture("vgg16", model, _image(), "cpu")


@pytest.fixture(scope="module")
def torchvision_stages(vgg):
    """What torchvision's VGG-16 computes, step by step, without hooks: after each ReLU or pool,
    the flatten, after each classifier ReLU / the last Linear."""
    model, x = vgg.model, vgg.model_input
    expected = []
    with torch.no_grad():
        for i, layer in enumerate(model.features):
            x = layer(x)
            if isinstance(layer, (nn.ReLU, nn.MaxPool2d)):
                expected.append((f"features.{i - 1}" if isinstance(layer, nn.ReLU) else f"features.{i}", x.clone()))
        x = model.avgpool(x)
        expected.append(("avgpool", x))
        x = torch.flatten(x, 1)
        expected.append(("flatten", x))
        for i, layer in enumerate(model.classifier):
            x = layer(x)
            if isinstance(layer, nn.ReLU) or i == len(model.classifier) - 1:
                expected.append((f"classifier.{i - 1}" if isinstance(layer, nn.ReLU) else f"classifier.{i}", x))
        expected.append(("softmax", torch.softmax(x, 1)))
        assert torch.equal(x, model(vgg.model_input))
    return expected


def test_vgg16_stages_follow_the_classic_text(vgg):
    kinds = [s.kind for s in vgg.stages]
    assert kinds == (["input"] + ["conv"] * 2 + ["pool"] + ["conv"] * 2 + ["pool"] + ["conv"] * 3 + ["pool"]
                     + (["conv"] * 3 + ["pool"]) * 2 + ["opaque", "flatten"] + ["linear"] * 3 + ["softmax"])
    assert [s.index for s in vgg.stages] == list(range(25))
    assert vgg.stages[1].title == "Conv 3x3, 64 filters" and vgg.stages[1].name == "features.0"
    assert vgg.stages[3].title == "Max pool 2x2, stride 2"
    assert vgg.stages[21].title == "Fully connected 25088→4096"
    assert vgg.stages[-1].title == "Softmax over 1000 classes"
    for s in vgg.stages:
        assert s.explanation.endswith(".") and "\n" not in s.explanation and len(s.explanation) > 40


def test_every_vgg16_stage_matches_torchvisions_own_forward(vgg, torchvision_stages):
    stages, outputs = vgg.stages[1:], vgg.outputs[1:]
    assert [s.name for s in stages] == [name for name, _ in torchvision_stages]
    for stage, output, (name, expected) in zip(stages, outputs, torchvision_stages):
        assert stage.output_shape == tuple(expected.shape), name
        assert tuple(output.shape) == stage.output_shape
        assert torch.allclose(output, expected, rtol=1e-5, atol=1e-6), name   # kept maps are what the stage made
    assert vgg.outputs[0] is vgg.model_input
    assert all(o.device.type == "cpu" for o in vgg.outputs)


def test_flatten_gives_25088_and_the_parameters_add_up_to_138357544(vgg):
    flatten = next(s for s in vgg.stages if s.kind == "flatten")
    assert flatten.output_shape == (1, 25088) and flatten.input_shape == (1, 512, 7, 7)
    assert flatten.shape_hwc() == "25088" and "25088" in flatten.explanation.replace(",", "")
    assert vgg.total_params == 138_357_544 == sum(p.numel() for p in vgg.model.parameters())
    assert sum(s.params for s in vgg.stages) == 138_357_544
    running = 0
    for s in vgg.stages:
        running += s.params
        assert s.total_params == running
    assert vgg.stages[1].params == 1792 and vgg.stages[21].params == 25088 * 4096 + 4096


def test_multiply_adds(vgg):
    assert vgg.stages[1].macs == 224 * 224 * 64 * 3 * 3 * 3 == 86_704_128
    assert vgg.stages[2].macs == 224 * 224 * 64 * 3 * 3 * 64
    assert vgg.stages[21].macs == 25088 * 4096
    assert all(s.macs == 0 for s in vgg.stages if s.kind in ("pool", "flatten", "softmax", "input"))
    # torchvision's metadata gives 15.47 G operations (multiply-adds) for VGG-16
    assert abs(sum(s.macs for s in vgg.stages) / 1e9 - 15.47) < 0.01


def test_receptive_fields(vgg):
    spatial = [s for s in vgg.stages[1:] if s.kind in ("conv", "pool")]
    assert [s.receptive_field for s in spatial] == VGG16_RF
    assert vgg.stages[1].receptive_field == 3 and vgg.stages[18].receptive_field == 212
    assert vgg.stages[19].receptive_field == 212          # the adaptive pool changes nothing at 7×7
    assert all(s.receptive_field is None for s in vgg.stages[20:])
    assert vgg.stages[0].receptive_field == 1


def test_input_regions_are_clipped_windows_on_the_input(vgg):
    conv1 = vgg.stages[1]
    assert conv1.input_region(0, 0) == (0, 0, 2, 2)
    assert conv1.input_region(10, 20) == (9, 19, 12, 22)
    assert conv1.input_region(223, 223) == (222, 222, 224, 224)
    pool1 = vgg.stages[3]
    assert pool1.input_region(5, 7) == (8, 12, 14, 18)   # conv1_2 pixels 10..11 see conv1_1 9..12, input 8..13
    pool5 = vgg.stages[18]
    assert pool5.input_region(3, 3) == (6, 6, 218, 218)        # 212 wide, centred on pixel 111.5
    assert pool5.input_region(0, 0) == (0, 0, 122, 122)
    assert vgg.stages[21].input_region(0, 5) == (0, 0, 224, 224)


def test_receptive_field_agrees_with_the_gradient():
    """An independent check: the input pixels whose gradient reaches one output pixel, in a copy of
    VGG-16's first three blocks with positive weights and average pools (so every path counts)."""
    model = build_model("vgg16")
    stages = plan("vgg16", model)
    features = copy.deepcopy(model.features[:17])
    for i, layer in enumerate(features):
        if isinstance(layer, nn.MaxPool2d):
            features[i] = nn.AvgPool2d(layer.kernel_size, layer.stride)
        elif isinstance(layer, nn.Conv2d):
            with torch.no_grad():
                layer.weight.fill_(0.01)
                layer.bias.fill_(0.01)
        elif isinstance(layer, nn.ReLU):
            layer.inplace = False
    x = torch.ones(1, 3, 64, 64, requires_grad=True)
    out = features(x)
    stage = stages[10]                                     # after pool3: receptive field 44
    assert stage.name == "features.16" and stage.receptive_field == 44
    for y, xx in ((0, 0), (4, 4), (3, 5), (7, 7)):
        x.grad = None
        out[0, 0, y, xx].backward(retain_graph=True)
        rows = torch.nonzero(x.grad[0].abs().sum(0).sum(1)).flatten()
        cols = torch.nonzero(x.grad[0].abs().sum(0).sum(0)).flatten()
        y0, x0, y1, x1 = stage.input_region(y, xx)
        assert (rows.min().item(), rows.max().item() + 1) == (y0, min(y1, 64))
        assert (cols.min().item(), cols.max().item() + 1) == (x0, min(x1, 64))


def test_the_walkthrough_says_where_the_classic_text_differs(vgg):
    noted = {s.name: s.note for s in vgg.stages if s.note}
    assert set(noted) == {"features.14", "avgpool"}
    assert "two 256-filter" in noted["features.14"] and "three" in noted["features.14"]


def test_input_is_prepared_as_torchvisions_imagenet_transforms(vgg):
    image = _image()
    raw, normalized = prepare_input("vgg16", image)
    preset = torchvision.models.VGG16_Weights.IMAGENET1K_V1.transforms()
    assert torch.allclose(normalized, preset(image), atol=1e-6)
    assert raw.shape == (1, 3, 224, 224) and 0 <= raw.min() and raw.max() <= 1
    assert torch.equal(vgg.raw_input, raw) and torch.equal(vgg.model_input, normalized)
    gray_raw, _ = prepare_input("vgg16", image[:, :1])
    assert gray_raw.shape == (1, 3, 224, 224)
    lraw, lnorm = prepare_input("lenet", image)
    assert lraw.shape == (1, 1, 32, 32) and lnorm is lraw
    with pytest.raises(ValueError):
        prepare_input("vgg16", torch.rand(1, 2, 30, 30))


def test_random_weights_say_so_and_give_no_top5(vgg):
    assert vgg.random_weights and vgg.weights == "random"
    assert vgg.notice() == RANDOM_NOTICE == "random weights: these maps show no learned features"
    assert vgg.top5() is None and "top5" not in summary(vgg)
    assert torch.allclose(vgg.probabilities.sum(), torch.tensor(1.0))
    assert vgg.categories == class_names("vgg16")


def test_top5_with_a_weights_file(vgg, tmp_path):
    """A fake state_dict of the right shapes, written here, counts as a weights file: the bias of
    class 281 is raised, so 'tabby' wins, and the top 5 follow torchvision's own forward."""
    state = {k: v.clone() for k, v in vgg.model.state_dict().items()}
    state["classifier.6.bias"][281] += 50.0
    state["classifier.6.bias"][285] += 49.0
    path = tmp_path / "fake_vgg16.pth"
    torch.save(state, path)
    del state
    model = build_model("vgg16", "meta").to_empty(device="cpu")
    label = load_weights(model, path, "vgg16")
    w = capture("vgg16", model, _image(), "cpu", label)
    assert not w.random_weights and w.notice() is None and w.weights == str(path)
    top = w.top5()
    assert [name for name, _ in top[:2]] == ["tabby", "Egyptian cat"]
    with torch.no_grad():
        probs = torch.softmax(model(w.model_input), 1)[0]
    values, indices = probs.topk(5)
    assert [n for n, _ in top] == [class_names("vgg16")[i] for i in indices]
    assert [p for _, p in top] == pytest.approx(values.tolist(), rel=1e-5)
    assert summary(w)["top5"][0]["class"] == "tabby"


def test_lenet_walkthrough():
    w = capture("lenet", lenet(), _image(), "cpu")
    assert [s.kind for s in w.stages] == ["input", "conv", "pool", "conv", "pool", "flatten",
                                         "linear", "linear", "linear", "softmax"]
    assert [s.shape_hwc() for s in w.stages] == ["32×32×1", "28×28×6", "14×14×6", "10×10×16", "5×5×16",
                                                "400", "120", "84", "10", "10"]
    assert w.raw_input.shape == (1, 1, 32, 32) and w.categories is None
    assert w.total_params == 61706
    assert [s.receptive_field for s in w.stages[:6]] == [1, 5, 6, 14, 16, None]
    assert "32 + 2·0 − 5 + 1 = 28 gives 28×28" in w.stages[1].explanation      # no padding: the size shrinks
    assert "halve to 14×14" in w.stages[2].explanation
    with torch.no_grad():
        assert torch.equal(w.outputs[8], w.model(w.model_input))


def test_a_weights_file_for_lenet_gives_top5_with_class_numbers(tmp_path):
    model = lenet()
    torch.manual_seed(5)
    with torch.no_grad():
        model.fc3.bias.copy_(torch.arange(10.0))
    w = capture("lenet", model, _image(), "cpu", "lenet.pth")
    assert [name for name, _ in w.top5()][0] == "class 9" and len(w.top5()) == 5


def test_resnet18_blocks_are_opaque_steps_with_their_shapes():
    model = build_model("resnet18")
    w = capture("resnet18", model, _image(), "cpu")
    assert [s.kind for s in w.stages] == (["input", "conv", "pool"] + ["opaque"] * 9
                                          + ["flatten", "linear", "softmax"])
    block = w.stages[5]
    assert block.name == "layer2.0" and block.title == "BasicBlock (one step)"
    assert block.input_shape == (1, 64, 56, 56) and block.output_shape == (1, 128, 28, 28)
    assert "[1, 64, 56, 56]" in block.explanation and "residual" in block.explanation
    assert w.stages[1].title == "Conv 7x7, 64 filters, stride 2 + BatchNorm"
    assert w.stages[10].receptive_field == 435 and w.stages[11].receptive_field == 627
    assert w.total_params == 11_689_512
    with torch.no_grad():
        x = w.model_input
        x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
        assert torch.equal(w.outputs[2], x)
        for i, layer in enumerate([*model.layer1, *model.layer2, *model.layer3, *model.layer4]):
            x = layer(x)
            assert torch.equal(w.outputs[3 + i], x)
        assert torch.equal(w.outputs[-2], model(w.model_input))
    with pytest.raises(ValueError, match="cannot hold"):
        to_stack(w, 3)


def test_alexnet_dropout_before_a_linear_joins_that_stage():
    w = capture("alexnet", build_model("alexnet"), _image(), "cpu")
    fc6 = next(s for s in w.stages if s.kind == "linear")
    assert fc6.modules == ["classifier.0", "classifier.1", "classifier.2", "classifier.3"]
    assert "Dropout (active only in training)" in fc6.explanation
    assert w.stages[fc6.index - 1].kind == "flatten" and w.stages[fc6.index - 1].output_shape == (1, 9216)
    assert w.stages[1].receptive_field == 11 and w.stages[1].output_shape == (1, 64, 55, 55)
    assert "⌊(224 + 2·2 − 11) / 4⌋ + 1 = 55" in w.stages[1].explanation
    assert "(55 + 2·0 − 3) / 2 + 1 = 27" in w.stages[2].explanation


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_plans_on_meta_tensors(name):
    stages = plan(name)
    torchvision_count = sum(p.numel() for p in build_model(name, "meta").parameters())
    assert stages[-1].total_params == torchvision_count
    assert stages[0].output_shape == input_shape(name)
    assert stages[-1].kind == "softmax" and stages[-1].output_shape[-1] == (10 if name == "lenet" else 1000)
    assert any(s.kind == "flatten" for s in stages)


def test_plan_matches_the_capture(vgg):
    planned = plan("vgg16", vgg.model)
    for a, b in zip(planned, vgg.stages):
        assert (a.name, a.kind, a.output_shape, a.params, a.total_params, a.macs, a.receptive_field) == \
               (b.name, b.kind, b.output_shape, b.params, b.total_params, b.macs, b.receptive_field)
    assert all(p.device.type == "cpu" for p in vgg.model.parameters())


@pytest.mark.parametrize("n", [1, 3, 10, 18, 19, 20, 24])
def test_send_to_stack_reproduces_vgg16(vgg, n):
    stack = to_stack(vgg, n)
    assert stack.layers[0].name == "normalize" and stack.input.size == (224, 224) and stack.input.channels == 3
    result = run_stack(stack, vgg.raw_input, "cpu")
    assert result.ok, result.error
    assert torch.allclose(result.layers[-1].output, vgg.outputs[n], rtol=1e-4, atol=1e-5)
    names = [layer.name for layer in stack.layers]
    stage = vgg.stages[n]
    assert names[-1] == (stage.modules[-1] if stage.modules else stage.name)


def test_send_to_stack_carries_the_weights_and_survives_the_stack_file():
    model = lenet()
    w = capture("lenet", model, _image(), "cpu")
    stack = to_stack(w, 9)
    assert [l.type for l in stack.layers] == ["Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "MaxPool2d",
                                              "Flatten", "Linear", "ReLU", "Linear", "ReLU", "Linear", "Softmax"]
    assert torch.equal(stack.layers[0].state["weight"], model.conv1.weight)
    again = stack_from_dict(stack_to_dict(stack))
    runner = StackRunner("cpu")
    for s in (stack, again):
        result = runner.run(s, w.raw_input)
        assert result.ok and torch.allclose(result.layers[-1].output, w.outputs[9], atol=1e-6)
    from_model = to_stack(model, 4, "lenet")
    assert [l.name for l in from_model.layers] == [l.name for l in stack.layers[:6]]
    for bad in (0, 10, "3"):
        with pytest.raises(ValueError):
            to_stack(w, bad)


def test_an_in_place_change_of_a_kept_map_is_caught():
    """A block that adds to its input in place would change the pool output kept by reference: the
    capture notices (version counter) and keeps copies instead."""

    class AddInPlace(nn.Module):
        def forward(self, x):
            return x.add_(100.0)

    model = nn.Sequential(nn.Conv2d(1, 4, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2), AddInPlace(),
                          nn.Flatten(), nn.Linear(4 * 14 * 14, 10)).eval()
    w = capture("lenet", model, _image(), "cpu")
    assert [s.kind for s in w.stages] == ["input", "conv", "pool", "opaque", "flatten", "linear", "softmax"]
    with torch.no_grad():
        pooled = torch.max_pool2d(torch.relu(model[0](w.model_input)), 2)
    assert torch.equal(w.outputs[2], pooled)
    assert torch.equal(w.outputs[3], pooled + 100.0)


def test_a_failing_stage_is_named_and_the_stages_before_it_kept():
    model = lenet()
    model.fc1 = nn.Linear(300, 120)      # does not fit the 400 values from the flatten
    with pytest.raises(WalkthroughError) as info:
        capture("lenet", model, _image(), "cpu")
    assert info.value.stage == "fc1" and "'fc1' failed" in str(info.value)
    assert [s.kind for s in info.value.stages] == ["input", "conv", "pool", "conv", "pool", "flatten"]
    assert len(info.value.outputs) == 6
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())    # hooks removed


def test_capture_leaves_no_hooks_and_restores_the_mode():
    model = lenet().train()
    capture("lenet", model, _image(), "cpu")
    assert model.training
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_maps_stay_on_the_gpu():
    w = capture("lenet", lenet(), _image(), "cuda")
    assert all(o.device.type == "cuda" for o in w.outputs) and w.raw_input.device.type == "cpu"


def test_a_model_with_its_own_softmax_gets_no_second_one():
    model = nn.Sequential(nn.Conv2d(1, 4, 5), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 28 * 28, 10),
                          nn.Softmax(dim=1)).eval()
    w = capture("lenet", model, _image(), "cpu", "own.pth")
    assert [s.kind for s in w.stages] == ["input", "conv", "flatten", "linear"]
    assert w.stages[-1].modules == ["3", "4"] and w.probabilities is w.outputs[-1]
    assert torch.allclose(w.probabilities.sum(), torch.tensor(1.0))
    result = run_stack(to_stack(w, 3), w.raw_input, "cpu")
    assert torch.allclose(result.layers[-1].output, w.outputs[3])


def test_batchnorm_joins_its_conv_and_goes_to_the_stack_with_its_statistics():
    model = build_model("vgg11_bn")
    torch.manual_seed(2)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):          # statistics that are not the identity
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
    w = capture("vgg11_bn", model, _image(), "cpu")
    assert [s.kind for s in w.stages[:4]] == ["input", "conv", "pool", "conv"]
    assert w.stages[1].modules == ["features.0", "features.1", "features.2"]
    assert w.stages[1].title == "Conv 3x3, 64 filters + BatchNorm" and w.stages[1].params == 1792 + 128
    assert w.total_params == 132_868_840
    stack = to_stack(w, 8)
    assert [l.type for l in stack.layers[:4]] == ["BatchNorm2d", "Conv2d", "BatchNorm2d", "ReLU"]
    result = run_stack(stack, w.raw_input, "cpu")
    assert torch.allclose(result.layers[-1].output, w.outputs[8], rtol=1e-4, atol=1e-5)


def test_the_picture_is_resized_by_torchvisions_own_preset_and_on_8_bit_levels():
    from explorer.core.walkthrough import eight_bit_picture, resize_size
    preset = torchvision.models.VGG16_Weights.IMAGENET1K_V1.transforms()
    assert resize_size("vgg16") == preset.resize_size[0] == 256 and resize_size("lenet") is None
    picture = eight_bit_picture("vgg16", _image(180, 240))
    assert picture.shape == (1, 3, 256, 341)               # short side to 256, as torchvision's Resize(256)
    assert torch.equal(picture * 255, (picture * 255).round())
    raw, _ = prepare_input("vgg16", picture)
    assert torch.equal(raw, picture[..., 16:240, 58:282])   # the preset's own resize is then a no-op
    assert eight_bit_picture("lenet", _image()).shape == (1, 1, 32, 32)


def test_the_trace_gives_one_typed_record_per_stage():
    from explorer.core.walkthrough.trace import TraceRecord, run_traced
    model = lenet()
    tracer, logits = run_traced(model, torch.rand(1, 1, 32, 32), keep_copies=False)
    assert all(isinstance(r, TraceRecord) for r in tracer.records)
    stages = plan("lenet")[1:]
    assert [r.name for r in tracer.records] == [s.name for s in stages if s.modules]
    assert [r.kind for r in tracer.records] == [s.kind for s in stages if s.modules]
    assert torch.equal(tracer.records[-1].output, logits)
    conv = tracer.records[0]
    assert conv.main is model.conv1 and [p for p, _ in conv.modules] == ["conv1", "relu1"]

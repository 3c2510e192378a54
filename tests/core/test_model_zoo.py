"""The model zoo: the classic tutorial LeNet (named as the tutorial prints it), torchvision's
classifiers by name with seeded random weights, and their ImageNet class names (offline)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from explorer.core.model_zoo import (MODEL_NAMES, ModelError, build_model, class_names, input_shape, is_imagenet,
                                     lenet, parameter_table)

# What the tutorial prints for `for name, p in net.named_parameters(): print(name, p.size())`.
TUTORIAL_PARAMETERS = [
    ("conv1.weight", (6, 1, 5, 5)), ("conv1.bias", (6,)),
    ("conv2.weight", (16, 6, 5, 5)), ("conv2.bias", (16,)),
    ("fc1.weight", (120, 400)), ("fc1.bias", (120,)),
    ("fc2.weight", (84, 120)), ("fc2.bias", (84,)),
    ("fc3.weight", (10, 84)), ("fc3.bias", (10,)),
]


class TutorialNet(nn.Module):
    """PyTorch's '60 minute blitz' Net, verbatim (functional ReLU, pooling and flatten)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, input):
        c1 = F.relu(self.conv1(input))
        s2 = F.max_pool2d(c1, (2, 2))
        c3 = F.relu(self.conv2(s2))
        s4 = F.max_pool2d(c3, 2)
        s4 = torch.flatten(s4, 1)
        f5 = F.relu(self.fc1(s4))
        f6 = F.relu(self.fc2(f5))
        return self.fc3(f6)


def test_the_required_models_are_listed():
    for name in ("vgg16", "lenet", "alexnet", "vgg11", "vgg13", "vgg19", "resnet18"):
        assert name in MODEL_NAMES
    assert len(set(MODEL_NAMES)) == len(MODEL_NAMES)
    available = set(torchvision.models.list_models(module=torchvision.models))
    assert set(MODEL_NAMES) - {"lenet"} <= available


def test_lenet_parameters_are_named_as_the_tutorial_prints_them():
    assert parameter_table(lenet()) == TUTORIAL_PARAMETERS
    assert [(n, tuple(p.shape)) for n, p in lenet().named_parameters()] == TUTORIAL_PARAMETERS
    assert sum(p.numel() for p in lenet().parameters()) == 61706


def test_lenet_computes_what_the_tutorial_net_computes():
    ours = lenet()
    tutorial = TutorialNet().eval()
    tutorial.load_state_dict(ours.state_dict())      # same keys: loads strictly
    x = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert ours(x).shape == (2, 10)
        assert torch.equal(ours(x), tutorial(x))


def test_build_model_is_seeded_and_in_eval_mode():
    a, b = build_model("lenet"), build_model("lenet")
    assert not a.training
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    assert torch.equal(build_model("lenet").conv1.weight, lenet().conv1.weight)


def test_build_model_accepts_any_case_and_builds_torchvisions_architecture():
    model = build_model(" ResNet18 ", "meta")
    assert isinstance(model, torchvision.models.ResNet)
    assert all(p.device.type == "meta" for p in model.parameters())
    assert sum(p.numel() for p in build_model("vgg16", "meta").parameters()) == 138_357_544


@pytest.mark.parametrize("bad", ["vgg17", "", "resnet", None])
def test_an_unknown_model_is_one_clear_error_listing_the_choices(bad):
    with pytest.raises(ModelError) as info:
        build_model(bad)
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert "vgg16" in message and "lenet" in message and "resnet18" in message
    assert "\n" not in message


def test_class_names_come_offline_from_torchvisions_metadata():
    names = class_names("vgg16")
    assert len(names) == 1000 and names[281] == "tabby" and names[0] == "tench"
    assert class_names("resnet18") == names
    assert class_names("lenet") is None


def test_input_shapes():
    assert input_shape("vgg16") == (1, 3, 224, 224) and is_imagenet("alexnet")
    assert input_shape("lenet") == (1, 1, 32, 32) and not is_imagenet("lenet")

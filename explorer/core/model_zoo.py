"""The networks the walkthrough knows: the classic tutorial LeNet and torchvision's ImageNet
classifiers, built with random weights (seeded, so every machine draws the same) in eval mode."""

from __future__ import annotations


import torch
from torch import nn

TORCHVISION_NAMES = ("vgg16", "alexnet", "vgg11", "vgg13", "vgg19", "resnet18",
                     "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn", "resnet34", "resnet50")
MODEL_NAMES: tuple[str, ...] = ("vgg16", "lenet", *TORCHVISION_NAMES[1:])
SEED = 0


class ModelError(ValueError):
    """An architecture name the app does not know; the message lists the choices."""


class LeNet(nn.Module):
    """The LeNet of PyTorch's '60 minute blitz' tutorial, with its functional ReLU, max-pool and
    flatten as modules so each can be looked at. Its parameters are named as the tutorial prints
    them: conv1.weight [6, 1, 5, 5], conv1.bias [6], conv2.weight [16, 6, 5, 5], ..., fc3.bias [10]."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten(1)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(120, 84)
        self.relu4 = nn.ReLU()
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        x = self.flatten(x)
        x = self.relu3(self.fc1(x))
        x = self.relu4(self.fc2(x))
        return self.fc3(x)


def lenet() -> nn.Module:
    """The tutorial LeNet (takes [N, 1, 32, 32]), random weights, eval mode."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        return LeNet().eval()


def check_name(name: str) -> str:
    if not isinstance(name, str) or name.strip().lower() not in MODEL_NAMES:
        raise ModelError(f"Unknown model {name!r}; the models are {', '.join(MODEL_NAMES)}.")
    return name.strip().lower()


def is_imagenet(name: str) -> bool:
    """True for the torchvision ImageNet classifiers (3×224×224 input, 1000 classes)."""
    return check_name(name) != "lenet"


def input_shape(name: str) -> tuple[int, int, int, int]:
    """The model input the walkthrough feeds: [1, 3, 224, 224], or [1, 1, 32, 32] for LeNet."""
    return (1, 3, 224, 224) if is_imagenet(name) else (1, 1, 32, 32)


def build_model(name: str, device: str | torch.device = "cpu") -> nn.Module:
    """A fresh model with random (seeded) weights in eval mode; ModelError for an unknown name.
    On the meta device nothing is allocated (shapes only)."""
    name = check_name(name)
    device = torch.device(device)
    if device.type == "meta":
        with torch.device("meta"):
            model = _construct(name)
        return model.eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = _construct(name)
    return model.to(device).eval()


def _construct(name: str) -> nn.Module:
    if name == "lenet":
        return LeNet()
    import torchvision
    return torchvision.models.get_model(name, weights=None)


def weights_enum(name: str):
    """torchvision's ImageNet weights entry for a model (works offline: only metadata), or None."""
    name = check_name(name)
    if name == "lenet":
        return None
    from torchvision.models import get_model_weights
    enum = get_model_weights(name)
    return enum["IMAGENET1K_V1"] if "IMAGENET1K_V1" in enum.__members__ else enum.DEFAULT


def class_names(name: str) -> list[str] | None:
    """The 1000 ImageNet category names of a torchvision model (from its weights metadata,
    offline); None for LeNet, which has no fixed classes."""
    w = weights_enum(name)
    return list(w.meta["categories"]) if w is not None else None


def parameter_table(model: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    """named_parameters() as the tutorial prints them: [("conv1.weight", (6, 1, 5, 5)), ...]."""
    return [(n, tuple(p.shape)) for n, p in model.named_parameters()]



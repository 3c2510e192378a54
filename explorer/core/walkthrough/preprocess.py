"""The input as a walkthrough model expects it. The ImageNet models take torchvision's own preset
(``weights.transforms()``: Resize, CenterCrop, Normalize), read from the weights' metadata, which
needs no download, so random weights work offline too; LeNet takes one gray 32×32 channel."""

from __future__ import annotations

import torch

from explorer.core.inputs import to_gray
from explorer.core.model_zoo import check_name, input_shape, is_imagenet, weights_enum


def imagenet_preset(model_name: str):
    """torchvision's ImageClassification preset of the model's ImageNet weights (resize_size,
    crop_size, mean, std, interpolation, antialias); None for LeNet."""
    name = check_name(model_name)
    return weights_enum(name).transforms() if is_imagenet(name) else None


def resize_size(model_name: str) -> int | None:
    """The short side the preset resizes to before its centre crop (256 for VGG-16); None for LeNet."""
    preset = imagenet_preset(model_name)
    return int(preset.resize_size[0]) if preset is not None else None


def prepare_input(model_name: str, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """image [1, C, H, W] in [0, 1] -> (raw, normalised). ImageNet models: 3 channels,
    Resize(256) + CenterCrop(224) + Normalize(mean, std) as torchvision's weights transforms do;
    LeNet: one gray channel resized to 32×32, no normalisation (raw == normalised)."""
    from torchvision.transforms.v2 import functional as TF

    name = check_name(model_name)
    if image.dim() == 3:
        image = image.unsqueeze(0)
    if image.dim() != 4 or image.shape[0] < 1 or image.shape[1] not in (1, 3, 4):
        raise ValueError(f"An input image must be [1, C, H, W] with 1, 3 or 4 channels, not {list(image.shape)}.")
    image = image[:1, :3].float()
    preset = imagenet_preset(name)
    if preset is not None:
        if image.shape[1] == 1:
            image = image.expand(1, 3, *image.shape[2:])
        raw = TF.resize(image, list(preset.resize_size), interpolation=preset.interpolation, antialias=preset.antialias)
        raw = TF.center_crop(raw, list(preset.crop_size)).contiguous()
        return raw, TF.normalize(raw, list(preset.mean), list(preset.std))
    if image.shape[1] == 3:
        image = to_gray(image)
    _, _, h, w = input_shape(name)
    raw = TF.resize(image, [h, w], interpolation=TF.InterpolationMode.BILINEAR, antialias=True).contiguous()
    return raw, raw


def denormalize(model_name: str, x: torch.Tensor) -> torch.Tensor:
    """The model input with the preset's Normalize undone (LeNet's input is returned as it is)."""
    preset = imagenet_preset(model_name)
    if preset is None:
        return x
    mean = torch.tensor(preset.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(preset.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return x * std + mean


def eight_bit_picture(model_name: str, image: torch.Tensor) -> torch.Tensor:
    """The picture resized as the model's preprocessing starts (short side ``resize_size`` for the
    ImageNet models, one gray 32×32 channel for LeNet) and rounded to 8-bit levels, as a torchvision
    pipeline on PIL images gives it. prepare_input's own resize is then a no-op and its crop a slice,
    so the walkthrough's input is exactly an 8-bit picture: 'Send to stack' hands it to the main
    window as a PNG without changing a value, and the main window's outputs equal the walkthrough's."""
    x = image.detach().to("cpu", torch.float32)
    channels = input_shape(model_name)[1]
    if channels == 1 and x.shape[1] != 1:
        x = to_gray(x[:, :3])
    h, w = x.shape[-2:]
    short = resize_size(model_name)
    if short is not None:
        size = (short, max(short, int(short * w / h))) if h <= w else (max(short, int(short * h / w)), short)
    else:
        size = tuple(input_shape(model_name)[-2:])
    if (h, w) != tuple(size):
        x = torch.nn.functional.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    return (x.clamp(0, 1) * 255).round() / 255

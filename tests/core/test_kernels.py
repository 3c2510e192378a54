"""Kernel presets against their textbook definitions, scopes, initialisers, centred resizing and
kernels as text."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from explorer.core.kernels import (PRESETS, KernelError, applicable_presets, format_kernel_text, initialized_state,
                                   kernel_from_text, layer_parameters, normalized_to_sum_one, parse_kernel_text,
                                   preset_kernel, put_kernel, reconcile_state, resize_centered, zero_mean)
from explorer.core.layers import LayerSpec, build_module

T = torch.tensor

# The 3x3 classics as textbooks print them.
CLASSIC_3x3 = {
    "Identity": [[0, 0, 0], [0, 1, 0], [0, 0, 0]],
    "Blur (box average)": [[1 / 9] * 3] * 3,
    "Gaussian blur": [[1 / 16, 2 / 16, 1 / 16], [2 / 16, 4 / 16, 2 / 16], [1 / 16, 2 / 16, 1 / 16]],
    "Sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
    "Laplacian (all edges)": [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
    "Sobel x (vertical edges)": [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
    "Sobel y (horizontal edges)": [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
    "Prewitt x (vertical edges)": [[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]],
    "Prewitt y (horizontal edges)": [[-1, -1, -1], [0, 0, 0], [1, 1, 1]],
    "Emboss": [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]],
    "Outline": [[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]],
    "Diagonal \\ (X-vs-O)": [[1, -1, -1], [-1, 1, -1], [-1, -1, 1]],
    "Diagonal / (X-vs-O)": [[-1, -1, 1], [-1, 1, -1], [1, -1, -1]],
    "Crossing X (X-vs-O)": [[1, -1, 1], [-1, 1, -1], [1, -1, 1]],
    "Zeros": [[0, 0, 0]] * 3,
}


def test_every_preset_matches_its_textbook_3x3_and_has_a_sentence():
    assert set(CLASSIC_3x3) == set(PRESETS)
    for name, expected in CLASSIC_3x3.items():
        assert torch.allclose(preset_kernel(name, 3, 3), T(expected, dtype=torch.float32)), name
        sentence = PRESETS[name].explanation
        assert sentence.endswith(".") and sentence.count(". ") == 0 and len(sentence) > 20


def test_5x5_presets_are_the_larger_classics():
    sobel5 = T([[-1, -2, 0, 2, 1], [-4, -8, 0, 8, 4], [-6, -12, 0, 12, 6], [-4, -8, 0, 8, 4], [-1, -2, 0, 2, 1]],
               dtype=torch.float32)
    assert torch.equal(preset_kernel("Sobel x (vertical edges)", 5, 5), sobel5)
    assert torch.equal(preset_kernel("Sobel y (horizontal edges)", 5, 5), sobel5.T)
    gauss = preset_kernel("Gaussian blur", 5, 5)
    assert torch.allclose(gauss, torch.outer(T([1., 4, 6, 4, 1]), T([1., 4, 6, 4, 1])) / 256)
    for name in applicable_presets(7, 5):
        k = preset_kernel(name, 7, 5)
        assert k.shape == (7, 5)
    # What each family promises, at every odd size.
    for kh, kw in [(3, 3), (5, 5), (7, 3), (3, 7)]:
        for name in ("Blur (box average)", "Gaussian blur", "Identity", "Sharpen"):
            assert preset_kernel(name, kh, kw).sum().item() == pytest.approx(1.0)   # brightness kept
        for name in ("Laplacian (all edges)", "Sobel x (vertical edges)", "Sobel y (horizontal edges)",
                     "Prewitt x (vertical edges)", "Prewitt y (horizontal edges)", "Outline"):
            assert preset_kernel(name, kh, kw).sum().item() == 0                       # flat areas give 0
        ramp = torch.arange(12.0).repeat(12, 1)[None, None]        # brighter to the right
        assert (F.conv2d(ramp, preset_kernel("Sobel x (vertical edges)", kh, kw)[None, None]) > 0).all()
        assert (F.conv2d(ramp, preset_kernel("Sobel y (horizontal edges)", kh, kw)[None, None]) == 0).all()


def test_presets_refuse_sizes_where_they_make_no_sense():
    with pytest.raises(KernelError, match="odd kernel size; this kernel is 4×4"):
        preset_kernel("Identity", 4, 4)
    with pytest.raises(KernelError, match="at least a 3×3"):
        preset_kernel("Sobel x (vertical edges)", 1, 1)
    with pytest.raises(KernelError, match="square"):
        preset_kernel("Diagonal \\ (X-vs-O)", 5, 3)
    assert preset_kernel("Blur (box average)", 2, 4).sum().item() == pytest.approx(1.0)
    assert "Sobel x (vertical edges)" not in applicable_presets(1, 1)
    assert "Identity" in applicable_presets(1, 1)


def test_scopes_write_where_they_say_and_the_split_keeps_gray_brightness():
    weight = torch.randn(4, 3, 3, 3)
    sobel = preset_kernel("Sobel x (vertical edges)", 3, 3)
    one = put_kernel(weight, "Conv2d", sobel, "kernel", 2, 1)
    assert torch.equal(one[2, 1], sobel)
    one[2, 1] = weight[2, 1]
    assert torch.equal(one, weight)                     # nothing else moved
    split = put_kernel(weight, "Conv2d", preset_kernel("Gaussian blur", 3, 3), "filter", 1, 0)
    gray = torch.rand(1, 1, 9, 9).expand(1, 3, 9, 9)    # every channel the same
    blurred_gray = F.conv2d(gray[:, :1], preset_kernel("Gaussian blur", 3, 3)[None, None])
    assert torch.allclose(F.conv2d(gray, split)[:, 1:2], blurred_gray, atol=1e-6)
    layer = put_kernel(weight, "Conv2d", sobel, "layer", 0, 0)
    assert torch.allclose(layer, (sobel / 3).expand(4, 3, 3, 3))
    copied = put_kernel(weight, "Conv2d", sobel, "all_inputs", 3, 0)
    assert torch.equal(copied[3], sobel.expand(3, 3, 3))
    # ConvTranspose2d keeps weight[in, out]: 'filter 2, input 1' is weight[1, 2].
    transposed = put_kernel(torch.zeros(3, 4, 3, 3), "ConvTranspose2d", sobel, "kernel", 2, 1)
    assert torch.equal(transposed[1, 2], sobel) and transposed.abs().sum() == sobel.abs().sum()
    with pytest.raises(KernelError, match="5×5 but this layer's kernels are 3×3"):
        put_kernel(weight, "Conv2d", torch.zeros(5, 5), "kernel", 0, 0)


def test_normalise_and_zero_mean():
    k = T([[1., 2.], [3., 4.]])
    assert normalized_to_sum_one(k).sum().item() == pytest.approx(1.0)
    assert torch.allclose(normalized_to_sum_one(k), k / 10)
    assert zero_mean(k).mean().item() == pytest.approx(0.0)
    with pytest.raises(KernelError, match="sums to 0"):
        normalized_to_sum_one(preset_kernel("Laplacian (all edges)", 3, 3))


def test_initialisers():
    spec = LayerSpec("Conv2d", "conv1", {"in_channels": 16, "out_channels": 64, "kernel_size": 5})
    assert initialized_state(spec, "default", 0) is None          # back to the stack seed
    zeros = initialized_state(spec, "zeros", 0)
    assert zeros["weight"].abs().sum() == 0 and zeros["bias"].abs().sum() == 0
    fan_in, fan_out = 16 * 25, 64 * 25
    xavier = initialized_state(spec, "xavier_normal", 0)["weight"]
    assert xavier.std().item() == pytest.approx(math.sqrt(2 / (fan_in + fan_out)), rel=0.05)
    assert abs(xavier.mean().item()) < 0.01
    kaiming = initialized_state(spec, "kaiming_normal", 0)["weight"]
    assert kaiming.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.05)
    assert torch.equal(initialized_state(spec, "xavier_normal", 0)["weight"], xavier)   # deterministic
    seeded = build_module(spec, 0).weight
    fresh = initialized_state(spec, "new_seed", 0, new_seed=1234)["weight"]
    assert fresh.shape == seeded.shape and not torch.equal(fresh, seeded)
    bound = 1 / math.sqrt(fan_in)           # torch's default (kaiming_uniform a=sqrt(5)) stays within
    assert fresh.abs().max().item() <= bound + 1e-6
    linear = initialized_state(LayerSpec("Linear", "fc", {"in_features": 3, "out_features": 4}), "zeros", 0)
    assert linear["weight"].shape == (4, 3)


def test_resize_centred_pads_and_crops_around_the_centre():
    sobel = preset_kernel("Sobel x (vertical edges)", 3, 3)
    big = resize_centered(sobel, 5, 5)
    assert torch.equal(big[1:4, 1:4], sobel) and big.abs().sum() == sobel.abs().sum()
    assert torch.equal(resize_centered(big, 3, 3), sobel)
    assert torch.equal(resize_centered(sobel, 1, 1), T([[0.]]))
    assert torch.equal(resize_centered(sobel, 3, 5)[:, 1:4], sobel)
    assert resize_centered(torch.ones(2, 4, 3, 3), 5, 5).shape == (2, 4, 5, 5)


def test_reconcile_state_keeps_what_fits():
    before = LayerSpec("Conv2d", "conv1", {"in_channels": 3, "out_channels": 4, "kernel_size": 3})
    weight = torch.randn(4, 3, 3, 3)
    bias = torch.randn(4)
    before.state = {"weight": weight, "bias": bias}
    after = before.copy(args={"in_channels": 3, "out_channels": 6, "kernel_size": 5})
    state = reconcile_state(before, after, 0)
    assert state["weight"].shape == (6, 3, 5, 5)
    assert torch.equal(state["weight"][:4, :, 1:4, 1:4], weight)             # kept, centred
    assert state["weight"][:4, :, 0].abs().sum() == 0                       # padded with zeros
    seeded = build_module(after.copy(state=None), 0).state_dict()
    assert torch.equal(state["weight"][4:], seeded["weight"][4:])           # new filters: seeded
    assert torch.equal(state["bias"][:4], bias) and torch.equal(state["bias"][4:], seeded["bias"][4:])
    fewer = reconcile_state(before, before.copy(args={"in_channels": 2, "out_channels": 2, "kernel_size": 3}), 0)
    assert torch.equal(fewer["weight"], weight[:2, :2]) and torch.equal(fewer["bias"], bias[:2])
    no_bias = reconcile_state(before, before.copy(args={**before.args, "bias": False}), 0)
    assert set(no_bias) == {"weight"}
    assert reconcile_state(before.copy(state=None), after, 0) is None


def test_layer_parameters_combine_hand_set_and_seeded():
    spec = LayerSpec("Conv2d", "conv1", {"in_channels": 1, "out_channels": 2, "kernel_size": 3})
    module = build_module(spec, 5)
    params = layer_parameters(spec, 5)
    assert torch.equal(params["weight"], module.weight) and torch.equal(params["bias"], module.bias)
    spec.state = {"weight": torch.zeros(2, 1, 3, 3)}
    params = layer_parameters(spec, 5)
    assert params["weight"].abs().sum() == 0 and torch.equal(params["bias"], module.bias)


@pytest.mark.parametrize("text", [
    "[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]",
    "torch.tensor([[-1., 0., 1.], [-2., 0., 2.], [-1., 0., 1.]])",
    "torch.tensor([[-1, 0, 1],\n  [-2, 0, 2],\n  [-1, 0, 1]], dtype=torch.float32)",
    "tensor([[-1., 0., 1.], [-2., 0., 2.], [-1., 0., 1.]])",
    "np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])",
    "-1\t0\t1\n-2\t0\t2\n-1\t0\t1\n",
    "-1, 0, 1\n-2, 0, 2\n-1, 0, 1",
    "((-1, 0, 1), (-2, 0, 2), (-1, 0, 1))",
])
def test_kernel_text_in_the_forms_people_paste(text):
    assert torch.equal(kernel_from_text(text, 3, 3), preset_kernel("Sobel x (vertical edges)", 3, 3))


def test_kernel_text_round_trips():
    k = torch.randn(3, 5)
    assert torch.equal(parse_kernel_text(format_kernel_text(k)), k)
    assert format_kernel_text(preset_kernel("Sobel x (vertical edges)", 3, 3)) == "[[-1, 0, 1],\n [-2, 0, 2],\n [-1, 0, 1]]"
    assert torch.equal(T(eval(format_kernel_text(k))), k)       # valid Python as well


@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("hello", "'hello' is not a number"),
    ("[[1, 2], [3]]", "different lengths"),
    ("[[1, 2], [3, 4]", "not a valid one"),
    ("[1, 'a']", "not a number"),
    ("[[1, True]]", "True and False"),
    ("[[1, 2], [3, float('nan')]]", "not a valid one"),
    ("1 2 3\n4 5", "different lengths"),
    ("__import__('os').system('true')", "not a number"),
    ("[[" + "9" * 400 + "]]", "too large"),
    ("1e999 0 0", "inf or nan"),
])
def test_garbage_text_gets_one_sentence(text, message):
    with pytest.raises(KernelError, match=message.replace("(", r"\(")) as info:
        parse_kernel_text(text)
    assert str(info.value).endswith(".") and "\n" not in str(info.value)


def test_kernel_text_of_the_wrong_size_says_both_sizes():
    with pytest.raises(KernelError, match="The pasted kernel is 2×2 but this kernel is 3×3."):
        kernel_from_text("[[1, 2], [3, 4]]", 3, 3)

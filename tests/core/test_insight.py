"""Insight core: top patches against a brute-force search, the sanity checks of saliency maps,
Grad-CAM's size, activation maximisation, the deconvnet's use of the pool switches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from explorer.core.engine import run_stack
from explorer.core.insight.data import CifarSource, FolderSource, SamplesSource, TensorSource
from explorer.core.insight.subject import InsightError, LayerFailed, resolve_subject, stack_subject
from explorer.core.insight.top_patches import TopPatchesCache, cache_key, export_top_patches, top_patches
from explorer.core.layers import LayerSpec
from explorer.core.stack import InputSpec, Stack


def conv_pool_stack(padding: int = 1, channels: int = 3, dead: bool = False) -> Stack:
    layers = [LayerSpec("Conv2d", "conv1", {"in_channels": channels, "out_channels": 4, "kernel_size": 3,
                                            "padding": padding}),
              LayerSpec("ReLU", "relu1"),
              LayerSpec("MaxPool2d", "pool1", {"kernel_size": 2})]
    if dead:    # channel 1's bias so negative that ReLU never lets anything through
        torch.manual_seed(3)
        layers[0].state = {"weight": torch.randn(4, channels, 3, 3) * 0.1,
                           "bias": torch.tensor([0.0, -100.0, 0.0, 0.0])}
    return Stack(layers, seed=5, input=InputSpec(channels, None))


def brute_force(stack: Stack, images: torch.Tensor, layer: str, k: int):
    """Every image through the engine on its own; per channel the k images with the largest maximum."""
    outs = []
    for img in images:
        result = run_stack(stack, img[None], "cpu")
        outs.append(next(r.output for r in result.layers if r.name == layer)[0])
    act = torch.stack(outs)                       # [N, C, H, W]
    n, c, h, w = act.shape
    flat = act.flatten(2)
    per_image, where = flat.max(2)                # [N, C]
    expected = []
    for ch in range(c):
        order = sorted(range(n), key=lambda i: -float(per_image[i, ch]))[:k]
        expected.append([(i, float(per_image[i, ch]), *divmod(int(where[i, ch]), w)) for i in order])
    return expected


def test_top_patches_agree_with_brute_force_and_boxes_follow_the_receptive_field():
    torch.manual_seed(0)
    images = torch.rand(13, 3, 12, 12)
    stack = conv_pool_stack(padding=1)
    subject = stack_subject(stack, "test")
    result = top_patches(subject, "pool1", TensorSource(images), k=4, batch_size=5)
    expected = brute_force(stack, images, "pool1", 4)
    assert result.images == 13 and result.k == 4 and len(result.channels) == 4
    for ch, want in zip(result.channels, expected):
        got = [(p.image, p.activation, p.y, p.x) for p in ch.patches]
        assert [g[0] for g in got] == [w[0] for w in want]
        assert [g[2:] for g in got] == [w[2:] for w in want]
        np.testing.assert_allclose([g[1] for g in got], [w[1] for w in want], rtol=1e-5, atol=1e-6)
        assert len({p.image for p in ch.patches}) == len(ch.patches)      # at most one per image
        for p in ch.patches:
            # conv 3×3 padding 1 then pool 2: pool output y sees conv rows 2y, 2y+1, i.e. input rows 2y-1 .. 2y+2
            assert p.box == (max(0, 2 * p.y - 1), max(0, 2 * p.x - 1), min(12, 2 * p.y + 3), min(12, 2 * p.x + 3))


def test_top_patches_over_cifar_use_the_split_order_and_labels(cifar_dir, cifar_data):
    data, labels = cifar_data["test_batch"]
    images = torch.from_numpy(data.reshape(-1, 3, 32, 32)).float() / 255
    stack = conv_pool_stack(padding=0)
    result = top_patches(stack_subject(stack), "pool1", CifarSource(cifar_dir, "test"), k=3, batch_size=7)
    expected = brute_force(stack, images, "pool1", 30)
    names = CifarSource(cifar_dir, "test").class_names()
    # conftest's images are regular patterns with ties between images: compare values, and each
    # patch's value and label with its own image's
    for ch, want in zip(result.channels, expected):
        np.testing.assert_allclose([p.activation for p in ch.patches], [w[1] for w in want[:3]], rtol=1e-5)
        per_image = {w[0]: w[1] for w in want}
        for p in ch.patches:
            assert p.activation == pytest.approx(per_image[p.image], rel=1e-5)
            assert p.label == names[labels[p.image]]


def test_dead_channels_are_marked_and_sorted_last():
    torch.manual_seed(1)
    result = top_patches(stack_subject(conv_pool_stack(dead=True)), "pool1", TensorSource(torch.rand(6, 3, 10, 10)), k=2)
    assert result.dead_channels() == [1]
    assert result.by_maximum()[-1].channel == 1
    assert [c.maximum for c in result.by_maximum()[:3]] == sorted([c.maximum for c in result.by_maximum()[:3]], reverse=True)


def test_top_patches_stop_between_batches_and_report_progress():
    seen = []
    result = top_patches(stack_subject(conv_pool_stack()), "pool1", TensorSource(torch.rand(10, 3, 8, 8)), k=2,
                         batch_size=4, progress=lambda done, total: seen.append((done, total)))
    assert result is not None and seen == [(4, 10), (8, 10), (10, 10)]
    stopped = top_patches(stack_subject(conv_pool_stack()), "pool1", TensorSource(torch.rand(10, 3, 8, 8)), k=2,
                          batch_size=4, should_stop=lambda: len(seen) >= 4,
                          progress=lambda done, total: seen.append((done, total)))
    assert stopped is None and len(seen) == 4


def test_cache_key_changes_with_earlier_weights_only():
    stack = conv_pool_stack()
    stack.layers.append(LayerSpec("Conv2d", "conv2", {"in_channels": 4, "out_channels": 2, "kernel_size": 1}))
    source = TensorSource(torch.rand(3, 3, 8, 8), key="three")
    key = cache_key(stack_subject(stack), "pool1", source, 9)
    later = stack.copy()
    later.layers[3].state = {"weight": torch.ones(2, 4, 1, 1), "bias": torch.zeros(2)}
    assert cache_key(stack_subject(later), "pool1", source, 9) == key
    earlier = stack.copy()
    earlier.layers[0].state = {"weight": torch.ones(4, 3, 3, 3), "bias": torch.zeros(4)}
    assert cache_key(stack_subject(earlier), "pool1", source, 9) != key
    cache = TopPatchesCache(limit=1)
    cache.put(key, "result")
    assert cache.get(key) == "result"
    cache.put(("other",), "second")
    assert cache.get(key) is None and len(cache) == 1


def test_folder_and_samples_sources(tmp_path):
    from PIL import Image
    for cls, color in (("dark", 20), ("light", 230)):
        (tmp_path / cls).mkdir()
        for i in range(2):
            Image.fromarray(np.full((10, 12, 3), color + i, np.uint8)).save(tmp_path / cls / f"{i}.png")
    folder = FolderSource(tmp_path)
    assert len(folder) == 4 and folder.class_names() == ["dark", "light"] and folder.label(3) == "light"
    result = top_patches(stack_subject(conv_pool_stack()), "pool1", folder, k=2)
    assert all(p.label in ("dark", "light") for c in result.channels for p in c.patches)
    samples = SamplesSource()
    result = top_patches(stack_subject(conv_pool_stack()), "pool1", samples, k=2)
    assert result.images == len(samples) and all(p.label is None for c in result.channels for p in c.patches)


def test_export_writes_json_and_one_png_per_channel(tmp_path):
    import json
    from PIL import Image
    subject = stack_subject(conv_pool_stack(padding=0))
    source = TensorSource(torch.rand(5, 3, 12, 12))
    result = top_patches(subject, "pool1", source, k=3)
    export_top_patches(subject, source, result, tmp_path)
    data = json.loads((tmp_path / "top_patches.json").read_text())
    assert set(data) >= {"layer", "k", "images", "channels"} and data["images"] == 5
    patch = data["channels"][0]["patches"][0]
    assert set(patch) == {"image", "label", "activation", "y", "x", "box"}
    for c in range(4):
        png = Image.open(tmp_path / f"channel_{c}.png")
        assert png.width > 3 * png.height       # three patches side by side


def test_layer_errors_list_the_names():
    subject = resolve_subject("lenet")
    with pytest.raises(InsightError, match="the layers are: conv1, relu1, pool1, conv2"):
        subject.check_layer("conv9")
    assert resolve_subject("lenet").kind == "stack"
    assert resolve_subject("lenet", weights="random").kind == "model"
    assert resolve_subject("model:lenet").layers[:3] == ["conv1", "pool1", "conv2"]


# ---------------------------------------------------------------- attribution
def _flatten_linear(weight: torch.Tensor) -> Stack:
    k, f = weight.shape
    return Stack([LayerSpec("Flatten", "flatten"),
                  LayerSpec("Linear", "fc", {"in_features": f, "out_features": k},
                            {"weight": weight, "bias": torch.zeros(k)})], input=InputSpec(2, (3, 4)))


def test_saliency_of_flatten_linear_is_the_weights_magnitude():
    from explorer.core.insight.attribution import attribute
    torch.manual_seed(2)
    weight = torch.randn(3, 2 * 3 * 4)
    subject = stack_subject(_flatten_linear(weight))
    x = torch.rand(1, 2, 3, 4)
    for target in range(3):
        result = attribute(subject, x, x, "saliency", target)
        expected = weight[target].reshape(2, 3, 4).abs().amax(0).numpy()
        np.testing.assert_allclose(result.map, expected, rtol=1e-6)
        assert result.map.dtype == np.float32 and result.target == target


def test_grad_cam_map_has_the_inputs_size_and_default_layer_is_the_last_conv():
    from explorer.core.insight.attribution import attribute
    subject = resolve_subject("lenet")
    x = torch.rand(1, 1, 32, 32)
    result = attribute(subject, x, x, "grad-cam")
    assert result.map.shape == (32, 32) and result.layer == "conv2"
    assert attribute(subject, x, x, "grad-cam", layer="conv1").map.shape == (32, 32)
    with pytest.raises(InsightError, match="the convolutions are: conv1, conv2"):
        attribute(subject, x, x, "grad-cam", layer="fc1")


def test_randomising_the_weights_changes_the_saliency_map():
    """Adebayo et al., "Sanity checks for saliency maps": a map that survives randomising the
    weights explains nothing about the model."""
    from explorer.core.insight.attribution import attribute
    x = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(4))
    stack = resolve_subject("lenet").stack
    trained = attribute(stack_subject(stack), x, x, "saliency", 3).map
    shuffled = stack.copy()
    shuffled.seed = 99                # every layer's weights drawn again
    random = attribute(stack_subject(shuffled), x, x, "saliency", 3).map
    corr = np.corrcoef(trained.ravel(), random.ravel())[0, 1]
    assert abs(corr) < 0.5, corr
    again = attribute(stack_subject(stack), x, x, "saliency", 3).map
    np.testing.assert_array_equal(trained, again)      # the same weights give the same map


def test_every_method_gives_a_float_map_and_targets_are_checked():
    from explorer.core.insight.attribution import METHODS, attribute
    subject = resolve_subject("x_vs_o")
    x = torch.zeros(1, 1, 9, 9)
    x[0, 0, [1, 2, 3], [1, 2, 3]] = 1
    for method in METHODS:
        result = attribute(subject, x, x, method)
        assert result.map.shape == (9, 9) and result.map.dtype == np.float32 and np.isfinite(result.map).all()
        assert result.prediction.top5[0][0] == result.target
    with pytest.raises(InsightError, match="from 0 to 1"):
        attribute(subject, x, x, "saliency", 2)
    with pytest.raises(InsightError, match="ends in class scores"):
        attribute(resolve_subject("default"), torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16), "saliency")


# ---------------------------------------------------------------- feature visualisation
def test_activation_maximisation_ends_far_above_its_start():
    from explorer.core.insight.feature_vis import visualize
    edge = torch.tensor([[-1.0, 0.0, 1.0]] * 3)
    stack = Stack([LayerSpec("Conv2d", "edges", {"in_channels": 1, "out_channels": 2, "kernel_size": 3},
                             {"weight": torch.stack([edge, edge.T])[:, None], "bias": torch.zeros(2)}),
                   LayerSpec("ReLU", "relu")], input=InputSpec(1, (20, 20)))
    previews = []
    result = visualize(stack_subject(stack), "relu", [0, 1], steps=48, seed=1,
                       progress=lambda step, total, imgs: previews.append((step, tuple(imgs.shape))))
    assert result.images.shape == (2, 1, 20, 20)
    for start, end in zip(result.start_activations, result.activations):
        assert end > 0.3 and end > 10 * max(start, 1e-3), (start, end)
    assert previews[-1] == (48, (2, 1, 20, 20))
    # the vertical-edge channel's image varies along x more than along y, the horizontal one the other way
    img = result.images[:, 0]
    dx = (img[:, :, 1:] - img[:, :, :-1]).abs().mean((1, 2))
    dy = (img[:, 1:, :] - img[:, :-1, :]).abs().mean((1, 2))
    assert dx[0] > dy[0] and dy[1] > dx[1]


def test_stop_keeps_the_current_images():
    from explorer.core.insight.feature_vis import visualize
    calls = []
    result = visualize(resolve_subject("lenet"), "conv1", [0, 2], steps=100,
                       should_stop=lambda: calls.append(1) or len(calls) > 5)
    assert result.stopped and result.steps == 5 and result.images.shape == (2, 1, 32, 32)


def test_parse_channels():
    from explorer.core.insight.feature_vis import parse_channels
    assert parse_channels("0,1,5-8") == [0, 1, 5, 6, 7, 8]
    with pytest.raises(InsightError, match="channels 0 to 5"):
        parse_channels("3,9", 6)
    with pytest.raises(InsightError, match="not 'a'"):
        parse_channels("1,a")


# ---------------------------------------------------------------- deconvnet
def test_deconvnet_goes_back_through_the_pool_switches():
    from explorer.core.insight.deconvnet import deconvnet
    stack = Stack([LayerSpec("Conv2d", "conv", {"in_channels": 1, "out_channels": 1, "kernel_size": 1},
                             {"weight": torch.ones(1, 1, 1, 1), "bias": torch.zeros(1)}),
                   LayerSpec("ReLU", "relu"), LayerSpec("MaxPool2d", "pool", {"kernel_size": 2})],
                  input=InputSpec(1, (8, 8)))
    x = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    _, indices = F.max_pool2d(x, 2, return_indices=True)
    for y, xx in ((0, 0), (2, 3)):
        r = deconvnet(stack_subject(stack), x, "pool", 0, (y, xx))
        assert r.image.shape == (1, 8, 8) and r.switches_used == 1
        nonzero = r.image[0].flatten().nonzero().flatten().tolist()
        assert nonzero == [int(indices[0, 0, y, xx])]            # exactly where the maximum came from
        assert float(r.image[0].flatten()[nonzero[0]]) == pytest.approx(float(x.flatten()[nonzero[0]]))
        assert r.box == (2 * y, 2 * xx, 2 * y + 2, 2 * xx + 2)


def test_deconvnet_reconstruction_of_lenet_stays_in_the_receptive_field():
    from explorer.core.insight.deconvnet import deconvnet
    subject = resolve_subject("lenet")
    x = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    channel = int(subject.activation(x, "pool2")[0].flatten(1).amax(1).argmax())    # a channel active here
    r = deconvnet(subject, x, "pool2", channel)
    assert r.image.shape == (1, 32, 32) and r.switches_used == 2
    t, l, b, rr = r.box
    outside = r.image[0].clone()
    outside[t:b, l:rr] = 0
    assert outside.abs().max() == 0 and r.image.abs().max() > 0
    with pytest.raises(InsightError, match="Conv2d, ReLU, MaxPool2d"):
        deconvnet(subject, x, "fc1", 0)


def test_a_channel_that_starts_switched_off_still_grows():
    """On the gray starting noise the X template's ReLU output is 0 everywhere, so its own gradient
    is 0; the trace of the value before the ReLU gets the image moving."""
    from explorer.core.insight.feature_vis import visualize
    result = visualize(resolve_subject("x_vs_o"), "relu1", [0], steps=200, seed=0)
    assert result.start_activations[0] == 0.0 and result.activations[0] > 0.03


def test_top_patches_of_a_linear_layer_cover_the_whole_image():
    subject = resolve_subject("lenet")
    result = top_patches(subject, "fc3", TensorSource(torch.rand(6, 1, 32, 32)), k=2)
    assert len(result.channels) == 10 and result.geometry is None
    assert all(p.box == (0, 0, 32, 32) and (p.y, p.x) == (0, 0) for c in result.channels for p in c.patches)


def test_a_stack_with_batchnorm_has_a_cache_key():
    """BatchNorm2d keeps num_batches_tracked, a 0-d tensor: hashing it as bytes failed, so top
    patches of any stack with a BatchNorm layer ended in an error."""
    stack = conv_pool_stack()
    stack.layers.insert(1, LayerSpec("BatchNorm2d", "bn1", {"num_features": 4}))
    source = TensorSource(torch.rand(3, 3, 8, 8), key="three")
    key = cache_key(stack_subject(stack), "pool1", source, 9)
    shifted = stack.copy()
    shifted.layers[1].state = {"weight": torch.full((4,), 2.0), "bias": torch.zeros(4),
                               "running_mean": torch.zeros(4), "running_var": torch.ones(4),
                               "num_batches_tracked": torch.tensor(7)}
    assert cache_key(stack_subject(shifted), "pool1", source, 9) != key
    result = top_patches(stack_subject(stack), "pool1", source, 2, 3)
    assert len(result.channels) == 4


def test_images_too_small_for_a_layer_fail_in_one_sentence_naming_it():
    stack = Stack([LayerSpec("Conv2d", "conv1", {"in_channels": 3, "out_channels": 2, "kernel_size": 3}),
                   LayerSpec("MaxPool2d", "pool1", {"kernel_size": 4})], input=InputSpec(3, None))
    with pytest.raises(LayerFailed) as refused:     # the network failed on the data (CLI exit code 1)
        top_patches(stack_subject(stack), "pool1", TensorSource(torch.rand(2, 3, 5, 5), key="small"), 2, 2)
    message = str(refused.value)
    assert "pool1" in message and "\n" not in message

"""The Insight commands: top-patches, visualize, attribute. Output files and JSON keys as the issue
specifies them, exit codes 0 / 1 / 2, one-line errors that say what to do."""

from __future__ import annotations

import json
import re

import numpy as np
from PIL import Image

from explorer.cli import main
from explorer.core.layers import LayerSpec
from explorer.core.stack import InputSpec, Stack, save_stack


def _cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out
    return code, out, err


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert re.match(r"feature-map-explorer( [\w-]+)?: ", lines[0]), lines[0]
    return lines[0]


def test_top_patches_writes_the_json_and_pngs(capsys, tmp_path, cifar_dir):
    code, out, err = _cli(capsys, "top-patches", "lenet", "--layer", "conv2", "--cifar", cifar_dir, "--k", "4",
                          "--batch-size", "8", "--device", "cpu", "--out", tmp_path)
    assert code == 0, err
    data = json.loads((tmp_path / "top_patches.json").read_text())
    assert data["layer"] == "conv2" and data["k"] == 4 and data["images"] == 20
    assert [c["channel"] for c in data["channels"]] == list(range(16))
    for c in data["channels"]:
        patches = c["patches"]
        assert len(patches) == 4 and len({p["image"] for p in patches}) == 4
        assert [p["activation"] for p in patches] == sorted((p["activation"] for p in patches), reverse=True)
        for p in patches:
            assert set(p) == {"image", "label", "activation", "y", "x", "box"}
            assert 0 <= p["y"] < 10 and 0 <= p["x"] < 10 and isinstance(p["label"], str)
            t, l, b, r = p["box"]
            # LeNet's conv2 sees 14×14 input pixels, 2 apart; no padding, so never clipped
            assert (b - t, r - l) == (14, 14) and (t, l) == (2 * p["y"], 2 * p["x"])
        png = Image.open(tmp_path / f"channel_{c['channel']}.png")
        assert png.mode == "RGB" and png.width > 4 * 56
    assert "16 channel(s) of 'conv2'" in out


def test_top_patches_train_split_and_samples(capsys, tmp_path, cifar_dir):
    code, _, err = _cli(capsys, "top-patches", "lenet", "--layer", "pool1", "--cifar", cifar_dir, "--split", "train",
                        "--k", "2", "--out", tmp_path / "a")
    assert code == 0, err
    assert json.loads((tmp_path / "a" / "top_patches.json").read_text())["images"] == 60
    code, _, err = _cli(capsys, "top-patches", "default", "--layer", "relu1", "--samples", "--k", "3",
                        "--out", tmp_path / "b")
    assert code == 0, err
    data = json.loads((tmp_path / "b" / "top_patches.json").read_text())
    assert all(p["label"] is None for c in data["channels"] for p in c["patches"])


def test_a_missing_layer_lists_the_valid_names(capsys, tmp_path):
    code, _, err = _cli(capsys, "top-patches", "lenet", "--layer", "conv7", "--samples", "--out", tmp_path)
    assert code == 2
    assert "There is no layer 'conv7' in lenet; the layers are: conv1, relu1, pool1, conv2," in _one_line(err)
    code, _, err = _cli(capsys, "visualize", "vgg16", "--weights", "random", "--layer", "features.99", "--out", tmp_path)
    assert code == 2 and "features.28" in _one_line(err)


def test_a_stack_that_fails_on_the_data_exits_1(capsys, tmp_path):
    stack = Stack([LayerSpec("Flatten", "flat"), LayerSpec("Linear", "fc", {"in_features": 10, "out_features": 2})],
                  input=InputSpec(1, None))
    save_stack(stack, tmp_path / "bad.json")
    code, _, err = _cli(capsys, "top-patches", tmp_path / "bad.json", "--layer", "fc", "--samples",
                        "--out", tmp_path / "out")
    assert code == 1 and "failed" in _one_line(err)


def test_visualize_writes_images_and_summary(capsys, tmp_path):
    code, out, err = _cli(capsys, "visualize", "lenet", "--layer", "conv1", "--channels", "0,2-3", "--steps", "24",
                          "--seed", "1", "--out", tmp_path)
    assert code == 0, err
    data = json.loads((tmp_path / "summary.json").read_text())
    assert data["layer"] == "conv1" and [c["channel"] for c in data["channels"]] == [0, 2, 3]
    for c in data["channels"]:
        assert set(c) == {"channel", "activation", "start_activation", "image"}
        assert c["activation"] > c["start_activation"]
        assert Image.open(tmp_path / c["image"]).size == (128, 128)     # 32×32 enlarged 4 times
    code, _, err = _cli(capsys, "visualize", "lenet", "--layer", "conv1", "--channels", "0,6", "--out", tmp_path)
    assert code == 2 and "channels 0 to 5" in _one_line(err)
    code, _, err = _cli(capsys, "visualize", "lenet", "--layer", "conv1", "--size", "big", "--out", tmp_path)
    assert code == 2 and "--size" in _one_line(err)


def test_attribute_writes_map_overlay_and_summary(capsys, tmp_path):
    code, out, err = _cli(capsys, "attribute", "x_vs_o", "--sample", "x", "--method", "grad-cam", "--out", tmp_path)
    assert code == 0, err
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary == {"method": "grad-cam", "target": summary["target"], "target_name": None,
                       "layer": "templates", "input_shape": [1, 1, 9, 9]}
    amap = np.load(tmp_path / "attribution.npy")
    assert amap.dtype == np.float32 and amap.shape == (9, 9)
    assert Image.open(tmp_path / "overlay.png").mode == "RGB"


def test_attribute_errors(capsys, tmp_path):
    code, _, err = _cli(capsys, "attribute", "default", "--sample", "cat", "--method", "saliency", "--out", tmp_path)
    assert code == 2 and "ends in class scores" in _one_line(err) and "[1, 6," in err
    code, _, err = _cli(capsys, "attribute", "lenet", "--sample", "cat", "--method", "saliency", "--target", "10",
                        "--out", tmp_path)
    assert code == 2 and "from 0 to 9" in _one_line(err)
    code, _, err = _cli(capsys, "attribute", "lenet", "--sample", "cat", "--method", "magic", "--out", tmp_path)
    assert code == 2 and "invalid choice" in _one_line(err)
    code, _, err = _cli(capsys, "attribute", "lenet", "--sample", "cat", "--method", "saliency", "--layer", "conv1",
                        "--out", tmp_path)
    assert code == 2 and "grad-cam" in _one_line(err)


def test_attribute_on_a_walkthrough_model_with_random_weights_says_so(capsys, tmp_path):
    code, out, err = _cli(capsys, "attribute", "model:lenet", "--sample", "cat", "--method", "saliency",
                          "--target", "4", "--out", tmp_path)
    assert code == 0, err
    assert "random weights" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["target"] == 4 and summary["input_shape"] == [1, 1, 32, 32] and summary["layer"] is None
    overlay = np.asarray(Image.open(tmp_path / "overlay.png"))
    assert overlay.shape[0] >= 224 and (overlay[:12, :, :] == 0).mean() > 0.5     # the notice's dark band


def test_help_lists_the_commands(capsys):
    code, out, _ = _cli(capsys, "--help")
    assert code == 0 and all(name in out for name in ("top-patches", "visualize", "attribute"))

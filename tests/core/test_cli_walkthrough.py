"""`feature-map-explorer walkthrough`: summary.json in the issue's format, a PNG grid per 4-D stage,
top-5 only with real weights, refusals with one line and exit code 2, a failed stage with 1."""

from __future__ import annotations

import json
import os
import pickle

import torch
from PIL import Image
from torch import nn

from explorer.cli import main
from explorer.core import model_zoo
from explorer.core.model_zoo import LeNet, lenet

STAGE_KEYS = ["index", "name", "title", "output_shape", "params", "total_params", "macs", "receptive_field", "image"]


def _cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out
    return code, out, err


def test_vgg16_walkthrough_writes_the_summary_and_grids(tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, err = _cli(capsys, "walkthrough", "vgg16", "--sample", "cat", "--device", "cpu", "--out", out)
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary) == ["model", "weights", "input_shape", "stages", "total_params"]
    assert summary["model"] == "vgg16" and summary["weights"] == "random"
    assert summary["input_shape"] == [1, 3, 224, 224] and summary["total_params"] == 138_357_544
    first = summary["stages"][0]
    assert list(first) == STAGE_KEYS
    assert first == {"index": 0, "name": "features.0", "title": "Conv 3x3, 64 filters",
                     "output_shape": [1, 64, 224, 224], "params": 1792, "total_params": 1792,
                     "macs": 86_704_128, "receptive_field": 3, "image": "00_features.0.png"}
    stages = summary["stages"]
    assert len(stages) == 24 and [s["index"] for s in stages] == list(range(24))
    flatten = next(s for s in stages if s["name"] == "flatten")
    assert flatten["output_shape"] == [1, 25088] and flatten["receptive_field"] is None and flatten["image"] is None
    assert stages[17]["name"] == "features.30" and stages[17]["receptive_field"] == 212
    assert stages[-1]["name"] == "softmax" and stages[-1]["total_params"] == 138_357_544
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == sorted(s["image"] for s in stages if s["image"])
    assert len(pngs) == 19
    with Image.open(out / "00_features.0.png") as im:
        assert im.width > 224 * 7 and im.height > 224 * 7      # 64 tiles of 224×224
    assert "random weights" in stdout and "138,357,544" in stdout


def test_lenet_with_a_weights_file_lists_top5(tmp_path, capsys):
    torch.manual_seed(3)
    state = LeNet().state_dict()
    state["fc3.bias"] = torch.arange(10.0) * 10
    weights = tmp_path / "lenet.pth"
    torch.save(state, weights)
    out = tmp_path / "out"
    code, stdout, err = _cli(capsys, "walkthrough", "LeNet", "--sample", "x", "--weights", weights, "--out", out,
                             "--device", "cpu")
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["weights"] == str(weights) and summary["input_shape"] == [1, 1, 32, 32]
    assert summary["total_params"] == 61706
    assert [s["output_shape"] for s in summary["stages"]] == [
        [1, 6, 28, 28], [1, 6, 14, 14], [1, 16, 10, 10], [1, 16, 5, 5], [1, 400], [1, 120], [1, 84], [1, 10], [1, 10]]
    top5 = summary["top5"]
    assert [t["class"] for t in top5][0] == "class 9" and len(top5) == 5
    assert all(set(t) == {"class", "probability"} for t in top5)
    probabilities = [t["probability"] for t in top5]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1.0001
    assert "random weights" not in stdout and "class 9" in stdout


class _MakesAFile:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.makedirs, (str(self.path),))


def test_refusals_are_one_line_and_exit_code_2(tmp_path, capsys):
    marker = tmp_path / "code_ran"
    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as f:
        pickle.dump({"conv1.weight": _MakesAFile(marker)}, f)
    wrong = tmp_path / "wrong.pth"
    torch.save(lenet().state_dict(), wrong)
    (tmp_path / "file").write_text("x")
    out = tmp_path / "out"
    cases = [
        (["walkthrough", "lenet", "--sample", "x", "--weights", evil, "--out", out], "pickled Python object"),
        (["walkthrough", "vgg16", "--sample", "x", "--weights", wrong, "--out", out], "do not fit"),
        (["walkthrough", "vgg17", "--sample", "x", "--out", out], "the models are vgg16, lenet"),
        (["walkthrough", "lenet", "--out", out], "needs an input"),
        (["walkthrough", "lenet", "--sample", "nope", "--out", out], "nope"),
        (["walkthrough", "lenet", "--image", tmp_path / "missing.png", "--out", out], "missing.png"),
        (["walkthrough", "lenet", "--sample", "x", "--out", tmp_path / "file"], "is a file"),
        (["walkthrough", "lenet", "--sample", "x", "--device", "tpu", "--out", out], "Unknown device"),
        (["walkthrough", "lenet", "--sample", "x", "--weights", tmp_path / "none.pth", "--out", out], "no such file"),
        (["walkthrough", "lenet", "--sample", "x", "--weights", "imagenet", "--out", out], "no ImageNet weights"),
        (["walkthrough", "lenet", "--sample", "x"], "--out"),
    ]
    for argv, expected in cases:
        code, stdout, err = _cli(capsys, *argv)
        assert code == 2, (argv, err)
        assert expected in err, (argv, err)
        assert err.count("\n") == 1 and err.startswith("feature-map-explorer")
    assert not marker.exists()
    assert not (out / "summary.json").exists()


def test_imagenet_weights_not_in_the_cache_are_refused(tmp_path, capsys):
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        code, _, err = _cli(capsys, "walkthrough", "resnet18", "--sample", "x", "--weights", "imagenet",
                            "--out", tmp_path / "out")
    finally:
        torch.hub.set_dir(old)
    assert code == 2 and "not in the torch cache" in err


def test_a_failing_stage_exits_1_and_still_writes_the_summary(tmp_path, capsys, monkeypatch):
    def broken(name, device="cpu"):
        model = lenet()
        model.fc2 = nn.Linear(100, 84)        # fc1 gives 120 values
        return model

    monkeypatch.setattr(model_zoo, "build_model", broken)
    out = tmp_path / "out"
    code, stdout, err = _cli(capsys, "walkthrough", "lenet", "--sample", "x", "--out", out, "--device", "cpu")
    assert code == 1
    assert "'fc2' failed" in err and err.count("\n") == 1
    summary = json.loads((out / "summary.json").read_text())
    assert [s["name"] for s in summary["stages"]] == ["conv1", "pool1", "conv2", "pool2", "flatten", "fc1"]
    assert "'fc2' failed" in summary["error"] and "top5" not in summary
    assert (out / "00_conv1.png").exists()


def test_help_lists_the_walkthrough(capsys):
    assert main(["--help"]) == 0
    assert "walkthrough" in capsys.readouterr().out
    assert main(["walkthrough", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--weights" in text and "resnet18" in text

"""`feature-map-explorer train`: the files it writes, its exit codes (0 trained, 1 NaN loss, 2 refused
before anything is written, 130 Ctrl+C after writing what was done) and one-line errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from explorer.cli import main
from explorer.core.engine import run_stack
from explorer.core.stack import load_stack, save_stack, stack_from_dict
from explorer.core.training.datasets import load_dataset

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def small_stack(tmp_path) -> Path:
    """A fast net for the full-size xo set: one 3x3 conv with a big pool, then a Linear."""
    path = tmp_path / "small.json"
    save_stack(stack_from_dict({"input": {"channels": 1, "size": [28, 28]}, "layers": [
        {"type": "Conv2d", "name": "conv1", "args": {"in_channels": 1, "out_channels": 3, "kernel_size": 3}},
        {"type": "ReLU", "name": "relu1"},
        {"type": "MaxPool2d", "name": "pool1", "args": {"kernel_size": 13}},
        {"type": "Flatten", "name": "flatten1"},
        {"type": "Linear", "name": "fc1", "args": {"in_features": 12, "out_features": 2}},
    ]}), path)
    return path


def _cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err + out
    return code, out, err


def test_train_writes_every_file(capsys, tmp_path, small_stack):
    out = tmp_path / "out"
    code, stdout, err = _cli(capsys, "train", small_stack, "--data", "xo", "--epochs", "2", "--batch-size", "128",
                             "--device", "cpu", "--out", out)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["confusion.json", "history.json", "kernels_epoch_0.png",
                                                      "kernels_epoch_1.png", "kernels_epoch_2.png", "stack.json"]
    history = json.loads((out / "history.json").read_text())
    assert history["data"] == "xo" and history["classes"] == ["x", "o"]
    assert [e["epoch"] for e in history["epochs"]] == [1, 2]
    for e in history["epochs"]:
        assert set(e) >= {"train_loss", "train_accuracy", "test_loss", "test_accuracy", "seconds", "samples_per_second"}
        assert 0 <= e["test_accuracy"] <= 1 and e["samples_per_second"] > 0
    assert err.count("epoch ") == 2          # not a terminal: one line per epoch
    confusion = json.loads((out / "confusion.json").read_text())
    matrix = torch.tensor(confusion["matrix"])
    assert confusion["classes"] == ["x", "o"] and matrix.shape == (2, 2) and int(matrix.sum()) == 1000
    # The trained stack runs as any stack, and its accuracy is the one reported.
    trained = load_stack(out / "stack.json")
    assert trained.layers[0].state is not None and trained.layers[4].state is not None
    data = load_dataset("xo", trained.input, 0)
    logits = run_stack(trained, data.test.floats(), "cpu").layers[-1].output
    correct = int((logits.argmax(1) == data.test.labels).sum())
    assert correct == int(matrix.diagonal().sum())
    assert history["epochs"][-1]["test_accuracy"] == pytest.approx(correct / 1000)
    kernels = Image.open(out / "kernels_epoch_2.png")
    assert kernels.mode == "RGB" and kernels.size == (2 * 24 + 1, 2 * 24 + 1)   # 3 kernels in a 2x2 grid
    assert "stack.json" in stdout


@pytest.mark.parametrize("option,value,sentence", [
    ("--lr", "0", "--lr must be above 0"),
    ("--epochs", "0", "--epochs must be at least 1"),
    ("--batch-size", "0", "--batch-size must be at least 1"),
])
def test_bad_numbers_exit_2_with_nothing_written(capsys, tmp_path, small_stack, option, value, sentence):
    out = tmp_path / "out"
    code, _, err = _cli(capsys, "train", small_stack, "--data", "xo", option, value, "--out", out)
    assert code == 2 and sentence in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_untrainable_stack_and_unreadable_data_exit_2(capsys, tmp_path):
    out = tmp_path / "out"
    code, _, err = _cli(capsys, "train", "lenet_cifar", "--data", "xo", "--out", out)
    assert code == 2
    assert err.strip() == ("feature-map-explorer: The last Linear 'fc3' gives 10 outputs but the data has "
                           "2 classes; set its out_features to 2.")
    code, _, err = _cli(capsys, "train", "lenet_cifar", "--data", tmp_path / "nowhere", "--out", out)
    assert code == 2 and "neither xo nor" in err
    assert not out.exists()


def test_cifar_folder(capsys, tmp_path, cifar_dir):
    out = tmp_path / "out"
    code, _, err = _cli(capsys, "train", "lenet_cifar", "--data", cifar_dir, "--epochs", "1", "--batch-size", "16",
                        "--device", "cpu", "--out", out)
    assert code == 0, err
    history = json.loads((out / "history.json").read_text())
    assert history["classes"][0] == "airplane" and history["settings"]["augment"] is None
    assert int(torch.tensor(json.loads((out / "confusion.json").read_text())["matrix"]).sum()) == 20


def test_nan_loss_exits_1_and_writes_the_last_good_weights(capsys, tmp_path, small_stack):
    out = tmp_path / "out"
    code, _, err = _cli(capsys, "train", small_stack, "--data", "xo", "--optimizer", "sgd", "--lr", "1e30",
                        "--momentum", "0", "--device", "cpu", "--out", out)
    assert code == 1 and "lower learning rate" in err
    history = json.loads((out / "history.json").read_text())
    assert history["epochs"] == [] and history["status"] == "nan"
    assert load_stack(out / "stack.json").layers[0].state is not None


def test_ctrl_c_stops_after_the_current_step_and_writes_the_files(tmp_path, small_stack):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "explorer", "train", str(small_stack), "--data", "xo",
                             "--epochs", "500", "--batch-size", "256", "--device", "cpu", "--out", str(out)],
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        line = proc.stderr.readline()            # the first epoch's line: training is under way
        assert line.startswith("epoch 1/500"), line
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    history = json.loads((out / "history.json").read_text())
    assert history["status"] == "stopped" and 1 <= len(history["epochs"]) < 500
    assert (out / "stack.json").exists() and (out / "confusion.json").exists()

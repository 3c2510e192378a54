"""The command line: `run` writes exactly what the layers compute, `shapes` prints the shape table,
`samples` and `examples` list what is built in; exit codes 0 / 1 / 2 and one-line errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from explorer.cli import main
from explorer.core.examples import examples
from explorer.core.inputs import list_samples, load_sample
from explorer.core.stack import save_stack, stack_from_dict

ROOT = Path(__file__).resolve().parents[2]


def _cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out
    return code, out, err


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert re.match(r"feature-map-explorer( \w+)?: ", lines[0]), lines[0]
    return lines[0]


def _rand(shape, seed):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


CONV_W, CONV_B = _rand((4, 3, 3, 3), 1), _rand((4,), 2)
FC_W, FC_B = _rand((5, 4 * 15 * 15), 3), _rand((5,), 4)


@pytest.fixture
def stack_file(tmp_path) -> Path:
    """A stack with explicit weights, so the outputs can be computed here with torch directly."""
    path = tmp_path / "stack.json"
    save_stack(stack_from_dict({"input": {"size": [32, 32]}, "layers": [
        {"type": "Conv2d", "name": "conv1", "args": {"in_channels": 3, "out_channels": 4, "kernel_size": 3},
         "state": {"weight": CONV_W.tolist(), "bias": CONV_B.tolist()}},
        {"type": "ReLU", "name": "relu1"},
        {"type": "MaxPool2d", "name": "pool/1", "args": {"kernel_size": 2}},
        {"type": "Flatten", "name": "flatten1"},
        {"type": "Linear", "name": "fc1", "args": {"in_features": 900, "out_features": 5},
         "state": {"weight": FC_W.tolist(), "bias": FC_B.tolist()}},
    ]}), path)
    return path


@pytest.fixture
def broken_file(tmp_path) -> Path:
    path = tmp_path / "broken.json"
    save_stack(stack_from_dict({"layers": [
        {"type": "Conv2d", "name": "conv1", "args": {"in_channels": 3, "out_channels": 3, "kernel_size": 3}},
        {"type": "Conv2d", "name": "conv2", "args": {"in_channels": 6, "out_channels": 16, "kernel_size": 5}},
        {"type": "ReLU", "name": "relu1"},
    ]}), path)
    return path


# ---------------------------------------------------------------- run
def test_run_writes_exactly_what_torch_computes(capsys, tmp_path, stack_file):
    out = tmp_path / "out"
    code, stdout, err = _cli(capsys, "run", stack_file, "--sample", "astronaut", "--out", out, "--device", "cpu")
    assert code == 0, err
    assert err == ""
    assert "conv1" in stdout and "[1, 4, 30, 30]" in stdout
    x = torch.from_numpy(np.load(out / "input.npy"))
    assert x.dtype == torch.float32
    assert torch.equal(x, load_sample("astronaut", 3, (32, 32)).tensor), "input.npy is what layer 0 was fed"
    conv = F.conv2d(x, CONV_W, CONV_B)
    relu = F.relu(conv)
    pool = F.max_pool2d(relu, 2)
    flat = pool.flatten(1)
    fc = F.linear(flat, FC_W, FC_B)
    expected = {"00_conv1": conv, "01_relu1": relu, "02_pool_1": pool, "03_flatten1": flat, "04_fc1": fc}
    for stem, tensor in expected.items():
        saved = np.load(out / f"{stem}.npy")
        assert saved.dtype == np.float32
        assert torch.equal(torch.from_numpy(saved), tensor), stem
    summary = json.loads((out / "summary.json").read_text())
    assert summary["input"] == {"source": "sample:astronaut", "shape": [1, 3, 32, 32]}
    assert summary["device"] == "cpu"
    layers = summary["layers"]
    assert [entry["index"] for entry in layers] == [0, 1, 2, 3, 4]
    assert [entry["name"] for entry in layers] == ["conv1", "relu1", "pool/1", "flatten1", "fc1"]
    assert [entry["type"] for entry in layers] == ["Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear"]
    assert [entry["input_shape"] for entry in layers] == [[1, 3, 32, 32], [1, 4, 30, 30], [1, 4, 30, 30],
                                                          [1, 4, 15, 15], [1, 900]]
    assert [entry["output_shape"] for entry in layers] == [[1, 4, 30, 30], [1, 4, 30, 30], [1, 4, 15, 15],
                                                           [1, 900], [1, 5]]
    assert [entry["params"] for entry in layers] == [112, 0, 0, 0, 4505]
    assert all(entry["error"] is None and entry["seconds"] >= 0 for entry in layers)
    assert [entry["file"] for entry in layers] == [f"{stem}.npy" for stem in expected]
    assert [entry["image"] for entry in layers] == ["00_conv1.png", "01_relu1.png", "02_pool_1.png", None, None]
    for entry in layers[:3]:
        with Image.open(out / entry["image"]) as png:
            assert png.format == "PNG"
            c, h, w = entry["output_shape"][1:]
            assert png.width * png.height >= c * h * w, "every channel of the first batch item is in the picture"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["input.npy", "summary.json", *(f"{s}.npy" for s in expected), "00_conv1.png", "01_relu1.png", "02_pool_1.png"])


def test_a_failing_layer_exits_1_and_still_writes_the_summary(capsys, tmp_path, broken_file):
    out = tmp_path / "out"
    code, stdout, err = _cli(capsys, "run", broken_file, "--sample", "cat", "--out", out)
    assert code == 1
    line = _one_line(err)
    assert "Conv2d 'conv2' expects 6 input channels but its input has 3" in line
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["layers"]) == 2, "layers after the failed one are not listed"
    ok, failed = summary["layers"]
    assert ok["error"] is None and ok["file"] == "00_conv1.npy"
    assert failed["error"] in line
    assert failed["input_shape"] is None and failed["output_shape"] is None
    assert failed["file"] is None and failed["image"] is None
    assert not list(out.glob("01_*")) and not list(out.glob("02_*"))


def test_run_with_a_cifar_batch(capsys, tmp_path, cifar_dir, cifar_data, cifar_tools):
    out = tmp_path / "out"
    code, _, err = _cli(capsys, "run", "cifar_conv", "--cifar", cifar_dir, "--split", "train",
                        "--batch-size", 8, "--batch", 4, "--out", out)
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    data, labels = cifar_data["data_batch_2"]          # images 32..39 of the train split are 2..9 of file 2
    assert summary["input"]["shape"] == [8, 3, 32, 32]
    assert summary["input"]["labels"] == labels[2:10]
    assert summary["input"]["classes"] == [cifar_tools.label_names[i] for i in labels[2:10]]
    x = np.load(out / "input.npy")
    assert np.array_equal(x, data[2:10].reshape(8, 3, 32, 32).astype(np.float32) / 255)
    assert summary["layers"][0]["output_shape"] == [8, 6, 30, 30]
    assert np.load(out / "00_conv1.npy").shape == (8, 6, 30, 30)


def test_run_with_a_cifar_tarball_and_a_grayscale_stack(capsys, tmp_path, cifar_tarball):
    out = tmp_path / "out"
    code, _, err = _cli(capsys, "run", "lenet", "--cifar", cifar_tarball, "--batch-size", 5, "--out", out)
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["input"]["shape"] == [5, 1, 32, 32]
    assert len(summary["input"]["labels"]) == 5
    assert summary["layers"][-1]["output_shape"] == [5, 10]


def test_run_with_an_image_file(capsys, tmp_path):
    image = tmp_path / "pic.png"
    Image.fromarray(np.arange(20 * 24 * 3, dtype=np.uint8).reshape(20, 24, 3)).save(image)
    out = tmp_path / "out"
    code, _, err = _cli(capsys, "run", "default", "--image", image, "--out", out)
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["input"]["shape"] == [1, 3, 20, 24] and "labels" not in summary["input"]
    assert summary["layers"][-1]["output_shape"] == [1, 6, 9, 11]


def test_run_creates_missing_parent_folders(capsys, tmp_path):
    out = tmp_path / "a" / "b" / "c"
    code, _, _ = _cli(capsys, "run", "default", "--sample", "x", "--out", out)
    assert code == 0 and (out / "summary.json").is_file()


def test_run_an_empty_stack(capsys, tmp_path):
    path = tmp_path / "empty.json"
    path.write_text(json.dumps({"layers": []}))
    code, _, _ = _cli(capsys, "run", path, "--sample", "x", "--out", tmp_path / "out")
    assert code == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["layers"] == [] and (tmp_path / "out" / "input.npy").is_file()


@pytest.mark.parametrize("argv,words", [
    (["run", "default", "--out", "{tmp}/o"], "needs an input"),
    (["run", "default", "--sample", "nope", "--out", "{tmp}/o"], "no sample called 'nope'"),
    (["run", "default", "--image", "{tmp}/missing.png", "--out", "{tmp}/o"], "missing.png"),
    (["run", "{tmp}/missing.json", "--sample", "x", "--out", "{tmp}/o"], "does not exist"),
    (["run", "{tmp}/bad.json", "--sample", "x", "--out", "{tmp}/o"], "not valid JSON"),
    (["run", "nonsense", "--sample", "x", "--out", "{tmp}/o"], "neither a stack file nor a built-in example"),
    (["run", "default", "--sample", "x", "--out", "{tmp}/o", "--device", "tpu"], "Unknown device 'tpu'"),
    (["run", "default", "--sample", "x", "--download", "--out", "{tmp}/o"], "--download only goes with --cifar"),
    (["run", "default", "--cifar", "{tmp}/nowhere", "--out", "{tmp}/o"], "nowhere"),
    (["run", "default", "--sample", "x", "--out", "{tmp}/file.txt/sub"], "cannot write '{tmp}/file.txt/sub'"),
    (["run", "default", "--sample", "x", "--out", "{tmp}/file.txt"], "'{tmp}/file.txt' is a file, not a folder"),
    (["run", "default", "--sample", "x"], "--out"),
    (["run", "default", "--sample", "x", "--image", "a.png", "--out", "{tmp}/o"], "not allowed with"),
    (["run", "default", "--cifar", "x", "--batch-size", "many", "--out", "{tmp}/o"], "invalid int value"),
    (["shapes", "default"], "--input-shape"),
    (["shapes", "default", "--input-shape", "1,3,a,32"], "numbers like 1,3,32,32"),
    (["shapes", "default", "--input-shape", "1,3,0,32"], "at least 1"),
    (["shapes", "default", "--input-shape", "1,1,3,32,32"], "up to four numbers"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_arguments_exit_2_with_one_line(capsys, tmp_path, argv, words):
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "file.txt").write_text("I am a file")
    code, _, err = _cli(capsys, *(a.replace("{tmp}", str(tmp_path)) for a in argv))
    assert code == 2
    assert words.replace("{tmp}", str(tmp_path)) in _one_line(err)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv", [["run", "default", "--cifar", "{cifar}", "--batch", "99", "--out", "{tmp}/o"],
                                  ["run", "default", "--cifar", "{cifar}", "--batch-size", "0", "--out", "{tmp}/o"],
                                  ["run", "default", "--cifar", "{cifar}", "--batch", "-1", "--out", "{tmp}/o"]])
def test_bad_cifar_batches_exit_2(capsys, tmp_path, cifar_dir, argv):
    code, _, err = _cli(capsys, *(a.replace("{tmp}", str(tmp_path)).replace("{cifar}", str(cifar_dir)) for a in argv))
    assert code == 2
    assert "batch" in _one_line(err)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_asking_for_a_missing_gpu_exits_2(capsys, tmp_path):
    code, _, err = _cli(capsys, "run", "default", "--sample", "x", "--out", tmp_path / "o", "--device", "cuda")
    assert code == 2
    assert "no CUDA GPU" in _one_line(err)


def test_help_and_version_return_0(capsys):
    assert main(["--help"]) == 0
    assert "run" in capsys.readouterr().out
    assert main(["--version"]) == 0
    assert re.search(r"\d+\.\d+", capsys.readouterr().out)


# ---------------------------------------------------------------- shapes
def test_shapes_table(capsys):
    code, out, err = _cli(capsys, "shapes", "lenet", "--input-shape", "1,1,32,32")
    assert code == 0 and err == ""
    assert "H_out = floor((32 + 2*0 - 1*(5-1) - 1) / 1 + 1) = 28" in out
    assert re.search(r"fc1\s+Linear\s+\[1, 400\]\s+\[1, 120\]\s+48,120", out)
    assert "total parameters: 61,706" in out


def test_shapes_json(capsys):
    code, out, _ = _cli(capsys, "shapes", "default", "--input-shape", "64x3x32x32", "--json")
    assert code == 0
    data = json.loads(out)
    assert [r["output_shape"] for r in data["layers"]] == [[64, 6, 30, 30], [64, 6, 30, 30], [64, 6, 15, 15]]
    assert data["total_params"] == 168
    assert data["layers"][0]["formula"][0] == "H_out = floor((32 + 2*0 - 1*(3-1) - 1) / 1 + 1) = 30"


def test_shapes_of_a_huge_input(capsys):
    code, out, _ = _cli(capsys, "shapes", "default", "--input-shape", "1,3,20000,20000", "--json")
    assert code == 0
    assert json.loads(out)["layers"][-1]["output_shape"] == [1, 6, 9999, 9999]


def test_shapes_with_an_error_exits_1(capsys, broken_file):
    code, out, _ = _cli(capsys, "shapes", broken_file, "--input-shape", "1,3,32,32")
    assert code == 1
    assert "error: Conv2d 'conv2' expects 6 input channels but its input has 3 (shape [1, 3, 30, 30])" in out
    code, out, _ = _cli(capsys, "shapes", broken_file, "--input-shape", "1,3,32,32", "--json")
    assert code == 1
    rows = json.loads(out)["layers"]
    assert len(rows) == 2 and rows[1]["error"].startswith("Conv2d 'conv2' expects 6")


# ---------------------------------------------------------------- samples and examples
def _listing(out: str) -> list[tuple[str, str]]:
    rows = []
    for line in out.splitlines():
        match = re.fullmatch(r"(\S+)( {2,})(\S.*)", line)
        assert match, line
        rows.append((match.group(1), match.group(3)))
    return rows


def test_samples_listing(capsys):
    code, out, _ = _cli(capsys, "samples")
    assert code == 0
    assert _listing(out) == list_samples()
    starts = {line.index(desc) for line, (_, desc) in zip(out.splitlines(), list_samples())}
    assert len(starts) == 1, "descriptions line up"


def test_examples_listing(capsys):
    code, out, _ = _cli(capsys, "examples")
    assert code == 0
    assert _listing(out) == [(e.name, e.description) for e in examples()]


# ---------------------------------------------------------------- a real process
def _python_m(*argv, cwd):
    return subprocess.run([sys.executable, "-m", "explorer", *map(str, argv)], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def test_python_m_explorer_run_exit_codes(tmp_path, broken_file):
    ok = _python_m("run", "default", "--sample", "x", "--out", tmp_path / "ok", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert ok.stderr == "" and "wrote 3 layer(s)" in ok.stdout
    failed = _python_m("run", broken_file, "--sample", "x", "--out", tmp_path / "failed", cwd=tmp_path)
    assert failed.returncode == 1
    assert "Traceback" not in failed.stderr
    assert failed.stderr.strip().splitlines() == [
        "feature-map-explorer: Conv2d 'conv2' expects 6 input channels but its input has 3 (shape [1, 3, 7, 7])."]
    assert (tmp_path / "failed" / "summary.json").is_file()
    bad = _python_m("run", tmp_path / "missing.json", "--sample", "x", "--out", tmp_path / "bad", cwd=tmp_path)
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1

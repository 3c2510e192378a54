"""Weights: files are opened with torch.load(weights_only=True) (or safetensors), a file that would
run code is refused without running it, a file that does not fit says how in one sentence, the
ImageNet weights come only from the local torch cache, and the opt-in download reports progress,
can be cancelled and checks the file's hash."""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import pytest
import torch

from explorer.core import weights as weights_mod
from explorer.core.model_zoo import build_model, lenet
from explorer.core.weights import (DownloadCancelled, WeightsError, download_imagenet, download_size,
                                   imagenet_available, imagenet_path, infer_model_name, load_weights,
                                   read_state_dict)


def _other_lenet_state(seed: int = 7) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    from explorer.core.model_zoo import LeNet
    return LeNet().state_dict()


class _MakesAFile:
    """Unpickling this object would create a file: the proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (str(self.marker),))


def test_a_state_dict_file_loads_and_is_labelled_by_its_path(tmp_path):
    state = _other_lenet_state()
    path = tmp_path / "lenet.pth"
    torch.save(state, path)
    model = lenet()
    assert not torch.equal(model.conv1.weight, state["conv1.weight"])
    assert load_weights(model, str(path)) == str(path)
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k])


def test_an_old_checkpoint_without_batchnorm_counters_loads(tmp_path):
    """Files saved before torch 0.4.1 (torchvision's VGG-BN weights among them) have no
    num_batches_tracked; torch's own load_state_dict accepts them, so must we."""
    source = build_model("vgg11_bn")
    torch.manual_seed(3)
    for p in source.parameters():
        p.data.normal_()
    state = {k: v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "vgg11_bn_old.pth"
    torch.save(state, path)
    model = build_model("vgg11_bn")
    assert load_weights(model, str(path)) == str(path)
    assert torch.equal(model.features[0].weight, state["features.0.weight"])


def test_random_leaves_the_model_alone():
    model = lenet()
    before = model.conv1.weight.clone()
    assert load_weights(model, "random") == "random"
    assert torch.equal(model.conv1.weight, before)


def test_a_file_holding_a_pickled_object_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.pth"
    state = _other_lenet_state()
    state["conv1.weight"] = _MakesAFile(marker)       # a state_dict with one poisoned entry
    torch.save(state, path)
    with open(tmp_path / "plain.pkl", "wb") as f:
        pickle.dump(_MakesAFile(marker), f)
    model = lenet()
    before = model.conv1.weight.clone()
    for bad in (path, tmp_path / "plain.pkl"):
        with pytest.raises(WeightsError) as info:
            load_weights(model, bad)
        message = str(info.value)
        assert message.startswith(f"Refused '{bad.name}'") and "pickled Python object" in message
        assert "\n" not in message and message.count(". ") == 0
    with pytest.raises(WeightsError) as info:
        load_weights(model, path)
    assert "makedirs" in str(info.value)          # the callable it would have run is named
    assert not marker.exists()
    assert torch.equal(model.conv1.weight, before)


def test_weights_that_do_not_fit_are_refused_in_one_sentence(tmp_path):
    state = _other_lenet_state()
    wrong_shape = dict(state, **{"fc3.weight": torch.zeros(12, 84)})
    missing = {k: v for k, v in state.items() if k != "fc3.bias"}
    extra = dict(state, **{"fc4.weight": torch.zeros(3)})
    cases = [(wrong_shape, "'fc3.weight' has shape [12, 84] in the file but [10, 84] in the model"),
             (missing, "no 'fc3.bias'"), (extra, "'fc4.weight', which the model does not")]
    for i, (bad, expected) in enumerate(cases):
        path = tmp_path / f"bad{i}.pth"
        torch.save(bad, path)
        with pytest.raises(WeightsError, match="do not fit") as info:
            load_weights(lenet(), path)
        assert expected in str(info.value) and "\n" not in str(info.value)
    # a VGG-16 file for LeNet: many differences, one sentence
    torch.save(build_model("alexnet", "meta").to_empty(device="cpu").state_dict(), tmp_path / "alex.pth")
    with pytest.raises(WeightsError, match=r"more difference"):
        load_weights(lenet(), tmp_path / "alex.pth")


def test_files_that_are_not_weights(tmp_path):
    (tmp_path / "text.pth").write_text("hello, not a tensor file")
    torch.save({"epoch": 3}, tmp_path / "nostate.pth")
    torch.save([torch.zeros(2)], tmp_path / "list.pth")
    for name in ("text.pth", "nostate.pth", "list.pth"):
        with pytest.raises(WeightsError):
            load_weights(lenet(), tmp_path / name)
    with pytest.raises(WeightsError, match="no such file"):
        load_weights(lenet(), tmp_path / "missing.pth")


def test_checkpoints_wrapping_a_state_dict_and_dataparallel_prefixes_are_accepted(tmp_path):
    state = _other_lenet_state()
    torch.save({"epoch": 4, "state_dict": state}, tmp_path / "ckpt.pt")
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "dp.pth")
    for name in ("ckpt.pt", "dp.pth"):
        model = lenet()
        load_weights(model, tmp_path / name)
        assert torch.equal(model.fc3.bias, state["fc3.bias"])


def test_safetensors_files(tmp_path):
    path = tmp_path / "w.safetensors"
    try:
        from safetensors.torch import save_file
    except ImportError:
        path.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
        with pytest.raises(WeightsError, match="safetensors package is not installed"):
            read_state_dict(path)
        return
    state = _other_lenet_state()
    save_file(state, str(path))
    model = lenet()
    load_weights(model, path)
    assert torch.equal(model.fc1.weight, state["fc1.weight"])


@pytest.fixture
def hub_dir(tmp_path, monkeypatch):
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "hub"
    torch.hub.set_dir(old)


def test_imagenet_weights_come_only_from_the_local_torch_cache(hub_dir):
    assert not imagenet_available("resnet18") and not imagenet_available("lenet")
    with pytest.raises(WeightsError, match="not in the torch cache"):
        load_weights(build_model("resnet18"), "imagenet")
    assert imagenet_path("resnet18") == hub_dir / "checkpoints" / "resnet18-f37072fd.pth"
    torch.manual_seed(11)
    state = build_model("resnet18", "meta").to_empty(device="cpu").state_dict()
    state = {k: torch.randn(v.shape).to(v.dtype) for k, v in state.items()}
    imagenet_path("resnet18").parent.mkdir(parents=True)
    torch.save(state, imagenet_path("resnet18"))
    assert imagenet_available("resnet18")
    model = build_model("resnet18")
    assert infer_model_name(model) == "resnet18"
    assert load_weights(model, "imagenet") == "imagenet"       # the architecture inferred from the model
    assert torch.equal(model.fc.weight, state["fc.weight"])
    with pytest.raises(WeightsError, match="no ImageNet weights"):
        load_weights(lenet(), "imagenet")


def test_download_size_comes_from_torchvisions_metadata():
    assert 550_000_000 < download_size("vgg16") < 556_000_000
    with pytest.raises(WeightsError):
        download_size("lenet")


def _serve(tmp_path, monkeypatch, payload: bytes, good_hash: bool = True) -> Path:
    digest = hashlib.sha256(payload).hexdigest()[:8] if good_hash else "00000000"
    src = tmp_path / "server" / f"resnet18-{digest}.pth"
    src.parent.mkdir()
    src.write_bytes(payload)
    monkeypatch.setattr(weights_mod, "imagenet_url", lambda name: src.as_uri())
    monkeypatch.setattr(weights_mod, "CHUNK", 1000)
    return src


def test_download_reports_progress_and_lands_in_the_cache(tmp_path, monkeypatch, hub_dir):
    payload = os.urandom(10_500)
    src = _serve(tmp_path, monkeypatch, payload)
    seen = []
    path = download_imagenet("resnet18", lambda done, total: seen.append((done, total)), lambda: False)
    assert path == hub_dir / "checkpoints" / src.name and path.read_bytes() == payload
    assert seen[0] == (0, 10_500) and seen[-1] == (10_500, 10_500)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and len(seen) == 12
    assert sorted(p.name for p in path.parent.iterdir()) == [src.name]


def test_a_cancelled_download_leaves_nothing(tmp_path, monkeypatch, hub_dir):
    _serve(tmp_path, monkeypatch, os.urandom(10_000))
    seen = []
    with pytest.raises(DownloadCancelled):
        download_imagenet("resnet18", lambda d, t: seen.append(d), lambda: len(seen) > 3)
    assert 0 < seen[-1] < 10_000
    assert list((hub_dir / "checkpoints").iterdir()) == []


def test_a_damaged_or_unreachable_download_is_one_sentence_and_leaves_nothing(tmp_path, monkeypatch, hub_dir):
    _serve(tmp_path, monkeypatch, os.urandom(5000), good_hash=False)
    with pytest.raises(WeightsError, match="checksum"):
        download_imagenet("resnet18")
    assert list((hub_dir / "checkpoints").iterdir()) == []
    monkeypatch.setattr(weights_mod, "imagenet_url", lambda name: (tmp_path / "nowhere" / "x-12345678.pth").as_uri())
    with pytest.raises(WeightsError, match="Could not download"):
        download_imagenet("resnet18")

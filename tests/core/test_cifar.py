"""CIFAR-10 reading: layouts (folder, parent, tarball, subsets), batching, conversion, hostile files."""

from __future__ import annotations

import builtins
import os
import pickle
import shutil
import struct
import sys
import tarfile
import urllib.error

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import functional as TF

from explorer.core import cifar
from explorer.core.cifar import CifarDataset, download_cifar
from explorer.core.inputs import InputError

NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def one_sentence(exc: InputError, *fragments: str) -> None:
    text = str(exc)
    assert text and "\n" not in text and "Traceback" not in text
    for fragment in fragments:
        assert fragment in text, text


def expected_images(data: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(data.reshape(-1, 3, 32, 32).astype(np.float32) / 255)


# --------------------------------------------------------------------------- layouts


def test_folder(cifar_dir, cifar_data):
    ds = CifarDataset.open(cifar_dir)
    assert ds.splits() == ["train", "test"]
    assert ds.class_names == NAMES
    assert ds.num_images("test") == 20 and ds.num_images("train") == 60
    assert str(cifar_dir) in ds.source

    batch = ds.load_batch("test", batch_size=8, batch_index=0)

    data, labels = cifar_data["test_batch"]
    assert batch.tensor.shape == (8, 3, 32, 32) and batch.tensor.dtype == torch.float32
    assert torch.equal(batch.tensor, expected_images(data[:8]))
    assert batch.labels == labels[:8]
    assert batch.classes == [NAMES[i] for i in labels[:8]]
    assert batch.class_names == NAMES
    assert batch.source == f"CIFAR-10 test batch 0 ({cifar_dir})"


def test_pixel_placement(cifar_dir, cifar_data):
    """Rows are 1024 red, 1024 green, 1024 blue bytes, each a row-major 32 x 32 plane."""
    data, _ = cifar_data["test_batch"]
    tensor = CifarDataset.open(cifar_dir).load_batch("test", batch_size=4).tensor
    assert tensor[0, 0, 0, 1] == data[0, 1] / 255
    assert tensor[0, 0, 1, 0] == data[0, 32] / 255
    assert tensor[0, 1, 0, 0] == data[0, 1024] / 255
    assert tensor[0, 2, 31, 31] == data[0, 3071] / 255
    assert tensor[3, 1, 2, 5] == data[3, 1024 + 2 * 32 + 5] / 255


def test_parent_folder(cifar_dir):
    ds = CifarDataset.open(cifar_dir.parent)
    assert ds.path == cifar_dir
    assert ds.num_images("test") == 20


def test_tarball_reads_without_extracting(cifar_tarball, cifar_data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = sorted(os.listdir(cifar_tarball.parent))

    ds = CifarDataset.open(cifar_tarball)

    assert ds.splits() == ["train", "test"]
    assert ds.class_names == NAMES
    train = ds.load_batch("train", batch_size=60)
    expected = np.concatenate([cifar_data["data_batch_1"][0], cifar_data["data_batch_2"][0]])
    assert torch.equal(train.tensor, expected_images(expected))
    assert train.labels == cifar_data["data_batch_1"][1] + cifar_data["data_batch_2"][1]
    assert sorted(os.listdir(cifar_tarball.parent)) == before
    assert os.listdir(tmp_path) == []


def test_parent_folder_with_only_the_tarball(cifar_tarball):
    assert CifarDataset.open(cifar_tarball.parent).num_images("test") == 20


def test_subset_folder_with_only_test_batch(cifar_dir, tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    shutil.copy(cifar_dir / "test_batch", folder)

    ds = CifarDataset.open(folder)

    assert ds.splits() == ["test"]
    assert ds.class_names == NAMES  # the standard names stand in for a missing batches.meta
    with pytest.raises(InputError) as info:
        ds.load_batch("train")
    one_sentence(info.value, "no train split", "test")


def test_train_uses_existing_files_in_order(cifar_dir, cifar_data, tmp_path):
    folder = tmp_path / "partial"
    folder.mkdir()
    shutil.copy(cifar_dir / "data_batch_2", folder)
    ds = CifarDataset.open(folder)
    assert ds.splits() == ["train"]
    assert ds.num_images("train") == 30
    assert ds.load_batch("train", batch_size=5).labels == cifar_data["data_batch_2"][1][:5]


# --------------------------------------------------------------------------- batching


def test_batches_span_files_and_last_is_partial(cifar_dir, cifar_data):
    ds = CifarDataset.open(cifar_dir)
    assert ds.num_batches("train", 25) == 3
    assert ds.num_batches("test", 64) == 1
    assert ds.num_batches("test", 20) == 1 and ds.num_batches("test", 19) == 2
    assert ds.load_batch("test", np.int64(8), np.int64(2)).tensor.shape[0] == 4  # indices from numpy are fine

    all_train = np.concatenate([cifar_data["data_batch_1"][0], cifar_data["data_batch_2"][0]])
    middle = ds.load_batch("train", batch_size=25, batch_index=1)  # rows 25..49 cross the file boundary
    last = ds.load_batch("train", batch_size=25, batch_index=2)

    assert torch.equal(middle.tensor, expected_images(all_train[25:50]))
    assert last.tensor.shape == (10, 3, 32, 32)
    assert torch.equal(last.tensor, expected_images(all_train[50:]))
    assert len(last.labels) == len(last.classes) == 10


@pytest.mark.parametrize("index", [3, 100, -1, 1.5])
def test_batch_index_out_of_range(cifar_dir, index):
    with pytest.raises(InputError) as info:
        CifarDataset.open(cifar_dir).load_batch("test", batch_size=7, batch_index=index)
    one_sentence(info.value, "3 batches", "0 to 2")


@pytest.mark.parametrize("split, batch_size", [("valid", 8), ("test", 0), ("test", -3), ("test", 2.0)])
def test_bad_split_or_batch_size(cifar_dir, split, batch_size):
    with pytest.raises(InputError) as info:
        CifarDataset.open(cifar_dir).load_batch(split, batch_size=batch_size)
    one_sentence(info.value)


def test_grayscale_and_resize(cifar_dir, cifar_data):
    ds = CifarDataset.open(cifar_dir)
    gray = ds.load_batch("test", batch_size=4, channels=1)
    big = ds.load_batch("test", batch_size=4, channels=1, size=(64, 48))

    data, labels = cifar_data["test_batch"]
    pil = Image.fromarray(data[2].reshape(3, 32, 32).transpose(1, 2, 0))
    assert gray.tensor.shape == (4, 1, 32, 32)
    assert (gray.tensor[2] - TF.to_tensor(pil.convert("L"))).abs().max() <= 1 / 255
    assert big.tensor.shape == (4, 1, 64, 48)
    assert gray.labels == big.labels == labels[:4]


def test_arrays_are_cached(cifar_dir, monkeypatch):
    ds = CifarDataset.open(cifar_dir)
    ds.load_batch("test")
    monkeypatch.setattr(cifar, "_parse_batch", lambda *a: pytest.fail("file parsed twice"))
    ds.load_batch("test", batch_size=3, batch_index=2)


# --------------------------------------------------------------------------- real-format pickles


class Python2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 ``str`` and numpy globals under numpy 1.x names, like the official files."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj):
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str
    # Python 2's str was bytes: numpy's own strings ("|", "u1", "b") were written that way too.
    dispatch[str] = lambda self, obj: Python2Pickler.save_py2_str(self, obj.encode("ascii"))

    def save_global(self, obj, name=None):
        module = getattr(obj, "__module__", "").replace("numpy._core", "numpy.core")
        name = name or obj.__qualname__
        self.write(pickle.GLOBAL + f"{module}\n{name}\n".encode())
        self.memoize(obj)


def test_python2_style_batch_with_numpy_core_names(tmp_path, cifar_tools):
    data, labels = cifar_tools.make_arrays(5, 9)
    buffer = open(tmp_path / "test_batch", "wb")
    with buffer:
        Python2Pickler(buffer, protocol=2).dump({b"data": data, b"labels": labels, b"batch_label": b"x"})
    raw = (tmp_path / "test_batch").read_bytes()
    assert b"numpy.core.multiarray\n_reconstruct" in raw and b"_codecs" not in raw

    batch = CifarDataset.open(tmp_path).load_batch("test")

    assert torch.equal(batch.tensor, expected_images(data))
    assert batch.labels == labels


def test_str_keys_are_accepted(tmp_path, cifar_tools):
    data, labels = cifar_tools.make_arrays(3, 4)
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({"data": data, "labels": labels}, f, protocol=4)
    with open(tmp_path / "batches.meta", "wb") as f:
        pickle.dump({"label_names": NAMES}, f, protocol=4)
    ds = CifarDataset.open(tmp_path)
    assert ds.class_names == NAMES
    assert ds.load_batch("test").labels == labels


# --------------------------------------------------------------------------- hostile and broken files


class RunsShell:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class RunsPython:
    def __init__(self, code):
        self.code = code

    def __reduce__(self):
        return builtins.exec, (self.code,)


def hostile_payloads(marker):
    yield "os.system", RunsShell(f"touch '{marker}'")
    yield "builtins.exec", RunsPython(f"open({str(marker)!r}, 'w').close()")


@pytest.mark.parametrize("payload_index", [0, 1], ids=["os.system", "builtins.exec"])
@pytest.mark.parametrize("where", ["data", "file"])
def test_hostile_pickle_is_refused_without_running(tmp_path, payload_index, where):
    if payload_index == 0 and sys.platform == "win32":
        pytest.skip("the shell payload uses touch")
    marker = tmp_path / "pwned"
    label, payload = list(hostile_payloads(marker))[payload_index]
    evil = {b"data": payload, b"labels": [0]} if where == "data" else payload

    # The payload is live: an ordinary unpickler would run it.
    pickle.loads(pickle.dumps(evil, protocol=2))
    assert marker.exists()
    marker.unlink()

    folder = tmp_path / "cifar"
    folder.mkdir()
    (folder / "test_batch").write_bytes(pickle.dumps(evil, protocol=2))
    with pytest.raises(InputError) as info:
        CifarDataset.open(folder).load_batch("test")
    one_sentence(info.value, "test_batch", "is not a CIFAR-10 batch file", f"it asks to run code: {label}")
    assert not marker.exists()


def test_hostile_meta_in_tarball_is_refused(tmp_path, cifar_dir):
    marker = tmp_path / "pwned"
    meta = tmp_path / "batches.meta"
    meta.write_bytes(pickle.dumps(RunsPython(f"open({str(marker)!r}, 'w').close()"), protocol=2))
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(cifar_dir / "test_batch", arcname="cifar-10-batches-py/test_batch")
        tar.add(meta, arcname="cifar-10-batches-py/batches.meta")
    with pytest.raises(InputError) as info:
        CifarDataset.open(archive)
    one_sentence(info.value, "batches.meta", "builtins.exec")
    assert not marker.exists()


def test_codecs_only_for_latin1(tmp_path):
    class Rot13:
        def __reduce__(self):
            import _codecs

            return _codecs.encode, ("abc", "rot13")

    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": Rot13(), b"labels": []}, protocol=2))
    with pytest.raises(InputError) as info:
        CifarDataset.open(tmp_path).load_batch("test")
    one_sentence(info.value, "_codecs.encode")


def write_batch_dict(folder, batch):
    folder.mkdir(exist_ok=True)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump(batch, f, protocol=2)
    return folder


@pytest.mark.parametrize(
    "batch, fragment",
    [
        ({b"data": np.zeros((4, 3072), np.float32), b"labels": [0] * 4}, "N x 3072"),
        ({b"data": np.zeros((4, 1024), np.uint8), b"labels": [0] * 4}, "4 x 1024 of uint8"),
        ({b"data": np.zeros((4, 32, 32, 3), np.uint8), b"labels": [0] * 4}, "N x 3072"),
        ({b"data": [[0] * 3072] * 4, b"labels": [0] * 4}, "found list"),
        ({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0] * 3}, "4 images but 3 labels"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, "labels should be 0 to 9"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, -1]}, "labels should be 0 to 9"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [b"a", b"b"]}, "not a list of whole numbers"),
        ({b"pixels": np.zeros((2, 3072), np.uint8)}, "no 'data' and 'labels'"),
        ([1, 2, 3], "no dictionary"),
    ],
    ids=["float", "short-rows", "4d", "list", "label-count", "label-10", "label-neg", "label-bytes", "keys", "list-top"],
)
def test_wrong_content_is_refused(tmp_path, batch, fragment):
    folder = write_batch_dict(tmp_path / "cifar", batch)
    with pytest.raises(InputError) as info:
        CifarDataset.open(folder).load_batch("test")
    one_sentence(info.value, "test_batch", fragment)


@pytest.mark.parametrize("content", [b"garbage that is not a pickle", b"\x80\x02}q\x00(U\x04data"])
def test_truncated_or_garbage_pickle(tmp_path, content):
    (tmp_path / "test_batch").write_bytes(content)
    with pytest.raises(InputError) as info:
        CifarDataset.open(tmp_path).load_batch("test")
    one_sentence(info.value, "truncated or not a Python pickle")


def test_truncated_real_batch(tmp_path, cifar_dir):
    raw = (cifar_dir / "test_batch").read_bytes()
    (tmp_path / "test_batch").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputError) as info:
        CifarDataset.open(tmp_path).num_images("test")
    one_sentence(info.value, "truncated")


def test_bad_meta(tmp_path, cifar_dir):
    shutil.copy(cifar_dir / "test_batch", tmp_path)
    with open(tmp_path / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": "not a list"}, f, protocol=2)
    with pytest.raises(InputError) as info:
        CifarDataset.open(tmp_path)
    one_sentence(info.value, "batches.meta", "label names")


@pytest.mark.parametrize("kind", ["missing", "empty-folder", "text-file", "empty-tarball", "corrupt-gzip"])
def test_not_a_cifar_location(tmp_path, kind):
    target = tmp_path / "thing"
    if kind == "empty-folder":
        target.mkdir()
    elif kind == "text-file":
        target.write_text("hello")
    elif kind == "empty-tarball":
        target = tmp_path / "cifar-10-python.tar.gz"
        readme = tmp_path / "readme.html"
        readme.write_text("x")
        with tarfile.open(target, "w:gz") as tar:
            tar.add(readme, arcname="cifar-10-batches-py/readme.html")
    elif kind == "corrupt-gzip":
        target = tmp_path / "cifar-10-python.tar.gz"
        good = tmp_path / "good.tar"
        with tarfile.open(good, "w") as tar:
            tar.add(__file__, arcname="cifar-10-batches-py/test_batch")
        target.write_bytes(good.read_bytes()[:700])
    with pytest.raises(InputError) as info:
        CifarDataset.open(target)
    one_sentence(info.value, "cifar-10")


def test_symlink_members_in_tarball_are_ignored(tmp_path, cifar_dir):
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        link = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
        tar.add(cifar_dir / "test_batch", arcname="cifar-10-batches-py/test_batch")
    assert CifarDataset.open(archive).splits() == ["test"]


# --------------------------------------------------------------------------- download


def test_download_failure_is_one_sentence(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(InputError) as info:
        download_cifar(tmp_path)
    one_sentence(info.value, "Could not download CIFAR-10", "name resolution")


def test_download_returns_the_batches_folder(tmp_path, monkeypatch, cifar_tools):
    import torchvision.datasets

    calls = []

    def fake(root, train, download):
        calls.append((root, download))
        folder = tmp_path / "cifar-10-batches-py"
        folder.mkdir(exist_ok=True)
        data, labels = cifar_tools.make_arrays(2, 0)
        cifar_tools.write_batch(folder / "test_batch", data, labels)
        cifar_tools.write_meta(folder / "batches.meta", 2)

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", fake)
    folder = download_cifar(tmp_path)
    assert calls == [(str(tmp_path), True)]
    assert folder == tmp_path / "cifar-10-batches-py"
    assert CifarDataset.open(folder).num_images("test") == 2

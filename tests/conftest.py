"""Shared test set-up: Qt runs offscreen, and small CIFAR-10 copies in the official on-disk format
(never downloaded) for the core and the window tests."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pickle
import tarfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

CIFAR_LABEL_NAMES = [
    b"airplane", b"automobile", b"bird", b"cat", b"deer",
    b"dog", b"frog", b"horse", b"ship", b"truck",
]

# name -> (number of images, seed); small stand-ins for the 10000-image official files.
CIFAR_FILES = {"test_batch": (20, 0), "data_batch_1": (30, 1), "data_batch_2": (30, 2)}


def make_cifar_arrays(count: int, seed: int) -> tuple[np.ndarray, list[int]]:
    """Deterministic pixels (every byte value shows up, channels differ) and labels."""
    rows = np.arange(count * 3072, dtype=np.int64).reshape(count, 3072)
    data = ((rows * 7 + seed * 31 + rows // 3072 * 13) % 256).astype(np.uint8)
    labels = [(i * 3 + seed) % 10 for i in range(count)]
    return data, labels


def write_cifar_batch(path: Path, data: np.ndarray, labels: list[int], name: str = "test") -> None:
    batch = {
        b"batch_label": f"{name} batch 1 of 1".encode(),
        b"labels": list(labels),
        b"data": data,
        b"filenames": [f"image_{i:05d}.png".encode() for i in range(len(labels))],
    }
    with open(path, "wb") as f:
        pickle.dump(batch, f, protocol=2)


def write_cifar_meta(path: Path, count: int) -> None:
    meta = {b"num_cases_per_batch": count, b"label_names": list(CIFAR_LABEL_NAMES), b"num_vis": 3072}
    with open(path, "wb") as f:
        pickle.dump(meta, f, protocol=2)


@pytest.fixture(scope="session")
def cifar_data() -> dict[str, tuple[np.ndarray, list[int]]]:
    """The arrays behind ``cifar_dir`` / ``cifar_tarball``: file name -> (data, labels)."""
    return {name: make_cifar_arrays(count, seed) for name, (count, seed) in CIFAR_FILES.items()}


@pytest.fixture(scope="session")
def cifar_dir(tmp_path_factory, cifar_data) -> Path:
    """A ``cifar-10-batches-py`` folder: test_batch (20 images), data_batch_1 and _2 (30 each)."""
    folder = tmp_path_factory.mktemp("cifar") / "cifar-10-batches-py"
    folder.mkdir()
    for name, (data, labels) in cifar_data.items():
        write_cifar_batch(folder / name, data, labels, name)
    write_cifar_meta(folder / "batches.meta", 20)
    return folder


@pytest.fixture(scope="session")
def cifar_tarball(tmp_path_factory, cifar_dir) -> Path:
    """``cifar-10-python.tar.gz`` laid out like the official archive (a readme too)."""
    archive = tmp_path_factory.mktemp("cifar_tar") / "cifar-10-python.tar.gz"
    readme = cifar_dir.parent / "readme.html"
    readme.write_text("<html>not a batch</html>")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(cifar_dir, arcname="cifar-10-batches-py", recursive=False)
        tar.add(readme, arcname="cifar-10-batches-py/readme.html")
        # The official archive is not in alphabetical order either.
        for name in ["data_batch_2", "batches.meta", "test_batch", "data_batch_1"]:
            tar.add(cifar_dir / name, arcname=f"cifar-10-batches-py/{name}")
    return archive


@pytest.fixture(scope="session")
def cifar_tools() -> SimpleNamespace:
    """The helpers above for tests that build their own CIFAR files (tests/ is not a package)."""
    return SimpleNamespace(
        label_names=[n.decode() for n in CIFAR_LABEL_NAMES],
        make_arrays=make_cifar_arrays,
        write_batch=write_cifar_batch,
        write_meta=write_cifar_meta,
    )


def pytest_sessionfinish(session, exitstatus):
    """Background threads end before the interpreter shuts down, as the app's run_app does: a daemon
    thread still inside torch then aborts the process after every test has passed."""
    import sys
    jobs = sys.modules.get("explorer.core.jobs")
    if jobs is not None:
        jobs.finish_all(20.0)
    reaper = sys.modules.get("explorer.ui.reaper")
    if reaper is not None:
        reaper.drain(10.0)

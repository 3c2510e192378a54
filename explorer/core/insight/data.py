"""Data sets the Insight tools run over: a CIFAR-10 split, a folder of images, the built-in samples,
or any tensor of images (the train panel's data). One small interface, so the training package's
data sets can be wrapped later without touching the tools:

- ``len(source)``, ``source.key`` (identifies the data for caches), ``source.describe()``;
- ``source.batches(batch_size)`` yields (first index, images [B, C, H, W] in [0, 1], labels or None),
  consecutive images of one size per batch, in the data set's order;
- ``source.image(i)`` one image [C, H, W]; ``source.label(i)`` its class name or None."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from explorer.core.inputs import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


class DataSource:
    key: str = ""

    def __len__(self) -> int:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def batches(self, batch_size: int) -> Iterator[tuple[int, torch.Tensor, list[int] | None]]:
        raise NotImplementedError

    def image(self, index: int) -> torch.Tensor:
        raise NotImplementedError

    def label(self, index: int) -> str | None:
        return None

    def class_names(self) -> list[str] | None:
        return None

    def input_source(self, index: int):
        """An InputSource that loads image ``index`` alone (to make it the window's input), or None."""
        return None


class CifarSource(DataSource):
    """A CIFAR-10 split, in the split's order (train: data_batch_1 .. 5)."""

    def __init__(self, path, split: str = "test"):
        from explorer.core.cifar import CifarDataset, SPLIT_FILES
        if split not in SPLIT_FILES:
            raise InputError(f"'{split}' is not a CIFAR-10 split: choose 'train' or 'test'.")
        self.dataset = CifarDataset.open(path)
        self.split = split
        self._n = self.dataset.num_images(split)
        self.key = f"cifar:{Path(self.dataset.path).resolve()}:{split}:{self._n}"

    def __len__(self) -> int:
        return self._n

    def describe(self) -> str:
        return f"CIFAR-10 {self.split} split, {self._n} images"

    def _rows(self, start: int, stop: int) -> tuple[torch.Tensor, np.ndarray]:
        rows, labels = self.dataset._rows(self.split, start, stop)
        return torch.from_numpy(rows.reshape(-1, 3, 32, 32)), labels

    def batches(self, batch_size: int):
        for start in range(0, self._n, batch_size):
            rows, labels = self._rows(start, min(self._n, start + batch_size))
            yield start, rows.to(torch.float32).div_(255), [int(v) for v in labels]

    def image(self, index: int) -> torch.Tensor:
        rows, _ = self._rows(index, index + 1)
        return rows[0].to(torch.float32).div_(255)

    def label(self, index: int) -> str | None:
        _, labels = self._rows(index, index + 1)
        return self.dataset.class_names[int(labels[0])]

    def class_names(self) -> list[str]:
        return list(self.dataset.class_names)

    def input_source(self, index: int):
        from explorer.core.input_source import InputSource
        return InputSource.cifar(self.dataset.path, self.split, batch_size=1, batch_index=index)


class _FileListSource(DataSource):
    """Images loaded one by one from files; consecutive images of the same size share a batch."""

    files: list[Path]
    labels: list[int] | None
    names: list[str] | None

    def __len__(self) -> int:
        return len(self.files)

    def _load(self, index: int) -> torch.Tensor:
        from explorer.core.inputs import load_image
        return load_image(self.files[index], channels=3).tensor[0]

    def batches(self, batch_size: int):
        group, first = [], 0
        for i in range(len(self.files)):
            img = self._load(i)
            if group and (len(group) == batch_size or img.shape != group[0].shape):
                yield first, torch.stack(group), self._labels(first, len(group))
                group, first = [], i
            group.append(img)
        if group:
            yield first, torch.stack(group), self._labels(first, len(group))

    def _labels(self, first: int, count: int) -> list[int] | None:
        return None if self.labels is None else self.labels[first:first + count]

    def image(self, index: int) -> torch.Tensor:
        return self._load(index)

    def label(self, index: int) -> str | None:
        return None if self.labels is None else self.names[self.labels[index]]

    def class_names(self) -> list[str] | None:
        return self.names

    def input_source(self, index: int):
        from explorer.core.input_source import InputSource
        return InputSource.image(self.files[index])


class FolderSource(_FileListSource):
    """A folder of images, in sorted path order. With sub-folders (``cats/``, ``dogs/``) each one
    is a class, as torchvision's ImageFolder does; images directly in the folder have no class."""

    def __init__(self, folder):
        folder = Path(folder)
        if not folder.is_dir():
            raise InputError(f"'{folder}' is not a folder of images.")
        subdirs = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
        files, labels = [], []
        for i, d in enumerate(subdirs):
            for f in _images_in(d):
                files.append(f)
                labels.append(i)
        own = _images_in(folder)
        if files and not own:
            self.files, self.labels, self.names = files, labels, [d.name for d in subdirs]
        else:
            self.files, self.labels, self.names = own + files, None, None
        if not self.files:
            raise InputError(f"The folder '{folder}' has no images ({', '.join(IMAGE_SUFFIXES)}).")
        stamp = sum(int(os.stat(f).st_mtime_ns) % 1_000_003 for f in self.files)
        self.key = f"folder:{folder.resolve()}:{len(self.files)}:{stamp}"
        self.folder = folder

    def describe(self) -> str:
        return f"{len(self.files)} images in {self.folder}"


def _images_in(folder: Path) -> list[Path]:
    return sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)


class SamplesSource(_FileListSource):
    """The built-in sample images, in the order ``samples`` lists them; no classes."""

    def __init__(self):
        from explorer.core.inputs import _sample_entries
        from explorer.core.resources import resource_path
        entries = _sample_entries()
        self.sample_names = [e["name"] for e in entries]
        self.files = [resource_path("samples", e["file"]) for e in entries]
        self.labels, self.names = None, None
        self.key = "samples:" + ",".join(self.sample_names)

    def describe(self) -> str:
        return f"the {len(self.files)} built-in samples"

    def input_source(self, index: int):
        from explorer.core.input_source import InputSource
        return InputSource.sample(self.sample_names[index])


class TensorSource(DataSource):
    """Images already in memory ([N, C, H, W] in [0, 1]) with optional labels: e.g. the train panel's
    data set. ``key`` must change when the data does."""

    def __init__(self, images: torch.Tensor, labels: list[int] | None = None,
                 class_names: list[str] | None = None, key: str | None = None, description: str = "images"):
        self.images = images
        self.labels = None if labels is None else [int(v) for v in labels]
        self.names = class_names
        self.key = key or f"tensor:{id(images)}:{images._version}:{tuple(images.shape)}"
        self.description = description

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def describe(self) -> str:
        return f"{len(self)} {self.description}"

    def batches(self, batch_size: int):
        for start in range(0, len(self), batch_size):
            stop = min(len(self), start + batch_size)
            yield start, self.images[start:stop], None if self.labels is None else self.labels[start:stop]

    def image(self, index: int) -> torch.Tensor:
        return self.images[index]

    def label(self, index: int) -> str | None:
        if self.labels is None:
            return None
        v = self.labels[index]
        return self.names[v] if self.names and v < len(self.names) else str(v)

    def class_names(self) -> list[str] | None:
        return self.names

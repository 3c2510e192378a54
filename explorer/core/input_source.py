"""Where a run's input comes from (an image file, a built-in sample, a CIFAR-10 batch, pasted bytes),
and how the stack's ``input`` block shapes it. The command line and the window both load through here,
so an input looks the same in both."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from explorer.core.cifar import CifarDataset
from explorer.core.inputs import InputBatch, InputError, load_image, load_image_bytes, load_sample
from explorer.core.stack import InputSpec


@dataclass(frozen=True)
class InputSource:
    kind: str                      # "image", "sample", "cifar", "bytes"
    path: str = ""                 # image file or CIFAR folder/tarball
    name: str = ""                 # sample name, or a label for pasted bytes
    data: bytes = b""              # pasted or dropped image data
    split: str = "test"
    batch_size: int = 64
    batch_index: int = 0

    @classmethod
    def image(cls, path: str | Path) -> "InputSource":
        return cls("image", path=str(path))

    @classmethod
    def sample(cls, name: str) -> "InputSource":
        return cls("sample", name=name)

    @classmethod
    def cifar(cls, path: str | Path, split: str = "test", batch_size: int = 64, batch_index: int = 0) -> "InputSource":
        return cls("cifar", path=str(path), split=split, batch_size=batch_size, batch_index=batch_index)

    @classmethod
    def pasted(cls, data: bytes, label: str = "pasted image") -> "InputSource":
        return cls("bytes", name=label, data=data)

    def with_batch(self, batch_index: int, batch_size: int | None = None, split: str | None = None) -> "InputSource":
        return replace(self, batch_index=batch_index, batch_size=batch_size or self.batch_size, split=split or self.split)

    def describe(self) -> str:
        if self.kind == "sample":
            return f"sample '{self.name}'"
        if self.kind == "cifar":
            return f"CIFAR-10 {self.split} batch {self.batch_index} ({Path(self.path).name})"
        if self.kind == "bytes":
            return self.name
        return Path(self.path).name


class CifarCache:
    """Keeps opened CIFAR datasets, so stepping through batches does not re-read the files."""

    def __init__(self):
        self._open: dict[str, CifarDataset] = {}

    def get(self, path: str) -> CifarDataset:
        if path not in self._open:
            self._open = {path: CifarDataset.open(path)}   # one at a time: a train split is 150 MB
        return self._open[path]


_DEFAULT_CACHE = CifarCache()


def load_input(source: InputSource, spec: InputSpec | None = None, cifar: CifarCache | None = None) -> InputBatch:
    """The batch fed to the first layer. Images take the stack's channels (default RGB) and size;
    a CIFAR batch is converted to grayscale for channels 1 and otherwise used as it is."""
    spec = spec or InputSpec()
    channels = spec.channels or 3
    if source.kind == "image":
        return load_image(source.path, channels=channels, size=spec.size)
    if source.kind == "sample":
        return load_sample(source.name, channels=channels, size=spec.size)
    if source.kind == "bytes":
        return load_image_bytes(source.data, source.name, channels=channels, size=spec.size)
    if source.kind == "cifar":
        if source.batch_size < 1:
            raise InputError(f"The batch size must be at least 1, not {source.batch_size}.")
        dataset = (cifar or _DEFAULT_CACHE).get(source.path)
        if source.split not in dataset.splits():
            raise InputError(f"This CIFAR-10 folder has no {source.split} split; it has {', '.join(dataset.splits())}.")
        return dataset.load_batch(source.split, source.batch_size, source.batch_index, channels=channels, size=None)
    raise InputError(f"Unknown input kind '{source.kind}'.")

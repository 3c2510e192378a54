"""Reads the CIFAR-10 "python version" (folder or the official tarball) without running its pickles.

The batch files are Python pickles, and a pickle can ask to call any function while it is
being read.  A CIFAR file found on disk is untrusted input, so the files are read with an
unpickler that only knows the few numpy helpers an array needs and refuses everything else.
"""

from __future__ import annotations

import codecs
import io
import math
import pickle
import tarfile
import threading
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from explorer.core.inputs import InputBatch, InputError, adapt_batch

CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_ARCHIVE = "cifar-10-python.tar.gz"
TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_FILES = ["test_batch"]
META_FILE = "batches.meta"
SPLIT_FILES = {"train": TRAIN_FILES, "test": TEST_FILES}

DEFAULT_CLASS_NAMES = [
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
]
IMAGE_SHAPE = (3, 32, 32)
ROW_LENGTH = 3 * 32 * 32

# An official batch file is about 30 MB; anything far bigger is not one, and reading it
# whole into memory (or decompressing it from a tarball) would only hurt.
MAX_FILE_BYTES = 256 * 1024 * 1024


# --------------------------------------------------------------------------- safe unpickling


class _ForbiddenGlobal(Exception):
    pass


def _numpy_multiarray(name: str):
    # Files written by numpy 1.x name numpy.core, numpy 2.x numpy._core; the same functions.
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    return getattr(multiarray, name)


def _latin1_encode(text, encoding="latin1"):
    # Python 3 writes bytes into protocol-2 pickles as _codecs.encode(text, "latin1").
    # Only that use is allowed: other codecs could be asked to do arbitrary work.
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _ForbiddenGlobal("_codecs.encode")
    return codecs.encode(text, encoding)


_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): lambda: _numpy_multiarray("_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): lambda: _numpy_multiarray("_reconstruct"),
    ("numpy.core.multiarray", "scalar"): lambda: _numpy_multiarray("scalar"),
    ("numpy._core.multiarray", "scalar"): lambda: _numpy_multiarray("scalar"),
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("_codecs", "encode"): lambda: _latin1_encode,
}

# Python 2 module names as they appear in pickles, shown the way a Python 3 user knows them.
_FRIENDLY_MODULES = {"posix": "os", "nt": "os", "__builtin__": "builtins", "commands": "subprocess"}


class _CifarUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        factory = _ALLOWED_GLOBALS.get((module, name))
        if factory is None:
            raise _ForbiddenGlobal(f"{_FRIENDLY_MODULES.get(module, module)}.{name}")
        return factory()


def _unpickle(raw: bytes, display: str):
    try:
        return _CifarUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except _ForbiddenGlobal as exc:
        raise InputError(f"'{display}' is not a CIFAR-10 batch file (it asks to run code: {exc}).") from None
    except MemoryError:
        raise InputError(f"'{display}' could not be read: there is not enough memory.") from None
    except Exception:
        # Damaged pickles fail with many exception types (UnpicklingError, EOFError,
        # ValueError, TypeError, ...); for the user they are all the same problem.
        raise InputError(
            f"'{display}' is not a CIFAR-10 batch file (it is truncated or not a Python pickle)."
        ) from None


# --------------------------------------------------------------------------- validation


def _text_keys(obj: dict) -> dict:
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _parse_batch(raw: bytes, display: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    obj = _unpickle(raw, display)
    if not isinstance(obj, dict):
        raise InputError(f"'{display}' is not a CIFAR-10 batch file (it holds no dictionary of images).")
    obj = _text_keys(obj)
    data, labels = obj.get("data"), obj.get("labels")
    if data is None or labels is None:
        raise InputError(f"'{display}' is not a CIFAR-10 batch file (it has no 'data' and 'labels').")
    if not _is_row_array(data):
        raise InputError(
            f"'{display}' is not a CIFAR-10 batch file: its data should be N x {ROW_LENGTH} bytes, "
            f"found {_describe_array(data)}."
        )
    labels = _parse_labels(labels, display)
    if len(labels) != len(data):
        raise InputError(f"'{display}' is damaged: it has {len(data)} images but {len(labels)} labels.")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise InputError(f"'{display}' is damaged: its labels should be 0 to {num_classes - 1}.")
    return data, labels


def _is_row_array(data) -> bool:
    return isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == ROW_LENGTH


def _describe_array(data) -> str:
    if isinstance(data, np.ndarray):
        return f"{' x '.join(map(str, data.shape))} of {data.dtype}"
    return type(data).__name__


def _parse_labels(labels, display: str) -> np.ndarray:
    try:
        array = np.asarray(labels)
    except Exception:
        array = None
    if array is None or array.ndim != 1 or not (array.size == 0 or np.issubdtype(array.dtype, np.integer)):
        raise InputError(f"'{display}' is damaged: its labels are not a list of whole numbers.")
    return array.astype(np.int64)


def _parse_meta(raw: bytes, display: str) -> list[str]:
    obj = _unpickle(raw, display)
    names = _text_keys(obj).get("label_names") if isinstance(obj, dict) else None
    if not isinstance(names, (list, tuple)) or not names or not all(isinstance(n, (bytes, str)) for n in names):
        raise InputError(f"'{display}' is not a CIFAR-10 batches.meta file (it has no list of label names).")
    return [n.decode("utf-8", "replace") if isinstance(n, bytes) else n for n in names]


# --------------------------------------------------------------------------- where files live


_KNOWN_FILES = set(TRAIN_FILES) | set(TEST_FILES) | {META_FILE}


class _FolderFiles:
    def __init__(self, folder: Path):
        self.location = folder
        self.names = {name for name in _KNOWN_FILES if (folder / name).is_file()}

    def display(self, name: str) -> str:
        return str(self.location / name)

    def iter_files(self, names: list[str]) -> Iterator[tuple[str, bytes]]:
        for name in names:
            yield name, self._read(name)

    def _read(self, name: str) -> bytes:
        path = self.location / name
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                raise InputError(f"'{path}' is too large to be a CIFAR-10 batch file.")
            return path.read_bytes()
        except OSError as exc:
            raise InputError(f"Cannot read '{path}': {exc.strerror or 'the file could not be opened'}.") from None


class _TarballFiles:
    """Members are read straight out of the archive; nothing is extracted to disk."""

    def __init__(self, archive: Path):
        self.location = archive
        self._members: dict[str, tarfile.TarInfo] = {}
        try:
            with tarfile.open(archive, "r:*") as tar:
                for member in tar:
                    if self._wanted(member):
                        self._members.setdefault(Path(member.name).name, member)
        except (tarfile.TarError, OSError, EOFError):
            raise InputError(
                f"'{archive}' is not a readable CIFAR-10 archive: expected the official {CIFAR_ARCHIVE}."
            ) from None
        self.names = set(self._members)

    @staticmethod
    def _wanted(member: tarfile.TarInfo) -> bool:
        # Only regular files: a link member could point anywhere.
        return member.isfile() and Path(member.name).name in _KNOWN_FILES

    def display(self, name: str) -> str:
        return f"{self.location}:{self._members[name].name}"

    def iter_files(self, names: list[str]) -> Iterator[tuple[str, bytes]]:
        # Reading in archive order needs a single pass through the gzip stream;
        # seeking backwards in it would restart decompression from the beginning.
        members = sorted((self._members[n] for n in names), key=lambda m: m.offset_data)
        with self._open() as tar:
            for member in members:
                name = Path(member.name).name
                if member.size > MAX_FILE_BYTES:
                    raise InputError(f"'{self.display(name)}' is too large to be a CIFAR-10 batch file.")
                yield name, self._read_member(tar, member)

    def _open(self) -> tarfile.TarFile:
        try:
            return tarfile.open(self.location, "r:*")
        except (tarfile.TarError, OSError, EOFError):
            raise InputError(f"'{self.location}' is truncated or corrupt and cannot be read.") from None

    def _read_member(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
        try:
            return tar.extractfile(member).read()
        except (tarfile.TarError, OSError, EOFError):
            raise InputError(f"'{self.location}' is truncated or corrupt and cannot be read.") from None


def _locate(path: Path) -> _FolderFiles | _TarballFiles:
    expected = f"a {CIFAR_FOLDER} folder, a folder holding one, or the {CIFAR_ARCHIVE} archive"
    if not path.exists():
        raise InputError(f"'{path}' does not exist: expected {expected}.")
    if path.is_file():
        if not tarfile.is_tarfile(path):
            raise InputError(f"'{path}' is not a CIFAR-10 archive: expected {expected}.")
        return _check_has_batches(_TarballFiles(path), expected)
    folder = _FolderFiles(path)
    if folder.names & set(TRAIN_FILES + TEST_FILES):
        return folder
    if (path / CIFAR_FOLDER).is_dir():
        return _check_has_batches(_FolderFiles(path / CIFAR_FOLDER), expected)
    if (path / CIFAR_ARCHIVE).is_file():
        return _check_has_batches(_TarballFiles(path / CIFAR_ARCHIVE), expected)
    raise InputError(f"'{path}' holds no CIFAR-10 batch files: expected {expected}.")


def _check_has_batches(files, expected: str):
    if not files.names & set(TRAIN_FILES + TEST_FILES):
        raise InputError(
            f"'{files.location}' holds no CIFAR-10 batch files (data_batch_1 to 5, test_batch): expected {expected}."
        )
    return files


# --------------------------------------------------------------------------- dataset


class CifarDataset:
    """One CIFAR-10 copy; batch files are parsed on first use and kept in memory."""

    def __init__(self, files: _FolderFiles | _TarballFiles):
        self._files = files
        self.path: Path = files.location
        self.source: str = f"CIFAR-10 ({files.location})"
        self.class_names: list[str] = self._read_class_names()
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._lock = threading.Lock()  # the UI may load batches from a worker thread

    @classmethod
    def open(cls, path) -> "CifarDataset":
        return cls(_locate(Path(path)))

    def splits(self) -> list[str]:
        return [split for split in ("train", "test") if self._split_files(split)]

    def num_images(self, split: str) -> int:
        return sum(len(labels) for _, labels in self._split_arrays(split))

    def num_batches(self, split: str, batch_size: int = 64) -> int:
        _check_batch_size(batch_size)
        return math.ceil(self.num_images(split) / batch_size)

    def load_batch(
        self,
        split: str = "test",
        batch_size: int = 64,
        batch_index: int = 0,
        channels: int = 3,
        size: tuple[int, int] | None = None,
    ) -> InputBatch:
        _check_batch_size(batch_size)
        count = self.num_batches(split, batch_size)
        if not _is_whole_number(batch_index) or not 0 <= batch_index < count:
            raise InputError(
                f"There is no batch {batch_index} in the CIFAR-10 {split} split: with {batch_size} images "
                f"per batch it has {count} batches, numbered 0 to {count - 1}."
            )
        start = batch_index * batch_size
        rows, labels = self._rows(split, start, start + batch_size)
        images = torch.from_numpy(rows.reshape(-1, *IMAGE_SHAPE)).to(torch.float32).div_(255)
        batch = InputBatch(
            tensor=images,
            source=f"CIFAR-10 {split} batch {batch_index} ({self.path})",
            labels=[int(label) for label in labels],
            classes=[self.class_names[label] for label in labels],
            class_names=list(self.class_names),
        )
        return adapt_batch(batch, channels, size)

    # ----------------------------------------------------------------- internals

    def _read_class_names(self) -> list[str]:
        if META_FILE not in self._files.names:
            return list(DEFAULT_CLASS_NAMES)
        raw = dict(self._files.iter_files([META_FILE]))[META_FILE]
        return _parse_meta(raw, self._files.display(META_FILE))

    def _split_files(self, split: str) -> list[str]:
        if split not in SPLIT_FILES:
            raise InputError(f"'{split}' is not a CIFAR-10 split: choose 'train' or 'test'.")
        return [name for name in SPLIT_FILES[split] if name in self._files.names]

    def _split_arrays(self, split: str) -> list[tuple[np.ndarray, np.ndarray]]:
        names = self._split_files(split)
        if not names:
            present = " and ".join(self.splits()) or "none"
            raise InputError(f"This CIFAR-10 copy has no {split} split (it has: {present}).")
        with self._lock:
            missing = [name for name in names if name not in self._arrays]
            if missing:
                # Parse each file as it arrives, so only one raw file is held at a time.
                for name, raw in self._files.iter_files(missing):
                    self._arrays[name] = _parse_batch(raw, self._files.display(name), len(self.class_names))
            return [self._arrays[name] for name in names]

    def _rows(self, split: str, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows [start, stop) of the split, which may span the end of one file and the next."""
        data_parts, label_parts = [], []
        offset = 0
        for data, labels in self._split_arrays(split):
            lo, hi = max(start - offset, 0), min(stop - offset, len(labels))
            if lo < hi:
                data_parts.append(data[lo:hi])
                label_parts.append(labels[lo:hi])
            offset += len(labels)
        return np.concatenate(data_parts), np.concatenate(label_parts)


def _is_whole_number(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_batch_size(batch_size: int) -> None:
    if not _is_whole_number(batch_size) or batch_size < 1:
        raise InputError(f"The batch size must be a whole number of at least 1, not {batch_size!r}.")


def download_cifar(root) -> Path:
    """Fetch CIFAR-10 into ``root`` with torchvision (only on an explicit user request)."""
    root = Path(root)
    try:
        from torchvision.datasets import CIFAR10  # heavy import, and only needed here

        CIFAR10(root=str(root), train=True, download=True)
    except InputError:
        raise
    except Exception as exc:  # network, disk and checksum failures all come from here
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(".")
        raise InputError(f"Could not download CIFAR-10: {detail}.") from None
    folder = root / CIFAR_FOLDER
    if not folder.is_dir():
        raise InputError(f"Could not download CIFAR-10: '{folder}' was not created.")
    return folder

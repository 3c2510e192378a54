"""The data sets a stack trains on: ``xo`` (generated X-versus-O glyphs), CIFAR-10 (the existing safe
loader) and an image folder with one sub-folder per class (the existing safe image loader).

Public API (also used outside training):

    load_dataset(spec, input_spec, seed=0, *, download=False, test_fraction=0.2) -> Dataset
    make_xo(count, size=(28, 28), channels=1, seed=0) -> (images uint8 [N, C, H, W], labels int64 [N])

A ``Dataset`` has ``.train`` and ``.test`` (each a ``Split`` with ``.images`` uint8 [N, C, H, W] on the
CPU, ``.labels`` int64 [N] and ``.floats()`` for float32 in [0, 1]), ``.classes`` (names) and ``.name``.
Images are kept as uint8: the CIFAR-10 train split is 150 MB that way instead of 600 MB as floats,
and the trainer converts one batch at a time on the device."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from explorer.core.cifar import CifarDataset, SPLIT_FILES, CIFAR_ARCHIVE, download_cifar
from explorer.core.inputs import InputError, load_image
from explorer.core.stack import InputSpec

XO_CLASSES = ["x", "o"]
XO_TRAIN, XO_TEST = 4000, 1000
XO_DEFAULT_SIZE = (28, 28)
FOLDER_DEFAULT_SIZE = (32, 32)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


class DatasetError(InputError):
    """A data set that cannot be used; the message is one sentence for the user."""


@dataclass
class Split:
    images: torch.Tensor        # uint8 [N, C, H, W], CPU
    labels: torch.Tensor        # int64 [N]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def floats(self) -> torch.Tensor:
        """float32 [N, C, H, W] in [0, 1] (what the stack's first layer sees)."""
        return self.images.to(torch.float32).div_(255)


@dataclass
class Dataset:
    name: str                   # "xo", "CIFAR-10", or the image folder's name
    kind: str                   # "xo", "cifar" or "folder"
    classes: list[str]
    train: Split
    test: Split
    source: str = ""            # where it came from, for messages and history.json
    notes: list[str] = field(default_factory=list)   # sentences worth telling the user

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.images.shape[1:])

    def describe(self) -> str:
        return (f"{self.name}: {len(self.train)} training and {len(self.test)} test images of "
                f"{'x'.join(map(str, self.image_shape))}, {len(self.classes)} classes")


# ---------------------------------------------------------------- xo
XO_CHUNK_PIXELS = 1 << 22     # glyphs drawn this many pixels at a time: a dozen float temporaries each
XO_MAX_BYTES = 2 << 30        # refuse an xo set whose images and noise would need more than this


def xo_bytes(count: int, size: tuple[int, int], channels: int) -> int:
    """What make_xo holds at once: the finished uint8 images and the float32 noise of every glyph
    (the drawing itself goes XO_CHUNK_PIXELS at a time)."""
    return count * size[0] * size[1] * (channels + 4)


def make_xo(count: int, size: tuple[int, int] = XO_DEFAULT_SIZE, channels: int = 1,
            seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` glyphs, exactly half X (label 0) and half O (label 1) in a seeded random order: random
    centre, size, aspect, stroke width and a small rotation, anti-aliased, with Gaussian noise.
    All drawn on tensors (5000 images of 28x28 take a few tens of milliseconds), a chunk of glyphs
    at a time: at the size of a big stack input, drawing all at once took gigabytes of temporaries.
    Every random number is drawn before the drawing, in the same order, so chunking changes nothing."""
    h, w = size
    g = torch.Generator().manual_seed(seed)
    labels = (torch.arange(count) % 2)[torch.randperm(count, generator=g)]

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(count, 1, 1, generator=g)

    side = min(h, w)
    radius = uniform(0.22, 0.38) * side                 # half the glyph's extent
    aspect = uniform(0.8, 1.2)                          # a little wider or taller
    stroke = uniform(0.06, 0.11) * side                 # line width (1.7 to 3 pixels at 28x28)
    angle = uniform(-0.26, 0.26)                        # about ±15 degrees
    margin_y, margin_x = radius * aspect.clamp(min=1) + stroke / 2, radius * aspect.clamp(max=1).reciprocal().clamp(max=1.25) + stroke / 2
    cy = margin_y + (h - 1 - 2 * margin_y).clamp(min=0) * torch.rand(count, 1, 1, generator=g)
    cx = margin_x + (w - 1 - 2 * margin_x).clamp(min=0) * torch.rand(count, 1, 1, generator=g)
    brightness = uniform(0.7, 1.0)                      # stroke brightness varies
    noise = torch.randn(count, h, w, generator=g) * 0.08
    ys = torch.arange(h, dtype=torch.float32).view(1, h, 1)
    xs = torch.arange(w, dtype=torch.float32).view(1, 1, w)
    cos, sin = angle.cos(), angle.sin()
    images = torch.empty(count, channels, h, w, dtype=torch.uint8)
    step = max(1, XO_CHUNK_PIXELS // max(1, h * w))
    for a in range(0, count, step):
        b = min(count, a + step)
        dy, dx = ys - cy[a:b], xs - cx[a:b]
        u = (dx * cos[a:b] + dy * sin[a:b])
        v = (-dx * sin[a:b] + dy * cos[a:b]) / aspect[a:b]      # the glyph's own frame, aspect undone
        r = radius[a:b]
        # X: distance to two diagonal segments of half-length `radius` through the centre.
        a1, b1 = (u + v) * math.sqrt(0.5), (u - v) * math.sqrt(0.5)
        d1 = torch.sqrt(b1 ** 2 + (a1.abs() - r).clamp(min=0) ** 2)
        d2 = torch.sqrt(a1 ** 2 + (b1.abs() - r).clamp(min=0) ** 2)
        dist_x = torch.minimum(d1, d2)
        # O: distance to a circle (an ellipse once the aspect is applied) of that radius.
        dist_o = (torch.sqrt(u ** 2 + v ** 2) - r * 0.85).abs()
        dist = torch.where(labels[a:b].view(b - a, 1, 1) == 0, dist_x, dist_o)
        ink = (stroke[a:b] / 2 - dist + 0.5).clamp(0, 1)          # one pixel of anti-aliasing at the edge
        ink = ink * brightness[a:b]
        glyphs = (ink + noise[a:b]).clamp(0, 1).mul(255).round().to(torch.uint8)
        images[a:b] = glyphs.unsqueeze(1)
    return images, labels


def _xo(input_spec: InputSpec, seed: int) -> Dataset:
    train, test = XO_TRAIN, XO_TEST       # read at call time: tests shrink them
    size = input_spec.size or XO_DEFAULT_SIZE
    channels = input_spec.channels or 1
    if min(size) < 8:
        raise DatasetError(f"xo draws glyphs of at least 8x8 pixels; the stack's input size is "
                           f"{size[0]}x{size[1]} (set input size to 28x28).")
    need = xo_bytes(train + test, size, channels)
    if need > XO_MAX_BYTES:
        raise DatasetError(f"xo is drawn at the stack's input size, {size[0]}x{size[1]} with {channels} channel(s): "
                           f"{train + test:,} images would need {need / 2**30:.1f} GB (at most "
                           f"{XO_MAX_BYTES / 2**30:.0f} GB); set the input size to 28x28 or use an image folder.")
    # Train and test come from different seeds, so no test glyph is a copy of a training glyph.
    train_x, train_y = make_xo(train, size, channels, seed * 2)
    test_x, test_y = make_xo(test, size, channels, seed * 2 + 1)
    return Dataset("xo", "xo", list(XO_CLASSES), Split(train_x, train_y), Split(test_x, test_y),
                   source="xo")


# ---------------------------------------------------------------- CIFAR-10
def _is_cifar(path: Path) -> bool:
    if path.is_file():
        return path.name.endswith((".tar.gz", ".tgz", ".tar"))
    names = {p.name for p in path.iterdir()} if path.is_dir() else set()
    cifar_names = set(SPLIT_FILES["train"]) | set(SPLIT_FILES["test"]) | {"cifar-10-batches-py", CIFAR_ARCHIVE}
    return bool(names & cifar_names)


def _cifar_split(data: CifarDataset, split: str, channels: int, size) -> Split:
    n = data.num_images(split)
    chunk = 10_000          # floats for one official file at a time, never the whole split
    images, labels = [], []
    for i in range(math.ceil(n / chunk)):
        batch = data.load_batch(split, chunk, i, channels=channels, size=size)
        images.append(batch.tensor.mul(255).round_().to(torch.uint8))
        labels.append(torch.tensor(batch.labels, dtype=torch.int64))
    return Split(torch.cat(images), torch.cat(labels))


def _cifar(path: Path, input_spec: InputSpec, seed: int, test_fraction: float) -> Dataset:
    data = CifarDataset.open(path)
    channels = input_spec.channels or 3
    size = input_spec.size if input_spec.size not in (None, (32, 32)) else None
    splits = data.splits()
    notes = []
    if "train" not in splits:
        raise DatasetError(f"The CIFAR-10 copy at '{path}' has no training batches (data_batch_1 … data_batch_5); "
                           "training needs at least one.")
    train = _cifar_split(data, "train", channels, size)
    if "test" in splits:
        test = _cifar_split(data, "test", channels, size)
    else:
        train, test = _hold_out(train, seed, test_fraction)
        notes.append(f"This CIFAR-10 copy has no test_batch: {len(test)} training images "
                     f"({test_fraction:.0%}) are held out for testing.")
    files = [n for n in SPLIT_FILES["train"] if n in data._files.names]
    if len(files) < len(SPLIT_FILES["train"]):
        notes.append(f"Training on the {len(files)} of 5 CIFAR-10 training batches that are there "
                     f"({len(train)} images).")
    return Dataset("CIFAR-10", "cifar", list(data.class_names), train, test, source=str(data.path), notes=notes)


# ---------------------------------------------------------------- image folder
def _hold_out(split: Split, seed: int, fraction: float) -> tuple[Split, Split]:
    """A seeded, stratified hold-out: ``fraction`` of each class (at least one image where a class
    has two or more) goes to the test split."""
    g = torch.Generator().manual_seed(seed)
    train_idx, test_idx = [], []
    for c in torch.unique(split.labels).tolist():
        idx = torch.nonzero(split.labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        k = round(len(idx) * fraction)
        if fraction > 0 and k == 0 and len(idx) >= 2:
            k = 1
        test_idx.append(idx[:k])
        train_idx.append(idx[k:])
    tr, te = torch.cat(train_idx).sort().values, torch.cat(test_idx).sort().values
    return (Split(split.images[tr], split.labels[tr]), Split(split.images[te], split.labels[te]))


def _folder(root: Path, input_spec: InputSpec, seed: int, test_fraction: float) -> Dataset:
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DatasetError(f"'{root}' holds no class sub-folders; put each class's images in its own "
                           "folder (root/cat/*.jpg, root/dog/*.png) or pass xo or a CIFAR-10 folder.")
    channels = input_spec.channels or 3
    size = input_spec.size or FOLDER_DEFAULT_SIZE
    images, labels, classes = [], [], []
    for d in class_dirs:
        files = sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            continue
        label = len(classes)
        classes.append(d.name)
        for f in files:
            batch = load_image(f, channels=channels, size=size)    # InputError names the file
            images.append(batch.tensor.mul(255).round_().to(torch.uint8))
            labels.append(label)
    if len(classes) < 2:
        raise DatasetError(f"'{root}' has images in {len(classes)} class folder(s); training needs at least 2 classes "
                           "(one sub-folder of images per class).")
    whole = Split(torch.cat(images), torch.tensor(labels, dtype=torch.int64))
    train, test = _hold_out(whole, seed, test_fraction)
    notes = [] if input_spec.size else [f"Images are resized to {size[0]}x{size[1]} (the stack sets no input size)."]
    return Dataset(root.name, "folder", classes, train, test, source=str(root), notes=notes)


# ---------------------------------------------------------------- the entry point
def load_dataset(spec: str, input_spec: InputSpec | None = None, seed: int = 0, *, download: bool = False,
                 test_fraction: float = 0.2) -> Dataset:
    """``spec``: ``"xo"``, a CIFAR-10 folder or tarball, or an image folder (told apart by what is in it).
    Images get the stack's ``input`` channels and size. Raises DatasetError / InputError (one sentence)."""
    input_spec = input_spec or InputSpec()
    if not 0 <= test_fraction < 1:
        raise DatasetError(f"The held-out fraction must be at least 0 and below 1, not {test_fraction}.")
    if spec == "xo":
        return _xo(input_spec, seed)
    path = Path(spec).expanduser()
    if download:
        path = download_cifar(path)
    if not path.exists():
        raise DatasetError(f"'{spec}' is neither xo nor an existing CIFAR-10 folder, tarball or image folder.")
    if _is_cifar(path):
        return _cifar(path, input_spec, seed, test_fraction)
    if path.is_dir():
        return _folder(path, input_spec, seed, test_fraction)
    raise DatasetError(f"'{spec}' is a file but not a CIFAR-10 tarball (cifar-10-python.tar.gz); "
                       "pass xo, a CIFAR-10 folder or an image folder.")

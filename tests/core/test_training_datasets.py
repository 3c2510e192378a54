"""Training data: the generated xo set (deterministic, balanced, drawn fast), CIFAR-10 through the
safe loader (what is there is what trains), and an image folder with a seeded, stratified hold-out."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest
import torch
from PIL import Image

from explorer.core.inputs import InputError
from explorer.core.stack import InputSpec
from explorer.core.training.datasets import DatasetError, load_dataset, make_xo


def test_xo_is_deterministic_balanced_and_seeded():
    a_x, a_y = make_xo(300, (28, 28), 1, seed=5)
    b_x, b_y = make_xo(300, (28, 28), 1, seed=5)
    c_x, _ = make_xo(300, (28, 28), 1, seed=6)
    assert torch.equal(a_x, b_x) and torch.equal(a_y, b_y)
    assert not torch.equal(a_x, c_x)
    assert a_x.dtype == torch.uint8 and a_x.shape == (300, 1, 28, 28)
    assert int((a_y == 0).sum()) == 150 and int((a_y == 1).sum()) == 150
    # Ink on a dark, noisy background: most pixels dark, every glyph has bright strokes.
    assert float((a_x < 64).float().mean()) > 0.7
    assert bool((a_x.flatten(1).max(1).values > 160).all())


def test_xo_glyphs_differ_by_class_where_a_template_would_look():
    """An X crosses at its centre; an O is hollow there. The brightest pixel's 3x3 neighbourhood at the
    glyph's centre of mass is bright for X and dark for O, on average over many glyphs."""
    x, y = make_xo(400, (28, 28), 1, seed=0)
    img = x[:, 0].float()
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    ink = (img - 40).clamp(min=0)
    cy = ((ink * ys).sum((1, 2)) / ink.sum((1, 2))).round().long()
    cx = ((ink * xs).sum((1, 2)) / ink.sum((1, 2))).round().long()
    centre = img[torch.arange(400), cy, cx]
    assert float(centre[y == 0].mean()) > 2 * float(centre[y == 1].mean())


def test_load_xo_follows_the_stack_input_and_is_fast():
    started = time.perf_counter()
    data = load_dataset("xo", InputSpec(1, (28, 28)), seed=0)
    # 0.3 s on an idle 2-core machine; the bound leaves room for a busy CI runner.
    assert time.perf_counter() - started < 5.0
    assert data.classes == ["x", "o"]
    assert (len(data.train), len(data.test)) == (4000, 1000)
    assert data.image_shape == (1, 28, 28)
    assert not torch.equal(data.train.images[:1000], data.test.images)
    rgb = load_dataset("xo", InputSpec(3, (32, 32)), seed=0)
    assert rgb.image_shape == (3, 32, 32)
    assert torch.equal(rgb.train.images[:, 0], rgb.train.images[:, 2])
    assert load_dataset("xo", InputSpec(), seed=0).image_shape == (1, 28, 28)
    floats = data.test.floats()
    assert floats.dtype == torch.float32 and float(floats.max()) <= 1.0


def test_xo_refuses_a_tiny_input():
    with pytest.raises(DatasetError, match="at least 8x8"):
        load_dataset("xo", InputSpec(1, (5, 5)))


def test_cifar_folder_gives_train_and_test_exactly(cifar_dir, cifar_data):
    data = load_dataset(str(cifar_dir), InputSpec(3, (32, 32)))
    assert data.kind == "cifar" and data.classes[0] == "airplane" and len(data.classes) == 10
    assert (len(data.train), len(data.test)) == (60, 20)
    pixels, labels = cifar_data["data_batch_2"]
    assert torch.equal(data.train.images[30:], torch.from_numpy(pixels.reshape(-1, 3, 32, 32)))
    assert data.train.labels[30:].tolist() == labels
    test_pixels, test_labels = cifar_data["test_batch"]
    assert torch.equal(data.test.images, torch.from_numpy(test_pixels.reshape(-1, 3, 32, 32)))
    assert data.test.labels.tolist() == test_labels


def test_cifar_tarball_and_grayscale(cifar_tarball):
    data = load_dataset(str(cifar_tarball), InputSpec(1, None))
    assert data.image_shape == (1, 32, 32) and len(data.train) == 60


def test_cifar_folder_with_some_batches_trains_on_what_is_there(tmp_path, cifar_dir):
    part = tmp_path / "cifar-10-batches-py"
    part.mkdir()
    shutil.copy(cifar_dir / "data_batch_1", part)
    data = load_dataset(str(part), InputSpec(3, (32, 32)), seed=1)
    # No test_batch: 20% of each class is held out, at least one image: 3 images per class -> 1 each.
    assert (len(data.train), len(data.test)) == (20, 10)
    assert sorted(data.test.labels.tolist()) == list(range(10))
    assert any("1 of 5" in n for n in data.notes) and any("held out" in n for n in data.notes)


def _write_images(folder, count, seed):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(folder / f"{i}.png")


def test_image_folder_split_is_stratified_and_seeded(tmp_path):
    _write_images(tmp_path / "dog", 10, 1)
    _write_images(tmp_path / "cat", 5, 2)
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    data = load_dataset(str(tmp_path), InputSpec(3, (16, 16)), seed=0)
    assert data.kind == "folder" and data.classes == ["cat", "dog"]
    assert data.image_shape == (3, 16, 16)
    assert sorted(data.test.labels.tolist()) == [0, 1, 1]          # 20% of 5 cats, 20% of 10 dogs
    assert len(data.train) == 12
    again = load_dataset(str(tmp_path), InputSpec(3, (16, 16)), seed=0)
    assert torch.equal(again.test.images, data.test.images)
    other = load_dataset(str(tmp_path), InputSpec(3, (16, 16)), seed=3)
    assert not torch.equal(other.test.images, data.test.images)
    # Each image is in exactly one split.
    everything = torch.cat([data.train.images, data.test.images]).flatten(1)
    assert len({tuple(r.tolist()) for r in everything}) == 15


def test_image_folder_problems_are_one_sentence(tmp_path):
    _write_images(tmp_path / "only", 3, 0)
    with pytest.raises(DatasetError, match="at least 2 classes"):
        load_dataset(str(tmp_path), InputSpec(3, (16, 16)))
    _write_images(tmp_path / "other", 2, 1)
    (tmp_path / "other" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(InputError, match="broken.png"):
        load_dataset(str(tmp_path), InputSpec(3, (16, 16)))
    with pytest.raises(DatasetError, match="neither xo nor"):
        load_dataset(str(tmp_path / "missing"))


def test_xo_at_a_big_input_size_is_refused_before_drawing_with_the_size(monkeypatch):
    # The random-input session trained xo on a stack with a large input: drawing 5,000 glyphs at
    # once took gigabytes of float temporaries (RSS 9.8 GB) and the window's close waited on it.
    from explorer.core.stack import InputSpec
    from explorer.core.training import datasets
    monkeypatch.setattr(datasets, "XO_MAX_BYTES", 8 << 20, raising=False)
    monkeypatch.setattr(datasets, "make_xo", lambda *a, **k: pytest.fail("drew before refusing"))
    with pytest.raises(datasets.DatasetError, match=r"xo is drawn at the stack's input size, 256x256 .* GB"):
        datasets.load_dataset("xo", InputSpec(channels=3, size=(256, 256)), seed=0)


def test_xo_drawn_in_chunks_is_the_same_set_as_drawn_at_once(monkeypatch):
    from explorer.core.training import datasets
    images, labels = datasets.make_xo(37, (40, 57), 3, seed=5)
    monkeypatch.setattr(datasets, "XO_CHUNK_PIXELS", 1, raising=False)     # one glyph per chunk
    one_by_one, labels_again = datasets.make_xo(37, (40, 57), 3, seed=5)
    assert torch.equal(images, one_by_one) and torch.equal(labels, labels_again)
    assert images.shape == (37, 3, 40, 57) and int(labels.sum()) == 18
    assert torch.equal(images[:, 0], images[:, 2])        # gray glyphs repeated over the channels

"""Regenerates the synthetic sample images in this folder (deterministic: numpy + Pillow only).

    python resources/samples/make_patterns.py                      # the patterns
    python resources/samples/make_patterns.py --photos SKIMAGE_DATA # also the photos

The photos come from scikit-image's bundled data folder (``skimage/data`` inside the
scikit-image wheel); see SOURCES.md for their origin and licences.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent

# The 9 x 9 "X" and "O" from Brandon Rohrer's "How do Convolutional Neural Networks work?":
# 1 is the stroke, everything else is -1 (saved as white on black).
X_GRID = """
.........
.#.....#.
..#...#..
...#.#...
....#....
...#.#...
..#...#..
.#.....#.
.........
"""

O_GRID = """
.........
...###...
..#...#..
.#.....#.
.#.....#.
.#.....#.
..#...#..
...###...
.........
"""

# The same X moved one pixel right and with a thicker lower-right arm: a template that
# matches the X patch by patch still finds most of it.
X_SHIFTED_GRID = """
.........
..#.....#
...#...#.
....#.#..
.....#...
....#.#..
...#...##
..#.....#
.........
"""


def grid_to_image(grid: str) -> Image.Image:
    rows = [line for line in grid.strip().splitlines()]
    pixels = np.array([[255 if c == "#" else 0 for c in row] for row in rows], dtype=np.uint8)
    return Image.fromarray(pixels, mode="L")


def edges(size: int = 128) -> Image.Image:
    """Four quadrants: a square (horizontal and vertical edges), a diamond (both diagonals),
    a disk (every orientation) and thin lines at 0, 45, 90 and 135 degrees."""
    half = size // 2
    y, x = np.mgrid[0:half, 0:half]
    c = (half - 1) / 2
    square = (abs(x - c) <= half * 0.3) & (abs(y - c) <= half * 0.3)
    diamond = abs(x - c) + abs(y - c) <= half * 0.4
    disk = (x - c) ** 2 + (y - c) ** 2 <= (half * 0.35) ** 2
    # Lines are centred on a whole pixel so each one is exactly one pixel wide.
    dx, dy = x - half // 2, y - half // 2
    inside = (abs(dx) <= half * 0.4) & (abs(dy) <= half * 0.4)
    lines = inside & ((dy == 0) | (dx == 0) | (dx == dy) | (dx == -dy))
    out = np.zeros((size, size), dtype=np.uint8)
    out[:half, :half] = square * 255
    out[:half, half:] = diamond * 255
    out[half:, :half] = disk * 255
    out[half:, half:] = lines * 255
    return Image.fromarray(out, mode="L")


def checkerboard(size: int = 64, square: int = 8) -> Image.Image:
    y, x = np.mgrid[0:size, 0:size]
    return Image.fromarray((((x // square + y // square) % 2) * 255).astype(np.uint8), mode="L")


def gradient(size: int = 128) -> Image.Image:
    """Red grows to the right, green downwards, blue to the left: each channel differs."""
    ramp = np.linspace(0, 255, size).round().astype(np.uint8)
    red = np.tile(ramp, (size, 1))
    green = red.T
    blue = red[:, ::-1]
    return Image.fromarray(np.stack([red, green, blue], axis=2), mode="RGB")


def make_patterns() -> None:
    grid_to_image(X_GRID).save(HERE / "x.png")
    grid_to_image(O_GRID).save(HERE / "o.png")
    grid_to_image(X_SHIFTED_GRID).save(HERE / "x_shifted.png")
    edges().save(HERE / "edges.png")
    checkerboard().save(HERE / "checkerboard.png")
    gradient().save(HERE / "gradient.png")


def make_photos(skimage_data: Path) -> None:
    # Downscaled so the repository stays small; 256 px is still plenty for a CNN's first layers.
    astronaut = Image.open(skimage_data / "astronaut.png").convert("RGB")
    astronaut.resize((256, 256), Image.LANCZOS).save(HERE / "astronaut.png", optimize=True)
    cat = Image.open(skimage_data / "chelsea.png").convert("RGB")
    cat.resize((256, round(256 * cat.height / cat.width)), Image.LANCZOS).save(HERE / "cat.png", optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, help="scikit-image's skimage/data folder")
    args = parser.parse_args()
    make_patterns()
    if args.photos:
        make_photos(args.photos)


if __name__ == "__main__":
    main()

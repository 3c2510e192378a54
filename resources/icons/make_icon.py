"""Draws the application icon: a 3 x 3 grid of feature maps, as the window shows a layer.

    python resources/icons/make_icon.py

Writes feature-map-explorer.svg (the source), PNGs at the sizes desktops and installers ask for,
and feature-map-explorer.ico (Windows). Deterministic: the tiles are computed, not random, so
running it again changes nothing. The PNGs are rendered from the SVG with Qt's SVG renderer so
every size is the same drawing; the .ico is packed from those PNGs with Pillow.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
NAME = "feature-map-explorer"
PNG_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)

# Viridis at five stops: the colour map the app offers for feature maps.
VIRIDIS = ((68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37))


def _viridis(t: float) -> str:
    t = min(max(t, 0.0), 1.0) * (len(VIRIDIS) - 1)
    i = min(int(t), len(VIRIDIS) - 2)
    f = t - i
    r, g, b = (round(a + (b_ - a) * f) for a, b_ in zip(VIRIDIS[i], VIRIDIS[i + 1]))
    return f"#{r:02x}{g:02x}{b:02x}"


# Nine small "channels", each a 5 x 5 map of what a first conv layer finds in a picture:
# edges in four directions, a blob, a corner, stripes, a ring and a diagonal gradient.
def _channel(k: int, y: int, x: int) -> float:
    u, v = (x - 2) / 2.0, (y - 2) / 2.0
    return (
        0.5 + 0.5 * math.tanh(3 * u),                      # vertical edge
        0.5 + 0.5 * math.tanh(3 * v),                      # horizontal edge
        math.exp(-2 * (u * u + v * v)),                    # blob
        0.5 + 0.5 * math.tanh(2.5 * (u + v)),              # diagonal edge
        0.5 + 0.5 * math.cos(math.pi * x),                 # vertical stripes
        1.0 - abs(math.hypot(u, v) - 0.8) * 1.6,           # ring
        (x + y) / 8.0,                                     # gradient
        1.0 if (x >= 2 and y >= 2) else 0.1,               # corner
        0.5 + 0.5 * math.tanh(3 * (u - v)),                # other diagonal
    )[k]


def svg() -> str:
    size, margin, gap = 256, 28, 10
    tile = (size - 2 * margin - 2 * gap) / 3
    cell = tile / 5
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" viewBox="0 0 {size} {size}">',
        "<title>Feature Map Explorer</title>",
        f'<rect x="4" y="4" width="{size - 8}" height="{size - 8}" rx="40" fill="#1d2433"/>',
    ]
    for k in range(9):
        ty, tx = divmod(k, 3)
        x0, y0 = margin + tx * (tile + gap), margin + ty * (tile + gap)
        parts.append(f'<g><rect x="{x0 - 2:.2f}" y="{y0 - 2:.2f}" width="{tile + 4:.2f}" height="{tile + 4:.2f}" '
                     f'rx="5" fill="#0f131c"/>')
        for y in range(5):
            for x in range(5):
                parts.append(f'<rect x="{x0 + x * cell:.2f}" y="{y0 + y * cell:.2f}" width="{cell + 0.3:.2f}" '
                             f'height="{cell + 0.3:.2f}" fill="{_viridis(_channel(k, y, x))}"/>')
        parts.append("</g>")
    # The highlighted channel: the one the large view shows.
    x0, y0 = margin + (tile + gap), margin + (tile + gap)
    parts.append(f'<rect x="{x0 - 4:.2f}" y="{y0 - 4:.2f}" width="{tile + 8:.2f}" height="{tile + 8:.2f}" rx="6" '
                 'fill="none" stroke="#ff8c1a" stroke-width="5"/>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main() -> int:
    from PIL import Image
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    source = HERE / f"{NAME}.svg"
    source.write_text(svg(), encoding="utf-8")
    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841 (QImage painting needs it)
    renderer = QSvgRenderer(str(source))
    for size in PNG_SIZES:
        image = QImage(size, size, QImage.Format_ARGB32)
        image.fill(Qt.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.Antialiasing)
        renderer.render(painter)
        painter.end()
        image.save(str(HERE / f"{NAME}-{size}.png"))
    biggest = Image.open(HERE / f"{NAME}-256.png")
    biggest.save(HERE / f"{NAME}.ico", sizes=[(s, s) for s in (16, 24, 32, 48, 64, 128, 256)])
    print(f"wrote {source.name}, {len(PNG_SIZES)} PNGs and {NAME}.ico to {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

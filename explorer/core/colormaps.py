"""256-entry colour look-up tables for grayscale feature maps (numpy only).

The UI hands these straight to pyqtgraph as an ImageItem LUT; PNG export maps
through the same tables, so screen and file always agree.

The perceptual maps are matplotlib's (viridis, magma and inferno by van der Walt
and Smith; coolwarm by Kenneth Moreland). Rather than importing matplotlib at
runtime we embed every 5th entry of its 256-entry tables (52 anchors, 0..255
exactly) and interpolate linearly; that reproduces matplotlib's colours to
within 1/255. coolwarm is defined by matplotlib as 33 evenly spaced anchors,
which we embed in full.
"""

from __future__ import annotations

import numpy as np

# Anchor colours as concatenated RRGGBB hex, evenly spaced from 0 to 255.
_ANCHORS = {
    "viridis": (
        "44015446085c471063481769481d6f482475472a7a46307e453781433d844142873f4889"
        "3d4e8a3a538b38598c355e8d33638d31688e2e6d8e2c718e2a768e297b8e27808e25848e"
        "23898e218e8d20928c1f978b1e9c891fa18821a58524aa8328ae802eb37c35b7793dbc74"
        "46c06f50c46a5ac86465cb5e70cf577cd25089d54895d840a2da37b0dd2fbddf26cae11f"
        "d8e219e5e419f1e51dfde725"
    ),
    "magma": (
        "00000402020b0504160907200e0b2b140e361a104221114e29115a311165390f6e420f75"
        "4a107952137c5a167e6219806a1c81721f81792282812581892881912b81992d80a1307e"
        "aa337db2357bba3878c23b75ca3e72d2426fd9466be04c67e75263ec5860f1605df4695c"
        "f7725cf97b5dfb8560fc8e64fd9869fea16efeaa74feb47bfebd82fec68afecf92fed89a"
        "fde2a3fdebacfcf4b6fcfdbf"
    ),
    "inferno": (
        "00000402020c0504170a072210092d160b391e0c45260c512f0a5b380962400a67490b6a"
        "510e6c59106e61136e69166e71196e781c6d801f6c88226a902568982766a02a63a82e5f"
        "b0315bb73557bf3952c63d4dcc4248d34743d94d3ddf5337e45a31e9612bed6925f1711f"
        "f47918f78212f98b0bfa9407fb9d07fca60cfcb014fbba1ffac42af8cd37f6d746f4e156"
        "f2ea69f2f27df5f992fcffa4"
    ),
    # Blue for negative, light gray (221) at zero, red for positive.
    "diverging": (
        "3b4cc0445acc4d68d75775e16282ea6c8ef1779af782a5fb8db0fe98b9ffa3c2ffaec9fd"
        "b8d0f9c2d5f4ccd9eed5dbe6dddddde5d8d1ecd3c5f1ccb9f5c4adf7bba0f7b194f7a687"
        "f49a7bf18d6fec7f63e57058de604dd55042cb3e38c0282fb40426"
    ),
}

DIVERGING = "diverging"

# Other names a user (or a CLI flag) may reasonably type; they share the table.
ALIASES = {"coolwarm": DIVERGING}


def _lut_from_anchors(hex_colors: str) -> np.ndarray:
    anchors = np.frombuffer(bytes.fromhex(hex_colors), dtype=np.uint8).reshape(-1, 3).astype(np.float64)
    # Anchors are evenly spaced over the table, whatever their count.
    anchor_pos = np.linspace(0.0, 255.0, len(anchors))
    positions = np.arange(256, dtype=np.float64)
    channels = [np.interp(positions, anchor_pos, anchors[:, c]) for c in range(3)]
    lut = np.rint(np.stack(channels, axis=1)).astype(np.uint8)
    lut.setflags(write=False)  # shared by every caller; a stray in-place edit would recolour the app
    return lut


def _gray_lut() -> np.ndarray:
    lut = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
    lut.setflags(write=False)
    return lut


COLORMAPS: dict[str, np.ndarray] = {"gray": _gray_lut()}
COLORMAPS.update({name: _lut_from_anchors(hexes) for name, hexes in _ANCHORS.items()})
COLORMAPS.update({alias: COLORMAPS[target] for alias, target in ALIASES.items()})


def colormap_names() -> list[str]:
    """The names to offer in a menu: every map once, aliases left out."""
    return [name for name in COLORMAPS if name not in ALIASES]


def get_lut(name: str) -> np.ndarray:
    """The (256, 3) uint8 table for `name`; KeyError naming the choices otherwise."""
    try:
        return COLORMAPS[name]
    except KeyError:
        raise KeyError(f"Unknown colormap '{name}'; choose one of: {', '.join(colormap_names())}.") from None


def apply_colormap(gray: np.ndarray, name: str) -> np.ndarray:
    """uint8 (H, W) -> uint8 (H, W, 3) through the named table."""
    gray = np.asarray(gray)
    if gray.dtype != np.uint8:
        raise TypeError(f"apply_colormap expects uint8 values 0..255, got {gray.dtype}.")
    # Fancy indexing with a uint8 index is a single gather and always in range.
    return get_lut(name)[gray]

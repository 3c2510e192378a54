"""The window carries the project's icon (resources/icons), at the sizes the installers use too."""

from __future__ import annotations

from PySide6.QtCore import QSize

from explorer.ui.app import application_icon, make_application


def test_the_application_icon_is_the_projects_at_every_size(qapp):
    app = make_application()
    sizes = app.windowIcon().availableSizes()
    for size in (16, 32, 48, 256, 512):
        assert QSize(size, size) in sizes
    picture = application_icon().pixmap(64, 64).toImage()
    # drawn from our PNGs: the dark frame of the feature-map grid
    assert picture.pixelColor(32, 4).name() == "#1d2433"
    assert app.desktopFileName() == "feature-map-explorer"

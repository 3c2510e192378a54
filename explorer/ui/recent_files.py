"""The File ▸ Open recent menu: the last RECENT_LIMIT stack files, newest first, kept in QSettings."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QMenu

RECENT_LIMIT = 8


class RecentFiles:
    """Keeps the list under ``recentFiles`` in the settings and the menu that shows it; choosing an
    entry calls ``open_path`` with its path."""

    def __init__(self, settings: QSettings, menu: QMenu, open_path: Callable[[Path], object]):
        self.settings = settings
        self.menu = menu
        self._open_path = open_path

    def paths(self) -> list[str]:
        value = self.settings.value("recentFiles", [])
        if isinstance(value, str):
            value = [value]
        return [v for v in (value or []) if v]

    def add(self, path: Path) -> None:
        path = str(Path(path).resolve())
        recent = [path] + [p for p in self.paths() if p != path]
        self.settings.setValue("recentFiles", recent[:RECENT_LIMIT])
        self.rebuild_menu()

    def rebuild_menu(self) -> None:
        self.menu.clear()
        for path in self.paths():
            action = self.menu.addAction(path)
            action.triggered.connect(lambda _=False, p=path: self._open_path(Path(p)))
        self.menu.setEnabled(bool(self.paths()))

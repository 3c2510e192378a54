"""Where the app writes its own files (the log, the autosave): one folder, found through Qt's
standard locations. Its own module so that any widget (the About dialog) can name these files
without importing the main window."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QStandardPaths


def app_data_dir() -> Path:
    folder = Path(QStandardPaths.writableLocation(QStandardPaths.AppDataLocation) or Path.home() / ".feature-map-explorer")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def log_path() -> Path:
    return app_data_dir() / "explorer.log"


def autosave_path() -> Path:
    return app_data_dir() / "autosave.json"

"""Finds the files shipped in ``resources/``: from a source tree, an installed wheel or a frozen app."""

from __future__ import annotations

import importlib.resources
import sys
from pathlib import Path


def resources_dir() -> Path:
    """The one place that knows where ``resources/`` is."""
    if getattr(sys, "frozen", False):
        # PyInstaller unpacks data next to the executable (onedir) or into _MEIPASS (onefile).
        base = Path(getattr(sys, "_MEIPASS", Path(sys.executable).parent))
        return base / "resources"
    source_tree = Path(__file__).resolve().parents[2] / "resources"
    if source_tree.is_dir():
        return source_tree
    return Path(str(importlib.resources.files("explorer._resources")))


def resource_path(*parts: str) -> Path:
    return resources_dir().joinpath(*parts)

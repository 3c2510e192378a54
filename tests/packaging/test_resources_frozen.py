"""A frozen app (PyInstaller sets sys.frozen and sys._MEIPASS) finds resources/ inside its bundle."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from explorer.core import resources
from explorer.core.examples import list_examples
from explorer import platform_check

ROOT = Path(__file__).resolve().parents[2]


def fake_bundle(tmp_path: Path) -> Path:
    internal = tmp_path / "feature-map-explorer" / "_internal"
    for sub in ("examples", "samples", "icons"):
        shutil.copytree(ROOT / "resources" / sub, internal / "resources" / sub)
    return internal


def test_one_folder_bundle_reads_resources_from_meipass(tmp_path, monkeypatch):
    internal = fake_bundle(tmp_path)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(internal), raising=False)
    assert resources.resources_dir() == internal / "resources"
    assert resources.resource_path("icons", "feature-map-explorer-256.png").is_file()
    assert len(list_examples()) == len(list((ROOT / "resources" / "examples").glob("*.json"))) - 1


def test_without_meipass_the_folder_beside_the_executable(tmp_path, monkeypatch):
    internal = fake_bundle(tmp_path)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.delattr(sys, "_MEIPASS", raising=False)
    monkeypatch.setattr(sys, "executable", str(internal / "feature-map-explorer"))
    assert resources.resources_dir() == internal / "resources"


def test_the_platform_check_finds_the_bundled_qt_plugin(tmp_path, monkeypatch):
    internal = tmp_path / "_internal"
    plugin = internal / "PySide6" / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    plugin.parent.mkdir(parents=True)
    plugin.write_bytes(b"")
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(internal), raising=False)
    monkeypatch.setattr(platform_check.importlib.util, "find_spec", lambda name: None)
    assert platform_check.qt_plugin("xcb") == plugin

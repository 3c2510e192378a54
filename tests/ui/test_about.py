"""Help → About tells what runs here (version, Python, torch and CUDA/MPS, the device, the files the
app writes) and copies it for a bug report."""

from __future__ import annotations

import platform

import torch
from PySide6.QtGui import QGuiApplication

from explorer import __version__
from explorer.ui.app import log_path
from explorer.ui.app_paths import autosave_path


def test_about_shows_what_a_bug_report_needs_and_copies_it(make_window):
    window = make_window()
    window.about_action.trigger()
    from explorer.ui.about import AboutDialog
    dialog = window.findChild(AboutDialog)
    assert dialog is not None and dialog.isVisible()
    text = dialog.text.toPlainText()
    assert f"Feature Map Explorer {__version__}" in text
    assert f"Python {platform.python_version()}" in text
    assert f"torch {torch.__version__}" in text
    cuda = "available: yes" if torch.cuda.is_available() else "available: no"
    assert (cuda in text) if torch.version.cuda else "CUDA not in this torch build" in text
    assert "MPS not available" in text or "MPS available" in text
    assert "device in use: cpu" in text
    assert f"log: {log_path()}" in text
    assert f"settings: {window.settings.fileName()}" in text
    assert f"autosave: {autosave_path()}" in text
    dialog.copy_button.click()
    assert QGuiApplication.clipboard().text() == text
    dialog.close()

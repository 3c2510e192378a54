"""Help → About: what is running here, in the words a bug report needs, and one button that copies it."""

from __future__ import annotations

import platform
import sys

from PySide6.QtGui import QFont, QGuiApplication
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget


def about_report(window) -> str:
    """Version, Python, Qt, torch with its CUDA/MPS availability, the device in use, and the files
    the app writes (log, settings, autosave): plain text, so it pastes into any issue tracker."""
    import torch
    from PySide6 import __version__ as pyside_version
    from PySide6.QtCore import qVersion

    from explorer import __version__
    from explorer.ui.app_paths import autosave_path, log_path

    cuda = (f"{torch.version.cuda}, available: {'yes' if torch.cuda.is_available() else 'no'}"
            + (f" ({torch.cuda.device_count()} GPU: {torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "")
            if torch.version.cuda else "not in this torch build")
    mps_backend = getattr(torch.backends, "mps", None)
    mps = "available" if mps_backend is not None and mps_backend.is_available() else "not available"
    frozen = " (installed bundle)" if getattr(sys, "frozen", False) else ""
    lines = [
        f"Feature Map Explorer {__version__}{frozen}",
        f"Python {platform.python_version()} on {platform.system()} {platform.release()} ({platform.machine()})",
        f"Qt {qVersion()}, PySide6 {pyside_version}, platform {QGuiApplication.platformName()}",
        f"torch {torch.__version__}; CUDA {cuda}; MPS {mps}",
        f"device in use: {window.device}",
        f"log: {log_path()}",
        f"settings: {window.settings.fileName()}",
        f"autosave: {autosave_path()}",
    ]
    return "\n".join(lines)


class AboutDialog(QDialog):
    def __init__(self, window: QWidget):
        super().__init__(window)
        self.setWindowTitle("About Feature Map Explorer")
        self.report = about_report(window)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("See what convolutional networks do: stack layers, run them through torch "
                                "and look at every channel of every layer."))
        self.text = QPlainTextEdit(self.report)
        self.text.setReadOnly(True)
        self.text.setFont(QFont("monospace"))
        self.text.setMinimumSize(620, 190)
        layout.addWidget(self.text)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        self.copy_button = QPushButton("Copy for a bug report")
        self.copy_button.setToolTip("Copies the text above, to paste into an issue.")
        buttons.addButton(self.copy_button, QDialogButtonBox.ActionRole)
        self.copy_button.clicked.connect(self.copy)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.report)
        self.copy_button.setText("Copied")


def show_about(window: QWidget) -> AboutDialog:
    dialog = AboutDialog(window)
    dialog.open()          # window-modal without a nested event loop
    return dialog

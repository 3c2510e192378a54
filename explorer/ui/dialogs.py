"""Every blocking question the window asks, in one small function each, so tests can answer them
by monkeypatching instead of blocking in exec()."""

from __future__ import annotations

from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

STACK_FILTER = "Stacks (*.json);;All files (*)"
IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.bmp *.gif *.tif *.tiff *.webp);;All files (*)"
PNG_FILTER = "PNG images (*.png)"
CIFAR_FILTER = "CIFAR-10 archive (cifar-10-python.tar.gz *.tar.gz);;All files (*)"


def open_file(parent: QWidget, title: str, folder: str, filters: str) -> str:
    path, _ = QFileDialog.getOpenFileName(parent, title, folder, filters)
    return path


def save_file(parent: QWidget, title: str, path: str, filters: str) -> str:
    path, _ = QFileDialog.getSaveFileName(parent, title, path, filters)
    return path


def choose_folder(parent: QWidget, title: str, folder: str) -> str:
    return QFileDialog.getExistingDirectory(parent, title, folder)


def save_changes(parent: QWidget, name: str) -> str:
    """'save', 'discard' or 'cancel'."""
    box = QMessageBox(QMessageBox.Warning, "Unsaved changes",
                      f"The stack '{name}' has changes that are not saved.", parent=parent)
    box.setInformativeText("Save them before you go on?")
    box.setStandardButtons(QMessageBox.Save | QMessageBox.Discard | QMessageBox.Cancel)
    box.setDefaultButton(QMessageBox.Save)
    answer = box.exec()
    return {QMessageBox.Save: "save", QMessageBox.Discard: "discard"}.get(answer, "cancel")


def restore_autosave(parent: QWidget | None, when: str) -> bool:
    answer = QMessageBox.question(
        parent, "Restore unsaved work?",
        f"Feature Map Explorer did not close properly last time ({when}). Restore the stack you were editing?",
        QMessageBox.Yes | QMessageBox.No, QMessageBox.Yes)
    return answer == QMessageBox.Yes


def show_error(parent: QWidget | None, title: str, text: str, details: str = "") -> None:
    box = QMessageBox(QMessageBox.Critical, title, text, parent=parent)
    if details:
        box.setDetailedText(details)
    box.exec()


def show_info(parent: QWidget | None, title: str, text: str) -> None:
    QMessageBox.information(parent, title, text)

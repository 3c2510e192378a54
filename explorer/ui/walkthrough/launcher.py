"""The main window's Models menu: opens walkthrough windows on the main window's input and takes
'Send to stack' back into its document. It lives on the main window's side, so the walkthrough
window knows nothing of the main window (import contracts in pyproject.toml)."""

from __future__ import annotations

from pathlib import Path
from PySide6.QtWidgets import QMainWindow, QMenu

from explorer.core.input_source import InputSource
from explorer.core.stack import Stack
from explorer.ui.walkthrough import window as walkthrough_window
from explorer.ui.walkthrough.window import WalkthroughWindow, model_label, png_bytes


class WalkthroughLauncher:
    """The main window's Models menu: opens walkthrough windows on the current input and takes
    'Send to stack' back into the main window's document as one undoable edit."""

    def __init__(self, window: QMainWindow, menu: QMenu):
        self.window = window
        self.menu = menu
        self.windows: list[WalkthroughWindow] = []
        for text, name, tip in (
                ("&VGG-16 walkthrough…", "vgg16", "Step through torchvision's VGG-16 on the current input, "
                                                  "block by block as the classic text explains it."),
                ("&LeNet walkthrough…", "lenet", "Step through the tutorial's LeNet on the current input "
                                                 "(gray, 32×32), with its named_parameters()."),
        ):
            action = menu.addAction(text)
            action.setStatusTip(tip)
            action.setToolTip(tip)
            action.triggered.connect(lambda _=False, n=name: self.open(n))
        menu.addSeparator()
        action = menu.addAction("&Open model…")
        action.setStatusTip("Walk through a torchvision classifier (AlexNet, VGG, ResNet…) with an optional weights file.")
        action.triggered.connect(self.open_model_dialog)

    def open_model_dialog(self) -> WalkthroughWindow | None:
        folder = str(self.window.settings.value("lastFolder/weights", str(Path.home())))
        answer = walkthrough_window.ask_model(self.window, folder)
        if answer is None:
            return None
        name, weights = answer
        return self.open(name, weights)

    def open(self, model_name: str, weights: str | None = None) -> WalkthroughWindow:
        """A walkthrough of ``model_name`` on the main window's input (the batch item on screen).
        ``weights``: None (ImageNet from the torch cache if there, else random), 'random',
        'imagenet' or a file path."""
        w = self.window
        source, item = self.current_input()
        walk = WalkthroughWindow(model_name, source=source, batch_item=item,
                                 device=w.device, weights=weights, send_stack=self.receive_stack,
                                 settings=w.settings, parent=w, input_provider=self.current_input)
        self.windows.append(walk)
        walk.closed.connect(lambda: walk in self.windows and self.windows.remove(walk))
        walk.show()
        return walk

    def current_input(self) -> tuple[InputSource, int]:
        """The main window's input and the batch item on screen."""
        w = self.window
        return w.state.source or w.state.requested_source, w.state.batch_item

    def receive_stack(self, stack: Stack, walk_window: WalkthroughWindow) -> None:
        """'Send to stack': the layers replace the main window's stack in one undoable step, and
        its input becomes the walkthrough's input as the model sees it (an 8-bit PNG, exact)."""
        walk = walk_window.walkthrough
        label = model_label(walk_window.model_name)
        self.window.document.replace_layers(stack, f"Send {len(stack.layers)} layers of {label} to the stack")
        h, w = walk.raw_input.shape[-2:]
        self.window.set_source(InputSource.pasted(png_bytes(walk.raw_input), f"{label} input ({h}×{w})"))
        self.window.raise_()
        self.window.activateWindow()

    def close_all(self) -> None:
        for walk in list(self.windows):
            walk.close()
        self.windows = []



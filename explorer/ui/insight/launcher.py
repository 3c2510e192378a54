"""The main window's Insight menu: opens (or updates and raises) the Insight window for the
selected layer, with the stack, the input and the CIFAR-10 copy the main window has now."""

from __future__ import annotations

from PySide6.QtGui import QAction, QKeySequence

from explorer.ui.insight.window import InsightWindow


class InsightLauncher:
    def __init__(self, window, menu):
        self.window = window
        self.insight: InsightWindow | None = None
        self.action = QAction("What does this layer respond to…", window)
        self.action.setShortcut(QKeySequence("Ctrl+Shift+I"))
        self.action.setToolTip("Top patches, feature visualisation, attribution and the deconvnet for the "
                               "selected layer")
        self.action.triggered.connect(self.open)
        menu.addAction(self.action)

    def _image(self):
        w = self.window
        batch = w.state.batch
        if batch is None:
            return None
        item = w.state.batch_item
        item = item if 0 <= item < batch.tensor.shape[0] else 0
        return batch.tensor[item:item + 1]

    def _cifar_path(self):
        source = self.window.state.source
        return source.path if source is not None and source.kind == "cifar" else None

    def open(self) -> InsightWindow:
        w = self.window
        doc = w.document
        layer = doc.stack.layers[doc.selected].name if 0 <= doc.selected < len(doc.stack.layers) else None
        name = doc.path.name if doc.path else "the stack"
        if self.insight is None:
            self.insight = InsightWindow(doc.stack, layer, self._image(), name, w.state.device,
                                         open_input=w.set_source, cifar_path=self._cifar_path(), parent=w)
            # follow the main window: edits (a new snapshot; the cache keys tell what is still valid),
            # the selected layer, and the input once it has run
            doc.changed.connect(lambda _first: self._follow_stack())
            doc.selection_changed.connect(lambda _index: self._follow_stack())
            w.state.last_run_changed.connect(lambda _run: self._follow_input())
        else:
            self.insight.set_stack(doc.stack, layer)
            self.insight.set_image(self._image())
            self.insight.cifar_path = self._cifar_path() or self.insight.cifar_path
        self.insight.show()
        self.insight.raise_()
        return self.insight

    def _selected(self) -> str | None:
        doc = self.window.document
        return doc.stack.layers[doc.selected].name if 0 <= doc.selected < len(doc.stack.layers) else None

    def _follow_stack(self) -> None:
        if self.insight is not None and self.insight.isVisible():
            self.insight.set_stack(self.window.document.stack, self._selected())

    def _follow_input(self) -> None:
        if self.insight is not None and self.insight.isVisible():
            self.insight.set_image(self._image())
            self.insight.cifar_path = self._cifar_path() or self.insight.cifar_path

    def close_all(self) -> None:
        if self.insight is not None:
            self.insight.close()


def add_walkthrough_action(walk_window, menu) -> QAction:
    """The walkthrough's 'Insight' action: the same window for the model, on the stage shown."""
    action = QAction("&Insight: what does this stage respond to…", walk_window)
    action.setShortcut(QKeySequence("Ctrl+Shift+I"))
    action.setStatusTip("Top patches, feature visualisation, attribution (Grad-CAM, ...) and the deconvnet "
                        "for this model")

    opened: list[InsightWindow] = []        # the one insight window of this walkthrough, once opened

    def open_insight() -> InsightWindow | None:
        w = walk_window.walkthrough
        if w is None:
            return None
        stage = walk_window.stage
        layer = stage.name if stage is not None and stage.modules else None
        if not opened:
            insight = InsightWindow.for_walkthrough(w, layer, parent=walk_window)
            opened.append(insight)
            walk_window.closed.connect(insight.close)
        else:
            insight = opened[0]
            insight.set_model(w, layer)
        insight.show()
        insight.raise_()
        return insight

    action.triggered.connect(open_insight)
    walk_window.open_insight = open_insight
    menu.addAction(action)
    return action

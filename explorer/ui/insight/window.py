"""The Insight window: what a channel of the selected layer responds to (top patches over a data
set, the pattern it wants by activation maximisation) and which pixels drove a prediction
(attribution maps, the deconvnet). Everything is computed by explorer.core.insight in the
InsightWorker; this module only turns ready numpy pictures into pixmaps and lays them out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from PySide6.QtCore import QPoint, QRect, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QGridLayout, QHBoxLayout, QLabel, QLineEdit,
                               QProgressBar, QPushButton, QScrollArea, QSlider, QSpinBox, QTabWidget, QVBoxLayout,
                               QWidget)

from explorer.core.stack import Stack
from explorer.ui.insight.worker import InsightWorker
from explorer.ui.qt_signals import qt_signals_blocked

MAX_ROWS = 64           # channel rows drawn at once (a 512-channel layer shows its 64 strongest)
THUMB = 56              # patch thumbnails, pixels
PLACE_BYTES = 64 << 20  # full images kept for "where is this patch" only up to this size


def to_pixmap(array: np.ndarray, side: int | None = None) -> QPixmap:
    """uint8 (H, W) or (H, W, 3) -> QPixmap, enlarged (nearest neighbour: pixels stay visible) so
    its longer side is ``side``."""
    a = np.ascontiguousarray(array if array.ndim == 3 else np.repeat(array[..., None], 3, 2))
    h, w, _ = a.shape
    pm = QPixmap.fromImage(QImage(a.data, w, h, 3 * w, QImage.Format_RGB888).copy())
    if side is not None and max(h, w) != side:
        pm = pm.scaled(side, side, Qt.KeepAspectRatio, Qt.FastTransformation)
    return pm


def _uint8(img: torch.Tensor) -> np.ndarray:
    """[C, H, W] in [0, 1] -> uint8 (H, W, 3)."""
    img = img[:3] if img.shape[0] >= 3 else img[:1].expand(3, *img.shape[1:])
    return img.clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


# ---------------------------------------------------------------- what the jobs return
@dataclass
class PatchRows:
    result: object                       # TopPatches
    cells: dict                          # channel -> list of uint8 (h, w, 3), one per patch
    places: dict                         # image index -> uint8 (H, W, 3), when small enough to keep
    image_sizes: dict                    # image index -> (H, W)
    source: object                       # the DataSource (for click -> input)
    cached: bool = False


@dataclass
class AttributionView:
    results: list                        # AttributionResult per class shown
    heats: list                          # uint8 (H, W, 3) colour-mapped |map| per result
    base: np.ndarray                     # uint8 (H, W, 3) the input as fed


class PatchLabel(QLabel):
    """A thumbnail that reports hover and click."""
    hovered = Signal(int, int)           # channel, rank
    clicked = Signal(int, int)

    def __init__(self, channel: int, rank: int):
        super().__init__()
        self.channel, self.rank = channel, rank
        self.setCursor(Qt.PointingHandCursor)

    def enterEvent(self, event) -> None:
        self.hovered.emit(self.channel, self.rank)
        super().enterEvent(event)

    def mousePressEvent(self, event) -> None:
        self.clicked.emit(self.channel, self.rank)


class InsightWindow(QWidget):
    """``stack``: a snapshot of the stack to look into; ``image``: the current input [1, C, H, W];
    ``open_input(InputSource)`` makes a data-set image the main window's input; ``cifar_path``
    is the CIFAR-10 copy the main window has open, if any."""

    def __init__(self, stack: Stack, layer: str | None = None, image: torch.Tensor | None = None,
                 name: str = "the stack", device: str = "cpu", open_input: Callable | None = None,
                 cifar_path: str | None = None, parent: QWidget | None = None):
        super().__init__(parent, Qt.Window)
        self.setWindowTitle("Insight — what does this channel respond to?")
        self.worker = InsightWorker(self)
        self.open_input = open_input
        self.cifar_path = cifar_path
        self.device = device
        self.name = name
        self._subject_key = None
        self._subject = None                   # touched by the worker thread only
        self._model = None                     # (name, model, weights label) for a walkthrough model
        self._conv_names: set[str] = set()
        self.image_prepared = False            # True: the image is already as the model takes it (walkthrough)
        from explorer.core.insight.top_patches import TopPatchesCache
        self._cache = TopPatchesCache()        # touched by the worker thread only
        self.rows: PatchRows | None = None
        self.attribution: AttributionView | None = None
        self._kind = ""                        # which tab's job is running
        self._build()
        self.set_stack(stack, layer)
        self.set_image(image)
        self.worker.finished.connect(self._finished)
        self.worker.failed.connect(self._failed)
        self.worker.progress.connect(self._progress)
        self.worker.busy_changed.connect(self._busy)

    # ---------------------------------------------------------------- building
    def _build(self) -> None:
        top = QHBoxLayout()
        self.layer_combo = QComboBox()
        self.layer_combo.setToolTip("The layer whose channels are looked at")
        top.addWidget(QLabel("Layer:"))
        top.addWidget(self.layer_combo, 1)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.progress_bar = QProgressBar()
        self.progress_bar.setVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(self.cancel)
        top.addWidget(self.progress_bar)
        top.addWidget(self.cancel_button)
        self.tabs = QTabWidget()
        self.tabs.addTab(self._build_patches(), "Top patches")
        self.tabs.addTab(self._build_vis(), "Feature visualisation")
        self.tabs.addTab(self._build_attribution(), "Attribution")
        self.tabs.addTab(self._build_deconv(), "Deconvnet")
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.status)
        self.resize(1100, 760)

    def _build_patches(self) -> QWidget:
        w = QWidget()
        bar = QHBoxLayout()
        self.data_combo = QComboBox()
        self.data_combo.addItems(["Built-in samples", "CIFAR-10 test split", "CIFAR-10 train split", "Image folder…"])
        self.k_spin = QSpinBox()
        self.k_spin.setRange(1, 32)
        self.k_spin.setValue(9)
        self.patches_button = QPushButton("Find top patches")
        self.patches_button.clicked.connect(self.run_top_patches)
        bar.addWidget(QLabel("Data set:"))
        bar.addWidget(self.data_combo)
        bar.addWidget(QLabel("k:"))
        bar.addWidget(self.k_spin)
        bar.addWidget(self.patches_button)
        bar.addStretch(1)
        self.rows_widget = QWidget()
        self.rows_layout = QGridLayout(self.rows_widget)
        self.rows_layout.setSpacing(3)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.rows_widget)
        self.place_label = QLabel("Hover over a patch to see where it is in its image; click it to make that "
                                  "image the input.")
        self.place_label.setWordWrap(True)
        self.place_label.setAlignment(Qt.AlignTop | Qt.AlignHCenter)
        self.place_label.setFixedWidth(240)
        body = QHBoxLayout()
        body.addWidget(scroll, 1)
        body.addWidget(self.place_label)
        v = QVBoxLayout(w)
        v.addLayout(bar)
        v.addLayout(body, 1)
        return w

    def _build_vis(self) -> QWidget:
        w = QWidget()
        bar = QHBoxLayout()
        self.channels_edit = QLineEdit("0-7")
        self.channels_edit.setToolTip("Channels like 0,1,5-8")
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(1, 4096)
        self.steps_spin.setValue(256)
        self.tv_check = QCheckBox("Smooth (total variation)")
        self.vis_button = QPushButton("Start")
        self.vis_button.clicked.connect(self.run_visualize)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.worker.stop)
        for widget in (QLabel("Channels:"), self.channels_edit, QLabel("Steps:"), self.steps_spin, self.tv_check,
                       self.vis_button, self.stop_button):
            bar.addWidget(widget)
        bar.addStretch(1)
        self.vis_widget = QWidget()
        self.vis_layout = QGridLayout(self.vis_widget)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.vis_widget)
        v = QVBoxLayout(w)
        v.addLayout(bar)
        v.addWidget(scroll, 1)
        self.vis_labels: list[tuple[QLabel, QLabel]] = []
        return w

    def _build_attribution(self) -> QWidget:
        from explorer.core.insight.attribution import METHODS
        w = QWidget()
        form = QFormLayout()
        self.method_combo = QComboBox()
        self.method_combo.addItems(METHODS)
        self.method_combo.setCurrentText("grad-cam")
        self.class_combo = QComboBox()
        self.class_combo.addItem("the predicted class", None)
        self.compare_check = QCheckBox("Beside it: the next class")
        self.opacity = QSlider(Qt.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(60)
        self.opacity.valueChanged.connect(self._draw_attribution)
        self.attr_button = QPushButton("Explain")
        self.attr_button.clicked.connect(self.run_attribution)
        form.addRow("Method:", self.method_combo)
        form.addRow("Class:", self.class_combo)
        form.addRow("", self.compare_check)
        form.addRow("Opacity:", self.opacity)
        form.addRow("", self.attr_button)
        self.top5_label = QLabel()
        self.top5_label.setTextFormat(Qt.RichText)
        form.addRow("Top 5:", self.top5_label)
        self.notice_label = QLabel()
        self.notice_label.setStyleSheet("color: #b36b00; font-weight: bold")
        self.attr_images = QHBoxLayout()
        self.attr_labels = [QLabel(), QLabel()]
        self.attr_captions = [QLabel(), QLabel()]
        for label, caption in zip(self.attr_labels, self.attr_captions):
            label.setAlignment(Qt.AlignCenter)
            col = QVBoxLayout()
            col.addWidget(label, 1)
            col.addWidget(caption, 0, Qt.AlignHCenter)
            self.attr_images.addLayout(col)
        bar = QHBoxLayout()
        self.bar_low, self.bar_high = QLabel("0"), QLabel("max")
        self.color_bar = QLabel()
        self.color_bar.setPixmap(_color_bar_pixmap())
        bar.addStretch(1)
        bar.addWidget(self.bar_low)
        bar.addWidget(self.color_bar)
        bar.addWidget(self.bar_high)
        bar.addStretch(1)
        right = QVBoxLayout()
        right.addWidget(self.notice_label)
        right.addLayout(self.attr_images, 1)
        right.addLayout(bar)
        h = QHBoxLayout(w)
        left = QWidget()
        left.setLayout(form)
        left.setFixedWidth(330)
        h.addWidget(left)
        h.addLayout(right, 1)
        return w

    def _build_deconv(self) -> QWidget:
        w = QWidget()
        bar = QHBoxLayout()
        self.deconv_channel = QSpinBox()
        self.deconv_channel.setRange(0, 4095)
        self.deconv_button = QPushButton("Project back")
        self.deconv_button.clicked.connect(self.run_deconvnet)
        bar.addWidget(QLabel("Channel (its strongest place on the input):"))
        bar.addWidget(self.deconv_channel)
        bar.addWidget(self.deconv_button)
        bar.addStretch(1)
        self.deconv_recon, self.deconv_patch = QLabel(), QLabel()
        self.deconv_text = QLabel("The deconvnet of Zeiler and Fergus runs the layers backwards: MaxUnpool2d puts "
                                  "each value back where its maximum came from (the pool's switches), ReLU keeps "
                                  "the positive part, transposed convolutions with the same weights spread it "
                                  "over the pixels.")
        self.deconv_text.setWordWrap(True)
        pics = QHBoxLayout()
        for title, label in (("Reconstruction", self.deconv_recon), ("Input patch", self.deconv_patch)):
            col = QVBoxLayout()
            col.addWidget(QLabel(title), 0, Qt.AlignHCenter)
            col.addWidget(label, 1, Qt.AlignCenter)
            pics.addLayout(col)
        v = QVBoxLayout(w)
        v.addLayout(bar)
        v.addWidget(self.deconv_text)
        v.addLayout(pics, 1)
        return w

    @classmethod
    def for_walkthrough(cls, walkthrough, layer: str | None = None, parent: QWidget | None = None) -> "InsightWindow":
        """For a walkthrough's model (its weights, its input as the model took it); layers named as its stages."""
        window = cls(Stack(), None, None, walkthrough.model_name, str(walkthrough.device), parent=parent)
        window.set_model(walkthrough, layer)
        return window

    def set_model(self, walkthrough, layer: str | None = None) -> None:
        self._model = (walkthrough.model_name, walkthrough.model, walkthrough.weights)
        self.name = walkthrough.model_name
        stages = [s for s in walkthrough.stages[1:] if s.modules]
        self._conv_names = {s.name for s in stages if s.kind == "conv"}
        self._fill_layers([s.name for s in stages], layer)
        self.image = walkthrough.raw_input.detach().to("cpu")[:1].clone()
        self.image_prepared = True
        self.setWindowTitle(f"Insight — {walkthrough.model_name} ({walkthrough.weights} weights)")

    # ---------------------------------------------------------------- inputs from the main window
    def set_stack(self, stack: Stack, layer: str | None = None) -> None:
        self.stack = stack.copy()
        self._conv_names = {s.name for s in self.stack.layers if s.layer_type.weight_layout == "filters"}
        self._fill_layers([s.name for s in self.stack.layers if s.enabled], layer)

    def _fill_layers(self, names: list[str], layer: str | None) -> None:
        current = layer or self.layer_combo.currentText()
        with qt_signals_blocked(self.layer_combo):
            self.layer_combo.clear()
            self.layer_combo.addItems(names)
            if current in names:
                self.layer_combo.setCurrentText(current)

    def set_image(self, image: torch.Tensor | None) -> None:
        self.image = None if image is None else image.detach().to("cpu")[:1].clone()
        self.image_prepared = False

    @property
    def layer(self) -> str:
        return self.layer_combo.currentText()

    def _get_subject(self):
        """On the worker thread: the subject for the current stack snapshot or model (built once each)."""
        from explorer.core.insight.subject import model_subject, stack_subject
        model, stack = self._model, self.stack
        key = (id(model) if model is not None else id(stack), self.device)
        if self._subject_key != key:
            if model is not None:
                import copy
                name, module, weights = model
                # a copy: the walkthrough keeps using its model on its own thread
                self._subject = model_subject(name, weights, self.device, model=copy.deepcopy(module))
            else:
                self._subject = stack_subject(stack, self.name, self.device)
            self._subject_key = key
        return self._subject

    def _prepare(self, subject, image: torch.Tensor):
        """(raw, model input) for the window's image: a walkthrough's image is already resized and cropped."""
        image = image.to(subject.device())
        if self.image_prepared:
            return image, subject.normalize(image)
        return subject.prepare(image)

    # ---------------------------------------------------------------- jobs
    def _start(self, kind: str, job: Callable, text: str) -> None:
        self._kind = kind
        self.status.setText(text)
        self.worker.submit(job)

    def cancel(self) -> None:
        self.worker.cancel()
        self.status.setText("Cancelled.")

    def _data_source(self):
        """The chosen data set (may ask for a folder); None when the user gave none."""
        from explorer.core.insight.data import CifarSource, FolderSource, SamplesSource
        from explorer.ui import dialogs
        choice = self.data_combo.currentIndex()
        if choice == 0:
            return SamplesSource()
        if choice in (1, 2):
            path = self.cifar_path or dialogs.choose_folder(self, "CIFAR-10 folder (cifar-10-batches-py)", "")
            if not path:
                return None
            self.cifar_path = path
            return CifarSource(path, "test" if choice == 1 else "train")
        path = dialogs.choose_folder(self, "Folder of images", "")
        return FolderSource(path) if path else None

    def run_top_patches(self) -> None:
        from explorer.core.inputs import InputError
        try:
            source = self._data_source()
        except InputError as e:
            self.status.setText(str(e))
            return
        if source is None:
            return
        layer, k = self.layer, self.k_spin.value()

        def job(should_stop, progress):
            from explorer.core.insight.top_patches import cache_key, patch_cell, prepared_image, top_patches
            subject = self._get_subject()
            key = cache_key(subject, layer, source, k)
            result = self._cache.get(key)
            cached = result is not None
            if result is None:
                # batches of about 256 CIFAR images' worth of pixels: Cancel is heard between batches
                _, h, w = subject.input_shape()
                batch = max(1, min(256, 256 * 32 * 32 // (h * w)))
                result = top_patches(subject, layer, source, k, batch, should_stop=should_stop,
                                     progress=lambda done, total: progress((done, total)))
                if result is None:
                    return None
                self._cache.put(key, result)
            images, cells = {}, {}
            for c in result.by_maximum()[:MAX_ROWS]:
                for p in c.patches:
                    if p.image not in images:
                        images[p.image] = prepared_image(subject, source, p.image)
                cells[c.channel] = [_uint8(patch_cell(images[p.image], result, p)) for p in c.patches]
            total = sum(img.numel() for img in images.values())
            places = {i: _uint8(img) for i, img in images.items()} if total < PLACE_BYTES else {}
            sizes = {i: tuple(img.shape[-2:]) for i, img in images.items()}
            return PatchRows(result, cells, places, sizes, source, cached)

        self._start("patches", job, f"Running {source.describe()} through '{layer}'…")

    def run_visualize(self) -> None:
        from explorer.core.insight.feature_vis import parse_channels
        from explorer.core.insight.subject import InsightError
        try:
            channels = parse_channels(self.channels_edit.text())
        except InsightError as e:
            self.status.setText(str(e))
            return
        layer, steps, tv = self.layer, self.steps_spin.value(), 0.05 if self.tv_check.isChecked() else 0.0

        def job(should_stop, progress):
            from explorer.core.insight.feature_vis import visualize
            return visualize(self._get_subject(), layer, channels, steps, tv_weight=tv, should_stop=should_stop,
                             progress=lambda step, total, imgs: progress(
                                 (step, total, [_uint8(i) for i in imgs])))

        self._show_vis_slots(channels)
        self.stop_button.setEnabled(True)
        self._start("vis", job, f"Optimising {len(channels)} image(s) for '{layer}'…")

    def _need_image(self) -> bool:
        if self.image is None:
            self.status.setText("Open an input first (Input menu): attribution and the deconvnet explain one image.")
            return False
        return True

    def run_attribution(self) -> None:
        if not self._need_image():
            return
        method, target, image = self.method_combo.currentText(), self.class_combo.currentData(), self.image
        compare = self.compare_check.isChecked()
        layer = self.layer if method == "grad-cam" and self._is_conv(self.layer) else None

        def job(should_stop, progress):
            from explorer.core.insight.attribution import attribute, heat_rgb
            subject = self._get_subject()
            raw, x = self._prepare(subject, image)
            results = [attribute(subject, raw, x, method, target, layer)]
            if compare:
                others = [i for i, _, _ in results[0].prediction.top5 if i != results[0].target]
                if others:
                    results.append(attribute(subject, raw, x, method, others[0], layer))
            return AttributionView(results, [heat_rgb(r.map) for r in results], _uint8(results[0].raw))

        self._start("attribution", job, f"{method} on the input…")

    def _is_conv(self, name: str) -> bool:
        return name in self._conv_names

    def run_deconvnet(self) -> None:
        if not self._need_image():
            return
        layer, channel, image = self.layer, self.deconv_channel.value(), self.image

        def job(should_stop, progress):
            from explorer.core.insight.deconvnet import deconvnet, to_picture
            subject = self._get_subject()
            raw, x = self._prepare(subject, image)
            r = deconvnet(subject, x, layer, channel)
            t, l, b, rr = r.box
            return r, _uint8(to_picture(r.image)[:, t:b, l:rr]), _uint8(raw[0].cpu()[:, t:b, l:rr])

        self._start("deconv", job, f"Projecting channel {channel} of '{layer}' back to the pixels…")

    # ---------------------------------------------------------------- results (GUI thread)
    def _busy(self, busy: bool) -> None:
        self.progress_bar.setVisible(busy and self._kind == "patches")
        self.cancel_button.setVisible(busy)
        if not busy:
            self.stop_button.setEnabled(False)

    def _progress(self, generation: int, payload) -> None:
        if self._kind == "patches":
            done, total = payload
            self.progress_bar.setRange(0, total)
            self.progress_bar.setValue(done)
        elif self._kind == "vis":
            step, total, images = payload
            self._show_vis_images(images)
            self.status.setText(f"Step {step} of {total}…")

    def _failed(self, generation: int, message: str) -> None:
        self.status.setText(message)

    def _finished(self, generation: int, value) -> None:
        if self._kind == "patches":
            self._show_rows(value)
        elif self._kind == "vis":
            self._show_vis_result(value)
        elif self._kind == "attribution":
            self._show_attribution(value)
        elif self._kind == "deconv":
            self._show_deconv(*value)

    # -- top patches
    def _show_rows(self, rows: PatchRows) -> None:
        self.rows = rows
        while self.rows_layout.count():
            item = self.rows_layout.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        result = rows.result
        for r, c in enumerate(result.by_maximum()[:MAX_ROWS]):
            head = QLabel(f"<b>ch {c.channel}</b><br>max {c.maximum:.3g}" + ("<br><i>dead</i>" if c.dead else ""))
            head.setToolTip("Never active on this data set: no image gives it a value above 0." if c.dead else "")
            if c.dead:
                head.setStyleSheet("color: #999")
            self.rows_layout.addWidget(head, r, 0)
            for j, (p, cell) in enumerate(zip(c.patches, rows.cells.get(c.channel, []))):
                label = PatchLabel(c.channel, j)
                label.setPixmap(to_pixmap(cell, THUMB))
                label.setToolTip(f"image {p.image}" + (f" ({p.label})" if p.label else "") +
                                 f", activation {p.activation:.4g} at ({p.y}, {p.x}), "
                                 f"pixels rows {p.box[0]}–{p.box[2] - 1}, columns {p.box[1]}–{p.box[3] - 1}")
                label.hovered.connect(self._show_place)
                label.clicked.connect(self._use_patch_image)
                self.rows_layout.addWidget(label, r, 1 + j)
        shown = min(MAX_ROWS, len(result.channels))
        dead = len(result.dead_channels())
        self.status.setText(f"Top {result.k} of {result.images} images for the {len(result.channels)} channels of "
                            f"'{result.layer}'" + (" (from the cache)" if rows.cached else f" in {result.seconds:.2f} s")
                            + f"; sorted by maximum{f', showing {shown}' if shown < len(result.channels) else ''}"
                            + (f"; {dead} dead" if dead else "") + ".")

    def _patch(self, channel: int, rank: int):
        return next(c for c in self.rows.result.channels if c.channel == channel).patches[rank]

    def _show_place(self, channel: int, rank: int) -> None:
        p = self._patch(channel, rank)
        h, w = self.rows.image_sizes[p.image]
        base = self.rows.places.get(p.image)
        pm = to_pixmap(base if base is not None else np.full((h, w, 3), 128, np.uint8), 220)
        painter = QPainter(pm)
        sx, sy = pm.width() / w, pm.height() / h
        painter.setPen(QPen(QColor(255, 200, 0), 2))
        t, l, b, r = p.box
        painter.drawRect(QRect(QPoint(round(l * sx), round(t * sy)), QPoint(round(r * sx) - 1, round(b * sy) - 1)))
        painter.end()
        self.place_label.setPixmap(pm)
        self.place_label.setToolTip(f"image {p.image}: the receptive field of ({p.y}, {p.x})")

    def _use_patch_image(self, channel: int, rank: int) -> None:
        p = self._patch(channel, rank)
        self._show_place(channel, rank)
        source = self.rows.source.input_source(p.image)
        if source is not None and self.open_input is not None:
            self.open_input(source)
            self.status.setText(f"Image {p.image} is now the input; its patch is outlined on the right.")

    # -- feature visualisation
    def _show_vis_slots(self, channels: list[int]) -> None:
        while self.vis_layout.count():
            item = self.vis_layout.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.vis_labels = []
        for i, ch in enumerate(channels):
            pic, text = QLabel(), QLabel(f"channel {ch}")
            pic.setFixedSize(160, 160)
            pic.setAlignment(Qt.AlignCenter)
            self.vis_layout.addWidget(pic, (i // 5) * 2, i % 5)
            self.vis_layout.addWidget(text, (i // 5) * 2 + 1, i % 5, Qt.AlignHCenter)
            self.vis_labels.append((pic, text))

    def _show_vis_images(self, images: list[np.ndarray]) -> None:
        for (pic, _), img in zip(self.vis_labels, images):
            pic.setPixmap(to_pixmap(img, 160))

    def _show_vis_result(self, result) -> None:
        self._show_vis_images([_uint8(i) for i in result.images])
        for (_, text), ch, a0, a1 in zip(self.vis_labels, result.channels, result.start_activations,
                                         result.activations):
            text.setText(f"channel {ch}: {a0:.3g} → {a1:.3g}")
        self.status.setText(("Stopped" if result.stopped else "Done") + f" after {result.steps} steps "
                            f"({result.seconds:.1f} s): the mean activation went from the noise's value to the one "
                            "under each image.")

    # -- attribution
    def _show_attribution(self, view: AttributionView) -> None:
        self.attribution = view
        first = view.results[0]
        self.top5_label.setText("<br>".join(f"{p:.1%} &nbsp; {i} {name or ''}" for i, name, p in first.prediction.top5))
        current = self.class_combo.currentData()
        with qt_signals_blocked(self.class_combo):
            self.class_combo.clear()
            self.class_combo.addItem("the predicted class", None)
            for i, name, p in first.prediction.top5:
                self.class_combo.addItem(f"{i} {name or ''} ({p:.1%})", i)
            index = self.class_combo.findData(current)
            self.class_combo.setCurrentIndex(max(0, index))
        self.notice_label.setText(first.notice or "")
        peak = max(float(np.abs(r.map).max()) for r in view.results)
        self.bar_high.setText(f"{peak:.3g}")
        self._draw_attribution()
        where = f" at '{first.layer}'" if first.layer else ""
        self.status.setText(f"{first.method}{where}: brighter pixels pushed the class score more "
                            f"({first.seconds:.2f} s).")

    def _draw_attribution(self) -> None:
        view = self.attribution
        if view is None:
            return
        alpha = self.opacity.value() / 100
        for k, label in enumerate(self.attr_labels):
            if k >= len(view.results):
                label.clear()
                label.setToolTip("")
                self.attr_captions[k].clear()
                continue
            base = to_pixmap(view.base, 320)
            heat = to_pixmap(view.heats[k], 320)
            painter = QPainter(base)
            painter.setOpacity(alpha)           # blending by the painter: nothing recomputed per slider step
            painter.drawPixmap(0, 0, heat)
            painter.end()
            label.setPixmap(base)
            r = view.results[k]
            p = float(r.prediction.probabilities[r.target])
            text = f"class {r.target}" + (f" {r.target_name}" if r.target_name else "") + f" ({p:.1%})"
            label.setToolTip(text)
            self.attr_captions[k].setText(text)

    # -- deconvnet
    def _show_deconv(self, recon, recon_img: np.ndarray, patch_img: np.ndarray) -> None:
        self.deconv_recon.setPixmap(to_pixmap(recon_img, 240))
        self.deconv_patch.setPixmap(to_pixmap(patch_img, 240))
        self.status.setText(f"Channel {recon.channel} of '{recon.layer}' at ({recon.y}, {recon.x}), activation "
                            f"{recon.activation:.4g}, back through {recon.switches_used} pooling switch(es); "
                            f"input pixels {recon.box}.")

    def closeEvent(self, event) -> None:
        self.worker.shutdown()
        super().closeEvent(event)


def _color_bar_pixmap(width: int = 200, height: int = 12) -> QPixmap:
    from explorer.core.colormaps import get_lut
    lut = get_lut("inferno")
    idx = np.linspace(0, 255, width).round().astype(np.int64)
    return to_pixmap(np.repeat(lut[idx][None], height, 0))

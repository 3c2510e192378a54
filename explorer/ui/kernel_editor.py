"""Hand-editing weights: for the selected Conv2d or ConvTranspose2d, one kH×kW kernel of one filter
and one input channel in a grid of cells, its filter's bias beside it, presets, initialisers,
copy and paste as text, and an overview of every kernel of the layer; for a small Linear layer
(up to 64×64), the whole weight matrix and bias.

Every change goes through the document (``edit_state``), so it is undoable and saved with the
stack; keystrokes into one cell are one undo step, each cell its own. Nothing here runs a layer:
the window's background runner re-runs the edited layer and what follows."""

from __future__ import annotations

import secrets

import torch
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (QCheckBox, QComboBox, QGridLayout, QHBoxLayout, QLabel, QPushButton, QScrollArea,
                               QVBoxLayout, QWidget)

from explorer.core.kernels import (INITIALIZERS, MAX_KERNEL, MAX_LINEAR, PRESET_LIST, PRESETS, SCOPES,
                                   KernelError, cached_layer_parameters, format_kernel_text, initialized_state, kernel_view,
                                   layer_parameters,
                                   normalized_to_sum_one, preset_kernel, preset_problem, put_kernel, zero_mean)
from explorer.core.devices import is_out_of_memory
from explorer.core.layers import LAYER_TYPES, LayerSpec
from explorer.ui.jobs import JobError, JobQueue
from explorer.ui.deferred import behind_another_tab
from explorer.ui.document import StackDocument
from explorer.ui.kernel_grid import NumberGrid
from explorer.ui.qt_signals import qt_signals_blocked
from explorer.ui.weight_overview import WeightOverview
from explorer.ui.spin_boxes import CheckedSpinBox

__all__ = ["KernelEditor", "PRESETS", "preset_kernel", "editable"]

EDITABLE_TYPES = tuple(t.name for t in LAYER_TYPES.values() if t.weight_layout)   # kernels or a matrix
OVERVIEW_MAX = 64
PRESET_HINT = "Presets: point at one in the list to read what it finds."


def editable(spec: LayerSpec | None) -> str | None:
    """None if the editor can edit this layer, else the sentence that says why not."""
    if spec is None:
        return "Select a Conv2d, ConvTranspose2d or Linear layer to edit its weights by hand."
    if spec.type not in EDITABLE_TYPES:
        return (f"The kernel editor works on Conv2d, ConvTranspose2d and Linear layers; "
                f"'{spec.name}' is a {spec.type}, which has no kernels.")
    try:
        args = spec.full_args()
    except ValueError as e:
        return f"Fix the arguments of '{spec.name}' first: {e}"
    if spec.layer_type.weight_layout == "matrix":
        if args["in_features"] > MAX_LINEAR or args["out_features"] > MAX_LINEAR:
            return (f"The grid shows Linear layers up to {MAX_LINEAR}×{MAX_LINEAR}; '{spec.name}' is "
                    f"{args['out_features']}×{args['in_features']}.")
        return None
    if spec.layer_type.weight_layout == "transposed" and args.get("groups", 1) > 1:
        # Its weight is [in, out/groups, kH, kW]: filters and inputs pair up per group, which the
        # filter/input pickers do not model; editing would write the wrong kernels.
        return (f"The kernel editor does not edit grouped ConvTranspose2d layers ('{spec.name}' has "
                f"groups={args['groups']}); set groups to 1 to edit its kernels here.")
    k = args["kernel_size"]
    kh, kw = tuple(k) if isinstance(k, (tuple, list)) else (k, k)
    if kh > MAX_KERNEL or kw > MAX_KERNEL:
        return f"The kernel editor shows kernels up to {MAX_KERNEL}×{MAX_KERNEL}; this one is {kh}×{kw}."
    return None


def _small_label(text: str, parent: QWidget) -> QLabel:
    label = QLabel(text, parent)
    label.setWordWrap(True)
    font = label.font()
    font.setPointSizeF(font.pointSizeF() * 0.92)
    label.setFont(font)
    return label


class KernelEditor(QWidget):
    filter_chosen = Signal(int)        # the user picked another filter: its feature map can follow

    def __init__(self, document: StackDocument, parent: QWidget | None = None):
        super().__init__(parent)
        self.document = document
        self._weight: torch.Tensor | None = None      # the layer's full weight (CPU, a private copy)
        self._bias: torch.Tensor | None = None
        self._spec: LayerSpec | None = None
        self._overview_stale = False
        self._stale = False              # an edit arrived while a hidden tab: refreshed when shown
        self._presets_for: tuple[int, int] | None = None   # kernel size the preset list was checked for
        # The seed's values of a layer are built on a background thread (a big layer allocates and
        # fills for seconds); the editor shows them when they arrive.
        self.loader = JobQueue("kernel-parameters", self, newest_only=False)
        self.loader.finished.connect(lambda token, params: self._parameters_ready(token, params, None))
        self.loader.failed.connect(self._parameters_failed)
        self._loading: int | None = None

        self.hint = QLabel(self)
        self.hint.setObjectName("kernelHint")
        self.hint.setWordWrap(True)
        self.hint.setEnabled(False)
        self.hint.setMargin(8)

        # --- which kernel
        self.out_spin = CheckedSpinBox(self, label="Filter")
        self.out_spin.setObjectName("kernelOutChannel")
        self.out_spin.setToolTip("The filter: which output channel (feature map) this kernel produces.")
        self.in_spin = CheckedSpinBox(self, label="Input channel")
        self.in_spin.setObjectName("kernelInChannel")
        self.in_spin.setToolTip("Which input channel the kernel looks at (0, 1, 2 = R, G, B for an RGB input).")
        self.all_inputs = QCheckBox("same kernel on every input channel", self)
        self.all_inputs.setObjectName("kernelAllInputs")
        self.all_inputs.setToolTip("Typing, presets 'this kernel', normalising and pasting write the kernel to every "
                                   "input channel of this filter (e.g. R, G and B alike).")
        self.where = QLabel(self)
        self.where.setObjectName("kernelWhere")
        self.where.setWordWrap(True)

        # --- the cells
        self.table = NumberGrid(self)
        self.table.setObjectName("kernelTable")
        self.bias_grid = NumberGrid(self, cell_width=64)
        self.bias_grid.setObjectName("kernelBias")
        self.bias_grid.verticalHeader().hide()       # its rows line up with the weight rows beside it
        self.bias_grid.setToolTip("The bias added to every output value of this filter. Type, roll the wheel or paste.")
        self.no_bias = _small_label("no bias\n(bias=False)", self)
        self.sums = _small_label("", self)
        self.sums.setObjectName("kernelSums")

        # --- presets and tools
        self.preset = QComboBox(self)
        self.preset.setObjectName("kernelPreset")
        self.preset.addItem("Preset…")
        for p in PRESET_LIST:
            self.preset.addItem(p.name)
            self.preset.setItemData(self.preset.count() - 1, p.explanation, Qt.ItemDataRole.ToolTipRole)
        self.preset.setToolTip("Put a classic kernel here: an identity, a blur, an edge detector, ...")
        self.scope = QComboBox(self)
        self.scope.setObjectName("kernelScope")
        for key, text in SCOPES.items():
            self.scope.addItem(text, key)
        self.scope.setToolTip("Where a preset goes. 'Split' divides it by the number of input channels, so an input "
                              "whose channels are all equal (a gray image) keeps its brightness.")
        for combo in (self.preset, self.scope):
            # Long entries must not widen the dock: the closed combo shows what fits, the list all of it.
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(10)
        self.preset_help = _small_label(PRESET_HINT, self)
        self.preset_help.setObjectName("kernelPresetHelp")
        self.normalize_button = QPushButton("Sum to 1", self)
        self.normalize_button.setObjectName("kernelNormalize")
        self.normalize_button.setToolTip("Scale this kernel so its values add up to 1 (a blur then keeps the brightness).")
        self.zero_mean_button = QPushButton("Zero-mean", self)
        self.zero_mean_button.setObjectName("kernelZeroMean")
        self.zero_mean_button.setToolTip("Subtract the average, so flat areas give 0 and only changes respond.")
        self.copy_button = QPushButton("Copy", self)
        self.copy_button.setObjectName("kernelCopy")
        self.copy_button.setToolTip("Copy this kernel as text, e.g. [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]].")
        self.paste_button = QPushButton("Paste", self)
        self.paste_button.setObjectName("kernelPaste")
        self.paste_button.setToolTip("Paste numbers: a nested list, torch.tensor([...]) or rows of numbers. A block "
                                     "smaller than the kernel goes to the selected cell.")
        self.init_combo = QComboBox(self)
        self.init_combo.setObjectName("kernelInit")
        self.init_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.init_combo.setMinimumContentsLength(12)
        for key, text in INITIALIZERS.items():
            self.init_combo.addItem(text, key)
        self.init_button = QPushButton("Initialise layer", self)
        self.init_button.setObjectName("kernelInitApply")
        self.init_button.setToolTip("Replace every weight and bias of this layer with the chosen initialisation.")

        self.error = QLabel(self)
        self.error.setObjectName("kernelError")
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #c0271f;")
        self.error.hide()

        self.overview_title = _small_label("All kernels (filters down, input channels across): click one to edit it.", self)
        self.overview = WeightOverview(self)

        # --- layout
        pickers = QGridLayout()
        pickers.setHorizontalSpacing(6)
        self.out_label = QLabel("filter", self)
        self.in_label = QLabel("input channel", self)
        pickers.addWidget(self.out_label, 0, 0)
        pickers.addWidget(self.out_spin, 0, 1)
        pickers.addWidget(self.in_label, 0, 2)
        pickers.addWidget(self.in_spin, 0, 3)
        pickers.setColumnStretch(4, 1)
        pickers.addWidget(self.all_inputs, 1, 0, 1, 5)

        cells = QHBoxLayout()
        cells.setSpacing(8)
        cells.addWidget(self.table, 1, Qt.AlignmentFlag.AlignTop)
        bias_box = QVBoxLayout()
        bias_box.setSpacing(2)
        bias_box.addWidget(self.bias_grid)
        bias_box.addWidget(self.no_bias)
        bias_box.addStretch(1)
        cells.addLayout(bias_box)
        cells.addStretch(0)       # the table (stretch 1) takes the width first, up to what its cells need

        preset_row = QHBoxLayout()
        preset_row.addWidget(self.preset, 1)
        preset_row.addWidget(QLabel("to", self))
        preset_row.addWidget(self.scope, 1)
        tools = QHBoxLayout()
        for b in (self.normalize_button, self.zero_mean_button, self.copy_button, self.paste_button):
            tools.addWidget(b)
        tools.addStretch(1)
        init_row = QHBoxLayout()
        init_row.addWidget(self.init_combo, 1)
        init_row.addWidget(self.init_button)

        self.kernel_tools = QWidget(self)     # hidden for Linear layers
        kt = QVBoxLayout(self.kernel_tools)
        kt.setContentsMargins(0, 0, 0, 0)
        kt.setSpacing(4)
        kt.addLayout(preset_row)
        kt.addWidget(self.preset_help)
        kt.addLayout(tools)

        self.body = QWidget(self)
        body = QVBoxLayout(self.body)
        body.setContentsMargins(4, 4, 4, 4)
        body.setSpacing(5)
        body.addLayout(pickers)
        body.addWidget(self.where)
        body.addLayout(cells)
        body.addWidget(self.sums)
        body.addWidget(self.error)
        body.addWidget(self.kernel_tools)
        body.addLayout(init_row)
        body.addWidget(self.overview_title)
        body.addWidget(self.overview, 1)
        body.addStretch(0)        # takes the slack when the overview is hidden (Linear layers)

        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)   # sentences wrap instead
        scroll.setWidget(self.body)
        self.scroll = scroll
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.hint)
        layout.addWidget(scroll, 1)

        self.out_spin.valueChanged.connect(self._show_kernel)
        self.out_spin.valueChanged.connect(lambda o: self._spec is not None and not self.is_linear
                                           and self.filter_chosen.emit(o))
        self.in_spin.valueChanged.connect(self._show_kernel)
        self.table.cell_edited.connect(self._cell_edited)
        self.table.block_pasted.connect(self._block_pasted)
        self.table.problem.connect(self.show_error)
        self.bias_grid.cell_edited.connect(self._bias_edited)
        self.bias_grid.block_pasted.connect(self._bias_pasted)
        self.bias_grid.problem.connect(self.show_error)
        self.preset.activated.connect(self._preset_chosen)
        self.preset.highlighted.connect(self._preset_highlighted)
        self.normalize_button.clicked.connect(lambda: self._transform(normalized_to_sum_one, "Normalise"))
        self.zero_mean_button.clicked.connect(lambda: self._transform(zero_mean, "Zero-mean"))
        self.copy_button.clicked.connect(self.copy_kernel)
        self.paste_button.clicked.connect(lambda: self.paste_kernel(QGuiApplication.clipboard().text()))
        self.init_button.clicked.connect(lambda: self.initialize(self.init_combo.currentData()))
        self.overview.kernel_clicked.connect(self.select_kernel)
        document.changed.connect(self.refresh)
        document.selection_changed.connect(self.refresh)
        self.refresh()

    # ------------------------------------------------------------ reading the document
    def spec(self) -> LayerSpec | None:
        i = self.document.selected
        return self.document.stack.layers[i] if 0 <= i < len(self.document.stack.layers) else None

    @property
    def is_linear(self) -> bool:
        return self._spec is not None and self._spec.layer_type.weight_layout == "matrix"

    def kernels(self) -> torch.Tensor:
        """The weight as [filter, input channel, kH, kW]."""
        if self.is_linear:
            return self._weight[:, :, None, None]
        return kernel_view(self._weight, self._spec.type)

    def current_kernel(self) -> torch.Tensor:
        if self.is_linear:
            return self._weight.clone()
        return self.kernels()[self.out_spin.value(), self.in_spin.value()].clone()

    def refresh(self, *_) -> None:
        spec = self.spec()
        why = editable(spec)
        self.hint.setText(why or "")
        self.hint.setVisible(why is not None)
        self.scroll.setVisible(why is None)
        self.body.setVisible(why is None)
        if why is not None:
            self._weight, self._bias, self._spec = None, None, None
            self._stale = False
            return
        if behind_another_tab(self) and self._weight is not None:
            # A tab not in front (the Arguments tab is): building and drawing the weights on every edit
            # cost the edit ~5 ms here and a second module build on the loader's thread. Done when
            # shown; the layout stays as it was, so the window's docks keep their sizes.
            self._stale = True
            return
        self._stale = False
        changed_layer = self._spec is None or self._spec.name != spec.name or self._spec.type != spec.type
        params = cached_layer_parameters(spec, self.document.stack.seed)
        if params is None:
            self._weight, self._bias, self._spec = None, None, None
            wanted, seed = spec.copy(), self.document.stack.seed        # plain data: the job holds nothing of Qt
            self._loading = self.loader.submit(lambda context: layer_parameters(wanted, seed))
            self.hint.setText(f"Preparing the weights of '{spec.name}'…")
            self.hint.setVisible(True)
            self.scroll.setVisible(False)
            self.body.setVisible(False)
            return
        self._loading = None
        self._spec = spec
        # The document's tensors are never changed in place (edits make new ones): no copy needed.
        self._weight = params["weight"].detach().to("cpu", torch.float32)
        bias = params.get("bias")
        self._bias = bias.detach().to("cpu", torch.float32) if bias is not None else None
        linear = spec.layer_type.weight_layout == "matrix"
        for w in (self.out_label, self.out_spin, self.in_label, self.in_spin, self.all_inputs, self.kernel_tools,
                  self.overview_title, self.overview):
            w.setVisible(not linear)
        if not linear:
            filters, inputs = self.kernels().shape[:2]
            with qt_signals_blocked(self.out_spin, self.in_spin):
                self.out_spin.setRange(0, filters - 1)
                self.in_spin.setRange(0, inputs - 1)
            groups = spec.value("groups")
            self.in_label.setText("input channel" + (" (in its group)" if groups > 1 else ""))
        if changed_layer:
            self.error.hide()
        self._show_kernel()

    def _parameters_failed(self, token: int, failure: JobError) -> None:
        import logging
        logging.getLogger("explorer").info("Building a layer's weights failed\n%s", failure.details)
        self._parameters_ready(token, None, failure.error)

    def _parameters_ready(self, token: int, _params, error) -> None:
        if token != self._loading:
            return                      # another layer (or another version of it) is selected now
        self._loading = None
        if error is None:
            self.refresh()              # layer_parameters has cached them: shown without building
            return
        spec = self.spec()
        name = spec.name if spec is not None else "this layer"
        if is_out_of_memory(error) or isinstance(error, MemoryError):
            text = f"The weights of '{name}' do not fit in memory, so they cannot be shown or edited."
        else:
            text = f"Cannot build the weights of '{name}': {error}"
        self.hint.setText(text)

    @property
    def loading(self) -> bool:
        return self._loading is not None

    def wait_until_ready(self, timeout_ms: int = 30_000) -> bool:
        """For tests and benchmarks: the selected layer's weights are shown (or their problem)."""
        self.loader.wait_until_idle(timeout_ms)
        return not self.loading

    def _show_kernel(self) -> None:
        if self._weight is None:
            return
        spec = self._spec
        # One colour scale for weights and bias, so their tints compare.
        peak = max(float(self._weight.abs().max()), float(self._bias.abs().max()) if self._bias is not None else 0.0) or 1.0
        if self.is_linear:
            out_f, in_f = self._weight.shape
            self.table.set_values(self._weight.numpy(), peak=peak, row_labels=[f"out {r}" for r in range(out_f)],
                                  col_labels=[f"in {c}" for c in range(in_f)])
            self.where.setText(f"{spec.name}.weight [{out_f} outputs × {in_f} inputs]: output r = Σ weight[r, c] · input c + bias[r]")
            if self._bias is not None:
                self.bias_grid.set_values(self._bias.numpy()[:, None], peak=peak, col_labels=["bias"])
            self.sums.setText(f"Colours: blue −{peak:.3g} … white 0 … red +{peak:.3g} (the largest weight or bias).")
        else:
            o, i = self.out_spin.value(), self.in_spin.value()
            kernel = self.kernels()[o, i]
            self.table.set_values(kernel.numpy(), peak=peak)
            kh, kw = kernel.shape
            index = f"weight[{i}, {o}]" if spec.layer_type.weight_layout == "transposed" else f"weight[{o}, {i}]"
            self.where.setText(f"{spec.name}.{index}: filter {o}, input channel {i}, {kh}×{kw}")
            if self._bias is not None:
                self.bias_grid.set_values(self._bias.numpy()[o:o + 1, None], peak=peak, row_labels=[""],
                                          col_labels=[f"bias[{o}]"])
            self._update_overview()
            self._update_preset_availability(kh, kw)
            k = kernel.double()
            self.sums.setText(f"sum {float(k.sum()):.4g} · mean {float(k.mean()):.4g} · "
                              f"colours: blue −{peak:.3g} … white 0 … red +{peak:.3g}")
        has_bias = self._bias is not None
        self.bias_grid.setVisible(has_bias)
        self.no_bias.setVisible(not has_bias)
        self._fit_tables()

    def _update_overview(self) -> None:
        # The mosaic of a big layer costs milliseconds per keystroke: draw it only when it is seen,
        # and at most OVERVIEW_MAX filters by OVERVIEW_MAX input channels.
        if self._weight is None or self.is_linear or not self.overview.isVisible():
            self._overview_stale = True
            return
        self._overview_stale = False
        kernels = self.kernels()
        filters, inputs = kernels.shape[:2]
        shown = kernels[:OVERVIEW_MAX, :OVERVIEW_MAX]
        o, i = self.out_spin.value(), self.in_spin.value()
        self.overview.set_kernels(shown, (o, i))
        self.overview.frame.setVisible(o < shown.shape[0] and i < shown.shape[1])
        more = "" if (filters, inputs) == tuple(shown.shape[:2]) else \
            f" Showing the first {shown.shape[0]} of {filters} filters and {shown.shape[1]} of {inputs} input channels."
        self.overview_title.setText(f"All {filters}×{inputs} kernels (filters down, input channels across): "
                                    f"click one to edit it.{more}")

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._stale:
            self.refresh()
        if self._overview_stale:
            self._update_overview()

    def _fit_tables(self) -> None:
        # As big as the cells need (up to 12 x 12 cells), narrower with scroll bars in a narrow dock.
        w, h = self.table.size_for(12, 12)
        self.table.setMaximumWidth(w)
        self.table.setMinimumWidth(min(w, 160))
        self.table.setFixedHeight(h)
        bw, bh = self.bias_grid.size_for(12, 1)
        self.bias_grid.setFixedSize(bw, bh)

    def _update_preset_availability(self, kh: int, kw: int) -> None:
        if self._presets_for == (kh, kw):
            return          # touching 15 items on every keystroke repaints the combo for nothing
        self._presets_for = (kh, kw)
        model = self.preset.model()
        for row in range(1, self.preset.count()):
            item = model.item(row)
            why = preset_problem(self.preset.itemText(row), kh, kw)
            item.setEnabled(why is None)
            item.setToolTip(why or PRESETS[self.preset.itemText(row)].explanation)

    # ------------------------------------------------------------ feedback
    def show_error(self, text: str) -> None:
        self.error.setText(text)
        self.error.show()

    def _ok(self) -> None:
        self.error.hide()

    # ------------------------------------------------------------ edits
    def follow_channel(self, channel: int) -> None:
        """The feature view shows another channel: edit the filter that makes it."""
        if self._weight is None or self.is_linear or channel == self.out_spin.value():
            return
        if 0 <= channel <= self.out_spin.maximum():
            with qt_signals_blocked(self.out_spin):
                self.out_spin.setValue(channel)
            self._show_kernel()

    def select_kernel(self, filter_index: int, in_channel: int) -> None:
        with qt_signals_blocked(self.out_spin, self.in_spin):
            self.out_spin.setValue(filter_index)
            self.in_spin.setValue(in_channel)
        self._show_kernel()
        self.filter_chosen.emit(filter_index)

    def _write_kernel(self, kernel: torch.Tensor, scope: str, text: str, merge_key: tuple | None = None) -> None:
        if self.all_inputs.isChecked() and scope == "kernel":
            scope = "all_inputs"
        weight = put_kernel(self._weight, self._spec.type, kernel, scope, self.out_spin.value(), self.in_spin.value())
        self._ok()
        self.document.edit_state(self.document.selected, {"weight": weight}, text, merge_key)

    def _cell_edited(self, row: int, col: int, value: float) -> None:
        if self._weight is None:
            return
        index = self.document.selected
        if self.is_linear:
            weight = self._weight.clone()
            weight[row, col] = value
            self._ok()
            self.document.edit_state(index, {"weight": weight}, f"Edit {self._spec.name}.weight[{row}, {col}]",
                                     ("cell", index, "weight", row, col))
            return
        kernel = self.current_kernel()
        kernel[row, col] = value
        o, i = self.out_spin.value(), self.in_spin.value()
        self._write_kernel(kernel, "kernel", f"Edit {self._spec.name} kernel {o}/{i} cell ({row}, {col})",
                           ("cell", index, o, i, row, col, self.all_inputs.isChecked()))

    def _block_pasted(self, top: int, left: int, block: torch.Tensor) -> None:
        if self._weight is None:
            return
        kernel = self.current_kernel()
        kernel[top:top + block.shape[0], left:left + block.shape[1]] = block
        if self.is_linear:
            self._ok()
            self.document.edit_state(self.document.selected, {"weight": kernel}, f"Paste into {self._spec.name}.weight")
        else:
            self._write_kernel(kernel, "kernel", f"Paste into {self._spec.name} kernel")

    def _bias_edited(self, row: int, _col: int, value: float) -> None:
        if self._bias is None:
            return
        index = self.document.selected
        which = row if self.is_linear else self.out_spin.value()
        bias = self._bias.clone()
        bias[which] = value
        self._ok()
        self.document.edit_state(index, {"bias": bias}, f"Edit {self._spec.name}.bias[{which}]",
                                 ("cell", index, "bias", which))

    def _bias_pasted(self, top: int, _left: int, block: torch.Tensor) -> None:
        bias = self._bias.clone()
        values = block.reshape(-1)
        first = top if self.is_linear else self.out_spin.value()
        bias[first:first + len(values)] = values
        self._ok()
        self.document.edit_state(self.document.selected, {"bias": bias}, f"Paste into {self._spec.name}.bias")

    def _preset_highlighted(self, index: int) -> None:
        if index > 0:
            self.preset_help.setText(f"{self.preset.itemText(index)}: {PRESETS[self.preset.itemText(index)].explanation}")

    def _preset_chosen(self, index: int) -> None:
        if index <= 0 or self._weight is None:
            return
        name = self.preset.itemText(index)
        with qt_signals_blocked(self.preset):
            self.preset.setCurrentIndex(0)
        self.apply_preset(name, self.scope.currentData())

    def apply_preset(self, name: str, scope: str | None = None) -> bool:
        """Puts the preset into ``scope`` ('kernel', 'filter' or 'layer'; default: the scope chosen).
        Returns False (with the reason shown) when the preset makes no sense for this kernel size."""
        if self._weight is None or self.is_linear:
            return False
        scope = scope or self.scope.currentData()
        kh, kw = self.kernels().shape[2:]
        try:
            kernel = preset_kernel(name, kh, kw)
        except KernelError as e:
            self.show_error(str(e))
            return False
        self.preset_help.setText(f"{name}: {PRESETS[name].explanation}")
        self._write_kernel(kernel, scope, f"{name} on {self._spec.name} ({SCOPES[scope]})")
        return True

    def _transform(self, fn, verb: str) -> None:
        if self._weight is None or self.is_linear:
            return
        try:
            kernel = fn(self.current_kernel().double()).float()
        except KernelError as e:
            self.show_error(str(e))
            return
        self._write_kernel(kernel, "kernel", f"{verb} {self._spec.name} kernel")

    def kernel_text(self) -> str:
        return format_kernel_text(self.current_kernel())

    def copy_kernel(self) -> None:
        if self._weight is not None:
            QGuiApplication.clipboard().setText(self.kernel_text())

    def paste_kernel(self, text: str) -> None:
        """Pasted text replaces the kernel when it has the kernel's size, else goes to the selected cell."""
        if self._weight is not None:
            self.table.paste_text(text)

    def initialize(self, how: str) -> None:
        if self._weight is None:
            return
        try:
            state = initialized_state(self._spec, how, self.document.stack.seed, secrets.randbelow(2 ** 31))
        except KernelError as e:
            self.show_error(str(e))
            return
        self._ok()
        self.document.edit_state(self.document.selected, state, f"Initialise {self._spec.name}: {INITIALIZERS[how]}")

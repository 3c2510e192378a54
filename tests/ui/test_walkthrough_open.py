"""Opening and closing a walkthrough keeps the GUI thread free (issue #9): the constructor builds no
plot (they are built one per event-loop turn afterwards, or when first used), and no torch operation
on the GUI thread computes or copies tensor data while the window opens, draws its first stage and
closes: the pictures, statistics and the top-5 come ready from the job. Timings are in
tests/benchmarks/bench_walkthrough.py (--gui-only); nothing here is timed."""

from __future__ import annotations

import threading

import pyqtgraph as pg
import torch
from PySide6.QtCore import QSettings, QStandardPaths
from torch.overrides import TorchFunctionMode, resolve_name
from torch.utils._pytree import tree_leaves

from explorer.core.input_source import InputSource
from explorer.ui.app import configure_pyqtgraph
from explorer.ui.walkthrough.window import WalkthroughWindow

# Tensor methods that read metadata only: their cost does not grow with the tensor.
METADATA = {"dim", "numel", "size", "stride", "element_size", "is_contiguous", "data_ptr", "storage_offset",
            "__len__", "shape.__get__", "dtype.__get__", "device.__get__", "_version.__get__",
            "is_cuda.__get__", "requires_grad.__get__", "ndim.__get__", "grad_fn.__get__"}


class TensorWork(TorchFunctionMode):
    """Records the torch operations of the thread that enters it (torch function modes are per
    thread) that compute or copy data: a result in new memory, or a number read from the data.
    Views (indexing, detach, .to() to where it already is, .numpy() on the CPU) and metadata are free."""

    def __init__(self):
        super().__init__()
        self.thread = threading.get_ident()
        self.work: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = resolve_name(func) or repr(func)
        short = name.removeprefix("torch.Tensor.").removeprefix("torch.")
        if short in METADATA:
            return out
        inputs = [t for t in tree_leaves((args, kwargs or {})) if isinstance(t, torch.Tensor)]
        storages = {t.untyped_storage().data_ptr() for t in inputs if t.numel()}
        results = [out] if not isinstance(out, (tuple, list)) else list(out)
        for result in results:
            if isinstance(result, torch.Tensor):
                if result.numel() and result.untyped_storage().data_ptr() not in storages:
                    self.work.append(f"{name} -> {tuple(result.shape)}")
            elif short == "numpy" and all(t.device.type == "cpu" for t in inputs):
                continue                                  # a view of the same memory
            elif result is not None:
                self.work.append(f"{name} -> {type(result).__name__}")
        return out


def _settings(tmp_path) -> QSettings:
    QStandardPaths.setTestModeEnabled(True)
    configure_pyqtgraph()
    return QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)


def test_the_recorder_sees_work_and_lets_views_and_metadata_through():
    x = torch.rand(2, 3, 8, 8)
    with TensorWork() as mode:
        x[0, 1].detach().to("cpu").numpy()
        _ = x.shape, x.dim(), x.numel(), x.dtype
    assert mode.work == []
    with TensorWork() as mode:
        float(x.max())
        x + 1
    assert [w.split(" ->")[0] for w in mode.work] == ["torch.Tensor.max", "torch.Tensor.__float__",
                                                      "torch.Tensor.add"]


def test_opening_a_walkthrough_builds_its_plots_after_the_constructor_and_computes_nothing_on_the_gui_thread(
        qtbot, tmp_path):
    with TensorWork() as mode:
        window = WalkthroughWindow("lenet", source=InputSource.sample("cat"), device="cpu", weights="random",
                                   settings=_settings(tmp_path))
        # The constructor returns with no pyqtgraph view built: they cost tens of ms each.
        assert window.findChildren(pg.GraphicsView) == []
        window.show()
        assert window.wait_until_idle(120_000) and window.walkthrough is not None
    # Built by the idle builder: the two input views, the grid, the channel view, the statistics and
    # the bar chart (the top-5 chart only with real weights); the first stage (the input) is drawn
    # from the job's pictures.
    assert len(window.findChildren(pg.GraphicsView)) == 6
    assert window.view_stack.currentWidget() is window.feature_view
    assert window.feature_view.result.output is window.walkthrough.outputs[0]
    assert window.raw_view.image_shape == (32, 32)
    assert mode.work == [], mode.work

    window.go_to(window.stage_count - 1)          # the last stage: a vector, through the bar chart
    assert window.wait_until_idle(60_000)
    assert window.feature_view.vector_view.isVisible()

    with TensorWork() as mode:
        window.close()
        qtbot.wait(50)
    assert mode.work == [], mode.work


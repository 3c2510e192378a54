"""``feature-map-explorer --self-test [--screenshot PATH]``: is this installation whole?

Run by every bundle after it is built (CI, packaging/build_linux.sh's users) and by people whose
window does not open. Each check prints one line with its time; the last line is
``self-test passed (N checks) in S s`` (exit 0) or ``self-test failed: ...`` (exit 1). A failing
check's line is its one-sentence reason; the other checks still run, so one report shows all.

The window check uses the real platform plugin (whatever QT_QPA_PLATFORM or the desktop says), so
it fails where a person's window would; it never touches the user's settings or autosave
(QStandardPaths test mode).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Callable


class CheckFailed(Exception):
    """A check's one-sentence reason."""


def check_resources() -> str:
    from explorer.core.examples import examples
    from explorer.core.inputs import list_samples
    from explorer.core.resources import resource_path, resources_dir

    where = resources_dir()
    icon = resource_path("icons", "feature-map-explorer-256.png")
    if not icon.is_file():
        raise CheckFailed(f"the application icon is missing from {where / 'icons'}")
    missing = [e.file for e in examples() if not e.path.is_file()]
    if missing:
        raise CheckFailed(f"example stacks missing from {where / 'examples'}: {', '.join(missing)}")
    return f"{len(examples())} examples, {len(list_samples())} samples, icons in {where}"


def check_examples(device: str) -> str:
    from explorer.core.engine import run_stack
    from explorer.core.examples import examples, load_example
    from explorer.core.input_source import InputSource, load_input

    ran = 0
    for example in examples():
        stack = load_example(example.name)
        batch = load_input(InputSource.sample(example.sample), stack.input)
        result = run_stack(stack, batch.tensor, device)
        if not result.ok:
            raise CheckFailed(f"example '{example.name}' failed on sample '{example.sample}': {result.error}")
        ran += len(result.layers)
    return f"{len(examples())} examples, {ran} layers on {device}"


def check_shapes() -> str:
    from explorer.core.examples import load_example
    from explorer.core.shapes import infer_shapes, total_params

    rows = infer_shapes(load_example("lenet"), (1, 1, 32, 32))
    errors = [r.error for r in rows if r.error]
    if errors:
        raise CheckFailed(f"shape inference of LeNet failed: {errors[0]}")
    final = rows[-1].output_shape
    if tuple(final) != (1, 10):
        raise CheckFailed(f"LeNet's output shape came out as {list(final)}, not [1, 10]")
    return f"LeNet {len(rows)} layers -> {list(final)}, {total_params(rows):,} parameters"


def check_nms() -> str:
    """torchvision's compiled operators are loaded from a separate library (``_C_stable``) that a
    bundle can silently lose; nms fails then with 'operator torchvision::nms does not exist'."""
    import torch

    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    try:
        import torchvision     # without the library, importing torchvision already fails with the same error
        keep = torchvision.ops.nms(boxes, scores, 0.5).tolist()
    except RuntimeError as e:
        raise CheckFailed(f"torchvision's compiled operators are missing ({str(e).splitlines()[0]})") from None
    if keep != [0, 2]:
        raise CheckFailed(f"torchvision.ops.nms kept boxes {keep}, not [0, 2]")
    return f"torchvision {torchvision.__version__} kept {keep}"


def check_walkthrough(name: str, device: str) -> str:
    from explorer.core.input_source import InputSource, load_input
    from explorer.core.model_zoo import build_model
    from explorer.core.stack import InputSpec
    from explorer.core.walkthrough import capture

    image = load_input(InputSource.sample("cat"), InputSpec(channels=3)).tensor
    walk = capture(name, build_model(name), image, device)
    last = walk.stages[-1]
    return f"{len(walk.stages)} stages, {walk.total_params:,} parameters, last {last.shape_nchw()}"


def check_window(screenshot: Path | None, device: str) -> str:
    from explorer.platform_check import check_gui_platform

    problem = check_gui_platform()
    if problem is not None:
        raise CheckFailed(problem.message)
    from PySide6.QtCore import QSettings, QStandardPaths
    from explorer.ui.app import make_application
    from explorer.ui.main_window import MainWindow

    QStandardPaths.setTestModeEnabled(True)     # no real settings, log or autosave are touched
    app = make_application()
    with tempfile.TemporaryDirectory() as folder:
        settings = QSettings(str(Path(folder) / "settings.ini"), QSettings.IniFormat)
        window = MainWindow(settings=settings, device=device)
        try:
            window.resize(1280, 800)
            window.show()
            if not window.runner.wait_until_idle(60_000):
                raise CheckFailed("the window's first run did not finish within 60 s")
            deadline = time.perf_counter() + 10    # a real display maps the window asynchronously
            while time.perf_counter() < deadline and not (window.windowHandle() and window.windowHandle().isExposed()):
                app.processEvents()
                time.sleep(0.01)
            if not window.isVisible():
                raise CheckFailed(f"the window did not become visible on platform {app.platformName()}")
            for _ in range(20):
                app.processEvents()
            if window.result is None or not window.result.ok:
                raise CheckFailed(f"the window's first run failed: {window.result.error if window.result else 'no result'}")
            image = window.feature_view.grid.image_item.image
            if window.feature_view.message is not None or image is None or image.size == 0:
                raise CheckFailed(f"the window shows no feature grid ({window.feature_view.message or 'empty'})")
            picture = window.grab()
            if picture.isNull() or picture.width() < 100:
                raise CheckFailed("the window could not be drawn into a picture")
            saved = ""
            if screenshot is not None:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                if not picture.save(str(screenshot)):
                    raise CheckFailed(f"could not save the screenshot to {screenshot}")
                saved = f", screenshot {screenshot}"
            return (f"platform {app.platformName()}, grid {image.shape[1]}x{image.shape[0]} px "
                    f"of {window.result.layers[0].output_shape[1]} channels{saved}")
        finally:
            window.document.undo_stack.setClean()   # never ask about unsaved changes
            window.close()
            window.deleteLater()
            app.processEvents()


def run_self_test(screenshot: str | None = None, out=None) -> int:
    out = out or sys.stdout
    started = time.perf_counter()
    failures: list[str] = []
    shot = Path(screenshot) if screenshot else None

    def run(label: str, fn: Callable[[], str]) -> None:
        t0 = time.perf_counter()
        try:
            detail, ok = fn(), True
        except CheckFailed as e:
            detail, ok = str(e), False
        except Exception as e:      # a bug or a broken install: still one line
            detail, ok = f"{type(e).__name__}: {e}", False
        mark = "ok  " if ok else "FAIL"
        print(f"{mark} {time.perf_counter() - t0:6.2f} s  {label}: {detail}", file=out, flush=True)
        if not ok:
            failures.append(f"{label}: {detail}")

    from explorer import __version__
    print(f"feature-map-explorer {__version__} self-test (Python {sys.version.split()[0]}"
          f"{', frozen' if getattr(sys, 'frozen', False) else ''})", file=out, flush=True)
    device_holder: list[str] = []

    def torch_check() -> str:
        import torch
        from explorer.core.devices import resolve_device
        device_holder.append(str(resolve_device("auto")))
        cuda = f"CUDA {torch.version.cuda}, available: {torch.cuda.is_available()}" if torch.version.cuda else "CPU build"
        return f"torch {torch.__version__} ({cuda}); device {device_holder[0]}"

    run("torch", torch_check)
    device = device_holder[0] if device_holder else "cpu"
    checks: list[tuple[str, Callable[[], str]]] = [
        ("resources found", check_resources),
        ("built-in examples run on their samples", lambda: check_examples(device)),
        ("shape inference", check_shapes),
        ("torchvision.ops.nms (compiled extension)", check_nms),
        ("walkthrough capture, LeNet", lambda: check_walkthrough("lenet", device)),
        ("walkthrough capture, VGG-16 (random weights)", lambda: check_walkthrough("vgg16", device)),
        ("window opens and draws a feature grid", lambda: check_window(shot, device)),
    ]
    for label, fn in checks:
        run(label, fn)
    total = len(checks) + 1
    elapsed = time.perf_counter() - started
    if failures:
        print(f"self-test failed ({len(failures)} of {total} checks) in {elapsed:.1f} s: {failures[0]}", file=out)
        return 1
    print(f"self-test passed ({total} checks) in {elapsed:.1f} s", file=out)
    return 0

"""What goes into the PyInstaller bundle, shared by the Linux, Windows and macOS specs.

The specs stay thin (PyInstaller's Analysis/EXE/COLLECT calls); every decision about content is
here, so tests can read it without PyInstaller (tests/core/test_bundle_spec.py).
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APP_NAME = "feature-map-explorer"
ENTRY = ROOT / "packaging" / "entry.py"
ICONS = ROOT / "resources" / "icons"

# torchvision 0.29 loads its compiled ops from ``torchvision._C_stable`` and its image codecs from
# ``torchvision.image_stable`` through torch.ops.load_library (invisible to PyInstaller's import
# analysis), while pyinstaller-hooks-contrib 2026.9 still names ``torchvision._C`` and
# ``torchvision.image``. Without these two the bundle dies at start-up with
# "RuntimeError: operator torchvision::nms does not exist" (checked on 2026-11-28).
HIDDEN_IMPORTS = [
    "torchvision._C_stable",
    "torchvision.image_stable",
    # Older torchvision names, harmless where absent: the same bundle recipe builds 0.2x too.
    "torchvision._C",
    "torchvision.image",
]

# Packages the app never imports at run time (tests/packaging/test_bundle_spec.py runs the whole
# self-test in a subprocess and checks none of them is loaded).
NEVER_LOADED = [
    "matplotlib", "tensorboard", "torch.utils.tensorboard", "tensorflow",
    "PyQt5", "PyQt6", "PySide2", "shiboken2",
    "tkinter", "_tkinter", "IPython", "jupyter", "notebook", "pytest", "pytest_qt",
    "pandas", "scipy", "sklearn", "cv2", "onnx", "onnxruntime", "captum",
]
# Loaded when present, not needed: torch's CUDA build imports triton at start-up only to register
# optional Triton kernels for a few ops (torch/_native), and uses its built-in kernels without it.
# Triton is about 0.9 GB and compiles kernels with a C compiler that students' machines often lack.
# The test runs the self-test's model checks with triton blocked.
OPTIONAL = ["triton"]
EXCLUDES = NEVER_LOADED + OPTIONAL

# Files the hooks collect but nothing loads: test and build tools, headers, static archives,
# CUDA profiling and multi-GPU extras (torch links none of them; see packaging/README.md).
PRUNE = [
    "torch/bin/protoc*", "torch/include/*", "torch/share/cmake/*", "torch/test/*",
    "*.a", "*.lib", "*.h", "*.hpp", "*.cuh",
    "nvidia/*/include/*", "nvidia/cu13/lib/libnvblas.so*", "nvidia/cu13/lib/libcufftw.so*",
    "nvidia/cu13/lib/libcusolverMg.so*", "nvidia/cu13/lib/libnvperf_*", "nvidia/cu13/lib/libpcsamplingutil.so*",
    "nvidia/cu13/lib/libcheckpoint.so*", "nvidia/cu13/lib/libcufile_rdma.so*",
    "nvidia/cu13/lib/libnvrtc.alt.so*", "nvidia/cu13/lib/libnvrtc-builtins.alt.so*",
    "PySide6/Qt/translations/qtwebengine_*", "PySide6/Qt/qml/*", "PySide6/Qt/lib/libQt6WebEngine*",
    "PySide6/Qt/lib/libQt6Quick*", "PySide6/Qt/lib/libQt6Qml*", "PySide6/Qt/lib/libQt6Pdf*",
    "PySide6/Qt/lib/libQt6Designer*", "PySide6/Qt/lib/libQt63D*",
]


# Libraries loaded with dlopen by a library PyInstaller did collect, so its dependency analysis
# misses them; paths relative to site-packages. NVRTC (linked by torch's libcaffe2_nvrtc) opens
# its builtins library when it compiles a kernel at run time (jiterator ops, cuDNN runtime fusion).
DLOPENED = ["nvidia/cu13/lib/libnvrtc-builtins.so.*"]


def extra_binaries() -> list[tuple[str, str]]:
    """(source, destination folder) for DLOPENED, from the site-packages torch is installed in;
    nothing for a CPU torch, which has no nvidia packages."""
    import importlib.util
    spec = importlib.util.find_spec("torch")
    if spec is None or spec.origin is None:
        return []
    site = Path(spec.origin).parents[1]
    found = []
    for pattern in DLOPENED:
        for path in sorted(site.glob(pattern)):
            if not any(fnmatch.fnmatch(str(path.relative_to(site)), p) for p in PRUNE):
                found.append((str(path), str(path.parent.relative_to(site))))
    return found


def hidden_imports() -> list[str]:
    """The torchvision extensions above, plus every explorer module (the CLI imports most lazily)."""
    modules = list(HIDDEN_IMPORTS)
    for path in sorted((ROOT / "explorer").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__main__":
            continue
        modules.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return modules


def datas() -> list[tuple[str, str]]:
    """resources/ goes in as ``resources``: explorer.core.resources looks for it under sys._MEIPASS."""
    return [(str(ROOT / "resources" / sub), f"resources/{sub}") for sub in ("samples", "examples", "icons")]


def pruned(toc):
    """The TOC without the files matched by PRUNE (PyInstaller 6 TOC entries are (dest, src, kind))."""
    def keep(entry) -> bool:
        dest = str(entry[0]).replace("\\", "/")
        return not any(fnmatch.fnmatch(dest, pattern) for pattern in PRUNE)
    return [entry for entry in toc if keep(entry)]


def icon(kind: str) -> str:
    return str(ICONS / f"{APP_NAME}.{kind}")


def version() -> str:
    namespace: dict = {}
    exec((ROOT / "explorer" / "__init__.py").read_text(encoding="utf-8"), namespace)
    return namespace["__version__"]

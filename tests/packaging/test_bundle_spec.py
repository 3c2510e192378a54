"""What the PyInstaller specs put in the bundle (packaging/bundle.py), checked without building:
torchvision 0.29's ops libraries are named, the excluded packages are never loaded by the app,
and the pruning drops only files nothing loads."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SPECS = [ROOT / "packaging" / p / "feature-map-explorer.spec" for p in ("linux", "windows", "macos")]


def load_bundle():
    spec = importlib.util.spec_from_file_location("fme_bundle", ROOT / "packaging" / "bundle.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bundle = load_bundle()


def test_torchvisions_ops_libraries_are_hidden_imports_and_exist():
    hidden = bundle.hidden_imports()
    assert "torchvision._C_stable" in hidden and "torchvision.image_stable" in hidden
    import torchvision
    if tuple(int(p) for p in torchvision.__version__.split("+")[0].split(".")[:2]) >= (0, 29):
        # The trap is real for the installed torchvision: its ops live in _C_stable, not _C.
        assert importlib.util.find_spec("torchvision._C_stable") is not None
        assert importlib.util.find_spec("torchvision.image_stable") is not None
        assert importlib.util.find_spec("torchvision._C") is None


def test_nvrtcs_dlopened_builtins_go_in_with_a_cuda_torch():
    import torch
    found = bundle.extra_binaries()
    site = Path(torch.__file__).parents[1]
    on_disk = sorted(site.glob("nvidia/cu13/lib/libnvrtc-builtins.so.*"))
    # NVRTC opens this library by name when it compiles a kernel; PyInstaller cannot see that.
    assert found == [(str(p), "nvidia/cu13/lib") for p in on_disk if ".alt." not in p.name]
    if torch.version.cuda and (site / "nvidia" / "cu13").is_dir():
        assert found, "a CUDA torch whose NVRTC builtins would be missing from the bundle"


def test_every_explorer_module_is_a_hidden_import():
    hidden = set(bundle.hidden_imports())
    for module in ("explorer.cli", "explorer.selftest", "explorer.platform_check", "explorer.ui.main_window",
                   "explorer.core.walkthrough", "explorer"):
        assert module in hidden
    assert not any(name.endswith("__main__") for name in hidden)


@pytest.fixture(scope="module")
def modules_after_self_test(tmp_path_factory) -> list[str]:
    """Every module the app loads in a whole self-test (examples, walkthroughs, the window)."""
    out = tmp_path_factory.mktemp("modules") / "modules.json"
    probe = ("import sys, json; from explorer.selftest import run_self_test; code = run_self_test(); "
             f"json.dump(sorted(sys.modules), open({str(out)!r}, 'w')); sys.exit(code)")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    run = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return json.loads(out.read_text())


def test_nothing_the_app_loads_is_excluded(modules_after_self_test):
    loaded = set(modules_after_self_test)
    for excluded in bundle.NEVER_LOADED:
        hits = sorted(m for m in loaded if m == excluded or m.startswith(excluded + "."))
        assert not hits, f"{excluded} is excluded from the bundle but the app loads {hits[:5]}"
    assert "torch" in loaded and "PySide6.QtWidgets" in loaded and "torchvision" in loaded


BLOCK_OPTIONAL = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, Block())
from explorer.selftest import check_examples, check_nms, check_walkthrough
import torch
print(check_examples("cpu")); print(check_nms()); print(check_walkthrough("lenet", "cpu"))
print(sorted(m for m in sys.modules if m.split(".")[0] in {blocked!r}))
"""


def test_the_models_run_without_the_optional_packages():
    """The bundle has no triton: torch must run the app's layers, nms and a walkthrough without it."""
    run = subprocess.run([sys.executable, "-c", BLOCK_OPTIONAL.format(blocked=set(bundle.OPTIONAL))], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.strip().splitlines()
    from explorer.core.examples import list_examples
    assert f"{len(list_examples())} examples" in lines[0] and "kept [0, 2]" in lines[1] and "61,706 parameters" in lines[2]
    assert lines[3] == "[]"


def test_pruning_drops_tools_and_extras_and_keeps_what_torch_links():
    def entry(dest):
        return (dest, "/src/" + dest, "BINARY")
    toc = [entry(d) for d in (
        "torch/bin/protoc", "torch/bin/protoc-3.21.12.0", "torch/bin/torch_shm_manager",
        "torch/lib/libtorch_cuda.so", "torch/include/ATen/ATen.h", "nvidia/cu13/lib/libnvblas.so.13",
        "nvidia/cu13/lib/libcublas.so.13", "nvidia/cu13/lib/libcusolver.so.12", "nvidia/cu13/lib/libcusolverMg.so.12",
        "nvidia/cudnn/lib/libcudnn_engines_precompiled.so.9", "nvidia/cu13/lib/libcudart_static.a",
        "PySide6/Qt/plugins/platforms/libqxcb.so", "PySide6/Qt/lib/libQt6XcbQpa.so.6")]
    kept = {e[0] for e in bundle.pruned(toc)}
    assert kept == {"torch/bin/torch_shm_manager", "torch/lib/libtorch_cuda.so", "nvidia/cu13/lib/libcublas.so.13",
                    "nvidia/cu13/lib/libcusolver.so.12", "nvidia/cudnn/lib/libcudnn_engines_precompiled.so.9",
                    "PySide6/Qt/plugins/platforms/libqxcb.so", "PySide6/Qt/lib/libQt6XcbQpa.so.6"}


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.parent.name)
def test_each_spec_takes_its_content_from_bundle_py(spec):
    source = spec.read_text(encoding="utf-8")
    ast.parse(source)
    for needed in ("binaries=bundle.extra_binaries()", "hiddenimports=bundle.hidden_imports()", "excludes=bundle.EXCLUDES", "datas=bundle.datas()",
                   "a.binaries = bundle.pruned(a.binaries)"):
        assert needed in source, f"{spec.name} in {spec.parent.name}: {needed}"


def test_resources_go_where_the_frozen_lookup_looks():
    assert {dest for _, dest in bundle.datas()} == {"resources/samples", "resources/examples", "resources/icons"}
    for src, _ in bundle.datas():
        assert Path(src).is_dir()
    assert Path(bundle.icon("ico")).is_file() and Path(bundle.icon("svg")).is_file()

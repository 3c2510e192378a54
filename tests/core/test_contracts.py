"""The import contracts in pyproject.toml ([tool.importlinter]): the core knows nothing of Qt or the
window, widgets and feature windows do not import the main window, and neither layer has import
cycles. import-linter reads the code without running it."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_import_contracts_are_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    assert lint.exists(), "import-linter is part of the test extra: pip install -e '.[test]'"
    run = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    assert len(contracts) >= 4          # every one of them was checked, none broken
    assert f"{len(contracts)} kept, 0 broken" in run.stdout


# The window's own side: the application, the main window and the start-up window (which imports the
# main window's modules on its loader thread). Everything else under explorer.ui is a widget, a view
# or a feature package.
WINDOW_SIDE = {"explorer.ui.app", "explorer.ui.main_window", "explorer.ui.startup"}


def test_every_widget_module_is_under_the_main_window_contract():
    """The contract names its modules one by one (import-linter has no "everything but" form): a new
    widget module left out of it could import the main window unseen."""
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    widgets = next(c for c in contracts if "explorer.ui.main_window" in c.get("forbidden_modules", []))
    listed = set(widgets["source_modules"])
    ui = ROOT / "explorer" / "ui"
    modules = {f"explorer.ui.{p.stem}" for p in ui.glob("*.py") if p.stem != "__init__"}
    modules |= {f"explorer.ui.{p.name}" for p in ui.iterdir() if (p / "__init__.py").exists()}
    assert modules - WINDOW_SIDE - listed == set(), "add these to the contract in pyproject.toml"
    assert listed <= modules, f"the contract names modules that are gone: {sorted(listed - modules)}"

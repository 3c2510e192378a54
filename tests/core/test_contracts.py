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

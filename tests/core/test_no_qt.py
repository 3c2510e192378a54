"""explorer.core and the command line never import Qt: they run headless."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_core_and_cli_import_without_qt():
    modules = sorted(f"explorer.core.{p.stem}" for p in (ROOT / "explorer" / "core").glob("*.py") if p.stem != "__init__")
    assert "explorer.core.engine" in modules and "explorer.core.layers" in modules
    code = (
        f"import {', '.join(['explorer.core', *modules, 'explorer.cli'])}\n"
        "import sys\n"
        "qt = sorted(m for m in sys.modules if m.startswith(('PySide6', 'shiboken6', 'pyqtgraph', 'PyQt')))\n"
        "assert not qt, qt\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def test_running_the_cli_imports_no_qt(tmp_path):
    code = (
        "import sys\n"
        "from explorer.cli import main\n"
        f"assert main(['shapes', 'lenet', '--input-shape', '1,1,32,32']) == 0\n"
        f"assert main(['run', 'default', '--sample', 'x', '--out', {str(tmp_path / 'out')!r}]) == 0\n"
        "assert main(['samples']) == 0 and main(['examples']) == 0\n"
        "qt = sorted(m for m in sys.modules if m.startswith(('PySide6', 'shiboken6', 'pyqtgraph', 'PyQt')))\n"
        "assert not qt, qt\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr

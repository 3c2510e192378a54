"""`feature-map-explorer --self-test` from source, offscreen, as CI runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from explorer import selftest

ROOT = Path(__file__).resolve().parents[2]


def test_the_self_test_passes_from_source_and_saves_a_screenshot(tmp_path):
    shot = tmp_path / "window.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    run = subprocess.run([sys.executable, "-m", "explorer", "--self-test", "--screenshot", str(shot)], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=600)
    lines = run.stdout.strip().splitlines()
    assert run.returncode == 0, run.stdout + run.stderr
    checks = [l for l in lines if re.match(r"^(ok  |FAIL) +\d+\.\d\d s  ", l)]
    assert len(checks) == 8 and all(l.startswith("ok") for l in checks)
    assert re.fullmatch(r"self-test passed \(8 checks\) in \d+\.\d s", lines[-1])
    for words in ("resources found", "nms", "LeNet", "VGG-16", "138,357,544", "platform offscreen"):
        assert any(words in l for l in checks), words
    from PIL import Image
    with Image.open(shot) as picture:
        assert picture.size == (1280, 800)


def test_a_lost_torchvision_extension_is_one_sentence(monkeypatch):
    import torchvision

    def broken(*args, **kwargs):   # what torchvision raises when _C_stable was not bundled
        raise RuntimeError("operator torchvision::nms does not exist")
    monkeypatch.setattr(torchvision.ops, "nms", broken)
    with pytest.raises(selftest.CheckFailed, match="compiled operators are missing"):
        selftest.check_nms()


def test_screenshot_needs_self_test(capsys):
    from explorer.cli import main
    assert main(["--screenshot", "x.png"]) == 2
    assert "--screenshot only goes with --self-test" in capsys.readouterr().err

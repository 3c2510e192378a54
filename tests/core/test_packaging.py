"""resources/ sits beside the package; the wheel must carry it, and the one finder must find it
when installed (not only from the source tree)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(out)],
                           capture_output=True, text=True, timeout=600)
    if build.returncode != 0:
        pytest.fail(f"building the wheel failed:\n{build.stderr[-2000:]}")
    return next(out.glob("feature_map_explorer-*.whl"))


def test_the_wheel_carries_samples_and_examples(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for sample in ("astronaut.png", "x.png", "o.png", "edges.png", "samples.json"):
        assert f"explorer/_resources/samples/{sample}" in names
    for example in ("examples.json", "default.json", "lenet.json", "x_vs_o.json", "vgg16.json"):
        assert f"explorer/_resources/examples/{example}" in names
    assert any(n.endswith("entry_points.txt") for n in names)


def test_an_installed_copy_finds_its_resources_away_from_the_source_tree(wheel, tmp_path):
    target = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target)      # a wheel is an archive of what lands in site-packages
    probe = ("from explorer.core.resources import resources_dir; from explorer.core.examples import list_examples; "
             "from explorer.core.inputs import load_sample; d = resources_dir(); "
             "print(d); print(len(list_examples())); print(tuple(load_sample('x').tensor.shape))")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(target)
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, env=env,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    where, count, shape = run.stdout.split("\n")[:3]
    assert Path(where).is_relative_to(target)
    assert int(count) >= 8
    assert shape == "(1, 3, 9, 9)"

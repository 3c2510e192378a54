"""The check before Qt: a missing X11 library or no display is one paragraph and exit 2, not
Qt's abort; a Wayland session without X gets Qt's Wayland plugin."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from pathlib import Path

import pytest

from explorer import cli, platform_check
from explorer.platform_check import XCB_LIBRARIES, check_gui_platform, debian_depends, missing_libraries

ROOT = Path(__file__).resolve().parents[2]


def loader_without(*absent: str):
    """ctypes' loader on a machine where only ``absent`` are missing: the same OSError text the
    dynamic loader gives (taken from a real failed dlopen); every other library counts as there, so
    the test does not depend on what this machine has installed."""
    try:
        ctypes.CDLL("libfme-not-installed.so.0")
    except OSError as e:
        template = str(e)
    else:  # pragma: no cover - nobody ships that name
        pytest.fail("a library that should not exist loaded")

    def load(name: str) -> None:
        if name in absent:
            raise OSError(template.replace("libfme-not-installed.so.0", name))
    return load


def test_the_three_libraries_a_fresh_machine_lacks_are_named_with_the_commands():
    load = loader_without("libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxcb-keysyms.so.1")
    problem = check_gui_platform({"DISPLAY": ":0"}, load=load, platform="linux")
    assert problem is not None
    assert problem.missing == ("libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxcb-keysyms.so.1")
    text = problem.message
    assert "\n" not in text                                   # one paragraph
    assert "sudo apt install libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1" in text
    assert "sudo dnf install xcb-util-cursor xcb-util-wm xcb-util-keysyms" in text
    assert "sudo pacman -S xcb-util-cursor xcb-util-wm xcb-util-keysyms" in text
    assert "run, shapes, walkthrough" in text


def test_a_library_missing_behind_another_is_named_by_its_own_name():
    # libxcb-cursor is there but its dependency libxcb-util is not: dlopen names the dependency.
    def load(name: str) -> None:
        if name in ("libxcb-cursor.so.0", "libxcb-util.so.1"):
            raise OSError("libxcb-util.so.1: cannot open shared object file: No such file or directory")
    assert missing_libraries(XCB_LIBRARIES, load) == ["libxcb-util.so.1"]


def test_a_library_really_absent_from_this_machine_is_found_through_ctypes(monkeypatch):
    monkeypatch.setitem(XCB_LIBRARIES, "libxcb-fme-test.so.9", ("libxcb-fme-test9", "xcb-fme", "xcb-fme"))
    assert "libxcb-fme-test.so.9" in missing_libraries(XCB_LIBRARIES)


def test_the_window_command_stops_before_qt_with_exit_2(monkeypatch, capsys):
    """`feature-map-explorer` itself, in a fresh interpreter so that Qt is not yet loaded."""
    probe = ("import sys, explorer.platform_check as p; "
             "p.XCB_LIBRARIES['libxcb-fme-test.so.9'] = ('libxcb-fme-test9', 'xcb-fme', 'xcb-fme'); "
             "from explorer.cli import main; code = main(['gui']); "
             "print('qt loaded' if 'PySide6.QtWidgets' in sys.modules else 'qt not loaded'); sys.exit(code)")
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY")}
    env["DISPLAY"] = ":97"
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert run.returncode == 2
    assert run.stdout.strip() == "qt not loaded"
    assert run.stderr.count("\n") == 1 and "libxcb-fme-test.so.9" in run.stderr
    assert "sudo apt install" in run.stderr and "libxcb-fme-test9" in run.stderr


def test_no_display_says_so_and_points_to_the_headless_commands(monkeypatch, capsys):
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    assert cli.main(["gui"]) == 2
    err = capsys.readouterr().err
    assert "there is no display" in err and "run, shapes, walkthrough, train" in err
    assert err.count("\n") == 1


def test_wayland_without_x_uses_the_wayland_plugin():
    env = {"WAYLAND_DISPLAY": "wayland-0"}
    assert check_gui_platform(env, load=lambda name: None, platform="linux") is None
    assert env["QT_QPA_PLATFORM"] == "wayland"
    missing = check_gui_platform({"WAYLAND_DISPLAY": "wayland-0"}, load=loader_without("libwayland-cursor.so.0"),
                                 platform="linux")
    assert missing is not None and "Wayland" in missing.message and "libwayland-cursor0" in missing.message


def test_a_chosen_platform_is_left_alone_and_other_systems_are_not_checked():
    assert check_gui_platform({"QT_QPA_PLATFORM": "offscreen"}, load=loader_without(*XCB_LIBRARIES)) is None
    assert check_gui_platform({}, platform="win32") is None


def test_the_deb_depends_on_what_the_check_looks_for():
    depends = debian_depends()
    for package in ("libxcb-cursor0", "libxcb-icccm4", "libxcb-keysyms1", "libxkbcommon-x11-0", "libegl1"):
        assert package in depends
    assert depends == sorted(set(depends))


def test_the_xcb_plugin_is_found_without_importing_qt():
    plugin = platform_check.qt_plugin("xcb")
    assert plugin is not None and plugin.name == "libqxcb.so" and plugin.is_file()

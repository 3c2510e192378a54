"""Can Qt open a window here? Asked before the QApplication exists, because when Qt cannot load its
platform plugin it aborts the process with a message that names neither the missing library nor
the fix.

On Linux, the xcb plugin needs a dozen X11 libraries that a fresh desktop install often lacks
(libxcb-cursor0, libxcb-icccm4, libxcb-keysyms1, ...). We load each with ctypes, exactly as the
dynamic loader would for Qt, and turn a failure into one paragraph with the install command.

No Qt import here: this runs in well under a millisecond per library, before anything heavy.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

# soname -> (Debian/Ubuntu package, Fedora package, Arch package). The X11 libraries Qt's xcb
# plugin links (readelf -d libqxcb.so, recursively, less what PySide6 ships itself). The .deb's
# Depends is generated from this table (packaging/build_linux.sh), so the two cannot drift.
XCB_LIBRARIES: dict[str, tuple[str, str, str]] = {
    "libxcb.so.1": ("libxcb1", "libxcb", "libxcb"),
    "libX11.so.6": ("libx11-6", "libX11", "libx11"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb", "libx11"),
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor", "xcb-util-cursor"),
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm", "xcb-util-wm"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms", "xcb-util-keysyms"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image", "xcb-util-image"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil", "xcb-util-renderutil"),
    "libxcb-util.so.1": ("libxcb-util1", "xcb-util", "xcb-util"),
    "libxcb-randr.so.0": ("libxcb-randr0", "libxcb", "libxcb"),
    "libxcb-render.so.0": ("libxcb-render0", "libxcb", "libxcb"),
    "libxcb-shape.so.0": ("libxcb-shape0", "libxcb", "libxcb"),
    "libxcb-shm.so.0": ("libxcb-shm0", "libxcb", "libxcb"),
    "libxcb-sync.so.1": ("libxcb-sync1", "libxcb", "libxcb"),
    "libxcb-xfixes.so.0": ("libxcb-xfixes0", "libxcb", "libxcb"),
    "libxcb-xkb.so.1": ("libxcb-xkb1", "libxcb", "libxcb"),
    "libxkbcommon.so.0": ("libxkbcommon0", "libxkbcommon", "libxkbcommon"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11", "libxkbcommon-x11"),
}
# What every Qt platform plugin (offscreen included) and Qt Gui itself load.
GUI_LIBRARIES: dict[str, tuple[str, str, str]] = {
    "libGL.so.1": ("libgl1", "libglvnd-glx", "libglvnd"),
    "libEGL.so.1": ("libegl1", "libglvnd-egl", "libglvnd"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig", "fontconfig"),
    "libfreetype.so.6": ("libfreetype6", "freetype", "freetype2"),
    "libglib-2.0.so.0": ("libglib2.0-0", "glib2", "glib2"),
    "libdbus-1.so.3": ("libdbus-1-3", "dbus-libs", "dbus"),
}
WAYLAND_LIBRARIES: dict[str, tuple[str, str, str]] = {
    "libwayland-client.so.0": ("libwayland-client0", "libwayland-client", "wayland"),
    "libwayland-cursor.so.0": ("libwayland-cursor0", "libwayland-cursor", "wayland"),
    "libwayland-egl.so.1": ("libwayland-egl1", "libwayland-egl", "wayland"),
    "libxkbcommon.so.0": ("libxkbcommon0", "libxkbcommon", "libxkbcommon"),
}

HEADLESS = ("run", "shapes", "walkthrough", "train", "examples", "samples")
_MISSING = re.compile(r"(?P<lib>[^\s:/]+\.so[.\d]*): cannot open shared object file")


@dataclass(frozen=True)
class PlatformProblem:
    message: str            # one paragraph, for stderr
    missing: tuple[str, ...] = ()


def debian_depends() -> list[str]:
    """The .deb's Depends: every package the window needs, sorted, without repeats."""
    return sorted({pkgs[0] for table in (XCB_LIBRARIES, GUI_LIBRARIES) for pkgs in table.values()})


def _dlopen(name: str) -> None:
    ctypes.CDLL(name)   # RTLD_NOW, as Qt's plugin loader: every dependency must resolve now


def missing_libraries(table: dict[str, tuple[str, str, str]], load: Callable[[str], None] = _dlopen,
                      plugin: Path | None = None) -> list[str]:
    """The sonames in ``table`` (or needed by them, or by ``plugin``) that the loader cannot find."""
    missing: list[str] = []

    def note(error: OSError, fallback: str) -> None:
        found = _MISSING.search(str(error))
        name = found.group("lib") if found else fallback
        if name not in missing:
            missing.append(name)

    for soname in table:
        try:
            load(soname)
        except OSError as e:
            note(e, soname)
    if not missing and plugin is not None and plugin.exists():
        try:       # anything the table does not know about yet still gets named
            load(str(plugin))
        except OSError as e:
            note(e, plugin.name)
    return missing


def install_commands(missing: list[str], table: dict[str, tuple[str, str, str]]) -> str:
    def packages(column: int) -> str:
        names = []
        for soname in missing:
            pkgs = table.get(soname) or XCB_LIBRARIES.get(soname) or GUI_LIBRARIES.get(soname)
            if pkgs and pkgs[column] not in names:
                names.append(pkgs[column])
        return " ".join(names)
    debian, fedora, arch = packages(0), packages(1), packages(2)
    if not debian:     # a library we have no package name for: the dynamic loader's name is all we have
        return "install the package that provides it with your system's package manager"
    return (f"on Debian or Ubuntu: sudo apt install {debian}; on Fedora: sudo dnf install {fedora}; "
            f"on Arch: sudo pacman -S {arch}")


def qt_plugin(name: str) -> Path | None:
    """Where PySide6's platform plugin ``name`` (xcb, wayland) is, without importing PySide6."""
    bases = []
    spec = importlib.util.find_spec("PySide6")
    if spec is not None and spec.submodule_search_locations:
        bases.extend(Path(p) for p in spec.submodule_search_locations)
    if getattr(sys, "frozen", False):
        bases.append(Path(getattr(sys, "_MEIPASS", Path(sys.executable).parent)) / "PySide6")
    for base in bases:
        plugin = base / "Qt" / "plugins" / "platforms" / f"libq{name}.so"
        if plugin.exists():
            return plugin
    return None


def check_gui_platform(environ: dict | None = None, load: Callable[[str], None] = _dlopen,
                       platform: str | None = None) -> PlatformProblem | None:
    """None if a window can open; otherwise the reason as one paragraph. May set QT_QPA_PLATFORM
    to ``wayland`` in ``environ`` for a Wayland session without X."""
    environ = os.environ if environ is None else environ
    if (platform or sys.platform) != "linux":
        return None     # Windows and macOS ship their platform plugin's dependencies with the OS
    chosen = environ.get("QT_QPA_PLATFORM", "").split(":")[0].strip()
    if chosen and chosen not in ("xcb", "wayland"):
        return None     # offscreen, vnc, eglfs...: the user chose; Qt reports its own problems
    has_x, has_wayland = bool(environ.get("DISPLAY")), bool(environ.get("WAYLAND_DISPLAY"))
    if chosen == "wayland" or (not chosen and has_wayland and not has_x):
        if not has_wayland:
            return PlatformProblem(_no_display("QT_QPA_PLATFORM=wayland is set but WAYLAND_DISPLAY is not"))
        environ["QT_QPA_PLATFORM"] = "wayland"
        return _problem(WAYLAND_LIBRARIES, "Wayland", load, qt_plugin("wayland"))
    if not has_x:
        return PlatformProblem(_no_display("neither DISPLAY nor WAYLAND_DISPLAY is set"))
    return _problem(XCB_LIBRARIES, "X11 (xcb)", load, qt_plugin("xcb"))


def _problem(table, what: str, load, plugin) -> PlatformProblem | None:
    missing = missing_libraries({**GUI_LIBRARIES, **table}, load, plugin)
    if not missing:
        return None
    names = ", ".join(missing)
    message = (f"The window cannot open: Qt's {what} platform plugin needs system libraries that are not "
               f"installed ({names}). Install them ({install_commands(missing, {**GUI_LIBRARIES, **table})}) "
               f"and start feature-map-explorer again. The headless commands ({', '.join(HEADLESS)}) "
               f"work without them.")
    return PlatformProblem(message, tuple(missing))


def _no_display(why: str) -> str:
    return (f"The window cannot open: there is no display ({why}; are you on a server or in an SSH "
            f"session without X forwarding?). The headless commands work without one: "
            f"{', '.join(HEADLESS)}; see feature-map-explorer --help.")

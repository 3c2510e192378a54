#!/usr/bin/env python
"""Random input session (issue 9; a script, not collected by pytest): starts the real main window and
for --seconds performs seeded random user actions through Qt on real widgets: clicks and keys in
the layer list, the panel's Add/Remove/Duplicate/Move, numbers typed into argument fields (valid and
not), kernel cells, undo/redo keys, input switches (samples, examples, images, a CIFAR-10 batch in
the official format), zoom/scroll/clicks in the feature view, tab switches, LeNet walkthroughs
opened and closed, short training runs, the Insight window, random buttons and combos.

Nothing may block: every modal dialog wrapper (explorer/ui/dialogs, QMessageBox, QFileDialog,
QDialog.exec, QMenu.exec) is replaced by a counter, and a timer closes any popup or modal that Qt
opens by itself. Every error dialog the window asks for is counted. A 20 ms heartbeat on the GUI
thread measures its gaps; a gap over 2 s is a freeze and leaves every thread's stack in the log. A
watchdog thread prints a progress line every 10 s and, if the heartbeat stops for 30 s, dumps all
stacks and exits with code 3. At the end: a one-screen summary (actions per kind, error dialogs,
tracebacks in the app's log, worst gaps, RSS), exit 1 on any error dialog, traceback or freeze.

    timeout 120 python tests/benchmarks/random_input.py --seconds 30 --seed 1
    python tests/benchmarks/random_input.py --seconds 300 --seed 2 --summary /tmp/seed-2.txt
"""

from __future__ import annotations

import os
import sys
import tempfile

_TMP = tempfile.mkdtemp(prefix="fme-random-")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# The app's log, settings and autosave go to this run's own folder (a fresh log to scan).
os.environ["XDG_DATA_HOME"] = os.path.join(_TMP, "data")
os.environ["XDG_CONFIG_HOME"] = os.path.join(_TMP, "config")

import argparse  # noqa: E402
import collections  # noqa: E402
import faulthandler  # noqa: E402
import logging  # noqa: E402
import pickle  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))      # this checkout's explorer, not an installed one

from bench_explorer import load_average, malloc_trim, rss_mb, temp_settings  # noqa: E402

FREEZE_S = 2.0        # a GUI-thread gap longer than this is a freeze
HANG_S = 30.0         # the heartbeat silent this long: dump every stack and exit 3
PROGRESS_S = 10.0

NUMBERS = ["1", "2", "3", "5", "7", "16", "64", "0", "-1", "1e9", "99999", "2.5", "abc", "", " ", "3x3",
           "100000", "0.5", "-0.25", "1,2", "nan", "inf", "12", "4"]
CELL_NUMBERS = ["0", "1", "-1", "0.5", "-2.25", "3", "1e3", "abc", "", "nan", "10", "-0.1"]


def write_cifar_folder(root: Path, images_per_batch: int = 40) -> Path:
    """A CIFAR-10 folder in the official format (pickled dicts of uint8 rows), small and random."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]
    for name in names:
        data = rng.integers(0, 256, size=(images_per_batch, 3072), dtype=np.uint8)
        labels = [int(x) for x in rng.integers(0, 10, size=images_per_batch)]
        entry = {b"batch_label": name.encode(), b"labels": labels, b"data": data,
                 b"filenames": [f"img_{i}.png".encode() for i in range(images_per_batch)]}
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f, protocol=2)
    meta = {b"label_names": [n.encode() for n in ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                                                 "horse", "ship", "truck")],
            b"num_cases_per_batch": images_per_batch, b"num_vis": 3072}
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump(meta, f, protocol=2)
    return folder


class Heartbeat:
    """A 20 ms QTimer on the GUI thread; a plain thread watches it (progress lines, freezes, hangs)."""

    def __init__(self, stats: "Stats", log_file, hang_s: float):
        from PySide6.QtCore import QTimer
        self.stats = stats
        self.log_file = log_file
        self.hang_s = hang_s
        self.last = time.monotonic()
        self.last_cpu = time.thread_time()
        self.worst: list[float] = [0.0]          # sorted top gaps (ms)
        self.worst_cpu = 0.0                     # the GUI thread's own CPU time in its busiest gap (ms)
        self.freezes: list[float] = []
        self.stop_event = threading.Event()
        self.timer = QTimer()
        self.timer.setInterval(20)
        self.timer.timeout.connect(self._tick)
        self.timer.start()
        self._dumped_for = 0.0
        self.thread = threading.Thread(target=self._watch, name="random-input-watchdog", daemon=True)
        self.thread.start()

    def _tick(self) -> None:
        now = time.monotonic()
        cpu_now = time.thread_time()          # this (GUI) thread's CPU time: busy, or starved by the load?
        gap, cpu = (now - self.last) * 1000, (cpu_now - self.last_cpu) * 1000
        self.last, self.last_cpu = now, cpu_now
        self.worst = sorted(self.worst + [gap], reverse=True)[:5]
        self.worst_cpu = max(self.worst_cpu, cpu)
        if gap > FREEZE_S * 1000:
            self.freezes.append(gap)
            self.stats.note(f"FREEZE: the GUI thread was silent {gap:.0f} ms, {cpu:.0f} ms of it on its CPU "
                            f"(last action: {self.stats.last_action})")

    def _watch(self) -> None:
        next_progress = time.monotonic() + PROGRESS_S
        while not self.stop_event.wait(0.1):
            now = time.monotonic()
            silent = now - self.last
            if silent > FREEZE_S and self._dumped_for != self.last:
                self._dumped_for = self.last        # one dump per freeze
                print(f"[watchdog] GUI thread silent for {silent:.1f} s during {self.stats.last_action}; "
                      "stacks of all threads in the log", flush=True)
                self.log_file.write(f"\n=== random_input: GUI silent {silent:.1f} s during {self.stats.last_action}\n")
                self.log_file.flush()
                faulthandler.dump_traceback(file=self.log_file, all_threads=True)
            if silent > self.hang_s:
                print(f"[watchdog] HANG: GUI thread silent for {silent:.0f} s; all stacks:", flush=True)
                faulthandler.dump_traceback(file=sys.stdout, all_threads=True)
                faulthandler.dump_traceback(file=self.log_file, all_threads=True)
                sys.stdout.flush()
                print(self.stats.summary_text(self, hung=True), flush=True)
                os._exit(3)
            if now >= next_progress:
                next_progress = now + PROGRESS_S
                print(f"{time.strftime('%H:%M:%S')} t={now - self.stats.start:5.0f}s actions={self.stats.total} "
                      f"worst gap {self.worst[0]:.0f} ms, freezes {len(self.freezes)}, errors "
                      f"{len(self.stats.error_dialogs)}, RSS {rss_mb():.0f} MB, load {load_average()}", flush=True)

    def stop(self) -> None:
        self.stop_event.set()
        self.timer.stop()


class Stats:
    def __init__(self, seed: int, seconds: float, log_path: Path):
        self.seed, self.seconds, self.log_path = seed, seconds, log_path
        self.start = time.monotonic()
        self.actions: collections.Counter = collections.Counter()
        self.action_ms: collections.defaultdict = collections.defaultdict(float)
        self.slowest: list[tuple[float, str]] = []
        self.error_dialogs: list[str] = []
        self.other_dialogs: collections.Counter = collections.Counter()
        self.driver_errors: list[str] = []
        self.qt_warnings: collections.Counter = collections.Counter()
        self.notes: list[str] = []
        self.last_action = "start-up"
        self.rss_start = rss_mb()
        self.rss_samples: list[tuple[float, float]] = []

    @property
    def total(self) -> int:
        return sum(self.actions.values())

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(text, flush=True)

    def log_findings(self) -> tuple[list[str], int]:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return [], 0
        firsts = []          # the exception line that ends each traceback
        lines = text.splitlines()
        for i, line in enumerate(lines):
            if line.startswith("Traceback (most recent call last):"):
                end = next((l for l in lines[i + 1:] if l and not l[0].isspace()), "?")
                firsts.append(end.strip())
        dumps = text.count("Thread 0x") + text.count("Current thread 0x")
        return firsts, dumps

    def summary_text(self, beat: Heartbeat, hung: bool = False) -> str:
        tracebacks, dumps = self.log_findings()
        lines = [f"Random input session: seed {self.seed}, {self.seconds:g} s planned, "
                 f"{time.monotonic() - self.start:.0f} s run, {self.total} actions, load {load_average()}"
                 + ("  ** HUNG **" if hung else "")]
        lines.append("actions: " + ", ".join(f"{k} {v}" for k, v in sorted(self.actions.items())))
        lines.append("slowest actions (ms on the GUI thread): "
                     + ", ".join(f"{name} {ms:.0f}" for ms, name in sorted(self.slowest, reverse=True)[:5]))
        lines.append(f"error dialogs: {len(self.error_dialogs)}"
                     + "".join(f"\n  - {e[:300]}" for e in self.error_dialogs[:8]))
        lines.append("other dialogs asked for (answered at once): "
                     + (", ".join(f"{k} {v}" for k, v in sorted(self.other_dialogs.items())) or "none"))
        lines.append(f"tracebacks in the app's log ({self.log_path}): {len(tracebacks)}"
                     + "".join(f"\n  - {t[:300]}" for t in tracebacks[:8]))
        lines.append(f"thread dumps in the log (freezes, hangs): {dumps}")
        lines.append(f"GUI-thread gaps: worst {', '.join(f'{g:.0f}' for g in beat.worst)} ms; "
                     f"freezes over {FREEZE_S:g} s: {len(beat.freezes)}; most GUI-thread CPU in one gap {beat.worst_cpu:.0f} ms")
        lines.append(f"driver errors (exceptions raised into the driver): {len(self.driver_errors)}"
                     + "".join(f"\n  - {e[:400]}" for e in self.driver_errors[:5]))
        lines.append("Qt warnings: " + (", ".join(f"{k[:80]!r} x{v}" for k, v in self.qt_warnings.most_common(5))
                                       or "none"))
        rss = ", ".join(f"{t:.0f}s {r:.0f}" for t, r in self.rss_samples[:: max(1, len(self.rss_samples) // 6)])
        lines.append(f"RSS MB: start {self.rss_start:.0f}, samples {rss}, end {rss_mb():.0f}")
        for n in self.notes[:6]:
            lines.append("note: " + n[:200])
        failed = bool(self.error_dialogs or tracebacks or beat.freezes or self.driver_errors or hung)
        lines.append("RESULT: " + ("FAIL" if failed else "PASS"))
        return "\n".join(lines)


def install_no_block(stats: Stats, rng: random.Random, files: dict) -> None:
    """Every way the window can ask a modal question answers at once (and is counted)."""
    from PySide6.QtWidgets import QDialog, QFileDialog, QInputDialog, QMenu, QMessageBox

    from explorer.ui import dialogs

    def error(parent, title, text, details=""):
        stats.error_dialogs.append(f"{title}: {text} | {details.strip().splitlines()[-1] if details.strip() else ''}")
        print(f"ERROR DIALOG: {title}: {text}\n{details}", flush=True)

    def open_file(parent, title, folder, filters):
        stats.other_dialogs["open_file"] += 1
        t = title.lower()
        if "stack" in t:
            return rng.choice([files["stack"], files["garbage"], ""])
        if "image" in t:
            return rng.choice([files["image"], files["big_image"], files["garbage"], ""])
        if "cifar" in t:
            return rng.choice([files["garbage"], ""])
        return ""

    def save_file(parent, title, path, filters):
        stats.other_dialogs["save_file"] += 1
        return rng.choice(["", str(Path(_TMP) / "out" / Path(path or "x").name)])

    def choose_folder(parent, title, folder):
        stats.other_dialogs["choose_folder"] += 1
        if "cifar" in title.lower():
            return rng.choice([str(files["cifar"]), ""])
        return ""

    dialogs.show_error = error
    dialogs.show_info = lambda parent, title, text: stats.other_dialogs.update(["info"])
    dialogs.save_changes = lambda parent, name: (stats.other_dialogs.update(["save_changes"]), "discard")[1]
    dialogs.restore_autosave = lambda parent, when: False
    dialogs.open_file = open_file
    dialogs.save_file = save_file
    dialogs.choose_folder = choose_folder

    def counted(name, value):
        def answer(*args, **kwargs):
            stats.other_dialogs[name] += 1
            if name == "QMessageBox.critical":
                stats.error_dialogs.append(f"QMessageBox.critical: {args[2] if len(args) > 2 else args}")
            return value
        return staticmethod(answer)

    QMessageBox.information = counted("QMessageBox.information", QMessageBox.StandardButton.Ok)
    QMessageBox.warning = counted("QMessageBox.warning", QMessageBox.StandardButton.Ok)
    QMessageBox.critical = counted("QMessageBox.critical", QMessageBox.StandardButton.Ok)
    QMessageBox.question = counted("QMessageBox.question", QMessageBox.StandardButton.No)
    QFileDialog.getOpenFileName = counted("QFileDialog.getOpenFileName", ("", ""))
    QFileDialog.getSaveFileName = counted("QFileDialog.getSaveFileName", ("", ""))
    QFileDialog.getExistingDirectory = counted("QFileDialog.getExistingDirectory", "")
    QInputDialog.getInt = counted("QInputDialog.getInt", (0, False))
    QInputDialog.getText = counted("QInputDialog.getText", ("", False))

    def dialog_exec(self, *args):
        stats.other_dialogs[f"{type(self).__name__}.exec {self.windowTitle()!r}"] += 1
        return 0

    QDialog.exec = dialog_exec
    QMessageBox.exec = dialog_exec
    QMenu.exec = lambda self, *a, **k: stats.other_dialogs.update(["QMenu.exec"])


def close_stray_modals(stats: Stats) -> None:
    """A popup or modal opened by Qt itself (a tool button's menu, a combo's list) is closed."""
    from PySide6.QtWidgets import QApplication
    for getter, name in ((QApplication.activePopupWidget, "popup"), (QApplication.activeModalWidget, "modal")):
        w = getter()
        if w is not None:
            stats.other_dialogs[f"closed {name} {type(w).__name__}"] += 1
            w.close()


class Driver:
    def __init__(self, window, rng: random.Random, stats: Stats, files: dict):
        self.w = window
        self.rng = rng
        self.stats = stats
        self.files = files
        self.actions = [
            (10, "select_layer", self.select_layer),
            (4, "list_keys", self.list_keys),
            (5, "add_layer", self.add_layer),
            (3, "panel_button", self.panel_button),
            (10, "type_argument", self.type_argument),
            (6, "kernel_cell", self.kernel_cell),
            (5, "undo_redo", self.undo_redo),
            (3, "sample", self.sample),
            (1.5, "example", self.example),
            (1.5, "cifar", self.cifar),
            (1, "open_image", self.open_image),
            (5, "feature_view", self.feature_view),
            (3, "tab", self.tab),
            (1.2, "walkthrough_open", self.walkthrough_open),
            (2, "walkthrough_use", self.walkthrough_use),
            (1.5, "walkthrough_close", self.walkthrough_close),
            (1.2, "train", self.train),
            (0.8, "insight", self.insight),
            (4, "random_button", self.random_button),
            (3, "random_combo", self.random_combo),
            (3, "random_number", self.random_number),
            (0.5, "resize", self.resize),
            (0.3, "mode_device", self.mode_device),
        ]

    # ----------------------------------------------------------------- helpers
    def visible(self, widget) -> bool:
        return widget.isVisible() and widget.isEnabled() and widget.window().isVisible()

    def widgets(self, cls, root=None):
        from PySide6.QtWidgets import QApplication
        roots = [root] if root is not None else [w for w in QApplication.topLevelWidgets() if w.isVisible()]
        found = []
        for r in roots:
            found += [w for w in r.findChildren(cls) if self.visible(w)]
        return found

    def click(self, widget, pos=None, double=False) -> None:
        from PySide6.QtCore import Qt
        from PySide6.QtTest import QTest
        if pos is None:
            pos = widget.rect().center()
        if double:
            QTest.mouseDClick(widget, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pos)
        else:
            QTest.mouseClick(widget, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pos)

    def key(self, widget, key, modifiers=None) -> None:
        from PySide6.QtCore import Qt
        from PySide6.QtTest import QTest
        QTest.keyClick(widget, key, modifiers or Qt.KeyboardModifier.NoModifier)

    def type_into(self, widget, text: str) -> None:
        from PySide6.QtCore import Qt
        from PySide6.QtTest import QTest
        widget.setFocus()
        self.key(widget, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
        if text:
            QTest.keyClicks(widget, text)
        else:
            self.key(widget, Qt.Key.Key_Backspace)
        self.key(widget, self.rng.choice([Qt.Key.Key_Return, Qt.Key.Key_Return, Qt.Key.Key_Tab, Qt.Key.Key_Escape]))

    def trigger_menu(self, menu_title: str, pattern: str = "") -> bool:
        """Triggers a random enabled action of a main-window menu whose text matches ``pattern``."""
        from PySide6.QtWidgets import QMenu

        def actions(menu):
            for a in menu.actions():
                if a.menu() is not None:
                    yield from actions(a.menu())
                elif not a.isSeparator() and a.isEnabled():
                    yield a
        for top in self.w.menuBar().actions():
            if top.text().replace("&", "") == menu_title and isinstance(top.menu(), QMenu):
                found = [a for a in actions(top.menu()) if re.search(pattern, a.text().replace("&", ""))]
                if found:
                    self.rng.choice(found).trigger()
                    return True
        return False

    # ----------------------------------------------------------------- actions
    def select_layer(self) -> None:
        view = self.w.layer_panel.list
        rows = view.model().rowCount()
        if rows:
            rect = view.visualRect(view.model().index(self.rng.randrange(rows), 0))
            if rect.isValid() and view.viewport().rect().contains(rect.center()):
                self.click(view.viewport(), rect.center())
            else:
                from PySide6.QtCore import Qt
                self.key(view, self.rng.choice([Qt.Key.Key_Up, Qt.Key.Key_Down]))

    def list_keys(self) -> None:
        from PySide6.QtCore import Qt
        view = self.w.layer_panel.list
        view.setFocus()
        self.key(view, self.rng.choice([Qt.Key.Key_Up, Qt.Key.Key_Down, Qt.Key.Key_Home, Qt.Key.Key_End,
                                        Qt.Key.Key_PageDown, Qt.Key.Key_Delete, Qt.Key.Key_Down]))

    def add_layer(self) -> None:
        actions = list(self.w.layer_panel._add_actions.values())
        if len(self.w.document.stack.layers) < 14:
            self.rng.choice(actions).trigger()

    def panel_button(self) -> None:
        p = self.w.layer_panel
        button = self.rng.choice([p.remove_button, p.duplicate_button, p.up_button, p.down_button, p.add_button])
        if button is p.duplicate_button and len(self.w.document.stack.layers) >= 14:
            return
        if self.visible(button):
            self.click(button)

    def type_argument(self) -> None:
        from PySide6.QtWidgets import QAbstractSpinBox, QLineEdit
        fields = [w for w in self.widgets(QAbstractSpinBox, self.w.layer_form)]
        fields += [w for w in self.widgets(QLineEdit, self.w.layer_form) if not isinstance(w.parent(), QAbstractSpinBox)]
        if not fields:
            return
        self.type_into(self.rng.choice(fields), self.rng.choice(NUMBERS))

    def kernel_cell(self) -> None:
        from PySide6.QtCore import Qt
        from PySide6.QtTest import QTest
        from PySide6.QtWidgets import QTableWidget
        if self.rng.random() < 0.5:
            self.w.layer_tabs.setCurrentWidget(self.w.kernel_editor)
        grids = self.widgets(QTableWidget, self.w.kernel_editor)
        if not grids:
            return
        grid = self.rng.choice(grids)
        if grid.rowCount() == 0 or grid.columnCount() == 0:
            return
        r, c = self.rng.randrange(grid.rowCount()), self.rng.randrange(grid.columnCount())
        item_rect = grid.visualRect(grid.model().index(r, c))
        if not grid.viewport().rect().contains(item_rect.center()):
            return
        self.click(grid.viewport(), item_rect.center())
        choice = self.rng.random()
        if choice < 0.6:
            QTest.keyClicks(grid.viewport() if grid.state() else grid, self.rng.choice(CELL_NUMBERS))
            self.key(grid.focusWidget() or grid, Qt.Key.Key_Return)
        elif choice < 0.8:
            self.key(grid, self.rng.choice([Qt.Key.Key_Delete, Qt.Key.Key_Up, Qt.Key.Key_Right, Qt.Key.Key_PageUp]))
        else:
            from PySide6.QtGui import QGuiApplication
            QGuiApplication.clipboard().setText(self.rng.choice(["1 2 3\n4 5 6\n7 8 9", "0.5", "x y", "1e400"]))
            self.key(grid, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)

    def undo_redo(self) -> None:
        from PySide6.QtCore import Qt
        ctrl, shift = Qt.KeyboardModifier.ControlModifier, Qt.KeyboardModifier.ShiftModifier
        target = self.w.layer_panel.list
        target.setFocus()
        key, mods = self.rng.choice([(Qt.Key.Key_Z, ctrl), (Qt.Key.Key_Z, ctrl), (Qt.Key.Key_Z, ctrl | shift),
                                     (Qt.Key.Key_Y, ctrl)])
        self.key(target, key, mods)

    def sample(self) -> None:
        self.trigger_menu("Input", "—")

    def example(self) -> None:
        # The big torchvision examples run for seconds on a CPU: the small ones most of the time.
        self.trigger_menu("File", self.rng.choice(["^(default|lenet|x_vs_o|xo_net|relu_sigmoid|flatten_linear|maxpool_unpool|avgpool_divisor|cifar_)", "—"]))

    def cifar(self) -> None:
        if not self.trigger_menu("Input", "CIFAR-10 &?folder"):
            self.trigger_menu("Input", "CIFAR")

    def open_image(self) -> None:
        self.trigger_menu("Input", "image")

    def feature_view(self) -> None:
        from PySide6.QtCore import QPoint, QPointF, Qt
        from PySide6.QtGui import QWheelEvent
        from PySide6.QtWidgets import QApplication, QGraphicsView
        views = self.widgets(QGraphicsView, self.w.feature_view)
        if not views:
            return
        view = self.rng.choice(views)
        vp = view.viewport()
        pos = QPoint(self.rng.randrange(max(1, vp.width())), self.rng.randrange(max(1, vp.height())))
        choice = self.rng.random()
        if choice < 0.4:
            delta = self.rng.choice([120, -120, 240, -240, 480])
            ev = QWheelEvent(QPointF(pos), QPointF(vp.mapToGlobal(pos)), QPoint(0, 0), QPoint(0, delta),
                             Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase,
                             False)
            QApplication.sendEvent(vp, ev)
        elif choice < 0.8:
            self.click(vp, pos, double=self.rng.random() < 0.2)
        else:
            view.setFocus()
            self.key(view, self.rng.choice([Qt.Key.Key_Left, Qt.Key.Key_Right, Qt.Key.Key_Up, Qt.Key.Key_Down,
                                            Qt.Key.Key_Home, Qt.Key.Key_End]))

    def tab(self) -> None:
        from PySide6.QtWidgets import QTabBar
        bars = self.widgets(QTabBar)
        if bars:
            bar = self.rng.choice(bars)
            if bar.count():
                self.click(bar, bar.tabRect(self.rng.randrange(bar.count())).center())

    def walkthrough_open(self) -> None:
        if len(self.w.walkthroughs.windows) < 2:
            self.trigger_menu("Models", "LeNet")

    def walkthrough_window(self):
        windows = [w for w in self.w.walkthroughs.windows if w.isVisible()]
        return self.rng.choice(windows) if windows else None

    def walkthrough_use(self) -> None:
        walk = self.walkthrough_window()
        if walk is None:
            return
        choice = self.rng.random()
        if choice < 0.5:
            self._random_button_in(walk)
        elif choice < 0.7:
            self._random_combo_in(walk)
        else:
            from PySide6.QtWidgets import QListWidget, QTabBar, QTreeWidget
            lists = self.widgets(QListWidget, walk) + self.widgets(QTreeWidget, walk) + self.widgets(QTabBar, walk)
            if lists:
                target = self.rng.choice(lists)
                self.click(target, target.rect().center() if not hasattr(target, "tabRect") else
                           target.tabRect(self.rng.randrange(max(1, target.count()))).center())

    def walkthrough_close(self) -> None:
        walk = self.walkthrough_window()
        if walk is not None:
            walk.close()

    def train(self) -> None:
        panel = self.w.training.panel
        if panel is None or not self.visible(panel):
            self.w.training.show_action.trigger()
            return
        from PySide6.QtWidgets import QAbstractSpinBox
        if self.visible(panel.stop_button) and self.rng.random() < 0.6:
            self.click(panel.stop_button)
        elif self.visible(panel.start_button):
            spins = [s for s in self.widgets(QAbstractSpinBox, panel)]
            if spins and self.rng.random() < 0.3:
                self.type_into(self.rng.choice(spins), self.rng.choice(["1", "2", "0", "-1", "1e9", "0.01"]))
            self.click(panel.start_button)
        else:
            self._random_button_in(panel)

    def insight(self) -> None:
        win = self.w.insight.insight
        windows = [win] if win is not None and win.isVisible() else []
        if not windows:
            self.trigger_menu("Insight", "")
            return
        win = self.rng.choice(windows)
        choice = self.rng.random()
        if choice < 0.3:
            win.close()
        elif choice < 0.7:
            self._random_button_in(win)
        else:
            self._random_combo_in(win)

    DENY = re.compile(r"quit|download|export|save|copy", re.I)

    def _random_button_in(self, root) -> None:
        from PySide6.QtWidgets import QAbstractButton
        buttons = [b for b in self.widgets(QAbstractButton, root) if not self.DENY.search(b.text() + b.toolTip())]
        if buttons:
            self.click(self.rng.choice(buttons))

    def _random_combo_in(self, root) -> None:
        from PySide6.QtWidgets import QComboBox
        combos = self.widgets(QComboBox, root)
        if combos:
            combo = self.rng.choice(combos)
            if combo.count():
                if combo.isEditable() and self.rng.random() < 0.3:
                    self.type_into(combo, self.rng.choice(NUMBERS))
                else:
                    combo.setFocus()
                    combo.setCurrentIndex(self.rng.randrange(combo.count()))

    def random_button(self) -> None:
        self._random_button_in(None)

    def random_combo(self) -> None:
        self._random_combo_in(None)

    def random_number(self) -> None:
        from PySide6.QtWidgets import QAbstractSpinBox
        spins = self.widgets(QAbstractSpinBox)
        if spins:
            self.type_into(self.rng.choice(spins), self.rng.choice(NUMBERS))

    def resize(self) -> None:
        self.w.resize(self.rng.randrange(900, 1700), self.rng.randrange(560, 1100))

    def mode_device(self) -> None:
        self.w.train_action.trigger()

    # ----------------------------------------------------------------- the loop
    def step(self) -> None:
        close_stray_modals(self.stats)
        weights = [a[0] for a in self.actions]
        _, name, fn = self.rng.choices(self.actions, weights)[0]
        self.stats.last_action = name
        t0 = time.perf_counter()
        try:
            fn()
        except Exception:      # noqa: BLE001 - the summary lists it; the session goes on
            text = traceback.format_exc()
            self.stats.driver_errors.append(f"{name}: {text.strip().splitlines()[-1]}")
            print(f"DRIVER ERROR in {name}:\n{text}", flush=True)
        ms = (time.perf_counter() - t0) * 1000
        self.stats.actions[name] += 1
        self.stats.slowest = sorted(self.stats.slowest + [(ms, name)], reverse=True)[:5]
        self.stats.last_action = f"(idle after {name})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pause-ms", type=int, nargs=2, default=(30, 400), help="random pause between actions")
    parser.add_argument("--hang", type=float, default=HANG_S)
    parser.add_argument("--summary", type=Path, help="also write the summary to this file")
    parser.add_argument("--inject-hang", type=float, default=0.0, metavar="S",
                        help="check the watchdog: block the GUI thread S seconds after 3 s")
    args = parser.parse_args(argv)

    from PySide6.QtCore import QTimer, QtMsgType, qInstallMessageHandler

    from explorer.ui.app import install_error_hooks, install_fault_log, make_application
    from explorer.ui.app_paths import log_path

    app = make_application()
    log = log_path()
    logging.basicConfig(filename=str(log), level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_fault_log(log)
    log_file = open(log, "a", buffering=1)
    rng = random.Random(args.seed)
    stats = Stats(args.seed, args.seconds, log)

    def qt_message(kind, context, message):
        if kind != QtMsgType.QtDebugMsg:
            stats.qt_warnings[message.split("\n")[0][:120]] += 1
            logging.getLogger("qt").warning(message)
    qInstallMessageHandler(qt_message)

    tmp = Path(_TMP)
    from PIL import Image
    from explorer.core.examples import examples
    from explorer.core.resources import resource_path
    files = {"cifar": write_cifar_folder(tmp / "cifar"), "garbage": str(tmp / "garbage.png"),
             "image": str(resource_path("samples", "astronaut.png")), "big_image": str(tmp / "wide.png"),
             "stack": str(examples()[0].path)}
    Path(files["garbage"]).write_text("not an image, not a stack")
    Image.new("RGB", (640, 32), (120, 30, 200)).save(files["big_image"])
    install_no_block(stats, rng, files)

    from explorer.ui.main_window import MainWindow
    window = MainWindow(device="cpu", settings=temp_settings(tmp))
    install_error_hooks(lambda: window)
    window.resize(1400, 900)
    window.show()
    from explorer.ui.gc_collector import freeze_startup_objects
    QTimer.singleShot(2000, freeze_startup_objects)      # as run_app does
    beat = Heartbeat(stats, log_file, args.hang)
    driver = Driver(window, rng, stats, files)
    end = time.monotonic() + args.seconds
    done = {"flag": False}

    def tick():
        if time.monotonic() >= end:
            done["flag"] = True
            app.quit()
            return
        driver.step()
        if len(stats.rss_samples) == 0 or time.monotonic() - stats.start - stats.rss_samples[-1][0] > 15:
            stats.rss_samples.append((time.monotonic() - stats.start, rss_mb()))
        QTimer.singleShot(rng.randint(*args.pause_ms), tick)

    QTimer.singleShot(500, tick)
    if args.inject_hang:
        QTimer.singleShot(3000, lambda: (setattr(stats, "last_action", "inject_hang"), time.sleep(args.inject_hang)))
    modal_sweeper = QTimer()
    modal_sweeper.setInterval(200)
    modal_sweeper.timeout.connect(lambda: close_stray_modals(stats))
    modal_sweeper.start()
    app.exec()

    # Wind down: close the feature windows, stop training, let the last runs finish (bounded).
    stats.last_action = "wind-down"
    try:
        if window.training.panel is not None:
            window.training.panel.stop()
        for walk in list(window.walkthroughs.windows):
            walk.close()
        if window.insight.insight is not None:
            window.insight.insight.close()
        window.runner.wait_until_idle(60_000)
    except Exception:      # noqa: BLE001
        stats.driver_errors.append("wind-down: " + traceback.format_exc().strip().splitlines()[-1])
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.02)
    malloc_trim()
    modal_sweeper.stop()
    beat.stop()
    text = stats.summary_text(beat)
    print("=" * 100)
    print(text, flush=True)
    if args.summary:
        args.summary.write_text(text + "\n")
    try:       # the app's excepthook only logs: a teardown error is printed here
        window.document.undo_stack.setClean()
        window.close()           # stops autosave, training and the workers as a user's close does
        app.processEvents()
    except Exception:      # noqa: BLE001
        traceback.print_exc()
        return 1
    return 0 if text.endswith("PASS") else 1


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)        # no teardown of threads that a failing session may have left behind

#!/usr/bin/env python
"""Soak test of the threads around the GUI (a script, not collected by pytest): for several minutes,
autosave every 50 ms, edits that start background runs, kernel cell edits, selection changes that
rebuild the Arguments form and the kernel editor, and LeNet (optionally VGG-16) walkthroughs opened
and closed, some mid-capture, all interleaved at random. A 10 ms heartbeat on the GUI thread must
never stop: the deadlock of issue 9 froze the window for good after such a session. If the GUI
thread stops answering for --hang seconds, faulthandler prints every thread's stack and the
process exits with an error (instead of hanging).

    python tests/benchmarks/soak_threads.py --minutes 5 --seed 1
    python tests/benchmarks/soak_threads.py --minutes 15 --seed 2 --vgg

tests/ui/test_threads.py runs the same mix for a few seconds in CI."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import argparse
import faulthandler
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_explorer import STALL_MS, StallWatch, load_average, make_app, malloc_trim, rss_mb, temp_settings, wait_events  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hang", type=float, default=60.0, help="seconds of a silent GUI thread that count as a hang")
    parser.add_argument("--vgg", action="store_true", help="open VGG-16 walkthroughs too (slow to build on a CPU)")
    args = parser.parse_args(argv)

    app = make_app()
    from explorer.ui import dialogs
    from explorer.ui.gc_collector import freeze_startup_objects
    from explorer.ui.main_window import MainWindow
    errors: list[str] = []
    dialogs.show_error = lambda parent, title, message, details="": errors.append(message)     # no modal dialog
    dialogs.save_changes = lambda *a: "discard"
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="fme-soak-") as tmp:
        window = MainWindow(device="cpu", settings=temp_settings(Path(tmp)))
        window.resize(1400, 900)
        window.show()
        window.runner.wait_until_idle(60_000)
        freeze_startup_objects()
        window.autosaver.timer.setInterval(50)
        doc = window.document
        watch = StallWatch()
        start_rss = rss_mb()
        counts = dict(edits=0, cells=0, selections=0, walkthroughs=0, closed_mid_job=0)
        walks = []
        faulthandler.dump_traceback_later(args.hang, exit=True)
        end = time.monotonic() + args.minutes * 60
        last_report = time.monotonic()
        while time.monotonic() < end:
            faulthandler.dump_traceback_later(args.hang, exit=True)
            r = rng.random()
            convs = [i for i, l in enumerate(doc.stack.layers) if l.type == "Conv2d"]
            try:
                if r < 0.3 and convs:
                    doc.set_arg(rng.choice(convs), "out_channels", rng.choice([4, 6, 8, 12, 16]))
                    counts["edits"] += 1
                elif r < 0.45 and convs:
                    doc.select(rng.choice(convs))
                    window.kernel_editor.wait_until_ready(30_000)
                    if window.kernel_editor._weight is not None:
                        window.kernel_editor._cell_edited(rng.randrange(3), rng.randrange(3), rng.uniform(-1, 1))
                        counts["cells"] += 1
                elif r < 0.75:
                    doc.select(rng.randrange(len(doc.stack.layers)))
                    counts["selections"] += 1
                elif r < 0.82 and len(walks) < 2:
                    name = "vgg16" if args.vgg and rng.random() < 0.3 else "lenet"
                    walks.append(window.walkthroughs.open(name, "random"))
                    counts["walkthroughs"] += 1
                elif walks:
                    walk = walks.pop(0)
                    counts["closed_mid_job"] += walk.jobs.busy
                    walk.close()
            except ValueError as e:          # a refusal with its sentence is a fine answer
                errors.append(f"refused: {e}")
            wait_events(rng.choice([1, 5, 20, 60, 200]))
            if time.monotonic() - last_report > 30:
                last_report = time.monotonic()
                print(f"{time.strftime('%H:%M:%S')} worst gap {watch.worst:.0f} ms, RSS {rss_mb():.0f} MB, {counts}",
                      flush=True)
        for walk in walks:
            walk.close()
        window.autosaver.finish()
        window.runner.wait_until_idle(60_000)
        faulthandler.cancel_dump_traceback_later()
        watch.stop()
        trimmed = malloc_trim() or rss_mb()
        unexpected = [e for e in errors if not e.startswith("refused: ")]
        print(f"Soak of {args.minutes:g} min, seed {args.seed}, load {load_average()}: {counts}")
        print(f"worst GUI-thread gap {watch.worst:.0f} ms; stalls over {STALL_MS:.0f} ms: {len(watch.gaps)}; "
              f"worst: {watch.worst_stall()}")
        print(f"RSS {start_rss:.0f} -> {trimmed:.0f} MB after malloc_trim; error dialogs: {len(unexpected)}"
              + (f" (first: {unexpected[0]})" if unexpected else ""))
        window.document.undo_stack.setClean()
        window.close()
        app.processEvents()
        return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())

"""The job mechanism's Qt side (JobQueue) and the run controller built on it: outcomes arrive on the
GUI thread, the newest request wins, cancel drops, errors arrive as data, and the worker thread
ends with its owner."""

from __future__ import annotations

import threading

import torch

from explorer.core.layers import LayerSpec
from explorer.core.input_source import InputSource
from explorer.core.stack import Stack
from explorer.ui.jobs import JobError, JobQueue


def _until_cancelled(started: threading.Event):
    def job(context):
        started.set()
        while not context.cancelled():
            threading.Event().wait(0.001)
        return "superseded"
    return job


def test_the_newest_job_wins_and_its_answer_arrives_on_the_gui_thread(qtbot):
    queue = JobQueue("test-queue")
    answers, threads = [], []
    queue.finished.connect(lambda g, value: (answers.append((g, value)), threads.append(threading.get_ident())))
    started = threading.Event()
    queue.submit(_until_cancelled(started))
    assert started.wait(10) and queue.busy
    newest = queue.submit(lambda context: threading.get_ident())
    assert queue.wait_until_idle(10_000)
    assert [g for g, _ in answers] == [newest] == [2]
    assert answers[0][1] != threading.get_ident()                  # it ran on the worker thread...
    assert threads == [threading.get_ident()]                      # ...and was told on this one
    queue.shutdown()


def test_cancel_drops_the_answer_and_is_idle_at_once(qtbot):
    queue = JobQueue("test-queue")
    answers = []
    queue.finished.connect(lambda g, v: answers.append(v))
    queue.failed.connect(lambda g, f: answers.append(f))
    busy = []
    queue.busy_changed.connect(busy.append)
    started = threading.Event()
    queue.submit(_until_cancelled(started))
    assert started.wait(10)
    queue.cancel()
    assert not queue.busy and busy == [True, False]
    qtbot.wait(100)
    assert answers == []                                            # the late "superseded" never arrives
    queue.shutdown()


def test_cancel_keeping_the_answer_reports_the_cancelled_job(qtbot):
    queue = JobQueue("test-queue")
    failures = []
    queue.failed.connect(lambda g, f: failures.append(f))
    started = threading.Event()

    def job(context):
        started.set()
        while True:
            context.check_cancelled()
            threading.Event().wait(0.001)

    queue.submit(job)
    assert started.wait(10)
    queue.cancel(keep_answer=True)
    assert queue.busy
    assert queue.wait_until_idle(10_000)
    assert len(failures) == 1 and failures[0].cancelled


def test_an_error_is_reported_as_a_job_error(qtbot):
    queue = JobQueue("test-queue")
    failures = []
    queue.failed.connect(lambda g, f: failures.append((g, f)))
    generation = queue.submit(lambda context: {}["missing"])
    assert queue.wait_until_idle(10_000)
    (g, failure), = failures
    assert g == generation and isinstance(failure, JobError) and isinstance(failure.error, KeyError)
    assert "KeyError" in failure.details and not failure.cancelled


def test_only_the_newest_jobs_progress_and_posts_arrive(qtbot):
    queue = JobQueue("test-queue")
    seen = []
    queue.progressed.connect(lambda g, p: seen.append(("progress", g, p)))
    queue.posted.connect(lambda g, p: seen.append(("post", g, p)))
    release = threading.Event()

    def old(context):
        release.wait(10)
        context.progress("old")                  # after a newer submit: dropped on the GUI side
        return None

    def new(context):
        context.post("plan")
        context.progress((1, 1))

    queue.submit(old)
    queue.submit(new)
    release.set()
    assert queue.wait_until_idle(10_000)
    assert seen == [("post", 2, "plan"), ("progress", 2, (1, 1))]


def test_if_idle_refuses_while_busy(qtbot):
    queue = JobQueue("test-queue")
    started = threading.Event()
    assert queue.submit(_until_cancelled(started), if_idle=True) == 1
    assert started.wait(10)
    assert queue.submit(lambda context: 2, if_idle=True) is None
    queue.cancel(keep_answer=True)
    assert queue.wait_until_idle(10_000)
    assert queue.submit(lambda context: 3, if_idle=True) == 2
    assert queue.wait_until_idle(10_000)


def test_a_queue_kept_for_its_caches_delivers_superseded_answers_too(qtbot):
    queue = JobQueue("test-queue", newest_only=False)
    answers = []
    queue.finished.connect(lambda g, v: answers.append(g))
    release, started = threading.Event(), threading.Event()
    queue.submit(lambda context: started.set() or release.wait(10))
    assert started.wait(10)
    queue.submit(lambda context: "second")
    release.set()
    qtbot.waitUntil(lambda: len(answers) == 2, timeout=10_000)
    assert answers == [1, 2] and not queue.busy


def test_the_thread_ends_with_its_queue(qtbot):
    from PySide6.QtCore import QCoreApplication, QEvent
    queue = JobQueue("test-queue-ends")
    queue.submit(lambda context: None)
    assert queue.wait_until_idle(10_000)
    thread = next(t for t in threading.enumerate() if t.name == "test-queue-ends")
    queue.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    del queue
    qtbot.waitUntil(lambda: not thread.is_alive(), timeout=5000)


# ---------------------------------------------------------------- RunController
def _conv_stack(out_channels: int) -> Stack:
    return Stack([LayerSpec("Conv2d", "conv1", {"in_channels": 3, "out_channels": out_channels, "kernel_size": 3}),
                  LayerSpec("ReLU", "relu1", {})], seed=0)


def test_run_controller_answers_the_newest_request_only_with_the_real_output(qtbot):
    from explorer.core.layers import build_module
    from explorer.ui.workers import RunController
    runner = RunController()
    replies = []
    runner.finished.connect(replies.append)
    source = InputSource.sample("astronaut")
    for channels in (4, 5, 6, 7):
        runner.submit(_conv_stack(channels), source, "cpu", focus=0)
    assert runner.wait_until_idle(30_000)
    assert [r.generation for r in replies][-1] == runner.latest_generation == 4
    assert all(r.generation == 4 for r in replies)              # superseded runs never answer
    reply = replies[-1]
    conv = build_module(_conv_stack(7).layers[0], 0)
    with torch.no_grad():
        expected = conv(reply.batch.tensor)
    assert torch.allclose(reply.result.layers[0].output, expected, atol=1e-6)
    assert torch.equal(reply.result.layers[1].output, expected.clamp(min=0))
    assert reply.display is not None and reply.display.view.grid.image.dtype.name == "uint8"
    runner.shutdown()


def test_run_controller_says_a_failing_layer_in_place(qtbot):
    from explorer.ui.workers import RunController
    runner = RunController()
    replies = []
    runner.finished.connect(replies.append)
    bad = Stack([LayerSpec("Conv2d", "conv1", {"in_channels": 5, "out_channels": 2, "kernel_size": 3})], seed=0)
    runner.submit(bad, InputSource.sample("astronaut"), "cpu")
    assert runner.wait_until_idle(30_000)
    (reply,) = replies
    assert reply.error is None and reply.result.layers[0].error           # the layer's own sentence
    assert "conv1" in reply.result.layers[0].error and "\n" not in reply.result.layers[0].error.strip()


def test_run_controller_reports_an_unreadable_input_as_one_sentence(qtbot, tmp_path):
    from explorer.ui.workers import RunController
    runner = RunController()
    replies = []
    runner.finished.connect(replies.append)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a picture")
    runner.submit(_conv_stack(3), InputSource.image(broken), "cpu")
    assert runner.wait_until_idle(30_000)
    (reply,) = replies
    assert reply.result is None and "broken.png" in reply.input_error


def test_a_superseded_run_stops_between_layers(qtbot, monkeypatch):
    """A long stack is superseded while it runs: it stops at its next layer instead of finishing."""
    from explorer.core.engine import StackRunner
    from explorer.ui.workers import RunController
    runs = []
    original = StackRunner.run

    def recording(self, stack, x, *args, **kwargs):
        result = original(self, stack, x, *args, **kwargs)
        runs.append((len(stack.layers), len(result.layers), result.cancelled))
        return result

    monkeypatch.setattr(StackRunner, "run", recording)
    runner = RunController()
    layers_run = []
    progress_seen = threading.Event()

    def on_progress(done, total):
        layers_run.append((runner.latest_generation, done, total))
        progress_seen.set()

    runner.progress.connect(on_progress)
    replies = []
    runner.finished.connect(replies.append)
    long = Stack([LayerSpec("Conv2d", f"conv{i}", {"in_channels": 3, "out_channels": 3, "kernel_size": 3,
                                                    "padding": 1}) for i in range(200)], seed=0)
    source = InputSource.sample("astronaut")
    runner.submit(long, source, "cpu")
    qtbot.waitUntil(progress_seen.is_set, timeout=30_000)
    runner.submit(_conv_stack(2), source, "cpu")
    assert runner.wait_until_idle(60_000)
    assert [r.generation for r in replies] == [2] and len(replies[0].result.layers) == 2
    (total, ran, cancelled), second = runs
    assert total == 200 and cancelled and ran < 200 and second == (2, 2, False)

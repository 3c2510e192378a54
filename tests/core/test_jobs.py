"""The job mechanism's pure part: a lane runs the newest job, cancels the one it supersedes at its
next check, reports errors as data, and ends its thread when nobody listens."""

from __future__ import annotations

import threading

from explorer.core.jobs import CancelToken, Cancelled, JobError, Lane


class Inbox:
    """A deliver callback that records outcomes; ``listening`` False makes the lane's thread end."""

    def __init__(self):
        self.items: list[tuple[int, str, object]] = []
        self.arrived = threading.Condition()
        self.listening = True

    def __call__(self, generation, kind, payload) -> bool:
        with self.arrived:
            self.items.append((generation, kind, payload))
            self.arrived.notify_all()
        return self.listening

    def wait_for(self, count: int) -> list:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.items) >= count, timeout=10)
            return list(self.items)


def test_a_token_stops_and_cancels():
    token = CancelToken()
    assert not token() and not token.cancelled
    token.stop()
    assert token() and token.stopping and not token.cancelled
    token.cancel()
    assert token.cancelled
    try:
        token.check()
    except Cancelled:
        pass
    else:
        raise AssertionError("check() did not raise")


def test_a_newer_job_cancels_the_running_one_and_only_the_newest_answers_done():
    inbox = Inbox()
    lane = Lane("test-lane", inbox)
    started = threading.Event()

    def slow(context):
        started.set()
        steps = 0
        while not context.cancelled():          # a job checks between its steps
            steps += 1
            threading.Event().wait(0.001)
        return ("stopped after", steps)

    first = lane.submit(slow)
    assert started.wait(10)
    second = lane.submit(lambda context: 6 * 7)
    items = inbox.wait_for(2)
    assert (first, second) == (1, 2)
    assert items[0][0] == 1 and items[0][1] == "done" and items[0][2][0] == "stopped after"
    assert items[1] == (2, "done", 42)
    lane.close()
    assert lane.join(5)


def test_a_waiting_job_is_replaced_and_never_runs():
    inbox = Inbox()
    lane = Lane("test-lane", inbox)
    gate, started = threading.Event(), threading.Event()
    ran = []
    lane.submit(lambda context: started.set() or gate.wait(10) and ran.append("first"))
    assert started.wait(10)
    lane.submit(lambda context: ran.append("second"))     # waits behind the first...
    lane.submit(lambda context: ran.append("third"))      # ...and is replaced before it starts
    gate.set()
    items = inbox.wait_for(2)
    assert ran == ["first", "third"] and [g for g, _, _ in items] == [1, 3]
    lane.close()


def test_an_error_is_delivered_as_data_and_the_thread_carries_on():
    inbox = Inbox()
    lane = Lane("test-lane", inbox)
    lane.submit(lambda context: 1 / 0)
    generation, kind, failure = inbox.wait_for(1)[0]
    assert kind == "failed" and isinstance(failure, JobError) and isinstance(failure.error, ZeroDivisionError)
    assert "ZeroDivisionError" in failure.details and failure.error.__traceback__ is None and not failure.cancelled
    lane.submit(lambda context: "still here")
    assert inbox.wait_for(2)[1] == (2, "done", "still here")
    lane.close()


def test_cancelled_raised_inside_a_job_is_a_cancelled_failure():
    inbox = Inbox()
    lane = Lane("test-lane", inbox)
    started, release = threading.Event(), threading.Event()

    def job(context):
        started.set()
        release.wait(10)
        context.check_cancelled()
        return "not reached"

    lane.submit(job)
    assert started.wait(10)
    lane.cancel()
    release.set()
    _, kind, failure = inbox.wait_for(1)[0]
    assert kind == "failed" and failure.cancelled and isinstance(failure.error, Cancelled)
    lane.close()


def test_progress_and_posts_carry_the_generation():
    inbox = Inbox()
    lane = Lane("test-lane", inbox)

    def job(context):
        context.post("plan")
        for i in range(3):
            context.progress((i + 1, 3))
        return "done"

    lane.submit(job)
    assert inbox.wait_for(5) == [(1, "post", "plan"), (1, "progress", (1, 3)), (1, "progress", (2, 3)),
                                 (1, "progress", (3, 3)), (1, "done", "done")]
    lane.close()


def test_if_idle_refuses_while_a_job_runs():
    inbox = Inbox()
    lane = Lane("test-lane", inbox)
    gate = threading.Event()
    assert lane.submit(lambda context: gate.wait(10), if_idle=True) == 1
    assert lane.submit(lambda context: "refused", if_idle=True) is None
    gate.set()
    inbox.wait_for(1)
    assert lane.join(0.05) is False or lane.idle      # the thread waits for the next job
    assert lane.submit(lambda context: "now", if_idle=True) == 2
    assert inbox.wait_for(2)[1] == (2, "done", "now")
    lane.close()


def test_the_thread_ends_when_nobody_listens_or_the_lane_closes():
    inbox = Inbox()
    inbox.listening = False
    lane = Lane("test-lane", inbox)
    lane.submit(lambda context: 1)
    inbox.wait_for(1)
    assert lane.join(5)
    other = Lane("test-lane-2", Inbox())
    other.submit(lambda context: 1)
    other.close()
    assert other.join(5)
    assert other.submit(lambda context: 2) is None           # a closed lane takes nothing


def test_finish_all_ends_every_lane_before_the_process_does():
    """run_app and the test session call finish_all before the interpreter shuts down: a lane's
    daemon thread still in a job (inside torch) at that moment aborts the whole process."""
    from explorer.core.jobs import finish_all
    started = threading.Event()
    lanes = [Lane(f"finish-{i}", Inbox()) for i in range(3)]

    def long_job(context):
        started.set()
        while not context.token():          # a job that checks its token between steps
            threading.Event().wait(0.01)
        raise Cancelled()
    lanes[0].submit(long_job)
    lanes[1].start()                          # idle, waiting for work
    assert started.wait(10)
    assert finish_all(10.0)
    assert all(lane._thread is None or not lane._thread.is_alive() for lane in lanes)
    assert lanes[0].submit(long_job) is None  # closed: nothing new starts

"""cli/queue/runner.py against fake servers that misbehave: disconnects, restarts, hangs,
answers that trickle in, HTML instead of JSON, a /history that keeps failing, bugs in a worker.

Every run is bounded (``run_bounded``): a run that would hang fails the test instead. Short
deadlines make the runs quick; nothing asserts how fast anything is.
"""
from __future__ import annotations

import threading
import time


from comfyui_ld_portrait.cli import queue as sq
from comfyui_ld_portrait.dataset import index_id, read_manifest

from helpers.fake_comfy_server import FakeComfyServer
from helpers.queue_runs import ids_in, make_runner, run_bounded, run_queue


def wait_for(condition, limit: float = 30.0, what: str = "the condition") -> bool:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


# ---- connections ----------------------------------------------------------------------------

def test_disconnecting_server_jobs_are_redistributed(fake, fake2, root):
    # Requests 2..6 of the first server are answered by closing the socket (object_info is 1).
    fake.disconnect_on = {2, 3, 4, 5, 6}
    summary, log = run_queue([fake, fake2], range(8), root)
    assert summary.done == 8 and summary.exit_code == 0, summary.to_text()
    assert ids_in(root) == {index_id(i) for i in range(8)}
    assert summary.servers[0]["connection_errors"] >= 1
    assert "closed the connection" in log
    assert len(read_manifest(root)) == 8  # no duplicates even if a job ran twice


def test_server_stopped_mid_run_and_restarted(output_dir, root):
    server = FakeComfyServer(output_dir, exec_delay=0.05).start()
    runner = make_runner([server], range(8), root, retries=3)
    try:
        def bounce():
            wait_for(lambda: len(server.executed) >= 2)
            server.stop()
            # Down until the runner has found the port closed, however long that takes here
            # (a request cut off by the stop itself reads as a reset, not as refused).
            wait_for(lambda: "connection refused" in runner.stream.getvalue())
            server.start()  # same port

        thread = threading.Thread(target=bounce, daemon=True)
        thread.start()
        summary = run_bounded(runner)
        thread.join(30)
        log = runner.stream.getvalue()
        assert summary.done == 8 and summary.exit_code == 0, summary.to_text() + log
        assert ids_in(root) == {index_id(i) for i in range(8)}
        assert summary.servers[0]["connection_errors"] >= 1
        assert "connection refused" in log
    finally:
        server.stop()


def test_jobs_on_a_server_that_goes_away_are_redistributed(output_dir, root, fake2):
    gone = FakeComfyServer(output_dir, exec_delay=60.0).start()
    fake2.paused = True  # until the doomed server holds its two jobs
    try:
        def kill_when_busy():
            wait_for(lambda: len(gone.received) >= 2)
            fake2.paused = False
            gone.stop()  # and never comes back

        threading.Thread(target=kill_when_busy, daemon=True).start()
        summary, log = run_queue([gone, fake2], range(6), root, server_down_after=0.3,
                                 retries=1)
    finally:
        gone.stop()
    assert summary.done == 6 and summary.exit_code == 0, summary.to_text() + log
    assert summary.servers[0]["done"] == 0 and summary.servers[0]["failed_attempts"] == 2
    assert "server unreachable for more than 0.3 s" in log
    assert sorted(fake2.received_indices()) == list(range(6))


def test_gives_up_when_no_server_answers(output_dir, root):
    dead = FakeComfyServer(output_dir).start()
    dead.stop()  # nothing listens on its port any more
    summary, log = run_queue([dead.url], range(3), root, give_up_after=0.4)
    assert summary.failed == 3 and summary.exit_code == 1
    assert "no server answered for 0.4 s" in summary.stop_reason
    assert "connection refused" in summary.stop_reason
    assert "not reachable now" in log


def test_giving_up_fails_a_job_a_worker_still_holds(output_dir, root):
    # The race behind a flaky run: the give-up came while the worker held a job between taking
    # it and putting it back; that job must fail with the give-up reason, not be "unfinished".
    dead = FakeComfyServer(output_dir).start()
    dead.stop()
    runner = make_runner([dead.url], range(3), root, give_up_after=0.4)
    real_submit = runner._submit
    calls = []

    def submit_held_until_closing(server, job):
        calls.append(job.sample_id)
        if len(calls) == 2:  # the first failure lets the run give up; hold the second take
            wait_for(lambda: runner._closing)
        return real_submit(server, job)

    runner._submit = submit_held_until_closing
    summary = run_bounded(runner)
    assert len(calls) >= 2 and runner._closing, runner.stream.getvalue()
    assert (summary.failed, summary.unfinished) == (3, 0), summary.to_text()
    assert all("no server answered for 0.4 s" in reason for _, reason in summary.failures)
    assert not summary.interrupted and summary.exit_code == 1


def test_a_server_that_answers_one_byte_at_a_time_is_given_up(fake):
    for path in ("/object_info", "/prompt", "/queue", "/history"):
        fake.drip_for[path] = 0.05
    # Without --dataset: nothing on disk can tell the runner that a job ran after all.
    summary, log = run_queue([fake], range(2), None, http_timeout=0.3, give_up_after=1.0)
    assert (summary.failed, summary.done) == (2, 0), summary.to_text() + log
    assert "no complete answer within 0.3 s" in summary.stop_reason
    assert "not reachable now (no complete answer within 0.3 s)" in log


# ---- answers the queue cannot use -------------------------------------------------------------

def test_html_from_post_prompt_is_reported_as_html(fake, root):
    fake.html_for.add("/prompt")
    summary, log = run_queue([fake], range(2), root, retries=1)
    assert (summary.failed, summary.done) == (2, 0), summary.to_text() + log
    for _, reason in summary.failures:
        assert "POST /prompt: the server answered HTML, not JSON: is this a ComfyUI server?" \
            in reason and "after 2 attempts" in reason
        assert "vanished" not in reason
    assert fake.received == []


def test_history_failing_while_the_queue_answers_does_not_hang(fake):
    fake.status_for["/history"] = 500
    summary, log = run_queue([fake], range(2), None, retries=1, give_up_after=0.5)
    assert (summary.failed, summary.done) == (2, 0), summary.to_text() + log
    for _, reason in summary.failures:
        assert "its result could not be read for 0.5 s" in reason
        assert "answered HTTP 500" in reason and "after 2 attempts" in reason
    assert fake.executed  # the jobs ran; only their results were unreadable
    assert fake.requests.count(("GET", "/queue")) >= 2  # the queue kept answering
    warnings = [line for line in log.splitlines()
                if "answered HTTP 500 Internal Server Error" in line and "pausing it" in line]
    assert 1 <= len(warnings) <= 4  # one warning per prompt id


def test_unreadable_history_with_the_sample_on_disk_ends_done(fake, root):
    # With --dataset the retry finds the sample the first attempt wrote and counts it done.
    fake.status_for["/history"] = 500
    summary, log = run_queue([fake], range(2), root, retries=1, give_up_after=0.5)
    assert (summary.done, summary.failed, summary.retries) == (2, 0, 2), summary.to_text() + log
    assert "its result could not be read for 0.5 s" in log
    assert sorted(fake.received_indices()) == [0, 1]  # found on disk, not submitted again


def test_a_job_that_never_starts_is_bounded_by_timeout_plus_give_up(fake, root):
    fake.paused = True  # the prompt waits for ever, e.g. behind another client's hung job
    summary, log = run_queue([fake], range(1), root, timeout=0.2, give_up_after=0.5, retries=0)
    assert (summary.failed, summary.done) == (1, 0), summary.to_text() + log
    reason = summary.failures[0][1]
    assert "not started 0.7 s after submission (--timeout 0.2 + --give-up-after 0.5)" in reason
    assert fake.deleted  # the waiting prompt was taken back
    assert summary.servers[0]["timeouts"] == 1


# ---- hung jobs ----------------------------------------------------------------------------------

def test_job_timeout_moves_work_to_another_server(output_dir, root, fake2):
    with FakeComfyServer(output_dir, exec_delay=60.0) as slow:
        fake2.paused = True  # until the slow server holds its two jobs
        threading.Thread(target=lambda: wait_for(lambda: len(slow.received) >= 2) and
                         setattr(fake2, "paused", False), daemon=True).start()
        summary, log = run_queue([slow, fake2], range(6), root, timeout=0.3, retries=2)
        assert summary.done == 6 and summary.exit_code == 0, summary.to_text() + log
        assert summary.servers[0]["timeouts"] >= 1
        assert "timed out" in log
        # The job queued behind the hung one was taken back with POST /queue {"delete": ...}.
        assert slow.deleted
    assert ids_in(root) == {index_id(i) for i in range(6)}


def test_a_job_that_hangs_forever_disables_its_server_and_ends_the_run(output_dir, root):
    with FakeComfyServer(output_dir, exec_delay=0.03) as server:
        server.delay_for[0] = 3600.0  # runs "forever" (until the fake stops)
        runner = make_runner([server], range(3), root, timeout=0.2, give_up_after=1.5,
                             retries=1)
        started = time.monotonic()
        summary = run_bounded(runner)
        elapsed = time.monotonic() - started
        assert server.executed == []  # the hung job never finished; nothing else ran
        assert server.deleted  # the job queued behind it was taken back
    log = runner.stream.getvalue()
    assert elapsed >= 0.2 + 1.5  # not before --timeout + --give-up-after
    assert summary.exit_code == 1 and not summary.interrupted, summary.to_text() + log
    assert (summary.done, summary.failed, summary.unfinished) == (0, 3, 0)
    assert "no usable server left" in summary.stop_reason
    assert "server stuck" in summary.stop_reason
    assert all("server stuck" in reason for _, reason in summary.failures)
    state = summary.servers[0]
    assert state["enabled"] is False and "server stuck: job 000000" in state["disabled_reason"]
    assert state["timeouts"] == 1
    assert "not using this server any more" in log and "giving up" in log


def test_stuck_server_is_not_counted_as_somewhere_else_to_run(fake, fake2):
    # A retry avoids the server it failed on only while another server could take it; a
    # server stuck on a timed-out job takes nothing, so the retry must not wait for it.
    runner = make_runner([fake, fake2], range(0))
    stuck, other = runner.servers
    job = sq.Job(0, index_id(0), avoid=other.url)
    runner._pending.append(job)
    stuck.stuck["prompt-1"] = (time.monotonic(), index_id(5))
    assert runner._take_job(other) is job
    runner._pending.append(job)
    stuck.stuck.clear()  # once it is free again, the retry prefers it
    assert runner._take_job(other) is None and runner._take_job(stuck) is job


# ---- bugs in a worker -----------------------------------------------------------------------

def test_an_unexpected_error_in_a_worker_does_not_lose_the_job(fake, root):
    runner = make_runner([fake], range(4), root)
    real_submit = runner._submit
    calls = []

    def submit_failing_once(server, job):
        calls.append(job.sample_id)
        if len(calls) == 1:
            raise RuntimeError("injected failure")
        return real_submit(server, job)

    runner._submit = submit_failing_once
    summary = run_bounded(runner)
    log = runner.stream.getvalue()
    assert summary.done == 4 and summary.exit_code == 0, summary.to_text() + log
    assert calls.count(index_id(0)) == 2  # taken, lost to the crash, put back, submitted
    assert sorted(fake.received_indices()) == [0, 1, 2, 3]
    assert "unexpected error in the queue worker: RuntimeError: injected failure" in log


def test_a_crash_after_a_job_left_the_in_flight_list_does_not_lose_it(fake, root):
    runner = make_runner([fake], range(3), root)
    real_succeeded = runner._succeeded
    crashed = []

    def succeeded_failing_once(job, server):
        if not crashed:
            crashed.append(job.sample_id)
            raise KeyError("injected")
        return real_succeeded(job, server)

    runner._succeeded = succeeded_failing_once
    summary = run_bounded(runner)
    assert summary.done == 3 and summary.exit_code == 0, \
        summary.to_text() + runner.stream.getvalue()
    # The job finished on the server; put back, it was found complete and not submitted again.
    assert fake.received_indices().count(int(crashed[0])) == 1


def test_a_job_that_always_crashes_the_worker_fails_after_the_retries(fake, root):
    runner = make_runner([fake], range(3), root, retries=1)
    real_submit = runner._submit

    def submit(server, job):
        if job.index == 1:
            raise ValueError("always broken")
        return real_submit(server, job)

    runner._submit = submit
    summary = run_bounded(runner)
    assert (summary.done, summary.failed) == (2, 1) and summary.exit_code == 1
    assert summary.failures[0][0] == index_id(1)
    assert "internal error" in summary.failures[0][1] and "always broken" in summary.failures[0][1]


def test_run_ends_when_every_worker_thread_has_stopped(fake, root):
    runner = make_runner([fake], range(3), root)
    runner._serve = lambda server: None  # a worker that dies at once (e.g. BaseException)
    summary = run_bounded(runner)
    assert summary.failed == 3 and summary.exit_code == 1 and not summary.interrupted
    assert "every server worker thread has stopped" in summary.stop_reason
    assert "gave up" in summary.stop_reason

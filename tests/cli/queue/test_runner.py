"""cli/queue/runner.py against fake ComfyUI servers: submission, resume, retries, stop.

No test relies on how fast the machine is: where an order of events matters, the fake server
is paused (``paused``) or the test waits for an event with a generous bound; every run is
bounded by ``run_bounded`` so that a hang fails instead of blocking the suite.
"""
from __future__ import annotations

import re
import threading
import time

import numpy as np
import pytest

from comfyui_ld_portrait.cli import queue as sq
from comfyui_ld_portrait.dataset import DatasetWriter, index_id, read_manifest, verify

from helpers import fake_comfy_server as fake_module
from helpers.fake_comfy_server import FakeComfyServer
from helpers.queue_runs import GRAPH, ids_in, make_runner, run_bounded, run_queue


def wait_for(condition, limit: float = 30.0, what: str = "the condition") -> None:
    """Wait until ``condition()`` holds; fail the test after ``limit`` s (a hang, not speed)."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {limit:g} s")
        time.sleep(0.005)


def resume_when(servers, condition) -> threading.Thread:
    """Start paused ``servers`` once ``condition()`` holds (in a thread)."""
    for server in servers:
        server.paused = True

    def resume():
        deadline = time.monotonic() + 30
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.005)
        for server in servers:
            server.paused = False

    thread = threading.Thread(target=resume, daemon=True)
    thread.start()
    return thread


# ---- normal runs --------------------------------------------------------------------------

def test_submits_the_right_graphs_and_completes_the_dataset(fake, root):
    summary, log = run_queue([fake], range(5), root)
    assert summary.exit_code == 0, summary.to_text() + log
    assert (summary.done, summary.failed, summary.skipped) == (5, 0, 0)
    assert sorted(fake.received_indices()) == list(range(5))
    for graph in fake.received:
        index = graph["9"]["inputs"]["sample_index"]
        expected, _ = sq.rewrite_graph(GRAPH, index, base_seed=7)  # template's seed is the base
        assert graph == expected
    assert ids_in(root) == {index_id(i) for i in range(5)}
    assert verify(root).ok and len(read_manifest(root)) == 5
    assert fake.requests.count(("POST", "/prompt")) == 5


def test_in_flight_bound_is_respected_per_server(output_dir, root):
    with FakeComfyServer(output_dir, exec_delay=0.02) as server:
        # Paused until two jobs wait there: the bound is reached whatever the machine's speed.
        resume_when([server], lambda: len(server.received) >= 2)
        summary, _ = run_queue([server], range(8), root, in_flight=2)
        assert summary.done == 8
        assert server.max_outstanding == 2  # reached, never exceeded
    with FakeComfyServer(output_dir, exec_delay=0.02) as server:
        summary, _ = run_queue([server], range(8, 12), root, in_flight=1)
        assert summary.done == 4 and server.max_outstanding == 1


def test_two_servers_share_the_work(fake, fake2, root):
    resume_when([fake, fake2], lambda: fake.received and fake2.received)
    summary, _ = run_queue([fake, fake2], range(12), root)
    assert summary.done == 12 and summary.exit_code == 0
    first, second = fake.received_indices(), fake2.received_indices()
    assert first and second
    assert sorted(first + second) == list(range(12))  # each job submitted once
    assert fake.max_outstanding <= 2 and fake2.max_outstanding <= 2
    assert [s["submitted"] for s in summary.servers] == [len(first), len(second)]


def test_resume_skips_complete_ids(fake, root):
    writer = DatasetWriter(root, durable=False)
    for index in (1, 3):
        writer.write_sample(index_id(index), np.zeros((4, 4, 3)), np.ones((4, 4)))
    writer.write_sample(index_id(4), np.zeros((4, 4, 3)), np.ones((4, 4)), rejected=True)
    summary, _ = run_queue([fake], range(6), root)
    assert sorted(fake.received_indices()) == [0, 2, 5]
    assert (summary.skipped, summary.done, summary.exit_code) == (3, 3, 0)
    assert "skipped" in summary.to_text() and "already complete" in summary.to_text()
    # A second run has nothing to do and contacts no server.
    before = len(fake.requests)
    summary, _ = run_queue([fake], range(6), root)
    assert summary.skipped == 6 and summary.exit_code == 0 and len(fake.requests) == before


def test_a_huge_range_is_walked_lazily(fake, root):
    # 2**53 indices: a list of them would never fit in memory; the run takes what it needs.
    runner = make_runner([fake], range(2**53), root, in_flight=1)
    threading.Thread(target=lambda: (wait_for(lambda: len(fake.executed) >= 3, what="3 jobs"),
                                     runner.stop()), daemon=True).start()
    summary = run_bounded(runner)
    assert summary.requested == 2**53 and summary.interrupted
    assert summary.done == len(fake.executed) >= 3
    assert len(runner._jobs) == summary.done  # only the jobs it took exist
    assert summary.unfinished == 2**53 - summary.done
    assert summary.not_started.count == 2**53 - summary.done
    assert summary.not_started.first_index == summary.done
    assert f"{summary.done} and later" in summary.to_text()


def test_index_source_checks_bounds_and_drops_duplicates():
    source = sq.IndexSource([3, 1, 3, 2, 1])
    assert [source.next() for _ in range(4)] == [3, 1, 2, None] and source.count == 3
    for bad in ([-1], [2**53], [True], [1.5], range(5, 0, -1)):
        with pytest.raises(ValueError):
            sq.IndexSource(bad)
    big = sq.IndexSource(range(10, 2**53))
    assert big.count == 2**53 - 10 and big.next() == 10 and big.peek_remaining() == 11
    assert big.count_in({"000012", "000003", "12", "abc", "0000012"}) == 1
    assert sq.IndexSource([5, 12]).count_in({"000012", "000005", "000006"}) == 2


# ---- failures and retries -------------------------------------------------------------------

def test_execution_error_is_retried_then_counted_failed(fake, fake2, root):
    for server in (fake, fake2):
        server.fail_times[2] = 10**6  # always fails
        server.fail_times[4] = 1      # fails once on each server, then succeeds
    summary, log = run_queue([fake, fake2], range(6), root, retries=2)
    received = fake.received_indices() + fake2.received_indices()
    assert received.count(2) == 3      # 1 + --retries attempts
    assert received.count(4) == 3      # failed on one server, then the other, then done
    assert summary.failed == 1 and summary.done == 5 and summary.exit_code == 1
    assert summary.failures[0][0] == index_id(2)
    assert "fake failure for sample 2" in summary.failures[0][1]
    assert "after 3 attempts" in summary.failures[0][1]
    assert summary.retries == 4        # two for sample 2, two for sample 4
    assert index_id(4) in ids_in(root)
    assert "retrying 000002" in log


def test_failed_job_is_retried_on_another_server(fake, fake2, root):
    fake.fail_times[0] = 1
    fake2.fail_times[0] = 1
    summary, _ = run_queue([fake, fake2], [0], root, retries=1)
    # The retry avoided the server that failed it, so both servers ran it once.
    assert fake.received_indices() == [0] and fake2.received_indices() == [0]
    assert summary.failed == 1 and summary.retries == 1


def test_validation_error_is_not_retried_and_reports_the_node_message(fake, root):
    fake.validation_errors[1] = ("1", "Value not in list",
                                 "ckpt_name: 'sdxl.safetensors' not in ['other.safetensors']")
    summary, log = run_queue([fake], range(3), root, retries=3)
    assert fake.received_indices().count(1) == 1
    assert summary.failed == 1 and summary.done == 2 and summary.retries == 0
    reason = summary.failures[0][1]
    assert "Prompt outputs failed validation" in reason
    assert ("node 1 (CheckpointLoaderSimple): Value not in list: ckpt_name: 'sdxl.safetensors' "
            "not in ['other.safetensors']") in reason
    assert "Value not in list" in summary.to_text() and "Value not in list" in log


def test_server_without_the_node_pack_is_not_used(output_dir, root, fake):
    with FakeComfyServer(output_dir, node_types=("KSampler",)) as bare:
        summary, log = run_queue([bare, fake], range(3), root)
        assert summary.done == 3
        assert bare.received == []
        assert "missing node type(s)" in log and "LDPPromptTemplate" in log
        with pytest.raises(sq.QueueSetupError, match="no server can run this graph"):
            run_queue([bare], range(3, 6), root)


def test_rejected_and_missing_samples_after_success(fake, root):
    fake.reject_indices.add(1)
    fake.no_write_indices.add(2)
    summary, _ = run_queue([fake], range(4), root, verify_wait=0.3)
    assert (summary.done, summary.rejected, summary.failed) == (2, 1, 1)
    assert summary.failures[0][0] == index_id(2)
    assert "reported success but sample 000002 is not in" in summary.failures[0][1]
    assert summary.exit_code == 1
    assert fake.received_indices().count(2) == 1  # not retried


def test_max_failures_stops_submitting(fake, root):
    for index in range(20):
        fake.fail_times[index] = 1
    summary, log = run_queue([fake], range(20), root, retries=0, max_failures=2, in_flight=1)
    assert summary.failed == 2 and summary.unfinished == 18 and summary.exit_code == 1
    assert not summary.interrupted and "--max-failures 2" in summary.stop_reason
    assert len(fake.received) == 2


def test_a_retry_waits_for_the_backoff_while_other_jobs_go_on(fake, root):
    fake.fail_times[0] = 1
    submissions = []
    real_post = fake._post_prompt

    def recording_post(body):
        submissions.append((time.monotonic(), fake_module.sample_index_of(body["prompt"])))
        return real_post(body)

    fake._post_prompt = recording_post
    summary, log = run_queue([fake], range(4), root, in_flight=1, retries=1, backoff=0.4,
                             backoff_max=0.4)
    assert summary.done == 4 and summary.retries == 1, summary.to_text() + log
    times = [t for t, index in submissions if index == 0]
    assert len(times) == 2 and times[1] - times[0] >= 0.4  # the back-off is a lower bound
    order = [index for _, index in submissions]
    assert order[:2] == [0, 1]  # the next job went on during the back-off
    assert "retrying 000000 in 0.4 s" in log


# ---- stopping -----------------------------------------------------------------------------

def test_stop_from_another_thread_gives_clean_summary_and_130(output_dir, root):
    with FakeComfyServer(output_dir, exec_delay=0.05) as server:
        runner = make_runner([server], range(30), root)

        def stop_soon():
            wait_for(lambda: len(server.executed) >= 2, what="two executed jobs")
            runner.stop()

        threading.Thread(target=stop_soon, daemon=True).start()
        summary = run_bounded(runner)
    assert summary.interrupted and summary.exit_code == 130
    assert 2 <= summary.done < 30
    # The jobs in flight were allowed to finish: nothing is left on the server.
    assert summary.done == len(server.executed) == len(server.received)
    assert summary.unfinished == 30 - summary.done
    assert all(reason == "not started (stopped)" for _, reason in summary.unfinished_items)
    assert summary.not_started.reason == "not started (stopped)"
    text = summary.to_text()
    assert "(interrupted)" in text and "run the same command again" in text


def test_hard_stop_reports_jobs_left_on_the_server(output_dir, root):
    with FakeComfyServer(output_dir) as server:
        server.paused = True  # the two jobs stay queued there
        runner = make_runner([server], range(4), root, grace=0.0)

        def stop_when_both_are_queued():
            wait_for(lambda: runner.in_flight_count() >= 2, what="two jobs in flight")
            runner.stop()

        threading.Thread(target=stop_when_both_are_queued, daemon=True).start()
        summary = run_bounded(runner)
    assert summary.exit_code == 130
    left = [reason for _, reason in summary.unfinished_items if "left in flight" in reason]
    assert len(left) == 2 and all("prompt id" in reason for reason in left)


def test_summary_text_and_json(fake, fake2, root):
    fake.fail_times[1] = 1
    fake2.fail_times[1] = 1
    summary, _ = run_queue([fake, fake2], range(3), root, retries=0)
    text = summary.to_text()
    lines = text.splitlines()
    assert re.fullmatch(r"ld-portrait queue: 3 sample\(s\) requested, wall time \d+:\d\d(:\d\d)?",
                        lines[0])
    assert any(line.split() == ["done", "2"] for line in lines)
    assert any(line.split() == ["failed", "1"] for line in lines)
    assert f"{fake.url}: " in text and f"{fake2.url}: " in text and "submitted" in text
    assert "failures (1):" in text and "1 x execution error in node 6 (KSampler)" in text
    assert "ids: 000001" in text
    data = summary.to_json()
    assert data["exit_code"] == 1 and data["failures"][0]["id"] == "000001"
    assert data["not_started"]["count"] == 0


def test_warn_once_is_atomic_across_threads(fake):
    runner = make_runner([fake], range(1))
    barrier = threading.Barrier(16)
    results = []

    def warn():
        barrier.wait()
        results.append(runner._warn_once("same key", "warning: said once"))

    threads = [threading.Thread(target=warn) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results.count(True) == 1 and len(results) == 16
    assert runner.stream.getvalue().count("warning: said once") == 1

"""Bounded failure of ``ld-portrait queue`` against servers that never work.

Two kinds of tests:

* **Simulated time, real defaults.** The runner's worker step and supervisor checks are driven
  in one thread with an injected clock (``QueueRunner(clock=...)``); its ``_sleep`` advances
  that clock and a scripted client stands in for HTTP. Nothing waits for real, so the default
  budgets (60 s per sample, 90 s / 3 samples until a first answer) are checked exactly as a
  user gets them, e.g. "a range of 20,000 against a server answering HTTP 500 ends within
  2 minutes".
* **Real HTTP, scaled-down options.** Small ``http.server`` servers on 127.0.0.1 (port 0)
  answering 500, invalid JSON, nothing at all, or failing N times before they work, and a
  refused port; every run is bounded by ``run_bounded``.
"""
from __future__ import annotations

import argparse
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from comfyui_ld_portrait.cli import queue as sq
from comfyui_ld_portrait.cli.queue.client import Answer, HttpClient, ServerUnreachable

from helpers.queue_runs import GRAPH, fast_options, make_runner, run_bounded, run_queue

NODE_TYPES = sorted({node["class_type"] for node in GRAPH.values()})
BOOM = b"Traceback: RuntimeError: CUDA error: out of memory"


def sample_of(payload) -> int:
    """Sample index of a posted graph (its LDPSaveDataset node)."""
    return next(node["inputs"]["sample_index"] for node in payload["prompt"].values()
                if node["class_type"] == "LDPSaveDataset")


# ---- simulated time ------------------------------------------------------------------------

class SimClock:
    """Monotonic seconds that move only when the run sleeps or a request takes time.

    Time moves in steps of ``TICK`` (the real supervisor's period), calling ``on_tick`` after
    each, until ``stopped`` is set (the run ended meanwhile, as it may during a long request).
    """

    TICK = 0.1

    def __init__(self):
        self.now = 1000.0
        self.on_tick = None
        self.stopped = False

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        end = self.now + max(float(seconds), 0.0)
        while self.now < end and not self.stopped:
            self.now = min(self.now + self.TICK, end)
            if self.on_tick is not None:
                self.on_tick()


class ScriptedClient(HttpClient):
    """An :class:`HttpClient` whose answers come from ``respond(method, path, payload, t)``
    (``t``: seconds since the run began) instead of a socket. ``respond`` returns an
    :class:`Answer`, or one of the strings ``"refused"``, ``"silent"`` (the request's whole
    deadline passes) or ``"comfy"`` (a working ComfyUI: accepts jobs, reports them done)."""

    def __init__(self, clock: SimClock, respond, timeout: float):
        super().__init__("http://127.0.0.1:9", timeout)
        self.clock, self.respond, self.start = clock, respond, clock.now
        self.posts: list[tuple[float, int]] = []   # (time since start, sample index)
        self._accepted: list[str] = []

    def request(self, method, path, payload=None, *, timeout=None):
        t = self.clock.now - self.start
        if method == "POST" and path == "/prompt":
            self.posts.append((t, sample_of(payload)))
        action = self.respond(method, path, payload, t)
        if action == "refused":
            raise ServerUnreachable("connection refused")
        if action == "silent":
            budget = self.timeout if timeout is None else timeout
            self.clock.advance(budget)
            raise ServerUnreachable(f"no complete answer within {budget:g} s")
        if action == "comfy":
            return self._comfy(method, path, payload)
        return action

    def _comfy(self, method, path, payload) -> Answer:
        def ok(data):
            return Answer(200, json.dumps(data).encode(), "application/json", "OK")
        if path == "/object_info":
            return ok({name: {} for name in NODE_TYPES})
        if method == "POST" and path == "/prompt":
            self._accepted.append(payload["prompt_id"])
            return ok({"prompt_id": payload["prompt_id"], "number": 1, "node_errors": {}})
        if path == "/queue":
            return ok({"queue_running": [], "queue_pending": []})
        if path.startswith("/history/"):
            prompt_id = path.rsplit("/", 1)[1]
            if prompt_id not in self._accepted:
                return ok({})
            return ok({prompt_id: {"status": {"status_str": "success", "completed": True,
                                              "messages": []}, "outputs": {}}})
        return Answer(404, b"not found", "text/plain", "Not Found")


def answer_500(*_):
    return Answer(500, BOOM, "text/plain", "Internal Server Error")


def answer_not_json(*_):
    return Answer(200, b"Welcome to nginx! <p>not json", "text/plain", "OK")


def simulate(respond, indices=range(3), *, limit_s: float = 7200.0, setup_s: float = 0.0,
             **overrides):
    """Run the queue with the real defaults (plus ``overrides``) in simulated time.

    Returns ``(summary, log, client, timeline)``; ``timeline`` has ``ended`` (seconds from the
    start to the end of the run) and ``settled`` (sample index -> seconds when it got its
    outcome). ``setup_s``: seconds the run's own setup (the dataset scan) takes.
    """
    clock = SimClock()
    options = sq.QueueOptions(**overrides)
    stream = io.StringIO()
    runner = sq.QueueRunner(GRAPH, indices, ["http://127.0.0.1:9"], options=options,
                            stream=stream, clock=clock)
    server = runner.servers[0]
    client = ScriptedClient(clock, respond, options.http_timeout)
    server.http = client
    runner._sleep = clock.advance  # the worker's pauses cost simulated time only
    settled: dict[int, float] = {}
    real_finalize = runner._finalize

    def finalize(job, outcome, reason=""):
        settled.setdefault(job.index, clock.now - client.start)
        real_finalize(job, outcome, reason)

    runner._finalize = finalize
    real_setup = runner._warn_about_setup
    runner._warn_about_setup = lambda: (clock.advance(setup_s), real_setup())
    ended = []

    def supervise():  # the main thread's round, every 0.1 s of simulated time
        if not ended and runner._supervise_tick():
            ended.append(clock.now - client.start)
            clock.stopped = True

    runner._begin()  # preflight included (it may take a silent server's whole deadline)
    clock.on_tick = supervise
    if not runner._open:
        ended.append(0.0)
    while not ended:
        runner._serve_step(server)
        assert clock.now - client.start < limit_s, "the simulated run did not end"
    summary = runner._end()
    ended = ended[0]
    return summary, stream.getvalue(), client, dict(ended=ended, settled=settled)


def time_per_tried_sample(client, timeline) -> dict[int, float]:
    """Seconds from each tried sample's first POST /prompt to its outcome."""
    first: dict[int, float] = {}
    for t, index in client.posts:
        first.setdefault(index, t)
    return {index: timeline["settled"][index] - t for index, t in first.items()}


@pytest.mark.parametrize("respond, answer_text", [
    (answer_500, "POST /prompt answered HTTP 500 Internal Server Error: Traceback: "
                 "RuntimeError: CUDA error: out of memory"),
    (answer_not_json, "POST /prompt answered something that is not JSON (Welcome to nginx!"),
    (lambda *_: "refused", "POST /prompt failed: connection refused"),
    (lambda *_: "silent", "POST /prompt failed: no complete answer within"),
], ids=["http-500", "invalid-json", "refused", "silent"])
def test_a_dead_server_costs_at_most_a_minute_per_sample_and_two_in_all(respond, answer_text):
    summary, log, client, timeline = simulate(respond)
    assert summary.exit_code == 1 and summary.failed == 3 and summary.done == 0, log
    assert client.posts, "the samples were tried"
    for index, seconds in time_per_tried_sample(client, timeline).items():
        # 60 s, noticed by the worker at once or by the supervisor within its 0.1 s period
        assert seconds <= 60.0 + SimClock.TICK, f"sample {index} took {seconds:g} s: {log}"
    assert timeline["ended"] <= 120.0, log
    assert answer_text in summary.stop_reason, summary.stop_reason
    assert "no server answered successfully" in summary.stop_reason or \
        "no server has answered successfully yet" in summary.stop_reason
    assert "hint: check the --server URL" in log


def test_a_range_of_20000_against_a_server_answering_500_ends_within_two_minutes():
    summary, log, client, timeline = simulate(answer_500, range(20000))
    assert timeline["ended"] <= 120.0, log
    assert summary.exit_code == 1 and summary.failed == 20000 and summary.done == 0
    assert summary.not_started.count > 19000  # never submitted: counted, not listed
    assert len({index for _, index in client.posts}) <= 3, client.posts
    assert "HTTP 500 Internal Server Error" in summary.to_text()


def test_without_the_time_limit_three_failed_samples_end_the_run():
    summary, _, client, timeline = simulate(answer_500, range(20000), first_answer_within=0)
    assert "3 sample(s) failed and no server has answered successfully yet " \
           "(--first-answer-failures 3)" in summary.stop_reason
    assert sorted({index for _, index in client.posts}) == [0, 1, 2]
    assert summary.failed == 20000 and summary.exit_code == 1
    assert timeline["ended"] <= 180.0


def test_without_the_failure_limit_the_time_limit_ends_the_run():
    summary, _, _, timeline = simulate(lambda *_: "refused", range(20000),
                                       first_answer_failures=0)
    assert "no server answered successfully within 90 s of the start " \
           "(--first-answer-within 90): http://127.0.0.1:9: POST /prompt failed: connection " \
           "refused" in summary.stop_reason
    assert 90.0 <= timeline["ended"] <= 92.0
    assert summary.failed == 20000


def test_a_sample_fails_when_no_server_accepts_it_within_the_budget():
    # Both run limits off: only --submit-within ends each sample.
    summary, _, client, timeline = simulate(lambda *_: "silent", range(2), first_answer_within=0,
                                            first_answer_failures=0)
    assert summary.failed == 2
    for sample_id, reason in summary.failures:
        assert "no server accepted it within 60 s of its first try (--submit-within 60)" in reason
        assert "no complete answer within" in reason
    # The request deadline is cut to what is left of the budget, so a silent server cannot
    # stretch a sample past it.
    for seconds in time_per_tried_sample(client, timeline).values():
        assert seconds <= 61.0


def test_limits_set_to_zero_are_off():
    # The old behaviour on request: only --give-up-after (here 300 s) ends the run.
    summary, _, _, timeline = simulate(lambda *_: "refused", range(3), first_answer_within=0,
                                       first_answer_failures=0, submit_within=0,
                                       give_up_after=300)
    assert "no server answered for 300 s" in summary.stop_reason
    assert timeline["ended"] > 300.0


# ---- transient faults are still retried ------------------------------------------------------

def test_a_server_that_fails_twice_then_works_completes_every_job():
    calls = []

    def respond(method, path, payload, t):
        if method == "POST" and path == "/prompt":
            calls.append(t)
            if len(calls) <= 2:
                return answer_500()
        return "comfy"

    summary, log, _, _ = simulate(respond)
    assert (summary.done, summary.failed, summary.exit_code) == (3, 0, 0), log
    assert summary.retries == 2


def test_a_server_that_starts_within_the_window_completes_every_job():
    # ComfyUI started together with the queue: the port is closed for its first 45 s.
    summary, log, client, _ = simulate(lambda m, p, d, t: "refused" if t < 45.0 else "comfy")
    assert (summary.done, summary.failed, summary.exit_code) == (3, 0, 0), log
    # Tried several times while it started (back-off capped at 15 s).
    assert len([t for t, _ in client.posts if t < 45.0]) >= 5


def test_a_server_that_worked_and_then_goes_away_for_minutes_is_waited_for():
    # The first sample goes through; then the server is down for 5 minutes (longer than every
    # first-answer limit and the placement budget); --give-up-after (600 s) still covers it.
    down = []

    def respond(method, path, payload, t):
        if method == "POST" and path == "/prompt" and not down:
            down.append(t)  # accepts this one, then goes away for 5 minutes
            return "comfy"
        return "refused" if down and t < down[0] + 300.0 else "comfy"

    summary, log, client, _ = simulate(respond, range(4))
    assert (summary.done, summary.failed, summary.exit_code) == (4, 0, 0), log
    tries_while_down = [t for t, _ in client.posts if down[0] < t < down[0] + 300.0]
    assert len(tries_while_down) >= 10  # it kept trying, without failing a sample


def test_a_server_that_worked_and_then_answers_500_for_good_still_ends():
    # Each sample is bounded (attempts, --submit-within) and --give-up-after ends the run,
    # even though the server keeps answering.
    def respond(method, path, payload, t):
        return "comfy" if t < 5.0 else answer_500()

    summary, log, client, timeline = simulate(respond, range(20000))
    assert summary.done >= 1 and summary.exit_code == 1
    assert "no server answered for 600 s" in summary.stop_reason
    assert "HTTP 500 Internal Server Error" in summary.stop_reason
    assert timeline["ended"] <= 600.0 + 20.0, log
    for seconds in time_per_tried_sample(client, timeline).values():
        assert seconds <= 60.0


# ---- real HTTP, scaled-down options ------------------------------------------------------------

class ScriptedHandler(BaseHTTPRequestHandler):
    """Answers as ``self.server.behave(handler, method, path, body)`` says."""

    protocol_version = "HTTP/1.1"

    def _handle(self, method):
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.server.requests.append((method, self.path))
        self.server.behave(self, method, self.path, body)

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def send(self, status: int, body: bytes, content_type: str = "application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class ScriptedServer:
    """An ``http.server`` on 127.0.0.1 (port 0) in a thread; ``behave`` decides each answer."""

    def __init__(self, behave):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), ScriptedHandler)
        self.httpd.daemon_threads = True
        self.httpd.behave = behave
        self.httpd.requests = []
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.released = threading.Event()  # lets silent handlers go at the end
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def requests(self):
        return self.httpd.requests

    def posts(self) -> int:
        return self.requests.count(("POST", "/prompt"))

    def close(self):
        self.released.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class Comfy:
    """Enough of ComfyUI for a job to succeed (no dataset: the run does not verify)."""

    def __init__(self):
        self.accepted = []

    def __call__(self, handler, method, path, body):
        if path == "/object_info":
            handler.send(200, json.dumps({name: {} for name in NODE_TYPES}).encode())
        elif method == "POST" and path == "/prompt":
            self.accepted.append(body["prompt_id"])
            handler.send(200, json.dumps({"prompt_id": body["prompt_id"], "number": 1,
                                          "node_errors": {}}).encode())
        elif path == "/queue":
            handler.send(200, b'{"queue_running": [], "queue_pending": []}')
        elif path.startswith("/history/"):
            prompt_id = path.rsplit("/", 1)[1]
            entry = {prompt_id: {"status": {"status_str": "success", "messages": []},
                                 "outputs": {}}} if prompt_id in self.accepted else {}
            handler.send(200, json.dumps(entry).encode())
        else:
            handler.send(404, b"not found", "text/plain")


@pytest.fixture
def scripted():
    servers = []

    def make(behave):
        servers.append(ScriptedServer(behave))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def refused_url() -> str:
    """A local port nothing listens on (bound, then closed)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), ScriptedHandler)
    port = server.server_address[1]
    server.server_close()
    return f"http://127.0.0.1:{port}"


#: Scaled-down dead-server limits; the one a test is about is turned on by the test.
SCALED = dict(first_answer_within=0.0, first_answer_failures=0, submit_within=30.0)


def test_http_500_everywhere_ends_after_three_failed_samples(scripted):
    server = scripted(lambda h, *_: h.send(500, BOOM, "text/plain"))
    summary, log = run_queue([server], range(20000), **{**SCALED, "first_answer_failures": 3})
    assert summary.exit_code == 1 and summary.failed == 20000, summary.to_text() + log
    assert server.posts() == 9  # 3 samples x (1 + --retries 2), then the run stopped
    assert "POST /prompt answered HTTP 500 Internal Server Error: Traceback: RuntimeError: " \
           "CUDA error: out of memory" in summary.stop_reason
    assert "(--first-answer-failures 3)" in summary.stop_reason


def test_invalid_json_everywhere_ends_after_three_failed_samples(scripted):
    server = scripted(lambda h, *_: h.send(200, b"{not json", "text/plain"))
    summary, log = run_queue([server], range(50), **{**SCALED, "first_answer_failures": 3})
    assert summary.exit_code == 1 and summary.failed == 50, summary.to_text() + log
    assert "answered something that is not JSON ({not json)" in summary.stop_reason


def test_a_silent_server_fails_each_sample_at_its_budget(scripted):
    def silent(handler, *_):
        server.released.wait(30)  # answers nothing until the test ends

    server = scripted(silent)
    summary, log = run_queue([server], range(2), http_timeout=0.3,
                             **{**SCALED, "submit_within": 0.5})
    assert summary.exit_code == 1 and summary.failed == 2, summary.to_text() + log
    for _, reason in summary.failures:
        assert "no server accepted it within 0.5 s of its first try (--submit-within 0.5)" \
            in reason and "no complete answer within" in reason


def test_a_refused_port_ends_the_run_at_the_first_answer_limit():
    summary, log = run_queue([refused_url()], range(20000),
                             **{**SCALED, "first_answer_within": 0.5})
    assert summary.exit_code == 1 and summary.failed == 20000, summary.to_text() + log
    assert "no server answered successfully within 0.5 s of the start " \
           "(--first-answer-within 0.5)" in summary.stop_reason
    assert "connection refused" in summary.stop_reason


def failing_submissions(numbers, status: int, message: bytes):
    """A ComfyUI (:class:`Comfy`) that answers the POST /prompt submissions numbered in
    ``numbers`` (1 = the first) with ``status`` and ``message`` instead."""
    comfy, posts = Comfy(), []

    def behave(handler, method, path, body):
        if method == "POST" and path == "/prompt":
            posts.append(path)
            if len(posts) in numbers:
                handler.send(status, message, "text/plain")
                return
        comfy(handler, method, path, body)

    return behave


def test_a_server_that_fails_twice_then_recovers_completes_its_jobs(scripted):
    server = scripted(failing_submissions({1, 2}, 500, BOOM))
    # Every dead-server limit on and small: the recovery still wins, as it comes within them.
    summary, log = run_queue([server], range(4), first_answer_failures=1,
                             first_answer_within=20.0, submit_within=20.0)
    assert (summary.done, summary.failed, summary.exit_code) == (4, 0, 0), \
        summary.to_text() + log
    assert summary.retries == 2 and server.posts() == 6


def test_a_server_that_answered_before_is_retried_past_the_first_answer_limits(scripted):
    server = scripted(failing_submissions({2, 3}, 503, b"busy"))
    summary, log = run_queue([server], range(3), first_answer_failures=1,
                             first_answer_within=0.01, submit_within=20.0)
    assert (summary.done, summary.failed, summary.exit_code) == (3, 0, 0), \
        summary.to_text() + log
    assert "HTTP 503 Service Unavailable: busy" in log


# ---- the command -------------------------------------------------------------------------------

def parse(argv):
    return sq.add_queue_arguments(argparse.ArgumentParser()).parse_args(argv)


def test_command_against_http_500_exits_1_naming_the_answer(scripted, tmp_path):
    server = scripted(lambda h, *_: h.send(500, BOOM, "text/plain"))
    workflow = tmp_path / "api.json"
    workflow.write_text(json.dumps(GRAPH))
    args = parse([str(workflow), "--count", "3", "--server", server.url, "--poll", "0.02",
                  "--first-answer-within", "0"])
    out, err = io.StringIO(), io.StringIO()
    code = sq.run_queue_command(args, stdout=out, stderr=err,
                                options=fast_options(backoff=0.01, backoff_max=0.05))
    assert code == 1
    assert "HTTP 500 Internal Server Error: Traceback: RuntimeError: CUDA error: out of memory" \
        in out.getvalue()
    assert "giving up: 3 sample(s) failed and no server has answered successfully yet" \
        in err.getvalue()


def test_the_flags_default_to_the_options_and_reach_the_runner(tmp_path):
    defaults = sq.QueueOptions()
    args = parse(["w.json", "--count", "1"])
    assert (args.submit_within, args.first_answer_within, args.first_answer_failures) == \
        (defaults.submit_within, defaults.first_answer_within, defaults.first_answer_failures)
    assert (defaults.submit_within, defaults.first_answer_within,
            defaults.first_answer_failures, defaults.backoff_max) == (60.0, 90.0, 3, 15.0)
    runner_options = {}

    class Capture(sq.QueueRunner):
        def __init__(self, *a, options=None, **k):
            runner_options["options"] = options
            raise ValueError("captured")

    import comfyui_ld_portrait.cli.queue.command as command
    workflow = tmp_path / "api.json"
    workflow.write_text(json.dumps(GRAPH))
    args = parse([str(workflow), "--count", "1", "--submit-within", "5",
                  "--first-answer-within", "7", "--first-answer-failures", "0"])
    original = command.QueueRunner
    command.QueueRunner = Capture
    try:
        assert sq.run_queue_command(args, stdout=io.StringIO(), stderr=io.StringIO()) == 2
    finally:
        command.QueueRunner = original
    options = runner_options["options"]
    assert (options.submit_within, options.first_answer_within,
            options.first_answer_failures) == (5.0, 7.0, 0)


def test_bad_limit_values_are_refused():
    with pytest.raises(ValueError, match="--first-answer-failures must be a whole number"):
        sq.QueueOptions(first_answer_failures=-1).check()
    with pytest.raises(ValueError, match="submit_within must be a number >= 0"):
        sq.QueueOptions(submit_within=float("nan")).check()


def test_the_first_answer_window_starts_after_the_setup():
    # Scanning a large --dataset is the run's own time, not the server's.
    summary, _, client, timeline = simulate(lambda *_: "refused", range(3), setup_s=100.0,
                                            first_answer_failures=0)
    assert "no server answered successfully within 90 s" in summary.stop_reason
    assert 190.0 <= timeline["ended"] <= 192.0
    assert client.posts[0][0] >= 100.0

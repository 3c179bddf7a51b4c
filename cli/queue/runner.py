"""The queue runner: one worker thread per server submits and follows jobs; the main thread
supervises (verification, progress, stop, give-up) and settles what is left at the end.

A worker follows its jobs through the server's websocket events (:mod:`.events`: one listener
thread per server) and refills a slot as soon as a job's end is heard; it polls ``/queue``
and ``/history`` every ``poll_interval`` only while the websocket is down or quiet, once after
every (re)connection, and while a job needs a timeout check or a given-up prompt may still be
on the server. A result is always read from ``/history`` and a job leaves the server's
in-flight map once, by whichever path saw its end first, so no job is counted twice.

The rules (retries, back-off, timeouts, give-up) are in the package docstring; the give-up
limits themselves are in :mod:`.limits` and the websocket side in :mod:`.following` (mixins
of :class:`QueueRunner`). Locking: every change of shared state (jobs, pending list, a
server's in-flight map and counters) happens with ``self._cond`` held; HTTP requests are made
without it.
"""
from __future__ import annotations

import sys
import threading
import time
import traceback
import uuid
from pathlib import Path
from typing import Iterable, Mapping
from urllib.parse import quote

from ...dataset import index_id
from .client import ServerUnreachable, decode_json, format_validation_error, \
    normalize_server_url, parse_history_entry, short_text
from .graph import SAVE_CLASS, Rewrite, check_api_graph, inspect_graph, rewrite_graph
from .jobs import DatasetProbe, IndexSource, Job, QueueOptions, ServerState
from .following import EventFollowing
from .limits import RunLimits
from .report import Console, NotStarted, QueueSummary

__all__ = ["QueueRunner", "QueueSetupError"]


class QueueSetupError(RuntimeError):
    """No server can run the graph (e.g. the node pack is missing on every server)."""


class QueueRunner(EventFollowing, RunLimits):
    """Run the jobs for ``indices`` on ``servers``; see the package docstring for the rules.

    Parameters
    ----------
    graph : mapping
        API-format graph (see :func:`~.graph.check_api_graph`); copied per job, never modified.
    indices : iterable of int
        Sample indices in ``[0, 2**53)``; a ``range`` is iterated lazily, anything else is
        read once (duplicates dropped, order kept).
    servers : list of str
        ComfyUI base URLs (normalised with :func:`~.client.normalize_server_url`).
    dataset_root : path, optional
        Local path of the dataset the servers write, for resume and verification.
    options : QueueOptions, optional
    stream : text stream, optional
        Progress and log messages (default ``sys.stderr``).
    progress : bool, optional
        Force the in-place progress bar on or off (default: on when ``stream`` is a terminal).
    clock : callable, optional
        Monotonic seconds (default :func:`time.monotonic`); every deadline, back-off and budget
        of the run is measured with it, so tests can step a run through simulated time.

    Raises
    ------
    WorkflowError
        The graph cannot be queued (no template node, ...).
    ValueError
        Bad indices, servers or options.
    """

    def __init__(self, graph: Mapping, indices: Iterable[int], servers: list[str], *,
                 dataset_root=None, options: QueueOptions | None = None, stream=None,
                 progress: bool | None = None, clock=None):
        self._now = clock or time.monotonic
        self.options = options or QueueOptions()
        self.options.check()
        self.graph = check_api_graph(dict(graph))
        self.info = inspect_graph(self.graph)
        self.base_seed = int(self.options.seed if self.options.seed is not None
                             else self.info.template_seed if self.info.template_seed is not None
                             else 0)
        self.source = IndexSource(indices)
        # Validates the graph (template present) once, up front.
        _, self.first_rewrites = self._rewrite(self.source.first() or 0)
        urls = []
        for url in servers:
            url = normalize_server_url(url)
            if url not in urls:
                urls.append(url)
        if not urls:
            raise ValueError("no server given; use --server http://HOST:PORT.")
        self.servers = [ServerState(url, self.options.http_timeout) for url in urls]
        self.disabled_reasons: dict[str, str] = {}
        self.dataset_root = Path(dataset_root).expanduser() if dataset_root is not None else None
        if self.dataset_root is not None and self.dataset_root.exists() and \
                not self.dataset_root.is_dir():
            raise ValueError(f"--dataset {self.dataset_root} exists but is not a folder.")
        self.probe = DatasetProbe(self.dataset_root) if self.dataset_root is not None else None
        self.client_id = self.options.client_id or uuid.uuid4().hex
        self.console = Console(stream if stream is not None else sys.stderr, progress,
                               self.options.status_every)
        self._cond = threading.Condition()
        self._wake = threading.Event()
        self._complete: set[str] = set()  # ids complete at the start (skipped)
        self._pending: list[Job] = []     # taken jobs waiting for a server (retries, put back)
        self._verifying: list[Job] = []
        self._jobs: list[Job] = []        # every job taken from the source
        self._stop_requested = False
        self._hard_stop = False
        self._interrupted = False
        self._closing = False
        self._stop_reason = ""
        self._stop_time: float | None = None
        self._retries = 0
        self._failed = 0
        self._skipped = 0                 # ids complete at the start
        self._settled = 0                 # to-do jobs with an outcome other than unfinished
        self._outcomes: dict[str, int] = {}  # taken jobs per outcome
        self._warned: set[str] = set()
        self._open = 0                    # to-do jobs without an outcome (taken or not)
        self._taken_open = 0              # ... of which taken from the source
        self._give_up = False
        self._give_up_reason = ""         # always set together with _give_up (_give_up_now)
        self._started = 0.0               # clock time the run began
        self._contact_started = 0.0       # ... and the servers were first contacted
        # Whether any server has answered successfully yet (accepted a job, reported its queue,
        # or judged a graph invalid): until then the first-answer limits apply.
        self._answered = False
        self._failed_unanswered = 0       # samples failed while no server had answered yet
        self._not_started = NotStarted()
        self._threads: list[threading.Thread] = []
        self._verify = bool(self.options.verify and self.probe is not None)

    # ---- public ---------------------------------------------------------------------------

    def stop(self, now: bool = False) -> None:
        """Stop submitting; in-flight jobs get ``options.grace`` seconds (``now``: none)."""
        with self._cond:
            if not self._stop_requested:
                self._stop_time = self._now()
            self._stop_requested = True
            self._interrupted = True
            self._stop_reason = self._stop_reason or "stopped on request (Ctrl-C)"
            if now:
                self._hard_stop = True
            self._cond.notify_all()
        if now:
            self._wake_all()

    def in_flight_count(self) -> int:
        with self._cond:
            return sum(len(server.inflight) for server in self.servers)

    def plan_text(self) -> str:
        """What a run would do, without contacting any server (``--dry-run``)."""
        complete = self.probe.complete_ids() if self.probe is not None else set()
        done = self.source.count_in(complete)
        source = self.source.fresh()
        first = next((i for i in iter(source.next, None) if index_id(i) not in complete), None)
        lines = [f"{self.source.count - done} job(s) to queue, {done} already complete"
                 f"; servers: {', '.join(s.url for s in self.servers)}; base seed "
                 f"{self.base_seed}; client id {self.client_id}"]
        if first is not None:
            lines.append(f"inputs set for the first job (index {first}, id {index_id(first)}):")
            _, changes = self._rewrite(first)
            lines.extend(f"  {change}" for change in changes)
            if not changes:
                lines.append("  (none)")
        return "\n".join(lines)

    def run(self) -> QueueSummary:
        """Run until every job is settled, the run is stopped, or no server answers."""
        self._begin()
        if self._open:
            self._start_listeners()
            for server in self.servers:
                if server.enabled:
                    thread = threading.Thread(target=self._serve, args=(server,), daemon=True,
                                              name=f"ldp-queue {server.url}")
                    thread.start()
                    self._threads.append(thread)
            self._supervise()
        return self._end()

    def _begin(self) -> None:
        """Everything before the workers start: skip set, counters, preflight."""
        self._started = self._now()
        self._warn_about_setup()
        self._complete = self.probe.complete_ids() if self.probe is not None else set()
        self._skipped = self.source.count_in(self._complete)
        self._open = self.source.count - self._skipped
        self.console.start(self._open)
        # The first-answer window starts here: scanning a large dataset is not the server's time.
        self._contact_started = self._now()
        if self._open and self.options.preflight:
            self._preflight()
        for server in self.servers:
            server.last_ok = self._now()

    def _end(self) -> QueueSummary:
        """Stop the workers, settle what is left, and summarise."""
        self._close()
        summary = self._summary(self._now() - self._started)
        self.console.finish()
        return summary

    # ---- setup ----------------------------------------------------------------------------

    def _rewrite(self, index: int) -> tuple[dict, list[Rewrite]]:
        return rewrite_graph(self.graph, index, base_seed=self.base_seed,
                             keep_sampler_seed=self.options.keep_sampler_seed,
                             dataset_name=self.options.dataset_name,
                             allow_no_template=self.options.allow_no_template)

    def _warn_about_setup(self) -> None:
        if self.dataset_root is None:
            self.console.log("note: no --dataset given: completed samples are not skipped and "
                             "results are not checked on disk.")
            return
        if not self.dataset_root.is_dir():
            self.console.log(f"note: dataset folder {self.dataset_root} does not exist yet: "
                             "nothing to skip.")
        if not self.info.save_nodes:
            if self._verify:
                self.console.log(f"warning: the graph has no {SAVE_CLASS} node, so results are "
                                 f"not checked in {self.dataset_root}.")
            self._verify = False
        names = {self.options.dataset_name} if self.options.dataset_name else set(
            self.info.dataset_names)
        if names and self.dataset_root.name not in names:
            self.console.log(
                f"warning: the {SAVE_CLASS} node writes dataset {sorted(names)[0]!r} but --dataset "
                f"is {self.dataset_root}: make sure it is that folder (ComfyUI's output/"
                f"{sorted(names)[0]}), or completed samples will not be found.")

    def _preflight(self) -> None:
        """Disable servers that lack node types the graph uses (checked once via /object_info)."""
        needed = set(self.info.class_types)
        results: dict[str, str | None] = {}

        def check(server: ServerState) -> None:
            try:
                info = server.http.get_json("/object_info")
            except ServerUnreachable as error:
                self.console.log(f"warning: {server.url}: not reachable now ({error}); will keep "
                                 "trying.")
                return
            if not isinstance(info, dict):
                return
            missing = sorted(needed - set(info))
            if missing:
                results[server.url] = ("missing node type(s) " + ", ".join(missing))

        threads = [threading.Thread(target=check, args=(s,), daemon=True) for s in self.servers]
        for thread in threads:
            thread.start()
        for thread in threads:  # each request ends by its deadline; the margin is for load
            thread.join(self.options.http_timeout + 5)
        for server in self.servers:
            reason = results.get(server.url)
            if reason:
                server.enabled = False
                self.disabled_reasons[server.url] = reason
                self.console.log(f"warning: {server.url}: {reason}; not using this server "
                                 "(install the node pack there and restart ComfyUI).")
        if not any(server.enabled for server in self.servers):
            details = "; ".join(f"{url}: {why}" for url, why in self.disabled_reasons.items())
            raise QueueSetupError(f"no server can run this graph: {details}. Install "
                                  "ComfyUI-LD-Portrait (and the graph's other node packs) on the "
                                  "servers and restart ComfyUI.")

    # ---- bookkeeping (call with self._cond held) -------------------------------------------

    def _finalize(self, job: Job, outcome: str, reason: str = "") -> None:
        if job.outcome is not None:  # settled already (a late thread after the run closed)
            return
        job.outcome, job.reason = outcome, reason
        job.server = None
        self._open -= 1
        self._taken_open -= 1
        self._outcomes[outcome] = self._outcomes.get(outcome, 0) + 1
        if outcome != "unfinished":
            self._settled += 1
            self.console.settled(self._settled, outcome)
        if outcome == "failed":
            self._failed += 1
            self.console.log(f"failed {job.sample_id}: {reason}")
            self._count_unanswered_failure(reason)
            limit = self.options.max_failures
            if limit and self._failed >= limit and not self._stop_requested:
                self._stop_requested = True
                self._stop_time = self._now()
                self._stop_reason = f"{self._failed} job(s) failed (--max-failures {limit})"
                self.console.log(f"stopping: {self._stop_reason}; waiting for jobs in flight.")
        self._cond.notify_all()

    def _server_ok(self, server: ServerState) -> None:
        self._answered = True
        server.consecutive_errors = 0
        server.unhealthy_until = 0.0
        server.last_ok = self._now()

    def _server_error(self, server: ServerState, message: str, *, transport: bool = True) -> None:
        with self._cond:
            if transport:
                server.counts["connection_errors"] += 1
            server.consecutive_errors += 1
            pause = min(self.options.backoff * 2 ** min(server.consecutive_errors - 1, 60),
                        self.options.backoff_max)
            server.unhealthy_until = self._now() + pause
            server.last_error = message
            key = f"{server.url}:{message}"
            now = self._now()
            # A new message, or the first error after a good spell (at most every 30 s: a
            # server whose /queue answers while /history fails alternates all the time).
            if key not in self._warned or (server.consecutive_errors == 1 and
                                           now - server.last_warning >= 30.0):
                self._warned.add(key)  # under the lock: check-and-add is atomic
                server.last_warning = now
                self.console.log(f"warning: {server.url}: {message}; pausing it for {pause:g} s.")
            self._cond.notify_all()

    def _warn_once(self, key: str, message: str) -> bool:
        """Log ``message`` unless ``key`` was warned about already (any thread); True if logged."""
        with self._cond:
            if key in self._warned:
                return False
            self._warned.add(key)
            self.console.log(message)
            return True

    def _retry_delay(self, job: Job) -> float:
        """Back-off before the next attempt: ``backoff * 2**(failures - 1)``, <= ``backoff_max``."""
        failures = max(len(job.failures), 1)
        return min(self.options.backoff * 2 ** min(failures - 1, 60), self.options.backoff_max)

    def _requeue_unattempted(self, job: Job, server: ServerState) -> None:
        with self._cond:
            job.clear_attempt()
            job.avoid = server.url
            if self._closing:
                return  # _close settles every job without an outcome
            if self._stop_requested:
                self._finalize(job, "unfinished", "not started (stopped)")
            elif self._placement_expired(job, self._now()):
                self._fail_unplaced(job)
            else:
                self._pending.insert(0, job)
            self._cond.notify_all()

    def _attempt_failed(self, job: Job, server: ServerState, reason: str) -> None:
        with self._cond:
            server.counts["failed_attempts"] += 1
            job.failures.append(f"{server.url}: {reason}")
            job.clear_attempt()
            if self._closing or job.outcome is not None:
                return
            if self._stop_requested:
                self._finalize(job, "unfinished", f"{reason} (not retried: stopped)")
            elif job.attempts <= self.options.retries and \
                    self._placement_expired(job, self._now()):
                self._fail_unplaced(job)
            elif job.attempts <= self.options.retries:
                self._retries += 1
                job.avoid = server.url
                delay = self._retry_delay(job)
                job.ready_at = self._now() + delay
                self._pending.insert(0, job)
                self.console.log(f"retrying {job.sample_id} in {delay:g} s (attempt "
                                 f"{job.attempts} failed on {server.url}: {reason})")
            else:
                suffix = f" (after {job.attempts} attempts)" if job.attempts > 1 else ""
                self._finalize(job, "failed", reason + suffix)
            self._cond.notify_all()

    def _take_job(self, server: ServerState) -> Job | None:
        """A job for ``server``: a retry that is due, else the next index not complete."""
        with self._cond:
            if self._stop_requested or self._closing or self._give_up or not server.enabled:
                return None
            now = self._now()
            self._expire_unplaced(now)
            if self._give_up:  # the expired jobs ended the run (--first-answer-failures)
                return None
            # A stuck server takes no work, so it does not count as another place to run a job.
            others = any(other is not server and other.healthy(now) and not other.stuck
                         for other in self.servers)
            for position, job in enumerate(self._pending):
                if job.ready_at > now or (job.avoid == server.url and others):
                    continue
                del self._pending[position]
                job.server = server.url
                return job
            index = self.source.next()
            while index is not None and index_id(index) in self._complete:
                index = self.source.next()  # counted in _skipped at the start
            if index is None:
                return None
            job = Job(index, index_id(index), server=server.url)
            self._jobs.append(job)
            self._taken_open += 1
            return job

    # ---- server threads -------------------------------------------------------------------

    def _sleep(self, seconds: float) -> None:
        self._wake.wait(max(seconds, 0.0))

    def _pause(self, server: ServerState, seconds: float) -> None:
        """Pause ``server``'s worker; with a websocket listener an event (or a stop) ends the
        pause early. Without one this is :meth:`_sleep` (which simulated-time tests replace)."""
        if server.listener is None:
            self._sleep(seconds)
        else:
            server.events.wake.wait(max(seconds, 0.0))

    def _wake_all(self) -> None:
        self._wake.set()
        for server in self.servers:
            server.events.wake.set()

    def _serve(self, server: ServerState) -> None:
        """Worker thread of one server: submit, poll, repeat until closing or disabled."""
        while not self._closing and server.enabled:
            try:
                self._serve_step(server)
            except Exception as error:  # a bug must not kill the worker and lose its job
                self._worker_error(server, error)
                self._sleep(self.options.poll_interval)

    def _serve_step(self, server: ServerState) -> None:
        options = self.options
        server.events.wake.clear()  # before looking: an event from now on wakes the next step
        self._expire_overdue(server)  # first: bounds jobs whatever the server answers
        now = self._now()
        if now < server.unhealthy_until:
            self._pause(server, min(server.unhealthy_until - now, options.poll_interval))
            return
        if server.inflight and server.consecutive_errors and \
                now - server.last_ok > options.server_down_after:
            self._redistribute(server)
        self._apply_events(server)
        while not self._closing and server.enabled and not server.stuck and \
                len(server.inflight) < options.in_flight:
            job = self._take_job(server)
            if job is None or not self._submit(server, job):
                break
        now = self._now()
        if not self._closing and server.enabled and now >= server.unhealthy_until and \
                self._poll_due(server, now):
            server.polled_at = now
            server.poll_soon = False
            held = len(server.inflight)
            self._poll(server)
            if server.listener is not None and len(server.inflight) < held:
                server.events.wake.set()  # the poll freed slots: refill now, not after a pause
        wait = options.poll_interval
        if server.listener is not None:
            # Woken early (an event, a freed slot): keep the polls every poll_interval.
            until_poll = server.polled_at + options.poll_interval - self._now()
            if 0 < until_poll < wait:
                wait = until_poll
        self._pause(server, wait)

    def _worker_error(self, server: ServerState, error: Exception) -> None:
        """An unexpected exception in ``server``'s worker: log it, pause the server, and put
        back the jobs it had taken that are neither in flight nor settled."""
        where = "".join(traceback.format_exception_only(type(error), error)).strip()
        frames = traceback.extract_tb(error.__traceback__)
        if frames:
            where += f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})"
        self.console.log(f"error: {server.url}: unexpected error in the queue worker: "
                         f"{short_text(where, 300)}; treating it as a server error.")
        self._server_error(server, f"internal error: {short_text(where, 160)}", transport=False)
        with self._cond:
            # Only this worker moves jobs marked with its url, so none is half-way elsewhere.
            orphans = [job for job in self._jobs
                       if job.outcome is None and job.server == server.url
                       and all(job is not other for other in server.inflight.values())]
            for job in orphans:
                job.internal_errors += 1
        for job in orphans:
            if job.internal_errors > self.options.retries:
                with self._cond:
                    job.failures.append(f"{server.url}: internal error: {where}")
                    self._finalize(job, "failed", f"internal error in the queue worker "
                                                  f"({short_text(where, 160)}), "
                                                  f"{job.internal_errors} time(s)")
            else:
                self._requeue_unattempted(job, server)

    def _redistribute(self, server: ServerState) -> None:
        for prompt_id, job in list(server.inflight.items()):
            with self._cond:
                server.inflight.pop(prompt_id, None)
            self._attempt_failed(job, server, f"server unreachable for more than "
                                              f"{self.options.server_down_after:g} s while the "
                                              f"job was in flight ({server.last_error})")

    def _expire_overdue(self, server: ServerState) -> None:
        """Fail the attempts that ran out of time, whatever the server answers meanwhile.

        A job left the server's ``/queue`` but its result could not be read for
        ``give_up_after`` s (e.g. ``/history`` keeps failing while ``/queue`` answers), or,
        with ``--timeout``, has not started ``timeout + give_up_after`` s after its submission
        (e.g. something ahead of it hangs) or has no result that long after it started (the
        running timeout could not be checked meanwhile).
        It may still be on the server, so the server takes no new work until a ``/queue``
        answer shows it gone (after ``give_up_after`` more seconds the server counts as stuck).
        """
        options = self.options
        now = self._now()
        overdue = []
        with self._cond:
            for prompt_id, job in list(server.inflight.items()):
                started = job.running_since is not None
                since = job.running_since if started else job.submitted_at
                if options.timeout is not None and \
                        now - since > options.timeout + options.give_up_after:
                    why = ("still without a result" if started else "not started") + (
                        f" {options.timeout + options.give_up_after:g} s after "
                        + ("it started" if started else "submission")
                        + f" (--timeout {options.timeout:g} + --give-up-after "
                        f"{options.give_up_after:g})")
                elif job.unread_since is not None and \
                        now - job.unread_since > options.give_up_after:
                    why = (f"it left the server's queue but its result could not be read for "
                           f"{options.give_up_after:g} s ({server.last_error or 'no answer'})")
                else:
                    continue
                server.inflight.pop(prompt_id, None)
                server.stuck[prompt_id] = (now, job.sample_id)
                server.counts["timeouts"] += 1
                overdue.append((prompt_id, job, why))
        self._take_back(server, [prompt_id for prompt_id, job, _ in overdue
                                 if job.listed == "waiting"])
        for _, job, why in overdue:
            self._attempt_failed(job, server, f"timed out: {why}")

    def _take_back(self, server: ServerState, prompt_ids: list[str]) -> None:
        """Ask ``server`` to drop our prompts still waiting in its queue (``POST /queue
        {"delete": ...}`` leaves a running one alone)."""
        if prompt_ids:
            try:
                server.http.request("POST", "/queue", {"delete": prompt_ids})
            except ServerUnreachable:
                pass  # if they still run, the dataset keeps the first copy

    def _submit(self, server: ServerState, job: Job) -> bool:
        """Submit ``job``; False when ``server`` should not get more work right now."""
        if self.probe is not None:
            status = self.probe.status(job.sample_id)
            if status is not None:
                with self._cond:
                    if job.attempts:  # an earlier attempt finished after all (e.g. a lost job)
                        self._finalize(job, "done" if status == "accepted" else "rejected",
                                       "" if status == "accepted" else "rejected by the quality "
                                       "gate")
                    else:  # another run or writer completed it meanwhile
                        self._finalize(job, "skipped", "completed elsewhere during the run")
                return True
        graph, _ = self._rewrite(job.index)
        prompt_id = str(uuid.uuid4())
        payload = {"prompt": graph, "client_id": self.client_id, "prompt_id": prompt_id}
        with self._cond:
            if job.placing_since is None:
                job.placing_since = self._now()
            timeout = self._request_timeout(job)
        try:
            answer = server.http.request("POST", "/prompt", payload, timeout=timeout)
        except ServerUnreachable as error:
            reason = f"POST /prompt failed: {error}"
            with self._cond:
                job.last_error = f"{server.url}: {reason}"
            self._server_error(server, reason)
            self._requeue_unattempted(job, server)
            return False
        if answer.status == 200:
            try:
                body = decode_json(answer, "POST /prompt")
                if not isinstance(body, dict):
                    raise ServerUnreachable("POST /prompt answered JSON that is not an object "
                                            f"({answer.text(80)})")
            except ServerUnreachable as error:
                return self._submit_refused(server, job, str(error))
            return self._accepted(server, job, str(body.get("prompt_id") or prompt_id), body)
        if answer.status == 400:
            reason = "validation failed: " + format_validation_error(answer.body)
            with self._cond:
                self._server_ok(server)
                server.counts["validation_errors"] += 1
                job.failures.append(f"{server.url}: {reason}")
                self._finalize(job, "failed", f"{reason} [{server.url}]")
            return True
        # 5xx, 404 (not ComfyUI?), ...: the server answered but could not take the job.
        return self._submit_refused(server, job, f"POST /prompt answered {answer.describe()}")

    def _accepted(self, server: ServerState, job: Job, prompt_id: str, body: dict) -> bool:
        """The server queued ``job`` as ``prompt_id``; False if the run is closing."""
        with self._cond:
            self._server_ok(server)
            now = self._now()
            job.attempts += 1
            job.prompt_id = prompt_id
            job.placing_since, job.placing_refused, job.last_error = None, False, ""
            job.missing_polls = 0
            job.running_since = None
            job.submitted_at = now
            job.unread_since = None
            job.listed = ""
            server.counts["submitted"] += 1
            server.inflight[prompt_id] = job
            closing = self._closing
        if body.get("node_errors"):
            text = format_validation_error({"node_errors": body["node_errors"]})
            self._warn_once(text, f"warning: {server.url} accepted the graph but dropped "
                                  f"outputs that failed validation: {text}")
        return not closing

    def _submit_refused(self, server: ServerState, job: Job, reason: str) -> bool:
        """The server answered ``POST /prompt`` but did not queue the job: a failed attempt."""
        with self._cond:
            job.attempts += 1
            job.placing_refused = True
            job.last_error = f"{server.url}: {reason}"
        # The job's retry delay first, then the server's pause (never shorter): when the server
        # is usable again the retry is due too, so it goes before a new sample.
        self._attempt_failed(job, server, reason)
        self._server_error(server, reason, transport=False)
        return False

    def _poll(self, server: ServerState) -> None:
        try:
            queue = server.http.get_json("/queue")
            if not isinstance(queue, dict):
                raise ServerUnreachable("GET /queue answered something that is not a JSON object")
        except ServerUnreachable as error:
            self._server_error(server, str(error))
            return

        def ids(key: str) -> set[str]:
            items = queue.get(key) or []
            return {str(item[1]) for item in items
                    if isinstance(item, (list, tuple)) and len(item) > 1}

        running, waiting = ids("queue_running"), ids("queue_pending")
        now = self._now()
        with self._cond:
            self._server_ok(server)
            server.stuck = {pid: value for pid, value in server.stuck.items()
                            if pid in running or pid in waiting}
            hung = [(pid, value) for pid, value in server.stuck.items()
                    if now - value[0] > self.options.give_up_after]
        if hung:
            self._disable_stuck(server, *hung[0])
            return
        for prompt_id, job in list(server.inflight.items()):
            if self._closing:
                return
            if prompt_id in running or prompt_id in waiting:
                if not self._still_listed(server, job, prompt_id, prompt_id in running, waiting):
                    return
                continue
            if not self._read_result(server, job, prompt_id):
                return

    def _still_listed(self, server: ServerState, job: Job, prompt_id: str, running: bool,
                      waiting: set[str]) -> bool:
        """``job`` is queued or running; False when it timed out (stop polling this round)."""
        now = self._now()
        with self._cond:
            job.missing_polls = 0
            job.unread_since = None
            job.listed = "running" if running else "waiting"
            if running and job.running_since is None:
                job.running_since = now
        if running and self.options.timeout is not None and \
                now - job.running_since > self.options.timeout:
            self._timed_out(server, job, prompt_id, waiting)
            return False
        return True

    def _read_result(self, server: ServerState, job: Job, prompt_id: str) -> bool:
        """``job`` left the queue: read its history entry; False on a server error."""
        with self._cond:
            job.listed = ""
            if job.unread_since is None:
                job.unread_since = self._now()
        try:
            history = server.http.get_json(f"/history/{quote(prompt_id, safe='')}")
        except ServerUnreachable as error:
            self._server_error(server, str(error))
            return False
        entry = history.get(prompt_id) if isinstance(history, dict) else None
        if entry is None:
            # Not queued, not in history: lost (server restarted). Seen twice to be sure.
            job.missing_polls += 1
            if job.missing_polls >= 2:
                with self._cond:
                    server.inflight.pop(prompt_id, None)
                self._attempt_failed(job, server, "the job vanished from the server without "
                                                  "a result (ComfyUI restarted?)")
            return True
        with self._cond:
            server.inflight.pop(prompt_id, None)
        self._settle(server, job, entry)
        return True

    def _settle(self, server: ServerState, job: Job, entry: dict) -> None:
        """A job's history entry was read (and the job taken off the server's in-flight map):
        count it as succeeded or as a failed attempt."""
        succeeded, reason = parse_history_entry(entry)
        if succeeded:
            self._succeeded(job, server)
        else:
            self._attempt_failed(job, server, reason)

    def _timed_out(self, server: ServerState, job: Job, prompt_id: str,
                   waiting: set[str]) -> None:
        """A job ran too long: count the attempt, and take our waiting jobs off that server.

        The running job is not cancelled (``/interrupt`` could hit another client's job on
        older hosts); the server gets no new work until it has finished.
        """
        with self._cond:
            server.counts["timeouts"] += 1
            server.inflight.pop(prompt_id, None)
            server.stuck[prompt_id] = (self._now(), job.sample_id)
            queued_behind = [(pid, j) for pid, j in server.inflight.items() if pid in waiting]
            for pid, _ in queued_behind:
                server.inflight.pop(pid, None)
        self._take_back(server, [pid for pid, _ in queued_behind])
        self._attempt_failed(job, server, f"timed out: still running after "
                                          f"{self.options.timeout:g} s")
        for _, other in queued_behind:
            with self._cond:
                other.attempts -= 1  # taken back before it ran: that try does not count
                server.counts["submitted"] -= 1
            self._requeue_unattempted(other, server)
        self._server_error(server, f"job {job.sample_id} timed out; no new work until it ends",
                           transport=False)

    def _disable_stuck(self, server: ServerState, prompt_id: str,
                       stuck: tuple[float, str]) -> None:
        """A given-up prompt is still on ``server`` ``give_up_after`` s later: stop using it."""
        bound = (self.options.timeout or 0.0) + self.options.give_up_after
        reason = (f"server stuck: job {stuck[1]} (prompt id {prompt_id}) still queued or running "
                  f"{bound:g} s after it started (--timeout {self.options.timeout or 0:g} + "
                  f"--give-up-after {self.options.give_up_after:g})")
        with self._cond:
            server.enabled = False
            self.disabled_reasons[server.url] = reason
            left = list(server.inflight.items())
            server.inflight.clear()
            self._cond.notify_all()
        self.console.log(f"warning: {server.url}: {reason}; not using this server any more "
                         "(restart ComfyUI there).")
        for _, job in left:
            self._attempt_failed(job, server, reason)

    def _succeeded(self, job: Job, server: ServerState) -> None:
        with self._cond:
            job.clear_attempt()
            job.finished_on = server
            if self._verify:
                job.verify_deadline = self._now() + self.options.verify_wait
                self._verifying.append(job)
            elif job.outcome is None:
                server.counts["done"] += 1
                self._finalize(job, "done")
            self._cond.notify_all()

    # ---- supervision (main thread) ----------------------------------------------------------

    def _check_verifying(self, final: bool = False) -> None:
        with self._cond:
            waiting = list(self._verifying)
        for job in waiting:
            status = self.probe.status(job.sample_id)
            with self._cond:
                server = job.finished_on
                if job.outcome is not None:
                    self._verifying.remove(job)
                    continue
                if status is None and not final and self._now() < job.verify_deadline:
                    continue
                self._verifying.remove(job)
                if status == "accepted":
                    self._finalize(job, "done")
                    if server:
                        server.counts["done"] += 1
                elif status == "rejected":
                    self._finalize(job, "rejected", "rejected by the quality gate")
                    if server:
                        server.counts["rejected"] += 1
                else:
                    self._finalize(
                        job, "failed",
                        f"ComfyUI reported success but sample {job.sample_id} is not in "
                        f"{self.dataset_root} (neither accepted nor under rejected/); check that "
                        f"--dataset is the folder the {SAVE_CLASS} node writes (ComfyUI's "
                        "output/<dataset_name>)")

    def _progress_detail(self) -> str:
        counts = self._counts()
        inflight = sum(len(s.inflight) for s in self.servers)
        return f"{inflight} in flight" + "".join(f", {counts[k]} {k}" for k in ("rejected",
                                                                               "failed")
                                                 if counts.get(k))

    def _supervise(self) -> None:
        tick = min(0.1, self.options.poll_interval)
        while True:
            with self._cond:
                self._cond.wait(tick)
            if self._supervise_tick():
                break
        with self._cond:
            self.console.progress(self._progress_detail(), force=True)

    def _supervise_tick(self) -> bool:
        """One round of the main thread's checks; True when the run should end."""
        if self._verify:
            self._check_verifying()
        with self._cond:
            now = self._now()
            self._expire_unplaced(now)
            self.console.progress(self._progress_detail())
            return self._hard_stop or self._open == 0 or self._should_end(now)

    # ---- the end ------------------------------------------------------------------------------

    def _close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._wake_all()
        for server in self.servers:
            if server.listener is not None:
                server.listener.stop()
        deadline = time.monotonic() + 2.0
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0.05))
        if self._verify and self._verifying:
            self._check_verifying(final=True)
        with self._cond:
            self._settle_leftovers()

    def _counts(self) -> dict[str, int]:
        return dict(self._outcomes)

    def _summary(self, wall_s: float) -> QueueSummary:
        counts = self._counts()
        gap = self._not_started
        servers = []
        for server in self.servers:
            servers.append(dict(url=server.url, enabled=server.enabled,
                                disabled_reason=self.disabled_reasons.get(server.url, ""),
                                **server.counts))
        failures = [(j.sample_id, j.reason) for j in self._jobs if j.outcome == "failed"]
        unfinished = [(j.sample_id, j.reason) for j in self._jobs if j.outcome == "unfinished"]
        return QueueSummary(
            requested=self.source.count, skipped=self._skipped + counts.get("skipped", 0),
            done=counts.get("done", 0), rejected=counts.get("rejected", 0),
            failed=counts.get("failed", 0) + (gap.count if gap.outcome == "failed" else 0),
            unfinished=counts.get("unfinished", 0) + (gap.count if gap.outcome == "unfinished"
                                                      else 0),
            retries=self._retries, wall_s=wall_s, interrupted=self._interrupted,
            stop_reason=self._stop_reason,
            dataset_root=str(self.dataset_root) if self.dataset_root is not None else None,
            servers=servers, failures=failures, unfinished_items=unfinished, not_started=gap)

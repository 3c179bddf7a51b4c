"""When a queue run, or one of its jobs, gives up: the limits that keep a run against dead
or stuck servers bounded (a mixin of :class:`~.runner.QueueRunner`, which holds the state).

* **Placement budget** (``submit_within``): a job no server accepted that long after its first
  try fails; while no server has answered yet its ``POST /prompt`` deadline is cut to what is
  left, so a silent server cannot stretch it.
* **First answer** (``first_answer_within``, ``first_answer_failures``): until a server has
  answered successfully, the run ends after that long or after that many failed samples.
* **No answer** (``give_up_after``), no usable server, no worker left, the stop grace.
* **Leftovers**: at the end every job without an outcome gets one (failed with the give-up
  reason, or unfinished after a stop).

Every method here is called with the runner's ``_cond`` held.
"""
from __future__ import annotations

from .jobs import Job
from .report import NotStarted

__all__ = ["RunLimits"]


class RunLimits:
    """Give-up rules of :class:`~.runner.QueueRunner` (see the module docstring)."""

    def _count_unanswered_failure(self, reason: str) -> None:
        """A sample failed: while no server has answered, that counts towards
        ``first_answer_failures`` (a dead or broken server fails the rest the same way)."""
        if self._answered:
            return
        self._failed_unanswered += 1
        limit = self.options.first_answer_failures
        if limit and self._failed_unanswered >= limit and not self._give_up:
            self._give_up_unanswered(
                f"{self._failed_unanswered} sample(s) failed and no server has answered "
                f"successfully yet (--first-answer-failures {limit}); last: {reason}")

    def _placement_expired(self, job: Job, now: float) -> bool:
        """``job`` has used up ``submit_within`` (call with ``_cond`` held).

        The budget covers refused submissions (the server answered, e.g. HTTP 500) always, and
        transport failures only while no server has answered yet: a server that worked and is
        restarting is waited for (``--give-up-after`` bounds that), a dead one is not.
        """
        limit = self.options.submit_within
        if not limit or job.placing_since is None:
            return False
        if self._answered and not job.placing_refused:  # a server that worked: wait for it
            return False
        return now - job.placing_since >= limit

    def _fail_unplaced(self, job: Job) -> None:
        """``job`` could not be placed within its budget (``_cond`` held, job not pending)."""
        limit = self.options.submit_within
        self._finalize(job, "failed", f"no server accepted it within {limit:g} s of its first "
                                      f"try (--submit-within {limit:g}); last: "
                                      f"{job.last_error or 'no answer'}")

    def _expire_unplaced(self, now: float) -> None:
        """Fail the waiting jobs whose placement budget is used up (``_cond`` held)."""
        expired = [job for job in self._pending if self._placement_expired(job, now)]
        for job in expired:
            self._pending.remove(job)
            if job.outcome is None:
                self._fail_unplaced(job)

    def _request_timeout(self, job: Job) -> float | None:
        """Deadline of ``job``'s ``POST /prompt``: while no server has answered yet, no later
        than the end of its placement budget (so a silent server cannot stretch it); None: the
        usual ``http_timeout``."""
        limit = self.options.submit_within
        if not limit or self._answered or job.placing_since is None:
            return None
        left = job.placing_since + limit - self._now()
        return min(self.options.http_timeout, max(left, 0.1))


    def _server_errors(self, servers) -> str:
        return "; ".join(f"{s.url}: {s.last_error or 'no answer yet'}" for s in servers)

    def _should_end(self, now: float) -> bool:
        """Given up already, stop grace over, no usable server, no worker, no first answer in
        time, or no answer for a long time: True (``_cond`` held)."""
        if self._give_up:  # e.g. --first-answer-failures, decided where the job failed
            return True
        if self._stop_requested:
            # Taken jobs that are not waiting in _pending are running somewhere (in flight,
            # being submitted, or being verified).
            running = self._taken_open - len(self._pending)
            if running <= 0:
                return True
            if now - (self._stop_time or now) > self.options.grace:
                self._stop_reason += (f"; {running} job(s) still in flight after "
                                      f"{self.options.grace:g} s grace")
                return True
        enabled = [s for s in self.servers if s.enabled]
        if not enabled:
            reasons = "; ".join(f"{url}: {why}" for url, why in self.disabled_reasons.items())
            self._give_up_now(f"no usable server left ({reasons})")
            return True
        if self._threads and not any(t.is_alive() for t in self._threads):
            self._give_up_now("gave up: every server worker thread has stopped")
            return True
        first_within = self.options.first_answer_within
        if not self._answered and first_within and \
                now - self._contact_started > first_within:
            self._give_up_unanswered(f"no server answered successfully within {first_within:g} "
                                     f"s of the start (--first-answer-within {first_within:g}): "
                                     f"{self._server_errors(enabled)}")
            return True
        latest_ok = max(s.last_ok for s in enabled)
        if all(s.consecutive_errors for s in enabled) and \
                now - latest_ok > self.options.give_up_after:
            errors = self._server_errors(enabled)
            # One give-up path, so that a job a worker still holds also fails with this
            # reason (it was labelled unfinished when only the stop reason was set).
            self._give_up_now(f"no server answered for {self.options.give_up_after:g} s "
                              f"({errors})")
            return True
        return False

    def _give_up_unanswered(self, reason: str) -> None:
        """Give up on servers that never worked, saying what to check (``_cond`` held)."""
        self._give_up_now(reason)
        self.console.log("hint: check the --server URL and that ComfyUI runs there and answers "
                         "in a browser; a server that is only slow to start needs a larger "
                         "--first-answer-within.")

    def _give_up_now(self, reason: str) -> None:
        """End the run (call with ``self._cond`` held): open jobs fail with ``reason``."""
        self._stop_reason = reason
        self._give_up_reason = reason
        self._give_up = True
        self.console.log(f"giving up: {reason}")


    def _settle_leftovers(self) -> None:
        """Give every job without an outcome one (``_cond`` held, workers told to close)."""
        gave_up = self._give_up
        for server in self.servers:
            for prompt_id, job in list(server.inflight.items()):
                if gave_up:
                    self._finalize(job, "failed", f"{self._give_up_reason} (was in flight "
                                                  f"on {server.url}, prompt id {prompt_id})")
                else:
                    self._finalize(job, "unfinished", f"left in flight on {server.url} "
                                                      f"(prompt id {prompt_id}); it may still "
                                                      "complete there")
            server.inflight.clear()
        for job in self._pending:
            if job.outcome is None:
                if gave_up:
                    self._finalize(job, "failed", f"not run: {self._give_up_reason}")
                else:
                    self._finalize(job, "unfinished", "not started (stopped)")
        self._pending.clear()
        for job in self._jobs:  # held by a worker that did not finish in time
            if job.outcome is None:
                if gave_up:
                    self._finalize(job, "failed", f"not finished: {self._give_up_reason}")
                else:
                    self._finalize(job, "unfinished", "stopped while being submitted")
        untaken = self._open - self._taken_open  # to-do indices never taken from the source
        if untaken > 0:
            self._not_started = NotStarted(
                untaken, self.source.peek_remaining(), "failed" if gave_up else "unfinished",
                f"not run: {self._give_up_reason}" if gave_up else "not started (stopped)")
            if gave_up:
                self._failed += untaken
            self._open -= untaken

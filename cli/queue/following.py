"""How the queue runner follows its jobs through ComfyUI's websocket events (a mixin of
:class:`~.runner.QueueRunner`, which holds the state; see its module docstring for when it
polls instead).

One :class:`~.events.EventListener` thread per server collects the prompts that started and
ended; the server's worker thread calls :meth:`EventFollowing._apply_events` to read the
ended ones' results from ``/history`` and :meth:`EventFollowing._poll_due` to decide whether
``/queue`` must be polled as well.
"""
from __future__ import annotations

from urllib.parse import quote

from .client import ServerUnreachable
from .events import EventListener
from .jobs import Job, ServerState

__all__ = ["EventFollowing"]


class EventFollowing:
    """Websocket side of :class:`~.runner.QueueRunner` (see the module docstring)."""

    def _start_listeners(self) -> None:
        """One websocket listener per usable server (none with ``events=False``)."""
        if not self.options.events:
            return
        for server in self.servers:
            if server.enabled:
                server.listener = EventListener(
                    server.url, self.client_id, server.events,
                    connect_timeout=min(self.options.http_timeout, 10.0),
                    quiet=self.options.events_quiet, backoff=min(self.options.backoff, 1.0),
                    backoff_max=self.options.events_backoff_max,
                    on_down=lambda reason, first, url=server.url: self._events_down(
                        url, reason, first)).start()

    def _events_down(self, url: str, reason: str, first: bool) -> None:
        if first and not self._closing:
            self._warn_once(f"events:{url}", f"note: {url}: no websocket events ({reason}); "
                                             f"following its jobs by polling every "
                                             f"{self.options.poll_interval:g} s meanwhile.")

    def _events_current(self, server: ServerState) -> bool:
        """The websocket is connected and spoke within ``events_quiet`` seconds."""
        return server.listener is not None and \
            server.events.quiet_for() < self.options.events_quiet

    def _apply_events(self, server: ServerState) -> None:
        """Act on what the websocket said: read the results of the prompts that ended."""
        with self._cond:
            held = set(server.inflight)
        ended, started = server.events.take(held)
        if started:
            now = self._now()
            with self._cond:
                for prompt_id in started:
                    job = server.inflight.get(prompt_id)
                    if job is not None and job.running_since is None:
                        job.running_since = now
        for prompt_id in ended:
            if self._closing:
                return
            with self._cond:
                job = server.inflight.get(prompt_id)
            if job is not None and not self._read_ended(server, job, prompt_id):
                return

    def _read_ended(self, server: ServerState, job: Job, prompt_id: str) -> bool:
        """An event said ``prompt_id`` ended: settle it from ``/history``; False on an error.

        ComfyUI sends ``execution_success`` before it writes the history entry, so a missing
        entry is not counted as a lost job here: the ``executing`` message that follows the
        entry, or else the polls that a result not read yet calls for, decide.
        """
        try:
            history = server.http.get_json(f"/history/{quote(prompt_id, safe='')}")
        except ServerUnreachable as error:
            self._not_read_yet(server, job)
            self._server_error(server, str(error))
            return False
        entry = history.get(prompt_id) if isinstance(history, dict) else None
        with self._cond:
            self._server_ok(server)
            if entry is None:
                self._not_read_yet(server, job)
                return True
            if server.inflight.get(prompt_id) is not job:
                return True  # settled by another path meanwhile
            server.inflight.pop(prompt_id)
        self._settle(server, job, entry)
        return True

    def _not_read_yet(self, server: ServerState, job: Job) -> None:
        """An ended job's result could not be read: polls follow it from now on (and the
        ``give_up_after`` bound on unread results applies, as for a polled job)."""
        with self._cond:
            if job.unread_since is None:
                job.unread_since = self._now()
            server.poll_soon = True

    def _poll_due(self, server: ServerState, now: float) -> bool:
        """Whether the worker must poll ``/queue`` now (see the module docstring)."""
        if not (server.inflight or server.stuck):
            server.events.take_reconcile()  # nothing held: nothing to reconcile
            return False
        if server.events.take_reconcile():
            return True
        if server.listener is not None and now - server.polled_at < self.options.poll_interval:
            return False  # woken early by an event: polls stay --poll apart
        if not self._events_current(server) or server.stuck or server.poll_soon:
            return True
        timeout = self.options.timeout
        with self._cond:
            return any(job.unread_since is not None or (
                timeout is not None and job.running_since is not None
                and now - job.running_since > timeout) for job in server.inflight.values())

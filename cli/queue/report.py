"""What a queue run shows: the progress line between log messages, and the summary."""
from __future__ import annotations

import dataclasses
import threading
import time

from ..common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, ProgressBar, format_seconds

__all__ = ["Console", "NotStarted", "QueueSummary"]


class Console:
    """Log messages plus the project's progress bar (:class:`~..common.ProgressBar`) on one
    stream, safe from several threads.

    On a terminal the bar is redrawn in place (at most ~10 times a second) below the log;
    otherwise the bar's text is printed as a plain line every ``status_every`` seconds so that
    log files stay readable (0: never).

    Parameters
    ----------
    stream : text stream
    enabled : bool or None
        Force the in-place bar on or off (None: on when ``stream`` is a terminal).
    status_every : float
        Seconds between plain status lines when the bar is not drawn in place.
    """

    def __init__(self, stream, enabled: bool | None, status_every: float):
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)()) if enabled is None else enabled
        self.status_every = status_every
        # The bar never draws itself (enabled=False): this class draws its line() so that log
        # messages from other threads can clear and restore it.
        self.bar = ProgressBar(0, stream=stream, label="queue", enabled=False)
        # Reentrant: the Ctrl-C handler logs from the main thread, which may hold the lock.
        self._lock = threading.RLock()
        self._line = ""
        self._last_draw = 0.0
        self._last_status = time.monotonic()

    def start(self, total: int) -> None:
        """Begin counting ``total`` jobs (the clock of the rate and ETA starts now)."""
        with self._lock:
            self.bar = ProgressBar(total, stream=self.stream, label="queue", enabled=False)

    def settled(self, done: int, outcome: str) -> None:
        """One more job settled (``done`` of ``total`` so far) with ``outcome``."""
        with self._lock:
            self.bar.update(done, outcome)

    def log(self, message: str) -> None:
        with self._lock:
            if self.tty and self._line:
                self.stream.write("\r" + " " * min(len(self._line), 120) + "\r")
            self.stream.write(message.rstrip("\n") + "\n")
            if self.tty and self._line:
                self.stream.write(self._line)
            self.stream.flush()

    def progress(self, detail: str, *, force: bool = False) -> None:
        """Show the bar followed by ``detail`` (e.g. ``"2 in flight, 1 failed"``)."""
        now = time.monotonic()
        with self._lock:
            line = self.bar.line().rstrip() + (f" | {detail}" if detail else "")
            if self.tty:
                if force or now - self._last_draw >= 0.1:
                    self._last_draw = now
                    padded = line.ljust(len(self._line))
                    self._line = line
                    self.stream.write("\r" + padded)
                    self.stream.flush()
            elif self.status_every and now - self._last_status >= self.status_every:
                self._last_status = now
                self.stream.write(line + "\n")
                self.stream.flush()

    def finish(self) -> None:
        with self._lock:
            if self.tty and self._line:
                self.stream.write("\n")
                self.stream.flush()
            self._line = ""


@dataclasses.dataclass
class NotStarted:
    """Sample indices the run never reached (they are not listed one by one: a range may hold
    billions): ``count`` of them from ``first_index`` on, counted as ``outcome``."""

    count: int = 0
    first_index: int | None = None
    outcome: str = "unfinished"
    reason: str = ""


@dataclasses.dataclass
class QueueSummary:
    """What a queue run did; :meth:`to_text` is what the command prints.

    ``failed`` and ``unfinished`` include :attr:`not_started`; ``failures`` and
    ``unfinished_items`` list the jobs the run took, as ``(sample id, reason)``.
    """

    requested: int
    skipped: int
    done: int
    rejected: int
    failed: int
    unfinished: int
    retries: int
    wall_s: float
    interrupted: bool
    stop_reason: str
    dataset_root: str | None
    servers: list[dict]
    failures: list[tuple[str, str]]     # (sample id, reason)
    unfinished_items: list[tuple[str, str]]
    not_started: NotStarted = dataclasses.field(default_factory=NotStarted)

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_FAILED if self.failed or self.unfinished else EXIT_OK

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data["failures"] = [{"id": i, "reason": r} for i, r in self.failures]
        data["unfinished_items"] = [{"id": i, "reason": r} for i, r in self.unfinished_items]
        data["exit_code"] = self.exit_code
        return data

    @staticmethod
    def _grouped(items: list[tuple[str, str]], max_groups: int, ids_shown: int = 8) -> list[str]:
        groups: dict[str, list[str]] = {}
        for sample_id, reason in items:
            groups.setdefault(reason, []).append(sample_id)
        lines = []
        for reason, ids in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[1][0]))[
                :max_groups]:
            shown = ", ".join(ids[:ids_shown]) + (f" (+{len(ids) - ids_shown} more)"
                                                   if len(ids) > ids_shown else "")
            lines.append(f"    {len(ids)} x {reason}\n        ids: {shown}")
        if len(groups) > max_groups:
            lines.append(f"    ... and {len(groups) - max_groups} other reason(s)")
        return lines

    def _not_started_lines(self, outcome: str) -> list[str]:
        gap = self.not_started
        if not gap.count or gap.outcome != outcome:
            return []
        return [f"    {gap.count} x {gap.reason}\n        indices: {gap.first_index} and later "
                "(not reached by this run)"]

    def _server_lines(self) -> list[str]:
        lines = ["  servers:"]
        for server in self.servers:
            extra = [f"{server[key]} {label}" for key, label in (
                ("failed_attempts", "failed attempt(s)"),
                ("validation_errors", "validation error(s)"),
                ("timeouts", "timeout(s)"),
                ("connection_errors", "connection error(s)")) if server[key]]
            state = "" if server["enabled"] else f"  [not used: {server['disabled_reason']}]"
            lines.append(f"    {server['url']}: {server['submitted']} submitted, "
                         f"{server['done']} done, {server['rejected']} rejected"
                         + (", " + ", ".join(extra) if extra else "") + state)
        return lines

    def to_text(self, max_groups: int = 12) -> str:
        lines = [f"ld-portrait queue: {self.requested} sample(s) requested, wall time "
                 f"{format_seconds(max(self.wall_s, 0.0))}"
                 + (" (interrupted)" if self.interrupted else "")]
        where = f" in {self.dataset_root}" if self.dataset_root else ""
        rows = [("done", self.done, ""),
                ("rejected", self.rejected, "the quality gate said no; recorded under rejected/"),
                ("skipped", self.skipped, f"already complete{where}"),
                ("failed", self.failed, ""),
                ("unfinished", self.unfinished, "run the same command again to continue"),
                ("retries", self.retries, "attempts repeated after a failure")]
        for name, count, note in rows:
            if count or name in ("done", "failed"):
                lines.append(f"  {name:<11}{count:>7}" + (f"   ({note})" if note else ""))
        if self.stop_reason:
            lines.append(f"  stopped: {self.stop_reason}")
        if self.servers:
            lines.extend(self._server_lines())
        if self.failed:
            lines.append(f"  failures ({self.failed}):")
            lines.extend(self._grouped(self.failures, max_groups))
            lines.extend(self._not_started_lines("failed"))
        if self.unfinished:
            lines.append(f"  unfinished ({self.unfinished}):")
            lines.extend(self._grouped(self.unfinished_items, max_groups))
            lines.extend(self._not_started_lines("unfinished"))
        return "\n".join(lines)

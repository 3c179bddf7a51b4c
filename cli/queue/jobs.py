"""The records a queue run keeps: its options, the sample indices (handed out lazily), one
record per job and per server, and read-only questions about the dataset root."""
from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any, Iterable

from ...dataset import index_id
from .client import HttpClient
from .events import ServerEvents
from .graph import MAX_SAMPLE_INDEX, MAX_SEED

__all__ = ["QueueOptions", "Job", "ServerState", "IndexSource", "DatasetProbe"]


@dataclasses.dataclass
class QueueOptions:
    """Settings of a queue run (the CLI flags; the rest are for tests and tuning).

    Times are in seconds.
    """

    in_flight: int = 2             # jobs queued on one server at once (1 running + 1 waiting)
    retries: int = 2               # extra attempts after a failed one
    timeout: float | None = None   # a job running longer than this on a server counts as failed
    seed: int | None = None        # base seed (None: the template node's literal seed, else 0)
    client_id: str | None = None   # sent with every prompt (None: a fresh uuid4 per run)
    keep_sampler_seed: bool = False
    allow_no_template: bool = False
    dataset_name: str | None = None
    verify: bool = True            # check that completed samples appear in the dataset root
    poll_interval: float = 1.0
    http_timeout: float = 30.0     # one HTTP request, connect to last byte (a total deadline)
    grace: float = 60.0            # after stop(): how long to wait for jobs in flight
    backoff: float = 2.0           # first pause after a server error and before a retry;
    #                                doubles per further error/failure up to backoff_max
    backoff_max: float = 15.0      # short enough that a server coming back (ComfyUI restarts
    #                                or starts in 20-60 s) is tried several times within
    #                                submit_within: tries at 0, 2, 6, 14, 29, 44, 59 s
    submit_within: float = 60.0    # a sample no server accepted this long after its first try
    #                                fails: when a server answered but refused it (5xx, not
    #                                JSON), and for any failure while no server has answered
    #                                yet (0: no limit)
    first_answer_within: float = 90.0  # no server answered successfully this long after the
    #                                start: end the run (0: no limit); above a typical ComfyUI
    #                                start-up, below the 2 minutes a dead server may cost
    first_answer_failures: int = 3  # this many samples failed while no server has answered
    #                                successfully yet: end the run (0: no limit)
    server_down_after: float = 30.0  # unreachable this long: its jobs in flight go elsewhere
    give_up_after: float = 600.0   # no server answered this long: end the run; a job whose
    #                                result cannot be read this long fails its attempt; with a
    #                                timeout, a job fails timeout + this after submission; a
    #                                timed-out job still on its server this long after: stuck
    max_failures: int = 0          # stop submitting after this many failed jobs (0: no limit)
    verify_wait: float = 3.0       # how long a finished sample may take to appear on disk
    preflight: bool = True         # check /object_info for the graph's node types first
    status_every: float = 30.0     # progress line period when stderr is not a terminal
    events: bool = True            # follow jobs through ComfyUI's websocket (False: poll only)
    events_quiet: float = 5.0      # websocket without a message this long while jobs are in
    #                                flight: poll too (ComfyUI sends a message per node and per
    #                                sampler step, well under a second apart, while our jobs
    #                                run); twice this without any frame: reconnect
    events_backoff_max: float = 30.0  # longest pause between websocket connection attempts:
    #                                a host without websockets costs one request per 30 s

    def check(self) -> None:
        """Raise ValueError naming the first setting out of range."""
        if isinstance(self.in_flight, bool) or not isinstance(self.in_flight, int) or \
                self.in_flight < 1:
            raise ValueError(f"--in-flight must be a whole number >= 1, got {self.in_flight!r}.")
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise ValueError(f"--retries must be a whole number >= 0, got {self.retries!r}.")
        if self.seed is not None and not (0 <= int(self.seed) <= MAX_SEED):
            raise ValueError(f"--seed must be between 0 and 2**64-1, got {self.seed}.")
        if self.max_failures < 0:
            raise ValueError(f"--max-failures must be >= 0, got {self.max_failures}.")
        if isinstance(self.first_answer_failures, bool) or \
                not isinstance(self.first_answer_failures, int) or self.first_answer_failures < 0:
            raise ValueError("--first-answer-failures must be a whole number >= 0, got "
                             f"{self.first_answer_failures!r}.")
        for name in ("poll_interval", "http_timeout", "backoff", "backoff_max", "events_quiet",
                     "events_backoff_max"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a number > 0, got {value!r}.")
        for name in ("grace", "server_down_after", "give_up_after", "verify_wait",
                     "status_every", "submit_within", "first_answer_within"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a number >= 0, got {value!r}.")
        if self.timeout is not None and not (math.isfinite(self.timeout) and self.timeout > 0):
            raise ValueError(f"--timeout must be > 0 seconds, got {self.timeout!r}.")


@dataclasses.dataclass(eq=False)
class Job:
    """One sample index on its way through the queue."""

    index: int
    sample_id: str
    attempts: int = 0              # times a server accepted it
    failures: list = dataclasses.field(default_factory=list)  # one reason per failed attempt
    prompt_id: str | None = None
    server: str | None = None      # url of the server holding it (taken, in flight)
    submitted_at: float | None = None  # monotonic time the current attempt was accepted
    unread_since: float | None = None  # when it left the server's /queue (result not read yet)
    listed: str = ""               # "running" / "waiting" when last listed, "" otherwise
    running_since: float | None = None
    missing_polls: int = 0
    avoid: str | None = None       # server it last failed on
    ready_at: float = 0.0          # not submitted before this time (back-off before a retry)
    internal_errors: int = 0       # times a worker crashed while it held the job
    # Placement (getting a server to accept it): when the first try since the job was last
    # accepted began, whether a server answered but refused it since, and the last failure.
    placing_since: float | None = None
    placing_refused: bool = False
    last_error: str = ""
    outcome: str | None = None     # done / rejected / skipped / failed / unfinished
    reason: str = ""
    verify_deadline: float = 0.0
    finished_on: Any = None        # the ServerState that reported success

    def clear_attempt(self) -> None:
        """Forget the current attempt's server-side state (it ended or was taken back)."""
        self.server = None
        self.prompt_id = None
        self.submitted_at = self.unread_since = self.running_since = None
        self.listed = ""
        self.missing_polls = 0


class ServerState:
    """What the run knows about one server: health, jobs in flight, counters."""

    def __init__(self, url: str, timeout: float):
        self.url = url
        self.http = HttpClient(url, timeout)
        self.enabled = True
        self.inflight: dict[str, Job] = {}
        # Our given-up prompts that may still be on the server (prompt id -> (monotonic time
        # given up, sample id)): while any is there the server gets no new work.
        self.stuck: dict[str, tuple[float, str]] = {}
        self.consecutive_errors = 0
        self.unhealthy_until = 0.0
        self.events = ServerEvents()       # what its websocket said (see .events)
        self.listener = None               # its EventListener while the run lasts
        self.polled_at = -math.inf         # run clock time of the last /queue poll
        self.poll_soon = False             # an ended prompt had no /history entry yet
        self.last_ok = time.monotonic()
        self.last_error = ""
        self.last_warning = -math.inf  # monotonic time of the last warning logged about it
        self.counts = dict(submitted=0, done=0, rejected=0, failed_attempts=0,
                           connection_errors=0, timeouts=0, validation_errors=0)

    def healthy(self, now: float) -> bool:
        return self.enabled and now >= self.unhealthy_until


def _check_index(index) -> int:
    if isinstance(index, bool) or not isinstance(index, int) or \
            not 0 <= index < MAX_SAMPLE_INDEX:
        raise ValueError(f"sample indices must be whole numbers from 0 to 2**53-1, got "
                         f"{index!r}.")
    return index


class IndexSource:
    """The run's sample indices, handed out one at a time.

    A ``range`` is never expanded into a list (``--range 0:9007199254740992`` costs nothing
    until jobs are taken); any other iterable is read once, checked and de-duplicated (order
    kept). Every index must lie in ``[0, MAX_SAMPLE_INDEX)``.
    """

    def __init__(self, indices: Iterable[int]):
        if isinstance(indices, range):
            if indices.step < 1:
                raise ValueError("the sample indices must count upwards (a range with step >= 1).")
            if len(indices):
                _check_index(indices[0])
                _check_index(indices[-1])
            self._indices = indices
        else:
            seen: set[int] = set()
            unique = []
            for index in indices:
                if _check_index(index) not in seen:
                    seen.add(index)
                    unique.append(index)
            self._indices = unique
        self.count = len(self._indices)
        self.taken = 0                 # indices handed out so far
        self._iterator = iter(self._indices)

    def fresh(self) -> "IndexSource":
        """A new source over the same indices, from the start."""
        return IndexSource(self._indices)

    def first(self) -> int | None:
        return self._indices[0] if self.count else None

    def next(self) -> int | None:
        """The next index, or None when all were handed out."""
        index = next(self._iterator, None)
        if index is not None:
            self.taken += 1
        return index

    def peek_remaining(self) -> int | None:
        """The first index not handed out yet (None when none is left)."""
        return self._indices[self.taken] if self.taken < self.count else None

    def count_in(self, sample_ids: set[str]) -> int:
        """How many of the indices have their id (``index_id``) in ``sample_ids``."""
        if isinstance(self._indices, range):
            return sum(1 for sample_id in sample_ids if sample_id.isdigit()
                       and int(sample_id) in self._indices
                       and index_id(int(sample_id)) == sample_id)
        return sum(1 for index in self._indices if index_id(index) in sample_ids)


class DatasetProbe:
    """Read-only questions about the dataset root; creates and locks nothing (``--dry-run``
    included).

    The meta file of a sample is written last and atomically by
    :class:`~comfyui_ld_portrait.dataset.DatasetWriter`, so a usable meta file
    (``meta/<id>.json`` or ``rejected/meta/<id>.json``) means the sample is complete; an
    empty or broken one does not (the writer redoes such a sample), judged by the writer's
    own reader (:func:`~comfyui_ld_portrait.dataset.writer.sample_status`).
    :meth:`complete_ids` reads the meta folders (once, for the initial skip set);
    :meth:`status` checks the two paths of one id directly, so asking before each submission
    stays cheap on a large dataset.
    """

    def __init__(self, root):
        self.root = Path(root).expanduser()

    def complete_ids(self) -> set[str]:
        if not self.root.is_dir():
            return set()
        # Here, not at import: the dataset writer loads numpy and OpenCV, which a queue
        # without --dataset never needs (the command starts faster without them).
        from ...dataset.writer import complete_sample_ids

        return complete_sample_ids(self.root)

    def status(self, sample_id: str) -> str | None:
        """``"accepted"``, ``"rejected"`` or None (not complete, or no root yet)."""
        from ...dataset.writer import sample_status

        return sample_status(self.root, sample_id)

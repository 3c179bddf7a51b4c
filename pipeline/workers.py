"""Folder jobs on every core and on many machines: worker processes and shards.

Worker processes (``--workers N``)
    The heavy part of a file (read, refine or key, encode, write) runs in one of N worker
    processes; the calling process keeps everything that decides *what* to do (skip a
    complete sample, a changed source, ``--limit``, Ctrl-C) and takes the results back **in
    input order**, so the summary, the progress events and every file written are those of a
    run with one worker. Processes, not threads: the image work holds the GIL in places and
    torch may be loaded. Workers start with ``forkserver`` where the system has it (a fresh
    server process forks them, so nothing of a parent that loaded torch and its threads is
    inherited) and ``spawn`` elsewhere; each uses one thread for OpenCV and torch so that N
    workers do not oversubscribe N cores. Workers ignore SIGINT: Ctrl-C is the parent's, which
    stops handing out files and waits for the ones in progress (a second Ctrl-C stops them at
    once; writes are atomic and a rerun resumes).

Shards (``--shard K/N``)
    N processes, on one machine or N (a SLURM array, a Kubernetes indexed Job), each take the
    files whose name hashes to their shard and write into one dataset root (the dataset writer
    is safe for concurrent writers). The split is by a hash of the file name, not by position
    in the sorted listing: a file's shard depends on its name alone, so files added to the
    folder between a preempted run and its rerun never move other files to another shard.
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import multiprocessing
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable

__all__ = ["available_cores", "parse_shard", "shard_of", "in_shard", "shard_files",
           "WorkerTask", "OrderedPool", "BrokenProcessPool", "merge_summary", "one_thread"]

#: Files in flight per worker: two keep a worker busy while the parent takes a result back,
#: more would only hold decoded images in memory for nothing.
_IN_FLIGHT_PER_WORKER = 2


def available_cores() -> int:
    """The cores this process may run on (``os.sched_getaffinity``: what a container, a SLURM
    allocation or ``taskset`` grants), else ``os.cpu_count()``; at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS and Windows have no sched_getaffinity
        return max(1, os.cpu_count() or 1)


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/8"`` -> ``(2, 8)``: shard K of N, 1 <= K <= N.

    Raises ValueError with what was wrong and what to write instead."""
    k_text, sep, n_text = str(text).strip().partition("/")
    try:
        if not sep:
            raise ValueError
        k, n = int(k_text), int(n_text)
    except ValueError:
        raise ValueError(f"expected K/N, e.g. 1/4 for the first of 4 shards; got {text!r}."
                         ) from None
    if n < 1:
        raise ValueError(f"got {text}: N, the number of shards, must be at least 1.")
    if not 1 <= k <= n:
        raise ValueError(f"got {text}: K must be between 1 and {n} (shards are numbered from 1: "
                         f"a SLURM array 1-{n}, or JOB_COMPLETION_INDEX + 1 in Kubernetes).")
    return k, n


def shard_of(name: str, count: int) -> int:
    """The shard (1..count) of the input file called ``name``: SHA-256 of its name's bytes,
    the first 8 bytes as a number, modulo ``count``. The same on every machine and Python
    (no ``hash()``, which is salted per process)."""
    digest = hashlib.sha256(os.fsencode(name)).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def in_shard(name: str, shard: tuple[int, int] | None) -> bool:
    """True when ``shard`` is None (no sharding) or the file belongs to it."""
    return shard is None or shard_of(name, shard[1]) == shard[0]


def shard_files(files, shard: tuple[int, int] | None) -> list:
    """The paths of ``files`` in ``shard`` (all of them when None), order kept."""
    return [path for path in files if in_shard(os.path.basename(path), shard)]


def one_thread() -> None:
    """One thread for OpenCV and torch in this process (a worker: N of them share the cores).
    torch is only told when some module loaded it already: importing it costs seconds."""
    import cv2

    cv2.setNumThreads(1)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


@dataclasses.dataclass(frozen=True)
class WorkerTask:
    """What a worker process does, in picklable parts (module-level functions and their
    arguments; closures cannot travel to another process).

    ``setup(*setup_args)`` runs once per worker and returns its state (e.g. a dataset writer);
    ``process(state, *item)`` runs for each item and returns what the parent takes back.
    """

    setup: Callable[..., Any]
    setup_args: tuple
    process: Callable[..., Any]


def _as_the_command_runs() -> None:
    """What ``ld-portrait`` sets for its own process, set in each worker too (they are the
    run's processes, not a host's): freed image memory kept for the next file, and the
    decoder's own stderr lines kept out (a broken file is reported by name in the summary)."""
    from ..cli.common import keep_freed_memory
    from ..dataset.imagefiles import quiet_decoder_messages

    keep_freed_memory()
    quiet_decoder_messages(True)


_worker_state: tuple | None = None  # (process, state) in a worker process


def _start_worker(task: WorkerTask) -> None:
    global _worker_state
    # Ctrl-C goes to the whole process group; only the parent decides what it means.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    one_thread()
    _as_the_command_runs()
    _worker_state = (task.process, task.setup(*task.setup_args))


def _run_in_worker(*item):
    process, state = _worker_state
    return process(state, *item)


#: Modules the fork server imports once, so that each worker it forks starts with them loaded
#: (numpy, OpenCV, SciPy and the folder jobs) instead of importing them again.
_PRELOAD = tuple(f"{__package__}.{name}" for name in ("folder", "keying_folder"))


def _context():
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    # '__main__' stays first, as multiprocessing has it by default.
    context.set_forkserver_preload(["__main__", *_PRELOAD])
    return context


class OrderedPool:
    """Worker processes that take items in order and give results back in the same order.

    Started on the first :meth:`submit` (a run with nothing to do starts no process).
    :meth:`full` says when enough items are in flight; :meth:`next_result` blocks for the
    oldest one. Use as a context manager: leaving it normally waits for the workers to end;
    leaving it by an exception (a second Ctrl-C) stops them at once.
    """

    def __init__(self, task: WorkerTask, workers: int):
        self.task = task
        self.workers = max(1, int(workers))
        self._executor: ProcessPoolExecutor | None = None
        self._futures: collections.deque = collections.deque()

    def __len__(self) -> int:
        return len(self._futures)

    def full(self) -> bool:
        return len(self._futures) >= self.workers * _IN_FLIGHT_PER_WORKER

    def submit(self, *item) -> None:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(self.workers, mp_context=_context(),
                                                 initializer=_start_worker,
                                                 initargs=(self.task,))
        self._futures.append(self._executor.submit(_run_in_worker, *item))

    def next_result(self):
        """The oldest item's result (its exception is raised here)."""
        return self._futures.popleft().result()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.stop_now()
        else:
            self.close()
        return False

    def close(self) -> None:
        """Wait for the items in flight and end the workers."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)

    def stop_now(self) -> None:
        """Drop the queued items and kill the running ones. Their writes are atomic: a killed
        file is simply not done, and the next run removes its temporary files."""
        executor, self._executor = self._executor, None
        self._futures.clear()
        if executor is None:
            return
        processes = list((getattr(executor, "_processes", None) or {}).values())
        executor.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(timeout=5)


def merge_summary(total, part) -> None:
    """Add one file's summary ``part`` (a fresh RunSummary a worker filled) to ``total``:
    numbers are added, lists extended, counts per key added. Flags and the run's own fields
    (``found``, ``elapsed_s``, ``interrupted`` ...) are the parent's and left alone."""
    for field in dataclasses.fields(total):
        value = getattr(part, field.name)
        if isinstance(value, bool) or field.name == "found":
            continue
        if isinstance(value, int):
            setattr(total, field.name, getattr(total, field.name) + value)
        elif isinstance(value, list):
            getattr(total, field.name).extend(value)
        elif isinstance(value, dict):
            counts = getattr(total, field.name)
            for key, count in value.items():
                counts[key] = counts.get(key, 0) + count

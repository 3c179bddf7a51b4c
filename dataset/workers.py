"""Worker processes for folder jobs: an ordered process pool (``--workers N``).

The heavy part of each item (read, refine or key, encode, write) runs in one of N worker
processes; the caller keeps everything that decides *what* to do and takes the results back
**in input order**, so what a run writes and reports is that of one worker. Processes, not
threads: the image work holds the GIL in places and torch may be loaded. Workers start with
``forkserver`` where the system has it (a fresh server process forks them, so nothing of a
parent that loaded torch and its threads is inherited) and ``spawn`` elsewhere; each uses one
thread for OpenCV and torch so that N workers do not oversubscribe N cores. Workers ignore
SIGINT: Ctrl-C is the parent's, which stops handing out items and waits for the ones in
progress (:meth:`OrderedPool.stop_now` ends them at once; writes are atomic).

As with any multiprocessing code, a script that starts a pool must guard its own work with
``if __name__ == "__main__":`` (the workers import the main module); ``ld-portrait`` does.
"""
from __future__ import annotations

import collections
import dataclasses
import multiprocessing
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable

__all__ = ["available_cores", "WorkerTask", "OrderedPool", "BrokenProcessPool", "one_thread",
           "also_in_workers", "start_worker_server"]

#: Items in flight per worker: two keep a worker busy while the parent takes a result back,
#: more would only hold decoded images in memory for nothing.
_IN_FLIGHT_PER_WORKER = 2

#: Module-level functions every worker runs when it starts (:func:`also_in_workers`).
_in_every_worker: list = []


def available_cores() -> int:
    """The cores this process may run on (``os.sched_getaffinity``: what a container, a SLURM
    allocation or ``taskset`` grants), else ``os.cpu_count()``; at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS and Windows have no sched_getaffinity
        return max(1, os.cpu_count() or 1)


def also_in_workers(function: Callable[[], Any]) -> None:
    """Run ``function()`` (module-level, so that it can be named to another process) in every
    worker started from now on: what a command set up for its own process (the allocator
    setting of ``ld-portrait``) holds in its workers too."""
    if function not in _in_every_worker:
        _in_every_worker.append(function)


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
    in_every_worker: tuple = ()  # filled by OrderedPool from also_in_workers


_worker_state: tuple | None = None  # (process, state) in a worker process


def _start_worker(task: WorkerTask) -> None:
    global _worker_state
    # Ctrl-C goes to the whole process group; only the parent decides what it means.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    one_thread()
    # A broken file is reported by name in the summary, not by the decoder's own line.
    from .imagefiles import quiet_decoder_messages

    quiet_decoder_messages(True)
    for function in task.in_every_worker:
        function()
    _worker_state = (task.process, task.setup(*task.setup_args))


def _run_in_worker(*item):
    process, state = _worker_state
    return process(state, *item)


#: Modules the fork server imports once, so that each worker it forks starts with them loaded
#: (numpy, OpenCV, SciPy and the folder jobs) instead of importing them again.
_PRELOAD = tuple(f"{__package__.rpartition('.')[0]}.{name}" for name in
                 ("pipeline.folder", "pipeline.keying_folder", "dataset.export"))


def _context():
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    # '__main__' stays first, as multiprocessing has it by default.
    context.set_forkserver_preload(["__main__", *_PRELOAD])
    return context


def start_worker_server() -> None:
    """Start the fork server now, where workers start from one: it imports the folder jobs'
    modules (:data:`_PRELOAD`) in its own process while the caller goes on with its own
    imports and listing, instead of after them, when the first item is submitted (about a
    quarter of a second of a two-core run's start). Harmless when no pool is made after all:
    the server ends with this process."""
    context = _context()
    if context.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


class OrderedPool:
    """Worker processes that take items in order and give results back in the same order.

    Started on the first :meth:`submit` (a run with nothing to do starts no process).
    :meth:`full` says when enough items are in flight; :meth:`next_result` blocks for the
    oldest one. Use as a context manager: leaving it normally waits for the workers to end;
    leaving it by an exception (a second Ctrl-C) stops them at once.
    """

    def __init__(self, task: WorkerTask, workers: int):
        self.task = dataclasses.replace(task, in_every_worker=tuple(_in_every_worker))
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

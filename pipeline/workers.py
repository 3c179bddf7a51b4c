"""Folder jobs on every core and on many machines: worker processes and shards.

Worker processes (``--workers N``, the pool is :mod:`..dataset.workers`)
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

import dataclasses
import hashlib
import os

from ..dataset.workers import (BrokenProcessPool, OrderedPool, WorkerTask, available_cores,
                               one_thread)

__all__ = ["available_cores", "parse_shard", "shard_of", "in_shard", "shard_files",
           "WorkerTask", "OrderedPool", "BrokenProcessPool", "merge_summary", "one_thread"]


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

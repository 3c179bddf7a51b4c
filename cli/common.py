"""Plumbing every ``ld-portrait`` sub-command shares: exit codes, argument types, the progress
bar with ETA, Ctrl-C handling, the image size limit options, and the runner of folder jobs
(:class:`JobProgress`, :func:`run_job`, :func:`print_summary`, :func:`run_exit_code`) that
``refine``, ``demo``, ``key``, ``video-matte`` and ``dataset export`` share."""
from __future__ import annotations

import argparse
import ctypes
import dataclasses
import json
import signal
import sys
import time
from pathlib import Path
from typing import Callable

__all__ = ["EXIT_OK", "EXIT_FAILED", "EXIT_USAGE", "EXIT_INTERRUPTED", "ProgressBar", "StopFlag",
           "format_seconds", "parse_assignments", "whole_number", "non_negative_int",
           "positive_int", "positive_float", "usage_error", "run_error", "write_error", "add_image_limit_options",
           "image_limit_kwargs", "float_argument", "non_negative_seconds", "JobProgress",
           "JobErrors", "run_job", "print_summary", "run_exit_code", "keep_freed_memory",
           "count_input_pngs", "add_replace_changed_option", "add_workers_option",
           "add_shard_option", "workers_from_args", "EXECUTION_OPTIONS"]

#: 0 done; 1 failures or an unrecoverable error; 2 bad arguments; 130 interrupted (Ctrl-C).
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

#: Arrays up to this many bytes are served from memory the process keeps once freed.
KEEP_FREED_BYTES = 512 * 2**20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers


def keep_freed_memory(limit: int = KEEP_FREED_BYTES) -> bool:
    """Let glibc's malloc keep freed memory for the next image instead of returning it.

    By default glibc hands large arrays back to the system when they are freed, so every
    image of 2048 pixels or more faults in (and zeroes) its working arrays afresh: a quarter of
    the refinement's time at 2048x2048 (``benchmarks/bench_refine.py`` prints both). The
    ``ld-portrait`` process calls this once; the peak memory is unchanged, freed memory is
    reused. Returns False (and changes nothing) where the C library is not glibc. Never
    called on import: a ComfyUI host's allocator is the host's business.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    kept = bool(mallopt(_M_MMAP_THRESHOLD, limit)) and bool(mallopt(_M_TRIM_THRESHOLD, 2 * limit))
    if kept and limit == KEEP_FREED_BYTES:  # the worker processes of --workers do the same
        from ..dataset.workers import also_in_workers

        also_in_workers(keep_freed_memory)
    return kept


class ProgressBar:
    """A one-line progress bar on a stream: count, rate and ETA.

    Redrawn in place at most ~10 times a second when the stream is a terminal; when it is not
    (a log file, CI) nothing is printed until :meth:`finish` writes one final line.
    """

    def __init__(self, total: int, *, stream=None, label: str = "refine", enabled=None,
                 width: int = 24, labels=None):
        self.total = max(int(total), 0)
        self.stream = stream if stream is not None else sys.stderr
        self.label = label
        self.width = width
        if enabled is None:
            enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = enabled
        # Outcome -> the word printed for it, in the order listed (others follow by name), so
        # a command prints its counts with the same words as its summary.
        self.labels = dict(labels or {})
        self.done = 0
        self.worked = 0  # files that took real work (skips are instant and would skew the rate)
        self.counts: dict[str, int] = {}
        self.started = time.monotonic()
        self._last_draw = 0.0
        self._drawn = False

    def update(self, done: int, outcome: str, name: str = "") -> None:
        self.done = done
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        if outcome != "skipped":
            self.worked += 1
        now = time.monotonic()
        if self.enabled and (now - self._last_draw >= 0.1 or done >= self.total):
            self._last_draw = now
            self._draw(name)

    def _rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.worked / elapsed if elapsed > 0 else 0.0

    def _draw(self, name: str) -> None:
        self.stream.write("\r" + self.line(name).ljust(96)[:110])
        self.stream.flush()
        self._drawn = True

    def line(self, name: str = "") -> str:
        """The bar as text (label, bar, count, rate, ETA, ``name``), for callers that draw it
        themselves, e.g. between log lines written by several threads (``ld-portrait queue``)."""
        fraction = self.done / self.total if self.total else 1.0
        filled = int(round(fraction * self.width))
        bar = "#" * filled + "-" * (self.width - filled)
        rate = self._rate()
        remaining = self.total - self.done
        eta = format_seconds(remaining / rate) if rate > 0 and remaining else "--:--"
        if not remaining:
            eta = "0:00"
        name = name if len(name) <= 28 else name[:25] + "..."
        return (f"{self.label} [{bar}] {self.done}/{self.total} {rate:5.2f}/s ETA {eta}  "
                f"{name}")

    def counts_text(self) -> str:
        """``"3 accepted, 1 failed"``: counts in :attr:`labels` order, then the rest by name."""
        ordered = [o for o in self.labels if o in self.counts] + sorted(
            o for o in self.counts if o not in self.labels)
        return ", ".join(f"{self.counts[o]} {self.labels.get(o, o)}" for o in ordered)

    def finish(self, *, final_line: bool = True) -> None:
        """End the bar and print one final line (also when the stream is not a terminal).

        ``final_line=False`` only ends the redrawn line: for commands whose summary already
        gives the counts and the duration (one duration, not two that disagree)."""
        if self._drawn:
            self.stream.write("\n")
            self._drawn = False
        if not final_line:
            self.stream.flush()
            return
        elapsed = time.monotonic() - self.started
        parts = self.counts_text()
        self.stream.write(f"{self.label}: {self.done}/{self.total} file(s) in "
                          f"{format_seconds(elapsed)}" + (f" ({parts})" if parts else "") + "\n")
        self.stream.flush()


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class StopFlag:
    """Ctrl-C handling: the first press asks the run to stop after the current file, a second
    press interrupts at once (writes are atomic, so that is safe too)."""

    def __init__(self, stream):
        self.requested = False
        self.stream = stream
        self._previous = None

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread (embedded use): keep the default behaviour
            self._previous = None
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.stream.write("\nstopping after the current file (Ctrl-C again to stop now)...\n")
        self.stream.flush()

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False

    def __call__(self) -> bool:
        return self.requested


def parse_assignments(pairs, what: str) -> dict:
    """``['min_side=128', 'fix_pinholes=false']`` -> ``{'min_side': 128, 'fix_pinholes': False}``."""
    values = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise argparse.ArgumentTypeError(f"{what} must look like NAME=VALUE, got {pair!r}.")
        text = raw.strip()
        lowered = text.lower()
        if lowered in ("true", "false"):
            value = lowered == "true"
        elif lowered in ("none", "null", "auto"):
            value = None
        else:
            try:
                value = int(text)
            except ValueError:
                try:
                    value = float(text)
                except ValueError:
                    raise argparse.ArgumentTypeError(
                        f"{what} {key.strip()}: {raw!r} is not a number, true/false or auto.") from None
        values[key.strip()] = value
    return values


def whole_number(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected a number >= {minimum}, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type for counts and seeds where 0 is meaningful (``--limit``, ``--seed``)."""
    return whole_number(text, 0)


def positive_int(text: str) -> int:
    """argparse type for sizes and counts that must be at least 1 (``--count``, ``--cell``)."""
    return whole_number(text, 1)


def add_image_limit_options(parser) -> None:
    """``--max-pixels`` and ``--max-file-mb``: the limits every input image is checked against
    before decoding (:func:`..dataset.imagefiles.check_image_file`)."""
    from ..dataset.imagelimits import (DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, MAX_BYTES_ENV,
                                       MAX_PIXELS_ENV)

    parser.add_argument("--max-pixels", type=positive_int, metavar="N",
                        help=f"refuse images whose header declares more than N pixels, before "
                             f"decoding (default {DEFAULT_MAX_PIXELS}, 8192x8192, or "
                             f"${MAX_PIXELS_ENV})")
    parser.add_argument("--max-file-mb", type=positive_float, metavar="MB",
                        help=f"refuse image files larger than MB mebibytes (default "
                             f"{DEFAULT_MAX_BYTES >> 20}, or ${MAX_BYTES_ENV} in bytes)")


def add_replace_changed_option(parser) -> None:
    """``--replace-changed`` of the folder jobs that resume (``refine``, ``key``)."""
    parser.add_argument("--replace-changed", action="store_true",
                        help="an input whose content differs from the one its complete sample "
                             "was made from (the sha256 in meta) is redone, replacing the old "
                             "sample (default: it is listed as changed and left alone)")


def image_limit_kwargs(args) -> dict:
    """``{"max_pixels": ..., "max_bytes": ...}`` from :func:`add_image_limit_options`'s options
    (None where not given: the environment variable or the default applies)."""
    megabytes = getattr(args, "max_file_mb", None)
    return {"max_pixels": getattr(args, "max_pixels", None),
            "max_bytes": None if megabytes is None else max(1, int(megabytes * (1 << 20)))}


def float_argument(text: str, what: str = "a number") -> float:
    """``text`` as a float for an argparse type, or ArgumentTypeError saying ``what`` was
    expected; the caller checks the range (each option words its own range)."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None


def field_type(record_class, name: str):
    """argparse type for the ``bounded_field`` ``name`` of a settings dataclass: a number of the
    field's kind within the field's range (the one the library checks and the nodes show)."""
    import dataclasses

    from ..base.fields import field_kind

    spec = next(spec for spec in dataclasses.fields(record_class) if spec.name == name)
    low, high = spec.metadata["min"], spec.metadata["max"]
    whole = field_kind(spec)[0] == "int"

    def parse(text: str):
        value = whole_number(text, low) if whole else float_argument(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected {low}..{high}, got {value}")
        return value

    parse.__name__ = name  # argparse names the type in its messages
    return parse


def add_setting_option(parser, record_class, name: str, *flags: str, **extra) -> None:
    """An option for the ``bounded_field`` ``name`` of a settings dataclass (``--name`` unless
    ``flags`` are given): type and range (:func:`field_type`), default and help (the field's
    meaning, range and default) all come from the field, so the option cannot drift from the
    library, the node widgets and the docs' settings tables. ``extra`` goes to argparse."""
    import dataclasses

    spec = next(spec for spec in dataclasses.fields(record_class) if spec.name == name)
    low, high, doc = spec.metadata["min"], spec.metadata["max"], " ".join(spec.metadata["doc"].split())
    text = f"{doc} ({low}..{high}; default {spec.default})".replace("%", "%%")
    parser.add_argument(*(flags or ("--" + name.replace("_", "-"),)),
                        type=field_type(record_class, name), default=spec.default, help=text,
                        **extra)


def positive_float(text: str) -> float:
    """argparse type for sizes that must be above 0 (``--max-file-mb 0.5``)."""
    value = float_argument(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def non_negative_seconds(text: str) -> float:
    """argparse type for durations where 0 is meaningful (``--grace 0``, ``--poll 0.5``)."""
    value = float_argument(text, "a number of seconds")
    if not (value >= 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {text!r}")
    return value


def usage_error(stderr, message: str) -> int:
    """Print ``ld-portrait: error: <message>`` and return :data:`EXIT_USAGE`."""
    stderr.write(f"ld-portrait: error: {message}\n")
    return EXIT_USAGE


def run_error(stderr, message) -> int:
    """Print ``ld-portrait: error: <message>`` and return :data:`EXIT_FAILED`: the command
    could not do its work (not a bad argument)."""
    stderr.write(f"ld-portrait: error: {message}\n")
    return EXIT_FAILED


def write_error(stderr, path, error: OSError) -> int:
    """:func:`run_error` for an output file that could not be written: names the file and the
    system's reason."""
    return run_error(stderr, f"cannot write {path}: {error.strerror or error}")


#: Options that say how a run is carried out, not what it makes: left out of the command line
#: each sample's provenance records, so that every shard of a run (and a rerun with other
#: --workers) shares one settings document.
EXECUTION_OPTIONS = frozenset({"workers", "shard"})


def _workers_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < 1:
        raise argparse.ArgumentTypeError(
            f"expected the number of worker processes, 1 or more (default: the cores available); "
            f"got {text!r}")
    return value


_workers_count.__name__ = "worker count"  # argparse names the type in its messages


def add_workers_option(parser, what: str = "files") -> None:
    """``--workers N`` of a folder job (default None: :func:`workers_from_args` gives the
    cores available)."""
    parser.add_argument("--workers", type=_workers_count, metavar="N",
                        help=f"worker processes that work on {what} at once, one thread each "
                             "(default: the cores available to this process; results and "
                             "summary are the same for any N)")


def workers_from_args(args) -> int:
    """``--workers``, or the cores available to this process when not given."""
    from ..pipeline.workers import available_cores

    workers = getattr(args, "workers", None)
    return workers if workers is not None else available_cores()


def _shard_argument(text: str) -> tuple[int, int]:
    from ..pipeline.workers import parse_shard

    try:
        return parse_shard(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


_shard_argument.__name__ = "shard"


def add_shard_option(parser) -> None:
    """``--shard K/N``: this process does shard K of N of the input folder."""
    parser.add_argument("--shard", type=_shard_argument, metavar="K/N",
                        help="do only shard K of N of INPUT_DIR (1 <= K <= N; a file's shard is "
                             "a hash of its name): N runs, e.g. a SLURM array or a Kubernetes "
                             "indexed Job, into one OUTPUT_DIR make the dataset of one run")


def count_input_pngs(folder, stderr, shard=None) -> int | None:
    """How many PNGs a folder job will go through (its progress bar's total; those of
    ``shard`` only when given, said on ``stderr``), or None after printing why the existing
    ``folder`` cannot be listed (permissions): the caller exits 1."""
    from ..dataset.imagefiles import ImageFileError, list_pngs
    from ..pipeline.workers import shard_files

    try:
        files = list_pngs(Path(folder).expanduser())
        if shard is None:
            return len(files)
        mine = len(shard_files(files, shard))
        stderr.write(f"shard {shard[0]}/{shard[1]}: {mine} of the {len(files)} PNG file(s) in "
                     f"{folder}\n")
        return mine
    except ImageFileError as error:
        stderr.write(f"ld-portrait: error: {error}\n")
        return None


class JobProgress:
    """The progress bar of a folder job plus a line per failed file, printed as it happens.

    Parameters
    ----------
    stderr : stream
        Where the bar and the failure lines go.
    label : str
        The bar's label (the sub-command).
    total : int or None
        Number of inputs; None makes the bar at the first event, from the event's total
        (for jobs that count their inputs themselves).
    labels : dict or None
        Outcome -> word, as :class:`ProgressBar` ``labels``.
    failed_word : str
        First word of a failure line (``"failed NAME: why"``).
    """

    def __init__(self, stderr, label: str, *, total: int | None = None, labels=None,
                 failed_word: str = "failed"):
        self.stderr = stderr
        self.label = label
        self.labels = labels
        self.failed_word = failed_word
        self.bar = None if total is None else self._make_bar(total)

    def _make_bar(self, total: int) -> ProgressBar:
        return ProgressBar(total, stream=self.stderr, label=self.label, labels=self.labels)

    def __call__(self, done: int, total: int, outcome: str, name: str, detail: str = "") -> None:
        if self.bar is None:
            self.bar = self._make_bar(total)
        self.bar.update(done, outcome, name)
        if outcome == "failed":  # reported as it happens too, not only in the summary
            if self.bar.enabled:
                self.stderr.write("\n")
            self.stderr.write(f"{self.failed_word} {name}: {detail}\n")

    def on_file_event(self, event) -> None:
        """Callback for the pipeline's ``ProgressEvent`` (``done, total, file, outcome, detail``)."""
        self(event.done, event.total, event.outcome, event.file, event.detail)

    def finish(self, *, final_line: bool = True) -> None:
        """End the bar (if any event made one); see :meth:`ProgressBar.finish`."""
        if self.bar is not None:
            self.bar.finish(final_line=final_line)


@dataclasses.dataclass(frozen=True)
class JobErrors:
    """How :func:`run_job` reports what a job raises.

    ``usage``: exception types that are the user's to fix (exit 2, the message as is);
    ``fatal``: types that end the run (exit 1, ``describe(error)`` after ``ld-portrait:
    error:``). Anything else propagates.
    """

    usage: tuple = (ValueError,)
    fatal: tuple = (OSError,)
    describe: Callable[[BaseException], str] = str


def run_job(work: Callable[[StopFlag], object], progress: JobProgress, stderr,
            errors: JobErrors = JobErrors(), *, final_line: bool = True):
    """Run ``work(should_stop)`` with Ctrl-C handling and end ``progress`` whatever happens.

    Returns
    -------
    (result, None) when ``work`` returned, or (None, exit code) when it raised one of
    ``errors`` (the error is printed on ``stderr``). ``final_line=False`` ends the bar without
    its own count line (for summaries that give the counts and the duration).
    """
    try:
        with StopFlag(stderr) as stop:
            result = work(stop)
    except errors.usage as error:
        progress.finish(final_line=final_line)
        return None, usage_error(stderr, str(error))
    except errors.fatal as error:
        progress.finish(final_line=final_line)
        return None, run_error(stderr, errors.describe(error))
    progress.finish(final_line=final_line)
    return result, None


def print_summary(stdout, result, as_json: bool, *, ensure_ascii: bool = True) -> None:
    """``result.to_json()`` (indented JSON) or ``result.to_text()`` on ``stdout``."""
    text = (json.dumps(result.to_json(), indent=1, ensure_ascii=ensure_ascii) if as_json
            else result.to_text())
    stdout.write(text + "\n")


def run_exit_code(run, stderr, *, failed: bool = False) -> int:
    """Exit code of a finished run: its ``fatal_error`` (printed; 1), ``interrupted`` (130),
    ``failed`` (1: the caller counts failures as an error), else 0."""
    fatal_error = getattr(run, "fatal_error", None)
    if fatal_error:
        return run_error(stderr, fatal_error)
    if run.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if failed else EXIT_OK

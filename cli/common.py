"""Plumbing every ``ld-portrait`` sub-command shares: exit codes, argument types, the progress
bar with ETA, and Ctrl-C handling."""
from __future__ import annotations

import argparse
import signal
import sys
import time

__all__ = ["EXIT_OK", "EXIT_FAILED", "EXIT_USAGE", "EXIT_INTERRUPTED", "ProgressBar", "StopFlag",
           "format_seconds", "parse_assignments", "whole_number", "non_negative_int",
           "positive_int", "usage_error"]

#: 0 done; 1 failures or an unrecoverable error; 2 bad arguments; 130 interrupted (Ctrl-C).
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class ProgressBar:
    """A one-line progress bar on a stream: count, rate and ETA.

    Redrawn in place at most ~10 times a second when the stream is a terminal; when it is not
    (a log file, CI) nothing is printed until :meth:`finish` writes one final line.
    """

    def __init__(self, total: int, *, stream=None, label: str = "refine", enabled=None,
                 width: int = 24):
        self.total = max(int(total), 0)
        self.stream = stream if stream is not None else sys.stderr
        self.label = label
        self.width = width
        if enabled is None:
            enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = enabled
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
        fraction = self.done / self.total if self.total else 1.0
        filled = int(round(fraction * self.width))
        bar = "#" * filled + "-" * (self.width - filled)
        rate = self._rate()
        remaining = self.total - self.done
        eta = format_seconds(remaining / rate) if rate > 0 and remaining else "--:--"
        if not remaining:
            eta = "0:00"
        name = name if len(name) <= 28 else name[:25] + "..."
        line = (f"{self.label} [{bar}] {self.done}/{self.total} {rate:5.2f}/s ETA {eta}  "
                f"{name}")
        self.stream.write("\r" + line.ljust(96)[:110])
        self.stream.flush()
        self._drawn = True

    def finish(self) -> None:
        """End the bar and print one final line (also when the stream is not a terminal)."""
        if self._drawn:
            self.stream.write("\n")
        elapsed = time.monotonic() - self.started
        parts = ", ".join(f"{count} {outcome}" for outcome, count in sorted(self.counts.items()))
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


def usage_error(stderr, message: str) -> int:
    """Print ``ld-portrait: error: <message>`` and return :data:`EXIT_USAGE`."""
    stderr.write(f"ld-portrait: error: {message}\n")
    return EXIT_USAGE

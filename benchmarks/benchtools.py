"""What several benchmark scripts share: the median timing loop and the shared data folder.

The scripts run as ``python benchmarks/bench_<topic>.py`` (from the repository root or any other
folder), which puts this folder on ``sys.path``: ``benchtools`` and the benchmark data and
protocols of ``fixtures/`` import from there. Importing this module also puts ``tests/`` there,
so that the data folder is found by the same code as the tests' (``helpers.shared_data``).
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parents[1] / "tests"
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

from helpers.shared_data import shared_data_dir  # noqa: E402

__all__ = ["median_seconds", "shared_data_dir"]


def median_seconds(function, runs: int) -> tuple[float, object]:
    """Call ``function()`` ``runs`` times; (median wall-clock seconds, the last result)."""
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result

"""Benchmark: peak memory of ``ld-portrait demo`` does not grow with ``--count``.

Runs ``ld-portrait demo OUT --count N --size S`` for each count in a fresh Python process
(into a temporary folder) and prints each process's peak resident memory (``VmHWM``), its
wall time and the ratio of each peak to the first count's. The first line is the baseline
of a bare ``python -c "import torch, cv2, numpy"`` in the same run (what any process of the
pack pays before doing anything).

    python benchmarks/bench_memory.py [--counts 40,200] [--size 1024]

The target: ``--count 40 --size 1024`` under 1 GiB, ``--count 200`` within 10 % of it.
Measured (2-core machine): bare imports 243 MB; count 40 377 MB (77 s); count 200 361 MB
(346 s), ratio 0.96 (earlier, with ``ru_maxrss``: 380 and 381 MB). An earlier version of the
demo peaked at 2235 MB at count 40 (9.5 GB at count 200).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Prints the peak resident memory (KiB) of this process after running the demo command.
CHILD = """
import io, sys
from comfyui_ld_portrait.cli.app import main
err = io.StringIO()
code = main(["demo", sys.argv[1], "--count", sys.argv[2], "--size", sys.argv[3]],
            stdout=io.StringIO(), stderr=err)
assert code == 0, err.getvalue()
print(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])  # KiB: this image's own peak
"""
BASELINE = """
import torch, cv2, numpy
print(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])  # KiB: this image's own peak
"""


def _peak_kib(code: str, *args) -> tuple[int, float]:
    started = time.perf_counter()
    output = subprocess.run([sys.executable, "-c", code, *map(str, args)], check=True,
                            capture_output=True, text=True).stdout
    return int(output.split()[-1]), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="40,200")
    parser.add_argument("--size", type=int, default=1024)
    args = parser.parse_args()
    counts = [int(n) for n in args.counts.split(",")]
    baseline, _ = _peak_kib(BASELINE)
    print(f"{'import torch, cv2, numpy':<28}{baseline / 1024:>9.0f} MB")
    first = None
    with tempfile.TemporaryDirectory() as scratch:
        for count in counts:
            peak, seconds = _peak_kib(CHILD, Path(scratch) / f"demo{count}", count, args.size)
            first = first or peak
            print(f"{f'demo --count {count} --size {args.size}':<28}{peak / 1024:>9.0f} MB"
                  f"{seconds:>9.0f} s   ratio {peak / first:.3f}", flush=True)


if __name__ == "__main__":
    main()

"""Benchmark: images per second of ``ld-portrait refine --workers 1`` against ``--workers N``.

48 synthetic 1024x1024 portraits (``pipeline.synthetic.make_portrait``, with the Layer
Diffusion-like artifacts as alpha; made once and kept in ``--inputs``) are refined into a fresh
dataset root by the real command (``ld-portrait`` as a subprocess: start-up, the pool's start
and every write included), ``--workers 1`` and ``--workers N`` in turn, ``--runs`` times each.
Prints each run's wall-clock images/s, the medians and their ratio (target: >= 1.6 with 2
workers on a 2-core machine), the load average before and after (other processes on a shared
machine slow the parallel runs most), and checks that both give the same alpha files.

    python benchmarks/bench_refine_workers.py [--workers 2] [--runs 2] [--count 48]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from comfyui_ld_portrait.dataset.imagefiles import write_png_atomic
from comfyui_ld_portrait.pipeline.synthetic import make_portrait
from comfyui_ld_portrait.pipeline.workers import available_cores


def make_inputs(folder: Path, count: int, size: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for seed in range(count):
        path = folder / f"portrait_{seed:03d}.png"
        if not path.is_file():  # same seed, same image: kept between runs
            portrait = make_portrait(seed, size)
            write_png_atomic(path, np.dstack([portrait.rgb, portrait.alpha_artifacts]))


def timed_run(script: Path, inputs: Path, root: Path, workers: int) -> float:
    shutil.rmtree(root, ignore_errors=True)
    started = time.perf_counter()
    subprocess.run([str(script), "refine", str(inputs), str(root), "--workers", str(workers)],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--count", type=int, default=48)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--inputs", type=Path,
                        default=Path(tempfile.gettempdir()) / "ld-portrait-bench-workers-in")
    args = parser.parse_args()
    script = Path(sys.executable).with_name("ld-portrait")
    make_inputs(args.inputs, args.count, args.size)
    print(f"{args.count} portraits of {args.size}x{args.size} in {args.inputs}; "
          f"{available_cores()} core(s) available; load average before "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    rates = {1: [], args.workers: []}
    with tempfile.TemporaryDirectory() as scratch:
        for run in range(args.runs):
            for workers in rates:  # interleaved, so load changes hit both alike
                seconds = timed_run(script, args.inputs, Path(scratch) / f"w{workers}", workers)
                rates[workers].append(args.count / seconds)
                print(f"run {run + 1} --workers {workers}: {seconds:6.2f} s "
                      f"{rates[workers][-1]:5.2f} images/s")
        same = all((Path(scratch) / "w1" / "alpha" / name.name).read_bytes() == name.read_bytes()
                   for name in sorted((Path(scratch) / f"w{args.workers}" / "alpha").iterdir()))
    one, many = statistics.median(rates[1]), statistics.median(rates[args.workers])
    print(f"median --workers 1: {one:.2f} images/s; --workers {args.workers}: {many:.2f} "
          f"images/s; ratio {many / one:.2f} (target >= 1.6 for 2 workers on 2 cores: "
          f"{'met' if many / one >= 1.6 else 'NOT met'})")
    print(f"same alpha files: {same}; load average after "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()

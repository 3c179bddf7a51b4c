"""Benchmark: speed of refine_alpha against the five-step yardstick filter, and its scaling.

Both run single-threaded (``cv2.setNumThreads(1)``) in the same process, interleaved run by
run and timed in process CPU time (``time.process_time``), so load from other processes on a
shared machine hits both alike and is not counted. Prints the medians at 1024x1024 (the real Layer Diffusion
portrait) and their ratio (target: ours <= 0.75 x the yardstick), then a scaling table from
512 to 4096 pixels square (the portrait resized) with the time per megapixel: linear scaling
keeps that column flat. The table is printed twice: with glibc's default allocator, which hands
large freed arrays back to the system so each image of 2048 pixels or more faults its memory in
again (system time that grows with the image and hits both methods), and then as the
``ld-portrait`` command runs (``cli.common.keep_freed_memory``: freed memory is kept for the next
image). The second table shows the algorithm's own scaling.

    python benchmarks/bench_refine.py [--runs 21] [--image PATH] [--max-side 4096]
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import cv2
from benchtools import shared_data_dir

from comfyui_ld_portrait.cli.common import keep_freed_memory
from comfyui_ld_portrait.dataset.imagefiles import read_rgba
from comfyui_ld_portrait.refine.connectivity import refine_alpha

from fixtures.synthetic_families import yardstick_filter


def interleaved_medians(functions: dict, runs: int) -> dict:
    """Median milliseconds of each function, running them in turn ``runs`` times."""
    times = {name: [] for name in functions}
    for _ in range(runs):
        for name, fn in functions.items():
            start = time.process_time()
            fn()
            times[name].append(time.process_time() - start)
    return {name: 1000 * statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--image", type=Path, default=shared_data_dir() / "i2i_0_transparent.png")
    parser.add_argument("--max-side", type=int, default=4096)
    args = parser.parse_args()
    cv2.setNumThreads(1)

    _, alpha = read_rgba(args.image)
    alpha = cv2.resize(alpha, (1024, 1024), interpolation=cv2.INTER_AREA) if alpha.shape != (1024, 1024) else alpha
    print(f"image: {args.image.name} at 1024x1024, {args.runs} interleaved runs, one thread")
    medians = interleaved_medians({"yardstick": lambda: yardstick_filter(alpha),
                                   "refine_alpha": lambda: refine_alpha(alpha)}, args.runs)
    ratio = medians["refine_alpha"] / medians["yardstick"]
    print(f"yardstick     median {medians['yardstick']:8.1f} ms")
    print(f"refine_alpha  median {medians['refine_alpha']:8.1f} ms")
    print(f"ratio refine_alpha / yardstick: {ratio:.2f}  (target <= 0.75: {'met' if ratio <= 0.75 else 'NOT met'})")

    scaling_table(alpha, args.runs, args.max_side, "glibc's default allocator")
    if keep_freed_memory():
        scaling_table(alpha, args.runs, args.max_side, "freed memory kept, as `ld-portrait` runs")


def scaling_table(alpha, runs: int, max_side: int, title: str) -> None:
    """Median times from 512 pixels square to ``max_side``, doubling the side."""
    print(f"\nscaling ({title}):")
    print(f"{'side':>6}{'Mpx':>7}{'ours ms':>10}{'ms/Mpx':>9}{'yard ms':>10}{'ms/Mpx':>9}{'ratio':>7}")
    side = 512
    while side <= max_side:
        scaled = cv2.resize(alpha, (side, side), interpolation=cv2.INTER_LINEAR)
        # Fewer runs for big images, never fewer than 5; one untimed run of each first.
        refine_alpha(scaled), yardstick_filter(scaled)
        count = max(5, runs * 1024 * 1024 // (side * side))
        m = interleaved_medians({"ours": lambda: refine_alpha(scaled), "yard": lambda: yardstick_filter(scaled)},
                                min(count, runs))
        mpx = side * side / 1e6
        print(f"{side:>6}{mpx:>7.2f}{m['ours']:>10.1f}{m['ours'] / mpx:>9.1f}{m['yard']:>10.1f}"
              f"{m['yard'] / mpx:>9.1f}{m['ours'] / m['yard']:>7.2f}")
        side *= 2


if __name__ == "__main__":
    main()

"""Benchmark: ``base.padding.pad_foreground`` against a direct version of upstream's loop.

The baseline below is a plain, line-by-line reading of the public LayerDiffuse ``pad_rgb``
algorithm (area-averaged pyramid of premultiplied colour and alpha by factor 1.2, then
coarse-to-fine ``fg = c + up(fg) * (1 - a)``), written with ordinary numpy expressions as
upstream does. It is the yardstick; the library version must be at least as fast and give
the same numbers.

Run from the repository root::

    .venv/bin/python benchmarks/bench_padding.py [--runs 15]

The test image is ``i2i_0_transparent.png`` (1024x1024 RGBA) from the shared data folder:
``$LDP_SHARED_DATA`` if set, else ``../shared/data/layerdiffuse`` beside the checkout.
Two scenarios are timed: 8-bit RGBA input (upstream's own signature, conversion to float
included on both sides) and float32 input. Timings are medians over interleaved runs.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import cv2
import numpy as np
from benchtools import shared_data_dir

from comfyui_ld_portrait.base.padding import pad_foreground

# ---------------------------------------------------------------------------------------
# Baseline: the straightforward algorithm, one expression per step, new arrays every step.
# ---------------------------------------------------------------------------------------

def baseline_pad(colour: np.ndarray, alpha: np.ndarray, factor: float = 1.2) -> np.ndarray:
    """colour float32 [H, W, 3], alpha float32 [H, W, 1] -> padded float32 [H, W, 3]."""
    levels = []
    premultiplied, level_alpha = colour * alpha, alpha
    while True:
        levels.append((premultiplied, level_alpha))
        height, width = level_alpha.shape[:2]
        if min(height, width) == 1:
            break
        size = (int(width / factor), int(height / factor))
        premultiplied = cv2.resize(premultiplied, size, interpolation=cv2.INTER_AREA)
        level_alpha = cv2.resize(level_alpha, size, interpolation=cv2.INTER_AREA)[:, :, None]

    top_colour, top_alpha = levels[-1]
    fg = np.sum(top_colour, axis=(0, 1), keepdims=True) / np.clip(
        np.sum(top_alpha, axis=(0, 1), keepdims=True), 1e-8, 1e32
    )
    for level_colour, level_alpha in reversed(levels):
        height, width = level_colour.shape[:2]
        fg = cv2.resize(fg, (width, height), interpolation=cv2.INTER_LINEAR)
        fg = level_colour + fg * (1.0 - level_alpha)
    return fg


def baseline_pad_rgba8(rgba: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 4] -> padded float32 [H, W, 3] (upstream's entry point)."""
    unit = rgba.astype(np.float32) / 255.0
    return baseline_pad(unit[..., :3], unit[..., 3:])


# ---------------------------------------------------------------------------------------

def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1e3


def time_interleaved(candidates: dict, runs: int) -> dict:
    """Run each candidate once per round (order alternating) so load drifts hit all alike."""
    samples = {name: [] for name in candidates}
    names = list(candidates)
    for name in names:  # warm-up: first-touch allocations, OpenCV thread pool start
        candidates[name]()
    for round_index in range(runs):
        order = names if round_index % 2 == 0 else names[::-1]
        for name in order:
            start = time.perf_counter()
            candidates[name]()
            samples[name].append(time.perf_counter() - start)
    return {name: median_ms(values) for name, values in samples.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="timed rounds per candidate")
    args = parser.parse_args(argv)

    path = shared_data_dir() / "i2i_0_transparent.png"
    rgba = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if rgba is None or rgba.ndim != 3 or rgba.shape[2] != 4:
        print(f"cannot read an RGBA image at {path}; set LDP_SHARED_DATA", file=sys.stderr)
        return 2
    height, width = rgba.shape[:2]
    # Padding treats channels alike, so the file's BGR order is kept on both sides.
    rgb8, alpha8 = np.ascontiguousarray(rgba[..., :3]), np.ascontiguousarray(rgba[..., 3])
    rgb_f = rgb8.astype(np.float32) / np.float32(255.0)
    alpha_f = alpha8.astype(np.float32) / np.float32(255.0)
    alpha_f1 = alpha_f[..., None]

    print(f"image {path.name}: {width}x{height}, OpenCV {cv2.__version__}, "
          f"{cv2.getNumThreads()} OpenCV threads, {args.runs} interleaved runs, medians")

    worst = 0.0
    for label, baseline, ours in (
        ("8-bit RGBA input", lambda: baseline_pad_rgba8(rgba), lambda: pad_foreground(rgb8, alpha8)),
        ("float32 input", lambda: baseline_pad(rgb_f, alpha_f1), lambda: pad_foreground(rgb_f, alpha_f)),
    ):
        difference = float(np.abs(baseline() - ours()).max())
        worst = max(worst, difference)
        times = time_interleaved({"baseline": baseline, "pad_foreground": ours}, args.runs)
        ratio = times["baseline"] / times["pad_foreground"]
        print(f"{label:>17}: baseline {times['baseline']:7.2f} ms | pad_foreground "
              f"{times['pad_foreground']:7.2f} ms | speed-up x{ratio:.2f} | max |diff| {difference:.3g}")

    if worst > 1e-6:
        print(f"FAIL: results differ by up to {worst:.3g}", file=sys.stderr)
        return 1
    print("results agree (max |diff| <= 1e-6)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

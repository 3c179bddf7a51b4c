"""Benchmark: how much ``refine.connectivity.refine_alpha`` repairs synthetic Layer Diffusion artifacts.

Synthetic portraits (``refine.synthetic.make_portrait``) have a ground-truth alpha and a copy
damaged the way Layer Diffusion damages it (interior speckle and blotches, pinholes,
background debris, frame fade). The baseline, measured in the same run, is the damaged alpha
itself ("before"); "after" is the refined alpha. Both are compared with the truth:

* SAD (sum of absolute differences / 1000) and MSE (x 1e3) per image, averaged, on the whole
  image and on the true transition band (hair strands and soft edges, dilated by 2 px), with
  the after/before ratio;
* per artifact family, the fraction of its pixels the refinement brought within 2/255 of the
  truth;
* the fraction of band pixels the refinement made worse (a refinement must not eat hair).

Run from the repository root::

    .venv/bin/python benchmarks/bench_refine_quality.py [--count 20] [--size 512] [--seed 0]
    .venv/bin/python benchmarks/bench_refine_quality.py --identity   # the table's baseline only
"""
from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np

from comfyui_ld_portrait.pipeline.synthetic import ARTIFACT_FAMILIES, evaluate_refinement, make_dataset


def identity(alpha: np.ndarray) -> np.ndarray:
    """The do-nothing refinement: returns its input (the "before" column made explicit)."""
    return alpha


def load_refine_fn(use_identity: bool):
    """Return ``(name, fn)``: the connectivity refinement, or :func:`identity` when asked."""
    if use_identity:
        return "identity", identity
    from comfyui_ld_portrait.refine.connectivity import refine_alpha

    return "refine_alpha", refine_alpha


def evaluate(portraits, refine_fn) -> dict:
    """:func:`refine.synthetic.evaluate_refinement` plus timing.

    Returns the same dict with ``seconds_per_image`` (mean wall time of ``refine_fn``) added.
    """
    elapsed = []

    def timed(alpha):
        start = time.perf_counter()
        result = refine_fn(alpha)
        elapsed.append(time.perf_counter() - start)
        return result

    report = evaluate_refinement(portraits, timed)
    report["seconds_per_image"] = float(np.mean(elapsed)) if elapsed else 0.0
    return report


def _ratio(after: float, before: float) -> str:
    if before == 0:
        return "   -" if after == 0 else "  inf"
    return f"{after / before:6.3f}"


def format_table(report: dict, name: str) -> str:
    """The report as a plain-text table."""
    lines = [
        f"{report['count']} portraits, refinement: {name}, "
        f"{report['seconds_per_image'] * 1e3:.1f} ms per image",
        "",
        f"{'region':<8} {'metric':<10} {'before':>10} {'after':>10} {'after/before':>13}",
    ]
    for region in ("whole", "band"):
        values = report[region]
        lines.append(f"{region:<8} {'SAD (k)':<10} {values['sad_before']:10.3f} {values['sad_after']:10.3f} "
                     f"{_ratio(values['sad_after'], values['sad_before']):>13}")
        lines.append(f"{'':<8} {'MSE x1e3':<10} {values['mse_before'] * 1e3:10.4f} {values['mse_after'] * 1e3:10.4f} "
                     f"{_ratio(values['mse_after'], values['mse_before']):>13}")
    lines += ["", f"{'family':<12} {'pixels':>10} {'repaired':>9}"]
    for family in ARTIFACT_FAMILIES:
        fraction = report["repaired"][family]
        shown = "     -" if math.isnan(fraction) else f"{fraction * 100:8.1f}%"
        lines.append(f"{family:<12} {report['family_pixels'][family]:>10} {shown:>9}")
    lines += ["", f"band pixels made worse: {report['band_worse_fraction'] * 100:.3f}% "
                  f"of {report['band_pixels']}"]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20, help="number of synthetic portraits (default 20)")
    parser.add_argument("--size", type=int, default=512, help="side of each square portrait in px (default 512)")
    parser.add_argument("--seed", type=int, default=0, help="first seed; portrait i uses seed + i (default 0)")
    parser.add_argument("--identity", action="store_true",
                        help="measure the do-nothing refinement instead of refine_alpha (baseline check)")
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be at least 1")
    try:
        name, refine_fn = load_refine_fn(args.identity)
    except ImportError as error:
        print(f"cannot import refine_alpha ({error}); run with --identity to check the harness.",
              file=sys.stderr)
        return 2
    start = time.perf_counter()
    portraits = make_dataset(args.count, args.size, seed=args.seed)
    made = time.perf_counter() - start
    print(f"made {args.count} portraits of {args.size}x{args.size} in {made:.1f} s")
    report = evaluate(portraits, refine_fn)
    print(format_table(report, name))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: refine_alpha against the issue's yardstick filter on independent synthetic families.

Two portrait families built independently of each other and of ``pipeline/synthetic.py``
(``pipeline/synthetic_families``: ``fourier_fur`` and ``metaball_strands``, the latter also
damaging the soft edge and the hair). Each has a calibration half (the only data the defaults
were tuned on) and an evaluation half (reported here by default, never tuned on). For raw
(the damaged alpha), the yardstick (the issue's five-step connectivity filter) and ours
(``refine_alpha`` with its defaults) it prints, per family:

* SAD (sum |pred - truth| / 1000) and MSE on the whole image and on the true transition band
  (truth strictly between 0 and 1), summed (SAD) or averaged (MSE) over the portraits;
* gradient and connectivity error (DIM definitions, ``evaluation/metrics.py``, / 1000) on the
  whole image and the band, when that package is installed;
* the whole-image SAD reduction vs raw, the band SAD ratio vs raw, the worst alpha left in an
  enclosed true-background hole, and on how many portraits ours beats the yardstick.

    python benchmarks/bench_refine_quality.py [--half evaluation] [--count 24] [--size 384]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from comfyui_ld_portrait.pipeline.synthetic_families import (
    FAMILIES, make_family, portrait_scores, true_band, yardstick_filter)
from comfyui_ld_portrait.refine.connectivity import refine_alpha

METHODS = {
    "raw": lambda alpha: alpha,
    "yardstick": yardstick_filter,
    "ours": lambda alpha: refine_alpha(alpha).alpha,
}


def _dim_metrics():
    """(gradient_error, connectivity_error) from the evaluation package, or None."""
    try:
        from comfyui_ld_portrait.evaluation.metrics import connectivity_error, gradient_error
    except ImportError:
        return None
    return gradient_error, connectivity_error


def score_family(portraits, dim) -> dict:
    """``{method: {"rows": [per-portrait scores], "seconds": mean time}}``."""
    out = {}
    for name, fn in METHODS.items():
        rows, elapsed = [], []
        for portrait in portraits:
            start = time.perf_counter()
            pred = fn(portrait.alpha_raw)
            elapsed.append(time.perf_counter() - start)
            row = portrait_scores(pred, portrait)
            if dim is not None:
                gradient_error, connectivity_error = dim
                band = true_band(portrait.alpha_true)
                trimap = np.where(band, 128, np.where(portrait.alpha_true > 0.5, 255, 0)).astype(np.uint8)
                row["grad"] = gradient_error(pred, portrait.alpha_true)
                row["conn"] = connectivity_error(pred, portrait.alpha_true)
                row["band_grad"] = gradient_error(pred, portrait.alpha_true, trimap)
                row["band_conn"] = connectivity_error(pred, portrait.alpha_true, trimap)
            rows.append(row)
        out[name] = {"rows": rows, "seconds": float(np.mean(elapsed))}
    return out


def print_family(name: str, scores: dict, dim: bool) -> dict:
    """Print one family's table; return the issue's checks."""
    columns = ["sad", "mse", "band_sad", "band_mse"] + (["grad", "conn", "band_grad", "band_conn"] if dim else [])
    print(f"\n{name}: {len(scores['raw']['rows'])} portraits")
    print(f"{'method':<10}" + "".join(f"{c:>11}" for c in columns) + f"{'hole max':>10}{'ms/img':>9}")
    totals = {}
    for method, result in scores.items():
        rows = result["rows"]
        total = {c: (sum if c.endswith("sad") or c in ("grad", "conn", "band_grad", "band_conn") else np.mean)(
            [r[c] for r in rows]) for c in columns}
        total["hole_max"] = max(r["hole_max"] for r in rows)
        totals[method] = total
        cells = "".join(f"{total[c]:>11.4g}" for c in columns)
        print(f"{method:<10}{cells}{total['hole_max']:>10.3f}{1000 * result['seconds']:>9.1f}")
    raw, yard, ours = totals["raw"], totals["yardstick"], totals["ours"]
    wins = sum(o["sad"] < y["sad"] for o, y in zip(scores["ours"]["rows"], scores["yardstick"]["rows"]))
    checks = {
        "whole SAD reduction (ours)": 1 - ours["sad"] / raw["sad"],
        "whole SAD reduction (yardstick)": 1 - yard["sad"] / raw["sad"],
        "band SAD ratio vs raw (ours)": ours["band_sad"] / raw["band_sad"],
        "band SAD ratio vs raw (yardstick)": yard["band_sad"] / raw["band_sad"],
        "worst enclosed-hole alpha (ours)": ours["hole_max"],
        "portraits where ours beats the yardstick": f"{wins}/{len(scores['ours']['rows'])}",
    }
    for label, value in checks.items():
        print(f"  {label}: {value if isinstance(value, str) else f'{value:.4f}'}")
    return checks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--half", choices=("evaluation", "calibration"), default="evaluation")
    parser.add_argument("--count", type=int, default=24, help="portraits per family")
    parser.add_argument("--size", type=int, default=384, help="side length in pixels")
    parser.add_argument("--no-dim", action="store_true", help="skip gradient / connectivity error")
    args = parser.parse_args()
    dim = None if args.no_dim else _dim_metrics()
    print(f"half: {args.half}, {args.count} portraits per family at {args.size}x{args.size}; "
          f"DIM gradient/connectivity: {'yes' if dim else 'no'}")
    for family in FAMILIES:
        portraits = make_family(family, args.half, args.count, args.size)
        print_family(family, score_family(portraits, dim), dim is not None)


if __name__ == "__main__":
    main()

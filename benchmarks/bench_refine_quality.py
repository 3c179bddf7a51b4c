"""Benchmark: refine_alpha against raw and the five-step yardstick filter, band first.

Data (``benchmarks/fixtures/refine_benchmark.py``): four independent synthetic families, the
demo's own portraits and, when ``$LDP_REAL_MATTES`` names the folder (docs/evaluation.md), real
ground-truth person mattes with Layer-Diffusion-like corruption. For each family's evaluation
half (never tuned on) it prints, for raw (the damaged alpha), the yardstick and ours:

* on the DIM band (true 0 < alpha < 1 dilated 2 px) first, then on the whole image: SAD
  (/1000), MSE, and the DIM gradient and connectivity errors (/1000);
* the band SAD ratio ours / raw, the whole-image SAD against the yardstick and on how many
  portraits ours beats it; for the real set one row per image;
* with ``--lofo``, the leave-one-family-out table: for each family, the tuned numbers chosen
  on the calibration halves of all the other families, and that family's held-out result;
* with ``--ablation``, each rule switched off in turn on the evaluation halves (band ratio and
  whole-image SAD per family): a rule that helps only the data it was designed on shows here.

    python benchmarks/bench_refine_quality.py [--count 8] [--size 384] [--lofo] [--ablation] [--no-dim]
"""
from __future__ import annotations

import argparse
import os

import numpy as np

from comfyui_ld_portrait.refine.connectivity import refine_alpha

from fixtures.real_mattes import ENV_VAR
from fixtures.refine_benchmark import (
    TUNED_GRID, ablation_variants, compare, family_sets, leave_one_family_out, rule_switched_off, score, totals)
from fixtures.synthetic_families import dim_band, yardstick_filter

METHODS = {
    "raw": lambda alpha: alpha,
    "yardstick": yardstick_filter,
    "ours": lambda alpha: refine_alpha(alpha).alpha,
}


def _dim_scores(pred, portrait) -> dict:
    """DIM gradient and connectivity error (/1000) on the band and the whole image."""
    from comfyui_ld_portrait.evaluation.metrics import connectivity_error, gradient_error

    truth = portrait.alpha_true
    trimap = np.where(dim_band(truth), 128, np.where(truth >= 0.5, 255, 0)).astype(np.uint8)
    return {"band_grad": gradient_error(pred, truth, trimap), "band_conn": connectivity_error(pred, truth, trimap),
            "grad": gradient_error(pred, truth), "conn": connectivity_error(pred, truth)}


def score_family(portraits, dim: bool) -> dict:
    """``{method: [per-portrait rows]}``."""
    out = {}
    for name, fn in METHODS.items():
        rows = []
        for portrait in portraits:
            pred = fn(portrait.alpha_raw)
            row = score(pred, portrait)
            if dim:
                row.update(_dim_scores(pred, portrait))
            rows.append(row)
        out[name] = rows
    return out


def print_family(name: str, scores: dict) -> None:
    columns = [c for c in ("band_sad", "band_mse", "band_grad", "band_conn", "sad", "mse", "grad", "conn")
               if c in scores["raw"][0]]
    print(f"\n{name}: {len(scores['raw'])} portraits (band = DIM unknown region, first)")
    print(f"{'method':<10}" + "".join(f"{c:>11}" for c in columns))
    for method, rows in scores.items():
        total = totals(rows)
        print(f"{method:<10}" + "".join(f"{total[c]:>11.4g}" for c in columns))
    c = compare(scores["raw"], scores["yardstick"], scores["ours"])
    print(f"  band SAD ours/raw {c.band_ratio:.3f} (worst portrait {c.worst_band_ratio:.2f}); "
          f"whole SAD ours {c.whole_ours:.3f} vs yardstick {c.whole_yardstick:.3f}; "
          f"ours beats the yardstick on {c.wins}/{c.count}")


def print_real_images(portraits, scores: dict) -> None:
    print("\nreal ground truth, per image (band SAD raw -> ours, ratio; whole SAD raw / yardstick / ours)")
    for portrait, raw, yard, ours in zip(portraits, scores["raw"], scores["yardstick"], scores["ours"]):
        ratio = ours["band_sad"] / raw["band_sad"] if raw["band_sad"] > 0 else float("nan")
        print(f"  {portrait.subject:<26} {portrait.family:<18} band {raw['band_sad']:7.3f} -> {ours['band_sad']:7.3f} "
              f"({ratio:5.2f})  whole {raw['sad']:7.3f} / {yard['sad']:7.3f} / {ours['sad']:7.3f}")


def print_lofo(count: int, size: int) -> None:
    calibration = family_sets("calibration", count, size)
    evaluation = family_sets("evaluation", count, size)
    print(f"\nleave one family out: grid {TUNED_GRID}")
    result = leave_one_family_out(calibration, evaluation)
    print(f"{'held out':<18}{'chosen on the others':<58}{'band':>7}{'worst':>7}{'ours':>9}{'yard':>9}{'wins':>7}")
    for family, row in result["held_out"].items():
        c = row["comparison"]
        setting = ", ".join(f"{k}={v}" for k, v in row["setting"].items())
        print(f"{family:<18}{setting:<58}{c.band_ratio:>7.3f}{c.worst_band_ratio:>7.2f}{c.whole_ours:>9.3f}"
              f"{c.whole_yardstick:>9.3f}{c.wins:>4}/{c.count}")
    print(f"chosen on every family: {result['all']['setting']}")


def print_ablation(count: int, size: int) -> None:
    """Each rule off in turn (:func:`fixtures.refine_benchmark.ablation_variants`)."""
    from comfyui_ld_portrait.refine import connectivity

    sets = family_sets("evaluation", count, size)
    baselines = {name: ([score(p.alpha_raw, p) for p in portraits],
                        [score(yardstick_filter(p.alpha_raw), p) for p in portraits])
                 for name, portraits in sets.items()}
    print("\nablation (evaluation halves): band SAD ours/raw, whole SAD per family")
    print(f"{'variant':<24}" + "".join(f"{name[:16]:>20}" for name in sets))
    for label, overrides in ablation_variants().items():
        with rule_switched_off(label):
            cells = []
            for name, portraits in sets.items():
                ours = [score(connectivity.refine_alpha(p.alpha_raw, **overrides).alpha, p) for p in portraits]
                c = compare(*baselines[name], ours)
                cells.append(f"{c.band_ratio:>10.3f} {c.whole_ours:>8.2f}")
        print(f"{label:<24}" + "".join(f"{cell:>20}" for cell in cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=8, help="portraits per synthetic family and half")
    parser.add_argument("--size", type=int, default=384, help="side length in pixels")
    parser.add_argument("--no-dim", action="store_true", help="skip the gradient / connectivity errors")
    parser.add_argument("--lofo", action="store_true", help="also print the leave-one-family-out table")
    parser.add_argument("--ablation", action="store_true", help="also print each rule switched off in turn")
    args = parser.parse_args()
    real = os.environ.get(ENV_VAR)
    print(f"evaluation halves, {args.count} portraits per synthetic family at {args.size} px; real ground "
          f"truth: {real or f'absent (set {ENV_VAR})'}")
    for family, portraits in family_sets("evaluation", args.count, args.size).items():
        scores = score_family(portraits, not args.no_dim)
        print_family(family, scores)
        if family == "real":
            print_real_images(portraits, scores)
    if args.lofo:
        print_lofo(args.count, args.size)
    if args.ablation:
        print_ablation(args.count, args.size)


if __name__ == "__main__":
    main()

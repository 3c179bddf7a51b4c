"""Benchmark: chroma keyers on ground-truth mattes shot on varied green and blue screens.

Band first (DIM band: truth strictly between 0 and 1, dilated 2 px), then the whole image,
clean background / body, foreground colour error in the band, key-colour excess. Methods,
all measured in the same run on the same shots (benchmarks/fixtures/keying_benchmark.py):

* ``keyer``: the pack's keyer with its defaults (chosen on the calibration half only);
* ``keyer_v1``: the keyer's first version (clip 0.10 / 0.88, no plate refinement, one clip black);
* ``plain``: plain colour-difference key, border-median key colour, plain despill;
* ``cf_trimap``: closed-form matting (pymatting) on a trimap from the plain key.

Real ground-truth mattes come from ``$LDP_REAL_MATTES`` (or --real); without them only the
synthetic portraits are reported. Run from the repository root::

    .venv/bin/python benchmarks/bench_keying.py [--half both] [--real DIR] [--size 256] [--no-cf]
        [--portraits 4] [--screens 1]
"""
from __future__ import annotations

import argparse
import time

from comfyui_ld_portrait.matting.keying import KeyParams

from fixtures import keying_benchmark as kb
from fixtures.real_mattes import find_real_mattes

LEGACY = KeyParams(clip_black=0.1, clip_white=0.88, plate_passes=0, noise_clip=0.0)


def methods(with_cf: bool) -> dict:
    out = {"keyer": kb.keyer_method(), "keyer_v1": kb.keyer_method(LEGACY), "plain": kb.plain_key}
    if with_cf:
        out["cf_trimap"] = kb.trimap_matting_key
    return out


def report(title: str, shots, chosen: dict) -> dict:
    started = time.perf_counter()
    scores = kb.evaluate(shots, chosen)
    print(f"\n## {title}: {len(shots)} shots ({time.perf_counter() - started:.0f} s)")
    print("| method | band SAD | SAD | background SAD | body SAD | fg colour error (band) | "
          "key excess keyed/input | band SAD <= plain |")
    print("|---|---|---|---|---|---|---|---|")
    plain = scores["plain"]
    for name, rows in scores.items():
        t = kb.totals(rows)
        wins = sum(r["band_sad"] <= p["band_sad"] for r, p in zip(rows, plain))
        print(f"| {name} | {t['band_sad']:.2f} | {t['sad']:.2f} | {t['background_sad']:.2f} | "
              f"{t['body_sad']:.2f} | {t['fg_error']:.4f} | {t['excess_ratio']:.3f} | "
              f"{wins}/{len(rows)} |")
    print("\nper shot, band SAD (SAD):")
    for index, shot in enumerate(shots):
        cells = "  ".join(f"{name} {rows[index]['band_sad']:.2f} ({rows[index]['sad']:.2f})"
                          for name, rows in scores.items())
        print(f"  {shot.name:36s} {cells}")
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--half", choices=("calibration", "evaluation", "both"), default="both")
    parser.add_argument("--real", default=None,
                        help="folder of real mattes (default $LDP_REAL_MATTES)")
    parser.add_argument("--size", type=int, default=256, help="synthetic portrait side (px)")
    parser.add_argument("--portraits", type=int, default=4,
                        help="synthetic portraits per half (default 4)")
    parser.add_argument("--max-side", type=int, default=512, help="real mattes' long side (px)")
    parser.add_argument("--no-cf", action="store_true", help="skip closed-form matting (slow)")
    parser.add_argument("--screens", type=int, default=1,
                        help="screens per real subject and kind (default 1; more = new screen "
                             "draws, the first one unchanged)")
    args = parser.parse_args()
    halves = kb.SPLITS if args.half == "both" else (args.half,)
    records = find_real_mattes(args.real, max_side=args.max_side)
    if not records:
        print("no real mattes (set LDP_REAL_MATTES or --real): synthetic shots only")
    chosen = methods(not args.no_cf)
    for half in halves:
        report(f"synthetic portraits, {half}", kb.synthetic_shots(half, args.portraits, args.size), chosen)
        if records:
            report(f"real ground-truth mattes, {half}", kb.real_shots(records, half, screens=args.screens), chosen)


if __name__ == "__main__":
    main()

"""Benchmark: chroma keyer, trimap solver and video matting on synthetic scenes with known alpha.

Scenes come from ``benchmarks/fixtures/matting_scenes.py`` (unevenly lit green screen with
spill; a portrait whose head sways over a textured background, with jittering masks). Keyer
defaults were chosen on the calibration half of benchmarks/bench_keying.py (real
ground-truth mattes and synthetic portraits on varied screens, scored band first against the
plain colour-difference key); this benchmark reports seeds from 1 on. Every figure has a
baseline measured in the same run:

* keyer: SAD (sum |alpha - truth| / 1000) against a single-key-colour keyer (no clean plate)
  and against the binary mask ``truth > 0.5`` on the soft pixels; green excess (alpha-weighted
  mean ``max(0, G - max(R, B))``) of the truth, of the spilled subject, without and with spill
  suppression;
* trimap solver: SAD and MSE in the unknown band against the trimap's own (0.5 there), and
  the wall time at 512x512 and 1024x1024 for the tiled solve and for one window;
* wide unknown regions: a trimap with half the image unknown, coarse-to-fine
  closed form against plain ``pymatting.estimate_alpha_cf`` (up to ``--plain-max`` px):
  time, time per unknown Mpx, band SAD;
* video: mean frame-to-frame alpha change on static subject edges and SAD per frame, for the
  stabilised pipeline and for independent per-frame matting (same solver, same band).

Run from the repository root::

    .venv/bin/python benchmarks/bench_matting.py [--keys 6] [--frames 24] [--clip-size 128]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from comfyui_ld_portrait.base.composite import procedural_background
from comfyui_ld_portrait.base.trimap import UNIT_UNKNOWN, trimap_from_mask
from comfyui_ld_portrait.matting.keying import KeyParams, chroma_key, green_excess
from comfyui_ld_portrait.matting.trimap_solve import solve_trimap, unknown_error
from comfyui_ld_portrait.matting.video import VideoMatteParams, matte_video
from comfyui_ld_portrait.pipeline.synthetic import make_portrait

from fixtures.matting_scenes import make_green_screen, make_moving_clip


def _sad(a, b) -> float:
    return float(np.abs(a - b).sum() / 1000.0)


def bench_keyer(count: int, size: int) -> None:
    rows = []
    for seed in range(1, count + 1):
        scene = make_green_screen(seed, size)
        started = time.perf_counter()
        keyed = chroma_key(scene.image)
        seconds = time.perf_counter() - started
        flat = chroma_key(scene.image, KeyParams(plate=False))
        unsuppressed = chroma_key(scene.image, KeyParams(spill_strength=0.0))
        soft = (scene.alpha > 0.02) & (scene.alpha < 0.98)
        rows.append((_sad(keyed.alpha, scene.alpha), _sad(flat.alpha, scene.alpha),
                     float(np.abs(keyed.alpha - scene.alpha)[soft].sum() / 1000),
                     float(np.abs((scene.alpha > 0.5) - scene.alpha)[soft].sum() / 1000),
                     green_excess(scene.foreground, scene.alpha),
                     green_excess(scene.spilled, scene.alpha),
                     green_excess(unsuppressed.foreground, scene.alpha),
                     green_excess(keyed.foreground, scene.alpha), seconds))
    m = np.mean(rows, axis=0)
    print(f"keyer, {count} scenes {size}x{size} (seeds 1..{count}), {m[8] * 1000:.0f} ms per image")
    print(f"  SAD whole image   keyer {m[0]:.3f}   single key colour {m[1]:.3f}   ratio {m[0] / m[1]:.2f}")
    print(f"  SAD soft pixels   keyer {m[2]:.3f}   binary truth>0.5 {m[3]:.3f}   ratio {m[2] / m[3]:.2f}")
    print(f"  green excess      truth {m[4]:.4f}   spilled subject {m[5]:.4f}   "
          f"keyed, no suppression {m[6]:.4f}   keyed {m[7]:.4f}   (keyed / spilled {m[7] / m[5]:.3f})")


def bench_trimap(sizes) -> None:
    for size in sizes:
        portrait = make_portrait(3, size)
        alpha = np.asarray(portrait.alpha_true, np.float32)
        background = procedural_background("bokeh", size, size, 5)
        image = alpha[..., None] * portrait.rgb + (1 - alpha[..., None]) * background
        band = max(4, size // 64)
        trimap = trimap_from_mask(alpha, band, band, unknown=UNIT_UNKNOWN)
        own = unknown_error(trimap, alpha, trimap)
        for label, tile in (("tiles 256", 256), ("one window", 0)):
            started = time.perf_counter()
            solved = solve_trimap(image, trimap, tile=tile)
            seconds = time.perf_counter() - started
            err = unknown_error(solved, alpha, trimap)
            print(f"trimap cf {size}x{size} ({own['pixels']} unknown px, {label}): {seconds:.2f} s, "
                  f"SAD {err['sad']:.2f} vs trimap's own {own['sad']:.2f} (ratio "
                  f"{err['sad'] / own['sad']:.3f}), MSE {err['mse'] * 1e3:.2f}e-3 vs "
                  f"{own['mse'] * 1e3:.2f}e-3")


def _wide_scene(size: int, fraction: float = 0.5):
    """Portrait composite and a trimap whose band is widened until ``fraction`` is unknown."""
    portrait = make_portrait(3, size)
    alpha = np.asarray(portrait.alpha_true, np.float32)
    background = procedural_background("bokeh", size, size, 5)
    image = (alpha[..., None] * portrait.rgb + (1 - alpha[..., None]) * background).astype(np.float32)
    low, high = 1.0, size / 2.0
    for _ in range(20):  # bisection on the band's half-width
        band = (low + high) / 2
        trimap = trimap_from_mask(alpha, band, band, unknown=UNIT_UNKNOWN)
        if ((trimap > 0.1) & (trimap < 0.9)).mean() < fraction:
            low = band
        else:
            high = band
    return image, alpha, trimap


def bench_wide(sizes, plain_max: int) -> None:
    """Half the image unknown: coarse to fine against plain pymatting
    estimate_alpha_cf (skipped above ``plain_max`` px: 61 s at 512, > 240 s at 1024)."""
    import contextlib
    import io
    import warnings

    import pymatting

    from comfyui_ld_portrait.matting.trimap_solve import solve_trimap_coarse_to_fine

    print("| size | unknown | coarse to fine | s per unknown Mpx | plain CF | band SAD c2f | band SAD plain CF | ratio | trimap's own SAD |")
    print("|---|---|---|---|---|---|---|---|---|")
    for size in sizes:
        image, alpha, trimap = _wide_scene(size)
        unknown = int(((trimap > 0.1) & (trimap < 0.9)).sum())
        started = time.perf_counter()
        ours = solve_trimap_coarse_to_fine(image, trimap)
        seconds = time.perf_counter() - started
        sad = unknown_error(ours, alpha, trimap)["sad"]
        own = unknown_error(trimap, alpha, trimap)["sad"]
        plain_s = plain_sad = ratio = "skipped"
        if size <= plain_max:
            started = time.perf_counter()
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                plain = pymatting.estimate_alpha_cf(image.astype(np.float64), trimap.astype(np.float64))
            plain_s = f"{time.perf_counter() - started:.1f} s"
            plain_value = unknown_error(plain, alpha, trimap)["sad"]
            plain_sad, ratio = f"{plain_value:.2f}", f"{sad / plain_value:.3f}"
        print(f"| {size} | {unknown / size ** 2:.0%} ({unknown}) | {seconds:.1f} s | "
              f"{seconds / unknown * 1e6:.1f} | {plain_s} | {sad:.2f} | {plain_sad} | {ratio} | {own:.2f} |",
              flush=True)


def bench_video(frames: int, size: int, seeds) -> None:
    results = {"independent": [], "stabilised": []}
    for seed in seeds:
        clip = make_moving_clip(seed, frames=frames, size=size)
        truth = np.stack(clip.alphas)
        for label, params in (("independent", VideoMatteParams(stabilise=False)),
                              ("stabilised", VideoMatteParams())):
            started = time.perf_counter()
            result = matte_video(clip.frames, clip.masks, params, foreground=False)
            seconds = time.perf_counter() - started
            alpha = np.stack(result.alpha)
            flicker = float(np.abs(np.diff(alpha, axis=0))[:, clip.static].mean())
            sad = float(np.abs(alpha - truth).sum(axis=(1, 2)).mean() / 1000)
            results[label].append((flicker, sad, seconds / frames))
    ind, sta = (np.mean(results[k], axis=0) for k in ("independent", "stabilised"))
    print(f"video, {len(seeds)} clips x {frames} frames {size}x{size}:")
    print(f"  static-edge flicker  independent {ind[0]:.4f}   stabilised {sta[0]:.4f}   ratio {sta[0] / ind[0]:.2f}")
    print(f"  SAD per frame        independent {ind[1]:.3f}    stabilised {sta[1]:.3f}    ratio {sta[1] / ind[1]:.2f}")
    print(f"  time per frame       independent {ind[2] * 1000:.0f} ms   stabilised {sta[2] * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=6, help="green-screen scenes (default 6)")
    parser.add_argument("--key-size", type=int, default=256)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--clip-size", type=int, default=128)
    parser.add_argument("--clips", type=int, default=3)
    parser.add_argument("--sizes", default="512,1024", help="trimap solver sizes")
    parser.add_argument("--wide-sizes", default="256,512,768,1024",
                        help="sizes for the half-unknown trimap table")
    parser.add_argument("--plain-max", type=int, default=512,
                        help="largest size for the plain closed-form baseline (61 s at 512)")
    parser.add_argument("--only-wide", action="store_true", help="only the half-unknown table")
    args = parser.parse_args()
    import pymatting  # noqa: F401 - compile / load numba kernels before timing anything

    bench_wide([int(s) for s in args.wide_sizes.split(",")], args.plain_max)
    if args.only_wide:
        return
    bench_keyer(args.keys, args.key_size)
    bench_trimap([int(s) for s in args.sizes.split(",")])
    bench_video(args.frames, args.clip_size, list(range(1, args.clips + 1)))


if __name__ == "__main__":
    main()

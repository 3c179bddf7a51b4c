"""Benchmark: dataset verify / stats / manifest on a synthetic 20,000-entry dataset.

Builds a dataset of tiny samples (16x16 foreground, alpha and raw alpha, meta with prompt,
attributes, refinement statistics and a verdict; 5% rejected, half of those with images) in a
temporary folder with ``DatasetWriter(durable=False)``, then times, on the same files:

* ``verify``           ours: one listing per folder, meta parsed once, PNG sizes from the
                       24-byte header, no decoding
* ``verify (naive)``   the baseline: the same checks, but every PNG is decoded with
                       ``cv2.imread`` to learn its size (what a straightforward checker does)
* ``dataset_stats``    ours: every meta read once (threaded reads), histograms and summaries
* ``stats (naive)``    the baseline: ``iter_meta`` (one file at a time) plus a per-sample
                       ``load_sample`` image read, as a script that "looks at each sample" does
* ``rebuild_manifest`` and ``read_manifest``
* resume check: ``DatasetWriter.is_complete`` of every id (ours parses each meta file, so an
  empty or broken one is not taken for a finished sample) against the bare existence check
  it replaced (``Path.is_file`` of both meta paths)

Figures are medians of ``--runs`` runs (warm page cache: the dataset was just written). Run
from the repository root::

    .venv/bin/python benchmarks/bench_dataset.py [--count 20000] [--runs 3] [--keep DIR]

Default run time is about one to two minutes on two cores (most of it building the dataset
and the naive baselines).
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from benchtools import median_seconds

from comfyui_ld_portrait.dataset import (DatasetWriter, dataset_stats, index_id, iter_meta,
                                         load_sample, read_manifest, rebuild_manifest, verify)

SIDE = 16
HAIR = ("black", "brown", "blonde", "red", "grey", "white", "auburn")
AGE = ("young", "middle-aged", "senior")
LIGHT = ("studio", "window", "golden hour", "overcast", "neon")
REASONS = ("multiple_people", "cut_off_top", "nearly_binary", "too_many_corrections")


def build(root: Path, count: int) -> float:
    """Write ``count`` samples into ``root``; returns the seconds it took."""
    rng = np.random.default_rng(0)
    fg = rng.uniform(0, 1, (SIDE, SIDE, 3)).astype(np.float32)
    alpha = np.zeros((SIDE, SIDE), np.float32)
    alpha[4:, 3:13] = 1.0
    alpha[3, 3:13] = 0.5
    writer = DatasetWriter(root, durable=False)
    started = time.perf_counter()
    for index in range(count):
        attributes = {"hair_color": HAIR[index % len(HAIR)], "age": AGE[(index // 7) % len(AGE)],
                      "lighting": LIGHT[(index // 21) % len(LIGHT)],
                      "accessory": None if index % 4 else "glasses"}
        rejected = index % 20 == 19
        meta = {"prompt": f"a portrait photo #{index}", "negative": "blurry", "seed": index,
                "attributes": attributes, "models": "sdxl_base.safetensors",
                "refinement": {"height": SIDE, "width": SIDE, "changed_pixels": index % 13,
                               "changed_fraction": (index % 13) / SIDE ** 2,
                               "semi_before": 20, "semi_after": 10, "interior_fixed": index % 5,
                               "pinholes_filled": index % 3, "debris_removed": 0,
                               "frame_fade_fixed": 0},
                "verdict": {"keep": not rejected,
                            "reasons": [REASONS[(index // 20) % len(REASONS)]] if rejected else []}}
        writer.write_sample(index_id(index), fg, alpha, raw_alpha=alpha, meta=meta,
                            rejected=rejected, store_images=not rejected or index % 40 == 39)
    return time.perf_counter() - started


def naive_verify(root: Path) -> int:
    """Baseline: parse every meta file and decode every image to check that it matches."""
    problems = 0
    for rejected in (False, True):
        for meta in iter_meta(root, rejected=rejected):
            for kind, relative in meta.get("files", {}).items():
                image = cv2.imread(str(root / relative), cv2.IMREAD_UNCHANGED)
                if image is None or (kind != "error_map" and image.shape[:2] != (
                        meta["height"], meta["width"])):
                    problems += 1
    manifest_ids = [entry["id"] for entry in read_manifest(root)]
    accepted = {meta["id"] for meta in iter_meta(root)}
    problems += len(set(manifest_ids) ^ accepted) + len(manifest_ids) - len(set(manifest_ids))
    return problems


def naive_stats(root: Path) -> dict:
    """Baseline: one meta at a time, and every accepted sample loaded to measure it."""
    hair: dict[str, int] = {}
    changed = []
    for meta in iter_meta(root):
        sample = load_sample(root, meta["id"])
        value = (meta.get("attributes") or {}).get("hair_color")
        hair[value] = hair.get(value, 0) + 1
        changed.append(meta["refinement"]["changed_fraction"])
        assert sample.alpha is not None
    return {"hair": hair, "median_changed": float(np.median(changed))}


def exists_check(root: Path, ids: list[str]) -> int:
    """The old resume check: a sample is done when either meta path exists."""
    return sum((root / "meta" / f"{i}.json").is_file() or
               (root / "rejected" / "meta" / f"{i}.json").is_file() for i in ids)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20000, help="samples (default 20000)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per figure (median)")
    parser.add_argument("--baseline-runs", type=int, default=1,
                        help="timed runs of the slow naive baselines (default 1)")
    parser.add_argument("--keep", metavar="DIR",
                        help="build the dataset in DIR and keep it (default: a temp folder)")
    args = parser.parse_args(argv)

    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="ldp-bench-"))
    root = base / "dataset"
    try:
        if (root / "manifest.jsonl").is_file() and args.keep:
            built = None
        else:
            built = build(root, args.count)
        files = sum(1 for _ in root.rglob("*") if _.is_file())
        print(f"dataset: {args.count} samples, {files} files, {SIDE}x{SIDE} images, in {root}")
        if built is not None:
            print(f"  build (DatasetWriter, durable=False): {built:.1f} s "
                  f"({1e3 * built / args.count:.2f} ms/sample)")

        t_verify, report = median_seconds(lambda: verify(root), args.runs)
        assert report.ok, report.to_text()
        t_naive_verify, problems = median_seconds(lambda: naive_verify(root), args.baseline_runs)
        assert problems == 0
        t_stats, stats = median_seconds(lambda: dataset_stats(root), args.runs)
        t_naive_stats, naive = median_seconds(lambda: naive_stats(root), args.baseline_runs)
        # Both paths must agree before their times mean anything.
        ours = {value: counts["accepted"] for value, counts in
                stats.attributes["hair_color"]["values"].items()}
        assert ours == naive["hair"], (ours, naive["hair"])
        assert abs(stats.refinement["changed_fraction"]["median"] - naive["median_changed"]) < 1e-12
        t_rebuild, lines = median_seconds(lambda: rebuild_manifest(root), args.runs)
        t_read, entries = median_seconds(lambda: read_manifest(root), args.runs)
        assert lines == len(entries) == report.accepted
        ids = [index_id(index) for index in range(args.count)]
        writer = DatasetWriter(root, durable=False)
        t_resume, complete = median_seconds(lambda: sum(writer.is_complete(i) for i in ids), args.runs)
        t_exists, existing = median_seconds(lambda: exists_check(root, ids), args.runs)
        assert complete == existing == args.count

        per = 1e6 / args.count
        print(f"  accepted {report.accepted}, rejected {report.rejected}; stats: "
              f"{stats.combinations['distinct']} attribute combinations, "
              f"{len(stats.reject_reasons)} reject reasons")
        rows = [("verify (ours: PNG headers)", t_verify), ("verify (naive: cv2.imread)", t_naive_verify),
                ("dataset_stats (ours)", t_stats), ("stats (naive: iter_meta + load)", t_naive_stats),
                ("rebuild_manifest", t_rebuild), ("read_manifest", t_read),
                ("resume check (ours: parse meta)", t_resume),
                ("resume check (old: exists)", t_exists)]
        for name, seconds in rows:
            print(f"  {name:<34}{seconds:8.3f} s  {seconds * per:8.1f} us/sample")
        print(f"  ratio verify naive/ours: {t_naive_verify / t_verify:.1f}x")
        print(f"  ratio stats  naive/ours: {t_naive_stats / t_stats:.1f}x")
        print(f"  ratio resume ours/old:   {t_resume / t_exists:.1f}x (the price of not trusting "
              "an empty meta file)")
        print(json.dumps({"count": args.count, "verify_s": round(t_verify, 4),
                          "verify_naive_s": round(t_naive_verify, 4),
                          "stats_s": round(t_stats, 4), "stats_naive_s": round(t_naive_stats, 4),
                          "rebuild_manifest_s": round(t_rebuild, 4),
                          "read_manifest_s": round(t_read, 4),
                          "resume_check_s": round(t_resume, 4),
                          "resume_exists_s": round(t_exists, 4)}))
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

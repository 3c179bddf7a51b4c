"""Make the README's pictures: the demo's contact sheet and one error-map panel, downscaled.

Runs ``ld-portrait demo`` (the library call, the command's defaults except 4 portraits unless
given) in a scratch folder, then writes into ``docs/``:

* ``docs/demo_contact_sheet.png``  the demo's contact sheet (raw composite over the
  checkerboard, raw alpha, alpha-bar_h with the red legend, refined alpha, refined composite);
* ``docs/demo_error_map.png``      the error-map panel of the portrait refinement corrected most.

Both are scaled down with area averaging to at most ``--width`` pixels, their colours rounded
to ``--levels`` steps per channel (0 and 255 kept exact) and stored as maximally compressed
8-bit PNGs; the script prints their sizes (about 300 KB together with the defaults). Same
arguments, same pictures: the demo is seeded.

Usage::

    .venv/bin/python tools/readme_pictures.py [--out docs] [--count 4] [--size 512] [--width 800]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from comfyui_ld_portrait.dataset.imagefiles import read_rgba, to_uint8
from comfyui_ld_portrait.dataset.safeio import write_file_atomic
from comfyui_ld_portrait.pipeline.demo import run_demo

REPO = Path(__file__).resolve().parents[1]
SHEET_NAME = "demo_contact_sheet.png"
ERROR_MAP_NAME = "demo_error_map.png"


def downscale(image: np.ndarray, max_width: int) -> np.ndarray:
    """``image`` (float 0..1, [H, W, C]) scaled down to at most ``max_width`` wide (aspect kept,
    area averaging); returned as is when it is already narrow enough."""
    height, width = image.shape[:2]
    if width <= max_width:
        return image
    new_height = max(1, round(height * max_width / width))
    return cv2.resize(image, (max_width, new_height), interpolation=cv2.INTER_AREA)


def small_png(image: np.ndarray, levels: int) -> bytes:
    """PNG bytes of ``image`` (float 0..1 RGB) with ``levels`` values per channel, compression 9.

    Fewer distinct values let the PNG filter and deflate do far better on the demo's noisy
    synthetic textures (a third of the bytes at 64 levels), with no visible banding at README
    size."""
    step = 255.0 / (levels - 1)
    quantised = np.round(to_uint8(image).astype(np.float32) / step) * step
    bgr = np.ascontiguousarray(np.round(quantised).astype(np.uint8)[..., ::-1])
    ok, encoded = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise RuntimeError("OpenCV could not encode the picture as PNG.")
    return encoded.tobytes()


def most_corrected(dataset_dir: Path) -> str:
    """Id of the sample with an error map whose refinement changed the most pixels."""
    best, best_changed = None, -1
    for meta_path in sorted((dataset_dir / "meta").glob("*.json")) + sorted(
            (dataset_dir / "rejected" / "meta").glob("*.json")):
        meta = json.loads(meta_path.read_text("utf-8"))
        changed = (meta.get("refinement") or {}).get("changed_pixels", 0)
        if "error_map" in meta.get("files", {}) and changed > best_changed:
            best, best_changed = meta_path.stem, changed
    if best is None:
        raise SystemExit(f"no sample in {dataset_dir} has an error map; was the demo run with "
                         "error maps?")
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs",
                        help="folder for the pictures (default: docs/ in the repository)")
    parser.add_argument("--count", type=int, default=4, help="demo portraits (default 4)")
    parser.add_argument("--size", type=int, default=512, help="demo portrait side (default 512)")
    parser.add_argument("--seed", type=int, default=0, help="demo seed (default 0)")
    parser.add_argument("--width", type=int, default=800,
                        help="largest width of each picture in pixels (default 800)")
    parser.add_argument("--levels", type=int, default=64,
                        help="values per colour channel, 2..256 (default 64)")
    args = parser.parse_args(argv)
    if not 64 <= args.width <= 4096:
        parser.error(f"--width must be in 64..4096, got {args.width}")
    if not 2 <= args.levels <= 256:
        parser.error(f"--levels must be in 2..256, got {args.levels}")

    with tempfile.TemporaryDirectory(prefix="ldp-readme-") as scratch:
        demo = run_demo(Path(scratch) / "demo", count=args.count, size=args.size, seed=args.seed)
        dataset_dir = Path(demo.dataset_dir)
        sheet, _ = read_rgba(demo.contact_sheet, require_alpha=False)
        sample_id = most_corrected(dataset_dir)
        meta_path = dataset_dir / "meta" / f"{sample_id}.json"
        if not meta_path.is_file():
            meta_path = dataset_dir / "rejected" / "meta" / f"{sample_id}.json"
        relative = json.loads(meta_path.read_text("utf-8"))["files"]["error_map"]
        panel, _ = read_rgba(dataset_dir / relative, require_alpha=False)

    args.out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, picture in ((SHEET_NAME, sheet), (ERROR_MAP_NAME, panel)):
        path = write_file_atomic(args.out / name, small_png(downscale(picture, args.width),
                                                            args.levels))
        written.append(path)
        height, width = cv2.imread(str(path), cv2.IMREAD_UNCHANGED).shape[:2]
        print(f"{path}: {width}x{height}, {path.stat().st_size / 1024:.0f} KB")
    total = sum(path.stat().st_size for path in written)
    print(f"total {total / 1024:.0f} KB; error map of sample {sample_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Small synthetic samples and a writer shortcut for the dataset tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from comfyui_ld_portrait.dataset import DatasetWriter


def make_sample(seed: int, size: int = 24):
    """(fg [size, size, 3], alpha [size, size], raw alpha) with a square portrait and one
    semi-transparent row; the raw alpha is the alpha plus seeded noise."""
    rng = np.random.default_rng(seed)
    fg = rng.random((size, size, 3), dtype=np.float32)
    alpha = np.zeros((size, size), np.float32)
    alpha[size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 1.0
    alpha[size // 4 - 1] = 0.5
    raw = np.clip(alpha + 0.2 * rng.random((size, size), dtype=np.float32), 0, 1)
    return fg, alpha, raw


def all_files(folder: Path) -> list[Path]:
    """Every regular file under ``folder``, sorted."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file())


def write_sample(writer, sample_id: str, seed: int = 0, **kwargs):
    """``writer.write_sample`` with :func:`make_sample` arrays and a seed/prompt meta."""
    fg, alpha, raw = make_sample(seed)
    return writer.write_sample(sample_id, fg, alpha, raw_alpha=raw,
                               meta={"seed": seed, "prompt": f"portrait {seed}"}, **kwargs)


H, W = 48, 40
# (id, attributes, rejected, reasons, refinement changed_fraction)
SAMPLES = [
    ("000000", {"hair": "red", "age": "young"}, False, None, 0.0),
    ("000001", {"hair": "red", "age": "senior"}, False, None, 0.1),
    ("000002", {"hair": "black", "age": "young"}, False, None, 0.2),
    ("000003", {"hair": "red", "age": "young"}, False, None, 0.3),   # repeats 000000's combo
    ("000004", {"hair": "blonde", "age": None}, False, None, 0.4),
    ("000005", {"hair": "red", "age": "young"}, True, ["multiple_people"], 0.5),
    ("000006", {"hair": "grey", "age": "senior"}, True, ["multiple_people", "cut_off_top"], 0.6),
    ("000007", {"hair": "black", "age": "young"}, True, None, 0.7),  # no verdict reasons
]


def stats_images(seed):
    rng = np.random.default_rng(seed)
    fg = rng.uniform(0, 1, (H, W, 3)).astype(np.float32)
    alpha = np.zeros((H, W), np.float32)
    alpha[12:, 8:32] = 1.0
    alpha[11, 8:32] = 0.5
    return fg, alpha


def make_stats_dataset(root):
    """The SAMPLES dataset plus a 96x64 sample, an interrupted write and an unreadable meta."""
    writer = DatasetWriter(root, durable=False)
    for number, (sample_id, attributes, rejected, reasons, changed) in enumerate(SAMPLES):
        fg, alpha = stats_images(number)
        meta = {"attributes": attributes, "prompt": f"prompt {attributes['hair']}",
                "models": "sdxl", "refinement": {"height": H, "width": W,
                                                 "changed_fraction": changed,
                                                 "pinholes_filled": number % 2}}
        if reasons is not None:
            meta["verdict"] = {"keep": False, "reasons": reasons}
        elif not rejected:
            meta["verdict"] = {"keep": True, "reasons": []}
        writer.write_sample(sample_id, fg, alpha, meta=meta, rejected=rejected,
                            store_images=not rejected)
    # A 96x64 sample, an interrupted write (image, no meta) and an unreadable meta file.
    fg = np.zeros((96, 64, 3), np.float32)
    writer.write_sample("big", fg, np.ones((96, 64), np.float32), meta={"attributes": {"hair": "red"}})
    (root / "fg" / "killed.png").write_bytes(b"\x89PNG partial")
    (root / "meta" / "broken.json").write_text("{not json")
    return root

"""A dataset of many small varied samples for the shard export tests (hf, webdataset)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from comfyui_ld_portrait.dataset import DatasetWriter
from comfyui_ld_portrait.dataset.provenance import settings_document

HAIR = ("red", "black", "blonde", "grey")


def make_shard_dataset(root: Path, count: int = 200) -> Path:
    """``count`` accepted samples of 12..27 px sides (every fifth with a 16-bit alpha, every
    third with an id holding a dot), meta with prompt, negative, seed, attributes, models,
    refinement and a verdict with measures, a provenance document; and two rejected ones."""
    writer = DatasetWriter(root, durable=False)
    document = settings_document("refine", {"input": "x"}, {"threshold": 0.5})
    for number in range(count):
        rng = np.random.default_rng(number)
        height, width = 12 + number % 16, 12 + (number * 7) % 16
        fg = rng.random((height, width, 3), dtype=np.float32)
        alpha = rng.random((height, width), dtype=np.float32)
        alpha[: height // 3] = 0.0
        sample_id = f"s{number:04d}" + (".v2" if number % 3 == 0 else "")
        meta = {"prompt": f"portrait {number}", "negative": "blurry", "seed": 1000 + number,
                "attributes": {"hair": HAIR[number % 4], "age": None},
                "models": {"base": "sdxl", "layer": "layer_xl_transparent_attn"},
                "refinement": {"height": height, "width": width,
                               "changed_fraction": number / 1000, "pinholes_filled": number % 5},
                "verdict": {"keep": True, "reasons": [],
                            "measures": {"foreground_fraction": 0.5 + number / 1000,
                                         "person_count": 1}}}
        writer.write_sample(sample_id, fg, alpha, meta=meta, alpha_bits=16 if number % 5 == 0
                            else 8, provenance=document if number % 2 else None)
    for number in range(2):
        fg = np.zeros((12, 12, 3), np.float32)
        writer.write_sample(f"rejected{number}", fg, np.ones((12, 12), np.float32),
                            meta={"seed": number}, rejected=True)
    return root


def stored_pixels(root: Path, sample_id: str, kind: str) -> np.ndarray:
    """The pixels of a sample's stored PNG as its integers (RGB order for fg)."""
    image = cv2.imread(str(root / kind / f"{sample_id}.png"), cv2.IMREAD_UNCHANGED)
    assert image is not None, (sample_id, kind)
    return image[..., ::-1] if image.ndim == 3 else image

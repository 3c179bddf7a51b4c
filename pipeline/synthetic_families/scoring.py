"""Scores of a refinement against ground truth: per portrait and per family.

Whole image and true transition band (ground truth strictly between 0 and 1 at 8-bit
precision): SAD (sum of absolute differences / 1000, the DIM convention) and MSE (mean squared
error over the region). Enclosed true-background holes (ground-truth zeros not connected to
the border, at least 0.1% of the image) report the largest alpha a method leaves in them.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import cv2
import numpy as np

from .common import FamilyPortrait

__all__ = ["portrait_scores", "score_methods", "summarise", "true_band", "enclosed_holes"]

_HALF = 0.5 / 255.0


def true_band(alpha_true: np.ndarray) -> np.ndarray:
    """Bool [H, W]: ground truth strictly between 0 and 1."""
    return (alpha_true > _HALF) & (alpha_true < 1.0 - _HALF)


def enclosed_holes(alpha_true: np.ndarray, min_fraction: float = 0.001) -> np.ndarray:
    """Bool [H, W]: ground-truth zero regions not 8-connected to the image border that cover at
    least ``min_fraction`` of the image (the issue's size for a true background hole; the
    tiny pockets where two hair strands cross are not holes a viewer would see)."""
    zero = (alpha_true <= _HALF).astype(np.uint8)
    count, labels = cv2.connectedComponents(zero, connectivity=8)
    border = np.unique(np.concatenate((labels[0], labels[-1], labels[:, 0], labels[:, -1])))
    large = np.bincount(labels.ravel(), minlength=count) >= min_fraction * labels.size
    large[border] = False
    large[0] = False
    return large[labels]


def portrait_scores(alpha: np.ndarray, portrait: FamilyPortrait) -> dict:
    """SAD/MSE on the whole image and the true band, and the worst enclosed-hole alpha."""
    truth = portrait.alpha_true
    error = np.abs(np.asarray(alpha, np.float64) - truth)
    band = true_band(truth)
    holes = enclosed_holes(truth)
    return {
        "sad": float(error.sum() / 1000.0),
        "mse": float((error ** 2).mean()),
        "band_sad": float(error[band].sum() / 1000.0),
        "band_mse": float((error[band] ** 2).mean()) if band.any() else 0.0,
        "hole_max": float(np.asarray(alpha)[holes].max()) if holes.any() else 0.0,
    }


def score_methods(portraits: Sequence[FamilyPortrait], methods: Mapping[str, Callable]) -> dict:
    """``{method: [scores per portrait]}``; each method maps (alpha_raw, rgb) -> alpha."""
    return {name: [portrait_scores(fn(p.alpha_raw, p.rgb), p) for p in portraits]
            for name, fn in methods.items()}


def summarise(scores: Mapping[str, list]) -> dict:
    """Per method: summed SAD (whole, band), mean MSE, worst hole alpha."""
    out = {}
    for name, rows in scores.items():
        out[name] = {
            "sad": sum(r["sad"] for r in rows),
            "band_sad": sum(r["band_sad"] for r in rows),
            "mse": float(np.mean([r["mse"] for r in rows])),
            "band_mse": float(np.mean([r["band_mse"] for r in rows])),
            "hole_max": max(r["hole_max"] for r in rows),
        }
    return out

"""Scores of a refinement against ground truth: per portrait and per family.

The band first, as the field reports matting: the DIM unknown region (ground truth strictly
between 0 and 1 at 8-bit precision, dilated by 2 px: :func:`dim_band`), then the whole image:
SAD (sum of absolute differences / 1000, the DIM convention) and MSE (mean squared error over
the region). Enclosed true-background holes (ground-truth zeros not connected to
the border, at least 0.1% of the image) report the largest alpha a method leaves in them.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import cv2
import numpy as np

from .common import FamilyPortrait

__all__ = ["portrait_scores", "score_methods", "summarise", "true_band", "dim_band", "enclosed_holes", "DIM_MARGIN"]

_HALF = 0.5 / 255.0
#: The DIM unknown region widens the true soft band by this many pixels (Xu et al. 2017 and
#: every matting benchmark since score there).
DIM_MARGIN = 2


def true_band(alpha_true: np.ndarray) -> np.ndarray:
    """Bool [H, W]: ground truth strictly between 0 and 1."""
    return (alpha_true > _HALF) & (alpha_true < 1.0 - _HALF)


def dim_band(alpha_true: np.ndarray, margin: int = DIM_MARGIN) -> np.ndarray:
    """Bool [H, W]: :func:`true_band` dilated by ``margin`` px (a (2m+1)-square), the region
    matting metrics are computed in."""
    band = true_band(alpha_true)
    if margin <= 0 or not band.any():
        return band
    size = 2 * int(margin) + 1
    return cv2.dilate(band.view(np.uint8), np.ones((size, size), np.uint8)).view(bool)


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
    """SAD/MSE on the DIM band and the whole image, and the worst enclosed-hole alpha."""
    truth = portrait.alpha_true
    error = np.abs(np.asarray(alpha, np.float64) - truth)
    band = dim_band(truth)
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

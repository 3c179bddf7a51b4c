"""Small pieces both benchmark families use: the portrait record, 8-bit quantisation, noise
and the soft edge of a binary silhouette.

Each family builds its own silhouettes, hair and artifacts; only these generic helpers are
shared, so the families stay independent in everything the refinement could exploit.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

__all__ = ["FamilyPortrait", "quantise", "smooth_noise", "signed_distance", "soft_edge", "supersampled"]


@dataclass(frozen=True)
class FamilyPortrait:
    """One synthetic portrait with ground truth.

    Attributes
    ----------
    family : str
        Family name.
    seed : int
        Seed it was generated from (deterministic).
    rgb : float32 ndarray [H, W, 3], 0..1
        Colour of the portrait composited over a plain backdrop (what a refiner may look at).
    alpha_true : float32 ndarray [H, W], 0..1
        The ground-truth matte, quantised to 8-bit levels.
    alpha_raw : float32 ndarray [H, W], 0..1
        The damaged matte a refiner gets, quantised to 8-bit levels.
    artifacts : dict of str -> bool ndarray [H, W]
        Where each artifact model changed the matte (for per-kind reports).
    """

    family: str
    seed: int
    rgb: np.ndarray = field(repr=False)
    alpha_true: np.ndarray = field(repr=False)
    alpha_raw: np.ndarray = field(repr=False)
    artifacts: dict = field(repr=False, default_factory=dict)


def quantise(alpha: np.ndarray) -> np.ndarray:
    """Round to multiples of 1/255 (an 8-bit PNG), float32 in 0..1."""
    return (np.round(np.clip(alpha, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)


def smooth_noise(rng: np.random.Generator, shape: tuple, scale: float) -> np.ndarray:
    """Zero-mean, unit-std Gaussian noise smoothed to features about ``scale`` pixels wide."""
    noise = rng.standard_normal(shape).astype(np.float32)
    if scale > 0.5:
        noise = cv2.GaussianBlur(noise, (0, 0), scale, borderType=cv2.BORDER_REFLECT)
    std = float(noise.std())
    return noise / std if std > 0 else noise


def signed_distance(mask: np.ndarray) -> np.ndarray:
    """Euclidean signed distance (px): negative inside ``mask``, positive outside."""
    inside = mask.astype(np.uint8)
    out = cv2.distanceTransform(1 - inside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    into = cv2.distanceTransform(inside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return (out - into).astype(np.float32)


def soft_edge(mask: np.ndarray, width: float) -> np.ndarray:
    """Coverage 0..1 of a binary silhouette with a linear soft edge ``width`` pixels wide."""
    return np.clip(0.5 - signed_distance(mask) / max(width, 1e-3), 0.0, 1.0).astype(np.float32)


def supersampled(shape: tuple, factor: int, draw) -> np.ndarray:
    """Coverage 0..1 of what ``draw(canvas, factor)`` paints (255) on a ``factor``-times larger
    uint8 canvas, area-averaged back to ``shape``."""
    height, width = shape
    canvas = np.zeros((height * factor, width * factor), np.uint8)
    draw(canvas, factor)
    small = cv2.resize(canvas, (width, height), interpolation=cv2.INTER_AREA)
    return small.astype(np.float32) / 255.0

"""Trimaps as the solvers and MASK sockets want them: float 0 / 0.5 / 1.

A thin adaptor over the shared :mod:`..refine.trimap` (0/128/255 codes).
"""
from __future__ import annotations

import numpy as np

from ..refine.trimap import TRIMAP_BACKGROUND, TRIMAP_FOREGROUND, trimap_from_mask

__all__ = ["band_trimap"]


def band_trimap(mask: np.ndarray, band: float) -> np.ndarray:
    """Trimap from a (soft or binary) mask: 1 inside, 0 outside, 0.5 within ``band`` px of the edge.

    Parameters
    ----------
    mask : [H, W] in 0..1 (thresholded at 0.5) or bool
    band : float >= 0, half-width of the unknown band in pixels (erosion = dilation radius)

    Returns
    -------
    float32 [H, W] with values 0, 0.5, 1
    """
    codes = trimap_from_mask(mask, erode=float(band), dilate=float(band))
    trimap = np.full(codes.shape, 0.5, np.float32)
    trimap[codes == TRIMAP_BACKGROUND] = 0.0
    trimap[codes == TRIMAP_FOREGROUND] = 1.0
    return trimap

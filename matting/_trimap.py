"""Trimaps as the solvers and MASK sockets want them: float 0 / 0.5 / 1.

The trimap itself is made by the shared :mod:`..base.trimap` (0/128/255 codes), which also
converts it to 0 / 0.5 / 1; this module only names that combination for the matting code.
"""
from __future__ import annotations

import numpy as np

from ..base.trimap import trimap_from_mask, trimap_to_unit

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
    return trimap_to_unit(trimap_from_mask(mask, erode=float(band), dilate=float(band)))

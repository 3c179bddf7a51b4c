"""Trimaps in the matting field's 0/128/255 convention (0 background, 128 unknown, 255 foreground).

Two sources:

- :func:`trimap_from_alpha` -- from a (ground-truth or refined) alpha matte: unknown where
  ``0 < alpha < 1``, widened by a band of ``band`` pixels (or a fraction of the shorter side),
  which also makes hard 0/1 edges unknown;
- :func:`trimap_from_mask` -- from a coarse mask (a segmentation): foreground is the mask eroded
  by ``erode`` pixels, background what the mask dilated by ``dilate`` pixels does not reach.

Both write one of two conventions, chosen by the value of the unknown region (``unknown``):

- ``128`` (:data:`TRIMAP_UNKNOWN`, the default): uint8 codes 0 / 128 / 255, the field's trimap
  files and the DIM evaluation;
- ``0.5`` (:data:`UNIT_UNKNOWN`): float32 0 / 0.5 / 1, what the pymatting solvers, MASK sockets
  and training tensors hold.

Distances are Euclidean (round structuring elements), measured with OpenCV's exact distance
transform; the image border is not an edge (a portrait that leaves the frame gets no unknown
strip along the border).
"""
from __future__ import annotations

import cv2
import numpy as np

from .validation import HALF_CODE, as_alpha

__all__ = ["TRIMAP_BACKGROUND", "TRIMAP_UNKNOWN", "TRIMAP_FOREGROUND", "UNIT_UNKNOWN", "UNKNOWN_VALUES",
           "trimap_from_alpha", "trimap_from_mask", "band_in_pixels", "check_trimap_codes", "trimap_array",
           "trimap_to_unit"]

TRIMAP_BACKGROUND, TRIMAP_UNKNOWN, TRIMAP_FOREGROUND = 0, 128, 255
#: The unknown value of the unit convention (float32 0 / 0.5 / 1).
UNIT_UNKNOWN = 0.5
#: The unknown value of each convention -> (dtype, background value, foreground value).
_CONVENTIONS = {TRIMAP_UNKNOWN: (np.uint8, TRIMAP_BACKGROUND, TRIMAP_FOREGROUND),
                UNIT_UNKNOWN: (np.float32, 0.0, 1.0)}
#: The values ``unknown`` may take.
UNKNOWN_VALUES = tuple(_CONVENTIONS)


def _distance_to_outside(region: np.ndarray) -> np.ndarray:
    """For each pixel of ``region`` (bool), the Euclidean distance to the nearest pixel outside
    it (0 outside; very large when the region covers the whole image)."""
    if region.all():
        return np.full(region.shape, np.inf, np.float32)
    return cv2.distanceTransform(region.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)


def band_in_pixels(shape: tuple[int, int], band: float = 0.0, band_fraction: float | None = None
                   ) -> float:
    """The band width in pixels: ``band``, or ``band_fraction`` of the shorter image side."""
    if band_fraction is not None:
        if not np.isfinite(band_fraction) or not 0.0 <= band_fraction <= 1.0:
            raise ValueError(f"band_fraction must be in 0..1 (of the shorter side), got "
                             f"{band_fraction!r}.")
        return float(band_fraction) * min(shape)
    if not np.isfinite(band) or band < 0:
        raise ValueError(f"band must be a width in pixels >= 0, got {band!r}.")
    return float(band)


def _convention(unknown) -> tuple:
    """(unknown value, dtype, background value, foreground value) of the convention whose
    unknown value is ``unknown`` (128 or 0.5), or ``ValueError``."""
    for value, (dtype, background, foreground) in _CONVENTIONS.items():
        if not isinstance(unknown, (bool, str)) and unknown == value:
            return value, dtype, background, foreground
    raise ValueError(f"unknown must be {TRIMAP_UNKNOWN} (uint8 codes 0/128/255) or {UNIT_UNKNOWN} "
                     f"(float32 0/0.5/1), got {unknown!r}.")


def _compose(sure_foreground: np.ndarray, sure_background: np.ndarray,
             unknown=TRIMAP_UNKNOWN) -> np.ndarray:
    value, dtype, background, foreground = _convention(unknown)
    trimap = np.full(sure_foreground.shape, value, dtype)
    trimap[sure_background] = background
    trimap[sure_foreground] = foreground
    return trimap


def trimap_from_alpha(alpha, band: float = 0.0, *, band_fraction: float | None = None,
                      unknown=TRIMAP_UNKNOWN) -> np.ndarray:
    """Trimap of an alpha matte: unknown where it is neither 0 nor 1, widened by a band.

    Parameters
    ----------
    alpha : ndarray [H, W]
        Float 0..1, uint8 or uint16 (1 = opaque). Values within half an 8-bit code of 0 or 1
        count as exactly 0 or 1.
    band : float
        Pixels within this Euclidean distance of a transition pixel or of a 0/1 edge also
        become unknown. 0 keeps exactly the pixels with ``0 < alpha < 1``.
    band_fraction : float, optional
        The band as a fraction of the shorter image side (e.g. 0.02); overrides ``band``.
    unknown : 128 or 0.5
        The convention (module documentation): uint8 codes 0/128/255 or float32 0/0.5/1.

    Returns
    -------
    ndarray [H, W]
        Background (0) where alpha is 0 farther than the band from any other value,
        foreground (255 or 1) likewise for 1, ``unknown`` elsewhere.
    """
    _convention(unknown)
    alpha = as_alpha(alpha)
    width = band_in_pixels(alpha.shape, band, band_fraction)
    foreground = alpha >= 1.0 - HALF_CODE
    background = alpha <= HALF_CODE
    # A pixel is sure when every pixel within `width` has its own value: its distance to the
    # nearest pixel of another kind exceeds the band.
    return _compose(_distance_to_outside(foreground) > width,
                    _distance_to_outside(background) > width, unknown)


def trimap_from_mask(mask, erode: float = 10.0, dilate: float = 10.0, *,
                     threshold: float = 0.5, unknown=TRIMAP_UNKNOWN) -> np.ndarray:
    """Trimap of a coarse mask (a segmentation): eroded mask = foreground, outside the dilated
    mask = background, the ring between = unknown.

    The one erode / dilate trimap of the pack: the evaluation and the matting code (a band of
    equal erosion and dilation, ``unknown=0.5``) both make theirs here.

    Parameters
    ----------
    mask : ndarray [H, W]
        Bool, float 0..1, uint8 or uint16; pixels above ``threshold`` are inside.
    erode, dilate : float
        Radii in pixels (Euclidean, >= 0) of the erosion and dilation.
    threshold : float
        Inside/outside cut for non-bool masks (0..1).
    unknown : 128 or 0.5
        The convention (module documentation): uint8 codes 0/128/255 or float32 0/0.5/1.

    Returns
    -------
    ndarray [H, W]
        uint8 0 / 128 / 255, or float32 0 / 0.5 / 1.
    """
    _convention(unknown)
    for name, value in (("erode", erode), ("dilate", dilate)):
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a radius in pixels >= 0, got {value!r}.")
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold must be in 0..1 (exclusive of 1), got {threshold!r}.")
    array = np.asarray(mask)
    inside = array.astype(bool) if array.dtype == np.bool_ else as_alpha(array, "mask") > threshold
    # Eroding by r keeps pixels more than r from the outside; dilating by r reaches pixels at
    # most r from the inside.
    sure_foreground = _distance_to_outside(inside) > erode
    sure_background = _distance_to_outside(~inside) > dilate
    return _compose(sure_foreground, sure_background, unknown)


def trimap_array(trimap, name: str = "trimap") -> np.ndarray:
    """``trimap`` as a 2-D array [H, W] of any dtype (a trailing axis of 1 dropped), or
    ``ValueError``; the values are checked by the caller."""
    array = np.asarray(trimap)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array [H, W]; got shape {tuple(array.shape)}.")
    return array


def trimap_to_unit(codes: np.ndarray) -> np.ndarray:
    """Trimap codes 0/128/255 (uint8 [H, W], e.g. read from a file) as float32 0 / 0.5 / 1, the
    convention of the pymatting solvers and of MASK sockets. To make a trimap in that convention,
    pass ``unknown=0.5`` to :func:`trimap_from_mask` or :func:`trimap_from_alpha` instead."""
    return _compose(codes == TRIMAP_FOREGROUND, codes == TRIMAP_BACKGROUND, UNIT_UNKNOWN)


def check_trimap_codes(trimap, name: str = "trimap") -> np.ndarray:
    """Return a trimap as uint8 codes 0/128/255, or raise ``ValueError`` naming stray values.

    Accepts uint8 codes, uint16 codes (x 257) or float 0..1 (code / 255), as image readers
    return them.
    """
    array = trimap_array(trimap, name)
    if array.dtype == np.uint8:
        codes = array
    elif array.dtype == np.uint16:
        if np.any(array % 257):
            raise ValueError(f"{name}: 16-bit values that are not 8-bit codes x 257; save the "
                             "trimap with the codes 0, 128, 255.")
        codes = (array // 257).astype(np.uint8)
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all() or array.min() < 0.0 or array.max() > 1.0:
            raise ValueError(f"{name}: float trimaps must hold 0, 128/255 or 1.")
        codes = np.rint(array * 255.0).astype(np.uint8)
    else:
        raise ValueError(f"{name} has dtype {array.dtype}; pass uint8 codes 0/128/255.")
    stray = np.setdiff1d(np.unique(codes), [TRIMAP_BACKGROUND, TRIMAP_UNKNOWN, TRIMAP_FOREGROUND])
    if stray.size:
        shown = ", ".join(str(int(value)) for value in stray[:5])
        raise ValueError(f"{name} holds values other than 0, 128, 255 (e.g. {shown}); a trimap "
                         "marks background 0, unknown 128 and foreground 255 (a lossy format "
                         "such as JPEG, or resizing with interpolation, breaks that).")
    return np.ascontiguousarray(codes)

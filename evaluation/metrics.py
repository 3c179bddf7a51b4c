"""The Adobe Deep Image Matting (DIM) error measures, as its MATLAB evaluation code defines them.

Reference: ``DIM_evaluation_code/*.m`` (Ning Xu, 2018) as published in the Yaoyi-Li/GCA-Matting
repository; ``tests/evaluation/fixtures/dim_octave.json`` holds the values that code gives
under GNU Octave for the cases in that folder, and the tests check these functions against them.

Every measure is taken over a *region*: the unknown pixels of a trimap (code 128) or, without a
trimap, the whole image. Mattes are float arrays in 0..1 (or uint8 / uint16 integer arrays).

======================  ===============================================================  ========
measure                 definition (p = prediction, g = truth, both 0..1; R = region)    reported
======================  ===============================================================  ========
SAD                     sum over R of ``|p - g|``                                         / 1000
MSE                     mean over R of ``(p - g)**2`` (NaN when R is empty, as MATLAB)    as is
MAD                     mean over R of ``|p - g|`` (not in the DIM code; P3M's trimap    as is
                        variant; NaN when R is empty)
gradient                ``mat2gray`` both mattes (min..max -> 0..1), derivative-of-       / 1000
                        Gaussian gradient (sigma 1.4, 9x9, L2-normalised, replicate
                        border), squared difference of the magnitudes summed over R
connectivity            thresholds 0:0.1:1; at each, the largest 4-connected component   / 1000
                        of ``p >= t & g >= t`` (foreground only; ties: the first in
                        MATLAB's column-major order); ``l`` = the last threshold at
                        which a pixel still belonged to it (1 if always);
                        ``phi = 1 - d * (d >= 0.15)`` with ``d = alpha - l``;
                        sum over R of ``|phi_p - phi_g|``
======================  ===============================================================  ========

The MATLAB code works in single precision; these functions compute in float32 where MATLAB
does and sum in float64; on the fixtures they agree with it to 6e-6 relative at worst.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from ..base.trimap import trimap_array
from ..base.validation import as_alpha, check_same_size

__all__ = ["GRADIENT_SIGMA", "CONNECTIVITY_STEP", "CONNECTIVITY_OFFSET", "REPORT_SCALE",
           "as_matte", "unknown_region", "region_mask", "mat2gray", "gaussian_gradient_kernel",
           "gradient_magnitude", "largest_component", "checked_pair", "gradient_sum",
           "connectivity_sum", "sad_error", "mse_error", "mad_error",
           "gradient_error", "connectivity_error", "connectivity_levels"]

#: Standard deviation of the derivative-of-Gaussian filter of the gradient error.
GRADIENT_SIGMA = 1.4
#: Step between the thresholds of the connectivity error (0, 0.1, ..., 1).
CONNECTIVITY_STEP = 0.1
#: Differences to the connectivity level below this count as connected (phi = 1).
CONNECTIVITY_OFFSET = 0.15
#: SAD, gradient and connectivity are reported divided by this (DIM's ``/ 1000``).
REPORT_SCALE = 1000.0

#: The trimap code of the unknown region (0 background, 255 foreground).
UNKNOWN_CODE = 128


def as_matte(matte, name: str) -> np.ndarray:
    """A matte as float32 ``[H, W]`` in 0..1 (float 0..1, uint8 or uint16 accepted)."""
    return as_alpha(matte, name)


def unknown_region(trimap) -> np.ndarray:
    """The unknown region (code 128) of a trimap in the 0/128/255 convention.

    Parameters
    ----------
    trimap : ndarray [H, W]
        uint8 codes 0/128/255, uint16 codes (128 * 257 = 32896 is unknown), or float 0..1 as
        an image reader returns (128/255 ~ 0.502 is unknown). A trailing axis of 1 is dropped.

    Returns
    -------
    bool ndarray [H, W]
        True where the trimap is exactly the unknown code (as MATLAB's ``trimap == 128``).
    """
    array = trimap_array(trimap)
    if array.dtype == np.uint8:
        return array == UNKNOWN_CODE
    if array.dtype == np.uint16:
        return array == UNKNOWN_CODE * 257
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all() or array.min() < 0.0 or array.max() > 1.0:
            raise ValueError("a float trimap must hold values in 0..1 (0, 128/255, 1); "
                             "pass 8-bit codes 0/128/255 as uint8.")
        return np.rint(array * 255.0) == UNKNOWN_CODE
    raise ValueError(f"trimap has dtype {array.dtype}; pass uint8 codes 0/128/255 or float 0..1.")


def region_mask(shape: tuple[int, int], trimap=None) -> np.ndarray:
    """The region the measures are taken over: the trimap's unknown pixels, or everything."""
    if trimap is None:
        return np.ones(shape, bool)
    region = unknown_region(trimap)
    if region.shape != tuple(shape):
        raise ValueError(f"trimap is {region.shape[1]}x{region.shape[0]} but the mattes are "
                         f"{shape[1]}x{shape[0]} (width x height); they must be the same size.")
    return region


def checked_pair(pred, truth) -> tuple[np.ndarray, np.ndarray]:
    """Prediction and truth as float32 [H, W] in 0..1 of the same size, or ``ValueError``."""
    pred = as_matte(pred, "prediction")
    truth = as_matte(truth, "truth")
    check_same_size(pred, truth, "prediction", "truth")
    return pred, truth


def _region_sum(per_pixel, pred, truth, trimap) -> tuple[float, int]:
    """Sum (float64) of ``per_pixel(pred - truth)`` over the region, and the region's size."""
    pred, truth = checked_pair(pred, truth)
    region = region_mask(pred.shape, trimap)
    return float(per_pixel(pred - truth)[region].sum(dtype=np.float64)), int(np.count_nonzero(region))


def _region_mean(per_pixel, pred, truth, trimap) -> float:
    """Mean of ``per_pixel(pred - truth)`` over the region (NaN when it is empty, as in MATLAB)."""
    total, count = _region_sum(per_pixel, pred, truth, trimap)
    return total / count if count else math.nan


def sad_error(pred, truth, trimap=None) -> float:
    """Sum of absolute differences over the region, divided by 1000 (DIM's reported SAD)."""
    return _region_sum(np.abs, pred, truth, trimap)[0] / REPORT_SCALE


def mse_error(pred, truth, trimap=None) -> float:
    """Mean squared difference over the region (NaN when the region is empty, as in MATLAB)."""
    return _region_mean(np.square, pred, truth, trimap)


def mad_error(pred, truth, trimap=None) -> float:
    """Mean absolute difference over the region (NaN when the region is empty)."""
    return _region_mean(np.abs, pred, truth, trimap)


def mat2gray(matte: np.ndarray) -> np.ndarray:
    """MATLAB's ``mat2gray``: stretch ``min..max`` to ``0..1`` (float64).

    A constant matte stays constant (MATLAB then only clips it to 0..1); its gradient is zero
    either way, which is all the gradient error needs.
    """
    matte = np.asarray(matte, dtype=np.float64)
    low, high = float(matte.min()), float(matte.max())
    if high == low:
        return np.clip(matte, 0.0, 1.0)
    # MATLAB/Octave multiply by the reciprocal rather than divide; kept for bit-closeness.
    return (matte - low) * (1.0 / (high - low))


def gaussian_gradient_kernel(sigma: float = GRADIENT_SIGMA, epsilon: float = 1e-2):
    """The separable factors of ``gaussgradient.m``'s x-derivative kernel.

    ``hx[i, j] = gauss(i) * dgauss(j)`` over ``-h..h`` with
    ``h = ceil(sigma * sqrt(-2 log(sqrt(2 pi) sigma epsilon)))`` (h = 4 for sigma 1.4),
    normalised to unit L2 norm. Returns ``(along_rows, along_columns)`` 1-D float64 kernels
    whose outer product is ``hx``; the y kernel is its transpose.
    """
    half = int(math.ceil(sigma * math.sqrt(-2.0 * math.log(math.sqrt(2.0 * math.pi) * sigma
                                                            * epsilon))))
    offsets = np.arange(-half, half + 1, dtype=np.float64)
    gauss = np.exp(-offsets ** 2 / (2.0 * sigma ** 2)) / (sigma * math.sqrt(2.0 * math.pi))
    dgauss = -offsets * gauss / sigma ** 2
    norm = math.sqrt(float(np.sum(np.outer(gauss, dgauss) ** 2)))
    # Both factors share the normalisation (sqrt each) so their outer product is hx / norm.
    return gauss / math.sqrt(norm), dgauss / math.sqrt(norm)


def gradient_magnitude(matte: np.ndarray, sigma: float = GRADIENT_SIGMA) -> np.ndarray:
    """``sqrt(gx**2 + gy**2)`` of ``gaussgradient(matte, sigma)`` (float64 [H, W]).

    MATLAB filters with ``imfilter(..., 'replicate', 'conv')``; OpenCV correlates, so the
    derivative factor is flipped (it is odd: flipping negates it, which the magnitude ignores
    anyway).
    """
    smooth, derivative = gaussian_gradient_kernel(sigma)
    flipped = derivative[::-1].copy()
    image = np.ascontiguousarray(matte, dtype=np.float64)
    gx = cv2.sepFilter2D(image, cv2.CV_64F, flipped, smooth, borderType=cv2.BORDER_REPLICATE)
    gy = cv2.sepFilter2D(image, cv2.CV_64F, smooth, flipped, borderType=cv2.BORDER_REPLICATE)
    return np.sqrt(gx * gx + gy * gy)


def gradient_sum(pred: np.ndarray, truth: np.ndarray, region: np.ndarray) -> float:
    """Unscaled DIM gradient error of checked float32 mattes over a bool region."""
    # MATLAB: error_map = (single(pred_amp) - single(target_amp)).^2
    pred_amp = gradient_magnitude(mat2gray(pred)).astype(np.float32)
    truth_amp = gradient_magnitude(mat2gray(truth)).astype(np.float32)
    return float(np.square(pred_amp - truth_amp)[region].sum(dtype=np.float64))


def gradient_error(pred, truth, trimap=None) -> float:
    """DIM gradient error over the region, divided by 1000.

    Both mattes are ``mat2gray``-normalised first, so a prediction that spans only part of
    0..1 is stretched to the full range before its gradient is compared.
    """
    pred, truth = checked_pair(pred, truth)
    return gradient_sum(pred, truth, region_mask(pred.shape, trimap)) / REPORT_SCALE


def _largest_in_scan_order(mask: np.ndarray) -> np.ndarray | None:
    """Largest 4-connected component of a C-contiguous bool mask; ties go to the component
    whose first pixel comes first in row-major order."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        mask.view(np.uint8), connectivity=4, ltype=cv2.CV_32S)
    if count <= 1:
        return None
    areas = stats[1:, cv2.CC_STAT_AREA]
    best = np.flatnonzero(areas == areas.max()) + 1
    if best.size > 1:  # a tie: the first in scan order wins
        flat = labels.ravel()
        first = [int(np.argmax(flat == label)) for label in best]
        best = best[int(np.argmin(first))]
    else:
        best = best[0]
    return labels == best


def largest_component(mask: np.ndarray, *, ties: str = "column") -> np.ndarray | None:
    """The largest 4-connected component of ``mask`` (bool [H, W]), or None if it is empty.

    Only set pixels form components (the background is never a candidate). Equal sizes go to
    the component whose first pixel comes first in ``ties`` order: ``"column"`` (column-major,
    MATLAB's ``bwconncomp`` + ``max``, used by DIM) or ``"row"`` (row-major, scikit-image's
    ``label`` + ``argmax``, used by P3M's whole-image code).
    """
    if ties not in ("column", "row"):
        raise ValueError(f"ties must be 'column' or 'row', got {ties!r}.")
    # For column order label the transpose: its row-major order is the original's column-major.
    scan = np.ascontiguousarray(mask.T if ties == "column" else mask, dtype=bool)
    component = _largest_in_scan_order(scan)
    if component is None or ties == "row":
        return component
    return component.T


def connectivity_levels(pred: np.ndarray, truth: np.ndarray, *, step: float = CONNECTIVITY_STEP,
                        skip_empty: bool = False, ties: str = "column") -> np.ndarray:
    """The connectivity level ``l`` of every pixel (float32 [H, W]).

    ``l`` is the last threshold (0, step, 2 step, ...) before the pixel left the largest
    component of ``pred >= t & truth >= t``; 1 if it never left. The comparison happens in
    the mattes' own precision (float32 for DIM, as MATLAB's single; float64 for P3M).

    ``skip_empty`` reproduces P3M's whole-image code: a threshold without any component is
    skipped instead of assigning its level to every pixel still unassigned. ``ties``: see
    :func:`largest_component`.
    """
    if ties not in ("column", "row"):
        raise ValueError(f"ties must be 'column' or 'row', got {ties!r}.")
    if ties == "column":  # work on the transposes once: scan order = MATLAB's column-major
        pred, truth = np.ascontiguousarray(pred.T), np.ascontiguousarray(truth.T)
    count = int(round(1.0 / step))
    # MATLAB's 0:step:1 and NumPy's arange both yield k * step (0.30000000000000004 ...).
    thresholds = [k * step for k in range(count + 1)]
    levels = np.full(pred.shape, -1.0, np.float32)
    unassigned = np.ones(pred.shape, bool)
    for index in range(1, len(thresholds)):
        both = pred >= thresholds[index]
        both &= truth >= thresholds[index]
        omega = _largest_in_scan_order(both)
        if omega is None and skip_empty:
            continue
        leaving = unassigned if omega is None else unassigned & ~omega
        levels[leaving] = thresholds[index - 1]
        unassigned &= ~leaving
    levels[unassigned] = 1.0
    return np.ascontiguousarray(levels.T) if ties == "column" else levels


def _phi(matte: np.ndarray, levels: np.ndarray) -> np.ndarray:
    # float32 mattes: single - single, as MATLAB's single - double; float64 mattes (P3M) keep
    # float64 as NumPy does there.
    difference = matte - levels
    return 1.0 - difference * (difference >= CONNECTIVITY_OFFSET).astype(difference.dtype)


def connectivity_sum(pred: np.ndarray, truth: np.ndarray, region: np.ndarray | None, *,
                     skip_empty: bool = False, ties: str = "column") -> float:
    """Unscaled connectivity error of checked mattes over a bool region (None: all pixels)."""
    levels = connectivity_levels(pred, truth, skip_empty=skip_empty, ties=ties)
    error = np.abs(_phi(pred, levels) - _phi(truth, levels))
    if region is not None:
        error = error[region]
    return float(error.sum(dtype=np.float64))


def connectivity_error(pred, truth, trimap=None) -> float:
    """DIM connectivity error over the region, divided by 1000."""
    pred, truth = checked_pair(pred, truth)
    return connectivity_sum(pred, truth, region_mask(pred.shape, trimap)) / REPORT_SCALE

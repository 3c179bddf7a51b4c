"""Evaluation protocols: which definition of each measure, over which pixels.

``dim``
    The Adobe Deep Image Matting MATLAB code (see :mod:`.metrics`): over the trimap's unknown
    region (code 128), or the whole image when no trimap is given. SAD, gradient and
    connectivity divided by 1000. Composition-1k, Distinctions-646 and most trimap-based papers
    report these.
``whole``
    The whole-image protocol of the P3M-500 and AM-2K benchmarks (JizhiziLi/P3M
    ``core/evaluate.py``: ``calculate_sad_mse_mad_whole_img``,
    ``compute_gradient_whole_image``, ``compute_connectivity_loss_whole_image``; AM-2K's GFM
    code uses the same functions). Every pixel counts; no trimap; float64 arithmetic on
    ``png / 255``. SAD / 1000; MSE and MAD are means over the image; the gradient is SciPy's
    Gaussian derivative (sigma 1.4, truncated at 4 sigma, SciPy's default 'reflect' border) of
    the 0..1 mattes *without* ``mat2gray``, the squared difference of magnitudes summed and
    divided by **10** (not 1000); connectivity as DIM, except that a threshold with no common
    component is skipped (DIM assigns its level) and equally large components go to the first
    in row-major order (DIM: column-major), divided by 1000.
    ``tests/evaluation/fixtures/p3m_whole.json`` holds what P3M's own code gives on the fixture
    cases; the tests check this protocol against it.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from . import metrics
from .names import METRIC_NAMES, PROTOCOLS

__all__ = ["PROTOCOLS", "METRIC_NAMES", "MattingErrors", "evaluate_pair", "as_p3m_matte",
           "whole_gradient_error",
           "whole_connectivity_error"]

#: Whole-image gradient: P3M divides the summed squared difference by 10.
WHOLE_GRADIENT_SCALE = 10.0


@dataclass(frozen=True)
class MattingErrors:
    """The five measures of one prediction against its truth, as reported.

    ``mse`` and ``mad`` are NaN when the region is empty (a trimap without unknown pixels).
    """

    sad: float
    mse: float
    mad: float
    grad: float
    conn: float

    def as_dict(self) -> dict:
        return asdict(self)


def as_p3m_matte(matte: np.ndarray) -> np.ndarray:
    """A checked float32 matte as P3M holds it: float64, 8-bit data exactly ``code / 255``.

    P3M divides the 8-bit PNG by 255 in float64. A float32 reader rounds ``153 / 255`` up to
    0.6000000238, which passes P3M's 0.6 connectivity threshold where 0.59999999999999998 does
    not; so mattes whose values all sit on the 8-bit grid are put back on it in float64.
    """
    wide = matte.astype(np.float64)
    codes = np.rint(wide * 255.0)
    if np.all(np.abs(wide * 255.0 - codes) < 1e-3):
        return codes / 255.0
    return wide


def whole_gradient_error(pred, truth) -> float:
    """P3M / AM-2K whole-image gradient error: ``sum((|grad p| - |grad g|)**2) / 10``."""
    from scipy.ndimage import gaussian_filter

    pred, truth = metrics.checked_pair(pred, truth)
    pred, truth = as_p3m_matte(pred), as_p3m_matte(truth)

    def magnitude(matte):
        # P3M keeps the filter output in float32 (output=np.float32).
        dy = gaussian_filter(matte, sigma=metrics.GRADIENT_SIGMA, order=[1, 0], output=np.float32)
        dx = gaussian_filter(matte, sigma=metrics.GRADIENT_SIGMA, order=[0, 1], output=np.float32)
        return np.sqrt(dx * dx + dy * dy)

    error = np.square(magnitude(pred) - magnitude(truth))
    return float(error.sum(dtype=np.float64)) / WHOLE_GRADIENT_SCALE


def whole_connectivity_error(pred, truth) -> float:
    """P3M / AM-2K whole-image connectivity error (/ 1000).

    As DIM's over every pixel, except that a threshold at which prediction and truth share no
    foreground pixel is skipped (the pixels still unassigned end at level 1, not at the level
    below that threshold), ties between equally large components go to the first in row-major
    order, and the arithmetic is float64.
    """
    pred, truth = metrics.checked_pair(pred, truth)
    pred, truth = as_p3m_matte(pred), as_p3m_matte(truth)
    return metrics.connectivity_sum(pred, truth, None, skip_empty=True,
                                    ties="row") / metrics.REPORT_SCALE


def evaluate_pair(pred, truth, trimap=None, protocol: str = "dim") -> MattingErrors:
    """All five measures of ``pred`` against ``truth`` under ``protocol``.

    Parameters
    ----------
    pred, truth : ndarray [H, W]
        Mattes, float 0..1, uint8 or uint16 (1 = opaque).
    trimap : ndarray [H, W], optional
        0/128/255 trimap (uint8, uint16 or float 0..1); ``dim`` measures over its unknown
        region. Not allowed with ``whole``, which always measures every pixel.
    protocol : {"dim", "whole"}

    Returns
    -------
    MattingErrors
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {sorted(PROTOCOLS)}.")
    pred, truth = metrics.checked_pair(pred, truth)
    if protocol == "whole":
        if trimap is not None:
            raise ValueError("the whole-image protocol measures every pixel and takes no trimap; "
                             "use protocol 'dim' to measure the unknown region.")
        count = pred.size
        difference = as_p3m_matte(pred) - as_p3m_matte(truth)
        absolute = float(np.abs(difference).sum())
        return MattingErrors(sad=absolute / metrics.REPORT_SCALE,
                             mse=float(np.square(difference).sum()) / count,
                             mad=absolute / count,
                             grad=whole_gradient_error(pred, truth),
                             conn=whole_connectivity_error(pred, truth))
    region = metrics.region_mask(pred.shape, trimap)
    return _dim_errors(pred, truth, region)


def _dim_errors(pred: np.ndarray, truth: np.ndarray, region: np.ndarray) -> MattingErrors:
    count = int(np.count_nonzero(region))
    absolute = float(np.abs(pred - truth)[region].sum(dtype=np.float64))
    squared = float(np.square(pred - truth)[region].sum(dtype=np.float64))
    grad = metrics.gradient_sum(pred, truth, region)
    conn = metrics.connectivity_sum(pred, truth, region)
    return MattingErrors(sad=absolute / metrics.REPORT_SCALE,
                         mse=squared / count if count else math.nan,
                         mad=absolute / count if count else math.nan,
                         grad=grad / metrics.REPORT_SCALE,
                         conn=conn / metrics.REPORT_SCALE)

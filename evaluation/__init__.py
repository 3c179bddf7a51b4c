"""Matting error measures as the field reports them (pure: numpy, OpenCV, SciPy).

- :mod:`.metrics`   -- SAD, MSE, MAD, gradient and connectivity errors of the Adobe DIM MATLAB
  code, over a trimap's unknown region or the whole image
- :mod:`.protocols` -- named protocols (``dim``; ``whole`` for P3M-500 / AM-2K) and
  :func:`evaluate_pair`, which returns all five measures at once
"""
from .metrics import (connectivity_error, gradient_error, mad_error, mse_error, sad_error,
                      unknown_region)
from .protocols import METRIC_NAMES, PROTOCOLS, MattingErrors, evaluate_pair

__all__ = ["connectivity_error", "gradient_error", "mad_error", "mse_error", "sad_error",
           "unknown_region", "METRIC_NAMES", "PROTOCOLS", "MattingErrors", "evaluate_pair"]

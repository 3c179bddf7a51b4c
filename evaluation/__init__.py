"""Matting error measures as the field reports them (pure: numpy, OpenCV, SciPy).

- :mod:`.metrics`   -- SAD, MSE, MAD, gradient and connectivity errors of the Adobe DIM MATLAB
  code, over a trimap's unknown region or the whole image
- :mod:`.names`     -- the protocol and measure names (no numpy: the CLI's parser lists them)
- :mod:`.protocols` -- named protocols (``dim``; ``whole`` for P3M-500 / AM-2K) and
  :func:`evaluate_pair`, which returns all five measures at once
"""
from ..base.lazy import lazy_exports

_HOMES = {name: "metrics" for name in ("connectivity_error", "gradient_error", "mad_error",
                                       "mse_error", "sad_error", "unknown_region")}
_HOMES.update({"METRIC_NAMES": "names", "PROTOCOLS": "names", "MattingErrors": "protocols",
               "evaluate_pair": "protocols"})
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)  # numpy loads on first use

__all__ = ["connectivity_error", "gradient_error", "mad_error", "mse_error", "sad_error",
           "unknown_region", "METRIC_NAMES", "PROTOCOLS", "MattingErrors", "evaluate_pair"]

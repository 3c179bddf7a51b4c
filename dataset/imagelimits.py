"""The limits every input image is checked against before it is decoded (pixels declared in
its header, bytes on disk): defaults, environment variables, the limits in force.

Standard library only: the command line's parser prints the defaults, and ``ld-portrait
--help`` must start without numpy or OpenCV. :mod:`.imagefiles` applies the limits.
"""
from __future__ import annotations

import os

__all__ = ["DEFAULT_MAX_PIXELS", "DEFAULT_MAX_BYTES", "MAX_PIXELS_ENV", "MAX_BYTES_ENV",
           "image_limits"]

#: 64 megapixels (8192 x 8192): four times a 4K frame; one such image decodes to 1 GiB as
#: float32 RGBA, which is about what one file may cost a batch.
DEFAULT_MAX_PIXELS = 1 << 26
#: 512 MiB: a PNG at the pixel limit compresses far below this.
DEFAULT_MAX_BYTES = 512 << 20
MAX_PIXELS_ENV = "LDP_MAX_IMAGE_PIXELS"
MAX_BYTES_ENV = "LDP_MAX_IMAGE_BYTES"


def _limit_from_env(variable: str, default: int) -> int:
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return default
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"environment variable {variable}={raw!r} must be a whole number >= 1 "
                         f"(default {default}); fix or unset it.")
    return value


def image_limits(max_pixels: int | None = None, max_bytes: int | None = None) -> tuple[int, int]:
    """The limits in force: each argument, or its environment variable, or the default.

    Returns
    -------
    (max_pixels, max_bytes) : (int, int)

    Raises
    ------
    ValueError
        A limit below 1, or an environment variable that is not a whole number >= 1.
    """
    pixels = _limit_from_env(MAX_PIXELS_ENV, DEFAULT_MAX_PIXELS) if max_pixels is None \
        else int(max_pixels)
    size = _limit_from_env(MAX_BYTES_ENV, DEFAULT_MAX_BYTES) if max_bytes is None \
        else int(max_bytes)
    if pixels < 1 or size < 1:
        raise ValueError(f"image limits must be >= 1, got max_pixels={pixels}, max_bytes={size}.")
    return pixels, size

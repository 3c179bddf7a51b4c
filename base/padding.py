"""Foreground colour padding: fill the colour under fully transparent pixels.

Layer Diffusion stores the foreground colour ``F`` beside the alpha. Where alpha is 0 that
colour is meaningless, yet matting datasets and the transparent VAE encoder need a smooth,
plausible colour there (otherwise compositing with a slightly wrong alpha shows dark or
garish fringes). Upstream ("pad_rgb" in the public LayerDiffuse code) solves it with an
alpha-weighted pyramid, which behaves like massive iterative Gaussian filtering of the
premultiplied colour:

1. Build a pyramid of premultiplied colour ``c = rgb * alpha`` and alpha ``a``: every level is
   the previous one shrunk by a factor of 1.2 with area averaging (``cv2.INTER_AREA``); level
   sizes are ``int(W / 1.2) x int(H / 1.2)`` of the previous level (truncated), and the
   pyramid stops at the first level whose shorter side is 1 pixel.
2. At the coarsest level start from the alpha-weighted mean colour ``sum(c) / sum(a)``.
3. Coarse to fine, bilinearly upsample (``cv2.INTER_LINEAR``) the running colour to the level's
   size and composite the level over it: ``fg = c + up(fg) * (1 - a)``.

Where alpha is 1 the result is exactly ``rgb``; where alpha is 0 it is the blurred colour of
the nearby foreground. This module reproduces the upstream output bit for bit on the
upstream demo image (``padded_rgb.png`` from ``pad_ip.png``) while doing fewer passes over
memory: premultiplication and the top-down compositing run in place with OpenCV arithmetic
instead of numpy broadcasting temporaries.
"""
from __future__ import annotations

import cv2
import numpy as np

from .validation import as_alpha, as_rgb, check_same_size

__all__ = ["pad_foreground", "PYRAMID_FACTOR"]

#: Shrink factor between pyramid levels (upstream's ``dk``).
PYRAMID_FACTOR = 1.2


def _three_channels(plane: np.ndarray) -> np.ndarray:
    """``[h, w]`` -> contiguous ``[h, w, 3]`` copy (cv2 arithmetic does not broadcast channels)."""
    return cv2.merge((plane, plane, plane))


def _premultiplied_pyramid(rgb: np.ndarray, alpha: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Fine-to-coarse list of (premultiplied colour float32 [h, w, 3], alpha float32 [h, w])."""
    colour = cv2.multiply(rgb, _three_channels(alpha))
    levels = [(colour, alpha)]
    height, width = alpha.shape
    while min(height, width) > 1:
        # int() truncation of the float quotient, as upstream, so level sizes match exactly.
        size = (int(width / PYRAMID_FACTOR), int(height / PYRAMID_FACTOR))
        colour = cv2.resize(colour, size, interpolation=cv2.INTER_AREA)
        alpha = cv2.resize(alpha, size, interpolation=cv2.INTER_AREA)
        width, height = size
        levels.append((colour, alpha))
    return levels


def pad_foreground(rgb, alpha) -> np.ndarray:
    """Fill the foreground colour where alpha is 0 with smoothly spread nearby colour.

    Parameters
    ----------
    rgb : ndarray [H, W, 3]
        Foreground colour, float in 0..1 or uint8/uint16. The values under alpha = 0 are
        ignored.
    alpha : ndarray [H, W]
        Alpha, 1 = opaque; float in 0..1, uint8/uint16 or bool (a trailing axis of size 1 is
        accepted). Must have the same height and width as ``rgb``.

    Returns
    -------
    ndarray, float32 [H, W, 3] in 0..1
        ``rgb`` where alpha is 1; elsewhere the premultiplied colour composited over the
        alpha-weighted pyramid blur of the foreground (see the module docstring). Odd sizes
        and 1-pixel-wide images work. If alpha is 0 everywhere there is no foreground colour
        to spread, and the result is all zeros (as upstream).

    Raises
    ------
    ValueError
        Wrong shapes, different sizes, NaN/inf or values outside 0..1.

    Notes
    -----
    Matches the upstream LayerDiffuse ``pad_rgb`` exactly for the same float32 input (the
    test suite checks the upstream demo output byte for byte after upstream's 8-bit
    truncation).
    """
    rgb = as_rgb(rgb, "rgb")
    alpha = as_alpha(alpha, "alpha")
    check_same_size(rgb, alpha, "rgb", "alpha")

    levels = _premultiplied_pyramid(rgb, alpha)

    # Start from the alpha-weighted mean colour of the coarsest level (0 if alpha is all 0:
    # the tiny floor keeps the division finite, as upstream).
    top_colour, top_alpha = levels[-1]
    colour_sum = top_colour.sum(axis=(0, 1), dtype=np.float32)
    alpha_sum = top_alpha[..., None].sum(axis=(0, 1), dtype=np.float32)
    mean_colour = colour_sum / np.maximum(alpha_sum, np.float32(1e-8))
    fg = np.empty(top_colour.shape, np.float32)
    fg[...] = mean_colour

    for index in range(len(levels) - 1, -1, -1):
        colour, alpha_level = levels[index]
        levels[index] = None  # drop our reference early: the finest levels are large
        height, width = alpha_level.shape
        if fg.shape[:2] != (height, width):
            fg = cv2.resize(fg, (width, height), interpolation=cv2.INTER_LINEAR)
        # fg = c + fg * (1 - a), in place with cv2 (numpy's channel broadcast is ~3x slower).
        # numpy for the scalar subtraction: cv2 reads a Python scalar as a 4-vector Scalar.
        transparency = _three_channels(np.subtract(np.float32(1.0), alpha_level))
        cv2.multiply(fg, transparency, dst=fg)
        cv2.add(fg, colour, dst=fg)

    # Every term is non-negative and c <= a, so fg <= 1 up to float rounding: trim that ulp.
    return np.minimum(fg, np.float32(1.0), out=fg)

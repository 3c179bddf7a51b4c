"""Trimap-based matting with classical solvers (pymatting): image + trimap -> alpha, foreground.

pymatting (Germer et al., MIT licence) provides the solvers: closed-form matting (Levin et al.
2008, ``cf``), KNN matting (``knn``), large-kernel matting (``lkm``), learning-based matting
(``lbdm``) and random-walk matting (``rw``), all of which solve a sparse linear system for the
unknown pixels only, plus fast multi-level foreground estimation (Germer et al. 2020).

What this module adds, and why:

* **Crop and tiles.** pymatting works on the whole image it is given: arrays of the full size
  are built and the Laplacian rows are generated for every window that touches an unknown
  pixel. A portrait's unknown band is thin but its bounding box is nearly the whole image,
  so :func:`solve_trimap` cuts the band's bounding box into tiles (``tile`` px) and solves
  each tile with a ``margin`` of context whose known pixels act as boundary conditions; the
  tile's core is kept. Tiles without unknown pixels are skipped. The linear systems become
  small and well conditioned, which is what makes a 1024x1024 portrait a matter of seconds.
* **Coarse to fine for wide unknown regions.** Closed-form matting's system gets
  harder to solve as the unknown region gets wider: pymatting's incomplete-Cholesky
  preconditioner fills in and has to be shifted, and conjugate gradients then need hundreds
  of iterations (61 s for 131k unknown pixels at 512 px, over 240 s at 1024 px; tiles do not
  help because the band itself is wide). :func:`solve_trimap_coarse_to_fine` follows the
  coarse-to-fine scheme of Levin et al.'s own closed-form code (``solveAlphaC2F``): the image
  and trimap are halved until the unknown region is small, solved there exactly, and on
  the way back up every pixel whose upsampled alpha is confidently 0 or 1 over its whole
  3x3 window becomes a known pixel, so each finer level solves only the fractional band,
  starting from the upsampled alpha. Work per level is proportional to that band.
* **Checks and defined results** for trimaps pymatting would reject or warn about: values as
  uint8 0/128/255 or float 0/0.5/1 (anything between 0.1 and 0.9 is unknown, pymatting's own
  thresholds), an all-known trimap returns its foreground (nothing to solve), an all-unknown
  trimap or one without any definite foreground or background is a ``ValueError`` that says
  what to do.

No file or host access; numpy, OpenCV and pymatting only. pymatting compiles its kernels with
numba on first import (cached afterwards), so it is imported when a solver runs.
"""
from __future__ import annotations

import numpy as np

from ..base.validation import as_alpha, as_rgb, check_same_size
from .params import METHODS

__all__ = ["METHODS", "TrimapError", "split_trimap", "solve_trimap",
           "solve_trimap_coarse_to_fine", "estimate_foreground", "unknown_error"]

#: pymatting's thresholds: <= BG_LEVEL background, >= FG_LEVEL foreground, between unknown.
BG_LEVEL, FG_LEVEL = 0.1, 0.9

#: ``solve_trimap`` switches closed-form matting to coarse-to-fine above this many unknown
#: pixels: one-level solves grow much faster than linearly past it (33k unknown px: 3 s;
#: 131k: 61 s on a 2-core CPU), while below it they are fast and exact.
COARSE_TO_FINE_FROM = 40_000

#: Coarse-to-fine halves the image until at most this many pixels are unknown, then solves
#: that level in one piece (about 0.1 s for 8k unknown px; fewer levels lose thin detail).
COARSEST_UNKNOWN = 10_000

#: Upsampled alpha at or below this (or at or above 1 minus it) over a whole 3x3 window is
#: taken as known at the finer level; 0.02 is Levin et al.'s ``thr_alpha``.
CONFIDENT_ALPHA = 0.02

#: Below this side a level is not halved again (a 16 px image has no detail left to guide).
SMALLEST_LEVEL = 32


class TrimapError(ValueError):
    """A trimap that cannot be solved (the message says why and what to do)."""


def split_trimap(trimap) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Classify trimap pixels.

    Parameters
    ----------
    trimap : ndarray [H, W]
        float in 0..1 (0 background, 0.5 unknown, 1 foreground) or uint8 / uint16 (0, 128,
        255 ...); values in (0.1, 0.9) are unknown.

    Returns
    -------
    foreground, background, unknown : bool [H, W]
    """
    values = as_alpha(trimap, "trimap")
    foreground = values >= FG_LEVEL
    background = values <= BG_LEVEL
    return foreground, background, ~(foreground | background)


def _solver(method: str):
    if method not in METHODS:
        raise ValueError(f"unknown matting method {method!r}; choose one of {sorted(METHODS)}.")
    import pymatting  # heavy (numba): only when a solve runs

    return getattr(pymatting, METHODS[method])


def _solve_window(solve, image, trimap) -> np.ndarray:
    """pymatting on one window. Its warnings and its printed preconditioner notes (it falls
    back to a shifted incomplete Cholesky by itself) are kept off the user's console."""
    import contextlib
    import io
    import warnings

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        return solve(image.astype(np.float64), trimap.astype(np.float64))


def _tile_windows(box, shape, tile: int, margin: int):
    """Yield (core slices, window slices) covering ``box`` = (y0, y1, x0, x1)."""
    y0, y1, x0, x1 = box
    height, width = shape
    for ty in range(y0, y1, tile):
        for tx in range(x0, x1, tile):
            core = (slice(ty, min(ty + tile, y1)), slice(tx, min(tx + tile, x1)))
            window = (slice(max(0, ty - margin), min(height, ty + tile + margin)),
                      slice(max(0, tx - margin), min(width, tx + tile + margin)))
            yield core, window


def _grow(window, shape, margin):
    (ys, xs), (height, width) = window, shape
    return (slice(max(0, ys.start - margin), min(height, ys.stop + margin)),
            slice(max(0, xs.start - margin), min(width, xs.stop + margin)))


def _check_solvable(foreground, background, unknown) -> None:
    if not (foreground.any() or background.any()):
        raise TrimapError("the trimap is unknown everywhere: mark some definite foreground "
                          "(white) and background (black), e.g. with a trimap made from a "
                          "mask with a band.")
    if not foreground.any() or not background.any():
        missing = "foreground (white, >= 0.9)" if not foreground.any() else "background (black, <= 0.1)"
        raise TrimapError(f"the trimap has unknown pixels but no definite {missing}; "
                          "the solver has nothing to propagate from. Mark some, or fill the "
                          "unknown region yourself.")


def solve_trimap(image, trimap, *, method: str = "cf", tile: int = 256, margin: int = 24,
                 progress=None, coarse_to_fine: bool | None = None) -> np.ndarray:
    """Alpha from an image and a trimap, solving only the unknown band, tile by tile.

    Parameters
    ----------
    image : ndarray [H, W, 3]
        Float in 0..1 (or uint8/uint16).
    trimap : ndarray [H, W]
        0 background, 0.5 (anything in (0.1, 0.9)) unknown, 1 foreground (see
        :func:`split_trimap`).
    method : {'cf', 'knn', 'lkm', 'lbdm', 'rw'}
        pymatting solver (closed-form by default: the best of them on portraits).
    tile : int >= 16
        Side of the tiles the unknown region's bounding box is cut into; 0 solves the whole
        bounding box (plus margin) at once.
    margin : int >= 4
        Context around each tile; its known pixels are the boundary conditions.
    progress : callable, optional
        Called with (steps done, steps total) after each solved tile, or after each level
        when solving coarse to fine; the last call has done == total.
    coarse_to_fine : bool or None
        Closed-form only. None (default): coarse to fine when more than
        ``COARSE_TO_FINE_FROM`` pixels are unknown (a wide unknown region), tiles otherwise.
        True / False force one or the other. See :func:`solve_trimap_coarse_to_fine`.

    Returns
    -------
    float32 [H, W] in 0..1
        Known pixels keep their trimap value (0 or 1); unknown pixels are solved.

    Raises
    ------
    TrimapError
        Every pixel unknown, or unknown pixels but no definite foreground or no definite
        background anywhere.
    ValueError
        Bad shapes, values or method.
    """
    image = as_rgb(image, "image")
    foreground, background, unknown = split_trimap(trimap)
    check_same_size(image, foreground, "image", "trimap")
    solve = _solver(method)
    if tile and tile < 16 or margin < 4:
        raise ValueError(f"tile must be 0 or >= 16 and margin >= 4, got tile={tile}, "
                         f"margin={margin}.")
    if coarse_to_fine and method != "cf":
        raise ValueError(f"coarse_to_fine works with the closed-form method 'cf' only, got "
                         f"method={method!r}; pass coarse_to_fine=None or False.")
    alpha = foreground.astype(np.float32)
    if not unknown.any():
        if progress is not None:
            progress(1, 1)
        return alpha  # all known: nothing to solve, the trimap is the answer
    _check_solvable(foreground, background, unknown)
    if coarse_to_fine is None:
        coarse_to_fine = method == "cf" and int(unknown.sum()) > COARSE_TO_FINE_FROM
    if coarse_to_fine:
        return solve_trimap_coarse_to_fine(image, trimap, coarsest_unknown=COARSEST_UNKNOWN,
                                           progress=progress)
    rows, cols = np.nonzero(unknown)
    box = (int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1)
    step = tile if tile else max(box[1] - box[0], box[3] - box[2])
    windows = [(core, window) for core, window in _tile_windows(box, unknown.shape, step, margin)
               if unknown[core].any()]
    values = np.where(unknown, 0.5, foreground.astype(np.float32)).astype(np.float32)
    for done, (core, window) in enumerate(windows, 1):
        # A window needs both kinds of known pixel; grow it until it has them.
        grow = margin
        while not (foreground[window].any() and background[window].any()):
            window = _grow(window, unknown.shape, grow)
            grow *= 2
        solved = _solve_window(solve, image[window], values[window])
        local = (slice(core[0].start - window[0].start, core[0].stop - window[0].start),
                 slice(core[1].start - window[1].start, core[1].stop - window[1].start))
        keep = unknown[core]
        alpha[core][keep] = np.clip(solved[local][keep], 0.0, 1.0)
        if progress is not None:
            progress(done, len(windows))
    return alpha


def _trimap_levels(image, foreground, background, coarsest_unknown: int):
    """Image pyramid (finest first) of (image, foreground, background), halved while more
    than ``coarsest_unknown`` pixels are unknown. A coarse pixel is known only when every
    fine pixel under it is known with the same label, so the coarse trimap never claims more
    than the fine one."""
    import cv2

    levels = [(image, foreground, background)]
    while True:
        image, foreground, background = levels[-1]
        height, width = foreground.shape
        if int((~(foreground | background)).sum()) <= coarsest_unknown or min(height, width) < 2 * SMALLEST_LEVEL:
            return levels
        size = ((width + 1) // 2, (height + 1) // 2)
        coarse_image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        coarse_fg = cv2.resize(foreground.astype(np.float32), size, interpolation=cv2.INTER_AREA) >= 1.0 - 1e-6
        coarse_bg = cv2.resize(background.astype(np.float32), size, interpolation=cv2.INTER_AREA) >= 1.0 - 1e-6
        if not (coarse_fg.any() and coarse_bg.any()):
            return levels  # a thin foreground or background vanishes: solve at this level
        levels.append((coarse_image, coarse_fg, coarse_bg))


def _solve_cf_level(image, known, values, start) -> np.ndarray:
    """Closed-form alpha with ``known`` pixels fixed to ``values``: pymatting's Laplacian,
    incomplete-Cholesky preconditioner and conjugate gradients, started from ``start``
    (the upsampled coarser alpha) where given."""
    import contextlib
    import io
    import warnings

    from pymatting import cf_laplacian, cg, ichol

    known_flat = known.ravel()
    unknown_flat = ~known_flat
    laplacian = cf_laplacian(image.astype(np.float64), is_known=known_flat)
    inner = laplacian[unknown_flat][:, unknown_flat]
    rhs = -laplacian[unknown_flat][:, known_flat].dot(values.ravel()[known_flat])
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # ichol's shift-and-retry notes
        preconditioner = ichol(inner)
    x0 = None if start is None else start.ravel()[unknown_flat].astype(np.float64)
    solved = values.astype(np.float64).ravel()
    solved[unknown_flat] = cg(inner, rhs, x0=x0, M=preconditioner)
    return np.clip(solved, 0.0, 1.0).reshape(known.shape)


def solve_trimap_coarse_to_fine(image, trimap, *, coarsest_unknown: int = COARSEST_UNKNOWN,
                                confident: float = CONFIDENT_ALPHA, progress=None) -> np.ndarray:
    """Closed-form alpha for trimaps with a wide unknown region, coarse to fine.

    The scheme of Levin et al.'s closed-form matting code (``solveAlphaC2F``): halve image
    and trimap until at most ``coarsest_unknown`` pixels are unknown, solve that level, then
    at each finer level fix the pixels whose upsampled alpha is within ``confident`` of 0 or
    1 over their whole 3x3 window and solve the rest, starting from the upsampled alpha.
    Time grows about linearly with the unknown pixels; the result differs from a one-level
    solve where the coarse level is confident (see docs/matting.md for the measured SAD).

    Parameters
    ----------
    image, trimap : as for :func:`solve_trimap`
    coarsest_unknown : int >= 100
        Unknown pixels at which halving stops.
    confident : float in [0, 0.5)
        Distance from 0 or 1 under which an upsampled alpha is fixed at the finer level
        (0 fixes nothing new: every level re-solves the whole unknown region).
    progress : callable, optional
        ``progress(levels done, levels total)`` after each level (monotonic, ends at total).

    Returns
    -------
    float32 [H, W] in 0..1; known trimap pixels keep 0 or 1.
    """
    import cv2
    from scipy import ndimage

    image = as_rgb(image, "image")
    foreground, background, unknown = split_trimap(trimap)
    check_same_size(image, foreground, "image", "trimap")
    if isinstance(coarsest_unknown, bool) or not isinstance(coarsest_unknown, int) or coarsest_unknown < 100:
        raise ValueError(f"coarsest_unknown must be a whole number >= 100, got {coarsest_unknown!r}.")
    if not 0.0 <= float(confident) < 0.5:
        raise ValueError(f"confident must be in [0, 0.5), got {confident!r}.")
    if not unknown.any():
        if progress is not None:
            progress(1, 1)
        return foreground.astype(np.float32)
    _check_solvable(foreground, background, unknown)
    levels = _trimap_levels(image, foreground, background, coarsest_unknown)
    window = np.ones((3, 3), bool)  # the closed-form Laplacian's window
    alpha = None
    for done, (level_image, level_fg, level_bg) in enumerate(reversed(levels), 1):
        known = level_fg | level_bg
        values = level_fg.astype(np.float64)
        start = None
        if alpha is not None:
            height, width = known.shape
            start = cv2.resize(alpha.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
            sure_fg = ndimage.binary_erosion(start >= 1.0 - confident, window, border_value=1)
            sure_bg = ndimage.binary_erosion(start <= confident, window, border_value=1)
            if confident > 0:
                values = np.where(level_fg | (sure_fg & ~level_bg), 1.0, 0.0)
                known = known | sure_fg | sure_bg
        alpha = values if known.all() else _solve_cf_level(level_image, known, values, start)
        if progress is not None:
            progress(done, len(levels))
    return np.asarray(alpha, np.float32)


def estimate_foreground(image, alpha, *, regularization: float = 1e-5) -> np.ndarray:
    """Foreground colour for clean composites (pymatting's fast multi-level estimation).

    Parameters
    ----------
    image : [H, W, 3] in 0..1, alpha : [H, W] in 0..1

    Returns
    -------
    float32 [H, W, 3] in 0..1: F with ``image ~= alpha F + (1 - alpha) B`` and F smooth where
    alpha is small (no background colour bleeding into the edges).
    """
    image = as_rgb(image, "image")
    alpha = as_alpha(alpha, "alpha")
    check_same_size(image, alpha, "image", "alpha")
    from pymatting import estimate_foreground_ml

    fg = estimate_foreground_ml(image.astype(np.float64), alpha.astype(np.float64),
                                regularization=regularization)
    return np.clip(fg, 0.0, 1.0).astype(np.float32)


def unknown_error(pred_alpha, true_alpha, trimap) -> dict:
    """SAD (sum |error| / 1000) and MSE of ``pred_alpha`` over the trimap's unknown region."""
    pred = as_alpha(pred_alpha, "pred_alpha")
    true = as_alpha(true_alpha, "true_alpha")
    _, _, unknown = split_trimap(trimap)
    diff = (pred.astype(np.float64) - true)[unknown]
    if diff.size == 0:
        return {"sad": 0.0, "mse": 0.0, "pixels": 0}
    return {"sad": float(np.abs(diff).sum() / 1000.0), "mse": float(np.mean(diff ** 2)),
            "pixels": int(diff.size)}

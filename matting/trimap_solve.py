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

from ..refine.validation import as_alpha, as_rgb, check_same_size

__all__ = ["METHODS", "TrimapError", "split_trimap", "solve_trimap", "estimate_foreground",
           "unknown_error"]

#: Solver names -> pymatting function names.
METHODS = {"cf": "estimate_alpha_cf", "knn": "estimate_alpha_knn", "lkm": "estimate_alpha_lkm",
           "lbdm": "estimate_alpha_lbdm", "rw": "estimate_alpha_rw"}

#: pymatting's thresholds: <= BG_LEVEL background, >= FG_LEVEL foreground, between unknown.
BG_LEVEL, FG_LEVEL = 0.1, 0.9


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


def solve_trimap(image, trimap, *, method: str = "cf", tile: int = 256, margin: int = 24,
                 progress=None) -> np.ndarray:
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
        Called with (tiles done, tiles total) after each solved tile.

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
    alpha = foreground.astype(np.float32)
    if not unknown.any():
        return alpha  # all known: nothing to solve, the trimap is the answer
    if not (foreground.any() or background.any()):
        raise TrimapError("the trimap is unknown everywhere: mark some definite foreground "
                          "(white) and background (black), e.g. with a trimap made from a "
                          "mask with a band.")
    if not foreground.any() or not background.any():
        missing = "foreground (white, >= 0.9)" if not foreground.any() else "background (black, <= 0.1)"
        raise TrimapError(f"the trimap has unknown pixels but no definite {missing}; "
                          "the solver has nothing to propagate from. Mark some, or fill the "
                          "unknown region yourself.")
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

"""Pictures that show where an alpha matte is semi-transparent and what refinement changed.

The paper ("Efficient Portrait Matte Creation With Layer Diffusion and Connectivity Priors")
illustrates Layer Diffusion's alpha errors with two kinds of picture: ``alpha-bar``, the
pixels whose 8-bit alpha is neither 0 nor 255 (white on black), and ``alpha-bar_h``, the same
with the erroneous ones in red. This module draws those, an error map (the portrait, dimmed
and desaturated, with the changed pixels in pure red) and a four-up panel for reports and the
ComfyUI preview. Where refinement could not judge a region and kept it as decoded
(``RefineResult.uncertain``: a veil or a dimming blotch, the prior cannot tell), the views
that mark pixels show it in its own colour, :data:`UNCERTAIN_CYAN`. It also holds the pack's one
transparency checkerboard (:func:`checkerboard`, :func:`checker_composite`) and the one legend
per mark colour (:data:`RED_LEGEND` in :data:`ERROR_RED`, :data:`UNCERTAIN_LEGEND` in
:data:`UNCERTAIN_CYAN`), which the contact sheets of ``dataset/sheet.py`` use too.

Every function returns float32 RGB ``[H, W, 3]`` in 0..1 (the panel is wider) and never
modifies its inputs.
"""
from __future__ import annotations

import cv2
import numpy as np

from .validation import HALF_CODE, as_alpha, as_mask, as_rgb, check_same_size

__all__ = [
    "checkerboard",
    "checker_cell",
    "checker_composite",
    "CHECKER_SHADES",
    "RED_LEGEND",
    "ALPHA_BAR_H_TITLE",
    "alpha_bar_view",
    "inverse_alpha_view",
    "semi_transparent",
    "composite",
    "error_map",
    "alpha_bar_error_view",
    "error_panel",
    "ERROR_RED",
    "PANEL_TITLES",
    "UNCERTAIN_CYAN",
    "UNCERTAIN_LEGEND",
    "PANEL_TITLES_WITH_UNCERTAIN",
    "LEGEND_COLOURS",
]

#: Colour of erroneous / changed pixels (pure red, RGB).
ERROR_RED = (1.0, 0.0, 0.0)
#: Colour of uncertain pixels (kept as decoded, unjudged): a saturated cyan, far from red, from
#: the white and black of alpha-bar and from the dimmed grey portrait of the error map.
UNCERTAIN_CYAN = (0.0, 0.8, 1.0)

#: Legend for :data:`ERROR_RED` on every picture that marks pixels in red; it is written in
#: that red (error panel labels and contact sheet column titles alike).
RED_LEGEND = "red: corrected"
#: Title of the paper's alpha-bar_h view, with the legend.
ALPHA_BAR_H_TITLE = f"alpha-bar_h ({RED_LEGEND})"

#: Legend for :data:`UNCERTAIN_CYAN`, written in that cyan wherever uncertain pixels are drawn.
UNCERTAIN_LEGEND = "cyan: uncertain"
#: Each legend and the colour its text is written in.
LEGEND_COLOURS = {RED_LEGEND: ERROR_RED, UNCERTAIN_LEGEND: UNCERTAIN_CYAN}

#: Panel titles drawn by :func:`error_panel` when ``labels=True``, left to right.
PANEL_TITLES = ("raw composite", ALPHA_BAR_H_TITLE, f"error map ({RED_LEGEND})",
                "refined composite")
#: The same when the panel shows uncertain pixels: their legend on a second line.
PANEL_TITLES_WITH_UNCERTAIN = (PANEL_TITLES[0], f"{PANEL_TITLES[1]}\n{UNCERTAIN_LEGEND}",
                               f"{PANEL_TITLES[2]}\n{UNCERTAIN_LEGEND}", PANEL_TITLES[3])

#: The checkerboard's two grey shades (cell with even ``row // cell + col // cell`` first).
CHECKER_SHADES = (0.62, 0.80)


# Error map: how much of the colour is kept (the rest becomes gray luminance) and the overall
# brightness, so that no portrait colour competes with the pure red marks.
_KEEP_COLOUR = 0.35
_DIM = 0.7

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601 weights, RGB order


def semi_transparent(alpha) -> np.ndarray:
    """Pixels that are neither transparent nor opaque at 8-bit precision.

    Parameters
    ----------
    alpha : ndarray [H, W]
        Alpha in 0..1 (float) or uint8/uint16/bool.

    Returns
    -------
    ndarray, bool [H, W]
        True where ``0.5/255 < alpha < 1 - 0.5/255``, i.e. where the alpha written as 8-bit
        would be neither 0 nor 255.
    """
    alpha = as_alpha(alpha, "alpha")
    return (alpha > HALF_CODE) & (alpha < 1.0 - HALF_CODE)


def checkerboard(height: int, width: int, cell: int = 16, shades=CHECKER_SHADES) -> np.ndarray:
    """Grey transparency checkerboard (the one the pack draws everywhere).

    Parameters
    ----------
    height, width : int
        Size in pixels (>= 1).
    cell : int
        Side of each square in pixels (>= 1).
    shades : (float, float)
        The two greys in 0..1 (default :data:`CHECKER_SHADES`).

    Returns
    -------
    ndarray, float32 [height, width, 3] in 0..1
        ``shades[0]`` where ``(row // cell + col // cell)`` is even, else ``shades[1]``;
        grey (all three channels equal).
    """
    for name, value in (("height", height), ("width", width), ("cell", cell)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"checkerboard {name} must be a whole number >= 1, got {value!r}.")
    rows = (np.arange(height) // cell)[:, None]
    cols = (np.arange(width) // cell)[None, :]
    grays = np.asarray(shades, np.float32)
    return np.repeat(grays[(rows + cols) % 2][..., None], 3, axis=2)


def checker_cell(height: int, width: int) -> int:
    """Checker square size for a picture: 1/24 of its short side, at least 4 pixels."""
    return max(4, min(int(height), int(width)) // 24)


def checker_composite(rgb, alpha, *, cell: int | None = None) -> np.ndarray:
    """The foreground over :func:`checkerboard` with ``alpha``: holes and speckle in the
    alpha show as checkerboard where the portrait should be solid.

    Parameters
    ----------
    rgb : ndarray [H, W, 3]
        Foreground colour, float 0..1 or uint8/uint16.
    alpha : ndarray [H, W]
        Alpha in 0..1, 1 = opaque.
    cell : int or None
        Checker square size; default :func:`checker_cell` of the picture.

    Returns
    -------
    ndarray, float32 [H, W, 3] in 0..1
    """
    rgb, alpha = _rgb_and_alpha(rgb, alpha)
    height, width = alpha.shape
    board = checkerboard(height, width, checker_cell(height, width) if cell is None else cell)
    return _composite(rgb, alpha, board)


def _rgb_and_alpha(rgb, alpha) -> tuple[np.ndarray, np.ndarray]:
    """Validated float32 ``rgb`` [H, W, 3] and ``alpha`` [H, W] of the same size."""
    rgb = as_rgb(rgb, "rgb")
    alpha = as_alpha(alpha, "alpha")
    check_same_size(rgb, alpha, "rgb", "alpha")
    return rgb, alpha


def _colour_triplet(colour, name: str) -> np.ndarray:
    value = np.asarray(colour, dtype=np.float64)
    if value.shape != (3,) or not np.isfinite(value).all() or value.min() < 0 or value.max() > 1:
        raise ValueError(f"{name} must be three numbers in 0..1 (R, G, B); got {colour!r}.")
    return value.astype(np.float32)


def _gray(values: np.ndarray) -> np.ndarray:
    """[H, W] float -> [H, W, 3] float32 gray."""
    return np.repeat(values.astype(np.float32, copy=False)[..., None], 3, axis=2)


def alpha_bar_view(alpha) -> np.ndarray:
    """The paper's ``alpha-bar``: :func:`semi_transparent` (same ``alpha`` input) as a picture,
    float32 [H, W, 3] in 0..1: 1 (white) where the 8-bit alpha is neither 0 nor 255, 0 (black)
    elsewhere."""
    return _gray(semi_transparent(alpha))


def inverse_alpha_view(alpha) -> np.ndarray:
    """The inverse alpha (``1 - alpha``) as a gray picture, float32 [H, W, 3] in 0..1:
    background white, portrait black. ``alpha`` is taken as by :func:`semi_transparent`."""
    alpha = as_alpha(alpha, "alpha")
    return _gray(np.float32(1.0) - alpha)


def composite(rgb, alpha, *, background=(0.5, 0.5, 0.5)) -> np.ndarray:
    """Alpha-composite the foreground over a flat background colour.

    Parameters
    ----------
    rgb : ndarray [H, W, 3]
        Foreground colour (straight, not premultiplied), float 0..1 or uint8/uint16.
    alpha : ndarray [H, W]
        Alpha in 0..1, 1 = opaque; same size as ``rgb``.
    background : sequence of 3 floats in 0..1
        Background RGB.

    Returns
    -------
    ndarray, float32 [H, W, 3] in 0..1
        ``rgb * alpha + background * (1 - alpha)``.
    """
    rgb, alpha = _rgb_and_alpha(rgb, alpha)
    return _composite(rgb, alpha, _colour_triplet(background, "background"))


def _composite(rgb: np.ndarray, alpha: np.ndarray, background: np.ndarray) -> np.ndarray:
    """``rgb * alpha + background * (1 - alpha)``; ``background`` is [3] or [H, W, 3]."""
    weight = alpha[..., None]
    out = rgb * weight
    out += background * (np.float32(1.0) - weight)
    return np.clip(out, 0.0, 1.0, out=out)


def error_map(rgb, alpha, changed, *, uncertain=None, background=(0.5, 0.5, 0.5)) -> np.ndarray:
    """The portrait over a neutral background, dimmed, with the changed pixels in pure red
    and the uncertain ones in cyan.

    Parameters
    ----------
    rgb : ndarray [H, W, 3]
        Foreground colour, float 0..1 or uint8/uint16.
    alpha : ndarray [H, W]
        Alpha in 0..1 used for the composite (1 = opaque); same size as ``rgb``.
    changed : ndarray [H, W], bool or 0/1 numbers
        Pixels to mark (for example ``RefineResult.changed``).
    uncertain : ndarray [H, W], bool or 0/1 numbers, optional
        Pixels refinement kept unjudged (``RefineResult.uncertain``).
    background : sequence of 3 floats in 0..1
        Background RGB behind the portrait (before dimming).

    Returns
    -------
    ndarray, float32 [H, W, 3] in 0..1
        Unmarked pixels: the composite, mostly desaturated (35 % of its colour kept) and
        dimmed to 70 % brightness, so that nothing in it is as saturated as the marks.
        Changed pixels: exactly ``ERROR_RED`` (1, 0, 0); uncertain pixels that are not changed:
        exactly ``UNCERTAIN_CYAN``.

    Raises
    ------
    ValueError
        Sizes differ, ``changed`` or ``uncertain`` is not a 2-D bool / 0-1 mask, or a colour is
        out of range.
    """
    rgb, alpha = _rgb_and_alpha(rgb, alpha)
    mask = as_mask(changed, alpha.shape)
    unsure = _optional_mask(uncertain, alpha.shape)
    picture = _composite(rgb, alpha, _colour_triplet(background, "background"))
    luma = picture @ _LUMA
    picture *= np.float32(_KEEP_COLOUR)
    picture += (np.float32(1.0 - _KEEP_COLOUR) * luma)[..., None]
    picture *= np.float32(_DIM)
    np.clip(picture, 0.0, 1.0, out=picture)
    _mark(picture, mask, unsure)
    return picture


def _optional_mask(mask, shape) -> np.ndarray | None:
    """``as_mask`` of an optional mask (None stays None)."""
    return None if mask is None else as_mask(mask, shape)


def _mark(picture: np.ndarray, changed: np.ndarray, uncertain: np.ndarray | None) -> None:
    """Paint uncertain pixels cyan, then changed ones red (red wins where both are set)."""
    if uncertain is not None:
        picture[uncertain] = UNCERTAIN_CYAN
    picture[changed] = ERROR_RED


def alpha_bar_error_view(raw_alpha, changed, uncertain=None) -> np.ndarray:
    """The paper's ``alpha-bar_h``: semi-transparent pixels white, erroneous ones red, on black
    (and, beyond the paper, the uncertain ones cyan).

    Parameters
    ----------
    raw_alpha : ndarray [H, W]
        Alpha before refinement, 0..1 float or uint8/uint16/bool.
    changed : ndarray [H, W], bool or 0/1 numbers
        The erroneous pixels (those refinement changed); same size as ``raw_alpha``.
    uncertain : ndarray [H, W], bool or 0/1 numbers, optional
        Pixels refinement kept unjudged (``RefineResult.uncertain``).

    Returns
    -------
    ndarray, float32 [H, W, 3] in 0..1
        Red (1, 0, 0) where ``changed`` (including errors that were fully 0 or 1, such as
        pinholes); ``UNCERTAIN_CYAN`` where ``uncertain`` and not changed; white where
        ``raw_alpha`` is semi-transparent at 8-bit precision and neither; black elsewhere.
    """
    alpha = as_alpha(raw_alpha, "raw_alpha")
    mask = as_mask(changed, alpha.shape)
    unsure = _optional_mask(uncertain, alpha.shape)
    picture = _gray(semi_transparent(alpha))
    _mark(picture, mask, unsure)
    return picture


def _text_coverage(shape: tuple[int, int], text: str, origin: tuple[int, int], scale: float,
                   thickness: int) -> np.ndarray:
    """Anti-aliased coverage (float32 [h, w], 0..1) of ``text`` drawn with cv2.putText.

    Drawn on an 8-bit canvas because OpenCV 5 only draws text into 8-bit images."""
    canvas = np.zeros(shape, np.uint8)
    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, 255, thickness, cv2.LINE_AA)
    return canvas.astype(np.float32)[..., None] / np.float32(255.0)


def _draw_label(picture: np.ndarray, text: str) -> None:
    """Write ``text`` in the top-left corner of a float RGB picture, in place: white letters
    with a black outline over a darkened box, so it reads on any content; each line of the
    text (``\n`` separates them) goes below the previous one, and the legends of
    :data:`LEGEND_COLOURS` in it are written in their colours. The size follows the picture
    width; pictures too small to hold legible text get no label."""
    height, width = picture.shape[:2]
    lines = text.split("\n")
    scale = float(np.clip(width / 640.0, 0.3, 1.5))
    thickness = max(1, int(round(scale * 1.5)))
    font = cv2.FONT_HERSHEY_SIMPLEX
    sizes = [cv2.getTextSize(line, font, scale, thickness) for line in lines]
    text_h = max(size[0][1] for size in sizes)
    baseline = max(size[1] for size in sizes)
    text_w = max(size[0][0] for size in sizes)
    margin = max(2, int(round(6 * scale)))
    line_h = text_h + baseline + margin
    box_h, box_w = len(lines) * line_h + margin, min(width, text_w + 2 * margin)
    if box_h > height or width < 4 * margin:
        return
    box = picture[:box_h, :box_w]
    outline = np.zeros((box_h, box_w, 1), np.float32)
    letters = np.zeros((box_h, box_w, 1), np.float32)
    colour = np.ones((box_h, box_w, 3), np.float32)
    for number, line in enumerate(lines):
        top = number * line_h
        origin = (margin, top + margin + text_h)
        np.maximum(outline, _text_coverage((box_h, box_w), line, origin, scale, thickness + 2), out=outline)
        np.maximum(letters, _text_coverage((box_h, box_w), line, origin, scale, thickness), out=letters)
        for legend, legend_colour in LEGEND_COLOURS.items():
            start = line.find(legend)
            if start < 0:
                continue
            # colour the legend's letters: the columns from the end of the text before it to
            # the end of the legend (to the box's edge when the legend ends the line)
            before_w = cv2.getTextSize(line[:start], font, scale, thickness)[0][0] if start else 0
            end = start + len(legend)
            end_w = cv2.getTextSize(line[:end], font, scale, thickness)[0][0] if end < len(line) else box_w
            colour[top: top + line_h, margin + before_w: margin + end_w] = legend_colour
    box *= np.float32(0.45)
    box *= np.float32(1.0) - outline
    box *= np.float32(1.0) - letters
    box += letters * colour


def error_panel(rgb, raw_alpha, refined_alpha, changed, *, uncertain=None, labels: bool = True,
                background=(0.5, 0.5, 0.5), gap: int | None = None) -> np.ndarray:
    """Four pictures side by side: raw composite, alpha-bar_h, error map, refined composite.

    Parameters
    ----------
    rgb : ndarray [H, W, 3]
        Foreground colour, float 0..1 or uint8/uint16.
    raw_alpha : ndarray [H, W]
        Alpha before refinement (0..1, 1 = opaque).
    refined_alpha : ndarray [H, W]
        Alpha after refinement.
    changed : ndarray [H, W], bool or 0/1 numbers
        Pixels refinement changed.
    uncertain : ndarray [H, W], bool or 0/1 numbers, optional
        Pixels refinement kept unjudged (``RefineResult.uncertain``): cyan in alpha-bar_h and
        the error map, whose titles then carry :data:`UNCERTAIN_LEGEND` on a second line.
    labels : bool
        Write a short title in the top-left corner of each picture (``PANEL_TITLES``, or
        ``PANEL_TITLES_WITH_UNCERTAIN`` when ``uncertain`` is given).
    background : sequence of 3 floats in 0..1
        Background colour of the refined composite and the error map.
    gap : int or None
        Width in pixels of the white separators between pictures; default ``max(2, W // 128)``.

    Returns
    -------
    ndarray, float32 [H, 4 * W + 3 * gap, 3] in 0..1
        Left to right: :func:`checker_composite` of ``rgb`` with ``raw_alpha`` (as on the
        contact sheet: holes show as checkerboard);
        :func:`alpha_bar_error_view` of ``raw_alpha``; :func:`error_map` with ``raw_alpha``
        (the errors shown on the portrait they came from); ``rgb`` over ``background`` with
        ``refined_alpha``.

    Raises
    ------
    ValueError
        Sizes differ, ``changed`` is not a 2-D bool / 0-1 mask, or a colour/gap is invalid.
    """
    rgb = as_rgb(rgb, "rgb")
    raw = as_alpha(raw_alpha, "raw_alpha")
    refined = as_alpha(refined_alpha, "refined_alpha")
    check_same_size(rgb, raw, "rgb", "raw_alpha")
    check_same_size(raw, refined, "raw_alpha", "refined_alpha")
    mask = as_mask(changed, raw.shape)
    unsure = _optional_mask(uncertain, raw.shape)
    back = _colour_triplet(background, "background")
    height, width = raw.shape
    if gap is None:
        gap = max(2, width // 128)
    if isinstance(gap, bool) or not isinstance(gap, (int, np.integer)) or gap < 0:
        raise ValueError(f"gap must be a non-negative whole number of pixels; got {gap!r}.")

    pictures = (
        checker_composite(rgb, raw),
        alpha_bar_error_view(raw, mask, unsure),
        error_map(rgb, raw, mask, uncertain=unsure, background=back),
        _composite(rgb, refined, back),
    )
    titles = PANEL_TITLES if unsure is None else PANEL_TITLES_WITH_UNCERTAIN
    panel = np.ones((height, 4 * width + 3 * gap, 3), np.float32)
    for index, picture in enumerate(pictures):
        left = index * (width + gap)
        if labels:  # on the separate contiguous picture: cv2 cannot draw into a strided view
            _draw_label(picture, titles[index])
        panel[:, left: left + width] = picture
    return panel

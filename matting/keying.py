"""Chroma keying of green- and blue-screen portraits: colour-difference alpha with a clean plate.

The classic Vlahos colour difference: for a green screen the "screen signal" of a pixel is
``d(c) = G - max(R, B)`` (for blue, ``B - max(R, G)``; in general the key's dominant channel
minus the larger of the two others). A mixed pixel ``c = a F + (1 - a) S`` of a subject that is
not itself green (``d(F) <= 0``) has ``d(c) ~= (1 - a) d(S)``, so ``a = 1 - d(c) / d(S)``.

Screens are never evenly lit. As in IBK keyers, ``d(S)`` is not one number but a per-pixel
*clean plate*: the screen colour is measured where the screen is clearly visible and spread
smoothly under the subject (:func:`estimate_screen_plate`), so a screen that is twice as bright
in one corner still keys to alpha 0 there, and a dim corner does not turn semi-opaque. The
plate is then re-measured where the key says clear screen (``plate_passes``), so screen seen
through hair does not darken the plate under the hair.

Then ``clip_black`` / ``clip_white`` stretch the raw matte (values below clip black become 0,
above clip white 1: screen noise and subject noise; the clip black rises with the local noise
of the matte, :func:`noise_clip_black`), the foreground colour is un-mixed from
the plate (``F = S + (c - S) / a``), spill is suppressed on it (the key channel is limited to
the larger other channel, by ``spill_strength``), and an optional Gaussian edge softness is
applied to the alpha.

Everything here is numpy / OpenCV; no file or host access.
"""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from ..base.padding import pad_foreground
from ..base.validation import as_alpha, as_rgb
from .params import KeyParams

__all__ = ["KeyParams", "KeyResult", "chroma_key", "estimate_key_colour", "estimate_screen_plate",
           "screen_signal", "noise_clip_black", "green_excess", "parse_key_colour",
           "checker_preview"]

#: Named key colours accepted by :func:`parse_key_colour` (typical chroma green / blue).
NAMED_KEYS = {"green": (0.0, 0.694, 0.251), "blue": (0.0, 0.278, 0.733)}


@dataclasses.dataclass
class KeyResult:
    """What :func:`chroma_key` returns.

    Attributes
    ----------
    foreground : float32 [H, W, 3]   spill-suppressed foreground colour, padded where alpha is 0
    alpha : float32 [H, W]           1 = opaque subject
    preview : float32 [H, W, 3]      the foreground over a grey checkerboard
    plate : float32 [H, W, 3]        the clean plate (screen colour estimated under the subject)
    key_colour : tuple               the key colour used (RGB 0..1)
    stats : dict                     measures for the dataset meta (JSON-able)
    """

    foreground: np.ndarray
    alpha: np.ndarray
    preview: np.ndarray
    plate: np.ndarray
    key_colour: tuple
    stats: dict


def _check_key(colour) -> np.ndarray:
    key = np.asarray(colour, np.float64).reshape(-1)
    if key.size != 3 or not np.all(np.isfinite(key)) or key.min() < 0 or key.max() > 1:
        raise ValueError(f"key colour must be three numbers R, G, B in 0..1, got {colour!r}.")
    ordered = np.sort(key)
    if ordered[2] - ordered[1] < 0.08:
        raise ValueError(
            f"key colour {tuple(round(float(v), 3) for v in key)} has no dominant channel (green "
            "or blue screen expected): colour-difference keying needs one channel clearly above "
            "the other two.")
    return key


def parse_key_colour(text) -> tuple | None:
    """``'auto'`` / ``''`` -> None; ``'green'`` / ``'blue'``; ``'#00b140'``; ``'0,177,64'``
    (0..255) or ``'0.0,0.69,0.25'`` (0..1) -> RGB tuple in 0..1.

    Raises
    ------
    ValueError
        Text that is none of these, or a colour without a dominant channel.
    """
    value = str(text if text is not None else "").strip().lower()
    if value in ("", "auto", "border"):
        return None
    if value in NAMED_KEYS:
        return NAMED_KEYS[value]
    try:
        if value.startswith("#") and len(value) == 7:
            rgb = tuple(int(value[i:i + 2], 16) / 255.0 for i in (1, 3, 5))
        else:
            parts = [float(p) for p in value.replace(";", ",").split(",")]
            if len(parts) != 3:
                raise ValueError
            scale = 255.0 if max(parts) > 1.0 else 1.0
            rgb = tuple(p / scale for p in parts)
    except ValueError:
        raise ValueError(f"key colour {text!r} not understood: use auto, green, blue, #RRGGBB, "
                         "R,G,B in 0..255 or R,G,B in 0..1.") from None
    _check_key(rgb)
    return tuple(float(v) for v in rgb)


def _channels(key) -> tuple[int, int, int]:
    """(dominant channel, other, other) of a key colour."""
    primary = int(np.argmax(key))
    others = [c for c in range(3) if c != primary]
    return primary, others[0], others[1]


def screen_signal(rgb: np.ndarray, key) -> np.ndarray:
    """Colour difference ``c_p - max(c_o1, c_o2)`` (Vlahos) for the key's dominant channel p.

    Parameters
    ----------
    rgb : float32 [..., 3] in 0..1
    key : RGB triple; only which channel dominates matters.

    Returns
    -------
    float32 [...]: positive on the screen, <= 0 on a subject that is not key-coloured.
    """
    p, o1, o2 = _channels(key)
    return rgb[..., p] - np.maximum(rgb[..., o1], rgb[..., o2])


def _border_ring(shape, border: int) -> np.ndarray:
    ring = np.zeros(shape, bool)
    ring[:border], ring[-border:], ring[:, :border], ring[:, -border:] = True, True, True, True
    return ring


def estimate_key_colour(rgb, border: int | None = None) -> tuple:
    """The screen colour, measured on the image border.

    The border ring's pixels are split by their dominant channel; the larger of the green and
    the blue groups is the screen, and its median colour (of the pixels with the strongest
    colour difference, so a subject touching the border does not pull it) is returned.

    Parameters
    ----------
    rgb : ndarray [H, W, 3], 0..1
    border : int, optional
        Ring width in pixels (default 3% of the shorter side, at least 2).

    Returns
    -------
    tuple of 3 floats in 0..1

    Raises
    ------
    ValueError
        The border shows no green or blue screen (then give the key colour explicitly).
    """
    rgb = as_rgb(rgb, "image")
    height, width = rgb.shape[:2]
    if border is None:
        border = max(2, int(round(0.03 * min(height, width))))
    border = int(min(border, max(1, min(height, width) // 2)))
    pixels = rgb[_border_ring((height, width), border)]
    best = None
    for channel in (1, 2):  # green, blue
        others = [c for c in range(3) if c != channel]
        diff = pixels[:, channel] - np.maximum(pixels[:, others[0]], pixels[:, others[1]])
        selected = diff > 0.05
        if best is None or selected.sum() > best[0]:
            best = (int(selected.sum()), channel, diff, selected)
    count, channel, diff, selected = best
    if count < max(8, 0.2 * len(pixels)):
        raise ValueError(
            "cannot find a green or blue screen on the image border (less than 20% of the border "
            "pixels are green or blue); give the key colour explicitly, e.g. '#00b140'.")
    strong = diff >= np.quantile(diff[selected], 0.5)
    colour = np.median(pixels[selected & strong], axis=0)
    return tuple(float(v) for v in colour)


def _smooth_fill(rgb: np.ndarray, weight: np.ndarray, work_side: int = 96) -> np.ndarray:
    """Spread ``rgb`` from pixels with weight 1 over the rest, smoothly, at low resolution.

    Normalised convolution at ``work_side`` px (the plate is a low-frequency illumination
    field), then the pack's pyramid padding fills what the convolution does not reach, then
    a cubic upsample back to full size.
    """
    height, width = weight.shape
    scale = min(1.0, work_side / max(height, width))
    size = (max(4, int(round(width * scale))), max(4, int(round(height * scale))))
    small_w = cv2.resize(weight.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    small_c = cv2.resize(rgb * weight[..., None], size, interpolation=cv2.INTER_AREA)
    sigma = 1.5
    blur_w = cv2.GaussianBlur(small_w, (0, 0), sigma)
    blur_c = cv2.GaussianBlur(small_c, (0, 0), sigma)
    reached = blur_w > 0.05
    mean = np.where(reached[..., None], blur_c / np.maximum(blur_w, 1e-6)[..., None], 0.0)
    filled = pad_foreground(np.clip(mean, 0, 1).astype(np.float32), reached.astype(np.float32))
    return cv2.resize(filled, (width, height), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def estimate_screen_plate(rgb, key, *, screen_fraction: float = 0.35, passes: int = 0,
                          screen_alpha: float = 0.2, erode: int = 3) -> np.ndarray:
    """Clean plate: the screen's colour at every pixel, also behind the subject.

    Pixels whose colour difference is at least ``screen_fraction`` of the key's and whose
    hue points the key's way count as clearly visible screen; they are eroded by one pixel
    (no subject edges) and their colour is spread smoothly (:func:`_smooth_fill`).

    Then ``passes`` refinement passes: key with the current plate, take as screen only the
    pixels keyed below ``screen_alpha`` (eroded by ``erode`` px) and fill again. The first
    estimate's threshold also admits screen seen through thin hair, whose colour difference
    is lower; a plate measured there is too dim under the hair, and the hair keys too
    transparent. A pass that would leave fewer than 16 screen pixels is skipped.

    Returns
    -------
    float32 [H, W, 3] in 0..1
    """
    rgb = as_rgb(rgb, "image")
    key = _check_key(key)
    key_signal = float(screen_signal(key[None].astype(np.float32), key)[0])
    signal = screen_signal(rgb, key)
    screen = signal >= screen_fraction * key_signal
    screen = cv2.erode(screen.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    if screen.sum() < 16:
        return np.broadcast_to(key.astype(np.float32), rgb.shape).copy()
    plate = _smooth_fill(rgb, screen.astype(np.float32)).astype(np.float32)
    kernel = np.ones((2 * erode + 1, 2 * erode + 1), np.uint8)
    for _ in range(int(passes)):
        raw = 1.0 - signal / np.maximum(screen_signal(plate, key), 0.02)
        screen = raw < screen_alpha
        if erode > 0:
            screen = cv2.erode(screen.astype(np.uint8), kernel).astype(bool)
        if screen.sum() < 16:
            break
        plate = _smooth_fill(rgb, screen.astype(np.float32)).astype(np.float32)
    return plate


def green_excess(rgb, alpha, key=(0.0, 1.0, 0.0), *, min_alpha: float = 0.05) -> float:
    """Alpha-weighted mean key-colour excess ``max(0, c_p - max(c_o1, c_o2))`` on a subject.

    Measures spill: 0 for a subject without any green (or blue for a blue key) cast.

    Parameters
    ----------
    rgb : [H, W, 3] in 0..1, alpha : [H, W] in 0..1
    key : RGB triple choosing the channel (green by default)
    min_alpha : pixels with less alpha are ignored.
    """
    rgb = as_rgb(rgb, "rgb")
    alpha = as_alpha(alpha, "alpha")
    weight = np.where(alpha >= min_alpha, alpha, 0.0)
    excess = np.maximum(screen_signal(rgb, np.asarray(key, np.float32)), 0.0)
    total = float(weight.sum())
    return float((excess * weight).sum() / total) if total > 0 else 0.0


def checker_preview(foreground: np.ndarray, alpha: np.ndarray, cell: int | None = None) -> np.ndarray:
    """``foreground`` over a grey checkerboard (float32 [H, W, 3])."""
    height, width = alpha.shape
    cell = cell or max(4, min(height, width) // 32)
    yy, xx = np.mgrid[0:height, 0:width]
    board = np.where(((yy // cell + xx // cell) % 2) == 0, 0.78, 0.58).astype(np.float32)
    a = alpha[..., None]
    return (foreground * a + board[..., None] * (1.0 - a)).astype(np.float32)


def _unmix_foreground(rgb, alpha, plate):
    """``F = S + (c - S) / a`` where alpha is usable; the padded rest comes later."""
    safe = np.maximum(alpha, 0.02)[..., None]
    return np.clip(plate + (rgb - plate) / safe, 0.0, 1.0).astype(np.float32)


def _suppress_spill(fg, key, strength: float) -> np.ndarray:
    """Limit the key channel to the larger other channel (``strength`` = fraction removed)."""
    if strength <= 0:
        return fg
    p, o1, o2 = _channels(key)
    limit = np.maximum(fg[..., o1], fg[..., o2])
    excess = np.maximum(fg[..., p] - limit, 0.0)
    out = fg.copy()
    out[..., p] = fg[..., p] - strength * excess
    return out


def noise_clip_black(rgb, key, raw, plate_signal, clip_black: float, sigmas: float):
    """Per-pixel clip black: ``max(clip_black, sigmas * noise / plate_signal)`` with ``noise``
    the colour difference's robust noise on the screen (``raw < 0.2``, eroded 2 px): 1.4826 x
    the median absolute deviation from a 5x5 median filter. ``sigmas <= 0``: ``clip_black``."""
    if sigmas <= 0:
        return np.float32(clip_black)
    signal = screen_signal(rgb, key).astype(np.float32)
    screen = cv2.erode((raw < 0.2).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    if screen.sum() < 64:
        return np.float32(clip_black)
    residual = (signal - cv2.medianBlur(signal, 5))[screen]
    noise = 1.4826 * float(np.median(np.abs(residual - np.median(residual))))
    return np.maximum(clip_black, sigmas * noise / plate_signal).astype(np.float32)


def chroma_key(rgb, params: KeyParams | None = None) -> KeyResult:
    """Key a green- or blue-screen image.

    Parameters
    ----------
    rgb : ndarray [H, W, 3]
        The photograph, float in 0..1 (or uint8/uint16).
    params : KeyParams, optional

    Returns
    -------
    KeyResult

    Raises
    ------
    ValueError
        Bad image or parameters, or no screen found on the border when no key colour is given.
    """
    params = (params or KeyParams()).validate()
    rgb = as_rgb(rgb, "image")
    key = np.asarray(params.key_colour if params.key_colour is not None
                     else estimate_key_colour(rgb, params.border), np.float32)
    _check_key(key)
    if params.plate:
        plate = estimate_screen_plate(rgb, key, passes=params.plate_passes,
                                      screen_alpha=params.plate_screen_alpha,
                                      erode=params.plate_erode)
    else:
        plate = np.broadcast_to(key, rgb.shape).astype(np.float32).copy()
    plate_signal = np.maximum(screen_signal(plate, key), 0.02)
    raw = 1.0 - screen_signal(rgb, key) / plate_signal
    black = noise_clip_black(rgb, key, raw, plate_signal, params.clip_black, params.noise_clip)
    span = np.maximum(params.clip_white - black, 1e-3)
    alpha = np.clip((raw - black) / span, 0.0, 1.0).astype(np.float32)
    fg = _unmix_foreground(rgb, alpha, plate)
    fg = _suppress_spill(fg, key, float(params.spill_strength))
    if params.edge_softness > 0:
        alpha = cv2.GaussianBlur(alpha, (0, 0), float(params.edge_softness)).clip(0, 1)
    fg = pad_foreground(fg, alpha)
    preview = checker_preview(fg, alpha)
    stats = {
        "key_colour": [round(float(v), 4) for v in key],
        "key_source": "given" if params.key_colour is not None else "border",
        "clip_black": float(params.clip_black), "clip_white": float(params.clip_white),
        "spill_strength": float(params.spill_strength),
        "edge_softness": float(params.edge_softness), "plate": bool(params.plate),
        "plate_passes": int(params.plate_passes),
        "noise_clip": float(params.noise_clip),
        "opaque_fraction": round(float((alpha >= 1.0).mean()), 5),
        "transparent_fraction": round(float((alpha <= 0.0).mean()), 5),
        "green_excess_before": round(green_excess(rgb, alpha, key), 5),
        "green_excess_after": round(green_excess(fg, alpha, key), 5),
    }
    return KeyResult(foreground=fg.astype(np.float32), alpha=alpha, preview=preview,
                     plate=plate, key_colour=tuple(float(v) for v in key), stats=stats)

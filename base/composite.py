"""Background compositing for training images, previews and contact sheets.

Matting datasets store a foreground colour ``F`` and an alpha; a training pipeline makes an
image ``I = F * alpha + B * (1 - alpha)`` over many backgrounds ``B``. This module does that
step and supplies backgrounds when no photographs are at hand:

``cover_crop``             scale a background to cover ``H x W`` (aspect kept), crop the centre
``composite_over``         ``fg * alpha + background * (1 - alpha)``, background fitted first
``procedural_background``  deterministic synthetic backgrounds of several kinds (:data:`KINDS`)
``background_seed``        one well-mixed seed per (seed, index) pair, for batches and sheets

Every kind is a function of ``(height, width, seed)`` only: the same arguments give the same
pixels on every machine (numpy's PCG64 generator plus deterministic OpenCV resizes and blurs).
The kinds are meant to look like what portraits are photographed or composited against
(studio backdrops, out-of-focus lights, walls, flat colour, transparency checkers), so that a
model trained on the composites sees plausible, varied context.
"""
from __future__ import annotations

import colorsys

import cv2
import numpy as np

from .validation import as_alpha, as_rgb, check_same_size

__all__ = ["KINDS", "RANDOM_KIND", "BACKGROUND_SUFFIXES", "cover_crop", "composite_over",
           "procedural_background", "background_seed", "pick_kind"]

#: File name endings of the pictures :func:`..dataset.backgrounds.list_background_files` lists.
BACKGROUND_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")

#: Procedural background kinds, in the order ``pick_kind`` draws from.
KINDS = ("gradient", "checker", "noise", "bokeh", "solid", "studio")
#: Pseudo-kind: one of :data:`KINDS` chosen from the seed.
RANDOM_KIND = "random"
#: Largest side accepted for a procedural background (keeps a typo from allocating gigabytes).
MAX_SIDE = 16384
# Procedural kinds whose structure is smooth are drawn at most this large and resized: blurred
# discs and low-frequency noise look the same, and drawing costs a fraction.
_WORK_SIDE = 512


# --------------------------------------------------------------------------------------------
# Compositing
# --------------------------------------------------------------------------------------------

def cover_crop(image, height: int, width: int) -> np.ndarray:
    """Scale ``image`` to cover ``height x width`` with its aspect kept, then crop the centre.

    Parameters
    ----------
    image : ndarray [h, w, 3]
        Background picture, float 0..1 or uint8/uint16.
    height, width : int
        Target size in pixels (>= 1).

    Returns
    -------
    ndarray, float32 [height, width, 3] in 0..1
        The whole target is covered (no borders); what sticks out on the longer axis is cut
        off equally on both sides. Downscaling uses area averaging, upscaling bilinear.
    """
    image = as_rgb(image, "background")
    height, width = _check_size(height, width)
    h, w = image.shape[:2]
    scale = max(height / h, width / w)
    new_h = max(height, int(round(h * scale)))
    new_w = max(width, int(round(w * scale)))
    if (new_h, new_w) != (h, w):
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        image = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    top, left = (new_h - height) // 2, (new_w - width) // 2
    out = image[top:top + height, left:left + width]
    return np.ascontiguousarray(np.clip(out, 0.0, 1.0), dtype=np.float32)


def composite_over(fg, alpha, background) -> np.ndarray:
    """Composite a foreground over a background: ``fg * alpha + background * (1 - alpha)``.

    Parameters
    ----------
    fg : ndarray [H, W, 3]
        Foreground colour (straight, not premultiplied; the padded ``F`` of a dataset), float
        0..1 or uint8/uint16.
    alpha : ndarray [H, W]
        Alpha, 1 = opaque foreground; same size as ``fg``.
    background : ndarray [h, w, 3]
        Any size: it is fitted with :func:`cover_crop` first (no fitting when already
        ``H x W``).

    Returns
    -------
    ndarray, float32 [H, W, 3] in 0..1
        Where alpha is 0 exactly the background, where it is 1 exactly ``fg``.
    """
    fg = as_rgb(fg, "fg")
    alpha = as_alpha(alpha, "alpha")
    check_same_size(fg, alpha, "fg", "alpha")
    background = as_rgb(background, "background")
    if background.shape[:2] != alpha.shape:
        background = cover_crop(background, *alpha.shape)
    weight = alpha[..., None]
    out = fg * weight
    out += background * (np.float32(1.0) - weight)
    return np.clip(out, 0.0, 1.0, out=out)


# --------------------------------------------------------------------------------------------
# Seeds and kinds
# --------------------------------------------------------------------------------------------

def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be a whole number, got {type(seed).__name__}.")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}.")
    return int(seed)


def _check_size(height, width) -> tuple[int, int]:
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{name} must be a whole number of pixels, got {value!r}.")
        if not 1 <= value <= MAX_SIDE:
            raise ValueError(f"{name} must be in 1..{MAX_SIDE} pixels, got {value}.")
    return int(height), int(width)


def background_seed(seed: int, index: int) -> int:
    """A seed for image ``index`` of a run with base ``seed``: well mixed, 63 bits.

    Neighbouring pairs ((0, 1) and (1, 0), or consecutive indices) give unrelated streams,
    unlike ``seed + index``.
    """
    seed, index = _check_seed(seed), _check_seed(index)
    state = np.random.SeedSequence([seed, index]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def pick_kind(seed: int) -> str:
    """The procedural kind :data:`RANDOM_KIND` stands for with this seed."""
    rng = np.random.default_rng([_check_seed(seed), 0x6B696E64])  # separate from the pixels
    return KINDS[int(rng.integers(len(KINDS)))]


# --------------------------------------------------------------------------------------------
# Procedural backgrounds
# --------------------------------------------------------------------------------------------

def _colour(rng: np.random.Generator, saturation=(0.15, 0.65), value=(0.3, 0.9)) -> np.ndarray:
    """A random colour from HSV ranges (muted by default, like real backdrops)."""
    rgb = colorsys.hsv_to_rgb(float(rng.uniform()), float(rng.uniform(*saturation)),
                              float(rng.uniform(*value)))
    return np.array(rgb, np.float32)


def _unit_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates scaled so the longer side spans 0..1 (aspect kept)."""
    side = float(max(height, width))
    y = (np.arange(height, dtype=np.float32) + 0.5) / side
    x = (np.arange(width, dtype=np.float32) + 0.5) / side
    return y[:, None], x[None, :]


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _ramp(t: np.ndarray, colours: list[np.ndarray]) -> np.ndarray:
    """Piecewise-linear colour ramp: ``t`` in 0..1 [H, W] -> [H, W, 3]."""
    stops = np.linspace(0.0, 1.0, len(colours), dtype=np.float32)
    palette = np.stack(colours).astype(np.float32)
    return np.stack([np.interp(t, stops, palette[:, c]).astype(np.float32) for c in range(3)],
                    axis=-1)


def _work_size(height: int, width: int) -> tuple[int, int]:
    scale = min(1.0, _WORK_SIDE / max(height, width))
    return max(1, int(round(height * scale))), max(1, int(round(width * scale)))


def _resize_to(image: np.ndarray, height: int, width: int) -> np.ndarray:
    if image.shape[:2] == (height, width):
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


def _gradient(rng, height, width) -> np.ndarray:
    colours = [_colour(rng) for _ in range(int(rng.integers(2, 4)))]
    y, x = _unit_grid(height, width)
    if rng.uniform() < 0.3:  # radial: a light centre falling off
        cy, cx = rng.uniform(0.2, 0.8) * height / max(height, width), rng.uniform(0.2, 0.8) * width / max(height, width)
        t = np.sqrt((y - cy) ** 2 + (x - cx) ** 2) / np.float32(rng.uniform(0.5, 1.0))
    else:
        angle = rng.uniform(0.0, 2.0 * np.pi)
        t = x * np.float32(np.cos(angle)) + y * np.float32(np.sin(angle))
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    return _ramp(_smoothstep(t).astype(np.float32), colours)


def _checker(rng, height, width) -> np.ndarray:
    base = _colour(rng, saturation=(0.0, 0.35), value=(0.35, 0.85))
    shift = np.float32(rng.choice([-1.0, 1.0]) * rng.uniform(0.1, 0.25))
    other = np.clip(base + shift, 0.0, 1.0)
    square = max(2, int(round(max(height, width) * rng.uniform(0.03, 0.12))))
    oy, ox = (int(v) for v in rng.integers(0, square, 2))
    yy = (np.arange(height) + oy) // square
    xx = (np.arange(width) + ox) // square
    light = ((yy[:, None] + xx[None, :]) % 2).astype(bool)
    out = np.empty((height, width, 3), np.float32)
    out[:] = base
    out[light] = other
    return out


def _fractal_noise(rng, height, width, octaves: int = 5) -> np.ndarray:
    """Smooth value noise in 0..1 [height, width] (sum of upsampled random grids)."""
    total = np.zeros((height, width), np.float32)
    amplitude, weight = 1.0, 0.0
    cells = int(rng.integers(2, 5))
    for _ in range(octaves):
        grid = rng.uniform(0.0, 1.0, (cells + 1, cells + 1)).astype(np.float32)
        total += np.float32(amplitude) * cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
        weight += amplitude
        amplitude *= 0.5
        cells *= 2
    total /= np.float32(weight)
    low, high = float(total.min()), float(total.max())
    return (total - low) / max(high - low, 1e-6)


def _noise(rng, height, width) -> np.ndarray:
    h, w = _work_size(height, width)
    colours = [_colour(rng, value=(0.2, 0.9)) for _ in range(3)]
    t = _fractal_noise(rng, h, w)
    return _resize_to(_ramp(t, colours), height, width)


def _bokeh(rng, height, width) -> np.ndarray:
    h, w = _work_size(height, width)
    base = _gradient(rng, h, w) * np.float32(rng.uniform(0.25, 0.6))
    light = np.zeros((h, w, 3), np.float32)
    short = min(h, w)
    warm = _colour(rng, saturation=(0.2, 0.8), value=(0.7, 1.0))
    for _ in range(int(rng.integers(15, 45))):
        # Lights share a hue family (a street, a room) with some spread.
        colour = np.clip(warm + rng.normal(0.0, 0.15, 3).astype(np.float32), 0.05, 1.0)
        radius = max(1, int(round(short * rng.uniform(0.02, 0.11))))
        center = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        disc = np.zeros((h, w), np.float32)
        cv2.circle(disc, center, radius, 1.0, -1, cv2.LINE_AA)
        light += disc[..., None] * (colour * np.float32(rng.uniform(0.15, 0.6)))
    sigma = max(0.6, short * rng.uniform(0.004, 0.012))
    light = cv2.GaussianBlur(light, (0, 0), sigma)
    base = cv2.GaussianBlur(base, (0, 0), max(1.0, short * 0.02))
    out = np.float32(1.0) - (np.float32(1.0) - base) * np.exp(-light)  # screen-like: never > 1
    return _resize_to(out, height, width)


def _solid(rng, height, width) -> np.ndarray:
    out = np.empty((height, width, 3), np.float32)
    out[:] = _colour(rng, saturation=(0.0, 0.6), value=(0.15, 0.95))
    return out


def _studio(rng, height, width) -> np.ndarray:
    colour = _colour(rng, saturation=(0.05, 0.45), value=(0.45, 0.9))
    y, x = _unit_grid(height, width)
    side = float(max(height, width))
    cy = np.float32(rng.uniform(0.3, 0.5) * height / side)
    cx = np.float32(rng.uniform(0.4, 0.6) * width / side)
    distance = np.sqrt((y - cy) ** 2 + (x - cx) ** 2) / np.float32(0.75)
    falloff = np.float32(rng.uniform(0.35, 0.7))
    light = np.float32(1.15) - falloff * _smoothstep(distance)
    floor = np.float32(1.0) - np.float32(0.15) * _smoothstep((y * side / height - 0.7) / 0.3)
    h, w = _work_size(height, width)
    grain = cv2.resize(rng.normal(0.0, 0.012, (h, w)).astype(np.float32), (width, height),
                       interpolation=cv2.INTER_LINEAR)
    out = colour * (light * floor)[..., None] + grain[..., None]
    return np.clip(out, 0.0, 1.0)


_MAKERS = {"gradient": _gradient, "checker": _checker, "noise": _noise, "bokeh": _bokeh,
           "solid": _solid, "studio": _studio}


def procedural_background(kind: str, height: int, width: int, seed: int = 0) -> np.ndarray:
    """A synthetic background, the same for the same arguments on every machine.

    Parameters
    ----------
    kind : str
        One of :data:`KINDS` or ``"random"`` (a kind chosen from ``seed``):

        ``gradient``  two or three muted colours, linear at a random angle or radial
        ``checker``   a transparency-style checkerboard, random square size and phase
        ``noise``     smooth fractal noise through a colour ramp (walls, foliage, fabric)
        ``bokeh``     soft out-of-focus light discs over a dark blurred gradient
        ``solid``     one flat colour
        ``studio``    a photo backdrop: lit centre, vignette, darker floor, fine grain
    height, width : int
        Size in pixels, 1..16384.
    seed : int
        >= 0. Use :func:`background_seed` to derive one per image of a run.

    Returns
    -------
    ndarray, float32 [height, width, 3] in 0..1
    """
    if kind == RANDOM_KIND:
        kind = pick_kind(seed)
    if kind not in _MAKERS:
        raise ValueError(f"unknown background kind {kind!r}; choose one of "
                         f"{', '.join(KINDS)} or {RANDOM_KIND!r}.")
    height, width = _check_size(height, width)
    rng = np.random.default_rng(_check_seed(seed))
    out = _MAKERS[kind](rng, height, width)
    return np.ascontiguousarray(np.clip(out, 0.0, 1.0), dtype=np.float32)

"""The Layer-Diffusion-like alpha damage of :mod:`.synthetic`, one function per artifact family.

:func:`_inject_artifacts` runs the families in a fixed order on one random generator, so the
same seed gives the same damage: interior speckle, clothing blotches and speckle chained to
the hair band (together the ``"interior"`` family), then pinholes, background debris and the
frame fade. Each family only touches pixels that are fully opaque (or, for debris, fully
transparent) in the ground truth. Private to the ``synthetic*`` modules.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .synthetic_shapes import _Layout, _box, _distance_inside, _quantise, _smooth_noise

# Smallest change an artifact makes (in 1/255 steps); smaller contributions are dropped so that
# every pixel in an artifact mask is off by more than REPAIR_TOLERANCE (with a level to spare
# for float rounding): doing nothing repairs nothing.
_MIN_ARTIFACT_LEVELS = 3

_CROSS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], np.uint8)


def _changed(new: np.ndarray, old: np.ndarray) -> np.ndarray:
    return np.abs(new - old) >= (_MIN_ARTIFACT_LEVELS - 0.5) / 255.0


@dataclass(frozen=True)
class _Canvas:
    """What every artifact family needs to know about the clean portrait (computed once)."""

    height: int
    width: int
    unit: float
    alpha_true: np.ndarray  # float32 [H, W]
    opaque: np.ndarray  # bool, alpha_true == 1
    semi: np.ndarray  # bool, 0 < alpha_true < 1
    depth: np.ndarray  # px to the nearest non-opaque pixel
    fade_rows: int  # rows of the frame fade at the bottom
    row_ok: np.ndarray  # bool, rows well above the frame fade
    xx: np.ndarray  # float32 pixel columns
    yy: np.ndarray  # float32 pixel rows

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    @property
    def fade_start(self) -> int:
        return self.height - self.fade_rows


def _make_canvas(rng, layout: _Layout, alpha_true: np.ndarray) -> _Canvas:
    height, width = layout.height, layout.width
    opaque = alpha_true >= 1.0
    fade_rows = max(2, int(round(rng.uniform(0.02, 0.04) * height)))
    row_ok = np.zeros((height, width), bool)
    row_ok[: max(0, height - fade_rows - 2), :] = True
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    return _Canvas(height=height, width=width, unit=layout.unit, alpha_true=alpha_true,
                   opaque=opaque, semi=(alpha_true > 0.0) & (alpha_true < 1.0),
                   depth=_distance_inside(opaque), fade_rows=fade_rows, row_ok=row_ok,
                   xx=xx, yy=yy)


def _speckle_values(rng, count: int) -> np.ndarray:
    # Most speckle is barely visible (0.95-0.99), a tail reaches 0.85, as in real decodes.
    speckle_max = min(0.99, 1.0 - _MIN_ARTIFACT_LEVELS / 255.0)
    return speckle_max - (speckle_max - 0.85) * rng.random(count) ** 1.7


def _interior_speckle(rng, canvas: _Canvas, owner: np.ndarray) -> np.ndarray:
    """Semi-transparent single pixels and small clusters inside hair, face and clothes.

    Returns the alpha ceiling they impose (float32 [H, W], 1 where untouched)."""
    shape, unit = canvas.shape, canvas.unit
    interior_value = np.ones(shape, np.float32)
    inside = canvas.opaque & (canvas.depth >= 3.0) & canvas.row_ok
    density = np.zeros(shape, np.float32)
    density[owner == 1] = rng.uniform(0.012, 0.035)
    density[owner == 3] = rng.uniform(0.006, 0.02)
    density[owner == 2] = rng.uniform(0.002, 0.008)
    patchiness = np.clip(0.5 + 0.5 * _smooth_noise(rng, shape, 0.08 * unit), 0.0, 1.0)
    probability = density * (0.3 + 1.4 * patchiness) * inside
    seeds = rng.random(shape) < probability
    # Most speckle is single pixels; about a third grows into clusters of a few pixels.
    growing = seeds & (rng.random(shape) < 0.35)
    clusters = seeds.copy()
    for _ in range(2):
        grown = cv2.dilate(growing.astype(np.uint8), _CROSS) > 0
        growing |= grown & (rng.random(shape) < 0.35) & inside
    clusters |= growing
    interior_value[clusters] = _speckle_values(rng, int(clusters.sum()))
    return interior_value


def _clothing_blotches(rng, canvas: _Canvas, owner: np.ndarray, interior_value: np.ndarray) -> None:
    """Low-contrast blotches (0.5-0.95) in the clothing, lowered into ``interior_value``."""
    shape, unit, xx, yy = canvas.shape, canvas.unit, canvas.xx, canvas.yy
    cloth_inside = canvas.opaque & (owner == 3) & (canvas.depth >= 4.0) & canvas.row_ok
    if not cloth_inside.any():
        cloth_inside = canvas.opaque & (canvas.depth >= 3.0) & canvas.row_ok
    candidates = np.argwhere(cloth_inside)
    texture = _smooth_noise(rng, shape, 0.01 * unit + 1.0)
    for _ in range(int(rng.integers(2, 6)) if len(candidates) else 0):
        sigma = max(1.2, rng.uniform(0.008, 0.022) * unit)
        y0, x0 = candidates[rng.integers(len(candidates))]
        angle = rng.uniform(0, math.pi)
        c, s = math.cos(angle), math.sin(angle)
        elongation = rng.uniform(1.0, 2.2)
        lowest = rng.uniform(0.5, 0.95)
        rows, cols = _box(shape, x0, y0, 4.0 * sigma * elongation)
        dx, dy = xx[rows, cols] - x0, yy[rows, cols] - y0
        u = (c * dx + s * dy) / (sigma * elongation)
        v = (-s * dx + c * dy) / sigma
        reduction = (1.0 - lowest) * np.exp(-0.5 * (u * u + v * v)) * np.clip(0.85 + 0.15 * texture[rows, cols], 0.7, 1.0)
        value = np.where(cloth_inside[rows, cols], 1.0 - reduction, 1.0).astype(np.float32)
        interior_value[rows, cols] = np.minimum(interior_value[rows, cols], value)


def _band_chained_speckle(rng, canvas: _Canvas, truth, interior_value: np.ndarray) -> None:
    """Speckle chains that start inside the body and touch the genuine hair transition band
    (only connectivity through the band tells them apart), lowered into ``interior_value``."""
    height, width, unit = canvas.height, canvas.width, canvas.unit
    opaque, row_ok = canvas.opaque, canvas.row_ok
    touches_band = opaque & (cv2.dilate(canvas.semi.astype(np.uint8), _CROSS) > 0)
    hair_side = truth.hair_alpha >= 1.0
    margin = np.zeros(canvas.shape, bool)
    margin[2:-2, 2:-2] = True
    starts = np.argwhere(touches_band & hair_side & (truth.body < 0.5) & row_ok & margin)
    if len(starts) == 0:
        starts = np.argwhere(touches_band & row_ok & margin)
    smooth_sd = cv2.GaussianBlur(truth.hair_sd, (0, 0), 2.0)
    gy, gx = np.gradient(smooth_sd)
    n_chains = int(np.clip(round(rng.uniform(6, 14) * unit / 512.0), 3, 40)) if len(starts) else 0
    chained = np.zeros(canvas.shape, bool)
    for _ in range(n_chains):
        y, x = (float(v) for v in starts[rng.integers(len(starts))])
        nx, ny = float(gx[int(y), int(x)]), float(gy[int(y), int(x)])
        norm = math.hypot(nx, ny)
        direction = (-nx / norm, -ny / norm) if norm > 1e-6 else (0.0, 1.0)
        steps = int(rng.integers(3, max(5, int(0.04 * unit))))
        for _step in range(steps):
            iy, ix = int(round(y)), int(round(x))
            if not (0 <= iy < height and 0 <= ix < width and opaque[iy, ix] and row_ok[iy, ix]):
                break
            chained[iy, ix] = True
            if rng.random() < 0.25:  # a small side cluster
                sy, sx = iy + int(rng.integers(-1, 2)), ix + int(rng.integers(-1, 2))
                if 0 <= sy < height and 0 <= sx < width and opaque[sy, sx] and row_ok[sy, sx]:
                    chained[sy, sx] = True
            angle = math.atan2(direction[1], direction[0]) + rng.normal(0.0, 0.5)
            direction = (math.cos(angle), math.sin(angle))
            x += direction[0]
            y += direction[1]
    interior_value[chained] = np.minimum(interior_value[chained],
                                         _speckle_values(rng, int(chained.sum())))


def _pinholes(rng, canvas: _Canvas, layout: _Layout, truth, damaged: np.ndarray,
              rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fully transparent 2-6 px specular spots in the eyes and on a glossy spot.

    Returns ``(damaged, pinhole_mask)``; brightens ``rgb`` under each spot in place."""
    height, width, unit = canvas.height, canvas.width, canvas.unit
    xx, yy = canvas.xx, canvas.yy
    pinhole_mask = np.zeros(canvas.shape, bool)
    scale = math.sqrt(unit / 512.0)
    spots = []
    for ex, ey, er in truth.eyes:
        spots.append((ex - 0.3 * er, ey - 0.25 * er))
    hx, hy, rx, ry = layout.head
    if rng.random() < 0.5:
        spots.append((hx + rng.uniform(-0.05, 0.05) * rx, hy + 0.3 * ry))  # glossy nose tip
    else:
        spots.append((layout.cx, layout.shoulder_y + rng.uniform(0.12, 0.25) * unit))  # a shiny button
    for sx, sy in spots:
        ix, iy = int(round(sx)), int(round(sy))
        # 2-6 px; in thumbnails below 128 px a face is ~12 px wide, so single-pixel spots.
        diameter = float(np.clip(rng.uniform(2.0, 6.0) * scale, 1.0 if unit < 128 else 2.0, 6.0))
        radius = diameter / 2.0
        if not (0 <= iy < height and 0 <= ix < width) or canvas.depth[iy, ix] < radius + 2.5:
            continue
        cover = np.clip(radius + 0.5 - np.sqrt((xx - ix) ** 2 + (yy - iy) ** 2), 0.0, 1.0)
        spot_alpha = _quantise(np.minimum(damaged, 1.0 - cover))
        spot = _changed(spot_alpha, damaged) & canvas.opaque
        if (cv2.dilate(spot.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & pinhole_mask).any():
            continue  # in thumbnails the spots would merge; keep them apart
        damaged = np.where(spot, spot_alpha, damaged)
        pinhole_mask |= spot
        # The highlight is what the decoder confused with transparency.
        rgb[cover > 0] = rgb[cover > 0] * (1.0 - cover[cover > 0, None]) + 0.97 * cover[cover > 0, None]
    return damaged, pinhole_mask


def _debris(rng, canvas: _Canvas) -> np.ndarray:
    """Faint floating blobs and one smear (alpha 0.01-0.15) in the background, never touching
    the portrait. Returns the debris mask's layer (float32 [H, W], 0 elsewhere)."""
    height, width, unit = canvas.height, canvas.width, canvas.unit
    shape, xx, yy = canvas.shape, canvas.xx, canvas.yy
    foreground = canvas.alpha_true > 0.0
    clearance = _distance_inside(~foreground)
    border = np.minimum.reduce([yy, xx, height - 1 - yy, width - 1 - xx])
    allowed = (clearance >= 2.0) & (border >= 1.0)
    debris = np.zeros(shape, np.float32)
    for _ in range(int(rng.integers(3, 9))):
        sigma = max(0.8, rng.uniform(0.004, 0.014) * unit)
        room = np.argwhere((clearance >= 3.0 * sigma + 2.0) & (border >= 3.0 * sigma + 1.0))
        if len(room) == 0:
            room = np.argwhere(allowed & (clearance >= 3.0))
        if len(room) == 0:
            break
        y0, x0 = room[rng.integers(len(room))]
        peak = rng.uniform(0.015, 0.15)
        angle = rng.uniform(0, math.pi)
        c, s = math.cos(angle), math.sin(angle)
        elongation = rng.uniform(1.0, 1.8)
        rows, cols = _box(shape, x0, y0, 4.0 * sigma * elongation)
        dx, dy = xx[rows, cols] - x0, yy[rows, cols] - y0
        u = (c * dx + s * dy) / (sigma * elongation)
        v = (-s * dx + c * dy) / sigma
        debris[rows, cols] = np.maximum(debris[rows, cols], peak * np.exp(-0.5 * (u * u + v * v)))
    _add_smear(rng, canvas, clearance, border, debris)
    return _quantise(np.where(allowed, debris, 0.0))


def _add_smear(rng, canvas: _Canvas, clearance, border, debris: np.ndarray) -> None:
    """A faint smear: a long soft streak, kept off the portrait (drawn into ``debris``)."""
    height, width, unit = canvas.height, canvas.width, canvas.unit
    xx, yy = canvas.xx, canvas.yy
    sigma = max(0.8, rng.uniform(0.003, 0.008) * unit)
    room = np.argwhere((clearance >= 3.0 * sigma + 2.0) & (border >= 3.0 * sigma + 1.0))
    for _attempt in range(30 if len(room) else 0):
        length = rng.uniform(0.06, 0.22) * unit
        y0, x0 = room[rng.integers(len(room))]
        angle = rng.uniform(0, 2 * math.pi)
        x1, y1 = x0 + length * math.cos(angle), y0 + length * math.sin(angle)
        samples = np.linspace(0.0, 1.0, 16)
        sx = np.round(x0 + (x1 - x0) * samples).astype(int)
        sy = np.round(y0 + (y1 - y0) * samples).astype(int)
        inside_image = (sx >= 0) & (sx < width) & (sy >= 0) & (sy < height)
        if not inside_image.all() or (clearance[sy, sx] < 3.0 * sigma + 2.0).any():
            continue
        vx, vy = x1 - x0, y1 - y0
        rows, cols = _box(canvas.shape, (x0 + x1) / 2.0, (y0 + y1) / 2.0, length / 2.0 + 4.0 * sigma)
        px, py = xx[rows, cols] - x0, yy[rows, cols] - y0
        t = np.clip((px * vx + py * vy) / (vx * vx + vy * vy), 0.0, 1.0)
        dist2 = (px - t * vx) ** 2 + (py - t * vy) ** 2
        peak = rng.uniform(0.02, 0.08)
        streak = peak * np.sin(np.pi * t) ** 0.5 * np.exp(-0.5 * dist2 / sigma**2)
        debris[rows, cols] = np.maximum(debris[rows, cols], streak)
        break


def _frame_fade(rng, canvas: _Canvas) -> np.ndarray:
    """The bottom rows of the body fade to about 0.85-0.97 towards the image border.

    Returns the faded alpha layer (float32 [H, W])."""
    fade_rows, fade_start, width = canvas.fade_rows, canvas.fade_start, canvas.width
    end_value = rng.uniform(0.85, 0.97)
    rows = np.arange(fade_rows, dtype=np.float32)
    t = (rows + 1.0) / fade_rows
    row_drop = (1.0 - end_value) * t**1.6
    # Columns fade unevenly, never beyond ``end_value``.
    column_jitter = np.clip(0.85 + 0.15 * _smooth_noise(rng, (1, width), 0.02 * canvas.unit + 2.0)[0], 0.6, 1.0)
    fade = np.ones(canvas.shape, np.float32)
    fade[fade_start:, :] = 1.0 - row_drop[:, None] * column_jitter[None, :]
    return _quantise(np.minimum(canvas.alpha_true, fade))


def _inject_artifacts(rng, layout: _Layout, truth, owner: np.ndarray, rgb: np.ndarray):
    """Damage ``truth.alpha`` with every artifact family (see the module docstring).

    Returns
    -------
    damaged : float32 [H, W]
    masks : dict[str, bool [H, W]]
        Disjoint masks of the pixels each family changed (``ARTIFACT_FAMILIES`` keys).
    """
    alpha_true = truth.alpha
    canvas = _make_canvas(rng, layout, alpha_true)
    opaque = canvas.opaque

    interior_value = _interior_speckle(rng, canvas, owner)
    _clothing_blotches(rng, canvas, owner, interior_value)
    _band_chained_speckle(rng, canvas, truth, interior_value)
    interior_layer = _quantise(np.minimum(alpha_true, interior_value))
    interior_mask = _changed(interior_layer, alpha_true) & opaque
    damaged = np.where(interior_mask, interior_layer, alpha_true)

    damaged, pinhole_mask = _pinholes(rng, canvas, layout, truth, damaged, rgb)
    interior_mask &= ~pinhole_mask

    debris_layer = _debris(rng, canvas)
    debris_mask = _changed(debris_layer, alpha_true) & (alpha_true <= 0.0)
    damaged = np.where(debris_mask, debris_layer, damaged)

    fade_layer = _frame_fade(rng, canvas)
    fade_mask = _changed(fade_layer, alpha_true) & opaque
    fade_mask[:canvas.fade_start] = False
    damaged = np.where(fade_mask, fade_layer, damaged)

    masks = {"interior": interior_mask, "pinhole": pinhole_mask, "debris": debris_mask, "frame_fade": fade_mask}
    return damaged.astype(np.float32), masks

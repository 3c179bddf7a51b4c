"""Corruption models of the ``pocket_hair`` and ``sheer_motion`` families (issue 18).

Their statistics differ from the two earlier families (smooth clouds, salt, hair flicker,
frame fades): large low-frequency dimming patches, banding, glow rims, speckle that reaches
the outline, pinholes and faint background blobs. The ground truth is the truth: every
model here changes the raw matte only where ``alpha_true`` is exactly 0 (empty) or 1
(opaque) at 8-bit precision, never inside the true soft band. A family that damages the
band (``sheer_motion``'s veil banding) does so in its own module and says so.

Each model edits ``raw`` in place and returns the bool mask of the pixels it changed by more
than 1.5/255 (the mask a per-kind report uses). Each family chooses its own counts and ranges.
"""
from __future__ import annotations

import cv2
import numpy as np

from .common import smooth_noise

__all__ = ["opaque_pixels", "empty_pixels", "dimming_patches", "banding", "glow_rim",
           "edge_speckle", "pinholes", "debris"]

_HALF = 0.5 / 255.0
_CHANGED = 1.5 / 255.0


def opaque_pixels(truth: np.ndarray) -> np.ndarray:
    """Bool [H, W]: ground truth 1 at 8-bit precision."""
    return truth >= 1.0 - _HALF


def empty_pixels(truth: np.ndarray) -> np.ndarray:
    """Bool [H, W]: ground truth 0 at 8-bit precision."""
    return truth <= _HALF


def _depth(opaque: np.ndarray) -> np.ndarray:
    """Distance (px) of each opaque pixel to the nearest non-opaque one (1 on the outline)."""
    return cv2.distanceTransform(opaque.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)


def _extent(mask: np.ndarray) -> float:
    """The larger side of the bounding box of ``mask`` (px)."""
    ys, xs = np.nonzero(mask)
    return float(max(np.ptp(ys), np.ptp(xs)) + 1)


def dimming_patches(rng, raw, truth, count: int, depth=(0.5, 0.9), extent=(0.1, 0.4)) -> np.ndarray:
    """Large low-frequency translucent patches over the opaque interior (opaque pixels only).

    Each patch is a wobbly ellipse ``extent`` (fraction of the body's bounding box) across,
    centred on an opaque pixel, with a flat core dimmed to ``depth`` and a soft shoulder back
    to 1: what a matting network does over low-contrast clothing or skin in shadow.
    """
    opaque = opaque_pixels(truth)
    changed = np.zeros(truth.shape, bool)
    if not opaque.any():
        return changed
    height, width = truth.shape
    body = _extent(opaque)
    ys, xs = np.nonzero(opaque)
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    level = np.ones(truth.shape, np.float32)
    for _ in range(count):
        pick = rng.integers(len(ys))
        radius = 0.5 * body * rng.uniform(*extent)
        aspect = np.sqrt(rng.uniform(0.6, 1.6))
        angle = rng.uniform(0, np.pi)
        dx, dy = xx - xs[pick], yy - ys[pick]
        u = (dx * np.cos(angle) + dy * np.sin(angle)) / (radius * aspect)
        v = (-dx * np.sin(angle) + dy * np.cos(angle)) * aspect / radius
        wobble = 0.15 * smooth_noise(rng, truth.shape, max(radius / 3.0, 2.0))
        profile = np.clip((1.0 + wobble - np.sqrt(u * u + v * v)) / 0.35, 0.0, 1.0)
        profile = profile * profile * (3.0 - 2.0 * profile)  # smoothstep: no kink at the shoulder
        level = np.minimum(level, 1.0 - (1.0 - rng.uniform(*depth)) * profile)
    dimmed = np.minimum(raw, level)
    changed = opaque & (raw - dimmed > _CHANGED)
    raw[changed] = dimmed[changed]
    return changed


def banding(rng, raw, truth, scale: float, min_depth: float = 3.0) -> np.ndarray:
    """Banding over the opaque interior (opaque pixels ``min_depth`` px or more inside).

    Either quantised steps (a smooth ramp across part of the body rounded to 3-5 levels, each
    0.03-0.07 lower) or stripes (parallel bands ``scale``-proportional period, alpha 0.8-0.95),
    or both: the staircase and moire a quantising or tiling decoder leaves on flat regions.
    """
    opaque = opaque_pixels(truth)
    interior = opaque & (_depth(opaque) >= min_depth)
    changed = np.zeros(truth.shape, bool)
    if not interior.any():
        return changed
    height, width = truth.shape
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    level = np.ones(truth.shape, np.float32)
    mode = rng.choice(("steps", "stripes", "both"), p=(0.4, 0.4, 0.2))
    if mode in ("steps", "both"):
        angle = rng.uniform(0, 2 * np.pi)
        ramp = xx * np.cos(angle) + yy * np.sin(angle)
        ramp = ramp + 0.05 * _extent(interior) * smooth_noise(rng, truth.shape, 12.0 * scale)
        start, end = np.quantile(ramp[interior], [rng.uniform(0.2, 0.6), 1.0])
        steps = int(rng.integers(3, 6))
        index = np.ceil(np.clip((ramp - start) / max(end - start, 1e-3), 0.0, 1.0) * steps)
        level = np.minimum(level, 1.0 - rng.uniform(0.03, 0.07) * index)
    if mode in ("stripes", "both"):
        angle = rng.uniform(0, np.pi)
        along = xx * np.cos(angle) + yy * np.sin(angle)
        period = rng.uniform(6.0, 24.0) * scale + 3.0
        stripe = np.mod(along / period + rng.uniform(), 1.0) < rng.uniform(0.25, 0.5)
        across = -xx * np.sin(angle) + yy * np.cos(angle)
        limit = np.quantile(across[interior], rng.uniform(0.0, 0.5))  # part of the body only
        level = np.where(stripe & (across >= limit), np.minimum(level, rng.uniform(0.8, 0.95)), level)
    dimmed = np.minimum(raw, level)
    changed = interior & (raw - dimmed > _CHANGED)
    raw[changed] = dimmed[changed]
    return changed


def glow_rim(rng, raw, truth, scale: float, width=(2.0, 8.0), level=(0.05, 0.25),
             coverage=(0.4, 1.0)) -> np.ndarray:
    """A faint halo over the true background just outside the outline (empty pixels only).

    ``width`` px wide and ``level`` strong next to the outline, fading outward, along a random
    ``coverage`` fraction of the contour (enclosed background holes included): the glow a
    network paints around a bright subject.
    """
    empty = empty_pixels(truth)
    changed = np.zeros(truth.shape, bool)
    distance = cv2.distanceTransform(empty.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    rim = empty & (distance <= width[1])
    if not rim.any() or rim.all():
        return changed
    rim_width = np.clip(rng.uniform(*width) * (1.0 + 0.3 * smooth_noise(rng, truth.shape, 20.0 * scale)),
                        *width)
    strength = np.clip(rng.uniform(*level) * (1.0 + 0.3 * smooth_noise(rng, truth.shape, 15.0 * scale)),
                       *level)
    gate_noise = smooth_noise(rng, truth.shape, 25.0 * scale)
    gate = gate_noise >= np.quantile(gate_noise[rim], 1.0 - rng.uniform(*coverage))
    glow = strength * np.clip(1.0 - (distance - 1.0) / rim_width, 0.0, 1.0)
    glow = np.where(rim & gate, glow, 0.0)
    brighter = np.maximum(raw, glow)
    changed = empty & (brighter - raw > _CHANGED)
    raw[changed] = brighter[changed]
    return changed


def edge_speckle(rng, raw, truth, count: int, near_edge: float, value=(0.4, 0.97)) -> np.ndarray:
    """Specks (1-9 px) of alpha ``value`` on opaque pixels, most within ``near_edge`` px of the
    outline and many right on it (depth 1), the rest anywhere inside (opaque pixels only)."""
    opaque = opaque_pixels(truth)
    changed = np.zeros(truth.shape, bool)
    if not opaque.any():
        return changed
    depth = _depth(opaque)
    ys, xs = np.nonzero(opaque)
    weight = np.exp(-(depth[ys, xs] - 1.0) / near_edge)
    near = rng.choice(len(ys), size=count, p=weight / weight.sum())
    anywhere = rng.integers(len(ys), size=max(count // 4, 1))
    specks = np.ones(truth.shape, np.float32)
    height, width = truth.shape
    for index in np.concatenate((near, anywhere)):
        y, x = ys[index], xs[index]
        radius = int(rng.choice((0, 0, 1)))
        window = (slice(max(y - radius, 0), min(y + radius + 1, height)),
                  slice(max(x - radius, 0), min(x + radius + 1, width)))
        specks[window] = np.minimum(specks[window], rng.uniform(*value))
    dimmed = np.minimum(raw, specks)
    changed = opaque & (raw - dimmed > _CHANGED)
    raw[changed] = dimmed[changed]
    return changed


def pinholes(rng, raw, truth, count: int, min_depth: float = 3.0) -> np.ndarray:
    """Transparent spots (alpha 0, 1-3 px across) on opaque pixels ``min_depth`` px inside."""
    opaque = opaque_pixels(truth)
    changed = np.zeros(truth.shape, bool)
    ys, xs = np.nonzero(opaque & (_depth(opaque) >= min_depth))
    if len(ys) == 0:
        return changed
    holes = np.zeros(truth.shape, np.uint8)
    for index in rng.integers(len(ys), size=count):
        cv2.circle(holes, (int(xs[index]), int(ys[index])), int(rng.integers(0, 2)), 1, -1)
    changed = opaque & (holes > 0) & (raw > _CHANGED)
    raw[changed] = 0.0
    return changed


def debris(rng, raw, truth, count: int, clearance: float, peak=(0.04, 0.3), sigma=(1.0, 5.0)) -> np.ndarray:
    """Faint Gaussian blobs (peak ``peak``) in the background, centred ``clearance`` px or more
    from the subject (empty pixels only)."""
    empty = empty_pixels(truth)
    changed = np.zeros(truth.shape, bool)
    distance = cv2.distanceTransform(empty.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    ys, xs = np.nonzero(distance >= clearance)
    if len(ys) == 0:
        return changed
    height, width = truth.shape
    blobs = np.zeros(truth.shape, np.float32)
    for index in rng.integers(len(ys), size=count):
        spread = rng.uniform(*sigma)
        reach = int(np.ceil(3 * spread))
        y0, y1 = max(ys[index] - reach, 0), min(ys[index] + reach + 1, height)
        x0, x1 = max(xs[index] - reach, 0), min(xs[index] + reach + 1, width)
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        blob = rng.uniform(*peak) * np.exp(-((yy - ys[index]) ** 2 + (xx - xs[index]) ** 2) / (2 * spread ** 2))
        blobs[y0:y1, x0:x1] = np.maximum(blobs[y0:y1, x0:x1], blob)
    brighter = np.maximum(raw, blobs)
    changed = empty & (brighter - raw > _CHANGED)
    raw[changed] = brighter[changed]
    return changed

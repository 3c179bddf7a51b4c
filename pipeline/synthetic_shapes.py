"""Drawing helpers and the portrait layout of :mod:`.synthetic` (geometry only, no colour).

Split out of ``synthetic.py`` so that the generator, its artifact models
(:mod:`.synthetic_artifacts`) and its evaluation each stay short. Private to the
``synthetic*`` modules.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

#: Hair styles, drawn at random from the seed (re-exported by :mod:`.synthetic`).
HAIR_STYLES = ("short", "long", "curly")

#: Smallest side :func:`_check_size` accepts.
_MIN_SIDE = 32

# ----------------------------------------------------------------------------------------
# small helpers


def _check_seed(seed) -> int:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be a non-negative int; got {seed!r}.")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative int; got {seed}.")
    return int(seed)


def _check_size(size) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)) and not isinstance(size, (bool, np.bool_)):
        height = width = int(size)
    elif isinstance(size, (tuple, list)) and len(size) == 2 and all(
        isinstance(s, (int, np.integer)) and not isinstance(s, (bool, np.bool_)) for s in size
    ):
        height, width = int(size[0]), int(size[1])
    else:
        raise ValueError(
            f"size must be an int or a (height, width) pair of ints; got {size!r}."
        )
    if min(height, width) < _MIN_SIDE:
        raise ValueError(
            f"size {height}x{width} (height x width) is too small; each side must be at least "
            f"{_MIN_SIDE} px for the portrait's features to exist."
        )
    return height, width


def _quantise(values: np.ndarray) -> np.ndarray:
    """Round to multiples of 1/255 (8-bit levels), float32."""
    return (np.round(np.clip(values, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale_px: float) -> np.ndarray:
    """Zero-mean, unit-std noise field of ``shape`` with features about ``scale_px`` wide."""
    height, width = shape
    scale_px = max(float(scale_px), 1.0)
    coarse_h = max(2, int(math.ceil(height / scale_px)) + 2)
    coarse_w = max(2, int(math.ceil(width / scale_px)) + 2)
    coarse = rng.standard_normal((coarse_h, coarse_w)).astype(np.float32)
    field = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    field -= field.mean()
    std = float(field.std())
    return field / std if std > 1e-6 else field


def _angular_series(rng: np.random.Generator, theta: np.ndarray, harmonics: int, falloff: float = 1.0) -> np.ndarray:
    """Random periodic function of ``theta`` (radians) with ``harmonics`` terms, std about 1."""
    out = np.zeros_like(theta, dtype=np.float32)
    total = 0.0
    for k in range(1, harmonics + 1):
        amp = 1.0 / k**falloff
        phase = rng.uniform(0.0, 2.0 * math.pi)
        out += np.float32(amp) * np.cos(k * theta + phase).astype(np.float32)
        total += amp * amp / 2.0
    return out / np.float32(math.sqrt(total))


def _distance_inside(mask: np.ndarray) -> np.ndarray:
    """Euclidean distance (px, float32) from each True pixel to the nearest False pixel; 0 on False."""
    if mask.all():
        return np.full(mask.shape, np.float32(max(mask.shape)), np.float32)
    return cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)


def _box(shape, cx, cy, reach) -> tuple[slice, slice]:
    """Slices of the pixels within ``reach`` of (cx, cy), clipped to ``shape`` (may be empty)."""
    height, width = shape
    y0 = int(np.clip(math.floor(cy - reach), 0, height))
    y1 = int(np.clip(math.ceil(cy + reach) + 1, 0, height))
    x0 = int(np.clip(math.floor(cx - reach), 0, width))
    x1 = int(np.clip(math.ceil(cx + reach) + 1, 0, width))
    return slice(y0, y1), slice(x0, x1)


def _ellipse_coverage(xx, yy, cx, cy, ax, ay, angle=0.0) -> np.ndarray:
    """Anti-aliased coverage (0..1) of a filled ellipse, from a first-order signed distance."""
    out = np.zeros(xx.shape, np.float32)
    ax = max(float(ax), 0.3)
    ay = max(float(ay), 0.3)
    rows, cols = _box(xx.shape, cx, cy, max(ax, ay) + 2.0)
    dx = xx[rows, cols] - np.float32(cx)
    dy = yy[rows, cols] - np.float32(cy)
    if dx.size == 0:
        return out
    if angle:
        c, s = math.cos(angle), math.sin(angle)
        dx, dy = c * dx + s * dy, -s * dx + c * dy
    u = dx / np.float32(ax)
    v = dy / np.float32(ay)
    q = np.sqrt(u * u + v * v) + np.float32(1e-6)
    grad = np.sqrt((u / ax) ** 2 + (v / ay) ** 2) / q + np.float32(1e-6)
    signed = (q - 1.0) / grad
    out[rows, cols] = np.clip(0.5 - signed, 0.0, 1.0)
    return out


def _capsule_coverage(xx, yy, p0, p1, radius) -> np.ndarray:
    """Anti-aliased coverage (0..1) of a thick segment with round caps (an arm, a neck)."""
    ax, ay = p0
    bx, by = p1
    vx, vy = bx - ax, by - ay
    length_sq = max(vx * vx + vy * vy, 1e-9)
    t = np.clip(((xx - ax) * vx + (yy - ay) * vy) / np.float32(length_sq), 0.0, 1.0)
    dist = np.sqrt((xx - ax - t * vx) ** 2 + (yy - ay - t * vy) ** 2)
    return np.clip(0.5 + radius - dist, 0.0, 1.0).astype(np.float32)


def _chaikin(points: np.ndarray, iterations: int = 3) -> np.ndarray:
    """Round the corners of a closed polygon by Chaikin corner cutting."""
    pts = np.asarray(points, dtype=np.float64)
    for _ in range(iterations):
        nxt = np.roll(pts, -1, axis=0)
        q = 0.75 * pts + 0.25 * nxt
        r = 0.25 * pts + 0.75 * nxt
        pts = np.stack([q, r], axis=1).reshape(-1, 2)
    return pts


def _polygon_coverage(shape, points: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage (0..1) of a filled polygon given in pixel coordinates."""
    canvas = np.zeros(shape, dtype=np.uint8)
    shift = 4
    pts = np.round(np.asarray(points) * (1 << shift)).astype(np.int32)
    cv2.fillPoly(canvas, [pts], 255, cv2.LINE_AA, shift)
    return canvas.astype(np.float32) / 255.0


def _over(base: np.ndarray, colour, coverage: np.ndarray) -> np.ndarray:
    """Paint ``colour`` (an RGB triple or an [H, W, 3] field) over ``base`` in place where
    ``coverage`` > 0; edges saturate quickly so that anti-aliased rims keep the part's colour."""
    rows_any = np.flatnonzero(coverage.any(axis=1))
    if rows_any.size == 0:
        return base
    cols_any = np.flatnonzero(coverage.any(axis=0))
    rows = slice(int(rows_any[0]), int(rows_any[-1]) + 1)
    cols = slice(int(cols_any[0]), int(cols_any[-1]) + 1)
    weight = np.clip(coverage[rows, cols] * 3.0, 0.0, 1.0)[..., None]
    colour = np.asarray(colour, dtype=np.float32)
    patch = colour[rows, cols] if colour.ndim == 3 else colour
    base[rows, cols] = base[rows, cols] * (1.0 - weight) + patch * weight
    return base


# ----------------------------------------------------------------------------------------
# geometry


@dataclass(frozen=True)
class _Layout:
    height: int
    width: int
    unit: float  # min(height, width): every length scales with it
    pose: str
    hair_style: str
    cx: float
    head: tuple[float, float, float, float]  # cx, cy, rx, ry
    shoulder_y: float
    torso_outline: np.ndarray  # closed polygon [N, 2] (x, y)
    arms: tuple  # ((p0, p1, radius), ...): sleeves in the clothing colour
    hands: tuple  # ((x, y, r), ...)
    hole_seeds: tuple  # points that lie inside an enclosed hole
    neck: tuple  # (p0, p1, radius)


def _torso_outline(cx, unit, height, neck_half, shoulder_y, shoulder_half, shoulder_drop,
                   waist_half, waist_y, hip_half, hip_y) -> np.ndarray:
    bottom = height + 0.15 * unit
    right = [
        (cx + neck_half * 1.3, shoulder_y - 0.03 * unit),
        (cx + shoulder_half * 0.62, shoulder_y + shoulder_drop * 0.25),
        (cx + shoulder_half, shoulder_y + shoulder_drop),
        (cx + shoulder_half * 1.01, shoulder_y + shoulder_drop + 0.08 * unit),
        (cx + waist_half, waist_y),
        (cx + hip_half, hip_y),
        (cx + hip_half, bottom),
    ]
    left = [(2 * cx - x, y) for (x, y) in reversed(right)]
    # Chaikin rounds the shoulders; the duplicated bottom corners keep the body reaching past
    # the bottom border after rounding.
    pts = np.array(right + [(cx + hip_half, bottom + 0.2 * unit), (cx - hip_half, bottom + 0.2 * unit)] + left)
    return _chaikin(pts, 3)


#: Per pose, the ranges the head and shoulders are drawn from (in this order): head half-width
#: (x unit), head centre height (x image height), head aspect (ry / rx), shoulder line below
#: the chin (x unit) and shoulder half-width (x unit).
_HEAD_AND_SHOULDER_RANGES = {
    "head_and_shoulders": ((0.15, 0.185), (0.38, 0.43), (1.2, 1.32), (0.07, 0.12), (0.42, 0.62)),
    "bust": ((0.11, 0.135), (0.28, 0.33), (1.2, 1.32), (0.05, 0.08), (0.25, 0.3)),
    "arm_on_hip": ((0.085, 0.1), (0.2, 0.24), (1.2, 1.3), (0.06, 0.08), (0.19, 0.22)),
}


def _draw_head_and_shoulders(rng: np.random.Generator, pose: str, unit: float, height: int) -> tuple:
    """``(rx, hy, ry, shoulder_y, shoulder_half)`` in pixels, drawn from ``pose``'s ranges."""
    head_half, head_height, aspect, shoulder_drop, shoulder_half = _HEAD_AND_SHOULDER_RANGES[pose]
    rx = rng.uniform(*head_half) * unit
    hy = height * rng.uniform(*head_height)
    ry = rx * rng.uniform(*aspect)
    shoulder_y = hy + ry + rng.uniform(*shoulder_drop) * unit
    return rx, hy, ry, shoulder_y, rng.uniform(*shoulder_half) * unit


def _make_layout(rng: np.random.Generator, height: int, width: int, pose: str) -> _Layout:
    unit = float(min(height, width))
    cx = width / 2.0 + rng.uniform(-0.04, 0.04) * unit
    hair_style = HAIR_STYLES[int(rng.integers(len(HAIR_STYLES)))]
    arms: list = []
    hands: list = []
    hole_seeds: list = []
    if pose == "head_and_shoulders":
        rx, hy, ry, shoulder_y, shoulder_half = _draw_head_and_shoulders(rng, pose, unit, height)
        outline = _torso_outline(cx, unit, height, 0.55 * rx, shoulder_y, shoulder_half,
                                 rng.uniform(0.05, 0.1) * unit, shoulder_half * 1.02, height + 0.05 * unit,
                                 shoulder_half * 1.04, height + 0.1 * unit)
    elif pose == "bust":
        rx, hy, ry, shoulder_y, shoulder_half = _draw_head_and_shoulders(rng, pose, unit, height)
        outline = _torso_outline(cx, unit, height, 0.55 * rx, shoulder_y, shoulder_half,
                                 rng.uniform(0.04, 0.07) * unit, shoulder_half * 0.93, shoulder_y + 0.35 * unit,
                                 shoulder_half * 0.95, height)
        arm_r = rng.uniform(0.05, 0.06) * unit
        for side in (-1.0, 1.0):
            p0 = (cx + side * (shoulder_half - 0.6 * arm_r), shoulder_y + 0.07 * unit)
            p1 = (cx + side * (shoulder_half + 0.2 * arm_r), height + 0.2 * unit)
            arms.append((p0, p1, arm_r))
    elif pose == "arm_on_hip":
        rx, hy, ry, shoulder_y, shoulder_half = _draw_head_and_shoulders(rng, pose, unit, height)
        waist_half = shoulder_half * rng.uniform(0.7, 0.78)
        waist_y = height * rng.uniform(0.7, 0.74)
        hip_half = shoulder_half * rng.uniform(0.85, 0.95)
        outline = _torso_outline(cx, unit, height, 0.55 * rx, shoulder_y, shoulder_half,
                                 0.04 * unit, waist_half, waist_y, hip_half, height * 0.9)
        upper_r = rng.uniform(0.032, 0.04) * unit
        fore_r = upper_r * 0.85
        both = rng.random() < 0.5
        first = -1.0 if rng.random() < 0.5 else 1.0
        for side in (first, -first):
            shoulder = (cx + side * (shoulder_half - 0.8 * upper_r), shoulder_y + 0.06 * unit)
            if side == first or both:
                elbow = (cx + side * (shoulder_half + rng.uniform(0.12, 0.16) * unit),
                         height * rng.uniform(0.53, 0.58))
                hand = (cx + side * (waist_half + 0.3 * fore_r), waist_y + rng.uniform(0.0, 0.04) * height)
                arms.append((shoulder, elbow, upper_r))
                arms.append((elbow, hand, fore_r))
                hands.append((hand[0], hand[1], fore_r * 1.15))
                # A point well inside the gap between arm, forearm and torso.
                seed_y = elbow[1]
                torso_x = cx + side * (shoulder_half + (waist_half - shoulder_half)
                                       * (seed_y - shoulder_y) / max(waist_y - shoulder_y, 1.0))
                hole_seeds.append(((torso_x + elbow[0] - side * upper_r) / 2.0, seed_y))
            else:
                elbow = (cx + side * (shoulder_half + 0.03 * unit), height * 0.6)
                hand = (cx + side * (hip_half + 0.05 * unit), height * 0.84)
                arms.append((shoulder, elbow, upper_r))
                arms.append((elbow, hand, fore_r))
                hands.append((hand[0], hand[1], fore_r * 1.15))
    else:  # pragma: no cover - POSES is closed
        raise ValueError(f"unknown pose {pose!r}")
    # Keep the hair inside the frame at the top: only the body leaves the image (at the bottom),
    # so a soft edge at any other border is never ambiguous with the frame fade.
    hair_reach = {"short": 1.45, "long": 1.55, "curly": 1.9}[hair_style] * ry
    lowest_top = hair_reach + 0.03 * height
    if hy < lowest_top:
        shift = lowest_top - hy
        hy += shift
        shoulder_y += shift
        outline = outline + np.array([0.0, shift])
        arms = [((p0[0], p0[1] + shift), (p1[0], p1[1] + shift), r) for p0, p1, r in arms]
        hands = [(x, y + shift, r) for x, y, r in hands]
        hole_seeds = [(x, y + shift) for x, y in hole_seeds]
    head = (cx + rng.uniform(-0.01, 0.01) * unit, hy, rx, ry)
    neck = ((head[0], hy + 0.5 * ry), (cx, shoulder_y + 0.03 * unit), 0.45 * rx)
    return _Layout(height, width, unit, pose, hair_style, cx, head, shoulder_y, outline,
                   tuple(arms), tuple(hands), tuple(hole_seeds), neck)

"""Procedural portraits with ground-truth alpha and Layer-Diffusion-like alpha artifacts.

Real Layer Diffusion mattes have no ground truth, so the refinement is measured on synthetic
portraits that imitate them: a head with hair on a neck and a torso that leaves the frame at
the bottom, a fuzzy hair boundary with thin semi-transparent strands and curls, and in some
poses a large enclosed background hole (an arm on the hip). The same alpha is then damaged
the way the Layer Diffusion transparent decoder damages it:

* ``"interior"``: semi-transparent speckle (single pixels and small clusters at 0.85-0.99)
  inside hair, face and clothes, low-contrast blotches (0.5-0.95) in the clothing, and
  speckle chained to the genuine hair transition band (it starts inside the body and touches
  the soft edge, so only connectivity through the band tells it apart);
* ``"pinhole"``: fully transparent 2-6 px specular spots in the eyes and on a glossy spot;
* ``"debris"``: faint floating blobs and a smear (alpha 0.01-0.15) in the background that
  never touch the portrait;
* ``"frame_fade"``: the bottom 2-4 % rows of the body fade to about 0.85-0.97 towards the
  image border.

Artifacts only touch pixels that are fully opaque (interior, pinhole, frame fade) or fully
transparent (debris) in the ground truth, so the genuine transition band and the strands are
never altered. Every value is quantised to multiples of 1/255 (as in an 8-bit PNG) and every
injected change is at least 3/255, so ``alpha_artifacts != alpha_true`` is exactly the union
of the artifact masks.

Everything is deterministic from the seed and uses numpy, OpenCV and SciPy only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import cv2
import numpy as np
from scipy import ndimage

from ..base.validation import as_alpha, check_same_size
from .synthetic_artifacts import _inject_artifacts
from .synthetic_shapes import (HAIR_STYLES, _Layout, _angular_series, _capsule_coverage,
                               _check_seed, _check_size, _distance_inside, _ellipse_coverage,
                               _make_layout, _over, _polygon_coverage, _quantise,
                               _smooth_noise)

__all__ = [
    "ARTIFACT_FAMILIES",
    "HAIR_STYLES",
    "POSES",
    "REPAIR_TOLERANCE",
    "SyntheticPortrait",
    "evaluate_refinement",
    "make_dataset",
    "make_portrait",
    "matting_errors",
    "pose_for_seed",
]

#: Keys of :attr:`SyntheticPortrait.artifact_masks`, in the order they are injected.
ARTIFACT_FAMILIES = ("interior", "pinhole", "debris", "frame_fade")

#: Poses cycle with the seed (``POSES[seed % 3]``); only ``"arm_on_hip"`` has an enclosed hole.
POSES = ("arm_on_hip", "head_and_shoulders", "bust")


#: A refined pixel counts as repaired when it is this close to the ground truth (2 levels of 8 bits).
REPAIR_TOLERANCE = 2.0 / 255.0




@dataclass(frozen=True, eq=False)
class SyntheticPortrait:
    """One procedural portrait with its ground truth and its damaged alpha.

    All arrays are read-only (the dataclass is frozen); copy them before editing.

    Attributes
    ----------
    rgb : float32 ndarray [H, W, 3], 0..1
        Foreground colour (skin, hair, clothing with texture); where alpha is 0 it holds an
        extension of the hair colour, as a padded Layer Diffusion foreground would.
    alpha_true : float32 ndarray [H, W], 0..1
        Ground-truth alpha, multiples of 1/255, 1 = opaque portrait.
    alpha_artifacts : float32 ndarray [H, W], 0..1
        ``alpha_true`` with the Layer-Diffusion-like artifacts injected.
    artifact_masks : dict[str, bool ndarray [H, W]]
        One mask per family in :data:`ARTIFACT_FAMILIES`: the pixels that family changed.
        The masks are disjoint and their union is ``alpha_artifacts != alpha_true``.
    transition_band : bool ndarray [H, W]
        Pixels with ``0 < alpha_true < 1``, dilated by 2 px (a 5x5 square).
    seed : int
        The seed the portrait was made from.
    pose : str
        One of :data:`POSES`.
    hair_style : str
        One of :data:`HAIR_STYLES`.
    enclosed_hole : bool ndarray [H, W]
        Fully transparent pixels of the large enclosed background hole (between the arm and
        the torso); all False when the pose has none. Not connected to the image border.
    """

    rgb: np.ndarray
    alpha_true: np.ndarray
    alpha_artifacts: np.ndarray
    artifact_masks: Mapping[str, np.ndarray]
    transition_band: np.ndarray
    seed: int
    pose: str
    hair_style: str
    enclosed_hole: np.ndarray

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        return (int(self.alpha_true.shape[0]), int(self.alpha_true.shape[1]))


def pose_for_seed(seed: int) -> str:
    """Return the pose :func:`make_portrait` uses for ``seed`` (``POSES[seed % 3]``).

    Seeds with ``seed % 3 == 0`` give ``"arm_on_hip"``, the pose with a large enclosed
    background hole.
    """
    return POSES[_check_seed(seed) % len(POSES)]


# ----------------------------------------------------------------------------------------
# ground truth


@dataclass
class _Truth:
    alpha: np.ndarray
    body: np.ndarray  # coverage of the opaque body (head, neck, torso, arms), 0..1
    hair_sd: np.ndarray  # signed distance to the hair boundary, px, negative inside
    hair_alpha: np.ndarray
    strands: np.ndarray
    parts: dict  # coverage per colour part
    eyes: list
    hole: np.ndarray  # bool, fully transparent pixels of the designed enclosed hole(s)


def _hair_mass(rng, layout: _Layout, xx, yy) -> np.ndarray:
    hx, hy, rx, ry = layout.head
    style = layout.hair_style
    volume = {"short": rng.uniform(0.06, 0.14), "long": rng.uniform(0.1, 0.2), "curly": rng.uniform(0.28, 0.45)}[style]
    lump = {"short": 0.03, "long": 0.04, "curly": 0.08}[style]
    hcy = hy - 0.1 * ry
    ax = rx * (1.05 + volume)
    ay = ry * (1.1 + volume)
    theta = np.arctan2(yy - np.float32(hcy), xx - np.float32(hx))
    modulation = lump * _angular_series(rng, theta, 14 if style == "curly" else 8, 0.8)
    q = np.sqrt(((xx - hx) / ax) ** 2 + ((yy - hcy) / ay) ** 2)
    cap = q < 1.0 + modulation
    ragged = _smooth_noise(rng, xx.shape, 0.06 * layout.unit)
    if style == "short":
        cut = hy + rng.uniform(-0.15, 0.1) * ry + 0.05 * ry * ragged
        mass = cap & (yy < cut)
    elif style == "curly":
        cut = hy + rng.uniform(0.45, 0.8) * ry + 0.12 * ry * ragged
        mass = cap & (yy < cut)
    else:
        cap_cut = hy + 0.2 * ry
        long_end = layout.shoulder_y + rng.uniform(0.04, 0.22) * layout.unit
        curtain_half = ax * (1.0 + 0.06 * ragged) * (1.0 + 0.12 * np.clip((yy - hy) / max(long_end - hy, 1.0), 0, 1))
        end = long_end + 0.04 * layout.unit * ragged
        # Below the chin the hair hangs behind the neck: only the sides of the curtain show.
        hollow = (yy > hy + 0.55 * ry) & (np.abs(xx - hx) < layout.neck[2] * 0.8)
        curtain = (np.abs(xx - hx) < curtain_half) & (yy >= hcy) & (yy < end) & ~hollow
        mass = (cap & (yy < cap_cut)) | curtain
    # Ragged cuts can leave islands; a real hairdo is one piece attached to the head top.
    labels, count = ndimage.label(mass)
    if count > 1:
        top = (int(np.clip(round(hy - ry), 0, mass.shape[0] - 1)), int(np.clip(round(hx), 0, mass.shape[1] - 1)))
        keep = labels[top]
        if keep == 0:
            sizes = ndimage.sum_labels(mass, labels, index=np.arange(1, count + 1))
            keep = int(np.argmax(sizes)) + 1
        mass = labels == keep
    return mass


def _hair_alpha(rng, layout: _Layout, mass: np.ndarray, xx, yy):
    unit = layout.unit
    hx, hy, _, _ = layout.head
    d_out = _distance_inside(~mass)
    d_in = _distance_inside(mass)
    sd = d_out - d_in
    band = max(1.6, rng.uniform(0.01, 0.02) * unit)
    jitter = 0.45 * band * _smooth_noise(rng, mass.shape, 1.5 * band)
    ramp = np.clip(0.5 - (sd + jitter) / band, 0.0, 1.0)
    # Radial streaks: a fine random profile over the angle around the head, bent a little
    # with the distance so that the "hairs" are not perfectly straight.
    theta = np.arctan2(yy - np.float32(hy), xx - np.float32(hx))
    radius = np.sqrt((xx - hx) ** 2 + (yy - hy) ** 2)
    cells = max(64, int(2 * math.pi * 0.3 * unit / 1.3))
    profile = rng.random(cells + 1).astype(np.float32)
    profile[-1] = profile[0]
    position = ((theta / (2 * math.pi)) % 1.0) * cells + 0.6 * np.sin(radius / (0.02 * unit + 1.0))
    streak = np.interp(position % cells, np.arange(cells + 1, dtype=np.float32), profile).astype(np.float32)
    alpha = ramp**1.3 * (1.0 - 0.75 * (1.0 - ramp) * streak)
    return alpha.astype(np.float32), sd, band, streak


def _outward_picks(rng, candidates: np.ndarray, gx: np.ndarray, gy: np.ndarray, fraction: tuple,
                   bounds: tuple):
    """Random ``candidates`` pixels with their unit gradient direction, ``(y0, x0, nx, ny)``.

    ``clip(round(len(candidates) * uniform(*fraction)), *bounds)`` pixels are drawn (lazily, so
    the caller's own draws interleave); those where the gradient (``gx``, ``gy``) vanishes are
    passed over.
    """
    count = int(np.clip(round(len(candidates) * rng.uniform(*fraction)), *bounds))
    for _ in range(count):
        y0, x0 = candidates[rng.integers(len(candidates))]
        nx, ny = float(gx[y0, x0]), float(gy[y0, x0])
        norm = math.hypot(nx, ny)
        if norm >= 1e-6:
            yield y0, x0, nx / norm, ny / norm


def _draw_strands(rng, layout: _Layout, mass, sd, band, body) -> np.ndarray:
    """Thin semi-transparent strands and curls sticking out of the hair into the background."""
    height, width = mass.shape
    unit = layout.unit
    factor = max(1, min(4, 4096 // max(height, width)))
    canvas = np.zeros((height * factor, width * factor), dtype=np.uint8)
    smooth_sd = cv2.GaussianBlur(sd, (0, 0), max(1.0, band))
    gy, gx = np.gradient(smooth_sd)
    boundary = mass & ~ndimage.binary_erosion(mass)
    # Strands only leave the hair where there is background beyond it.
    outward_free = cv2.dilate((body > 0.02).astype(np.uint8), np.ones((3, 3), np.uint8),
                              iterations=max(1, int(0.02 * unit))) == 0
    candidates = np.argwhere(boundary & (body < 0.02) & outward_free)
    if len(candidates) == 0:
        candidates = np.argwhere(boundary & (body < 0.5))
    if len(candidates) == 0:
        return np.zeros(mass.shape, np.float32)
    width_scale = max(1.0, unit / 512.0)

    def to_canvas(x, y):
        return (int(round((x + 0.5) * factor - 0.5)), int(round((y + 0.5) * factor - 0.5)))

    for y0, x0, nx, ny in _outward_picks(rng, candidates, gx, gy, (0.025, 0.05), (3, 160)):
        tx, ty = -ny, nx
        length = max(3.0, rng.uniform(0.02, 0.1) * unit)
        bend = rng.uniform(-0.6, 0.6)
        wiggle = rng.uniform(0.0, 0.06)
        start = rng.uniform(0.5, 0.9) * band
        strand_width = float(np.clip(rng.uniform(0.8, 1.5) * width_scale, 1.0, 3.0))
        thickness = max(1, int(round(strand_width * factor)))
        opacity = rng.uniform(0.45, 0.95)
        fade = rng.uniform(0.5, 0.9) if rng.random() < 0.6 else 0.0
        steps = max(4, int(length / 1.5))
        t = np.linspace(0.0, 1.0, steps + 1)
        along = -start + (length + start) * t
        side = length * (bend * t * t + wiggle * np.sin(2 * math.pi * t * rng.uniform(1, 3)))
        px = x0 + nx * along + tx * side
        py = y0 + ny * along + ty * side
        # Strands end before any border (only the body leaves the frame).
        outside = (px < 3) | (py < 3) | (px > width - 4) | (py > height - 4)
        if outside.any():
            steps = int(np.argmax(outside)) - 1
        for i in range(steps):
            value = int(round(255 * opacity * (1.0 - fade * t[i])))
            cv2.line(canvas, to_canvas(px[i], py[i]), to_canvas(px[i + 1], py[i + 1]), value, thickness, cv2.LINE_8)
    if layout.hair_style == "curly" or rng.random() < 0.3:
        for y0, x0, nx, ny in _outward_picks(rng, candidates, gx, gy, (0.01, 0.025), (2, 80)):
            radius = max(2.0, rng.uniform(0.012, 0.03) * unit)
            offset = rng.uniform(0.2, 0.9) * radius
            center = (x0 + nx * offset, y0 + ny * offset)
            if min(center[0], center[1], width - 1 - center[0], height - 1 - center[1]) < radius + 4:
                continue
            axes = (max(1, int(radius * factor)), max(1, int(radius * rng.uniform(0.65, 1.0) * factor)))
            start_angle = rng.uniform(0, 360)
            sweep = rng.uniform(250, 360)
            thickness = max(1, int(round(np.clip(rng.uniform(1.2, 2.2) * width_scale, 1.0, 3.0) * factor)))
            value = int(round(255 * rng.uniform(0.55, 0.9)))
            cv2.ellipse(canvas, to_canvas(*center), axes, rng.uniform(0, 180), start_angle,
                        start_angle + sweep, value, thickness, cv2.LINE_8)
    if factor > 1:
        return cv2.resize(canvas, (width, height), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    return canvas.astype(np.float32) / 255.0


def _render_truth(rng, layout: _Layout) -> _Truth:
    height, width = layout.height, layout.width
    unit = layout.unit
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    hx, hy, rx, ry = layout.head
    shape = (height, width)

    torso = _polygon_coverage(shape, layout.torso_outline)
    neck_p0, neck_p1, neck_r = layout.neck
    neck = _capsule_coverage(xx, yy, neck_p0, neck_p1, neck_r)
    head = _ellipse_coverage(xx, yy, hx, hy, rx, ry)
    arms = np.zeros(shape, np.float32)
    for p0, p1, radius in layout.arms:
        arms = np.maximum(arms, _capsule_coverage(xx, yy, p0, p1, radius))
    hands = np.zeros(shape, np.float32)
    for x, y, r in layout.hands:
        hands = np.maximum(hands, _ellipse_coverage(xx, yy, x, y, r * 1.1, r))
    ears = np.zeros(shape, np.float32)
    if layout.hair_style == "short":
        for side in (-1.0, 1.0):
            ears = np.maximum(ears, _ellipse_coverage(xx, yy, hx + side * rx * 0.98, hy + 0.05 * ry,
                                                      0.17 * rx, 0.28 * ry))
    body = np.maximum.reduce([torso, neck, head, arms, hands, ears])
    # A slight blur gives the body the 2-3 px soft edge of a real matte; the interior stays 1.
    body = cv2.GaussianBlur(body, (0, 0), max(0.5, 0.0012 * unit))

    mass = _hair_mass(rng, layout, xx, yy)
    hair_alpha, sd, band, streak = _hair_alpha(rng, layout, mass, xx, yy)
    strands = _draw_strands(rng, layout, mass, sd, band, body)
    alpha = _quantise(np.maximum.reduce([body, hair_alpha, strands]))
    # Exactly opaque where the body is (blur and quantisation can leave 254.6/255 inside).
    alpha[body >= 1.0 - 0.5 / 255.0] = 1.0
    # Strands that fade out along their length or curls drawn beside the hair can leave
    # fragments not attached to the portrait; in the truth the portrait is a single piece.
    labels, count = ndimage.label(alpha > 0.0, structure=np.ones((3, 3), bool))
    if count > 1:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        alpha[(labels != int(np.argmax(sizes))) & (labels > 0)] = 0.0
        strands = np.where(labels == int(np.argmax(sizes)), strands, 0.0).astype(np.float32)
    hole = _settle_holes(layout, alpha)
    eye_y = hy + rng.uniform(-0.02, 0.08) * ry
    eye_dx = rng.uniform(0.34, 0.42) * rx
    eye_r = rng.uniform(0.16, 0.2) * rx
    eyes = [(hx - eye_dx, eye_y, eye_r), (hx + eye_dx, eye_y, eye_r)]
    parts = {"torso": np.maximum(torso, arms), "neck": neck, "hands": hands, "ears": ears, "streak": streak}
    return _Truth(alpha, body, sd, hair_alpha, strands, parts, eyes, hole)


# ----------------------------------------------------------------------------------------
# colour

_SKIN = np.array([[0.96, 0.80, 0.69], [0.90, 0.70, 0.56], [0.78, 0.57, 0.42], [0.62, 0.43, 0.30],
                  [0.45, 0.30, 0.21], [0.98, 0.86, 0.78]], np.float32)
_HAIR = np.array([[0.06, 0.05, 0.05], [0.18, 0.11, 0.07], [0.35, 0.22, 0.12], [0.75, 0.60, 0.35],
                  [0.55, 0.22, 0.10], [0.62, 0.62, 0.62]], np.float32)
_CLOTH = np.array([[0.08, 0.10, 0.18], [0.06, 0.06, 0.07], [0.20, 0.22, 0.25], [0.10, 0.20, 0.12],
                   [0.35, 0.08, 0.10], [0.22, 0.30, 0.45], [0.75, 0.72, 0.68]], np.float32)
_SHIRT = np.array([[0.95, 0.95, 0.95], [0.80, 0.86, 0.95], [0.92, 0.90, 0.84]], np.float32)
_IRIS = np.array([[0.30, 0.18, 0.10], [0.25, 0.40, 0.55], [0.30, 0.42, 0.25], [0.12, 0.08, 0.06]], np.float32)


def _render_rgb(rng, layout: _Layout, truth: _Truth):
    """Colour of every part; returns rgb [H, W, 3] and an ownership map (0 bg, 1 hair, 2 skin, 3 cloth)."""
    height, width = layout.height, layout.width
    unit = layout.unit
    shape = (height, width)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    hx, hy, rx, ry = layout.head
    skin = _SKIN[rng.integers(len(_SKIN))] * rng.uniform(0.95, 1.03)
    hair = _HAIR[rng.integers(len(_HAIR))] * rng.uniform(0.9, 1.1)
    # Dark clothing most of the time: that is where Layer Diffusion blotches appear.
    cloth = _CLOTH[rng.integers(4)] if rng.random() < 0.7 else _CLOTH[rng.integers(len(_CLOTH))]
    shirt = _SHIRT[rng.integers(len(_SHIRT))]
    iris = _IRIS[rng.integers(len(_IRIS))]

    fine = _smooth_noise(rng, shape, 1.0)
    low = _smooth_noise(rng, shape, 0.15 * unit)
    streak = truth.parts["streak"]
    hair_rgb = hair[None, None, :] * (0.6 + 0.55 * streak[..., None] + 0.08 * low[..., None]) \
        + 0.03 * fine[..., None]
    rgb = np.broadcast_to(hair_rgb, (height, width, 3)).astype(np.float32).copy()
    owner = np.zeros(shape, np.uint8)

    folds = np.sin((xx * 0.8 + yy * 0.3) / (0.04 * unit) + 2.0 * low).astype(np.float32)
    cloth_rgb = cloth[None, None, :] * (0.85 + 0.1 * folds[..., None] + 0.05 * low[..., None]) \
        + 0.02 * fine[..., None]
    rgb = _over(rgb, cloth_rgb, truth.parts["torso"])
    # Open collar: a V of shirt or skin below the neck.
    v_top = layout.shoulder_y - 0.02 * unit
    v_half = 0.6 * rx
    v_depth = rng.uniform(0.12, 0.25) * unit
    collar = _polygon_coverage(shape, np.array([(hx - v_half, v_top), (hx + v_half, v_top), (hx, v_top + v_depth)]))
    collar *= truth.parts["torso"]
    collar_colour = shirt if rng.random() < 0.6 else skin
    rgb = _over(rgb, collar_colour * (0.95 + 0.03 * fine[..., None]), collar)

    shade = np.clip(1.0 - 0.25 * (((xx - hx) / (1.2 * rx)) ** 2 + ((yy - hy) / (1.2 * ry)) ** 2), 0.6, 1.0)
    skin_rgb = skin[None, None, :] * (shade[..., None] * (0.97 + 0.03 * low[..., None])) + 0.012 * fine[..., None]
    for name in ("neck", "hands", "ears"):
        rgb = _over(rgb, skin_rgb, truth.parts[name])
    # Hair behind the head (long hair falls in front of the shoulders).
    hair_cov = np.clip(truth.hair_alpha + truth.strands, 0.0, 1.0)
    rgb = _over(rgb, hair_rgb, hair_cov)
    # Face: the head below a hairline; long and curly hair also hides the sides of the head.
    hairline = hy - rng.uniform(0.35, 0.55) * ry + 0.15 * ry * ((xx - hx) / rx) ** 2
    side_cover = 0.92 if layout.hair_style == "short" else rng.uniform(0.8, 0.88)
    face = _ellipse_coverage(xx, yy, hx, hy + 0.04 * ry, side_cover * rx, 0.96 * ry)
    face *= np.clip(yy - hairline + 0.5, 0.0, 1.0)
    rgb = _over(rgb, skin_rgb, face)

    owner[(truth.parts["torso"] > 0.5)] = 3
    owner[(truth.parts["neck"] > 0.5) | (truth.parts["hands"] > 0.5) | (truth.parts["ears"] > 0.5)] = 2
    owner[(hair_cov > 0.5)] = 1
    owner[face > 0.5] = 2
    owner[truth.alpha <= 0] = 0

    # Eyebrows, eyes, nose, mouth.
    for ex, ey, er in truth.eyes:
        brow = _ellipse_coverage(xx, yy, ex, ey - 1.6 * er, 1.5 * er, 0.35 * er)
        rgb = _over(rgb, hair * 0.8, brow)
        white = _ellipse_coverage(xx, yy, ex, ey, 1.3 * er, 0.7 * er)
        rgb = _over(rgb, np.array([0.93, 0.92, 0.9], np.float32), white)
        iris_cov = _ellipse_coverage(xx, yy, ex, ey, 0.62 * er, 0.62 * er) * white
        rgb = _over(rgb, iris, iris_cov)
        pupil = _ellipse_coverage(xx, yy, ex, ey, 0.3 * er, 0.3 * er) * white
        rgb = _over(rgb, np.array([0.02, 0.02, 0.02], np.float32), pupil)
    nose = _ellipse_coverage(xx, yy, hx, hy + 0.3 * ry, 0.14 * rx, 0.08 * ry)
    rgb = _over(rgb, skin_rgb * 0.82, nose * 0.5)
    mouth = _ellipse_coverage(xx, yy, hx, hy + 0.58 * ry, 0.32 * rx, 0.07 * ry)
    lips = np.clip(skin * np.array([0.95, 0.6, 0.6], np.float32), 0.0, 1.0)
    rgb = _over(rgb, lips, mouth)
    return np.clip(rgb, 0.0, 1.0).astype(np.float32), owner


def _settle_holes(layout: _Layout, alpha: np.ndarray) -> np.ndarray:
    """Keep the designed enclosed hole(s), fill every other pocket the body closes in.

    Shapes drawn independently can trap small background pockets (hair resting on a shoulder,
    a curtain of hair beside the neck). A real matte would show them as part of the body, and
    the connectivity prior relies on every transition pixel reaching the border or a large
    hole, so such pockets become opaque. ``alpha`` is modified in place; the return value is
    the mask of fully transparent pixels of the kept holes.
    """
    height, width = alpha.shape
    # 4-connectivity: a pocket that leaks only through a diagonal pixel step still counts as
    # closed, so the truth is consistent with refiners using either connectivity.
    labels, _ = ndimage.label(alpha < 1.0)
    border = set(np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])).tolist())
    border.discard(0)
    keep = set(border)
    hole_labels = set()
    radius = max(2, int(round(0.04 * layout.unit)))
    for x, y in layout.hole_seeds:
        y0, y1 = max(0, int(y) - radius), min(height, int(y) + radius + 1)
        x0, x1 = max(0, int(x) - radius), min(width, int(x) + radius + 1)
        window = labels[y0:y1, x0:x1][alpha[y0:y1, x0:x1] <= 0.0]
        window = window[~np.isin(window, list(border))] if border else window
        if window.size:
            values, counts = np.unique(window, return_counts=True)
            hole_labels.add(int(values[np.argmax(counts)]))
    keep |= hole_labels
    pockets = (labels > 0) & ~np.isin(labels, list(keep))
    alpha[pockets] = 1.0
    if not hole_labels:
        return np.zeros(alpha.shape, bool)
    return np.isin(labels, list(hole_labels)) & (alpha <= 0.0)


def _read_only(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    array.setflags(write=False)
    return array


# ----------------------------------------------------------------------------------------
# public API


def make_portrait(seed: int, size: int | tuple[int, int] = 512) -> SyntheticPortrait:
    """Make one procedural portrait with ground truth and Layer-Diffusion-like artifacts.

    Parameters
    ----------
    seed : int
        Non-negative seed; the same seed and size always give identical arrays. The pose is
        ``POSES[seed % 3]`` (see :func:`pose_for_seed`); hair style, proportions, colours
        and artifacts are drawn from the seed.
    size : int or (int, int)
        Output size, a side length for a square image or ``(height, width)``. Every feature
        scales with ``min(height, width)``; each side must be at least 32 px (64 to 1024 is
        the intended range).

    Returns
    -------
    SyntheticPortrait
        ``rgb`` float32 [H, W, 3], ``alpha_true`` and ``alpha_artifacts`` float32 [H, W] in
        0..1, per-family ``artifact_masks`` (bool [H, W]), ``transition_band`` (bool [H, W])
        and ``enclosed_hole`` (bool [H, W]).

    Raises
    ------
    ValueError
        Negative or non-integer seed, or a size that is not an int / (height, width) pair of
        ints of at least 32.
    """
    seed = _check_seed(seed)
    height, width = _check_size(size)
    pose = POSES[seed % len(POSES)]
    rng = np.random.default_rng(seed)
    layout = _make_layout(rng, height, width, pose)
    truth = _render_truth(rng, layout)
    rgb, owner = _render_rgb(rng, layout, truth)
    alpha_artifacts, masks = _inject_artifacts(rng, layout, truth, owner, rgb)
    alpha_true = truth.alpha
    semi = (alpha_true > 0.0) & (alpha_true < 1.0)
    band = cv2.dilate(semi.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    hole = truth.hole
    return SyntheticPortrait(
        rgb=_read_only(np.clip(rgb, 0.0, 1.0).astype(np.float32)),
        alpha_true=_read_only(alpha_true.astype(np.float32)),
        alpha_artifacts=_read_only(alpha_artifacts),
        artifact_masks={name: _read_only(masks[name]) for name in ARTIFACT_FAMILIES},
        transition_band=_read_only(band),
        seed=seed,
        pose=pose,
        hair_style=layout.hair_style,
        enclosed_hole=_read_only(hole),
    )


def make_dataset(count: int, size: int | tuple[int, int] = 512, seed: int = 0) -> list[SyntheticPortrait]:
    """Make ``count`` portraits with seeds ``seed, seed + 1, ...`` (poses cycle through :data:`POSES`).

    Parameters
    ----------
    count : int
        Number of portraits, >= 0.
    size : int or (int, int)
        As in :func:`make_portrait`.
    seed : int
        First seed.

    Returns
    -------
    list of SyntheticPortrait
    """
    if isinstance(count, (bool, np.bool_)) or not isinstance(count, (int, np.integer)) or count < 0:
        raise ValueError(f"count must be a non-negative int; got {count!r}.")
    seed = _check_seed(seed)
    return [make_portrait(seed + i, size) for i in range(int(count))]


def matting_errors(pred_alpha, true_alpha, region=None) -> dict:
    """SAD and MSE between a predicted and a ground-truth alpha, as matting papers report them.

    Parameters
    ----------
    pred_alpha, true_alpha : array [H, W]
        Float in 0..1, or uint8 / uint16 (scaled to 0..1).
    region : bool array [H, W], optional
        Restrict the errors to these pixels (e.g. the transition band). An empty region gives
        zeros.

    Returns
    -------
    dict
        ``sad``: sum |pred - true| / 1000 (alpha on the 0..1 scale);
        ``mse``: mean (pred - true)^2 on the 0..1 scale; ``mse_x1e3``: ``mse * 1000``;
        ``pixels``: number of pixels compared.
    """
    pred = as_alpha(pred_alpha, "pred_alpha")
    true = as_alpha(true_alpha, "true_alpha")
    check_same_size(pred, true, "pred_alpha", "true_alpha")
    diff = pred.astype(np.float64) - true.astype(np.float64)
    if region is not None:
        region = np.asarray(region)
        if region.dtype != np.bool_:
            raise ValueError(f"region must be a bool array [H, W]; got dtype {region.dtype}.")
        if region.shape != pred.shape:
            raise ValueError(
                f"region has shape {tuple(region.shape)} but the alphas have {tuple(pred.shape)}; "
                "pass a bool mask of the same height and width."
            )
        diff = diff[region]
    pixels = int(diff.size)
    if pixels == 0:
        return {"sad": 0.0, "mse": 0.0, "mse_x1e3": 0.0, "pixels": 0}
    sad = float(np.abs(diff).sum() / 1000.0)
    mse = float(np.mean(diff * diff))
    return {"sad": sad, "mse": mse, "mse_x1e3": mse * 1000.0, "pixels": pixels}


def _refined_alpha(result, shape) -> np.ndarray:
    """Alpha out of whatever a refinement returned: an array, a result with ``.alpha``, or a tuple."""
    if hasattr(result, "alpha"):
        result = result.alpha
    elif isinstance(result, tuple):
        result = result[0]
    refined = as_alpha(result, "refined alpha")
    if refined.shape != tuple(shape):
        raise ValueError(
            f"the refinement returned an alpha of shape {refined.shape}, expected {tuple(shape)}."
        )
    return refined


def evaluate_refinement(
    portraits: Sequence[SyntheticPortrait],
    refine_fn: Callable[[np.ndarray], object],
) -> dict:
    """Measure how much a refinement repairs the synthetic artifacts, and what it breaks.

    Parameters
    ----------
    portraits : sequence of SyntheticPortrait
        At least one.
    refine_fn : callable
        Called as ``refine_fn(alpha)`` with a writable float32 [H, W] copy of
        ``alpha_artifacts``; may return the refined alpha (array in 0..1 or uint8), an object
        with an ``alpha`` attribute (such as ``RefineResult``) or a tuple whose first item is
        the alpha.

    Returns
    -------
    dict
        ``whole`` and ``band``: ``sad_before``, ``sad_after`` (mean SAD per image, /1000),
        ``mse_before``, ``mse_after`` (mean MSE per image, 0..1 scale) on the whole image and
        on the true transition band; before is ``alpha_artifacts`` vs ``alpha_true``, after is
        the refined alpha vs ``alpha_true``.
        ``repaired``: per family in :data:`ARTIFACT_FAMILIES`, the fraction of its pixels
        (over all portraits) whose refined value is within 2/255 of the truth (NaN when the
        family has no pixels).
        ``band_worse_fraction``: fraction of transition-band pixels whose error grew by one
        8-bit level (1/255) or more (compared with half a level of slack for float rounding).
        ``count``: number of portraits; ``band_pixels`` and ``family_pixels``: pixel totals.
    """
    portraits = list(portraits)
    if not portraits:
        raise ValueError("evaluate_refinement needs at least one portrait; got none.")
    if not callable(refine_fn):
        raise ValueError(f"refine_fn must be callable; got {type(refine_fn).__name__}.")
    sums = {region: {"sad_before": 0.0, "sad_after": 0.0, "mse_before": 0.0, "mse_after": 0.0}
            for region in ("whole", "band")}
    repaired = {name: 0 for name in ARTIFACT_FAMILIES}
    family_pixels = {name: 0 for name in ARTIFACT_FAMILIES}
    band_pixels = 0
    band_worse = 0
    for portrait in portraits:
        truth = portrait.alpha_true
        before = portrait.alpha_artifacts
        after = _refined_alpha(refine_fn(np.array(before, dtype=np.float32, copy=True)), truth.shape)
        for region_name, region in (("whole", None), ("band", portrait.transition_band)):
            err_before = matting_errors(before, truth, region)
            err_after = matting_errors(after, truth, region)
            sums[region_name]["sad_before"] += err_before["sad"]
            sums[region_name]["sad_after"] += err_after["sad"]
            sums[region_name]["mse_before"] += err_before["mse"]
            sums[region_name]["mse_after"] += err_after["mse"]
        error_after = np.abs(after - truth)
        for name in ARTIFACT_FAMILIES:
            mask = portrait.artifact_masks[name]
            family_pixels[name] += int(mask.sum())
            repaired[name] += int((error_after[mask] < REPAIR_TOLERANCE).sum())
        band = portrait.transition_band
        grew = error_after[band] - np.abs(before - truth)[band]
        band_pixels += int(band.sum())
        band_worse += int((grew >= 0.5 / 255.0).sum())
    n = len(portraits)
    return {
        "whole": {k: v / n for k, v in sums["whole"].items()},
        "band": {k: v / n for k, v in sums["band"].items()},
        "repaired": {name: (repaired[name] / family_pixels[name] if family_pixels[name] else float("nan"))
                     for name in ARTIFACT_FAMILIES},
        "band_worse_fraction": band_worse / band_pixels if band_pixels else 0.0,
        "count": n,
        "band_pixels": band_pixels,
        "family_pixels": family_pixels,
    }

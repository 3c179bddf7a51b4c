"""Family "metaball_strands": metaball bodies with explicit anti-aliased hair strands.

Silhouette: the level set of a sum of Gaussian blobs (head, neck, a chain of shoulder
blobs, sometimes a raised hand or a second shoulder line leaving a side of the frame), with a
blurred (Gaussian, not linear) soft edge of random width.

Hair: an opaque hair mass (dense hair near the scalp is opaque in real mattes) and a few
hundred curved strands drawn as anti-aliased polylines on a 4x canvas, each group with its
own opacity, rooted inside the hair mass and running outward (some curl back on
themselves); their coverages combine as ``1 - prod(1 - c)``.

Artifacts (they also hit the soft edge and the hair, not only opaque or empty pixels):

* ``hair_flicker``: patches of strand and soft-edge pixels dimmed by up to 30%;
* ``cloud``: smooth low-frequency transparency (alpha 0.45..0.95) over dark clothing that
  can reach the contour;
* ``salt``: isolated semi-transparent pixels anywhere in the opaque body;
* ``pinhole``: transparent specular spots (1-3 px);
* ``debris``: faint thin lines and dots floating in the background;
* ``frame_fade``: the body dims toward every border it touches.
"""
from __future__ import annotations

import cv2
import numpy as np

from .common import FamilyPortrait, quantise, smooth_noise, supersampled

NAME = "metaball_strands"


def _blobs(rng, size):
    """(x, y, radius) of the metaball centres, the head centre and radius."""
    cx = size * rng.uniform(0.4, 0.6)
    head_y = size * rng.uniform(0.28, 0.38)
    head_r = size * rng.uniform(0.12, 0.16)
    blobs = [(cx, head_y, head_r), (cx, head_y + head_r * 0.5, head_r * 0.8),
             (cx, head_y + head_r * 1.4, head_r * 0.5),
             # The hair mass: dense hair near the scalp is opaque; strands leave it.
             (cx, head_y - head_r * 0.1, head_r * rng.uniform(1.1, 1.25))]
    shoulder_y = head_y + head_r * rng.uniform(1.9, 2.3)
    half = size * rng.uniform(0.2, 0.33)
    for t in np.linspace(-1, 1, 9):
        blobs.append((cx + t * half, shoulder_y + abs(t) ** 2 * size * 0.05, size * rng.uniform(0.08, 0.11)))
    for row in np.arange(shoulder_y, size * 1.2, size * 0.08):
        for t in np.linspace(-1, 1, 7):
            blobs.append((cx + t * half * 1.05, row, size * 0.1))
    if rng.random() < 0.4:  # a raised hand beside the head
        side = rng.choice((-1.0, 1.0))
        hx = cx + side * size * rng.uniform(0.25, 0.32)
        for t in np.linspace(0, 1, 6):
            blobs.append((hx + side * t * size * 0.02, shoulder_y - t * size * 0.3, size * 0.045))
    return blobs, (cx, head_y, head_r)


def _silhouette(rng, size):
    blobs, head = _blobs(rng, size)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    field = np.zeros((size, size), np.float32)
    for x, y, r in blobs:
        field += np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (r * r))
    return field >= 0.5, head


def _strands(rng, size, head):
    cx, cy, radius = head
    count = int(rng.integers(150, 350))
    layers = []

    def draw_group(opacity_range, group):
        def draw(canvas, factor):
            for _ in range(group):
                angle = rng.uniform(-np.pi * 0.95, -np.pi * 0.05)  # upper half of the head
                root = radius * rng.uniform(0.8, 0.95)  # inside the opaque hair mass
                start = np.array([cx + np.cos(angle) * root, cy - radius * 0.1 + np.sin(angle) * root])
                direction = angle + rng.normal(0, 0.35)
                length = radius * rng.uniform(0.3, 0.9)
                bend = rng.normal(0, 2.5 if rng.random() < 0.15 else 0.6)  # a few curl
                t = np.linspace(0, 1, 24)[:, None]
                heading = direction + bend * t[:, 0]
                steps = np.stack((np.cos(heading), np.sin(heading)), 1) * (length / 24)
                points = start + np.cumsum(steps, 0)
                cv2.polylines(canvas, [np.round(points * factor * 16).astype(np.int32)], False, 255,
                              thickness=int(rng.integers(1, 3)), lineType=cv2.LINE_AA, shift=4)
        return draw

    # Groups of strands with their own opacity: coverage combines as 1 - prod(1 - c).
    transparency = np.ones((size, size), np.float32)
    for _ in range(6):
        coverage = supersampled((size, size), 4, draw_group(None, count // 6))
        transparency *= 1.0 - coverage * rng.uniform(0.35, 1.0)
        layers.append(coverage)
    return 1.0 - transparency


def _truth(rng, size):
    body, head = _silhouette(rng, size)
    sigma = rng.uniform(0.7, 2.5)
    edge = cv2.GaussianBlur(body.astype(np.float32), (0, 0), sigma)
    hair = _strands(rng, size, head)
    alpha = 1.0 - (1.0 - edge) * (1.0 - hair)
    return quantise(alpha), body


def _colour(rng, size, truth):
    backdrop = rng.uniform(0.1, 0.95, 3).astype(np.float32)
    yy = np.mgrid[:size, :size][0].astype(np.float32) / size
    top = rng.uniform(0.3, 0.9, 3).astype(np.float32)
    bottom = rng.uniform(0.0, 0.4, 3).astype(np.float32)
    fg = top + (bottom - top) * np.clip((yy[..., None] - 0.45) * 4, 0, 1)
    a = truth[..., None]
    return np.clip(fg * a + backdrop * (1 - a), 0, 1).astype(np.float32)


def _hair_flicker(rng, raw, truth):
    """Patches of the soft edge and the strands dimmed by up to 30%."""
    where = (truth > 0) & (truth < 1)
    patches = smooth_noise(rng, raw.shape, 2.0)
    factor = 1.0 - np.clip((patches - 1.8) * 0.5, 0.0, 0.3)
    raw[where] *= factor[where]
    return where & (factor < 0.99)


def _cloud(rng, raw, truth, body):
    size = raw.shape[0]
    lower = np.zeros(raw.shape, bool)
    lower[int(size * rng.uniform(0.5, 0.65)):] = True
    field = smooth_noise(rng, raw.shape, size * rng.uniform(0.01, 0.03))
    where = (field > rng.uniform(1.2, 1.8)) & lower & (truth > 0.5)
    depth = np.clip((field - 1.1) * rng.uniform(0.2, 0.5), 0.05, 0.55)
    raw[where] = np.minimum(raw[where], 1.0 - depth[where])
    return where


def _salt(rng, raw, truth):
    opaque = np.flatnonzero((truth >= 1.0).ravel())
    count = min(int(rng.integers(100, 600)), opaque.size)
    picks = rng.choice(opaque, count, replace=False)
    flat = raw.reshape(-1)
    flat[picks] = rng.uniform(0.3, 0.98, count)
    mask = np.zeros(raw.size, bool)
    mask[picks] = True
    return mask.reshape(raw.shape)


def _pinholes(rng, raw, truth):
    inner = cv2.erode((truth >= 1.0).astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    spots = np.argwhere(inner)
    mask = np.zeros(raw.shape, np.uint8)
    if len(spots):
        for row, col in spots[rng.choice(len(spots), min(int(rng.integers(2, 8)), len(spots)), replace=False)]:
            cv2.circle(mask, (int(col), int(row)), int(rng.integers(0, 3)), 1, -1)
    raw[mask.astype(bool)] = 0.0
    return mask.astype(bool)


def _debris(rng, raw, truth):
    size = raw.shape[0]
    canvas = np.zeros(raw.shape, np.uint8)
    for _ in range(int(rng.integers(2, 8))):
        p0 = rng.integers(0, size, 2)
        p1 = p0 + rng.integers(-size // 8, size // 8, 2)
        cv2.line(canvas, tuple(int(v) for v in p0), tuple(int(v) for v in p1), int(rng.integers(5, 60)), 1)
    for _ in range(int(rng.integers(5, 20))):
        canvas[int(rng.integers(0, size)), int(rng.integers(0, size))] = int(rng.integers(3, 80))
    clear = cv2.dilate((truth > 0).astype(np.uint8), np.ones((7, 7), np.uint8)) == 0
    where = (canvas > 0) & clear
    raw[where] = canvas[where] / 255.0
    return where


def _frame_fade(rng, raw, truth):
    mask = np.zeros(raw.shape, bool)
    depth = int(rng.integers(2, max(3, raw.shape[0] // 50)))
    ramp = np.linspace(1.0, rng.uniform(0.75, 0.95), depth, dtype=np.float32)
    for view_raw, view_truth, view_mask in (
            (raw[::-1], truth[::-1], mask[::-1]), (raw.T, truth.T, mask.T), (raw.T[::-1], truth.T[::-1], mask.T[::-1])):
        where = view_truth[:depth][::-1] >= 1.0  # rows counted from the border inward
        strip = view_raw[:depth][::-1]
        strip[where] = (strip * ramp[:, None])[where]  # 1 inside, dimmest at the border
        view_mask[:depth][::-1] |= where
    return mask


def make_portrait(seed: int, size: int = 384) -> FamilyPortrait:
    """One deterministic portrait of this family (``size`` x ``size`` pixels)."""
    rng = np.random.default_rng([seed, 0xB10B])
    truth, body = _truth(rng, size)
    raw = truth.copy()
    artifacts = {
        "hair_flicker": _hair_flicker(rng, raw, truth),
        "cloud": _cloud(rng, raw, truth, body),
        "salt": _salt(rng, raw, truth),
        "pinhole": _pinholes(rng, raw, truth),
        "debris": _debris(rng, raw, truth),
        "frame_fade": _frame_fade(rng, raw, truth),
    }
    raw = quantise(raw)
    rgb = _colour(rng, size, truth)
    return FamilyPortrait(NAME, seed, rgb, truth, raw, artifacts)

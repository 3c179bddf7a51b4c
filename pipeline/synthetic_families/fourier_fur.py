"""Family "fourier_fur": radial-Fourier heads with a fur fringe, bell-curve shoulders.

Silhouette: a head whose radius is a random Fourier series of the angle, a neck, and
shoulders under a bell-shaped curve that leave the frame at the bottom (and sometimes at a
side); most portraits have the gap between an arm and the torso: an enclosed background hole.

Hair: a fur fringe around the upper head. Its alpha is oriented noise (fine across the
radial direction, long along it) that fades with the distance from the scalp, so it has
see-through gaps between tufts reaching the true background.

Artifacts (the Layer Diffusion failures the refinement issue measured):

* ``near_edge_speckle``: single pixels and 2-3 px clusters at 0.55..0.97, 2 to 16 px inside
  the opaque body, some chained to the soft edge;
* ``straddling_blotch``: elliptic blotches centred on the outer contour that dim everything
  they cover (body, soft edge and fur) by a factor 0.55..0.9;
* ``interior_blotch``: low-frequency dimming of dark clothing (to 0.6..0.95) deep inside;
* ``pinhole``: fully transparent 1-4 px spots inside the body;
* ``debris``: faint (0.02..0.3) floating specks and blobs in the background;
* ``frame_fade``: the body dims toward the border where it leaves the frame.
"""
from __future__ import annotations

import cv2
import numpy as np

from .common import FamilyPortrait, quantise, signed_distance, smooth_noise, soft_edge

NAME = "fourier_fur"


def _silhouette(rng, size):
    """Binary body without hair, the head mask and the head centre/radius."""
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    cx = size * rng.uniform(0.42, 0.58)
    cy = size * rng.uniform(0.30, 0.40)
    radius = size * rng.uniform(0.13, 0.18)
    theta = np.arctan2(yy - cy, xx - cx)
    wobble = np.ones_like(theta)
    for k in range(2, 6):
        wobble += rng.uniform(0.0, 0.05 / (k - 1)) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    head = np.hypot((xx - cx) * rng.uniform(0.85, 1.0), yy - cy) <= radius * wobble
    neck_half = radius * rng.uniform(0.35, 0.5)
    neck = (np.abs(xx - cx) <= neck_half) & (yy >= cy) & (yy <= cy + radius * 1.6)
    # Shoulders: y above which the body starts, a bell curve around the neck.
    shoulder_y = cy + radius * rng.uniform(1.25, 1.6)
    spread = size * rng.uniform(0.22, 0.34)
    drop = size * rng.uniform(0.12, 0.25)
    top = shoulder_y + drop * (1.0 - np.exp(-((xx - cx) / spread) ** 4))
    torso = yy >= top
    body = head | neck | torso
    if rng.random() < 0.6:
        # The gap between an arm and the torso: an enclosed background hole, at least a
        # thick arm's width away from the outline.
        depth = cv2.distanceTransform(body.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        axes = (size * rng.uniform(0.03, 0.06), size * rng.uniform(0.06, 0.1))
        rows, cols = np.nonzero((depth > max(axes) + size * 0.04) & (yy < size * 0.9))
        if rows.size:
            pick = int(rng.integers(rows.size))
            angle = rng.uniform(-0.5, 0.5)
            u = (xx - cols[pick]) * np.cos(angle) + (yy - rows[pick]) * np.sin(angle)
            v = -(xx - cols[pick]) * np.sin(angle) + (yy - rows[pick]) * np.cos(angle)
            body &= (u / axes[0]) ** 2 + (v / axes[1]) ** 2 > 1.0
    return body, head, (cx, cy, radius)


def _fur(rng, size, head, centre):
    """Fur fringe alpha around the upper part of the head (0 elsewhere)."""
    cx, cy, radius = centre
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    outside = signed_distance(head)  # > 0 outside the head
    length = radius * rng.uniform(0.12, 0.35)
    theta = np.arctan2(yy - cy, xx - cx)
    rho = np.hypot(yy - cy, xx - cx)
    tufts = rng.integers(60, 140)
    # Tufts: fine in angle, long along the radius, with a slow twist.
    twist = smooth_noise(rng, (size, size), size * 0.05) * 0.6
    phase = tufts * theta + twist + rho / max(length, 1.0) * rng.uniform(-0.8, 0.8)
    fibre = 0.5 + 0.5 * np.cos(phase)
    fibre = np.clip((fibre - rng.uniform(0.25, 0.45)) * 2.2, 0.0, 1.0)
    fade = np.clip(1.0 - outside / length, 0.0, 1.0) ** rng.uniform(0.7, 1.6)
    upper = np.clip((cy + radius * 0.3 - yy) / (radius * 0.4), 0.0, 1.0)  # fur on the upper head
    return np.where(outside > 0, fibre * fade * upper, 0.0).astype(np.float32)


def _truth(rng, size):
    body, head, centre = _silhouette(rng, size)
    edge_width = rng.uniform(1.2, 3.0)
    alpha = np.maximum(soft_edge(body, edge_width), _fur(rng, size, head, centre))
    return quantise(alpha), body, head


def _colour(rng, size, alpha_true, body, head):
    yy, _ = np.mgrid[:size, :size]
    backdrop = rng.uniform(0.2, 0.9, 3).astype(np.float32)
    skin = rng.uniform(0.45, 0.9, 3).astype(np.float32)
    cloth = rng.uniform(0.02, 0.5, 3).astype(np.float32)
    hair = rng.uniform(0.02, 0.35, 3).astype(np.float32)
    fg = np.where(head[..., None], skin, cloth)
    fg = np.where((~body)[..., None], hair, fg)
    fg = fg * (1.0 + 0.1 * smooth_noise(rng, (size, size), 3.0)[..., None])
    a = alpha_true[..., None]
    return np.clip(fg * a + backdrop * (1 - a), 0, 1).astype(np.float32)


def _near_edge_speckle(rng, raw, truth, body_depth, count):
    """Dim pixels and small clusters 2 to 16 px inside the opaque body."""
    candidates = np.flatnonzero(((body_depth >= 2) & (body_depth <= 16) & (truth >= 1.0)).ravel())
    mask = np.zeros(raw.shape, bool)
    if candidates.size == 0:
        return mask
    for index in rng.choice(candidates, min(count, candidates.size), replace=False):
        row, col = divmod(int(index), raw.shape[1])
        h, w = rng.integers(1, 4, 2)
        mask[row:row + h, col:col + w] = True
    mask &= truth >= 1.0
    raw[mask] = rng.uniform(0.55, 0.97, int(mask.sum()))
    return mask


def _straddling_blotches(rng, raw, truth, body, count):
    """Ellipses centred on the outer contour that dim body, soft edge and fur alike."""
    size = raw.shape[0]
    contour = body & ~cv2.erode(body.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    contour[int(size * 0.85):] = False  # keep clear of the frame
    points = np.argwhere(contour)
    mask = np.zeros(raw.shape, bool)
    if len(points) == 0:
        return mask
    for row, col in points[rng.choice(len(points), min(count, len(points)), replace=False)]:
        blot = np.zeros(raw.shape, np.uint8)
        axes = (int(rng.integers(3, 10)), int(rng.integers(2, 7)))
        cv2.ellipse(blot, (int(col), int(row)), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        where = blot.astype(bool) & (truth > 0)
        raw[where] *= rng.uniform(0.55, 0.9)
        mask |= where
    return mask


def _interior_blotch(rng, raw, truth, head, body_depth):
    field = smooth_noise(rng, raw.shape, raw.shape[0] * 0.02)
    where = (field > rng.uniform(1.4, 2.0)) & (body_depth > 20) & ~head & (truth >= 1.0)
    raw[where] = np.minimum(raw[where], 1.0 - np.clip((field[where] - 1.3) * 0.3, 0.05, 0.4))
    return where


def _pinholes(rng, raw, body_depth, count):
    mask = np.zeros(raw.shape, bool)
    candidates = np.argwhere(body_depth > 8)
    if len(candidates) == 0:
        return mask
    for row, col in candidates[rng.choice(len(candidates), min(count, len(candidates)), replace=False)]:
        radius = int(rng.integers(1, 3))
        cv2.circle(mask.view(np.uint8), (int(col), int(row)), radius, 1, -1)
    raw[mask] = 0.0
    return mask


def _debris(rng, raw, truth, count):
    size = raw.shape[0]
    clear = cv2.dilate((truth > 0).astype(np.uint8), np.ones((9, 9), np.uint8)) == 0
    mask = np.zeros(raw.shape, bool)
    for _ in range(count):
        blob = np.zeros(raw.shape, np.uint8)
        centre = (int(rng.integers(0, size)), int(rng.integers(0, size)))
        cv2.ellipse(blob, centre, (int(rng.integers(1, 6)), int(rng.integers(1, 4))),
                    float(rng.uniform(0, 180)), 0, 360, 1, -1)
        where = blob.astype(bool) & clear
        raw[where] = rng.uniform(0.02, 0.3)
        mask |= where
    return mask


def _frame_fade(rng, raw, truth):
    """The body dims toward the bottom border over a few rows."""
    rows = int(rng.integers(3, max(4, raw.shape[0] // 40)))
    ramp = np.linspace(1.0, rng.uniform(0.8, 0.95), rows, dtype=np.float32)[:, None]
    bottom = raw[-rows:]
    where = truth[-rows:] >= 1.0
    bottom[where] = (bottom * ramp)[where]
    mask = np.zeros(raw.shape, bool)
    mask[-rows:] = where
    return mask


def make_portrait(seed: int, size: int = 384) -> FamilyPortrait:
    """One deterministic portrait of this family (``size`` x ``size`` pixels)."""
    rng = np.random.default_rng([seed, 0xF0F])
    truth, body, head = _truth(rng, size)
    raw = truth.copy()
    body_depth = -signed_distance(truth >= 1.0)  # > 0 inside the opaque body
    artifacts = {
        "interior_blotch": _interior_blotch(rng, raw, truth, head, body_depth),
        "near_edge_speckle": _near_edge_speckle(rng, raw, truth, body_depth, int(rng.integers(40, 120))),
        "straddling_blotch": _straddling_blotches(rng, raw, truth, body, int(rng.integers(2, 7))),
        "pinhole": _pinholes(rng, raw, body_depth, int(rng.integers(1, 6))),
        "debris": _debris(rng, raw, truth, int(rng.integers(3, 12))),
        "frame_fade": _frame_fade(rng, raw, truth),
    }
    raw = quantise(raw)
    rgb = _colour(rng, size, truth, body, head)
    return FamilyPortrait(NAME, seed, rgb, truth, raw, artifacts)

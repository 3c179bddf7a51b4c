"""Family "pocket_hair": dense hair masses with enclosed soft pockets and a translucent volume.

Silhouette: polygons smoothed by closed Catmull-Rom splines and filled on a 4x canvas: an
egg-shaped head with a narrowing jaw, a neck, and shoulders that leave the frame at the
bottom and sometimes at a side; sometimes an arm with the hand on the hip, which leaves an
enclosed background hole between arm and torso.

Hair (the structures the family exists for):

* a hair mass, a strip between the head (and the neck, for long hair falling to the
  shoulders) and a lumpy outer contour, filled with opaque strands 2.8-4.5 px thick (at 384,
  never below 2.5 px) that run along the strip and cross it, drawn with ``cv2.polylines`` on
  a 4x canvas. The cells the strands leave are *soft pockets*, each with its own flat alpha
  in 0.2-0.8 (background seen through thin hair). An opaque rim strand with a few gaps runs
  along the outer contour, so most pockets are enclosed by opaque strands: soft regions that
  are not connected to the background through low alpha (a naive connectivity fill makes
  them opaque). Between the falls and the jaw there is true background;
* fine semi-transparent strands over the pockets;
* a translucent hair volume: a flat alpha 0.55-0.8 halo 10-40 px wide (at 384 px) around
  the hair mass, with a 2-5 px soft outer edge;
* a few flyaway hairs crossing the halo into the background.

Artifacts (``artifact_models``; all change the raw matte only where the truth is exactly 0
or 1, none sits over the true soft band):

* ``dimming``: 1-3 large low-frequency patches (10-40% of the body) dimming opaque pixels,
  hair strands included, to 0.5-0.9;
* ``banding``: quantised steps or stripes of slightly lower alpha over the opaque interior;
* ``glow_rim``: a 0.05-0.25 halo 2-8 px wide over the true background outside the outline;
* ``edge_speckle``: specks of alpha 0.4-0.97 on opaque pixels, concentrated at and reaching
  the outline (they also break the opaque strands that enclose pockets);
* ``pinhole``: alpha-0 spots inside the body;
* ``debris``: a few faint blobs in the background.
"""
from __future__ import annotations

import cv2
import numpy as np

from . import artifact_models as damage
from .common import FamilyPortrait, quantise, smooth_noise, supersampled

NAME = "pocket_hair"
_FACTOR = 4  # supersampling of every drawn shape


def _closed_spline(points: np.ndarray, samples: int = 12) -> np.ndarray:
    """Closed Catmull-Rom curve through ``points`` [N, 2]."""
    t = np.linspace(0.0, 1.0, samples, endpoint=False)[:, None]
    out = []
    for i in range(len(points)):
        p0, p1, p2, p3 = (points[(i + k) % len(points)] for k in (-1, 0, 1, 2))
        out.append(0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t ** 2
                          + (3 * p1 - p0 - 3 * p2 + p3) * t ** 3))
    return np.concatenate(out)


def _fill(shape, polygons) -> np.ndarray:
    """Anti-aliased coverage 0..1 of the union of filled polygons (float px coordinates)."""
    def draw(canvas, factor):
        for polygon in polygons:  # one call each: one call with several leaves overlaps empty
            cv2.fillPoly(canvas, [np.round(polygon * factor).astype(np.int32)], 255)
    return supersampled(shape, _FACTOR, draw)


def _strokes(shape, paths, thicknesses) -> np.ndarray:
    """Anti-aliased coverage 0..1 of open polylines of the given thicknesses (px)."""
    def draw(canvas, factor):
        for path, thick in zip(paths, thicknesses):
            cv2.polylines(canvas, [np.round(path * factor).astype(np.int32)], False, 255,
                          max(int(round(thick * factor)), 1), cv2.LINE_8)
    return supersampled(shape, _FACTOR, draw)


def _layout(rng, size):
    """Head, neck, torso and arm geometry (px)."""
    cx = size * rng.uniform(0.4, 0.6)
    cy = size * rng.uniform(0.29, 0.36)
    rx = size * rng.uniform(0.1, 0.125)
    ry = rx * rng.uniform(1.2, 1.35)
    tilt = rng.uniform(-0.15, 0.15)
    neck = rx * rng.uniform(0.42, 0.55)
    shoulder_y = cy + ry * rng.uniform(1.45, 1.7)
    half = size * rng.uniform(0.28, 0.38)
    if rng.random() < 0.35:  # shoulders leave the frame at a side
        half = size * rng.uniform(0.45, 0.6)
    return dict(cx=cx, cy=cy, rx=rx, ry=ry, tilt=tilt, neck=neck, shoulder_y=shoulder_y,
                half=half, body_x=cx + size * rng.uniform(-0.05, 0.05),
                arm=rng.random() < 0.45)


def _head_polygon(rng, g):
    angles = np.linspace(0, 2 * np.pi, 14, endpoint=False) + rng.uniform(-0.08, 0.08, 14)
    radius = 1.0 + 0.04 * rng.standard_normal(14)
    jaw = 1.0 - 0.2 * np.clip(np.sin(angles), 0.0, None)  # narrower below the centre
    x = g["rx"] * radius * jaw * np.cos(angles)
    y = g["ry"] * radius * np.sin(angles)
    c, s = np.cos(g["tilt"]), np.sin(g["tilt"])
    points = np.stack((g["cx"] + c * x - s * y, g["cy"] + s * x + c * y), axis=1)
    return _closed_spline(points)


def _body_polygons(rng, g, size):
    """Neck and torso polygons, and the arm path (or None)."""
    cx, cy, ry, neck, sy, half, bx = g["cx"], g["cy"], g["ry"], g["neck"], g["shoulder_y"], g["half"], g["body_x"]
    neck_poly = np.array([(cx - neck, cy + 0.5 * ry), (cx + neck, cy + 0.5 * ry),
                          (cx + neck * 1.15, sy + 0.02 * size), (cx - neck * 1.15, sy + 0.02 * size)])
    waist = half * (rng.uniform(0.72, 0.82) if g["arm"] else rng.uniform(0.9, 1.0))
    side = []
    for sign in (-1.0, 1.0):
        drop = size * rng.uniform(0.03, 0.06)
        side.append([(cx + sign * neck * 1.1, sy - 0.15 * ry),
                     (bx + sign * half * 0.55, sy + drop * 0.4),
                     (bx + sign * half * 0.92, sy + drop),
                     (bx + sign * half, sy + drop + size * 0.12),
                     (bx + sign * waist, sy + size * 0.45),
                     (bx + sign * waist * 1.02, size * 1.15)])
    left, right = np.array(side[0]), np.array(side[1])
    torso = np.concatenate((left[::-1], right))
    torso = _closed_spline(torso)
    arm = None
    if g["arm"]:
        sign = 1.0 if size - (bx + half) > bx - half else -1.0  # the side with more room
        elbow_x = bx + sign * (half + size * rng.uniform(0.07, 0.12))
        elbow_x = float(np.clip(elbow_x, 0.06 * size, 0.94 * size))
        arm = np.array([(bx + sign * half * 0.85, sy + size * 0.06),
                        (elbow_x, sy + size * rng.uniform(0.24, 0.3)),
                        (bx + sign * waist * 0.85, sy + size * rng.uniform(0.42, 0.48))])
    return neck_poly, torso, arm


def _hair_strip(rng, g, size):
    """Inner and outer curves [M, 2] of the hair mass (parallel samples), and whether it falls
    to the shoulders."""
    cx, cy, rx, ry = g["cx"], g["cy"], g["rx"], g["ry"]
    start = np.pi - rng.uniform(0.25, 0.45)
    phi = np.linspace(start, 3 * np.pi - start, 160)
    lumps = np.interp(phi, np.linspace(start, 3 * np.pi - start, 12), rng.uniform(0.0, 1.0, 12))
    thickness = rng.uniform(0.3, 0.6) + 0.25 * lumps
    # The inner curve is the hairline: high on the forehead, at the skin on the sides.
    hairline = 0.88 - rng.uniform(0.15, 0.35) * np.clip(-np.sin(phi), 0.0, None) ** 2
    inner = np.stack((cx + hairline * rx * np.cos(phi), cy + hairline * ry * np.sin(phi)), axis=1)
    outer = np.stack((cx + (1 + thickness) * rx * np.cos(phi), cy + (1 + thickness) * ry * np.sin(phi)), axis=1)
    long_hair = rng.random() < 0.7
    if long_hair:
        bottom = g["shoulder_y"] + size * rng.uniform(-0.02, 0.12)
        falls = []
        for end, sign in ((0, -1.0), (-1, 1.0)):
            top_in, top_out = inner[end], outer[end]
            n = 50
            t = np.linspace(0, 1, n)[:, None]
            fall_in = top_in + t * (np.array([cx + sign * g["neck"] * 1.05, bottom]) - top_in)
            width = np.linalg.norm(top_out - top_in) * (1 - 0.3 * t) + rx * rng.uniform(0.1, 0.4)
            fall_out = fall_in + np.concatenate((sign * width, np.zeros_like(width)), axis=1)
            fall_out[:, 1] += 0.02 * size * np.sin(t[:, 0] * np.pi * rng.uniform(1, 3))
            falls.append((fall_in, fall_out))
        inner = np.concatenate((falls[0][0][::-1], inner, falls[1][0]))
        outer = np.concatenate((falls[0][1][::-1], outer, falls[1][1]))
    return inner, outer, long_hair


def _strip_point(inner, outer, t, u):
    """Point at fraction ``t`` along the strip, ``u`` of the way from inner to outer curve."""
    position = np.clip(t, 0.0, 1.0) * (len(inner) - 1)
    a = inner[:, 0], inner[:, 1], outer[:, 0], outer[:, 1]
    grid = np.arange(len(inner))
    ix, iy, ox, oy = (np.interp(position, grid, c) for c in a)
    return np.stack((ix + u * (ox - ix), iy + u * (oy - iy)), axis=-1)


def _hair_strands(rng, inner, outer, scale):
    """Opaque strand paths and thicknesses (along and across the strip, the outer rim) and
    fine-strand paths."""
    paths, thick = [], []
    base = max(2.5, 2.8 * scale)
    for _ in range(int(rng.integers(20, 32))):  # along the strip, drifting across it
        t0 = rng.uniform(-0.1, 0.9)
        t = np.linspace(t0, t0 + rng.uniform(0.15, 0.6), 60)
        u0, u1 = rng.uniform(-0.05, 1.05, 2)
        u = u0 + (u1 - u0) * np.linspace(0, 1, 60) + 0.06 * np.sin(np.linspace(0, rng.uniform(2, 8), 60))
        paths.append(_strip_point(inner, outer, t, u))
        thick.append(base * rng.uniform(1.0, 1.6))
    for t0 in np.sort(rng.uniform(0, 1, int(rng.integers(14, 24)))):  # across the strip
        t = t0 + np.linspace(0, rng.uniform(-0.05, 0.05), 20)
        paths.append(_strip_point(inner, outer, t, np.linspace(-0.1, 1.05, 20)))
        thick.append(base * rng.uniform(1.0, 1.4))
    gaps = rng.uniform(0, 1, int(rng.integers(1, 5)))
    for a, b in zip(np.concatenate(([0.0], gaps + 0.015)), np.concatenate((gaps - 0.015, [1.0]))):
        if b > a:  # the rim along the outer contour, interrupted at ``gaps``
            t = np.linspace(a, b, max(int((b - a) * 300), 2))
            paths.append(_strip_point(inner, outer, t, 0.97 + 0.02 * np.sin(t * 40)))
            thick.append(base * rng.uniform(1.1, 1.6))
    fine = []
    for _ in range(int(rng.integers(60, 120))):
        t0 = rng.uniform(0, 1)
        t = t0 + np.linspace(0, rng.uniform(-0.2, 0.2), 30)
        u = rng.uniform(0, 1.0) + np.linspace(0, rng.uniform(-0.3, 0.3), 30)
        fine.append(_strip_point(inner, outer, t, u))
    return paths, thick, fine


def _pocket_levels(rng, pockets, scale):
    """A flat alpha 0.2-0.8 per pocket (4-connected cell between strands), slightly mottled."""
    count, labels = cv2.connectedComponents(pockets.astype(np.uint8), connectivity=4)
    per_cell = rng.uniform(0.2, 0.8, count).astype(np.float32)
    level = np.where(pockets, per_cell[labels], 0.0).astype(np.float32)
    level += np.where(pockets, 0.03 * smooth_noise(rng, pockets.shape, 3.0 * scale), 0.0)
    # Strand edges take the level of the neighbouring pocket.
    grown = cv2.dilate(level, np.ones((3, 3), np.uint8), iterations=3)
    return np.clip(np.where(pockets, level, grown), 0.2, 0.8)


def _flyaways(rng, outer, size, count):
    paths = []
    centre = outer.mean(axis=0)
    for index in rng.integers(len(outer), size=count):
        root = outer[index]
        direction = (root - centre) / max(np.linalg.norm(root - centre), 1e-3)
        bend = np.array((-direction[1], direction[0])) * rng.uniform(-0.4, 0.4)
        length = size * rng.uniform(0.06, 0.16)
        t = np.linspace(0, 1, 30)[:, None]
        paths.append(root + length * (t * direction + t ** 2 * bend) - 4 * direction)
    return paths


def _truth(rng, size):
    shape = (size, size)
    scale = size / 384.0
    g = _layout(rng, size)
    head_poly = _head_polygon(rng, g)
    neck_poly, torso_poly, arm = _body_polygons(rng, g, size)
    head = _fill(shape, [head_poly])
    neck_torso = _fill(shape, [neck_poly, torso_poly])
    arm_cover = np.zeros(shape, np.float32)
    if arm is not None:
        around = np.linspace(0, 2 * np.pi, 8, endpoint=False)
        hand = _closed_spline(arm[-1] + size * 0.035 * np.stack((np.cos(around), np.sin(around)), axis=1))
        arm_cover = np.maximum(_strokes(shape, [arm], [size * rng.uniform(0.055, 0.075)]), _fill(shape, [hand]))
    body = 1.0 - (1.0 - head) * (1.0 - neck_torso) * (1.0 - arm_cover)
    inner, outer, long_hair = _hair_strip(rng, g, size)
    strip = _fill(shape, [np.concatenate((inner, outer[::-1]))])
    paths, thick, fine_paths = _hair_strands(rng, inner, outer, scale)
    strands = _strokes(shape, paths, thick) * strip
    pockets = (strip > 0.5) & (strands < 0.5) & (body < 0.5)
    pocket_alpha = _pocket_levels(rng, pockets, scale) * strip
    fine = np.zeros(shape, np.float32)
    half = len(fine_paths) // 2
    for group, opacity in ((fine_paths[:half], rng.uniform(0.3, 0.6)), (fine_paths[half:], rng.uniform(0.6, 1.0))):
        fine = 1 - (1 - fine) * (1 - opacity * _strokes(shape, group, [max(0.8, scale)] * len(group)))
    fine *= strip
    hair = 1.0 - (1.0 - pocket_alpha) * (1.0 - strands) * (1.0 - fine)
    # The translucent volume: flat 0.55-0.8, 10-40 px (at 384) beyond the hair mass.
    mass = ((strip > 0.5) | (head > 0.5)).astype(np.uint8)
    distance = cv2.distanceTransform(1 - mass, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    reach = rng.uniform(10.0, 40.0) * scale
    reach_map = np.clip(reach * (1 + 0.3 * smooth_noise(rng, shape, 15 * scale)), 10 * scale, 40 * scale)
    ramp = rng.uniform(2.0, 5.0) * max(scale, 0.7)
    volume_level = np.clip(rng.uniform(0.58, 0.77) + 0.025 * smooth_noise(rng, shape, 10 * scale), 0.55, 0.8)
    volume = volume_level * np.clip((reach_map - distance) / ramp + 0.5, 0.0, 1.0)
    volume[distance <= 0] = 0.0
    below = g["shoulder_y"] + (0.12 * size if long_hair else -0.02 * size)
    volume *= np.clip((below - np.arange(size, dtype=np.float32)[:, None]) / (8.0 * scale), 0.0, 1.0)
    fly = np.zeros(shape, np.float32)
    for path in _flyaways(rng, outer, size, int(rng.integers(5, 14))):
        opacity = rng.uniform(0.5, 1.0)
        fly = 1 - (1 - fly) * (1 - opacity * _strokes(shape, [path], [rng.uniform(0.7, 1.2) * max(scale, 0.8)]))
    volume *= 1.0 - body  # the volume sits behind the head and shoulders
    hair_layer = np.maximum(hair, volume)
    alpha = 1.0 - (1.0 - body) * (1.0 - hair_layer) * (1.0 - fly)
    parts = dict(head=head, neck_torso=neck_torso, arm=arm_cover, body=body, hair=hair_layer,
                 strands=strands, fly=fly, g=g)
    parts["alpha"] = alpha
    return quantise(alpha), parts


_SKIN = [(0.94, 0.78, 0.66), (0.83, 0.63, 0.5), (0.62, 0.44, 0.32), (0.42, 0.29, 0.21), (0.98, 0.86, 0.76)]
_HAIR = [(0.12, 0.09, 0.07), (0.3, 0.2, 0.12), (0.55, 0.38, 0.2), (0.82, 0.7, 0.45), (0.55, 0.2, 0.1),
         (0.6, 0.6, 0.62)]


def _colour(rng, size, truth, parts):
    shape = (size, size)
    scale = size / 384.0
    skin = np.array(_SKIN[rng.integers(len(_SKIN))]) * rng.uniform(0.9, 1.05)
    hair = np.array(_HAIR[rng.integers(len(_HAIR))]) * rng.uniform(0.85, 1.1)
    cloth = rng.uniform(0.05, 0.9, 3)
    pick = rng.random()  # the backdrop sometimes shares colour with hair or clothing
    base = hair if pick < 0.3 else cloth if pick < 0.5 else rng.uniform(0.15, 0.9, 3)
    base = np.clip(base + rng.uniform(-0.05, 0.05, 3), 0, 1)
    yy, xx = np.mgrid[:size, :size].astype(np.float32) / size
    angle = rng.uniform(0, 2 * np.pi)
    gradient = rng.uniform(-0.08, 0.08) * ((xx - 0.5) * np.cos(angle) + (yy - 0.5) * np.sin(angle))
    texture = 0.03 * smooth_noise(rng, shape, 25 * scale) + rng.uniform(0, 0.015) * smooth_noise(rng, shape, 1.0)
    backdrop = np.clip(base[None, None, :] + (gradient + texture)[..., None], 0, 1)

    def layer_colour(colour, amount, noise_scale):
        shade = 1.0 + amount * smooth_noise(rng, shape, noise_scale * scale)
        return np.clip(colour[None, None, :] * shade[..., None], 0, 1)

    skin_map = layer_colour(skin, 0.06, 20)
    cloth_map = layer_colour(cloth, 0.12, 8)
    clothed = (parts["neck_torso"] - parts["head"] > 0.5) & (yy > parts["g"]["shoulder_y"] / size)
    body_colour = np.where(clothed[..., None], cloth_map, skin_map)
    highlight = rng.uniform(-0.25, 0.25)  # strands lighter or darker than the hair in pockets
    hair_map = layer_colour(hair, 0.1, 3) * (1 + highlight * parts["strands"])[..., None]
    hair_map = np.clip(hair_map, 0, 1)
    # Premultiplied "over" compositing: body, then hair, then flyaways.
    premult = parts["body"][..., None] * body_colour
    for a, colour in ((parts["hair"], hair_map), (parts["fly"], hair_map)):
        premult = a[..., None] * colour + (1 - a[..., None]) * premult
    # Foreground colour = premultiplied colour / coverage, composited by the quantised truth.
    foreground = premult / np.maximum(parts["alpha"], 1e-4)[..., None]
    rgb = truth[..., None] * foreground + (1 - truth[..., None]) * backdrop
    rgb += 0.004 * rng.standard_normal(rgb.shape)
    return np.clip(rgb, 0, 1).astype(np.float32)


def make_portrait(seed: int, size: int = 384) -> FamilyPortrait:
    """One deterministic portrait of this family (``size`` x ``size`` pixels, 256..1024 and
    beyond; geometry scales with ``size``, strand thickness never drops below 2.5 px)."""
    rng = np.random.default_rng([seed, 0x90C4E7])
    truth, parts = _truth(rng, size)
    scale = size / 384.0
    raw = truth.copy()
    artifacts = {
        "dimming": damage.dimming_patches(rng, raw, truth, int(rng.integers(1, 4))),
        "banding": damage.banding(rng, raw, truth, scale),
        "edge_speckle": damage.edge_speckle(rng, raw, truth, int(rng.uniform(150, 400) * scale),
                                            3.0 * max(scale, 1.0)),
        "pinhole": damage.pinholes(rng, raw, truth, int(rng.integers(4, 14))),
        "glow_rim": damage.glow_rim(rng, raw, truth, scale),
        "debris": damage.debris(rng, raw, truth, int(rng.integers(2, 7)), 12.0 * scale,
                                sigma=(1.0, 1.0 + 4.0 * scale)),
    }
    raw = quantise(raw)
    rgb = _colour(rng, size, truth, parts)
    return FamilyPortrait(NAME, seed, rgb, truth, raw, artifacts)

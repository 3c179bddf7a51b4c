"""Family "sheer_motion": sheer fabric over the background and a motion-blurred hand.

Silhouette: unions of rotated ellipses drawn on a 4x canvas (head, jaw, an opaque hair cap,
neck, a torso ellipse and two shoulder ellipses) leaving the frame at the bottom and
sometimes at a side; an arm drawn as a thick polyline that either hangs out of the frame or
rests its hand on the hip, leaving an enclosed background hole between arm and torso.

Soft structures (wide or flat, not only thin ramps):

* a sheer veil over the head (falling to about the shoulders) and/or a sheer sleeve around
  the arm, 10-25 px (at 384) wider than the arm on each side: a large flat translucent region
  (alpha 0.2-0.7) over the background with folds (a slow sinusoid), a woven texture (a fine
  two-way sinusoid, 2.5-5 px period) and a soft 0.5-1.5 px blurred edge; the veil sometimes
  has a denser hem. At least one of the two is always present;
* a motion-blurred hand and forearm raised beside the head (usually): a binary hand with
  fingers convolved with a box (line) kernel 12-45 px long (at 384) in a random direction,
  a wide linear ramp, fully translucent where the hand is narrower than the blur;
* 3-8 thin flyaway hairs (0.6-1 px, opacity 0.4-0.9) leaving the hair cap.

Artifacts (``artifact_models`` unless noted; only where the truth is exactly 0 or 1 unless
noted):

* ``dimming``: 1-2 large low-frequency patches (10-40% of the body) dimming opaque pixels
  to 0.55-0.9;
* ``banding``: quantised steps or stripes of slightly lower alpha over the opaque interior;
* ``sheer_banding`` (**over the true band**, this module; half of the portraits): the flat
  interior of the veil and sleeve (sheer coverage above 0.95, away from their edges)
  quantised to coarse steps of 0.08-0.12, as a decoder with few levels does to a flat
  translucent region (it moves each pixel by at most half a step);
* ``glow_rim``: a 0.05-0.25 halo 2-8 px wide over the true background outside the outline;
* ``edge_speckle``: specks of alpha 0.4-0.97 on opaque pixels, reaching the outline;
* ``pinhole``: alpha-0 spots inside the body;
* ``debris``: a few faint blobs in the background.
"""
from __future__ import annotations

import cv2
import numpy as np

from . import artifact_models as damage
from .common import FamilyPortrait, quantise, smooth_noise, supersampled

NAME = "sheer_motion"
_FACTOR = 4  # supersampling of every drawn shape


def _ellipses(shape, ellipses) -> np.ndarray:
    """Anti-aliased coverage 0..1 of the union of ``(cx, cy, ax, ay, angle_deg)`` ellipses."""
    def draw(canvas, factor):
        for x, y, ax, ay, angle in ellipses:
            cv2.ellipse(canvas, (int(round(x * factor)), int(round(y * factor))),
                        (max(int(round(ax * factor)), 1), max(int(round(ay * factor)), 1)),
                        float(angle), 0, 360, 255, -1)
    return supersampled(shape, _FACTOR, draw)


def _polyline(shape, points, thickness) -> np.ndarray:
    """Anti-aliased coverage 0..1 of an open polyline ``thickness`` px thick (round joints)."""
    def draw(canvas, factor):
        cv2.polylines(canvas, [np.round(np.asarray(points) * factor).astype(np.int32)], False, 255,
                      max(int(round(thickness * factor)), 1), cv2.LINE_8)
        for x, y in points:  # round caps and joints
            cv2.circle(canvas, (int(round(x * factor)), int(round(y * factor))),
                       max(int(round(thickness * factor / 2)), 1), 255, -1)
    return supersampled(shape, _FACTOR, draw)


def _polygon(shape, points) -> np.ndarray:
    def draw(canvas, factor):
        cv2.fillPoly(canvas, [np.round(np.asarray(points) * factor).astype(np.int32)], 255)
    return supersampled(shape, _FACTOR, draw)


def _body(rng, size):
    """Coverage of the head, hair cap, neck, torso; the geometry (px)."""
    shape = (size, size)
    cx, cy = size * rng.uniform(0.38, 0.62), size * rng.uniform(0.28, 0.36)
    rx = size * rng.uniform(0.095, 0.12)
    ry = rx * rng.uniform(1.2, 1.4)
    tilt = rng.uniform(-12, 12)
    head = _ellipses(shape, [(cx, cy, rx, ry, tilt), (cx, cy + 0.35 * ry, 0.75 * rx, 0.7 * ry, tilt)])
    cap = _ellipses(shape, [(cx, cy - 0.12 * ry, 1.08 * rx * rng.uniform(0.98, 1.1), 0.95 * ry, tilt)])
    face = _ellipses(shape, [(cx, cy + 0.25 * ry, 0.82 * rx, 0.85 * ry, tilt)])
    cap *= 1.0 - face  # hair above and beside the face (the head under it is opaque anyway)
    neck = _ellipses(shape, [(cx, cy + 1.1 * ry, 0.5 * rx, 0.6 * ry, 0)])
    shoulder_y = cy + ry * rng.uniform(1.5, 1.8)
    leaves_side = rng.random() < 0.35
    half = size * (rng.uniform(0.45, 0.6) if leaves_side else rng.uniform(0.27, 0.37))
    bx = cx + size * rng.uniform(-0.06, 0.06)
    slope = rng.uniform(5, 18)  # shoulders slope down and out
    torso = _ellipses(shape, [
        (bx, shoulder_y + size * 0.62, half * 0.85, size * 0.62, 0),
        (bx - half * 0.6, shoulder_y + size * 0.075, half * 0.45, size * 0.07, -slope),
        (bx + half * 0.6, shoulder_y + size * 0.075, half * 0.45, size * 0.07, slope),
        (bx - half * 0.72, shoulder_y + size * 0.5, half * 0.3, size * 0.45, 4),
        (bx + half * 0.72, shoulder_y + size * 0.5, half * 0.3, size * 0.45, -4)])
    geometry = dict(cx=cx, cy=cy, rx=rx, ry=ry, tilt=tilt, shoulder_y=shoulder_y, half=half, bx=bx)
    return head, cap, neck, torso, geometry


def _arm_paths(rng, g, size):
    """The arm path (hanging out of the frame or hand on hip) on the side with room, or None."""
    bx, half, sy = g["bx"], g["half"], g["shoulder_y"]
    sides = [s for s in (-1.0, 1.0) if 0.06 * size < bx + s * (half + 0.1 * size) < 0.94 * size]
    if not sides:
        return None, 0.0
    side = sides[rng.integers(len(sides))]
    elbow = (bx + side * (half + size * rng.uniform(0.04, 0.09)), sy + size * rng.uniform(0.22, 0.3))
    if rng.random() < 0.5:  # hand on the hip: an enclosed hole between arm and torso
        wrist = (bx + side * half * 0.8, sy + size * rng.uniform(0.42, 0.5))
    else:  # hanging down out of the frame
        wrist = (elbow[0] + side * size * rng.uniform(-0.02, 0.03), size * 1.05)
    return np.array([(bx + side * half * 0.8, sy + size * 0.07), elbow, wrist]), side


def _weave(rng, shape, scale):
    """Folds and woven texture of sheer fabric: zero-mean modulation of its alpha."""
    height, width = shape
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    u = xx * np.cos(angle) + yy * np.sin(angle)
    v = -xx * np.sin(angle) + yy * np.cos(angle)
    period = rng.uniform(2.5, 5.0) * max(scale, 0.8)
    weave = rng.uniform(0.02, 0.05) * np.sin(2 * np.pi * u / period) * np.sin(2 * np.pi * v / period)
    fold_angle = rng.uniform(-0.4, 0.4)  # folds hang roughly vertically
    fold = xx * np.cos(fold_angle) + yy * np.sin(fold_angle)
    depth = rng.uniform(0.05, 0.12)
    folds = depth * np.sin(2 * np.pi * fold / (rng.uniform(15, 45) * scale) + rng.uniform(0, 6.3))
    return weave + folds + 0.04 * smooth_noise(rng, shape, 20 * scale)


def _sheer(rng, shape, coverage, level_range, scale, blur):
    """Alpha of sheer fabric: flat ``level`` modulated by folds and weave, over ``coverage``."""
    level = rng.uniform(*level_range)
    alpha = np.clip(level + _weave(rng, shape, scale), 0.2, 0.7)
    soft = cv2.GaussianBlur(coverage, (0, 0), blur)
    return (alpha * soft).astype(np.float32), soft


def _veil_polygon(rng, g, size):
    cx, cy, rx, ry, sy = g["cx"], g["cy"], g["rx"], g["ry"], g["shoulder_y"]
    grow = rng.uniform(1.15, 1.4)
    phi = np.linspace(np.pi - 0.3, 2 * np.pi + 0.3, 40)
    arc = np.stack((cx + grow * rx * np.cos(phi), cy - 0.1 * ry + grow * ry * np.sin(phi)), axis=1)
    hem_y = sy + size * rng.uniform(-0.02, 0.2)
    hem_half = rx * rng.uniform(1.8, 3.0)
    x = np.linspace(cx + hem_half, cx - hem_half, 40)
    hem = np.stack((x, hem_y + size * 0.015 * np.sin((x - cx) / (rx * rng.uniform(0.2, 0.5)))), axis=1)
    return np.concatenate((arc, hem)), hem_y


def _hand(rng, g, size, side):
    """Binary coverage of a forearm and hand raised beside the head (before the blur)."""
    bx, half, sy, cx, cy = g["bx"], g["half"], g["shoulder_y"], g["cx"], g["cy"]
    palm = np.array((np.clip(cx + side * size * rng.uniform(0.22, 0.32), 0.1 * size, 0.9 * size),
                     cy + size * rng.uniform(-0.06, 0.12)))
    elbow = np.array((np.clip(bx + side * half * rng.uniform(0.7, 0.95), 0, size),
                      sy + size * rng.uniform(0.1, 0.2)))
    axis = (palm - elbow) / np.linalg.norm(palm - elbow)
    normal = np.array((-axis[1], axis[0]))
    angle = np.degrees(np.arctan2(axis[1], axis[0]))
    palm_len, palm_wid = size * rng.uniform(0.035, 0.045), size * rng.uniform(0.028, 0.036)
    finger = size * rng.uniform(0.009, 0.013)

    def draw(canvas, factor):
        def pt(p):
            return int(round(p[0] * factor)), int(round(p[1] * factor))
        forearm = int(size * rng.uniform(0.045, 0.06) * factor)
        cv2.line(canvas, pt(elbow), pt(palm - axis * palm_len * 0.6), 255, forearm)
        cv2.ellipse(canvas, pt(palm), (int(palm_len * factor), int(palm_wid * factor)), angle, 0, 360, 255, -1)
        for offset in np.linspace(-0.75, 0.75, 4):  # fingers, spread a little
            base = palm + axis * palm_len * 0.7 + normal * palm_wid * offset
            direction = axis + normal * offset * rng.uniform(0.1, 0.35)
            tip = base + direction / np.linalg.norm(direction) * size * rng.uniform(0.035, 0.05)
            cv2.line(canvas, pt(base), pt(tip), 255, max(int(finger * factor), 1))
        thumb_base = palm + normal * palm_wid * 0.8 * side
        cv2.line(canvas, pt(thumb_base), pt(thumb_base + (normal * side + axis * 0.5) * size * 0.03), 255,
                 max(int(finger * 1.2 * factor), 1))
    return supersampled((size, size), _FACTOR, draw)


def _motion_blur(rng, coverage, scale):
    """Box (line) kernel 12-45 px (at 384) long in a random direction: a wide linear ramp."""
    length = rng.uniform(12.0, 45.0) * scale
    angle = rng.uniform(0, np.pi)
    extent = int(np.ceil(length)) | 1
    kernel_size = extent + 2
    centre = kernel_size / 2.0
    offset = 0.5 * length * np.array((np.cos(angle), np.sin(angle)))

    def draw(canvas, factor):
        a, b = (centre - offset) * factor, (centre + offset) * factor
        cv2.line(canvas, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), 255, factor)
    kernel = supersampled((kernel_size, kernel_size), 8, draw)
    kernel /= kernel.sum()
    return cv2.filter2D(coverage, -1, kernel, borderType=cv2.BORDER_CONSTANT)


def _flyaways(rng, g, size, scale):
    paths = []
    for _ in range(int(rng.integers(3, 9))):
        phi = rng.uniform(np.pi * 1.1, np.pi * 1.9)
        root = np.array((g["cx"] + 1.02 * g["rx"] * np.cos(phi),
                         g["cy"] - 0.12 * g["ry"] + 0.92 * g["ry"] * np.sin(phi)))
        out = np.array((np.cos(phi), np.sin(phi)))
        bend = np.array((-out[1], out[0])) * rng.uniform(-0.5, 0.5)
        t = np.linspace(0, 1, 24)[:, None]
        paths.append((root + size * rng.uniform(0.04, 0.12) * (t * out + t ** 2 * bend),
                      rng.uniform(0.6, 1.0) * max(scale, 1.0), rng.uniform(0.4, 0.9)))
    fly = np.zeros((size, size), np.float32)
    for path, thickness, opacity in paths:
        def draw(canvas, factor, path=path, thickness=thickness):
            cv2.polylines(canvas, [np.round(path * factor).astype(np.int32)], False, 255,
                          max(int(round(thickness * factor)), 1), cv2.LINE_8)
        fly = 1 - (1 - fly) * (1 - opacity * supersampled((size, size), _FACTOR, draw))
    return fly


def _layers(rng, size):
    """(name, alpha, part) bottom to top, and the geometry."""
    shape = (size, size)
    scale = size / 384.0
    head, cap, neck, torso, g = _body(rng, size)
    arm_path, arm_side = _arm_paths(rng, g, size)
    has_veil = rng.random() < 0.6 or arm_path is None
    has_sleeve = arm_path is not None and (rng.random() < 0.6 or not has_veil)
    layers = [("torso", torso), ("neck", neck), ("head", head), ("cap", cap)]
    sheer_total = np.zeros(shape, np.float32)
    sheer_core = np.zeros(shape, bool)
    if arm_path is not None:
        arm_thick = size * rng.uniform(0.05, 0.065)
        layers.append(("arm", _polyline(shape, arm_path, arm_thick)))
        if has_sleeve:
            cuff = arm_path[1] + rng.uniform(0.5, 0.9) * (arm_path[2] - arm_path[1])
            sleeve_thick = arm_thick + 2 * rng.uniform(10, 25) * scale
            sleeve_cover = _polyline(shape, [arm_path[0], arm_path[1], cuff], sleeve_thick)
            sleeve, soft = _sheer(rng, shape, sleeve_cover, (0.25, 0.6), scale, rng.uniform(0.5, 1.5))
            layers.append(("sleeve", sleeve))
            sheer_total = 1 - (1 - sheer_total) * (1 - sleeve)
            sheer_core |= soft > 0.95
    if rng.random() < 0.85:
        side = -arm_side if arm_path is not None else rng.choice((-1.0, 1.0))
        layers.append(("hand", _motion_blur(rng, _hand(rng, g, size, side), scale)))
    if has_veil:
        polygon, hem_y = _veil_polygon(rng, g, size)
        veil, soft = _sheer(rng, shape, _polygon(shape, polygon), (0.2, 0.55), scale, rng.uniform(0.5, 1.5))
        if rng.random() < 0.5:  # a denser hem 2-4 px tall
            rows = np.arange(size, dtype=np.float32)[:, None]
            hem = (rows > hem_y - rng.uniform(4, 8) * scale) & (soft > 0.05)
            veil = np.where(hem, np.maximum(veil, rng.uniform(0.75, 0.9) * soft), veil)
        layers.append(("veil", veil))
        sheer_total = 1 - (1 - sheer_total) * (1 - veil)
        sheer_core |= (soft > 0.95) & (veil < 0.72)
    layers.append(("fly", _flyaways(rng, g, size, scale)))
    return layers, g, sheer_core


_SKIN = [(0.93, 0.76, 0.64), (0.8, 0.6, 0.47), (0.58, 0.4, 0.29), (0.36, 0.25, 0.18)]
_HAIR = [(0.1, 0.08, 0.07), (0.35, 0.23, 0.14), (0.78, 0.65, 0.4), (0.5, 0.18, 0.08)]
_SHEER = [(0.97, 0.97, 0.95), (0.08, 0.08, 0.1), (0.9, 0.75, 0.8), (0.7, 0.8, 0.95)]


def _colour(rng, size, truth, layers, alpha):
    shape = (size, size)
    scale = size / 384.0
    skin = np.array(_SKIN[rng.integers(len(_SKIN))]) * rng.uniform(0.92, 1.05)
    hair = np.array(_HAIR[rng.integers(len(_HAIR))])
    cloth = rng.uniform(0.05, 0.9, 3)
    pick = rng.random()  # the backdrop sometimes shares colour with hair or clothing
    base = hair if pick < 0.25 else cloth if pick < 0.45 else rng.uniform(0.2, 0.95, 3)
    base = np.clip(base + rng.uniform(-0.04, 0.04, 3), 0, 1)
    if rng.random() < 0.35:  # sheer fabric close to the backdrop colour
        sheer = base + rng.uniform(-0.08, 0.08, 3)
    else:
        sheer = np.array(_SHEER[rng.integers(len(_SHEER))])
    yy, xx = np.mgrid[:size, :size].astype(np.float32) / size
    angle = rng.uniform(0, 2 * np.pi)
    shade = rng.uniform(-0.1, 0.1) * ((xx - 0.5) * np.cos(angle) + (yy - 0.5) * np.sin(angle))
    texture = 0.025 * smooth_noise(rng, shape, 30 * scale)
    if rng.random() < 0.4:  # a mildly textured backdrop (fine grain)
        texture = texture + 0.02 * smooth_noise(rng, shape, 1.2)
    backdrop = np.clip(base[None, None] + (shade + texture)[..., None], 0, 1)
    colours = {"torso": cloth, "neck": skin, "head": skin, "cap": hair, "arm": skin, "sleeve": sheer,
               "hand": skin, "veil": sheer, "fly": hair}
    premult = np.zeros((size, size, 3), np.float32)
    for name, a in layers:  # premultiplied "over", bottom to top
        variation = {"torso": 0.1, "sleeve": 0.04, "veil": 0.04}.get(name, 0.05)
        shading = 1 + variation * smooth_noise(rng, shape, 10 * scale)
        colour = np.clip(colours[name][None, None] * shading[..., None], 0, 1)
        premult = a[..., None] * colour + (1 - a[..., None]) * premult
    foreground = premult / np.maximum(alpha, 1e-4)[..., None]
    rgb = truth[..., None] * foreground + (1 - truth[..., None]) * backdrop
    rgb += 0.004 * rng.standard_normal(rgb.shape)
    return np.clip(rgb, 0, 1).astype(np.float32)


def _sheer_banding(rng, raw, truth, sheer_core) -> np.ndarray:
    """Over the true band: the flat interior of the sheer fabric quantised to coarse steps."""
    band = (truth > 0.5 / 255) & (truth < 1 - 0.5 / 255) & sheer_core
    step = rng.uniform(0.08, 0.12)
    stepped = np.round(raw / step) * step
    changed = band & (np.abs(stepped - raw) > 1.5 / 255)
    raw[changed] = stepped[changed]
    return changed


def make_portrait(seed: int, size: int = 384) -> FamilyPortrait:
    """One deterministic portrait of this family (``size`` x ``size`` pixels, 256..1024 and
    beyond; geometry and blur lengths scale with ``size``)."""
    rng = np.random.default_rng([seed, 0x5EE8])
    scale = size / 384.0
    layers, _, sheer_core = _layers(rng, size)
    alpha = 1.0 - np.prod([1.0 - a for _, a in layers], axis=0)
    truth = quantise(alpha)
    raw = truth.copy()
    artifacts = {
        "dimming": damage.dimming_patches(rng, raw, truth, int(rng.integers(1, 3)), depth=(0.55, 0.9)),
        "banding": damage.banding(rng, raw, truth, scale),
        "sheer_banding": _sheer_banding(rng, raw, truth, sheer_core & (rng.random() < 0.5)),
        "edge_speckle": damage.edge_speckle(rng, raw, truth, int(rng.uniform(100, 300) * scale),
                                            4.0 * max(scale, 1.0)),
        "pinhole": damage.pinholes(rng, raw, truth, int(rng.integers(3, 11))),
        "glow_rim": damage.glow_rim(rng, raw, truth, scale),
        "debris": damage.debris(rng, raw, truth, int(rng.integers(3, 9)), 12.0 * scale,
                                sigma=(1.0, 1.0 + 4.0 * scale)),
    }
    raw = quantise(raw)
    rgb = _colour(rng, size, truth, layers, alpha.astype(np.float32))
    return FamilyPortrait(NAME, seed, rgb, truth, raw, artifacts)

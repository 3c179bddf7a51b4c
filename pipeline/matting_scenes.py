"""Synthetic scenes with known alpha for the matting tools (tests and benchmarks).

* :func:`make_green_screen`: a procedural portrait (``synthetic.make_portrait``: hair with
  soft strands) shot on an unevenly lit, wrinkled green screen with green spill on the
  subject and sensor noise.
* :func:`make_moving_clip`: a portrait whose head and hair sway while the torso stays still,
  over a textured background, with per-frame sensor noise and jittering segmentation masks.

Neither uses the keyer's or the video matter's own model: the screen's illumination is a
product of a vertical fall-off, a hot spot and smooth wrinkles (not the keyer's blurred
plate), the screen hue drifts across the frame, spill is a blend toward the local screen
colour that decays with depth into the subject (not a clamp of the green channel), and mask
jitter is a random dilation/erosion plus blobs (not a temporal median's failure model).
"""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np
from scipy import ndimage

from ..base.composite import procedural_background
from .synthetic import make_portrait

__all__ = ["GreenScreenScene", "make_green_screen", "MovingClip", "make_moving_clip"]


@dataclasses.dataclass(frozen=True)
class GreenScreenScene:
    """image [H,W,3] (the photograph), alpha [H,W] (truth), foreground [H,W,3] (truth, no spill),
    spilled [H,W,3] (the subject's colour with spill), screen [H,W,3] (the lit screen)."""

    image: np.ndarray
    alpha: np.ndarray
    foreground: np.ndarray
    spilled: np.ndarray
    screen: np.ndarray
    seed: int


def _smooth_field(rng, shape, scale_px) -> np.ndarray:
    noise = rng.standard_normal(shape).astype(np.float32)
    field = ndimage.gaussian_filter(noise, scale_px)
    return field / (np.abs(field).max() + 1e-6)


def _greenish(rgb, alpha) -> float:
    weight = alpha > 0.5
    excess = np.maximum(rgb[..., 1] - np.maximum(rgb[..., 0], rgb[..., 2]), 0)
    return float(excess[weight].mean()) if weight.any() else 0.0


def make_green_screen(seed: int, size: int = 256, *, spill: float = 0.25,
                      noise: float = 0.01, unevenness: float = 0.45) -> GreenScreenScene:
    """A green-screen photograph of a synthetic portrait with known alpha.

    Portraits dressed in green are skipped (green-screen shoots avoid green wardrobe: no keyer
    can separate it), by moving to the next seed in a fixed sequence.
    """
    portrait_seed = seed
    for _ in range(20):
        portrait = make_portrait(portrait_seed, size)
        if _greenish(portrait.rgb, portrait.alpha_true) < 0.01:
            break
        portrait_seed += 7919
    rng = np.random.default_rng(seed + 104729)
    alpha = np.asarray(portrait.alpha_true, np.float32)
    fg = np.asarray(portrait.rgb, np.float32)
    height, width = alpha.shape
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) / max(height, width)
    # Illumination: brighter top, a hot spot off-centre, fabric wrinkles.
    spot_x, spot_y = rng.uniform(0.15, 0.85), rng.uniform(0.1, 0.5)
    light = (1.0 - unevenness * yy
             + 0.35 * unevenness * np.exp(-((xx - spot_x) ** 2 + (yy - spot_y) ** 2) / 0.05)
             + 0.12 * _smooth_field(rng, (height, width), 0.04 * size))
    base = np.array([0.10, 0.62, 0.24], np.float32) * rng.uniform(0.9, 1.1, 3).astype(np.float32)
    drift = 0.04 * _smooth_field(rng, (height, width), 0.2 * size)
    screen = base[None, None, :] * light[..., None]
    screen[..., 0] += drift
    screen[..., 2] -= drift
    screen = np.clip(screen, 0.0, 1.0).astype(np.float32)
    # Spill: light bounced off the screen, strongest at the silhouette, fading inwards.
    depth = ndimage.distance_transform_edt(alpha > 0.98).astype(np.float32)
    reach = 0.05 * size
    amount = spill * (0.3 + 0.7 * np.exp(-depth / reach)) * (alpha > 0)
    spilled = np.clip(fg * (1 - amount[..., None]) + amount[..., None] * screen * 1.1, 0, 1)
    a = alpha[..., None]
    image = a * spilled + (1 - a) * screen + rng.normal(0, noise, fg.shape).astype(np.float32)
    return GreenScreenScene(image=np.clip(image, 0, 1).astype(np.float32), alpha=alpha,
                            foreground=fg, spilled=spilled.astype(np.float32), screen=screen,
                            seed=portrait_seed)


@dataclasses.dataclass(frozen=True)
class MovingClip:
    """frames [T][H,W,3], alphas [T][H,W] (truth), masks [T][H,W] (0/1 segmentation with
    jitter), static [H,W] bool (subject edges whose true alpha never changes)."""

    frames: list
    alphas: list
    masks: list
    static: np.ndarray


def make_moving_clip(seed: int, frames: int = 24, size: int = 128, *, noise: float = 0.03,
                     sway_px: float | None = None, jitter_px: int = 2) -> MovingClip:
    """A portrait whose head sways (torso still) over a textured background.

    Motion is a horizontal shear that is full above the neck and zero below the shoulders,
    ``sway_px * sin(2 pi t / frames)``. Masks: the true alpha thresholded at 0.5, then per frame
    dilated or eroded by up to ``jitter_px`` px, with a few random blobs added or cut at the
    edge (a segmentation network's flicker).
    """
    portrait = make_portrait(seed, size)
    alpha0 = np.asarray(portrait.alpha_true, np.float32)
    fg0 = np.asarray(portrait.rgb, np.float32)
    height, width = alpha0.shape
    rng = np.random.default_rng(seed + 15485863)
    background = procedural_background("noise", height, width, seed)
    sway = sway_px if sway_px is not None else 0.06 * size
    rows = np.nonzero(alpha0.max(axis=1) > 0.5)[0]
    top = rows.min() if rows.size else 0
    # Shear weight: 1 over the head, 0 over the torso (the lower 45% of the subject).
    y_full, y_zero = top + 0.35 * (height - top), top + 0.55 * (height - top)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    weight = np.clip((y_zero - yy) / max(y_zero - y_full, 1.0), 0.0, 1.0)
    out_frames, out_alphas, out_masks = [], [], []
    for t in range(frames):
        shift = float(sway * np.sin(2 * np.pi * t / frames))
        map_x = (xx - shift * weight).astype(np.float32)
        alpha = cv2.remap(alpha0, map_x, yy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        fg = cv2.remap(fg0, map_x, yy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        frame = alpha[..., None] * fg + (1 - alpha[..., None]) * background
        frame = frame + rng.normal(0, noise, frame.shape).astype(np.float32)
        out_frames.append(np.clip(frame, 0, 1).astype(np.float32))
        out_alphas.append(alpha.astype(np.float32))
        mask = (alpha > 0.5).astype(np.uint8)
        k = int(rng.integers(-jitter_px, jitter_px + 1))
        if k:
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(k) + 1,) * 2)
            mask = cv2.dilate(mask, kernel) if k > 0 else cv2.erode(mask, kernel)
        edge = np.argwhere(cv2.morphologyEx(mask, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0)
        for _ in range(3):
            if len(edge) == 0:
                break
            cy, cx = edge[rng.integers(len(edge))]
            cv2.circle(mask, (int(cx), int(cy)), int(rng.integers(2, 5)), int(rng.integers(0, 2)), -1)
        out_masks.append(mask.astype(np.float32))
    stack = np.stack(out_alphas)
    constant = np.ptp(stack, axis=0) < 1e-3
    soft = (alpha0 > 0.0) & (alpha0 < 1.0)
    near_edge = ndimage.binary_dilation(soft, iterations=4)
    static = constant & near_edge & (weight == 0)
    return MovingClip(frames=out_frames, alphas=out_alphas, masks=out_masks, static=static)

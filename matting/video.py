"""Video portrait matting: frames + per-frame segmentation masks -> temporally stable RGBA.

The paper's recipe: a video segmentation gives a coarse person mask per frame; a trimap-based
matting model turns each frame + trimap into alpha. Done naively, two things flicker: the
masks jitter by a pixel or two from frame to frame (so the trimap's unknown band jumps), and
the per-frame solve reacts to sensor noise. This module stabilises both:

1. **Masks** (:func:`stabilise_masks`): a temporal median over ``window`` frames (a steady
   edge stays where it is, an edge in steady motion is unchanged, a one-frame flicker is
   removed), then hysteresis over time on the soft values (a pixel becomes person above
   ``mask_high``, stops being person below ``mask_low``, and keeps its previous state in
   between).
2. **Trimaps**: the unknown band is drawn around each frame's stabilised mask, so it follows
   the motion; pixels whose colour changes between frames (motion) widen it by ``motion_band``.
3. **Per-frame matting** with :func:`..trimap_solve.solve_trimap`.
4. **Temporal smoothing on static parts** (:func:`smooth_static`): where a pixel's (lightly
   blurred) colour does not change between consecutive frames, alpha is averaged over time by
   a forward and a backward exponential filter (no lag); where it changes, the filter resets,
   so moving hair is never dragged.
5. **RGBA**: foreground colour by pymatting's multi-level estimation, alpha as the 4th channel.

No files, no host; numpy / OpenCV / pymatting.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import cv2
import numpy as np

from ..base.trimap import UNIT_UNKNOWN, trimap_from_mask
from ..base.validation import as_alpha, as_rgb
from .params import VideoMatteParams
from .trimap_solve import estimate_foreground, solve_trimap, split_trimap

__all__ = ["VideoMatteParams", "VideoMatteResult", "stabilise_masks", "video_trimaps",
           "static_weights", "smooth_static", "matte_video", "check_clip"]


@dataclasses.dataclass
class VideoMatteResult:
    """Per-frame results of :func:`matte_video` (lists of length T).

    rgba : float32 [H, W, 4]   foreground colour + alpha
    alpha : float32 [H, W]     1 = person
    trimaps : float32 [H, W]   0 / 0.5 / 1
    """

    rgba: list
    alpha: list
    trimaps: list


def check_clip(frames: Sequence, masks: Sequence) -> tuple[list, list]:
    """Validate a clip: same number of frames and masks, one size, at least one frame.

    Returns the frames as float32 [H, W, 3] and masks as float32 [H, W] lists.

    Raises
    ------
    ValueError
        Empty clip, different counts, or a frame/mask of another size (the message names the
        frame index).
    """
    if len(frames) == 0:
        raise ValueError("the clip is empty: give at least one frame (and one mask per frame).")
    if len(masks) != len(frames):
        raise ValueError(f"{len(frames)} frame(s) but {len(masks)} mask(s): give exactly one mask "
                         "per frame, in the same order.")
    rgb = [as_rgb(frame, f"frame {i}") for i, frame in enumerate(frames)]
    alpha = [as_alpha(mask, f"mask {i}") for i, mask in enumerate(masks)]
    shape = rgb[0].shape[:2]
    for i, (frame, mask) in enumerate(zip(rgb, alpha)):
        if frame.shape[:2] != shape or mask.shape != shape:
            raise ValueError(f"frame {i} is {frame.shape[1]}x{frame.shape[0]} with a "
                             f"{mask.shape[1]}x{mask.shape[0]} mask, but frame 0 is "
                             f"{shape[1]}x{shape[0]}: every frame and mask must have one size.")
    return rgb, alpha


def stabilise_masks(masks: Sequence[np.ndarray], params: VideoMatteParams) -> list[np.ndarray]:
    """Temporal median + temporal hysteresis of soft masks -> bool [H, W] per frame."""
    stack = np.stack([np.asarray(m, np.float32) for m in masks])
    half = params.window // 2
    count = len(stack)
    state = None
    out = []
    for t in range(count):
        lo, hi = max(0, t - half), min(count, t + half + 1)
        median = np.median(stack[lo:hi], axis=0) if hi - lo > 1 else stack[t]
        if state is None:
            state = median > 0.5
        else:
            state = (median >= params.mask_high) | (state & (median > params.mask_low))
        out.append(state.copy())
    return out


def _blurred(frame: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(frame, (0, 0), 1.5)


def static_weights(frames: Sequence[np.ndarray], threshold: float) -> list[np.ndarray]:
    """Per frame t >= 1: weight in 0..1 that pixel x is static between frames t-1 and t.

    ``exp(-(d / threshold)^2)`` of the largest channel change ``d`` of the blurred frames,
    spread by a 3x3 maximum of ``d`` (a moving edge also marks its neighbours). Frame 0 gets
    zeros (no previous frame).
    """
    weights = [np.zeros(frames[0].shape[:2], np.float32)]
    previous = _blurred(frames[0])
    for frame in frames[1:]:
        current = _blurred(frame)
        change = np.abs(current - previous).max(axis=2)
        change = cv2.dilate(change, np.ones((3, 3), np.uint8))
        weights.append(np.exp(-(change / threshold) ** 2).astype(np.float32))
        previous = current
    return weights


def smooth_static(alphas: Sequence[np.ndarray], weights: Sequence[np.ndarray],
                  strength: float) -> list[np.ndarray]:
    """Forward-backward exponential smoothing of alpha on static pixels.

    ``f_t = a_t + k w_t (f_{t-1} - a_t)`` forwards and the same backwards (with the weight of
    the step between the two frames), averaged; ``k = strength``. With ``w = 0`` (motion) a
    frame keeps its own alpha; with ``w = 1`` noise variance drops by about ``(1-k)/(1+k)``.
    """
    if strength <= 0 or len(alphas) < 2:
        return [np.asarray(a, np.float32) for a in alphas]
    count = len(alphas)
    forward = [np.asarray(alphas[0], np.float32)]
    for t in range(1, count):
        gain = strength * weights[t]
        forward.append(alphas[t] + gain * (forward[-1] - alphas[t]))
    backward = [None] * count
    backward[-1] = np.asarray(alphas[-1], np.float32)
    for t in range(count - 2, -1, -1):
        gain = strength * weights[t + 1]
        backward[t] = alphas[t] + gain * (backward[t + 1] - alphas[t])
    return [np.clip(0.5 * (f + b), 0.0, 1.0).astype(np.float32) for f, b in zip(forward, backward)]


def video_trimaps(masks: Sequence[np.ndarray], frames: Sequence[np.ndarray],
                  params: VideoMatteParams) -> list[np.ndarray]:
    """Trimaps (0 / 0.5 / 1) that follow the (stabilised) masks, widened where things move."""
    params = params.validate()
    shape = frames[0].shape[:2]
    band = params.band_for(shape)
    binary = stabilise_masks(masks, params) if params.stabilise else [m > 0.5 for m in masks]
    trimaps = [trimap_from_mask(mask, band, band, unknown=UNIT_UNKNOWN) for mask in binary]
    if params.motion_band and len(frames) > 1:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * params.motion_band + 1,) * 2)
        weights = static_weights(frames, params.motion_threshold)
        for t, trimap in enumerate(trimaps):
            moving = np.zeros(shape, np.uint8)
            for s in (t, t + 1):
                if 0 < s < len(frames):
                    moving |= (weights[s] < 0.5).astype(np.uint8)
            edge = (trimap == 0.5).astype(np.uint8)
            near = cv2.dilate(edge, kernel) & moving
            trimap[near.astype(bool)] = 0.5
    return trimaps


def _solve_frame(frame, trimap, method) -> np.ndarray:
    """solve_trimap with defined results for frames without a person or without background."""
    foreground, background, unknown = split_trimap(trimap)
    if unknown.any() and not (foreground.any() and background.any()):
        # Person fills the frame or is a sliver: no two kinds of known pixel to propagate;
        # the unknown band takes the mask's side (defined, never an exception mid-clip).
        return (trimap >= 0.5).astype(np.float32) if foreground.any() else \
            np.zeros(trimap.shape, np.float32)
    return solve_trimap(frame, trimap, method=method)


def matte_video(frames: Sequence[np.ndarray], masks: Sequence[np.ndarray],
                params: VideoMatteParams | None = None, *,
                progress: Callable[[int, int], None] | None = None,
                should_stop: Callable[[], bool] | None = None,
                foreground: bool = True) -> VideoMatteResult:
    """Matte a clip.

    Parameters
    ----------
    frames : sequence of [H, W, 3] in 0..1
    masks : sequence of [H, W] in 0..1
        Person masks (segmentation, 1 = person) or a previous alpha, one per frame.
    params : VideoMatteParams, optional
    progress : callable, optional
        ``progress(done, total)`` after each frame is matted.
    should_stop : callable, optional
        Polled between frames; True raises ``InterruptedError``.
    foreground : bool
        Estimate the foreground colour (False: the frame's own colour goes into the RGBA).

    Returns
    -------
    VideoMatteResult

    Raises
    ------
    ValueError
        Empty clip, mismatched counts or sizes, bad parameters.
    """
    params = (params or VideoMatteParams()).validate()
    rgb, soft = check_clip(frames, masks)
    trimaps = video_trimaps(soft, rgb, params)
    alphas = []
    for t, (frame, trimap) in enumerate(zip(rgb, trimaps)):
        if should_stop is not None and should_stop():
            raise InterruptedError("video matting stopped on request")
        alphas.append(_solve_frame(frame, trimap, params.method))
        if progress is not None:
            progress(t + 1, len(rgb))
    if params.stabilise and params.smoothing > 0:
        alphas = smooth_static(alphas, static_weights(rgb, params.motion_threshold),
                               params.smoothing)
        # Known pixels stay exactly known.
        alphas = [np.where(tri == 0.5, a, tri).astype(np.float32) for a, tri in zip(alphas, trimaps)]
    rgba = []
    for frame, alpha in zip(rgb, alphas):
        colour = estimate_foreground(frame, alpha) if foreground and 0 < alpha.max() else frame
        rgba.append(np.dstack([colour, alpha]).astype(np.float32))
    return VideoMatteResult(rgba=rgba, alpha=alphas, trimaps=trimaps)

"""Settings of the matting algorithms (:class:`KeyParams` for :mod:`.keying`,
:class:`VideoMatteParams` for :mod:`.video`) and the trimap solvers' names (:data:`METHODS`).

Standard library only: the command line's parser reads the defaults and ranges from these
classes, and ``ld-portrait --help`` must start without numpy or OpenCV. The algorithm modules
re-export the names, so ``from .keying import KeyParams`` keeps working.
"""
from __future__ import annotations

import dataclasses
import numbers

from ..base.fields import Settings, bounded_field, is_bool

__all__ = ["METHODS", "KeyParams", "VideoMatteParams"]

#: Solver names -> pymatting function names.
METHODS = {"cf": "estimate_alpha_cf", "knn": "estimate_alpha_knn", "lkm": "estimate_alpha_lkm",
           "lbdm": "estimate_alpha_lbdm", "rw": "estimate_alpha_rw"}


@dataclasses.dataclass(frozen=True)
class KeyParams(Settings):
    """Settings of :func:`.keying.chroma_key`.

    Attributes
    ----------
    key_colour : tuple of 3 floats in 0..1, or None
        The screen colour (RGB). None picks it from the image border
        (:func:`.keying.estimate_key_colour`).
    clip_black : float in 0..1
        Raw matte values at or below this become alpha 0 (screen noise, wrinkles).
    clip_white : float in 0..1, > clip_black
        Raw matte values at or above this become alpha 1 (subject noise).
    spill_strength : float in 0..1
        How much of the key-colour spill is removed from the foreground (1 = all: the key
        channel never exceeds the larger of the other two).
    edge_softness : float >= 0
        Gaussian sigma in pixels applied to the final alpha (0 = off).
    plate : bool
        Estimate a per-pixel clean plate (uneven screens); False uses the single key colour.
    border : int >= 1, or None
        Width in pixels of the border ring the key colour is measured on (None = 3% of the
        shorter side, at least 2).
    plate_passes : int >= 0
        Refinement passes of the clean plate (0 = the first estimate only, as the keyer's first
        version did). Each pass keys with the current plate and re-measures the screen only where
        that key is below ``plate_screen_alpha``, eroded by ``plate_erode`` px: the first
        estimate also takes screen seen through hair, whose colour difference is lower, so
        the plate under hair reads too dim and the hair too transparent.
    plate_screen_alpha : float in 0..1
    plate_erode : int >= 0
    noise_clip : float >= 0
        Noise-aware clip black. The image noise of the colour difference is measured on the
        screen (robust deviation from a 5x5 median); divided by the local plate signal it is
        the raw matte's noise, larger where the screen is dim. The clip black at a pixel is at
        least ``noise_clip`` times that. 0 = one clip black everywhere.

    Defaults were chosen on the calibration half of ``benchmarks/fixtures/keying_benchmark.py``
    (real ground-truth mattes and synthetic portraits on varied screens) and are reported on its
    evaluation half (docs/matting.md). The keyer's first version (``keyer_v1`` in the benchmark:
    one clip black, no plate refinement) is
    ``KeyParams(clip_black=0.1, plate_passes=0, noise_clip=0)``.
    """

    key_colour: tuple | None = None
    clip_black: float = bounded_field(
        0.05, 0.0, 1.0, "Raw matte at or below this becomes transparent (screen noise, wrinkles).")
    clip_white: float = bounded_field(
        0.88, 0.0, 1.0, "Raw matte at or above this becomes opaque (subject noise, spill).")
    spill_strength: float = bounded_field(
        1.0, 0.0, 1.0, "How much green (or blue) spill is removed from the subject: 1 = the key "
        "channel never exceeds the larger other channel, 0 = off.")
    edge_softness: float = bounded_field(
        0.0, 0.0, 256.0, "Gaussian blur (sigma, px) of the alpha; 0 = off.")
    plate: bool = True
    border: int | None = None
    plate_passes: int = 2
    plate_screen_alpha: float = bounded_field(
        0.2, 0.0, 1.0, "Refinement passes of the clean plate take as screen only pixels keyed "
        "below this alpha (hair-covered screen is not screen).")
    plate_erode: int = 3
    noise_clip: float = bounded_field(
        2.0, 0.0, 20.0, "Noise-aware clip black: at least this many noise deviations of the "
        "raw matte (image noise over the local screen signal; dim screen = noisier matte); "
        "0 = off.")

    def check_together(self) -> None:
        if self.clip_white <= self.clip_black:
            raise ValueError(f"clip_white ({self.clip_white}) must be greater than clip_black "
                             f"({self.clip_black}).")
        if self.border is not None and (isinstance(self.border, bool) or int(self.border) < 1):
            raise ValueError(f"border must be a whole number >= 1 or None, got {self.border!r}.")
        for name in ("plate_passes", "plate_erode"):
            value = getattr(self, name)
            whole = isinstance(value, numbers.Integral) and not is_bool(value)
            if not whole or not 0 <= value <= 16:
                raise ValueError(f"{name} must be a whole number 0..16, got {value!r}.")
        if self.key_colour is not None:
            from .keying import _check_key  # numpy: only when a colour was given

            _check_key(self.key_colour)


@dataclasses.dataclass(frozen=True)
class VideoMatteParams(Settings):
    """Settings of :func:`.video.matte_video`.

    Attributes
    ----------
    band : int >= 0
        Half-width of the trimap's unknown band around the mask edge, px (0 = 2% of the
        shorter side, at least 3).
    motion_band : int >= 0
        Extra band width where the frame changes between consecutive frames (motion blur,
        a mask that lags); 0 = off.
    window : odd int >= 1
        Frames in the temporal median of the masks (1 = no median).
    mask_low, mask_high : float in 0..1
        Hysteresis thresholds on the (median) soft masks.
    smoothing : float in 0..0.95
        Strength of the temporal alpha filter on static pixels (0 = independent frames).
    motion_threshold : float > 0
        Colour change (0..1, after a light blur) at which a pixel counts as moving.
    method : str
        pymatting solver (see ``trimap_solve.METHODS``).
    stabilise : bool
        False skips steps 1 and 4 (independent per-frame matting, for comparison).
    """

    band: int = bounded_field(
        0, 0, 512, "Half-width (px) of the trimap's unknown band; 0 = 2% of the shorter side.")
    motion_band: int = bounded_field(
        0, 0, 512, "Extra band width (px) where the picture moves; 0 = off.")
    window: int = bounded_field(
        3, 1, 31, "Frames in the temporal median of the masks (odd; 1 = none).")
    mask_low: float = 0.35
    mask_high: float = 0.65
    smoothing: float = bounded_field(
        0.8, 0.0, 0.95, "Temporal smoothing of alpha on static parts (0 = every frame on its own).")
    motion_threshold: float = 0.04
    method: str = "cf"
    stabilise: bool = True

    def check_together(self) -> None:
        if self.window % 2 == 0:
            raise ValueError(f"window must be an odd whole number in 1..31, got {self.window!r}.")
        if not 0.0 <= self.mask_low < self.mask_high <= 1.0:
            raise ValueError(f"need 0 <= mask_low < mask_high <= 1, got {self.mask_low}, "
                             f"{self.mask_high}.")
        if not self.motion_threshold > 0:
            raise ValueError(f"motion_threshold must be > 0, got {self.motion_threshold!r}.")
        if self.method not in METHODS:
            raise ValueError(f"unknown matting method {self.method!r}; choose one of "
                             f"{sorted(METHODS)}.")

    def band_for(self, shape) -> int:
        return self.band or max(3, int(round(0.02 * min(shape))))

"""Judging chroma keyers: ground-truth mattes shot on varied green and blue screens, scored in
the soft band first.

Shots
-----
A shot is a subject with a known matte ``alpha`` and foreground colour ``F`` composited onto a
screen made here (:func:`make_screen`): a key colour drawn per shot (green or blue, hue,
saturation and brightness varied), lit unevenly (a fall-off in a random direction, a hot spot,
smooth fabric wrinkles), with a slow hue drift. Spill (:func:`spill_subject`) blends the
subject toward the local screen colour, strongest in the soft band and at the silhouette and
fading into the body; thin hair therefore carries screen colour. Then sensor noise and 8-bit
quantisation. None of this uses a keyer's own model (no blurred plate, no channel clamp).

* Real ground-truth mattes (:func:`real_shots`): :func:`..real_mattes.find_real_mattes`
  subjects. Their ``rgb`` serves as ``F``. **Limitation:** in the soft band that photo is
  itself a mix of the hair and the original background, so ``rgb * alpha + screen * (1 -
  alpha)`` is a true composite only where alpha is 0 or 1; in the band it carries some of the
  old background's colour, as a real shot carries a little of whatever the hair lets through.
* Synthetic portraits (:func:`synthetic_shots`): :func:`..synthetic.make_portrait`, whose
  ``rgb`` is the true foreground colour everywhere.

Splits: subjects sorted by name alternate between the ``"calibration"`` and ``"evaluation"``
halves (:func:`split_subjects`); synthetic seeds and screen seeds differ per half
(:data:`EVALUATION_SEED_BASE`). Defaults may be chosen on the calibration half only.

Scores (:func:`score_shot`), band first: SAD (sum |alpha - truth| / 1000) on the DIM band
(:func:`..synthetic_families.scoring.dim_band`), then the whole image, then the error left on
clean background (truth 0 outside the band) and clean body (truth 1 outside the band), the
foreground colour error in the band against the true ``F`` (alpha-weighted mean absolute
error over the channels, truth alpha >= 0.1), and the key-colour excess on the subject in the
keyed foreground and in the input photo.

Baselines (:func:`plain_key`, :func:`trimap_matting_key`): the plain colour-difference key
(``alpha = 1 - d(c) / d(key)``, key colour = the border's median, plain despill: the key
channel clamped to the larger other channel of the photo) and closed-form matting
(Levin et al. 2008, pymatting) on a trimap made from that plain key, foreground by pymatting's
multi-level estimation (Germer et al. 2021), then plain despill.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import cv2
import numpy as np

from ..matting.keying import KeyParams, chroma_key, screen_signal
from ..matting.trimap_solve import estimate_foreground, solve_trimap
from .synthetic import make_portrait
from .synthetic_families.common import quantise
from .synthetic_families.scoring import dim_band, true_band

__all__ = ["Shot", "SPLITS", "EVALUATION_SEED_BASE", "make_screen", "spill_subject", "shoot",
           "split_subjects", "wears_key_colour", "real_shots", "synthetic_shots", "plain_key",
           "plain_despill",
           "trimap_matting_key", "keyer_method", "score_shot", "evaluate", "totals"]

SPLITS = ("calibration", "evaluation")
#: Synthetic portrait seeds and screen seeds of the evaluation half start here.
EVALUATION_SEED_BASE = 700_000
_HALF = 0.5 / 255.0


@dataclass(frozen=True)
class Shot:
    """One subject on one screen.

    Attributes
    ----------
    name : str           subject and screen, e.g. ``"child_blonde_curls/green"``
    kind : str           ``"green"`` or ``"blue"``
    source : str         ``"real"`` or ``"synthetic"``
    image : float32 [H, W, 3]   the photograph a keyer gets (8-bit levels)
    alpha_true : float32 [H, W]
    foreground_true : float32 [H, W, 3]  the subject's colour without spill
    screen : float32 [H, W, 3]           the lit screen behind it
    """

    name: str
    kind: str
    source: str
    image: np.ndarray = field(repr=False)
    alpha_true: np.ndarray = field(repr=False)
    foreground_true: np.ndarray = field(repr=False)
    screen: np.ndarray = field(repr=False)


def _rng(*parts) -> np.random.Generator:
    # crc32 of the text parts, not hash(): the same shot in every process.
    return np.random.default_rng([zlib.crc32(str(p).encode()) for p in parts])


def _smooth(rng, shape, cells: float) -> np.ndarray:
    """Smooth noise in -1..1 with about ``cells`` features across the longer side."""
    height, width = shape
    longest = max(height, width)
    grid = (max(2, int(round(cells * height / longest)) + 2),
            max(2, int(round(cells * width / longest)) + 2))
    field_ = cv2.resize(rng.standard_normal(grid).astype(np.float32), (width, height),
                        interpolation=cv2.INTER_CUBIC)
    return field_ / (np.abs(field_).max() + 1e-6)


def make_screen(rng: np.random.Generator, shape: tuple, kind: str) -> np.ndarray:
    """A lit green or blue screen, float32 [H, W, 3] in 0..1.

    Key colour: dominant channel 0.45..0.85, the other two 0.05..0.35 of it; light: a linear
    fall-off of 20..55% in a random direction, a hot spot, wrinkles; a slow hue drift.
    """
    if kind not in ("green", "blue"):
        raise ValueError(f"screen kind must be 'green' or 'blue', got {kind!r}.")
    height, width = shape
    primary = 1 if kind == "green" else 2
    others = [c for c in range(3) if c != primary]
    level = rng.uniform(0.45, 0.85)
    base = np.zeros(3, np.float32)
    base[primary] = level
    base[others[0]], base[others[1]] = level * rng.uniform(0.05, 0.35, 2)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) / max(height, width)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * xx + np.sin(angle) * yy
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    spot_x, spot_y = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9)
    light = (1.0 - rng.uniform(0.2, 0.55) * ramp
             + rng.uniform(0.1, 0.3) * np.exp(-((xx - spot_x) ** 2 + (yy - spot_y) ** 2)
                                              / rng.uniform(0.03, 0.1))
             + rng.uniform(0.04, 0.1) * _smooth(rng, shape, rng.uniform(8, 20)))
    screen = base[None, None, :] * light[..., None]
    drift = rng.uniform(0.01, 0.04) * level * _smooth(rng, shape, 2.5)
    screen[..., others[0]] += drift
    screen[..., others[1]] -= drift
    return np.clip(screen, 0.0, 1.0).astype(np.float32)


def spill_subject(foreground, alpha, screen, rng: np.random.Generator,
                  strength: float) -> np.ndarray:
    """The subject's colour with screen light bounced onto it: a blend toward the local screen
    colour, ``strength`` at the silhouette and in the soft band, fading into the body."""
    solid = (alpha >= 1.0 - _HALF).astype(np.uint8)
    depth = cv2.distanceTransform(solid, cv2.DIST_L2, 3)
    reach = rng.uniform(0.01, 0.04) * max(alpha.shape)
    amount = strength * (0.15 + 0.85 * np.exp(-depth / reach))
    amount = amount[..., None].astype(np.float32)
    return np.clip(foreground * (1.0 - amount) + amount * screen, 0.0, 1.0).astype(np.float32)


def shoot(name: str, source: str, foreground, alpha, kind: str, rng: np.random.Generator) -> Shot:
    """Composite ``foreground`` with ``alpha`` onto a fresh screen of ``kind``, with spill
    (strength 0.08..0.3), noise (sigma 0.005..0.02) and 8-bit quantisation."""
    foreground = np.asarray(foreground, np.float32)
    alpha = quantise(np.asarray(alpha, np.float32))
    screen = make_screen(rng, alpha.shape, kind)
    spilled = spill_subject(foreground, alpha, screen, rng, rng.uniform(0.08, 0.3))
    a = alpha[..., None]
    image = a * spilled + (1.0 - a) * screen
    image = image + rng.normal(0.0, rng.uniform(0.005, 0.02), image.shape).astype(np.float32)
    image = np.round(np.clip(image, 0.0, 1.0) * 255.0) / 255.0
    return Shot(name, kind, source, image.astype(np.float32), alpha, foreground, screen)


def split_subjects(names: Sequence[str], half: str) -> list:
    """Subjects of one half: sorted names, even positions calibrate, odd ones evaluate."""
    if half not in SPLITS:
        raise ValueError(f"half must be one of {SPLITS}, got {half!r}.")
    ordered = sorted(names)
    return ordered[0::2] if half == "calibration" else ordered[1::2]


def _greenish(rgb, alpha) -> float:
    solid = alpha > 0.5
    excess = np.maximum(rgb[..., 1] - np.maximum(rgb[..., 0], rgb[..., 2]), 0.0)
    return float(excess[solid].mean()) if solid.any() else 0.0


def wears_key_colour(foreground, alpha, kind: str) -> bool:
    """Whether the subject's opaque part carries the screen's colour (mean excess >= 0.01):
    shoots avoid such wardrobe, no colour-difference keyer can separate it."""
    check = foreground if kind == "green" else np.asarray(foreground)[..., [0, 2, 1]]
    return _greenish(check, alpha) >= 0.01


def real_shots(records: Sequence, half: str, kinds: Sequence[str] = ("green", "blue"),
               screens: int = 1) -> list:
    """Each subject of ``half`` (records from ``find_real_mattes``) on ``screens`` screens per
    kind, except screens of a colour the subject wears (:func:`wears_key_colour`). Screen 0
    of a subject is the same whatever ``screens`` is; later ones are named ``.../kind#k``."""
    chosen = set(split_subjects([r.name for r in records], half))
    base = 0 if half == "calibration" else EVALUATION_SEED_BASE
    return [shoot(f"{record.name}/{kind}" + (f"#{index}" if index else ""), "real", record.rgb,
                  record.alpha_true, kind,
                  _rng("real", base, record.name, kind, *((index,) if index else ())))
            for record in sorted(records, key=lambda r: r.name) if record.name in chosen
            for kind in kinds if not wears_key_colour(record.rgb, record.alpha_true, kind)
            for index in range(int(screens))]


def synthetic_shots(half: str, count: int = 4, size: int = 256) -> list:
    """``count`` procedural portraits of ``half`` (green-dressed ones skipped: no keyer can
    separate green wardrobe from a green screen), alternately on green and blue screens."""
    if half not in SPLITS:
        raise ValueError(f"half must be one of {SPLITS}, got {half!r}.")
    seed = 0 if half == "calibration" else EVALUATION_SEED_BASE
    shots = []
    while len(shots) < count:
        portrait = make_portrait(seed, size)
        alpha = np.asarray(portrait.alpha_true, np.float32)
        foreground = np.asarray(portrait.rgb, np.float32)
        kind = ("green", "blue")[len(shots) % 2]
        if not wears_key_colour(foreground, alpha, kind):
            shots.append(shoot(f"synthetic_{seed}/{kind}", "synthetic", foreground, alpha, kind,
                               _rng("synthetic", seed, kind)))
        seed += 1
    return shots


# ------------------------------------------------------------------------------ baselines

def _border_median_key(image) -> np.ndarray:
    """The median colour of the 3%-wide border ring (the plain key's key colour)."""
    height, width = image.shape[:2]
    border = max(2, int(round(0.03 * min(height, width))))
    ring = np.zeros((height, width), bool)
    ring[:border], ring[-border:], ring[:, :border], ring[:, -border:] = True, True, True, True
    return np.median(image[ring], axis=0).astype(np.float32)


def plain_despill(rgb, key) -> np.ndarray:
    """The key's dominant channel clamped to the larger of the other two."""
    primary = int(np.argmax(key))
    others = [c for c in range(3) if c != primary]
    out = np.array(rgb, np.float32, copy=True)
    larger_other = np.maximum(out[..., others[0]], out[..., others[1]])
    out[..., primary] = np.minimum(out[..., primary], larger_other)
    return out


def plain_key(image) -> tuple:
    """(alpha, foreground): ``alpha = clip(1 - d(c) / d(key))`` with the border's median as key,
    foreground = the photo with plain despill."""
    key = _border_median_key(image)
    key_signal = max(float(screen_signal(key[None], key)[0]), 1e-3)
    alpha = np.clip(1.0 - screen_signal(image, key) / key_signal, 0.0, 1.0).astype(np.float32)
    return alpha, plain_despill(image, key)


def trimap_matting_key(image, *, low: float = 0.05, high: float = 0.95, grow: int = 2) -> tuple:
    """(alpha, foreground): closed-form matting on a trimap from the plain key.

    Known background: plain alpha <= ``low``; known foreground: >= ``high``; both shrunk by
    ``grow`` px so the unknown band covers the edge. Foreground: pymatting's estimate, then
    plain despill.
    """
    key = _border_median_key(image)
    alpha, _ = plain_key(image)
    kernel = np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)
    sure_fg = cv2.erode((alpha >= high).astype(np.uint8), kernel).astype(bool)
    sure_bg = cv2.erode((alpha <= low).astype(np.uint8), kernel).astype(bool)
    trimap = np.full(alpha.shape, 0.5, np.float32)
    trimap[sure_fg], trimap[sure_bg] = 1.0, 0.0
    if not sure_fg.any() or not sure_bg.any():
        return alpha, plain_despill(image, key)
    solved = np.clip(solve_trimap(image, trimap), 0.0, 1.0).astype(np.float32)
    foreground = estimate_foreground(image, solved)
    return solved, plain_despill(foreground, key)


def keyer_method(params: KeyParams | None = None) -> Callable:
    """The pack's keyer as a method: image -> (alpha, foreground)."""
    def run(image):
        result = chroma_key(image, params)
        return result.alpha, result.foreground
    return run


# -------------------------------------------------------------------------------- scoring

def _key_of(kind: str) -> tuple:
    return (0.0, 1.0, 0.0) if kind == "green" else (0.0, 0.0, 1.0)


def _excess(rgb, weight, key) -> float:
    excess = np.maximum(screen_signal(rgb, np.asarray(key, np.float32)), 0.0)
    total = float(weight.sum())
    return float((excess * weight).sum() / total) if total > 0 else 0.0


def score_shot(shot: Shot, alpha, foreground) -> dict:
    """Band first, then whole image, clean background and body, foreground colour error in the
    band and key-colour excess on the subject (keyed foreground and input photo)."""
    truth = shot.alpha_true
    error = np.abs(np.asarray(alpha, np.float64) - truth)
    band = dim_band(truth)
    background = (truth <= _HALF) & ~band
    body = (truth >= 1.0 - _HALF) & ~band
    colour_zone = band & (truth >= 0.1)
    weight = np.where(colour_zone, truth, 0.0)
    colour_error = np.abs(np.asarray(foreground, np.float64) - shot.foreground_true).mean(axis=-1)
    subject = np.where(truth >= 0.05, truth, 0.0)
    key = _key_of(shot.kind)
    return {
        "shot": shot.name, "source": shot.source, "kind": shot.kind,
        "band_sad": float(error[band].sum() / 1000.0),
        "sad": float(error.sum() / 1000.0),
        "background_sad": float(error[background].sum() / 1000.0),
        "body_sad": float(error[body].sum() / 1000.0),
        "fg_error": float((colour_error * weight).sum() / max(float(weight.sum()), 1e-9)),
        "excess_keyed": _excess(foreground, subject, key),
        "excess_input": _excess(shot.image, subject, key),
        "band_pixels": int(band.sum()), "soft_pixels": int(true_band(truth).sum()),
    }


def evaluate(shots: Sequence[Shot], methods: Mapping[str, Callable]) -> dict:
    """``{method: [score_shot rows, one per shot]}``; a method maps image -> (alpha, fg)."""
    out = {}
    for name, method in methods.items():
        rows = []
        for shot in shots:
            alpha, foreground = method(shot.image)
            rows.append(score_shot(shot, alpha, foreground))
        out[name] = rows
    return out


def totals(rows: Sequence[dict]) -> dict:
    """Summed SADs, mean colour error and excess ratio (keyed / input) over shots."""
    keyed = sum(r["excess_keyed"] for r in rows)
    given = sum(r["excess_input"] for r in rows)
    return {
        "band_sad": sum(r["band_sad"] for r in rows), "sad": sum(r["sad"] for r in rows),
        "background_sad": sum(r["background_sad"] for r in rows),
        "body_sad": sum(r["body_sad"] for r in rows),
        "fg_error": float(np.mean([r["fg_error"] for r in rows])) if rows else 0.0,
        "excess_ratio": keyed / given if given > 0 else 0.0,
    }

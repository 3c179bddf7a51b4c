"""Real ground-truth person mattes, read at run time, and Layer-Diffusion-like damage on top.

Real mattes with real hair come from the sample and demo folders of matting research
repositories; their licences are mostly research-only, so nothing here ships them. The user
names a folder (argument or the environment variable ``LDP_REAL_MATTES``) laid out as::

    <root>/<subject>/image.png   (or .jpg / .jpeg; RGB, RGBA is accepted and its alpha ignored)
    <root>/<subject>/alpha.png   (greyscale 8- or 16-bit, same size as the image)

:func:`find_real_mattes` loads it (``[]`` when the folder is not there), shrinking each pair
so the long side is at most ``max_side`` px (area interpolation, image and matte alike).
docs/evaluation.md lists public repositories, paths and commits to fill such a folder from.

:func:`corrupt_real` damages a real matte with one of :data:`CORRUPTION_MODELS`; each model
mixes the alpha failures seen in Layer Diffusion decodes:

* ``speckle``: isolated pixels and tiny clusters of 0.5..0.97 in the opaque body, a share of
  them on the body outline;
* ``patches``: large low-frequency translucent patches dimming the opaque interior to
  0.5..0.9 at their core;
* ``pinholes``: fully transparent spots of 1..5 px inside the body;
* ``debris``: faint specks (peak 0.02..0.3) floating in the background;
* ``frame_fade``: the body dims toward the image borders it crosses;
* ``glow_rim``: a faint 0.05..0.25 halo a few px outside the outline, over true background;
* ``banding``: quantised plateaus (steps) in the opaque interior.

The true soft region (ground truth strictly between 0 and 1) is never touched: damage lands
only where the truth is exactly 0 or 1, so any change a refiner makes to that region is damage
it did. The scored band, that region dilated by ``BAND_MARGIN`` px (the DIM unknown region), may
be reached, as Layer Diffusion's outline speckle and glow rims reach it.
The statistics (noise generators, sizes, levels) are this module's own, independent of the
synthetic families in :mod:`.synthetic_families`; only the record type is shared.
"""
from __future__ import annotations

import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import cv2
import numpy as np

from .synthetic_families.common import FamilyPortrait, quantise

__all__ = ["ENV_VAR", "MAX_SIDE", "BAND_MARGIN", "CORRUPTION_MARGIN", "CORRUPTION_MODELS", "RealMatte", "RealPortrait",
           "find_real_mattes", "load_subject", "protected_band", "corrupt_real", "real_portraits",
           "real_scores"]

#: Environment variable naming the folder of real mattes (used when no root is passed).
ENV_VAR = "LDP_REAL_MATTES"
#: Default limit of the long side after loading (px).
MAX_SIDE = 800
#: Refiners are scored on the true soft band widened by this many px (the DIM unknown region).
BAND_MARGIN = 2
#: The corruption leaves the true soft region itself untouched (widened by this many px: none),
#: so speckle on the outline can reach the scored band as Layer Diffusion's does.
CORRUPTION_MARGIN = 0

_IMAGE_NAMES = ("image.png", "image.jpg", "image.jpeg")
_ALPHA_NAMES = ("alpha.png",)
_HALF = 0.5 / 255.0


@dataclass(frozen=True)
class RealMatte:
    """One real subject: colour and ground-truth matte, same size.

    Attributes
    ----------
    name : str
        The subject folder's name.
    rgb : float32 ndarray [H, W, 3], 0..1
    alpha_true : float32 ndarray [H, W], 0..1, 8-bit levels
    folder : Path
        Where it was read from.
    """

    name: str
    rgb: np.ndarray = field(repr=False)
    alpha_true: np.ndarray = field(repr=False)
    folder: Path = field(repr=False, default=Path("."))


@dataclass(frozen=True)
class RealPortrait(FamilyPortrait):
    """A :class:`FamilyPortrait` built from a real matte; ``subject`` names the real image and
    ``family`` is ``"real_<model>"``."""

    subject: str = ""


# ---------------------------------------------------------------------------------- loading

def _first_existing(folder: Path, names: Sequence[str]):
    for name in names:
        if (folder / name).is_file():
            return folder / name
    return None


def _read(path: Path) -> np.ndarray:
    data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if data is None:
        raise ValueError(f"{path}: cannot be decoded as an image; replace it with a PNG or JPEG.")
    return data


def _to_unit(data: np.ndarray, path: Path) -> np.ndarray:
    if data.dtype == np.uint8:
        return data.astype(np.float32) / 255.0
    if data.dtype == np.uint16:
        return data.astype(np.float32) / 65535.0
    raise ValueError(f"{path}: unsupported sample type {data.dtype}; save it as 8- or 16-bit.")


def _read_alpha(path: Path) -> np.ndarray:
    data = _read(path)
    if data.ndim == 3:
        channels = data[..., :3]
        # A matte saved as an RGB(A) PNG with equal channels is still a matte.
        if not (np.array_equal(channels[..., 0], channels[..., 1])
                and np.array_equal(channels[..., 0], channels[..., 2])):
            raise ValueError(f"{path}: the matte has colour (its channels differ); save the alpha "
                             "as a greyscale PNG.")
        data = channels[..., 0]
    return _to_unit(data, path)


def _read_rgb(path: Path) -> np.ndarray:
    data = _read(path)
    if data.ndim == 2:
        data = cv2.cvtColor(data, cv2.COLOR_GRAY2BGR)
    data = data[..., :3]  # an RGBA image: its own alpha is not the ground truth here
    return np.ascontiguousarray(_to_unit(data, path)[..., ::-1])


def _shrink(array: np.ndarray, max_side: int) -> np.ndarray:
    height, width = array.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1.0:
        return array
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(array, size, interpolation=cv2.INTER_AREA)


def load_subject(folder: Path, max_side: int = MAX_SIDE) -> RealMatte:
    """Load one subject folder (``image.*`` and ``alpha.png``).

    Raises
    ------
    FileNotFoundError
        One of the two files is missing.
    ValueError
        The files cannot be read, the matte has colour, or the sizes differ.
    """
    folder = Path(folder)
    image_path = _first_existing(folder, _IMAGE_NAMES)
    alpha_path = _first_existing(folder, _ALPHA_NAMES)
    if image_path is None or alpha_path is None:
        missing = " and ".join(label for label, path in (("image.png (or .jpg)", image_path),
                                                         ("alpha.png", alpha_path)) if path is None)
        raise FileNotFoundError(f"{folder}: no {missing}; each subject folder needs image.png and "
                                "alpha.png of the same size.")
    rgb = _read_rgb(image_path)
    alpha = _read_alpha(alpha_path)
    if rgb.shape[:2] != alpha.shape:
        raise ValueError(
            f"{alpha_path}: the matte is {alpha.shape[1]}x{alpha.shape[0]} but {image_path.name} is "
            f"{rgb.shape[1]}x{rgb.shape[0]} (width x height); use the ground-truth matte made for "
            "this very image, uncropped and unscaled.")
    rgb = np.clip(_shrink(rgb, max_side), 0.0, 1.0).astype(np.float32)
    alpha = quantise(_shrink(alpha, max_side))
    return RealMatte(folder.name, rgb, alpha, folder)


def find_real_mattes(root=None, max_side: int = MAX_SIDE) -> list:
    """Every subject under ``root`` (default: ``$LDP_REAL_MATTES``), sorted by name.

    Returns ``[]`` when no folder is named or the named folder does not exist. Sub-folders
    holding neither ``image.*`` nor ``alpha.png`` are ignored; one holding only one of them,
    or a pair of different sizes, raises an error naming the file.
    """
    if root is None:
        root = os.environ.get(ENV_VAR, "").strip() or None
    if root is None:
        return []
    root = Path(root).expanduser()
    if not root.is_dir():
        return []
    subjects = []
    for folder in sorted(path for path in root.iterdir() if path.is_dir()):
        if _first_existing(folder, _IMAGE_NAMES) is None and _first_existing(folder, _ALPHA_NAMES) is None:
            continue
        subjects.append(load_subject(folder, max_side))
    return subjects


# ---------------------------------------------------------------------------- corruption

def protected_band(alpha_true: np.ndarray, margin: float = BAND_MARGIN) -> np.ndarray:
    """Bool [H, W]: ground truth strictly between 0 and 1 (8-bit), dilated by ``margin`` px
    (Euclidean). Reports score refiners on it (``BAND_MARGIN``); the corruption never touches it
    at ``CORRUPTION_MARGIN``."""
    soft = (alpha_true > _HALF) & (alpha_true < 1.0 - _HALF)
    if not soft.any():
        return soft
    distance = cv2.distanceTransform((~soft).view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return distance <= margin


@dataclass(frozen=True)
class _Scene:
    """What the artifact models look at: where they may act and how far from the outline."""

    truth: np.ndarray
    opaque: np.ndarray     # truth == 1 outside the protected band: may be dimmed
    empty: np.ndarray      # truth == 0 outside the protected band: may gain alpha
    depth: np.ndarray      # px from a truly opaque pixel to the nearest not-opaque one
    outside: np.ndarray    # px from a truly empty pixel to the nearest non-empty one
    unit: float            # 1 at a 400 x 400 image; sizes scale with it

    @property
    def shape(self):
        return self.truth.shape


def _scene(truth: np.ndarray) -> _Scene:
    band = protected_band(truth, CORRUPTION_MARGIN)
    full = truth >= 1.0 - _HALF
    zero = truth <= _HALF
    depth = cv2.distanceTransform(full.view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    outside = cv2.distanceTransform(zero.view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    unit = float(np.sqrt(truth.size)) / 400.0
    return _Scene(truth, full & ~band, zero & ~band, depth, outside, max(unit, 0.5))


def _low_frequency(rng: np.random.Generator, shape: tuple, cells: float) -> np.ndarray:
    """Smooth noise with about ``cells`` features across the longer side: a coarse Gaussian
    lattice upsampled bicubically, rescaled to 0..1."""
    height, width = shape
    longest = max(height, width)
    grid = (max(2, int(round(cells * height / longest)) + 2), max(2, int(round(cells * width / longest)) + 2))
    coarse = rng.standard_normal(grid).astype(np.float32)
    field = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    low, high = float(field.min()), float(field.max())
    return (field - low) / (high - low) if high > low else np.zeros(shape, np.float32)


def _pick(rng: np.random.Generator, mask: np.ndarray, count: int) -> np.ndarray:
    """Up to ``count`` distinct flat indices of True pixels of ``mask``."""
    candidates = np.flatnonzero(mask)
    if candidates.size == 0 or count <= 0:
        return candidates[:0]
    return rng.choice(candidates, size=min(count, candidates.size), replace=False)


def _dim(raw: np.ndarray, where: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Lower ``raw`` to ``value`` on ``where``; the changed pixels."""
    lowered = where & (value < raw - _HALF)
    raw[lowered] = value[lowered]
    return lowered


def _raise(raw: np.ndarray, where: np.ndarray, value: np.ndarray) -> np.ndarray:
    raised = where & (value > raw + _HALF)
    raw[raised] = value[raised]
    return raised


def _speckle(rng, raw, scene: _Scene, density=(4e-4, 2e-3), outline_share=(0.2, 0.45)):
    """Isolated 0.5..0.97 pixels and 2-4 px clusters in the body; a share on the outline."""
    opaque_count = int(scene.opaque.sum())
    count = int(opaque_count * rng.uniform(*density))
    outline = scene.opaque & (scene.depth <= 2.5)
    share = rng.uniform(*outline_share)
    seeds = np.concatenate((_pick(rng, outline, int(count * share)),
                            _pick(rng, scene.opaque & ~outline, count - int(count * share))))
    marks = np.zeros(scene.shape, np.float32)
    marks.flat[seeds] = rng.uniform(0.5, 0.97, seeds.size).astype(np.float32)
    # A third of the seeds grow into a small cluster (a 2x2 block) of the same value.
    cluster = seeds[rng.random(seeds.size) < 0.35]
    height, width = scene.shape
    rows, cols = np.unravel_index(cluster, scene.shape)
    for dr, dc in ((0, 1), (1, 0), (1, 1)):
        r, c = np.minimum(rows + dr, height - 1), np.minimum(cols + dc, width - 1)
        marks[r, c] = np.where(marks[r, c] > 0, np.minimum(marks[r, c], marks[rows, cols]), marks[rows, cols])
    value = np.where(marks > 0, marks, 1.0).astype(np.float32)
    return _dim(raw, scene.opaque, value)


def _patches(rng, raw, scene: _Scene, coverage=(0.08, 0.3), core=(0.5, 0.9)):
    """Large smooth translucent patches: the opaque interior dimmed to 0.5..0.9 at the core."""
    field = _low_frequency(rng, scene.shape, rng.uniform(3.0, 6.0))
    if not scene.opaque.any():
        return np.zeros(scene.shape, bool)
    threshold = float(np.quantile(field[scene.opaque], 1.0 - rng.uniform(*coverage)))
    top = float(field[scene.opaque].max())
    weight = np.clip((field - threshold) / max(top - threshold, 1e-6), 0.0, 1.0)
    weight = weight * weight * (3.0 - 2.0 * weight)  # smoothstep: soft shoulders, flat core
    value = (1.0 - (1.0 - rng.uniform(*core)) * weight).astype(np.float32)
    return _dim(raw, scene.opaque, value)


def _pinholes(rng, raw, scene: _Scene, count=(3, 12), radius=(0.6, 2.5)):
    """Fully transparent round spots well inside the body."""
    seeds = _pick(rng, scene.opaque & (scene.depth > 5.0 * scene.unit), int(rng.integers(*count)))
    holes = np.zeros(scene.shape, np.uint8)
    for row, col in zip(*np.unravel_index(seeds, scene.shape)):
        cv2.circle(holes, (int(col), int(row)), int(round(rng.uniform(*radius) * scene.unit)), 1, -1)
    return _dim(raw, scene.opaque & (holes > 0), np.zeros(scene.shape, np.float32))


def _debris(rng, raw, scene: _Scene, count=(8, 40), peak=(0.02, 0.3), sigma=(0.6, 2.2)):
    """Faint Gaussian specks in the background, clear of the subject."""
    seeds = _pick(rng, scene.empty & (scene.outside > 8.0 * scene.unit), int(rng.integers(*count)))
    specks = np.zeros(scene.shape, np.float32)
    height, width = scene.shape
    for row, col in zip(*np.unravel_index(seeds, scene.shape)):
        spread = rng.uniform(*sigma) * scene.unit
        reach = int(np.ceil(3 * spread))
        r0, r1, c0, c1 = max(0, row - reach), min(height, row + reach + 1), max(0, col - reach), min(width, col + reach + 1)
        yy, xx = np.mgrid[r0:r1, c0:c1]
        dot = rng.uniform(*peak) * np.exp(-((yy - row) ** 2 + (xx - col) ** 2) / (2 * spread ** 2))
        specks[r0:r1, c0:c1] = np.maximum(specks[r0:r1, c0:c1], dot)
    return _raise(raw, scene.empty, specks)


def _frame_fade(rng, raw, scene: _Scene, reach=(0.05, 0.15), floor=(0.5, 0.85)):
    """The body fades toward each image border it crosses."""
    height, width = scene.shape
    full = scene.truth >= 1.0 - _HALF
    rows = np.arange(height, dtype=np.float32)[:, None]
    cols = np.arange(width, dtype=np.float32)[None, :]
    sides = {"top": (full[0].any(), np.broadcast_to(rows, scene.shape)),
             "bottom": (full[-1].any(), np.broadcast_to(height - 1 - rows, scene.shape)),
             "left": (full[:, 0].any(), np.broadcast_to(cols, scene.shape)),
             "right": (full[:, -1].any(), np.broadcast_to(width - 1 - cols, scene.shape))}
    value = np.ones(scene.shape, np.float32)
    for touches, distance in sides.values():
        if not touches or rng.random() > 0.85:
            continue
        length = rng.uniform(*reach) * max(height, width)
        lowest = rng.uniform(*floor)
        ramp = np.clip(distance / length, 0.0, 1.0) ** rng.uniform(0.7, 1.6)
        value = np.minimum(value, lowest + (1.0 - lowest) * ramp)
    return _dim(raw, scene.opaque, value.astype(np.float32))


def _glow_rim(rng, raw, scene: _Scene, width=(1.5, 4.0), level=(0.05, 0.25)):
    """A faint halo a few px outside the outline over true background, patchy along it."""
    spread = rng.uniform(*width) * scene.unit
    strength = rng.uniform(*level)
    along = _low_frequency(rng, scene.shape, rng.uniform(6.0, 14.0))
    presence = np.clip((along - 0.25) / 0.35, 0.0, 1.0)  # the rim comes and goes along the outline
    halo = strength * presence * np.exp(-np.maximum(scene.outside - 1.0, 0.0) / spread)
    halo[scene.outside > 4.0 * spread + 3.0] = 0.0
    return _raise(raw, scene.empty, halo.astype(np.float32))


def _banding(rng, raw, scene: _Scene, steps=(3, 7), amplitude=(0.06, 0.3), margin=4.0):
    """Quantised plateaus in the interior: a smooth field rounded to a few levels."""
    field = _low_frequency(rng, scene.shape, rng.uniform(2.0, 5.0))
    levels = int(rng.integers(*steps))
    stepped = np.floor(field * levels) / levels
    # Only the upper part of the field bands; the rest of the interior stays opaque.
    offset = float(rng.uniform(0.2, 0.5))
    drop = np.clip((stepped - offset) / (1.0 - offset), 0.0, 1.0) * rng.uniform(*amplitude)
    interior = scene.opaque & (scene.depth > margin * scene.unit)
    return _dim(raw, interior, (1.0 - drop).astype(np.float32))


_ARTIFACTS: Mapping[str, Callable] = {
    "speckle": _speckle, "patches": _patches, "pinholes": _pinholes, "debris": _debris,
    "frame_fade": _frame_fade, "glow_rim": _glow_rim, "banding": _banding,
}

#: Model name -> the artifact kinds it applies, in order (later ones act on earlier damage).
CORRUPTION_MODELS: Mapping[str, tuple] = {
    # Blotchy decodes: translucent patches, speckle reaching the outline, holes, dust, fade.
    "blotchy": ("patches", "frame_fade", "speckle", "pinholes", "debris"),
    # Quantised decodes: banded interior, a glow rim around the subject, sparse speckle, dust.
    "banded_glow": ("banding", "glow_rim", "speckle", "pinholes", "debris"),
    # Everything at once.
    "all": ("patches", "banding", "frame_fade", "glow_rim", "speckle", "pinholes", "debris"),
}


def _seed_sequence(seed: int, model: str, subject: str) -> np.random.Generator:
    # crc32, not hash(): stable across processes, so a (subject, model, seed) is reproducible.
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(model.encode()), zlib.crc32(subject.encode())])


def corrupt_real(record: RealMatte, model: str, seed: int = 0) -> RealPortrait:
    """Damage ``record``'s matte with corruption model ``model`` (see :data:`CORRUPTION_MODELS`).

    Deterministic for a given (subject name, model, seed). Only pixels whose truth is exactly
    0 or 1 outside :func:`protected_band` change; ``alpha_raw`` has 8-bit levels.
    """
    if model not in CORRUPTION_MODELS:
        raise ValueError(f"unknown corruption model {model!r}; known: {sorted(CORRUPTION_MODELS)}.")
    truth = quantise(record.alpha_true)
    rng = _seed_sequence(seed, model, record.name)
    scene = _scene(truth)
    raw = truth.copy()
    artifacts = {}
    for kind in CORRUPTION_MODELS[model]:
        changed = _ARTIFACTS[kind](rng, raw, scene)
        artifacts[kind] = changed if kind not in artifacts else artifacts[kind] | changed
    raw = quantise(raw)
    editable = scene.opaque | scene.empty
    raw[~editable] = truth[~editable]  # belt and braces: the protected band stays the truth
    return RealPortrait(family=f"real_{model}", seed=int(seed), rgb=record.rgb, alpha_true=truth,
                        alpha_raw=raw, artifacts=artifacts, subject=record.name)


def real_portraits(root=None, models: Iterable[str] = tuple(CORRUPTION_MODELS), seed: int = 0,
                   max_side: int = MAX_SIDE) -> list:
    """Every real subject under ``root`` (default ``$LDP_REAL_MATTES``) damaged by every model:
    ``[corrupt_real(subject, model, seed) for subject for model]``; ``[]`` without a folder."""
    models = tuple(models)
    for model in models:
        if model not in CORRUPTION_MODELS:
            raise ValueError(f"unknown corruption model {model!r}; known: {sorted(CORRUPTION_MODELS)}.")
    return [corrupt_real(subject, model, seed) for subject in find_real_mattes(root, max_side)
            for model in models]


def real_scores(portraits: Sequence[FamilyPortrait], methods: Mapping[str, Callable]) -> list:
    """One row per (portrait, method): whole-image SAD and SAD on :func:`protected_band`
    (both / 1000, the DIM convention). Each method maps ``(alpha_raw, rgb) -> alpha``."""
    rows = []
    for portrait in portraits:
        band = protected_band(portrait.alpha_true)
        for name, method in methods.items():
            error = np.abs(np.asarray(method(portrait.alpha_raw, portrait.rgb), np.float64) - portrait.alpha_true)
            rows.append({"subject": getattr(portrait, "subject", ""), "family": portrait.family,
                         "method": name, "sad": float(error.sum() / 1000.0),
                         "band_sad": float(error[band].sum() / 1000.0)})
    return rows

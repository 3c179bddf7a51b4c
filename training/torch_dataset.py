"""A PyTorch dataset over an ld-portrait dataset: composites with matting augmentations.

Each item takes one foreground ``F`` and alpha of the dataset and, when augmenting:

1. crops a square of side ``min(crop, H, W)`` centred (with probability
   ``unknown_center_probability``) on a random pixel of the soft region ``0 < alpha < 1``,
   elsewhere at a random place; the square is kept inside the image, so an image smaller
   than the crop is used whole along its shorter side;
2. flips it left-right with probability ``flip_probability``;
3. resizes it to ``size x size`` (area averaging when shrinking, bilinear when enlarging);
4. jitters the colour of the foreground (brightness, contrast, saturation, hue);
5. draws a background ``B`` of ``size x size`` (a picture of a folder, or a procedural one)
   and composites ``I = F * alpha + B * (1 - alpha)`` on the final pixels, so the returned
   tensors satisfy that equation exactly;
6. makes a trimap with :func:`..base.trimap.trimap_from_alpha`: unknown where
   ``0 < alpha < 1`` and within a band of it or of a 0/1 edge, 1 where opaque.

Without augmentation (``augment=False``, for validation) the whole image is resized to
``size x size``, nothing is flipped or jittered, and the background and band depend on the
index only.

Randomness: item ``i`` in epoch ``e`` draws everything from ``numpy.random.default_rng([seed,
e, i, augment])``, so the same (seed, epoch, index) gives the same tensors whichever ``DataLoader``
worker loads it and however many workers there are. Call :meth:`MattingDataset.set_epoch`
before each epoch (with ``persistent_workers=False``, the default, the workers see it).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import torch

from ..dataset import list_sample_ids, load_sample
from ..dataset.export import plan_split
from ..base.composite import procedural_background
from ..base.trimap import UNIT_UNKNOWN, trimap_from_alpha
from ..base.validation import check_pixel_count

__all__ = ["AugmentOptions", "MattingDataset", "list_training_ids", "split_ids", "seed_worker",
           "jitter_colour", "make_item", "TRIMAP_UNKNOWN"]

#: Value of the unknown region in the returned trimap tensors (0 background, 1 foreground).
TRIMAP_UNKNOWN = UNIT_UNKNOWN
# Alpha values within half an 8-bit step of 0 or 1 count as transparent / opaque (resizing
# leaves tiny float residues that are not a soft edge).
_SOFT_EPSILON = 0.5 / 255.0


@dataclasses.dataclass(frozen=True)
class AugmentOptions:
    """How :class:`MattingDataset` makes training items.

    Attributes
    ----------
    size : int
        Side of the returned tensors in pixels (any whole number >= 8; odd is fine).
    crop : int
        Side of the square cut from the source image before resizing (>= 8).
    unknown_center_probability : float
        Chance that the crop is centred on a soft-edge pixel (when the image has any).
    flip_probability : float
        Chance of a left-right flip.
    brightness, contrast, saturation : float
        Colour jitter of the foreground: each factor is drawn from ``1 +- value`` (0..1).
    hue : float
        Hue shift drawn from ``+- hue`` turns (0..0.5).
    trimap_band : tuple of float
        Range of the trimap's unknown band as a fraction of ``size``, drawn per item when
        augmenting (the middle of the range otherwise); the band is at least 1 pixel.
    """

    size: int = 256
    crop: int = 512
    unknown_center_probability: float = 0.8
    flip_probability: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.03
    trimap_band: tuple = (0.01, 0.05)

    def __post_init__(self):
        for name in ("size", "crop"):
            check_pixel_count(getattr(self, name), name, 8)
        for name in ("unknown_center_probability", "flip_probability", "brightness", "contrast",
                     "saturation"):
            value = getattr(self, name)
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name} must be in 0..1, got {value!r}.")
        if not 0.0 <= float(self.hue) <= 0.5:
            raise ValueError(f"hue must be in 0..0.5 turns, got {self.hue!r}.")
        low, high = self.trimap_band
        if not 0.0 <= low <= high <= 0.5:
            raise ValueError(f"trimap_band must be (low, high) with 0 <= low <= high <= 0.5, "
                             f"got {self.trimap_band!r}.")


def list_training_ids(root, *, include_rejected: bool = False) -> list:
    """Ids of the samples of ``root`` to train on (accepted; rejected ones too on request,
    those whose images were kept).

    Raises
    ------
    ValueError
        ``root`` is not a dataset or has no such samples; the message says what to do.
    """
    root = Path(root)
    if not (root / "meta").is_dir():
        hint = (f" (did you mean {root / 'dataset'}?)" if (root / "dataset" / "meta").is_dir()
                else "")
        raise ValueError(f"{root}: not an ld-portrait dataset, no meta/ folder{hint}.")
    ids = list_sample_ids(root)
    if include_rejected:
        ids = sorted(set(ids) | {sample_id for sample_id in list_sample_ids(root, rejected=True)
                                 if (root / "rejected" / "fg" / f"{sample_id}.png").is_file()})
    if not ids:
        raise ValueError(f"{root}: no samples to train on (everything rejected? pass "
                         "include_rejected=True, or loosen the gate, e.g. `ld-portrait demo "
                         "... --gate min_side=64`).")
    return ids


def split_ids(ids, holdout: float, seed: int = 0) -> tuple[list, list]:
    """(training ids, held-out ids): a seeded shuffle with ``holdout`` of them held out (the
    same cut :func:`..dataset.export.plan_split` makes for an export)."""
    if not 0.0 <= float(holdout) < 1.0:
        raise ValueError(f"holdout must be a fraction in [0, 1), got {holdout!r}.")
    return plan_split(list(ids), 1.0 - float(holdout), seed)


def seed_worker(worker_id: int) -> None:
    """``DataLoader(worker_init_fn=seed_worker)``: Python's and numpy's global generators
    seeded from the worker's torch seed (for user code that uses them; this dataset draws from
    its own per-item generators).

    It does not call ``cv2.setNumThreads``: in a forked worker whose parent already ran OpenCV
    in parallel, that call deadlocks (it tears down the thread pool copied by the fork).
    """
    import random

    seed = torch.initial_seed() % (1 << 32)
    random.seed(seed)
    np.random.seed(seed)


def jitter_colour(rgb: np.ndarray, rng: np.random.Generator, options: AugmentOptions) -> np.ndarray:
    """Random brightness, contrast, saturation and hue change of an RGB image.

    Parameters
    ----------
    rgb : float32 ndarray [H, W, 3] in 0..1
    rng : numpy Generator
    options : AugmentOptions

    Returns
    -------
    float32 ndarray [H, W, 3] in 0..1
    """
    weights = np.array([0.299, 0.587, 0.114], np.float32)
    out = rgb * np.float32(rng.uniform(1 - options.brightness, 1 + options.brightness))
    factor = np.float32(rng.uniform(1 - options.contrast, 1 + options.contrast))
    mean = np.float32((out @ weights).mean())
    out = (out - mean) * factor + mean
    factor = np.float32(rng.uniform(1 - options.saturation, 1 + options.saturation))
    gray = (out @ weights)[..., None]
    out = np.clip(gray + (out - gray) * factor, 0.0, 1.0).astype(np.float32)
    shift = float(rng.uniform(-options.hue, options.hue))
    if shift:
        hsv = cv2.cvtColor(out, cv2.COLOR_RGB2HSV)  # float input: hue in degrees 0..360
        hsv[..., 0] = np.mod(hsv[..., 0] + np.float32(shift * 360.0), np.float32(360.0))
        out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _soft(alpha: np.ndarray) -> np.ndarray:
    return (alpha > _SOFT_EPSILON) & (alpha < 1.0 - _SOFT_EPSILON)


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    shrinking = image.shape[0] > size or image.shape[1] > size
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interpolation)


def _crop_box(alpha: np.ndarray, side: int, rng, probability: float) -> tuple[int, int]:
    """Top-left corner of a ``side`` square inside ``alpha``, centred on a soft pixel with
    ``probability`` (when there are any)."""
    height, width = alpha.shape
    soft = np.flatnonzero(_soft(alpha)) if rng.uniform() < probability else np.empty(0)
    if soft.size:
        y, x = divmod(int(soft[rng.integers(soft.size)]), width)
    else:
        y, x = int(rng.integers(height)), int(rng.integers(width))
    top = min(max(y - side // 2, 0), height - side)
    left = min(max(x - side // 2, 0), width - side)
    return top, left


def background_files_in(backgrounds) -> list | None:
    """The background pictures of the folder ``backgrounds`` (None for no folder: backgrounds
    are then procedural); ``ValueError`` when the folder holds none."""
    if backgrounds is None:
        return None
    from ..dataset.backgrounds import list_background_files

    files = list_background_files(backgrounds)
    if not files:
        raise ValueError(f"{backgrounds}: no background pictures in this folder.")
    return files


class MattingDataset(torch.utils.data.Dataset):
    """Composited, augmented training items from an ld-portrait dataset.

    Parameters
    ----------
    root : str or Path
        Dataset folder (``fg/``, ``alpha/``, ``meta/``).
    ids : sequence of str, optional
        Samples to use (default: :func:`list_training_ids`); see :func:`split_ids`.
    options : AugmentOptions, optional
    backgrounds : str or Path, optional
        Folder of background pictures; procedural backgrounds when None.
    seed : int
        Base seed of all randomness.
    augment : bool
        False for validation: whole image, no flip or jitter, fixed background per index.

    Items
    -----
    dict with float32 tensors in 0..1 (``S = options.size``):

    ``image`` [3, S, S]   the composite ``fg * alpha + bg * (1 - alpha)``
    ``alpha`` [1, S, S]
    ``trimap`` [1, S, S]  0 background, 0.5 unknown, 1 foreground
    ``fg`` [3, S, S]      the (jittered) foreground colour
    ``bg`` [3, S, S]      the background
    ``index`` int         the item's index
    """

    def __init__(self, root, ids=None, *, options: AugmentOptions | None = None,
                 backgrounds=None, seed: int = 0, augment: bool = True):
        self.root = Path(root)
        self.ids = list(ids) if ids is not None else list_training_ids(self.root)
        if not self.ids:
            raise ValueError("MattingDataset needs at least one sample id.")
        self.options = options or AugmentOptions()
        self.seed = int(seed)
        self.augment = bool(augment)
        self.epoch = 0
        self.background_files = background_files_in(backgrounds)

    def __len__(self) -> int:
        return len(self.ids)

    def set_epoch(self, epoch: int) -> None:
        """Use the random draws of ``epoch`` (augmenting datasets only differ by epoch)."""
        self.epoch = int(epoch)

    def _rng(self, index: int) -> np.random.Generator:
        epoch = self.epoch if self.augment else 0
        return np.random.default_rng([self.seed, epoch, int(index), int(self.augment)])

    def _load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        sample = load_sample(self.root, self.ids[index])
        if sample.fg is None or sample.alpha is None:
            raise ValueError(f"sample {self.ids[index]} has no fg or alpha file.")
        if sample.fg.shape[:2] != sample.alpha.shape:
            raise ValueError(f"sample {self.ids[index]}: fg and alpha differ in size.")
        return sample.fg, sample.alpha

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self.ids):
            raise IndexError(f"index {index} out of range for {len(self.ids)} samples.")
        fg, alpha = self._load(index)
        return self.make_item(fg, alpha, self._rng(index), index)

    def make_item(self, fg: np.ndarray, alpha: np.ndarray, rng: np.random.Generator,
                  index: int) -> dict:
        """The item of ``fg`` and ``alpha`` with the draws of ``rng`` (:func:`make_item` with
        this dataset's options, augmentation and backgrounds)."""
        return make_item(fg, alpha, rng, index, options=self.options, augment=self.augment,
                         background_files=self.background_files)


def _background(rng, size: int, background_files) -> np.ndarray:
    seed = int(rng.integers(1 << 62))
    if background_files is not None:
        from ..dataset.backgrounds import BackgroundFolder

        folder = BackgroundFolder(background_files, seed=seed)
        return folder.pick(0, size, size)[0]
    return procedural_background("random", size, size, seed)


def make_item(fg: np.ndarray, alpha: np.ndarray, rng: np.random.Generator, index: int, *,
              options: AugmentOptions, augment: bool, background_files=None) -> dict:
    """One training item (the dict :class:`MattingDataset` returns) of a foreground ``fg``
    (float32 [H, W, 3] in 0..1) and its ``alpha`` ([H, W]), with every random draw from
    ``rng``: steps 1-6 of the module doc when ``augment``, else the whole image resized.
    ``background_files``: pictures to draw backgrounds from (procedural ones when None)."""
    if augment:
        side = min(options.crop, *alpha.shape)
        top, left = _crop_box(alpha, side, rng, options.unknown_center_probability)
        fg = fg[top:top + side, left:left + side]
        alpha = alpha[top:top + side, left:left + side]
        if rng.uniform() < options.flip_probability:
            fg, alpha = fg[:, ::-1], alpha[:, ::-1]
    size = options.size
    fg = np.clip(_resize(np.ascontiguousarray(fg), size), 0.0, 1.0).astype(np.float32)
    alpha = np.clip(_resize(np.ascontiguousarray(alpha), size), 0.0, 1.0).astype(np.float32)
    if augment:
        fg = jitter_colour(fg, rng, options)
        fraction = rng.uniform(*options.trimap_band)
    else:
        fraction = 0.5 * (options.trimap_band[0] + options.trimap_band[1])
    bg = _background(rng, size, background_files)
    weight = alpha[..., None]
    image = np.clip(fg * weight + bg * (np.float32(1.0) - weight), 0.0, 1.0)
    band = max(1, int(round(fraction * size)))
    trimap = trimap_from_alpha(alpha, band, unknown=TRIMAP_UNKNOWN)  # float32 0 / 0.5 / 1

    def chw(array):
        array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))

    return {"image": chw(image), "alpha": chw(alpha), "trimap": chw(trimap), "fg": chw(fg),
            "bg": chw(bg), "index": int(index)}

"""Input checks shared by every matte algorithm.

Every public function of the pack that takes a matte accepts what users actually have (float
or 8/16-bit integer arrays) and turns it into float32 in 0..1 through these, or raises a
``ValueError`` that says what was wrong and how to fix it. Nothing here silently "repairs" bad data such as NaN.
"""
from __future__ import annotations

import numpy as np

__all__ = ["HALF_CODE", "as_alpha", "as_rgb", "as_mask", "check_same_size", "check_pixel_count"]

#: Half an 8-bit code value: a float alpha within this of 0 or 1 counts as exactly 0 or 1
#: (it is written as code 0 or 255).
HALF_CODE = 0.5 / 255.0


def _to_unit_float(array: np.ndarray, name: str) -> np.ndarray:
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    if array.dtype == np.uint8:
        return array.astype(np.float32) / np.float32(255.0)
    if array.dtype == np.uint16:
        return array.astype(np.float32) / np.float32(65535.0)
    if np.issubdtype(array.dtype, np.integer):
        raise ValueError(
            f"{name} has integer dtype {array.dtype}; pass uint8 (0..255), uint16 (0..65535) "
            "or a float array in 0..1."
        )
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{name} has dtype {array.dtype}; pass a float array in 0..1 or uint8.")
    out = np.asarray(array, dtype=np.float32)
    if out.size == 0:
        return out
    # min/max propagate NaN and expose inf, so two reductions validate everything.
    low, high = float(out.min()), float(out.max())
    if not (np.isfinite(low) and np.isfinite(high)):
        bad = int(np.count_nonzero(~np.isfinite(out)))
        raise ValueError(
            f"{name} contains {bad} NaN or infinite value(s); clean the input (for example "
            "np.nan_to_num) before refining."
        )
    if low < -1e-3 or high > 1.0 + 1e-3:
        raise ValueError(
            f"{name} has values in [{low:.4g}, {high:.4g}], expected 0..1 for float "
            "input; divide 8-bit data by 255 or pass it as uint8."
        )
    if low < 0.0 or high > 1.0:
        out = np.clip(out, 0.0, 1.0)
    return out


def check_pixel_count(value, name: str, low: int, high: int | None = None) -> int:
    """Return ``value`` if it is a whole number of pixels in ``low..high`` (no upper bound when
    ``high`` is None), else raise ``ValueError`` naming ``name`` and the range. bool is refused."""
    limits = f">= {low}" if high is None else f"in {low}..{high}"
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be a whole number of pixels {limits}, got {value!r}.")
    return value


def as_alpha(alpha, name: str = "alpha") -> np.ndarray:
    """Return ``alpha`` as float32 ``[H, W]`` in 0..1 (1 = opaque), or raise ``ValueError``.

    Accepts float arrays in 0..1, uint8, uint16 and bool; a trailing channel axis of size 1 is
    dropped.
    """
    array = np.asarray(alpha)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array [H, W]; got shape {tuple(array.shape)}. "
            "For a batch, call once per image; for RGBA, pass the last channel."
        )
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"{name} is empty (shape {tuple(array.shape)}).")
    return np.ascontiguousarray(_to_unit_float(array, name))


def as_rgb(rgb, name: str = "rgb") -> np.ndarray:
    """Return ``rgb`` as float32 ``[H, W, 3]`` in 0..1, or raise ``ValueError``."""
    array = np.asarray(rgb)
    if array.ndim != 3 or array.shape[2] != 3:
        hint = " Drop the alpha channel first (rgba[..., :3])." if array.ndim == 3 and array.shape[2] == 4 else ""
        raise ValueError(f"{name} must have shape [H, W, 3]; got {tuple(array.shape)}.{hint}")
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"{name} is empty (shape {tuple(array.shape)}).")
    return np.ascontiguousarray(_to_unit_float(array, name))


def check_same_size(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape[:2] != b.shape[:2]:
        raise ValueError(
            f"{name_a} is {a.shape[1]}x{a.shape[0]} but {name_b} is {b.shape[1]}x{b.shape[0]} "
            "(width x height); they must be the same size."
        )


def as_mask(mask, shape: tuple[int, int], name: str = "changed") -> np.ndarray:
    """Return a bool ``[H, W]`` mask of ``shape``, or raise ``ValueError``.

    Accepts bool, or numbers where anything above one half counts as set (ComfyUI MASK
    tensors are float 0/1); a trailing channel axis of size 1 is dropped. NaN is refused.
    """
    array = np.asarray(mask)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D mask [H, W]; got shape {tuple(array.shape)}.")
    if array.shape != tuple(shape):
        raise ValueError(
            f"{name} is {array.shape[1]}x{array.shape[0]} but the image is {shape[1]}x{shape[0]} "
            "(width x height); they must be the same size.")
    if array.dtype == np.bool_:
        return array
    if not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{name} has dtype {array.dtype}; pass a bool mask or 0/1 numbers.")
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values; pass a bool mask or 0/1 numbers.")
    return array > 0.5

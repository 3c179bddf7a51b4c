"""Reading and writing the PNG files the pack works with (RGBA portraits, mattes).

OpenCV stores channels as BGR(A); everything returned here is RGB(A) float32 in 0..1 so that
callers never see the channel swap. Writes are atomic: a temporary file in the target folder
is renamed into place, so an interrupted run never leaves a half-written PNG behind.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import cv2
import numpy as np

from ..refine.validation import as_alpha, as_rgb

__all__ = ["ImageFileError", "read_rgba", "read_gray", "write_png_atomic", "to_uint8", "to_uint16",
           "list_pngs"]

IMAGE_SUFFIXES = (".png",)


class ImageFileError(ValueError):
    """A file could not be read as the image the caller needs (the message says why)."""


def read_rgba(path, *, require_alpha: bool = True):
    """Read an RGBA image file.

    Parameters
    ----------
    path : str or Path
        PNG (or any format OpenCV reads) with 4 channels, 8 or 16 bit.
    require_alpha : bool
        When False, files without an alpha channel are accepted and get alpha = 1.

    Returns
    -------
    rgb : float32 ndarray [H, W, 3] in 0..1
    alpha : float32 ndarray [H, W] in 0..1, 1 = opaque

    Raises
    ------
    ImageFileError
        Missing, unreadable or corrupt file, or no alpha channel while ``require_alpha``.
    """
    path = Path(path)
    image = _read_unchanged(path)
    channels = 1 if image.ndim == 2 else image.shape[2]
    if channels != 4 and require_alpha:
        raise ImageFileError(
            f"{path}: has {channels} channel(s), expected RGBA (4). Export the portrait with "
            "transparency, or use an alpha/mask input instead."
        )
    if channels == 1:
        rgb = np.repeat(image[..., None], 3, axis=2)
        alpha = np.ones(image.shape, np.float32)
    else:
        rgb = image[..., 2::-1]
        alpha = image[..., 3] if channels == 4 else np.ones(image.shape[:2], np.float32)
    return np.ascontiguousarray(rgb), np.ascontiguousarray(alpha)


#: Rec. 601 luma weights for R, G, B (what OpenCV's BGR2GRAY uses).
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def read_gray(path) -> np.ndarray:
    """Read an image file as one channel (a stored alpha matte, a mask).

    Parameters
    ----------
    path : str or Path
        PNG (or any format OpenCV reads), 8 or 16 bit, any number of channels.

    Returns
    -------
    float32 ndarray [H, W] in 0..1
        A gray file as stored; a colour file as its Rec. 601 luma of R, G, B (an alpha
        channel, if any, is ignored), so a matte saved as RGB reads back unchanged.

    Raises
    ------
    ImageFileError
        Missing, unreadable or corrupt file, or an unsupported sample type.
    """
    image = _read_unchanged(Path(path))
    if image.ndim == 2:
        return np.ascontiguousarray(image)
    rgb = image[..., 2::-1] if image.shape[2] >= 3 else np.repeat(image[..., :1], 3, axis=2)
    return np.ascontiguousarray(np.clip(rgb @ _LUMA, 0.0, 1.0), dtype=np.float32)


def _read_unchanged(path: Path) -> np.ndarray:
    """Decode ``path`` with its channels as stored (BGR order), as float32 in 0..1."""
    if not path.is_file():
        raise ImageFileError(f"{path}: no such file.")
    data = np.fromfile(str(path), dtype=np.uint8)  # fromfile + imdecode handles non-ASCII paths
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise ImageFileError(f"{path}: not a readable image (corrupt or unsupported format).")
    if image.dtype == np.uint8:
        scale = 255.0
    elif image.dtype == np.uint16:
        scale = 65535.0
    else:
        raise ImageFileError(f"{path}: unsupported sample type {image.dtype}; use 8- or 16-bit PNG.")
    return image.astype(np.float32) / np.float32(scale)


def to_uint8(array: np.ndarray) -> np.ndarray:
    """Float 0..1 to uint8 with rounding."""
    return (np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def to_uint16(array: np.ndarray) -> np.ndarray:
    """Float 0..1 to uint16 with rounding."""
    return (np.clip(array, 0.0, 1.0) * 65535.0 + 0.5).astype(np.uint16)


def encode_png(image: np.ndarray, *, bits: int = 8) -> bytes:
    """Encode float RGB [H,W,3], RGBA [H,W,4] or gray [H,W] (0..1) as PNG bytes."""
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits}.")
    image = np.asarray(image)
    # Validation also converts uint8/uint16 input to float 0..1, so encode what it returns.
    if image.ndim == 2:
        pixels = as_alpha(image, "image")
    elif image.ndim == 3 and image.shape[2] == 3:
        pixels = as_rgb(image, "image")[..., ::-1]
    elif image.ndim == 3 and image.shape[2] == 4:
        colour = as_rgb(image[..., :3], "image")
        pixels = np.dstack((colour[..., ::-1], as_alpha(image[..., 3], "image alpha")))
    else:
        raise ValueError(f"cannot write an image of shape {tuple(image.shape)} as PNG.")
    pixels = to_uint8(pixels) if bits == 8 else to_uint16(pixels)
    ok, buffer = cv2.imencode(".png", np.ascontiguousarray(pixels))
    if not ok:
        raise OSError("PNG encoding failed.")
    return buffer.tobytes()


def write_bytes_atomic(path, payload: bytes) -> Path:
    """Write ``payload`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def write_png_atomic(path, image: np.ndarray, *, bits: int = 8) -> Path:
    """Encode ``image`` (see :func:`encode_png`) and write it atomically to ``path``."""
    return write_bytes_atomic(path, encode_png(image, bits=bits))


def list_pngs(folder) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name (deterministic order)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageFileError(f"{folder}: not a folder.")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                  and not p.name.startswith("."))

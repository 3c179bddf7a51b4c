"""Reading and writing the PNG files the pack works with (RGBA portraits, mattes).

OpenCV stores channels as BGR(A); everything returned here is RGB(A) float32 in 0..1 so that
callers never see the channel swap. Writes are atomic: a temporary file in the target folder
is renamed into place, so an interrupted run never leaves a half-written PNG behind.

Every read is checked first (:func:`check_image_file`): the file size against a byte limit and
the dimensions its header declares against a pixel limit, before any byte of pixel data is
decoded. Defaults: :data:`DEFAULT_MAX_PIXELS` and :data:`DEFAULT_MAX_BYTES`, overridden by the
environment variables ``LDP_MAX_IMAGE_PIXELS`` / ``LDP_MAX_IMAGE_BYTES`` and by the
``max_pixels`` / ``max_bytes`` arguments (CLI ``--max-pixels`` / ``--max-file-mb``).

A broken file is reported by our own message, never by libpng's: a PNG cut short (no ``IEND``
chunk at its end) is refused before decoding, and where :func:`quiet_decoder_messages` is on
(the ``ld-portrait`` command turns it on) whatever libpng or OpenCV print while decoding is kept
off the console and its gist goes into the error message.
"""
from __future__ import annotations

import contextlib
import os
import struct
import sys
import tempfile
import threading
from pathlib import Path

import cv2
import numpy as np

from ..base.validation import as_alpha, as_rgb
from .imageheader import ImageHeaderError, declared_size
from .imagelimits import (DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, MAX_BYTES_ENV, MAX_PIXELS_ENV,
                          image_limits)

__all__ = ["ImageFileError", "ImageTooLargeError", "read_rgba", "read_gray", "write_png_atomic",
           "to_uint8", "to_uint16", "list_pngs", "scan_pngs", "check_image_file", "image_limits",
           "printable_name", "DEFAULT_MAX_PIXELS", "DEFAULT_MAX_BYTES", "MAX_PIXELS_ENV",
           "MAX_BYTES_ENV", "quiet_decoder_messages"]

IMAGE_SUFFIXES = (".png",)

class ImageFileError(ValueError):
    """A file could not be read as the image the caller needs (the message says why)."""


class ImageTooLargeError(ImageFileError):
    """A file is over the byte limit or declares more pixels than the pixel limit."""


def printable_name(name) -> str:
    """``name`` safe to print and to store as JSON text: bytes that are not UTF-8 (a file name
    from another system's encoding, kept by Python as lone surrogates) become ``\\xNN``."""
    text = str(name)
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _format_bytes(count: int) -> str:
    return f"{count} bytes" if count < 1 << 20 else f"{count / 2**20:.1f} MiB"


def _format_pixels(count: int) -> str:
    return f"{count} pixels" if count < 1_000_000 else f"{count / 1e6:.1f} megapixels"


def check_image_file(path, max_pixels: int | None = None,
                     max_bytes: int | None = None) -> tuple[int, int]:
    """Check an image file before decoding it: size on disk, then the header's dimensions.

    Reads at most a few hundred bytes (the header), never the pixel data.

    Parameters
    ----------
    path : str or Path
    max_pixels, max_bytes : int, optional
        Limits; None takes ``LDP_MAX_IMAGE_PIXELS`` / ``LDP_MAX_IMAGE_BYTES`` from the
        environment, else :data:`DEFAULT_MAX_PIXELS` / :data:`DEFAULT_MAX_BYTES`.

    Returns
    -------
    (width, height) : (int, int)
        As the header declares them.

    Raises
    ------
    ImageTooLargeError
        Over a limit (the message gives the figures and how to raise the limit).
    ImageFileError
        Missing, not a regular file, unreadable, or not a header of a supported format.
    """
    path = Path(path)
    pixel_limit, byte_limit = image_limits(max_pixels, max_bytes)
    if not path.is_file():
        raise ImageFileError(f"{path}: no such file.")
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > byte_limit:
                raise ImageTooLargeError(
                    f"{path}: file is {_format_bytes(size)}, over the limit of "
                    f"{_format_bytes(byte_limit)} (raise it with --max-file-mb or "
                    f"{MAX_BYTES_ENV}=BYTES if the file is genuine).")
            try:
                width, height = declared_size(handle)
            except (ImageHeaderError, struct.error) as error:
                raise ImageFileError(f"{path}: not a readable image: {error}") from None
    except OSError as error:
        raise ImageFileError(f"{path}: cannot be read: {error.strerror or error}.") from None
    if width < 1 or height < 1:
        raise ImageFileError(f"{path}: not a readable image (header declares {width}x{height}).")
    if width * height > pixel_limit:
        raise ImageTooLargeError(
            f"{path}: declares {width}x{height} = {_format_pixels(width * height)}, over the "
            f"limit of {_format_pixels(pixel_limit)} (a decompression bomb, or raise "
            f"the limit with --max-pixels or {MAX_PIXELS_ENV}=PIXELS if the image is genuine).")
    return width, height


def read_rgba(path, *, require_alpha: bool = True, max_pixels: int | None = None,
              max_bytes: int | None = None):
    """Read an RGBA image file.

    Parameters
    ----------
    path : str or Path
        PNG (or any format OpenCV reads) with 4 channels, 8 or 16 bit.
    require_alpha : bool
        When False, files without an alpha channel are accepted and get alpha = 1.
    max_pixels, max_bytes : int, optional
        Limits checked before decoding (see :func:`check_image_file`).

    Returns
    -------
    rgb : float32 ndarray [H, W, 3] in 0..1
    alpha : float32 ndarray [H, W] in 0..1, 1 = opaque

    Raises
    ------
    ImageFileError
        Missing, unreadable or corrupt file, or no alpha channel while ``require_alpha``.
    ImageTooLargeError
        Over the byte or pixel limit (checked before decoding).
    """
    path = Path(path)
    image = _read_unchanged(path, max_pixels, max_bytes)
    channels = 1 if image.ndim == 2 else image.shape[2]
    if channels != 4 and require_alpha:
        raise ImageFileError(
            f"{path}: has {channels} channel(s), expected RGBA (4): export the portrait as a "
            "PNG with its transparency (alpha channel)."
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


def read_gray(path, *, max_pixels: int | None = None, max_bytes: int | None = None) -> np.ndarray:
    """Read an image file as one channel (a stored alpha matte, a mask).

    Parameters
    ----------
    path : str or Path
        PNG (or any format OpenCV reads), 8 or 16 bit, any number of channels.
    max_pixels, max_bytes : int, optional
        Limits checked before decoding (see :func:`check_image_file`).

    Returns
    -------
    float32 ndarray [H, W] in 0..1
        A gray file as stored; a colour file as its Rec. 601 luma of R, G, B (an alpha
        channel, if any, is ignored), so a matte saved as RGB reads back unchanged.

    Raises
    ------
    ImageFileError
        Missing, unreadable or corrupt file, or an unsupported sample type.
    ImageTooLargeError
        Over the byte or pixel limit (checked before decoding).
    """
    image = _read_unchanged(Path(path), max_pixels, max_bytes)
    if image.ndim == 2:
        return np.ascontiguousarray(image)
    rgb = image[..., 2::-1] if image.shape[2] >= 3 else np.repeat(image[..., :1], 3, axis=2)
    return np.ascontiguousarray(np.clip(rgb @ _LUMA, 0.0, 1.0), dtype=np.float32)


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: The last chunk of every PNG: length 0, type IEND, its CRC.
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"

#: Whether decoder messages on the process's stderr (file descriptor 2) are captured.
_quiet = {"on": False}
_quiet_lock = threading.Lock()


def quiet_decoder_messages(enabled: bool = True) -> bool:
    """Keep what libpng and OpenCV print themselves while a file is decoded (``libpng error:
    PNG input buffer is incomplete``, ``libpng warning: iCCP: ...``) off the console; a failed
    read then carries libpng's words in its :class:`ImageFileError` instead.

    It redirects file descriptor 2 for the moment of each decode, which a process with other
    threads writing to stderr would not want: the ``ld-portrait`` command turns it on, a
    host such as ComfyUI keeps the default (off). Returns the previous setting.
    """
    previous, _quiet["on"] = _quiet["on"], bool(enabled)
    return previous


#: Lines libpng and OpenCV write themselves while decoding (kept for our message).
_DECODER_PREFIXES = ("libpng ", "[ WARN:", "[ERROR:", "[ INFO:")


@contextlib.contextmanager
def _decoder_messages(captured: list):
    """While on (:func:`quiet_decoder_messages`), send file descriptor 2 to a temporary file
    for the decode; the decoder's lines go to ``captured``, anything else written meanwhile
    (a Ctrl-C notice from a signal handler) is written to stderr afterwards."""
    if not _quiet["on"]:
        yield
        return
    with _quiet_lock, tempfile.TemporaryFile() as sink:
        with contextlib.suppress(AttributeError, ValueError, OSError):
            sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(sink.fileno(), 2)
            yield
        finally:
            with contextlib.suppress(AttributeError, ValueError, OSError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            others = []
            for line in sink.read().decode("utf-8", "replace").splitlines(keepends=True):
                (captured if line.startswith(_DECODER_PREFIXES) else others).append(line)
            if others:
                os.write(2, "".join(others).encode("utf-8", "replace"))


def _decoder_words(captured: list) -> str:
    """The last ``libpng error: ...`` line (or any last line) of captured decoder output."""
    lines = [line.strip() for line in captured if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or [""])[-1][:160]


def _check_png_end(path: Path, data: np.ndarray) -> None:
    """Refuse a PNG cut short (an interrupted copy or download) before libpng sees it."""
    if data.size < len(_PNG_SIGNATURE) or bytes(data[:8]) != _PNG_SIGNATURE:
        return
    if bytes(data[-len(_PNG_END):]) == _PNG_END:
        return
    if data.tobytes().rfind(_PNG_END) < 0:  # rarely: bytes appended after IEND are allowed
        raise ImageFileError(
            f"{path}: not a readable image: the PNG is truncated (it ends before its IEND "
            "chunk; an interrupted copy or write?). Copy or export the file again.")


def _read_unchanged(path: Path, max_pixels=None, max_bytes=None) -> np.ndarray:
    """Decode ``path`` with its channels as stored (BGR order), as float32 in 0..1."""
    check_image_file(path, max_pixels, max_bytes)
    data = np.fromfile(str(path), dtype=np.uint8)  # fromfile + imdecode handles non-ASCII paths
    _check_png_end(path, data)
    captured: list[str] = []
    try:
        with _decoder_messages(captured):
            image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    except cv2.error as error:  # OpenCV's own limits and decoder failures
        raise ImageFileError(f"{path}: not a readable image: {str(error).strip()[-160:]}") \
            from None
    if image is None:
        words = _decoder_words(captured) or "corrupt or unsupported format"
        raise ImageFileError(f"{path}: not a readable image ({words}).")
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
    if bits == 8 and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
        # Already 8-bit RGB (a contact sheet): the float round trip below would give the same
        # bytes through four times the sheet's memory.
        ok, buffer = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))
        if not ok:
            raise OSError("PNG encoding failed.")
        return buffer.tobytes()
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
    """Write ``payload`` to ``path`` through a temporary file and a rename (the folder is
    created when missing; the file gets the umask's permissions, like any new file)."""
    from .safeio import write_file_atomic

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_file_atomic(path, payload)


def write_png_atomic(path, image: np.ndarray, *, bits: int = 8) -> Path:
    """Encode ``image`` (see :func:`encode_png`) and write it atomically to ``path``."""
    return write_bytes_atomic(path, encode_png(image, bits=bits))


def list_pngs(folder) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name (deterministic order)."""
    return scan_pngs(folder)[0]


def scan_pngs(folder) -> tuple[list[Path], list[tuple[str, str]]]:
    """PNG files directly inside ``folder``, and the ``*.png`` entries that are not files.

    Hidden names (starting with ``.``, such as the writers' temporary files) are left out.

    Returns
    -------
    files : list of Path
        Regular files (or links to one) named ``*.png`` (any case), sorted by name.
    skipped : list of (str, str)
        ``(printable name, reason)`` for each ``*.png`` entry that is a folder, a dangling or
        looping symbolic link, or something else that is not a regular file.

    Raises
    ------
    ImageFileError
        ``folder`` is not a folder or cannot be listed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageFileError(f"{folder}: not a folder.")
    files, skipped = [], []
    try:
        entries = sorted(folder.iterdir())
    except OSError as error:
        raise ImageFileError(f"{folder}: cannot be listed: {error.strerror or error}.") from None
    for entry in entries:
        if entry.name.startswith(".") or entry.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        reason = _not_a_file_reason(entry)
        if reason is None:
            files.append(entry)
        else:
            skipped.append((printable_name(entry.name), reason))
    return files, skipped


def _not_a_file_reason(entry: Path) -> str | None:
    """None when ``entry`` is (a link to) a regular file, else why it is not."""
    try:
        entry.stat()
    except OSError as error:
        if entry.is_symlink():
            loop = getattr(error, "errno", None) == 40  # ELOOP
            return ("symbolic link loop" if loop else "dangling symbolic link (its target is "
                    "missing)")
        return f"cannot be read: {error.strerror or error}"
    if entry.is_dir():
        return "a folder, not a file"
    if not entry.is_file():
        return "not a regular file"
    return None

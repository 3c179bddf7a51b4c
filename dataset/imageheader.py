"""Image dimensions from the first bytes of a file, without decoding any pixel.

A PNG of 1.5 MB can declare 20000 x 20000 pixels (1.6 GB once decoded as float32 RGBA), so
every reader checks the declared size first (:func:`.imagefiles.check_image_file`). Formats
read here: PNG, JPEG, WebP, BMP, TIFF (the ones the pack accepts as portraits or backgrounds).
"""
from __future__ import annotations

import struct

__all__ = ["ImageHeaderError", "declared_size"]

#: Bytes read from the start of a file; enough for every header below except JPEG, whose
#: frame header may follow large metadata segments (they are skipped with seeks, not read).
_HEAD_BYTES = 64
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (baseline, progressive, lossless, ...); C4, C8, CC are not frames.
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_JPEG_MAX_SEGMENTS = 10_000  # a frame header comes long before this in any real file


class ImageHeaderError(ValueError):
    """The first bytes are not a header of a supported image format, or it is cut short."""


def declared_size(handle) -> tuple[int, int]:
    """``(width, height)`` that the image in the open binary file ``handle`` declares.

    Parameters
    ----------
    handle : binary file object, positioned at 0, seekable

    Returns
    -------
    (int, int)
        Width and height in pixels as the header states them (not checked against the data).

    Raises
    ------
    ImageHeaderError
        Unknown format or a truncated header.
    """
    head = handle.read(_HEAD_BYTES)
    if head.startswith(_PNG_SIGNATURE):
        return _png_size(head)
    if head.startswith(b"\xff\xd8"):
        return _jpeg_size(handle)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _webp_size(head)
    if head[:2] == b"BM":
        return _bmp_size(head)
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return _tiff_size(handle, head)
    raise ImageHeaderError("not a PNG, JPEG, WebP, BMP or TIFF file (unknown header).")


def _need(data: bytes, length: int, what: str) -> None:
    if len(data) < length:
        raise ImageHeaderError(f"the {what} header is cut short ({len(data)} bytes).")


def _png_size(head: bytes) -> tuple[int, int]:
    # Signature (8), then the IHDR chunk: length (4), b"IHDR", width (4), height (4).
    _need(head, 24, "PNG")
    if head[12:16] != b"IHDR":
        raise ImageHeaderError("PNG without an IHDR chunk first (corrupt file).")
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def _jpeg_size(handle) -> tuple[int, int]:
    handle.seek(2)
    for _ in range(_JPEG_MAX_SEGMENTS):
        marker = handle.read(2)
        _need(marker, 2, "JPEG")
        if marker[0] != 0xFF:
            raise ImageHeaderError("JPEG segment without a marker (corrupt file).")
        kind = marker[1]
        if kind == 0xFF:  # fill byte: the marker follows
            handle.seek(-1, 1)
            continue
        if kind in (0x01,) or 0xD0 <= kind <= 0xD7:  # markers without a length
            continue
        length_bytes = handle.read(2)
        _need(length_bytes, 2, "JPEG")
        length = struct.unpack(">H", length_bytes)[0]
        if length < 2:
            raise ImageHeaderError("JPEG segment with a bad length (corrupt file).")
        if kind in _JPEG_SOF:
            frame = handle.read(5)
            _need(frame, 5, "JPEG frame")
            height, width = struct.unpack(">HH", frame[1:5])
            return width, height
        if kind == 0xDA:  # start of scan before any frame header
            break
        handle.seek(length - 2, 1)
    raise ImageHeaderError("JPEG without a frame header (corrupt file).")


def _webp_size(head: bytes) -> tuple[int, int]:
    _need(head, 30, "WebP")
    chunk = head[12:16]
    if chunk == b"VP8X":  # canvas size, 24-bit little endian, minus one
        width = int.from_bytes(head[24:27], "little") + 1
        height = int.from_bytes(head[27:30], "little") + 1
        return width, height
    if chunk == b"VP8L":  # 14-bit sizes minus one after the 0x2f signature byte
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 ":  # key frame: start code, then 14-bit sizes
        width, height = struct.unpack("<HH", head[26:30])
        return width & 0x3FFF, height & 0x3FFF
    raise ImageHeaderError(f"WebP with an unknown first chunk {chunk!r}.")


def _bmp_size(head: bytes) -> tuple[int, int]:
    _need(head, 26, "BMP")
    header_size = struct.unpack("<I", head[14:18])[0]
    if header_size == 12:  # OS/2 core header: 16-bit sizes
        width, height = struct.unpack("<HH", head[18:22])
        return width, height
    width, height = struct.unpack("<ii", head[18:26])
    return abs(width), abs(height)  # negative height: rows stored top-down


def _tiff_size(handle, head: bytes) -> tuple[int, int]:
    order = "<" if head[:2] == b"II" else ">"
    _need(head, 8, "TIFF")
    offset = struct.unpack(order + "I", head[4:8])[0]
    handle.seek(offset)
    count_bytes = handle.read(2)
    _need(count_bytes, 2, "TIFF directory")
    count = struct.unpack(order + "H", count_bytes)[0]
    entries = handle.read(12 * count)
    _need(entries, 12 * count, "TIFF directory")
    sizes = {}
    for index in range(count):
        tag, kind = struct.unpack(order + "HH", entries[12 * index:12 * index + 4])
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT (3) or LONG (4)
            value = entries[12 * index + 8:12 * index + 12]
            sizes[tag] = (struct.unpack(order + "H", value[:2])[0] if kind == 3
                          else struct.unpack(order + "I", value)[0])
    if 256 not in sizes or 257 not in sizes:
        raise ImageHeaderError("TIFF without image width and length tags (corrupt file).")
    return sizes[256], sizes[257]

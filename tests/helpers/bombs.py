"""Decompression-bomb test files: a PNG that is only a header declaring a huge size.

Built byte by byte from the PNG specification (signature, IHDR chunk with its CRC, then an
IDAT chunk of a few zero bytes), not with the code under test: a 20000 x 20000 RGBA image in
57 bytes. Decoding it would need 1.6 GB as uint8 (6.4 GB as float32).
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb_bytes(width: int, height: int) -> bytes:
    """A PNG declaring ``width x height`` 8-bit RGBA pixels, followed by almost no data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8 bit, RGBA
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _chunk(b"IEND", b""))


def write_png_bomb(path, width: int = 20000, height: int = 20000) -> Path:
    path = Path(path)
    path.write_bytes(png_bomb_bytes(width, height))
    return path


def write_full_png_bomb(path, width: int = 20000, height: int = 20000) -> Path:
    """A complete, valid PNG of ``width x height`` transparent black RGBA pixels: every row's
    bytes are present, deflated (about 1.5 MB for 20000 x 20000), so a decoder that trusts the
    header really decodes 1.6 GB. Written in chunks: never holds the raw rows in memory."""
    path = Path(path)
    compressor = zlib.compressobj(9)
    rows = bytes(width * 4 + 1) * 64  # filter byte 0 + zero pixels, 64 rows at a time
    with open(path, "wb") as handle:
        header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
        handle.write(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header))
        done = 0
        while done < height:
            count = min(64, height - done)
            data = compressor.compress(rows[: count * (width * 4 + 1)])
            if data:
                handle.write(_chunk(b"IDAT", data))
            done += count
        handle.write(_chunk(b"IDAT", compressor.flush()) + _chunk(b"IEND", b""))
    return path

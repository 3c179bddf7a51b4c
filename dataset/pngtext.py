"""PNG text chunks (``tEXt`` / ``iTXt``) added to, and read from, already encoded PNG bytes.

The dataset writes its PNGs with OpenCV, which cannot write text chunks. ComfyUI's core
``SaveImage`` stores the graph that made an image in two of them (``prompt``: the API graph,
``workflow``: the editor graph, each ``json.dumps`` of the value; written by PIL's
``PngInfo.add_text``), and dropping such a PNG onto the canvas reopens the graph. Instead of
decoding and re-encoding with another library, :func:`insert_text_chunks` splices the chunks
into the encoded bytes right after ``IHDR`` (where PIL puts them too), each with its CRC, so
the pixels stay byte for byte what the encoder wrote.

Like PIL's ``add_text`` a value that is Latin-1 text goes into a ``tEXt`` chunk, any other into
an uncompressed UTF-8 ``iTXt`` chunk (``json.dumps`` output is ASCII, so ComfyUI's keys always
become ``tEXt``). :func:`read_text_chunks` reads ``tEXt``, ``zTXt`` and ``iTXt`` back and
checks every chunk's CRC.
"""
from __future__ import annotations

import json
import struct
import zlib
from typing import Iterable, Mapping

__all__ = ["PNG_SIGNATURE", "MAX_KEYWORD_LENGTH", "PngTextError", "is_valid_keyword",
           "text_chunk", "insert_text_chunks", "read_text_chunks", "iter_chunks",
           "comfy_text_entries"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: The PNG specification limits keywords to 1..79 Latin-1 characters.
MAX_KEYWORD_LENGTH = 79
_TEXT_TYPES = (b"tEXt", b"zTXt", b"iTXt")
#: Longest decompressed zTXt / compressed iTXt value read back (a graph is far smaller).
_MAX_INFLATED = 64 * 2 ** 20


class PngTextError(ValueError):
    """The bytes are not a well-formed PNG, or a keyword cannot be stored; says which."""


def is_valid_keyword(key) -> bool:
    """True for a PNG text keyword: 1..79 printable Latin-1 characters, no leading, trailing
    or double spaces (PNG specification, 11.3.4.2)."""
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEYWORD_LENGTH:
        return False
    if key != key.strip(" ") or "  " in key:
        return False
    return all(32 <= ord(c) <= 126 or 161 <= ord(c) <= 255 for c in key)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def text_chunk(key: str, value: str) -> bytes:
    """One complete chunk (length, type, data, CRC) holding ``key`` = ``value``.

    ``tEXt`` when ``value`` is Latin-1 text, else uncompressed ``iTXt`` (UTF-8), as PIL's
    ``PngInfo.add_text`` chooses.

    Raises
    ------
    PngTextError
        ``key`` is not a valid keyword (see :func:`is_valid_keyword`), or ``value`` is not a str.
    """
    if not is_valid_keyword(key):
        raise PngTextError(
            f"PNG text keyword {key!r} is not 1..{MAX_KEYWORD_LENGTH} printable Latin-1 "
            "characters without leading, trailing or double spaces; rename it.")
    if not isinstance(value, str):
        raise PngTextError(f"PNG text value for {key!r} must be a str, got {type(value).__name__}.")
    keyword = key.encode("latin-1")
    try:
        return _chunk(b"tEXt", keyword + b"\0" + value.encode("latin-1"))
    except UnicodeEncodeError:
        # keyword, compression flag 0, method 0, empty language tag, empty translated keyword
        return _chunk(b"iTXt", keyword + b"\0\0\0\0\0" + value.encode("utf-8"))


def iter_chunks(png: bytes) -> Iterable[tuple[bytes, bytes, int]]:
    """``(type, data, offset of the chunk)`` for every chunk of ``png`` up to ``IEND``.

    Raises
    ------
    PngTextError
        No PNG signature, a chunk running past the end, a CRC mismatch, or no ``IEND``.
    """
    if not png.startswith(PNG_SIGNATURE):
        raise PngTextError("not a PNG (the first 8 bytes are not the PNG signature).")
    offset = len(PNG_SIGNATURE)
    while True:
        if offset + 12 > len(png):
            raise PngTextError(f"PNG ends at byte {len(png)} inside a chunk header, before IEND.")
        length = struct.unpack(">I", png[offset:offset + 4])[0]
        kind = png[offset + 4:offset + 8]
        end = offset + 12 + length
        if end > len(png):
            raise PngTextError(f"PNG chunk {kind!r} at byte {offset} runs past the end of "
                               "the file.")
        data = png[offset + 8:offset + 8 + length]
        crc = struct.unpack(">I", png[end - 4:end])[0]
        if zlib.crc32(kind + data) & 0xFFFFFFFF != crc:
            raise PngTextError(f"PNG chunk {kind!r} at byte {offset} has a wrong CRC "
                               "(damaged file).")
        yield kind, data, offset
        if kind == b"IEND":
            return
        offset = end


def insert_text_chunks(png: bytes, entries: Iterable[tuple[str, str]]) -> bytes:
    """``png`` with one text chunk per ``(key, value)`` inserted right after ``IHDR``, in order.

    The image data and every other chunk are kept byte for byte. No entries: ``png`` unchanged.

    Raises
    ------
    PngTextError
        ``png`` is not a PNG starting with ``IHDR``, or an entry cannot be stored (see
        :func:`text_chunk`). Nothing is returned half done.
    """
    chunks = b"".join(text_chunk(key, value) for key, value in entries)
    if not chunks:
        return png
    first = next(iter(iter_chunks(png)), None)
    if first is None or first[0] != b"IHDR":
        raise PngTextError("PNG does not start with an IHDR chunk.")
    after_header = len(PNG_SIGNATURE) + 12 + len(first[1])
    return png[:after_header] + chunks + png[after_header:]


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj()
    inflated = inflater.decompress(data, _MAX_INFLATED)
    if inflater.unconsumed_tail:
        raise PngTextError(f"a compressed PNG text chunk inflates past {_MAX_INFLATED} bytes.")
    return inflated


def read_text_chunks(png: bytes) -> dict[str, str]:
    """Every text chunk of ``png`` as ``{key: value}`` (a repeated key: the last one wins).

    Reads ``tEXt`` (Latin-1), ``zTXt`` and ``iTXt`` (UTF-8, compressed or not), checking every
    chunk's CRC.

    Raises
    ------
    PngTextError
        Not a well-formed PNG (see :func:`iter_chunks`) or a malformed text chunk.
    """
    texts = {}
    for kind, data, offset in iter_chunks(png):
        if kind not in _TEXT_TYPES:
            continue
        key, separator, rest = data.partition(b"\0")
        if not separator:
            raise PngTextError(f"PNG {kind.decode()} chunk at byte {offset} has no keyword end.")
        try:
            if kind == b"tEXt":
                value = rest.decode("latin-1")
            elif kind == b"zTXt":
                value = _inflate(rest[1:]).decode("latin-1")
            else:
                compressed = rest[0]
                # after the flags: language tag \0 translated keyword \0 text
                _, _, tail = rest[2:].partition(b"\0")
                _, _, text = tail.partition(b"\0")
                value = (_inflate(text) if compressed else text).decode("utf-8")
        except (IndexError, UnicodeDecodeError, zlib.error) as error:
            raise PngTextError(f"PNG {kind.decode()} chunk at byte {offset} is malformed "
                               f"({error}).") from None
        texts[key.decode("latin-1")] = value
    return texts


def comfy_text_entries(prompt=None, extra_pnginfo: Mapping | None = None
                       ) -> tuple[list[tuple[str, str]], list[str]]:
    """The text entries core ``SaveImage`` writes, and the keys it had to leave out.

    ``prompt`` (the API graph) becomes ``("prompt", json.dumps(prompt))`` and each key of
    ``extra_pnginfo`` (``workflow``: the editor graph, and whatever else the client sent)
    ``(key, json.dumps(value))``, in that order. A key that is not a valid PNG keyword (see
    :func:`is_valid_keyword`) is left out and returned in the second list, so that a strange
    client key costs a note rather than the sample.
    """
    entries: list[tuple[str, str]] = []
    left_out: list[str] = []
    if prompt is not None:
        entries.append(("prompt", json.dumps(prompt)))
    if isinstance(extra_pnginfo, Mapping):
        for key, value in extra_pnginfo.items():
            if is_valid_keyword(key):
                entries.append((key, json.dumps(value)))
            else:
                left_out.append(str(key))
    return entries, left_out

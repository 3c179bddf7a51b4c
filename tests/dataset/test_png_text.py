"""PNG text chunks spliced into encoded bytes (dataset/pngtext.py): ComfyUI's and PIL's readers
must find them, pixels must stay untouched, damage must be refused."""
import json
import struct
import zlib

import cv2
import numpy as np
import pytest

from comfyui_ld_portrait.dataset.imagefiles import encode_png
from comfyui_ld_portrait.dataset.pngtext import (PngTextError, comfy_text_entries,
                                                 insert_text_chunks, is_valid_keyword,
                                                 iter_chunks, read_text_chunks, text_chunk)

GRAPH = {"3": {"class_type": "KSampler", "inputs": {"seed": 7, "model": ["4", 0]}},
         "9": {"class_type": "LDPSaveDataset", "inputs": {"dataset_name": "ds"}}}
WORKFLOW = {"nodes": [{"id": 9, "type": "LDPSaveDataset"}], "links": [], "version": 0.4}


def _png(bits=8, channels=3):
    rng = np.random.default_rng(1)
    shape = (12, 9, channels) if channels > 1 else (12, 9)
    return encode_png(rng.uniform(0, 1, shape).astype(np.float32), bits=bits)


def _hand_read_text(png: bytes) -> dict:
    """A reader written from the PNG specification alone (independent of the module): tEXt
    and uncompressed iTXt, in file order."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    found, offset = {}, 8
    while offset < len(png):
        length, kind = struct.unpack(">I4s", png[offset:offset + 8])
        data = png[offset + 8:offset + 8 + length]
        assert struct.unpack(">I", png[offset + 8 + length:offset + 12 + length])[0] == \
            zlib.crc32(kind + data), f"bad CRC on {kind}"
        if kind == b"tEXt":
            key, value = data.split(b"\0", 1)
            found[key.decode("latin-1")] = value.decode("latin-1")
        elif kind == b"iTXt":
            key, rest = data.split(b"\0", 1)
            assert rest[:2] == b"\0\0"
            found[key.decode("latin-1")] = rest[2:].split(b"\0", 2)[2].decode("utf-8")
        offset += 12 + length
    return found


def _chunk_types(png: bytes) -> list[bytes]:
    return [kind for kind, _, _ in iter_chunks(png)]


def test_comfy_entries_are_what_core_save_image_writes():
    entries, left_out = comfy_text_entries(GRAPH, {"workflow": WORKFLOW, "note": "x"})
    assert entries == [("prompt", json.dumps(GRAPH)), ("workflow", json.dumps(WORKFLOW)),
                       ("note", json.dumps("x"))]
    assert left_out == []
    assert comfy_text_entries(None, None) == ([], [])
    entries, left_out = comfy_text_entries(None, {"bad\0key": 1, "": 2, "ok": 3})
    assert entries == [("ok", "3")] and left_out == ["bad\0key", ""]


def test_inserted_chunks_follow_ihdr_and_read_back_with_the_pixels_unchanged():
    plain = _png()
    entries, _ = comfy_text_entries(GRAPH, {"workflow": WORKFLOW})
    tagged = insert_text_chunks(plain, entries)
    types = _chunk_types(tagged)
    assert types[0] == b"IHDR" and types[1:3] == [b"tEXt", b"tEXt"] and types[-1] == b"IEND"
    assert types.index(b"tEXt") < types.index(b"IDAT")
    assert json.loads(read_text_chunks(tagged)["prompt"]) == GRAPH
    assert json.loads(_hand_read_text(tagged)["workflow"]) == WORKFLOW
    # the image data is the encoder's, byte for byte
    assert [c for c in iter_chunks(tagged) if c[0] == b"IDAT"][0][1] == \
        [c for c in iter_chunks(plain) if c[0] == b"IDAT"][0][1]
    decoded = cv2.imdecode(np.frombuffer(tagged, np.uint8), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(decoded, cv2.imdecode(np.frombuffer(plain, np.uint8),
                                                cv2.IMREAD_UNCHANGED))
    assert insert_text_chunks(plain, []) == plain


@pytest.mark.parametrize("bits,channels", [(8, 3), (8, 1), (16, 1), (8, 4)])
def test_pil_reads_the_chunks_like_those_of_core_save_image(bits, channels):
    pil = pytest.importorskip("PIL.Image")
    import io

    tagged = insert_text_chunks(_png(bits, channels), [("prompt", json.dumps(GRAPH)),
                                                       ("workflow", json.dumps(WORKFLOW))])
    with pil.open(io.BytesIO(tagged)) as image:
        image.load()
        assert json.loads(image.text["prompt"]) == GRAPH
        assert json.loads(image.text["workflow"]) == WORKFLOW


def test_non_latin1_text_goes_into_itxt_and_reads_back():
    value = "портрет 肖像 ✓"
    chunk = text_chunk("Comment", value)
    assert chunk[4:8] == b"iTXt"
    tagged = insert_text_chunks(_png(), [("Comment", value), ("Latin", "café")])
    assert read_text_chunks(tagged) == {"Comment": value, "Latin": "café"}
    assert _hand_read_text(tagged) == {"Comment": value, "Latin": "café"}
    assert text_chunk("Latin", "café")[4:8] == b"tEXt"


def test_compressed_chunks_written_by_other_tools_are_read():
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    plain = _png()
    extra = (chunk(b"zTXt", b"z\0\0" + zlib.compress(b"squeezed"))
             + chunk(b"iTXt", b"i\0\x01\0en\0\0" + zlib.compress("ü".encode())))
    png = plain[:33] + extra + plain[33:]
    assert read_text_chunks(png) == {"z": "squeezed", "i": "ü"}


@pytest.mark.parametrize("key", ["", " lead", "trail ", "dou  ble", "x" * 80, "nul\0", "tab\t",
                                 "ключ"])
def test_invalid_keywords_are_refused_with_a_clear_message(key):
    assert not is_valid_keyword(key)
    with pytest.raises(PngTextError, match="keyword"):
        text_chunk(key, "v")


def test_valid_keywords():
    for key in ("prompt", "workflow", "Creation Time", "x" * 79, "naïve"):
        assert is_valid_keyword(key)


def test_damaged_or_foreign_bytes_are_refused():
    plain = _png()
    with pytest.raises(PngTextError, match="signature"):
        insert_text_chunks(b"GIF89a" + plain[6:], [("k", "v")])
    broken = bytearray(plain)
    broken[20] ^= 0xFF  # inside IHDR: its CRC no longer matches
    with pytest.raises(PngTextError, match="CRC"):
        read_text_chunks(bytes(broken))
    with pytest.raises(PngTextError, match="before IEND|past the end"):
        read_text_chunks(plain[:-12])
    with pytest.raises(PngTextError, match="str"):
        text_chunk("k", b"bytes")

import numpy as np
import pytest

from comfyui_ld_portrait.dataset.imagefiles import (ImageFileError, encode_png, list_pngs, read_gray,
                                            read_rgba, write_png_atomic)


def test_roundtrip_rgba_uint8_keeps_values_and_channel_order(tmp_path):
    rgba = np.zeros((3, 2, 4), np.uint8)
    rgba[0, 0] = (10, 20, 30, 40)
    rgba[2, 1] = (200, 100, 50, 255)
    path = write_png_atomic(tmp_path / "x.png", rgba)
    rgb, alpha = read_rgba(path)
    assert np.allclose(rgb[0, 0] * 255, (10, 20, 30))
    assert np.allclose(rgb[2, 1] * 255, (200, 100, 50))
    assert alpha[0, 0] * 255 == pytest.approx(40)


def test_roundtrip_float_gray_8_and_16_bit(tmp_path):
    gray = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    for bits, tolerance in ((8, 0.5 / 255), (16, 0.5 / 65535)):
        path = write_png_atomic(tmp_path / f"g{bits}.png", gray, bits=bits)
        rgb, alpha = read_rgba(path, require_alpha=False)
        assert np.abs(rgb[..., 0] - gray).max() <= tolerance + 1e-7
        assert alpha.min() == 1.0


def test_uint8_gray_is_not_saturated():
    import cv2

    data = np.array([[0, 10, 128, 255]], np.uint8)
    decoded = cv2.imdecode(np.frombuffer(encode_png(data), np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded.tolist() == data.tolist()


def test_read_errors_are_clear(tmp_path):
    with pytest.raises(ImageFileError, match="no such file"):
        read_rgba(tmp_path / "missing.png")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    with pytest.raises(ImageFileError, match="not a readable image"):
        read_rgba(tmp_path / "corrupt.png")
    write_png_atomic(tmp_path / "rgb.png", np.zeros((2, 2, 3), np.float32))
    with pytest.raises(ImageFileError, match="expected RGBA"):
        read_rgba(tmp_path / "rgb.png")


def test_bad_shapes_and_values_refused(tmp_path):
    with pytest.raises(ValueError, match="shape"):
        encode_png(np.zeros((2, 2, 2), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        encode_png(np.full((2, 2), np.nan, np.float32))
    with pytest.raises(ValueError, match="bits"):
        encode_png(np.zeros((2, 2), np.float32), bits=12)


def test_list_pngs_sorted_and_hidden_files_skipped(tmp_path):
    for name in ("b.png", "a.PNG", ".tmp-x.png", "c.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in list_pngs(tmp_path)] == ["a.PNG", "b.png"]
    with pytest.raises(ImageFileError, match="not a folder"):
        list_pngs(tmp_path / "nope")


def test_atomic_write_leaves_no_temporary_on_failure(tmp_path, monkeypatch):
    import os

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="No space"):
        write_png_atomic(tmp_path / "x.png", np.zeros((2, 2), np.float32))
    assert list(tmp_path.iterdir()) == []


def test_read_gray_keeps_gray_files_and_turns_colour_into_luma(tmp_path):
    import cv2

    gray = np.array([[0, 1000, 40000, 65535]], np.uint16)
    cv2.imwrite(str(tmp_path / "g16.png"), gray)
    assert np.allclose(read_gray(tmp_path / "g16.png"), gray / 65535.0, atol=1e-7)
    bgr = np.zeros((1, 3, 3), np.uint8)
    bgr[0, 0] = (255, 0, 0)      # pure blue
    bgr[0, 1] = (0, 0, 255)      # pure red
    bgr[0, 2] = (90, 90, 90)     # gray stored as colour reads back unchanged
    cv2.imwrite(str(tmp_path / "c.png"), bgr)
    values = read_gray(tmp_path / "c.png")
    assert values.shape == (1, 3) and values.dtype == np.float32
    assert values[0, 0] == pytest.approx(0.114, abs=1e-6)
    assert values[0, 1] == pytest.approx(0.299, abs=1e-6)
    assert values[0, 2] == pytest.approx(90 / 255, abs=1e-6)
    bgra = np.dstack([bgr, np.full((1, 3), 7, np.uint8)])  # alpha is ignored
    cv2.imwrite(str(tmp_path / "c4.png"), bgra)
    assert np.allclose(read_gray(tmp_path / "c4.png"), values)
    (tmp_path / "bad.png").write_bytes(b"nope")
    with pytest.raises(ImageFileError, match="not a readable image"):
        read_gray(tmp_path / "bad.png")

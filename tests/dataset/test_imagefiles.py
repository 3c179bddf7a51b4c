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


# ---- size limits checked before decoding ---------------------------------------------------

def test_bomb_headers_are_refused_before_decoding(tmp_path, monkeypatch):
    import tracemalloc

    from helpers.bombs import write_png_bomb

    from comfyui_ld_portrait.dataset.imagefiles import (ImageTooLargeError, check_image_file,
                                                        read_gray)

    for side in (20000, 60000):
        bomb = write_png_bomb(tmp_path / f"bomb{side}.png", side, side)
        assert bomb.stat().st_size < 100  # a few dozen bytes
        assert check_image_file(bomb, max_pixels=side * side) == (side, side)
        tracemalloc.start()
        for reader in (read_rgba, read_gray):
            with pytest.raises(ImageTooLargeError, match=f"{side}x{side}") as caught:
                reader(bomb)
            assert bomb.name in str(caught.value) and "--max-pixels" in str(caught.value)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 10 << 20  # nothing near the declared size was allocated
    # The environment variable sets the default; an argument overrides both.
    small = write_png_atomic(tmp_path / "small.png", np.zeros((10, 20, 4), np.float32))
    monkeypatch.setenv("LDP_MAX_IMAGE_PIXELS", "199")
    with pytest.raises(ImageTooLargeError, match="20x10 = 200 pixels"):  # width x height
        check_image_file(small)
    assert check_image_file(small, max_pixels=200) == (20, 10)
    monkeypatch.setenv("LDP_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(ValueError, match="LDP_MAX_IMAGE_PIXELS"):
        check_image_file(small)


def test_files_over_the_byte_limit_are_refused_without_being_read(tmp_path, monkeypatch):
    from comfyui_ld_portrait.dataset.imagefiles import ImageTooLargeError, check_image_file

    path = write_png_atomic(tmp_path / "noise.png",
                            np.random.default_rng(0).random((64, 64, 4)).astype(np.float32))
    size = path.stat().st_size
    assert check_image_file(path, max_bytes=size) == (64, 64)
    with pytest.raises(ImageTooLargeError, match="--max-file-mb"):
        read_rgba(path, max_bytes=size - 1)
    monkeypatch.setenv("LDP_MAX_IMAGE_BYTES", str(size - 1))
    with pytest.raises(ImageTooLargeError, match=f"{size} bytes"):
        read_rgba(path)
    # A sparse 3 GiB file: refused from its size alone (reading it whole would take minutes).
    sparse = tmp_path / "huge.png"
    with open(sparse, "wb") as handle:
        handle.truncate(3 << 30)
    monkeypatch.delenv("LDP_MAX_IMAGE_BYTES")
    with pytest.raises(ImageTooLargeError, match="3072.0 MiB"):
        read_rgba(sparse)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".bmp", ".tif"])
def test_header_sizes_match_what_opencv_decodes(tmp_path, suffix):
    import cv2

    from comfyui_ld_portrait.dataset.imagefiles import check_image_file

    image = np.random.default_rng(1).integers(0, 255, (37, 53, 3), dtype=np.uint8)
    path = tmp_path / f"picture{suffix}"
    assert cv2.imwrite(str(path), image)
    decoded = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert check_image_file(path) == (decoded.shape[1], decoded.shape[0]) == (53, 37)


def test_unknown_or_truncated_headers_are_clear_errors(tmp_path):
    from comfyui_ld_portrait.dataset.imagefiles import check_image_file

    (tmp_path / "text.png").write_bytes(b"hello, this is not an image at all")
    (tmp_path / "cut.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (tmp_path / "empty.png").write_bytes(b"")
    for name in ("text.png", "cut.png", "empty.png"):
        with pytest.raises(ImageFileError, match="not a readable image"):
            check_image_file(tmp_path / name)


def test_background_folder_skips_a_bomb_and_uses_the_next_picture(tmp_path):
    from helpers.bombs import write_png_bomb

    from comfyui_ld_portrait.dataset.backgrounds import BackgroundFolder, list_background_files

    write_png_bomb(tmp_path / "a_bomb.png")
    write_png_atomic(tmp_path / "b_sky.png", np.full((8, 8, 3), 0.25, np.float32))
    folder = BackgroundFolder(list_background_files(tmp_path), seed=0)
    names = {folder.pick(position, 4, 4)[1] for position in range(4)}
    assert names == {"b_sky.png"}
    assert "megapixels" in folder.skipped["a_bomb.png"]
    strict = BackgroundFolder(list_background_files(tmp_path), seed=0, max_pixels=63)
    with pytest.raises(ValueError, match="8x8 = 64 pixels"):
        strict.pick(0, 4, 4)


# ---- odd names and entries -------------------------------------------------------------------

def test_scan_reports_links_loops_and_folders_named_png(tmp_path):
    import os

    from comfyui_ld_portrait.dataset.imagefiles import scan_pngs

    write_png_atomic(tmp_path / "real.png", np.zeros((2, 2, 4), np.float32))
    os.symlink("real.png", tmp_path / "link.png")
    os.symlink("loop.png", tmp_path / "loop.png")
    os.symlink("gone.png", tmp_path / "dangling.png")
    (tmp_path / "x.png").mkdir()
    files, skipped = scan_pngs(tmp_path)
    assert [p.name for p in files] == ["link.png", "real.png"]
    reasons = dict(skipped)
    assert set(reasons) == {"loop.png", "dangling.png", "x.png"}
    assert "loop" in reasons["loop.png"] and "dangling" in reasons["dangling.png"]
    assert "folder" in reasons["x.png"]


def test_printable_name_escapes_bytes_that_are_not_utf8():
    import json
    import os

    from comfyui_ld_portrait.dataset.imagefiles import printable_name

    name = os.fsdecode(b"caf\xe9.png")  # Latin-1 bytes: a lone surrogate in Python
    shown = printable_name(name)
    assert shown == "caf\\xe9.png"
    shown.encode("utf-8")  # printable and storable
    assert json.loads(json.dumps(shown, ensure_ascii=False)) == shown
    assert printable_name("café.png") == "café.png"


def test_missing_alpha_message_names_no_input_the_cli_lacks(tmp_path):
    path = write_png_atomic(tmp_path / "rgb.png", np.zeros((2, 2, 3), np.float32))
    with pytest.raises(ImageFileError) as caught:
        read_rgba(path)
    assert "alpha/mask input" not in str(caught.value)
    assert "transparency" in str(caught.value)


def test_written_pngs_honour_the_umask(tmp_path):
    # For the demo's inputs and sheets: mkstemp used to make every file 0600.
    import os
    import stat

    previous = os.umask(0o022)
    try:
        path = write_png_atomic(tmp_path / "sub" / "x.png", np.zeros((2, 2), np.float32))
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["x.png"]

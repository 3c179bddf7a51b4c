"""base.composite (compositing, cover crop, procedural backgrounds) and LDPCompositeBackground."""
import cv2
import numpy as np
import pytest
import torch

from comfyui_ld_portrait.nodes.dataset import LDPCompositeBackground
from comfyui_ld_portrait.dataset.backgrounds import BackgroundFolder, list_background_files, read_background
from comfyui_ld_portrait.base.composite import (KINDS, background_seed,
                                                composite_over, cover_crop,
                                                pick_kind,
                                                procedural_background)


def _rng_image(h, w, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (h, w, 3)).astype(np.float32)


# --- compositing math ---------------------------------------------------------------------

def test_alpha_zero_gives_background_one_gives_fg_half_gives_mean():
    fg, bg = _rng_image(8, 6, 1), _rng_image(8, 6, 2)
    alpha = np.zeros((8, 6), np.float32)
    alpha[:, 2:4] = 1.0
    alpha[:, 4:] = 0.5
    out = composite_over(fg, alpha, bg)
    assert out.dtype == np.float32 and out.shape == (8, 6, 3)
    np.testing.assert_array_equal(out[:, :2], bg[:, :2])
    np.testing.assert_array_equal(out[:, 2:4], fg[:, 2:4])
    np.testing.assert_allclose(out[:, 4:], (fg[:, 4:] + bg[:, 4:]) / 2, atol=1e-6)


def test_uint8_inputs_and_a_background_of_another_size():
    fg = np.full((10, 20, 3), 255, np.uint8)
    alpha = np.zeros((10, 20), np.uint8)
    bg = np.zeros((50, 50, 3), np.uint8)
    bg[..., 2] = 255  # blue everywhere: any crop is blue
    out = composite_over(fg, alpha, bg)
    assert out.shape == (10, 20, 3)
    np.testing.assert_allclose(out, np.broadcast_to([0, 0, 1], out.shape))


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="width x height"):
        composite_over(_rng_image(8, 6), np.zeros((8, 7), np.float32), _rng_image(8, 6))
    with pytest.raises(ValueError, match="background must have shape"):
        composite_over(_rng_image(8, 6), np.zeros((8, 6), np.float32), np.zeros((8, 6)))
    with pytest.raises(ValueError, match="NaN"):
        composite_over(_rng_image(4, 4), np.full((4, 4), np.nan, np.float32), _rng_image(4, 4))


# --- cover crop ---------------------------------------------------------------------------

@pytest.mark.parametrize("source, target", [
    ((100, 200), (50, 50)),    # wide source into a square: crop the sides
    ((200, 100), (50, 50)),    # tall source: crop top and bottom
    ((30, 40), (90, 160)),     # upscale, 16:9 target
    ((64, 64), (64, 64)),      # same size: unchanged
    ((1, 1), (7, 3)),
    ((3000, 10), (20, 20)),
])
def test_cover_crop_returns_the_exact_size(source, target):
    out = cover_crop(_rng_image(*source), *target)
    assert out.shape == (*target, 3) and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0


def test_cover_crop_keeps_the_center_and_the_aspect():
    # A wide image whose left and right thirds are red and blue, centre green: a square crop
    # of the centre is all green, so nothing was squashed.
    image = np.zeros((60, 180, 3), np.float32)
    image[:, :60, 0] = 1.0
    image[:, 60:120, 1] = 1.0
    image[:, 120:, 2] = 1.0
    out = cover_crop(image, 30, 30)
    np.testing.assert_allclose(out, np.broadcast_to([0, 1, 0], out.shape), atol=1e-6)
    assert np.array_equal(cover_crop(image[:, 60:120], 60, 60), image[:, 60:120])


# --- procedural backgrounds ---------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_procedural_kinds_are_deterministic_in_range_and_vary_with_seed(kind):
    a = procedural_background(kind, 96, 128, seed=5)
    b = procedural_background(kind, 96, 128, seed=5)
    c = procedural_background(kind, 96, 128, seed=6)
    assert a.shape == (96, 128, 3) and a.dtype == np.float32
    assert np.isfinite(a).all() and a.min() >= 0.0 and a.max() <= 1.0
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).mean() > 0.01


@pytest.mark.parametrize("kind", ["gradient", "checker", "noise", "bokeh", "studio"])
def test_structured_kinds_are_not_flat(kind):
    image = procedural_background(kind, 128, 128, seed=1)
    assert image.std(axis=(0, 1)).max() > 0.01


def test_solid_is_one_colour_and_large_sizes_work():
    solid = procedural_background("solid", 10, 10, 3)
    assert np.ptp(solid.reshape(-1, 3), axis=0).max() == 0
    assert procedural_background("bokeh", 1100, 700, 3).shape == (1100, 700, 3)


def test_random_kind_follows_the_seed():
    kinds = {pick_kind(seed) for seed in range(60)}
    assert kinds == set(KINDS)
    for seed in (0, 1, 2):
        np.testing.assert_array_equal(procedural_background("random", 32, 32, seed),
                                      procedural_background(pick_kind(seed), 32, 32, seed))


def test_background_seed_mixes_seed_and_index():
    seeds = {background_seed(s, i) for s in range(20) for i in range(20)}
    assert len(seeds) == 400
    assert background_seed(3, 4) == background_seed(3, 4)


@pytest.mark.parametrize("args, message", [
    (("plaid", 8, 8, 0), "unknown background kind"),
    (("solid", 0, 8, 0), "height must be"),
    (("solid", 8, 10 ** 6, 0), "width must be"),
    (("solid", 8, 8, -1), "seed must be >= 0"),
    (("solid", 8.5, 8, 0), "height must be a whole number"),
])
def test_procedural_bad_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        procedural_background(*args)


# --- node ---------------------------------------------------------------------------------

def _node_inputs(count=2, h=24, w=16):
    fg = torch.rand((count, h, w, 3), generator=torch.Generator().manual_seed(0))
    alpha = torch.zeros((count, h, w))
    alpha[:, 6:, 4:12] = 1.0
    return fg, alpha


def test_node_procedural_outputs():
    fg, alpha = _node_inputs()
    composite, background, report = LDPCompositeBackground().composite(
        fg, alpha, "", kind="random", seed=3, index=10)
    assert composite.shape == (2, 24, 16, 3) and background.shape == (2, 24, 16, 3)
    inside, outside = alpha.bool(), ~alpha.bool()
    assert torch.equal(composite[inside], fg[inside])
    assert torch.equal(composite[outside], background[outside])
    assert not torch.equal(background[0], background[1])  # another background per image
    assert report.count("procedural") == 2
    again = LDPCompositeBackground().composite(fg, alpha, "", kind="random", seed=3, index=10)
    assert torch.equal(again[1], background)
    shifted = LDPCompositeBackground().composite(fg, alpha, "", kind="random", seed=3, index=11)
    assert torch.equal(shifted[1][0], background[1])  # index + b picks the background


def test_node_invert_uses_one_minus_mask():
    fg, alpha = _node_inputs(1)
    plain = LDPCompositeBackground().composite(fg, alpha, "", kind="solid", seed=1, index=0)[0]
    inverted = LDPCompositeBackground().composite(fg, 1.0 - alpha, "", kind="solid", seed=1,
                                                  index=0, invert=True)[0]
    assert torch.allclose(plain, inverted, atol=1e-6)


def test_node_folder_backgrounds_skip_unreadable_files(tmp_path):
    cv2.imwrite(str(tmp_path / "a_red.png"), np.dstack([np.zeros((30, 30)), np.zeros((30, 30)),
                                                        np.full((30, 30), 255)]).astype(np.uint8))
    cv2.imwrite(str(tmp_path / "b_green.jpg"), np.dstack([np.zeros((50, 20)), np.full((50, 20), 255),
                                                          np.zeros((50, 20))]).astype(np.uint8))
    (tmp_path / "c_broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (tmp_path / "notes.txt").write_text("not a picture")
    fg, alpha = _node_inputs(3)
    composite, background, report = LDPCompositeBackground().composite(
        fg, alpha, str(tmp_path), kind="solid", seed=0, index=0)
    assert background.shape == (3, 24, 16, 3)
    colours = {tuple(np.round(bg.reshape(-1, 3).mean(0).numpy(), 2)) for bg in background}
    assert colours == {(1.0, 0.0, 0.0), (0.0, 1.0, 0.0)}  # only the two readable pictures
    assert "skipped 1 unreadable file(s)" in report and "c_broken.png" in report
    assert "a_red.png" in report and "b_green.jpg" in report


def test_node_folder_errors(tmp_path):
    fg, alpha = _node_inputs(1)
    node = LDPCompositeBackground()
    with pytest.raises(ValueError, match="has no pictures"):
        node.composite(fg, alpha, str(tmp_path), kind="solid", seed=0, index=0)
    with pytest.raises(ValueError, match="is not a folder"):
        node.composite(fg, alpha, str(tmp_path / "missing"), kind="solid", seed=0, index=0)
    (tmp_path / "x.png").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="could be read"):
        node.composite(fg, alpha, str(tmp_path), kind="solid", seed=0, index=0)


def _solid_file(path, bgr, size=(12, 10)):
    cv2.imwrite(str(path), np.full((*size, 3), bgr, np.uint8))


def test_background_folder_order_follows_the_seed_and_skips_unreadable_files(tmp_path):
    for i in range(5):
        _solid_file(tmp_path / f"{i}.png", (0, 0, 50 * i))
    (tmp_path / "5.png").write_bytes(b"broken")
    (tmp_path / ".hidden.png").write_bytes(b"x")
    files = list_background_files(tmp_path)
    assert [f.name for f in files] == [f"{i}.png" for i in range(6)]

    def names(seed):
        folder = BackgroundFolder(files, seed)
        return [folder.pick(position, 8, 6)[1] for position in range(12)], folder

    first, folder = names(3)
    assert first == names(3)[0] and first != names(4)[0]
    assert "5.png" not in first and set(first) == {f"{i}.png" for i in range(5)}
    assert list(folder.skipped) == ["5.png"] and "not a readable image" in folder.skipped["5.png"]
    picture, name = folder.pick(0, 8, 6)
    assert picture.shape == (8, 6, 3) and picture.dtype == np.float32
    assert np.allclose(picture[..., 0], 50 * int(name[0]) / 255)  # RGB order, red channel


def test_background_folder_with_no_readable_file_is_a_clear_error(tmp_path):
    (tmp_path / "a.png").write_bytes(b"x")
    with pytest.raises(ValueError, match="none of the 1 picture"):
        BackgroundFolder([tmp_path / "a.png"], 0).pick(0, 4, 4)
    with pytest.raises(ValueError, match="at least one"):
        BackgroundFolder([], 0)


def test_read_background_gray_and_16_bit(tmp_path):
    cv2.imwrite(str(tmp_path / "g.png"), np.full((3, 4), 65535 // 5, np.uint16))
    picture = read_background(tmp_path / "g.png")
    assert picture.shape == (3, 4, 3) and np.allclose(picture, (65535 // 5) / 65535)

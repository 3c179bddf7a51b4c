"""Tests for base.errormap (alpha-bar / alpha-bar_h / error-map pictures)."""
import numpy as np
import pytest

from comfyui_ld_portrait.dataset.imagefiles import read_rgba
from comfyui_ld_portrait.base.errormap import (
    ERROR_RED,
    PANEL_TITLES,
    alpha_bar_error_view,
    alpha_bar_view,
    checker_composite,
    composite,
    error_map,
    error_panel,
    inverse_alpha_view,
    semi_transparent,
)

WHITE, BLACK, RED = [1.0, 1.0, 1.0], [0.0, 0.0, 0.0], list(ERROR_RED)


@pytest.fixture
def scene():
    """6x8 image: background (alpha 0) left, semi band, opaque right; known colours."""
    alpha = np.zeros((6, 8), np.float32)
    alpha[:, 2:4] = 0.5
    alpha[:, 4:] = 1.0
    rgb = np.zeros((6, 8, 3), np.float32)
    rgb[..., 0] = 0.8  # an orange-ish foreground
    rgb[..., 1] = 0.4
    changed = np.zeros((6, 8), bool)
    changed[1, 5] = True  # an error inside the opaque part
    changed[2, 2] = True  # an error in the semi band
    return rgb, alpha, changed


def test_semi_transparent_uses_8bit_tolerance():
    alpha = np.array([[0.0, 0.4 / 255, 0.6 / 255, 0.5, 254.4 / 255, 254.6 / 255, 1.0]], np.float32)
    np.testing.assert_array_equal(semi_transparent(alpha), [[False, False, True, True, True, False, False]])
    alpha8 = np.array([[0, 1, 128, 254, 255]], np.uint8)
    np.testing.assert_array_equal(semi_transparent(alpha8), [[False, True, True, True, False]])


def test_alpha_bar_view_white_on_semi_black_elsewhere(scene):
    _, alpha, _ = scene
    view = alpha_bar_view(alpha)
    assert view.shape == (6, 8, 3) and view.dtype == np.float32
    np.testing.assert_array_equal(view[0, 0], BLACK)
    np.testing.assert_array_equal(view[0, 3], WHITE)
    np.testing.assert_array_equal(view[0, 7], BLACK)
    assert view.sum() == 3 * 12  # exactly the 12 semi pixels are white


def test_inverse_alpha_view_is_one_minus_alpha_gray():
    alpha = np.array([[0.0, 0.25, 1.0]], np.float32)
    view = inverse_alpha_view(alpha)
    assert view.shape == (1, 3, 3) and view.dtype == np.float32
    np.testing.assert_allclose(view[0], [[1, 1, 1], [0.75, 0.75, 0.75], [0, 0, 0]])
    np.testing.assert_allclose(inverse_alpha_view(np.array([[255, 0]], np.uint8))[0, :, 0], [0.0, 1.0])


def test_composite_over_background(scene):
    rgb, alpha, _ = scene
    out = composite(rgb, alpha, background=(0.0, 0.0, 1.0))
    np.testing.assert_allclose(out[0, 0], [0.0, 0.0, 1.0])
    np.testing.assert_allclose(out[0, 3], [0.4, 0.2, 0.5])
    np.testing.assert_allclose(out[0, 6], [0.8, 0.4, 0.0])


def test_error_map_paints_changed_pixels_pure_red_and_dims_the_rest(scene):
    rgb, alpha, changed = scene
    out = error_map(rgb, alpha, changed)
    assert out.shape == (6, 8, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out[1, 5], RED)
    np.testing.assert_array_equal(out[2, 2], RED)
    assert (np.all(out == np.float32(1.0) * np.array(RED, np.float32), axis=2)).sum() == 2
    # the rest is the composite, darker and far less saturated than the marks
    plain = composite(rgb, alpha)
    others = ~changed
    assert np.all(out[others].max(axis=1) < plain[others].max(axis=1))
    saturation = out[others].max(axis=1) - out[others].min(axis=1)
    assert saturation.max() < 0.5
    # the neutral background stays neutral gray
    assert out[0, 0, 0] == out[0, 0, 1] == out[0, 0, 2] and 0.2 < out[0, 0, 0] < 0.5


def test_error_map_accepts_integer_and_float_zero_one_masks(scene):
    rgb, alpha, changed = scene
    reference = error_map(rgb, alpha, changed)
    np.testing.assert_array_equal(error_map(rgb, alpha, changed.astype(np.uint8)), reference)
    np.testing.assert_array_equal(error_map(rgb, alpha, changed.astype(np.float32)), reference)
    np.testing.assert_array_equal(error_map(rgb, alpha, changed[..., None]), reference)


def test_error_map_background_option(scene):
    rgb, alpha, changed = scene
    dark = error_map(rgb, alpha, changed, background=(0.0, 0.0, 0.0))
    light = error_map(rgb, alpha, changed, background=(1.0, 1.0, 1.0))
    assert dark[0, 0].sum() == 0.0 and light[0, 0].min() > 0.5
    np.testing.assert_array_equal(dark[0, 6], light[0, 6])  # opaque pixels do not see it


def test_alpha_bar_error_view_colours(scene):
    _, alpha, changed = scene
    view = alpha_bar_error_view(alpha, changed)
    np.testing.assert_array_equal(view[0, 0], BLACK)  # background
    np.testing.assert_array_equal(view[0, 2], WHITE)  # semi, kept
    np.testing.assert_array_equal(view[2, 2], RED)  # semi, erroneous
    np.testing.assert_array_equal(view[1, 5], RED)  # opaque but changed (e.g. a pinhole)
    np.testing.assert_array_equal(view[0, 6], BLACK)  # opaque
    assert view.dtype == np.float32 and view.shape == (6, 8, 3)


def test_error_panel_layout_without_labels(scene):
    rgb, alpha, changed = scene
    refined = alpha.copy()
    refined[changed] = 1.0
    panel = error_panel(rgb, alpha, refined, changed, labels=False, gap=3)
    assert panel.shape == (6, 4 * 8 + 3 * 3, 3) and panel.dtype == np.float32
    tiles = [panel[:, i * 11: i * 11 + 8] for i in range(4)]
    np.testing.assert_array_equal(tiles[0], checker_composite(rgb, alpha))  # as the sheet
    np.testing.assert_array_equal(tiles[1], alpha_bar_error_view(alpha, changed))
    np.testing.assert_array_equal(tiles[2], error_map(rgb, alpha, changed))
    np.testing.assert_array_equal(tiles[3], composite(rgb, refined))
    assert np.all(panel[:, 8:11] == 1.0)  # white separators
    assert 0.0 <= panel.min() and panel.max() <= 1.0


def test_error_panel_default_gap_and_labels_draw_text():
    rng = np.random.default_rng(0)
    rgb = rng.random((96, 256, 3), dtype=np.float32)
    alpha = np.zeros((96, 256), np.float32)
    alpha[:, 128:] = 1.0
    changed = np.zeros((96, 256), bool)
    plain = error_panel(rgb, alpha, alpha, changed, labels=False)
    labelled = error_panel(rgb, alpha, alpha, changed, labels=True)
    assert plain.shape == labelled.shape == (96, 4 * 256 + 3 * 2, 3)
    for index in range(4):
        left = index * (256 + 2)
        corner_plain = plain[:30, left: left + 120]
        corner_labelled = labelled[:30, left: left + 120]
        assert np.abs(corner_labelled - corner_plain).mean() > 0.05, PANEL_TITLES[index]
        # white letters exist in every label
        assert (corner_labelled.min(axis=2) > 0.95).sum() > 20
    # only the top-left corners change
    bottom = slice(60, 96)
    np.testing.assert_array_equal(plain[bottom], labelled[bottom])
    assert 0.0 <= labelled.min() and labelled.max() <= 1.0


def test_tiny_images_get_no_label_but_still_work():
    rgb = np.zeros((3, 3, 3), np.float32)
    alpha = np.ones((3, 3), np.float32)
    changed = np.zeros((3, 3), bool)
    panel = error_panel(rgb, alpha, alpha, changed, labels=True)
    assert panel.shape == (3, 4 * 3 + 3 * 2, 3)


def test_inputs_are_not_modified(scene):
    rgb, alpha, changed = scene
    copies = rgb.copy(), alpha.copy(), changed.copy()
    error_panel(rgb, alpha, alpha, changed)
    for original, copy in zip((rgb, alpha, changed), copies):
        np.testing.assert_array_equal(original, copy)


def test_real_image_panel(layerdiffuse_dir):
    rgb, alpha = read_rgba(layerdiffuse_dir / "i2i_0_transparent.png")
    semi = semi_transparent(alpha)
    assert 0.1 < semi.mean() < 0.3  # the README's ~19 % neither 0 nor 255
    changed = np.zeros_like(semi)
    changed[400:600, 400:600] = semi[400:600, 400:600]  # stand-in for "interior errors"
    refined = alpha.copy()
    refined[changed] = 1.0
    panel = error_panel(rgb, alpha, refined, changed, labels=False)
    assert panel.shape == (1024, 4 * 1024 + 3 * 8, 3)
    bar_h = panel[:, 1032:2056]
    red = np.all(bar_h == np.array(RED, np.float32), axis=2)
    np.testing.assert_array_equal(red, changed)
    white = np.all(bar_h == 1.0, axis=2)
    np.testing.assert_array_equal(white, semi & ~changed)
    labelled = error_panel(rgb, alpha, refined, changed, labels=True)
    differs = np.any(labelled != panel, axis=2)
    rows, cols = np.nonzero(differs)
    assert rows.max() < 100  # labels stay in a strip at the top of each picture
    assert {col // 1032 for col in cols} == {0, 1, 2, 3}


# --- bad inputs ----------------------------------------------------------------------------

def test_size_mismatch_raises(scene):
    rgb, alpha, changed = scene
    with pytest.raises(ValueError, match="same size"):
        error_map(rgb, alpha[:, :7], changed)
    with pytest.raises(ValueError, match="same size"):
        error_map(rgb, alpha, changed[:5])
    with pytest.raises(ValueError, match="same size"):
        alpha_bar_error_view(alpha, changed[:, :3])
    with pytest.raises(ValueError, match="same size"):
        error_panel(rgb, alpha, alpha[:5], changed)
    with pytest.raises(ValueError, match="same size"):
        composite(rgb[:2], alpha)


def test_changed_mask_rule_is_above_one_half(scene):
    rgb, alpha, changed = scene
    # The same rule as the quality gate: anything above one half counts as changed.
    np.testing.assert_array_equal(error_map(rgb, alpha, changed * 0.7), error_map(rgb, alpha, changed))
    np.testing.assert_array_equal(alpha_bar_error_view(alpha, np.full((6, 8), 0.5, np.float32)),
                                  alpha_bar_error_view(alpha, np.zeros((6, 8), bool)))
    with pytest.raises(ValueError, match="NaN"):
        error_map(rgb, alpha, np.full((6, 8), np.nan, np.float32))
    with pytest.raises(ValueError, match="2-D"):
        error_map(rgb, alpha, np.zeros((6, 8, 3), bool))
    with pytest.raises(ValueError, match="dtype"):
        error_map(rgb, alpha, np.full((6, 8), "x"))


def test_other_bad_inputs(scene):
    rgb, alpha, changed = scene
    with pytest.raises(ValueError, match="background"):
        error_map(rgb, alpha, changed, background=(0.5, 0.5))
    with pytest.raises(ValueError, match="background"):
        composite(rgb, alpha, background=(0.0, 2.0, 0.0))
    with pytest.raises(ValueError, match="gap"):
        error_panel(rgb, alpha, alpha, changed, gap=-1)
    with pytest.raises(ValueError, match="NaN"):
        alpha_bar_view(np.full((2, 2), np.nan, np.float32))
    with pytest.raises(ValueError, match="2-D"):
        inverse_alpha_view(np.zeros((2, 2, 3), np.float32))
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        error_map(np.zeros((6, 8), np.float32), alpha, changed)

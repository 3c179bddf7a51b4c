"""Trimap matting (pymatting solvers behind tiles and checks) on composites with known alpha."""
import numpy as np
import pytest

from comfyui_ld_portrait.matting._trimap import band_trimap
from comfyui_ld_portrait.matting.trimap_solve import (TrimapError, estimate_foreground,
                                                      solve_trimap, unknown_error)
from comfyui_ld_portrait.pipeline.synthetic import make_portrait
from comfyui_ld_portrait.refine.composite import procedural_background


@pytest.fixture(scope="module")
def composite():
    portrait = make_portrait(4, 128)
    alpha = np.asarray(portrait.alpha_true, np.float32)
    fg = np.asarray(portrait.rgb, np.float32)
    background = procedural_background("bokeh", 128, 128, 9)
    image = alpha[..., None] * fg + (1 - alpha[..., None]) * background
    return image.astype(np.float32), alpha, fg, band_trimap(alpha, 4)


def test_error_in_the_unknown_band_is_far_below_the_trimaps_own(composite):
    image, alpha, _, trimap = composite
    solved = solve_trimap(image, trimap)
    ours = unknown_error(solved, alpha, trimap)
    trimap_own = unknown_error(trimap, alpha, trimap)
    assert ours["pixels"] > 500
    assert ours["sad"] < 0.15 * trimap_own["sad"]
    assert ours["mse"] < 0.1 * trimap_own["mse"]


def test_known_pixels_keep_their_values_and_tiles_agree_with_one_window(composite):
    image, alpha, _, trimap = composite
    tiled = solve_trimap(image, trimap, tile=48, margin=12)
    whole = solve_trimap(image, trimap, tile=0)
    assert np.array_equal(tiled[trimap == 1.0], np.ones(int((trimap == 1.0).sum()), np.float32))
    assert np.all(tiled[trimap == 0.0] == 0.0)
    assert unknown_error(tiled, alpha, trimap)["mse"] < 1.5 * unknown_error(whole, alpha, trimap)["mse"] + 1e-3


def test_uint8_trimap_codes_are_understood(composite):
    image, alpha, _, trimap = composite
    codes = np.select([trimap == 0, trimap == 1], [0, 255], 128).astype(np.uint8)
    assert np.allclose(solve_trimap(image, codes), solve_trimap(image, trimap), atol=1e-4)


def test_all_known_trimap_returns_its_foreground():
    image = np.random.default_rng(0).random((32, 32, 3)).astype(np.float32)
    trimap = np.zeros((32, 32), np.float32)
    trimap[8:20, 8:20] = 1.0
    assert np.array_equal(solve_trimap(image, trimap), trimap)


@pytest.mark.parametrize("fill, match", [(0.5, "unknown everywhere"), (None, "no definite")])
def test_unsolvable_trimaps_are_clear_errors(fill, match):
    image = np.zeros((32, 32, 3), np.float32)
    if fill is not None:
        trimap = np.full((32, 32), fill, np.float32)
    else:
        trimap = np.full((32, 32), 0.5, np.float32)
        trimap[:4] = 1.0  # foreground but no background
    with pytest.raises(TrimapError, match=match):
        solve_trimap(image, trimap)


def test_unknown_method_is_refused(composite):
    image, _, _, trimap = composite
    with pytest.raises(ValueError, match="unknown matting method"):
        solve_trimap(image, trimap, method="magic")


def test_foreground_estimation_gives_cleaner_composites_than_the_raw_image(composite):
    image, alpha, fg, _ = composite
    estimated = estimate_foreground(image, alpha)
    new_background = np.zeros_like(image)
    new_background[..., 2] = 1.0
    a = alpha[..., None]
    truth = a * fg + (1 - a) * new_background
    soft = (alpha > 0.05) & (alpha < 0.95)
    err_estimated = np.abs(a * estimated + (1 - a) * new_background - truth)[soft].mean()
    err_raw = np.abs(a * image + (1 - a) * new_background - truth)[soft].mean()
    assert err_estimated < 0.6 * err_raw

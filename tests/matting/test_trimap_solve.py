"""Trimap matting (pymatting solvers behind tiles and checks) on composites with known alpha."""
import numpy as np
import pytest

from comfyui_ld_portrait.base.composite import procedural_background
from comfyui_ld_portrait.base.trimap import UNIT_UNKNOWN, trimap_from_mask
from comfyui_ld_portrait.matting.trimap_solve import (TrimapError, estimate_foreground,
                                                      solve_trimap,
                                                      solve_trimap_coarse_to_fine,
                                                      unknown_error)
from comfyui_ld_portrait.pipeline.synthetic import make_portrait


@pytest.fixture(scope="module")
def composite():
    portrait = make_portrait(4, 128)
    alpha = np.asarray(portrait.alpha_true, np.float32)
    fg = np.asarray(portrait.rgb, np.float32)
    background = procedural_background("bokeh", 128, 128, 9)
    image = alpha[..., None] * fg + (1 - alpha[..., None]) * background
    return image.astype(np.float32), alpha, fg, trimap_from_mask(alpha, 4, 4, unknown=UNIT_UNKNOWN)


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


# --- coarse to fine: wide unknown regions --------------------------------------------------

@pytest.fixture(scope="module")
def wide_band():
    """A 192 px portrait whose trimap leaves about half the image unknown."""
    portrait = make_portrait(3, 192)
    alpha = np.asarray(portrait.alpha_true, np.float32)
    background = procedural_background("bokeh", 192, 192, 5)
    image = alpha[..., None] * portrait.rgb + (1 - alpha[..., None]) * background
    trimap = trimap_from_mask(alpha, 19, 19, unknown=UNIT_UNKNOWN)
    assert 0.4 < ((trimap > 0.1) & (trimap < 0.9)).mean() < 0.6
    return image.astype(np.float32), alpha, trimap


def _levels_run(image, trimap, **kwargs):
    calls = []
    alpha = solve_trimap_coarse_to_fine(image, trimap, progress=lambda d, n: calls.append((d, n)),
                                        **kwargs)
    return alpha, calls


def test_coarse_to_fine_band_sad_is_within_5_percent_of_plain_closed_form(wide_band):
    import pymatting

    image, alpha, trimap = wide_band
    ours, calls = _levels_run(image, trimap, coarsest_unknown=3000)
    assert calls[-1][1] >= 3  # really went through coarser levels
    plain = pymatting.estimate_alpha_cf(image.astype(np.float64), trimap.astype(np.float64))
    ours_sad = unknown_error(ours, alpha, trimap)["sad"]
    plain_sad = unknown_error(plain, alpha, trimap)["sad"]
    assert ours_sad <= 1.05 * plain_sad
    assert ours_sad < 0.2 * unknown_error(trimap, alpha, trimap)["sad"]


def test_coarse_to_fine_progress_is_monotonic_and_ends_done(wide_band):
    image, _, trimap = wide_band
    _, calls = _levels_run(image, trimap, coarsest_unknown=3000)
    done = [d for d, _ in calls]
    assert done == list(range(1, len(calls) + 1))
    assert {n for _, n in calls} == {len(calls)}


def test_coarse_to_fine_keeps_known_pixels(wide_band):
    image, _, trimap = wide_band
    alpha, _ = _levels_run(image, trimap, coarsest_unknown=3000)
    assert np.all(alpha[trimap == 1.0] == 1.0)
    assert np.all(alpha[trimap == 0.0] == 0.0)
    unknown = (trimap > 0.1) & (trimap < 0.9)
    assert 0.0 < alpha[unknown].mean() < 1.0 and alpha.dtype == np.float32


def test_solve_trimap_goes_coarse_to_fine_above_the_threshold(wide_band, monkeypatch):
    from comfyui_ld_portrait.matting import trimap_solve

    image, _, trimap = wide_band
    monkeypatch.setattr(trimap_solve, "COARSE_TO_FINE_FROM", 100)
    monkeypatch.setattr(trimap_solve, "COARSEST_UNKNOWN", 3000)
    calls = []
    auto = solve_trimap(image, trimap, progress=lambda d, n: calls.append((d, n)))
    assert np.array_equal(auto, solve_trimap_coarse_to_fine(image, trimap, coarsest_unknown=3000))
    assert calls[-1][0] == calls[-1][1] >= 2


@pytest.mark.parametrize("change, match", [
    (lambda im, tri: (im, tri[:-1]), "same size"),
    (lambda im, tri: (np.where(np.arange(192)[:, None, None] == 5, np.nan, im), tri), "NaN"),
    (lambda im, tri: (im, np.stack([tri, tri], -1)), "2-D"),
])
def test_coarse_to_fine_bad_input_is_a_clear_error(wide_band, change, match):
    image, _, trimap = wide_band
    image, trimap = change(image, trimap)
    with pytest.raises(ValueError, match=match):
        solve_trimap_coarse_to_fine(image, trimap)


def test_coarse_to_fine_bad_settings_are_refused(wide_band):
    image, _, trimap = wide_band
    with pytest.raises(ValueError, match="coarsest_unknown"):
        solve_trimap_coarse_to_fine(image, trimap, coarsest_unknown=5)
    with pytest.raises(ValueError, match="confident"):
        solve_trimap_coarse_to_fine(image, trimap, confident=0.7)
    with pytest.raises(ValueError, match="closed-form method 'cf' only"):
        solve_trimap(image, trimap, method="knn", coarse_to_fine=True)

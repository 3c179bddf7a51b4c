"""Trimaps from an alpha and from a coarse mask, checked against a brute-force definition."""
from __future__ import annotations

import numpy as np
import pytest

from comfyui_ld_portrait.base.trimap import (UNIT_UNKNOWN, UNKNOWN_VALUES, check_trimap_codes, trimap_array,
                                             trimap_from_alpha, trimap_from_mask, trimap_to_unit)


def _kinds(alpha: np.ndarray) -> np.ndarray:
    """0 background, 2 foreground, 1 transition: per pixel, by its 8-bit code."""
    codes = np.rint(alpha * 255)
    return np.where(codes == 0, 0, np.where(codes == 255, 2, 1))


def _brute_force_trimap(alpha: np.ndarray, band: float) -> np.ndarray:
    """Unknown where any pixel within `band` (Euclidean, inside the image) differs in kind from
    a pure pixel, or the pixel itself is a transition."""
    kinds = _kinds(alpha)
    height, width = alpha.shape
    out = np.empty(alpha.shape, np.uint8)
    reach = int(np.floor(band))
    for y in range(height):
        for x in range(width):
            y0, y1 = max(0, y - reach), min(height, y + reach + 1)
            x0, x1 = max(0, x - reach), min(width, x + reach + 1)
            yy, xx = np.mgrid[y0:y1, x0:x1]
            near = (yy - y) ** 2 + (xx - x) ** 2 <= band * band
            window = kinds[y0:y1, x0:x1][near]
            if kinds[y, x] == 1 or np.any(window != kinds[y, x]):
                out[y, x] = 128
            else:
                out[y, x] = 255 if kinds[y, x] == 2 else 0
    return out


def _test_matte(rng) -> np.ndarray:
    """A hard-edged rectangle touching the left border, a soft blob and scattered semi-pixels."""
    alpha = np.zeros((22, 27), np.float32)
    alpha[5:15, 0:9] = 1.0  # hard 0/1 edge, touches the border
    yy, xx = np.mgrid[0:22, 0:27]
    blob = np.clip(5.5 - np.hypot(yy - 12, xx - 19), 0, 1)
    alpha = np.maximum(alpha, blob.astype(np.float32))
    alpha[rng.random(alpha.shape) < 0.02] = 0.4
    return np.round(alpha * 255) / 255


def test_band_zero_marks_exactly_the_transition_pixels():
    alpha = _test_matte(np.random.default_rng(1))
    trimap = trimap_from_alpha(alpha, 0)
    assert trimap.dtype == np.uint8 and set(np.unique(trimap)) <= {0, 128, 255}
    kinds = _kinds(alpha)
    assert np.array_equal(trimap == 128, kinds == 1)
    assert np.array_equal(trimap == 255, kinds == 2)


@pytest.mark.parametrize("band", [1.0, 2.5, 4.0])
def test_band_matches_the_brute_force_definition(band):
    alpha = _test_matte(np.random.default_rng(2))
    assert np.array_equal(trimap_from_alpha(alpha, band), _brute_force_trimap(alpha, band))


def test_image_border_is_not_an_edge():
    alpha = np.zeros((30, 30), np.float32)
    alpha[:, :15] = 1.0  # the portrait leaves the frame on the left, top and bottom
    trimap = trimap_from_alpha(alpha, 3)
    assert (trimap[:, :12] == 255).all()
    assert (trimap[:, 12:18] == 128).all()
    assert (trimap[:, 18:] == 0).all()


def test_band_fraction_is_relative_to_the_shorter_side():
    alpha = _test_matte(np.random.default_rng(3))  # 22 x 27: shorter side 22
    assert np.array_equal(trimap_from_alpha(alpha, band_fraction=0.1),
                          trimap_from_alpha(alpha, 2.2))


def test_uniform_mattes_and_integer_input():
    assert (trimap_from_alpha(np.ones((8, 9), np.float32), 5) == 255).all()
    assert (trimap_from_alpha(np.zeros((8, 9), np.uint8), 5) == 0).all()
    alpha = _test_matte(np.random.default_rng(4))
    as_uint16 = np.round(alpha * 65535).astype(np.uint16)
    assert np.array_equal(trimap_from_alpha(as_uint16, 2), trimap_from_alpha(alpha, 2))


@pytest.mark.parametrize("kwargs, message", [({"band": -1}, "band"),
                                             ({"band_fraction": 1.5}, "band_fraction"),
                                             ({"band": float("nan")}, "band")])
def test_bad_band_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        trimap_from_alpha(np.zeros((4, 4), np.float32), **kwargs)


def test_mask_trimap_is_erosion_and_dilation():
    rng = np.random.default_rng(5)
    mask = np.zeros((25, 25), bool)
    mask[6:19, 4:17] = True
    mask[rng.random(mask.shape) < 0.03] = True
    trimap = trimap_from_mask(mask, erode=2, dilate=3.5)
    yy, xx = np.mgrid[0:25, 0:25]
    inside = np.argwhere(mask)
    outside = np.argwhere(~mask)
    for y in range(25):
        for x in range(25):
            to_outside = np.min(np.hypot(outside[:, 0] - y, outside[:, 1] - x))
            to_inside = np.min(np.hypot(inside[:, 0] - y, inside[:, 1] - x))
            expected = 255 if mask[y, x] and to_outside > 2 else (
                0 if not mask[y, x] and to_inside > 3.5 else 128)
            assert trimap[y, x] == expected, (y, x)


def test_mask_trimap_from_float_mask_uses_the_threshold():
    mask = np.zeros((10, 10), np.float32)
    mask[2:8, 2:8] = 0.7
    assert np.array_equal(trimap_from_mask(mask, 0, 0), np.where(mask > 0.5, 255, 0))
    assert (trimap_from_mask(mask, 0, 0, threshold=0.8) == 0).all()
    with pytest.raises(ValueError, match="erode"):
        trimap_from_mask(mask, erode=-2)


def _soft_disk(size: int = 40) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    return np.clip((12.0 - np.hypot(yy - size / 2, xx - size / 2)) / 3.0, 0.0, 1.0).astype(np.float32)


@pytest.mark.parametrize("make", [
    lambda alpha, unknown: trimap_from_mask(alpha, 3, 5, unknown=unknown),
    lambda alpha, unknown: trimap_from_alpha(alpha, 2.5, unknown=unknown),
], ids=["from_mask", "from_alpha"])
def test_the_unknown_value_picks_the_convention_and_nothing_else(make):
    """The one trimap path: 128 gives the uint8 codes (the default), 0.5 the same regions as
    float32 0 / 0.5 / 1 -- what the matting code used to get by converting the codes."""
    alpha = _soft_disk()
    codes = make(alpha, 128)
    unit = make(alpha, UNIT_UNKNOWN)
    assert codes.dtype == np.uint8 and set(np.unique(codes)) == {0, 128, 255}
    assert unit.dtype == np.float32 and set(np.unique(unit)) == {0.0, 0.5, 1.0}
    assert np.array_equal(unit, trimap_to_unit(codes))
    assert np.array_equal(make(alpha, 128.0), codes) and UNKNOWN_VALUES == (128, 0.5)


@pytest.mark.parametrize("unknown", [127, 0.25, "0.5", True, None])
def test_an_unknown_value_of_no_convention_is_refused(unknown):
    with pytest.raises(ValueError, match=r"unknown must be 128 \(uint8 codes 0/128/255\) or 0.5"):
        trimap_from_mask(np.ones((4, 4), bool), 1, 1, unknown=unknown)
    with pytest.raises(ValueError, match="unknown must be"):
        trimap_from_alpha(np.ones((4, 4), np.float32), 1, unknown=unknown)


def test_check_trimap_codes_accepts_the_convention_and_names_stray_values():
    codes = np.array([[0, 128, 255]], np.uint8)
    assert np.array_equal(check_trimap_codes(codes.astype(np.float32) / 255), codes)
    assert np.array_equal(check_trimap_codes(codes.astype(np.uint16) * 257), codes)
    with pytest.raises(ValueError, match="127"):
        check_trimap_codes(np.array([[0, 127, 255]], np.uint8))


def test_trimap_to_unit_maps_each_code_and_keeps_the_layout():
    codes = np.array([[0, 128, 255], [255, 0, 128]], np.uint8)
    unit = trimap_to_unit(codes)
    assert unit.dtype == np.float32
    expected = np.array([[0.0, 0.5, 1.0], [1.0, 0.0, 0.5]], np.float32)
    assert np.array_equal(unit, expected)


def test_trimap_array_drops_a_single_channel_axis_and_refuses_other_shapes():
    codes = np.zeros((4, 5, 1), np.uint8)
    assert trimap_array(codes).shape == (4, 5)
    with pytest.raises(ValueError, match=r"my_trimap must be a 2-D array \[H, W\]; got shape \(4, 5, 3\)"):
        trimap_array(np.zeros((4, 5, 3), np.uint8), "my_trimap")

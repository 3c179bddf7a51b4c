"""Tests for base.padding.pad_foreground (Layer Diffusion foreground colour padding)."""
import numpy as np
import pytest

from comfyui_ld_portrait.dataset.imagefiles import read_rgba
from comfyui_ld_portrait.base.padding import PYRAMID_FACTOR, _premultiplied_pyramid, pad_foreground


def _random_rgba(height, width, seed=0):
    rng = np.random.default_rng(seed)
    rgb = rng.random((height, width, 3), dtype=np.float32)
    alpha = rng.random((height, width), dtype=np.float32)
    alpha[alpha < 0.3] = 0.0
    alpha[alpha > 0.8] = 1.0
    return rgb, alpha


# --- the upstream oracle -------------------------------------------------------------------

@pytest.fixture(scope="module")
def upstream_demo(layerdiffuse_dir):
    rgb, alpha = read_rgba(layerdiffuse_dir / "pad_ip.png")
    expected, _ = read_rgba(layerdiffuse_dir / "padded_rgb.png", require_alpha=False)
    expected8 = np.rint(expected * 255.0).astype(np.int32)
    alpha8 = np.rint(alpha * 255.0).astype(np.int32)
    return rgb, alpha, expected8, alpha8, pad_foreground(rgb, alpha)


def test_reproduces_upstream_output_with_rounding(upstream_demo):
    _, _, expected8, alpha8, padded = upstream_demo
    ours8 = np.rint(padded * 255.0).astype(np.int32)
    difference = np.abs(ours8 - expected8)
    opaque = alpha8 == 255
    assert opaque.sum() > 100_000 and (~opaque).sum() > 100_000  # both regions well represented
    assert difference[opaque].max() == 0
    # upstream truncated to 8 bits, we round: at most one code apart, half a code on average
    assert difference[~opaque].max() <= 1
    assert difference[~opaque].mean() <= 1.0
    assert difference[alpha8 == 0].mean() <= 1.0


def test_reproduces_upstream_output_with_upstream_truncation(upstream_demo):
    # The upstream demo wrote (fg * 255).clip(0, 255).astype(uint8): with the same
    # quantisation our float result gives the very same bytes (allow a stray pixel for
    # OpenCV builds whose area resize rounds differently).
    _, _, expected8, _, padded = upstream_demo
    ours8 = (padded * 255.0).clip(0, 255).astype(np.uint8).astype(np.int32)
    difference = np.abs(ours8 - expected8)
    assert difference.max() <= 1
    assert (difference == 0).mean() >= 0.999


def test_opaque_region_keeps_input_colour_exactly(upstream_demo):
    rgb, alpha, _, _, padded = upstream_demo
    opaque = alpha == 1.0
    np.testing.assert_array_equal(padded[opaque], rgb[opaque])


# --- behaviour on synthetic images ---------------------------------------------------------

def test_transparent_colour_is_ignored_and_replaced_by_foreground_colour():
    rgb = np.zeros((40, 60, 3), np.float32)
    rgb[:, :30] = (1.0, 0.0, 0.0)  # opaque red half
    rgb[:, 30:] = (0.0, 0.2, 1.0)  # garbage blue under alpha 0
    alpha = np.zeros((40, 60), np.float32)
    alpha[:, :30] = 1.0
    padded = pad_foreground(rgb, alpha)
    np.testing.assert_allclose(padded, np.broadcast_to([1.0, 0.0, 0.0], padded.shape), atol=1e-5)


def test_padding_blends_the_nearest_foreground_colours():
    rgb = np.zeros((32, 90, 3), np.float32)
    alpha = np.zeros((32, 90), np.float32)
    rgb[:, :20], alpha[:, :20] = (1.0, 0.0, 0.0), 1.0  # red on the left
    rgb[:, 70:], alpha[:, 70:] = (0.0, 1.0, 0.0), 1.0  # green on the right
    padded = pad_foreground(rgb, alpha)
    row = padded[16]
    assert row[21, 0] > 0.7 and row[21, 0] > row[21, 1]  # next to red: mostly red
    assert row[68, 1] > 0.7 and row[68, 1] > row[68, 0]  # next to green: mostly green
    red_share = row[20:70, 0] - row[20:70, 1]
    assert red_share[0] > red_share[24] > red_share[-1]  # fades from red to green
    np.testing.assert_allclose(padded[..., 2], 0.0, atol=1e-6)  # no colour comes from nowhere


def test_semi_transparent_pixels_composite_over_the_padding():
    rgb = np.full((16, 16, 3), 0.2, np.float32)
    alpha = np.ones((16, 16), np.float32)
    rgb[5, 7] = (0.9, 0.9, 0.9)
    alpha[5, 7] = 0.5
    padded = pad_foreground(rgb, alpha)
    # c + fill * (1 - a), with the fill pulled towards the surrounding 0.2
    assert 0.45 + 0.1 * 0.5 < padded[5, 7, 0] < 0.45 + 0.9 * 0.5
    assert np.all(padded[alpha == 1.0] == np.float32(0.2))


def test_all_opaque_returns_rgb_unchanged():
    rgb, _ = _random_rgba(37, 23, seed=3)
    padded = pad_foreground(rgb, np.ones((37, 23), np.float32))
    np.testing.assert_array_equal(padded, rgb)


def test_all_transparent_gives_zeros():
    rgb, _ = _random_rgba(9, 14, seed=4)
    padded = pad_foreground(rgb, np.zeros((9, 14), np.float32))
    assert padded.dtype == np.float32 and padded.shape == (9, 14, 3)
    assert np.all(padded == 0.0)


def test_single_pixel():
    padded = pad_foreground(np.array([[[0.1, 0.5, 0.9]]], np.float32), np.array([[0.4]], np.float32))
    np.testing.assert_allclose(padded, [[[0.1, 0.5, 0.9]]], atol=1e-6)
    padded = pad_foreground(np.array([[[0.1, 0.5, 0.9]]], np.float32), np.zeros((1, 1), np.float32))
    assert np.all(padded == 0.0)


@pytest.mark.parametrize("shape", [(1, 7), (7, 1), (2, 3), (4, 1), (1, 4), (3, 2), (31, 17), (101, 64)])
def test_odd_and_thin_shapes(shape):
    rgb, alpha = _random_rgba(*shape, seed=sum(shape))
    alpha.flat[0] = 1.0  # at least one opaque pixel
    padded = pad_foreground(rgb, alpha)
    assert padded.shape == shape + (3,) and padded.dtype == np.float32
    assert np.isfinite(padded).all() and padded.min() >= 0.0 and padded.max() <= 1.0
    opaque = alpha == 1.0
    np.testing.assert_array_equal(padded[opaque], rgb[opaque])


def test_pyramid_levels_follow_the_upstream_size_rule():
    rgb, alpha = _random_rgba(95, 130, seed=5)
    levels = _premultiplied_pyramid(rgb, alpha)
    sizes = [level_alpha.shape for _, level_alpha in levels]
    expected = [(95, 130)]
    while min(expected[-1]) > 1:
        h, w = expected[-1]
        expected.append((int(h / PYRAMID_FACTOR), int(w / PYRAMID_FACTOR)))
    assert sizes == expected
    assert min(sizes[-1]) == 1
    np.testing.assert_allclose(levels[0][0], rgb * alpha[..., None], rtol=0, atol=0)


def test_uint8_input_matches_float_input():
    rgb, alpha = _random_rgba(20, 30, seed=6)
    rgb8 = np.rint(rgb * 255).astype(np.uint8)
    alpha8 = np.rint(alpha * 255).astype(np.uint8)
    from_uint8 = pad_foreground(rgb8, alpha8)
    from_float = pad_foreground(rgb8 / np.float32(255), alpha8 / np.float32(255))
    np.testing.assert_array_equal(from_uint8, from_float)
    assert pad_foreground(rgb8, alpha8[..., None]).shape == (20, 30, 3)  # [H, W, 1] alpha accepted


def test_inputs_are_not_modified():
    rgb, alpha = _random_rgba(12, 12, seed=7)
    rgb_copy, alpha_copy = rgb.copy(), alpha.copy()
    pad_foreground(rgb, alpha)
    np.testing.assert_array_equal(rgb, rgb_copy)
    np.testing.assert_array_equal(alpha, alpha_copy)


@pytest.mark.parametrize(
    "rgb, alpha, message",
    [
        (np.zeros((4, 5, 3), np.float32), np.zeros((4, 6), np.float32), "same size"),
        (np.zeros((4, 5, 4), np.float32), np.zeros((4, 5), np.float32), r"\[H, W, 3\]"),
        (np.zeros((4, 5, 3), np.float32), np.zeros((4, 5, 2), np.float32), "2-D"),
        (np.full((4, 5, 3), np.nan, np.float32), np.zeros((4, 5), np.float32), "NaN"),
        (np.zeros((4, 5, 3), np.float32), np.full((4, 5), 3.0, np.float32), "0..1"),
        (np.zeros((0, 5, 3), np.float32), np.zeros((0, 5), np.float32), "empty"),
    ],
)
def test_bad_inputs_raise_value_error(rgb, alpha, message):
    with pytest.raises(ValueError, match=message):
        pad_foreground(rgb, alpha)

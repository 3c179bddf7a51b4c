"""Connectivity-aware alpha refinement: real Layer Diffusion data, each artifact family on
hand-made alphas, invariants, and bad input."""
import json

import cv2
import numpy as np
import pytest

from comfyui_ld_portrait.dataset.imagefiles import read_rgba
from comfyui_ld_portrait.refine.connectivity import FIX_KINDS, RefineParams, refine_alpha, true_background

HALF = 0.5 / 255


def semi(alpha):
    return (alpha > HALF) & (alpha < 1 - HALF)


def zero_background_distance(alpha):
    """Distance to the test's own notion of true background: exact zeros 8-connected to the
    border (independent of the refiner's thresholds)."""
    zero = (alpha <= HALF).astype(np.uint8)
    _, labels = cv2.connectedComponents(zero, connectivity=8)
    border = np.unique(np.concatenate((labels[0], labels[-1], labels[:, 0], labels[:, -1])))
    background = np.isin(labels, border[border > 0])
    return cv2.distanceTransform((~background).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)


@pytest.fixture(scope="module")
def real_portrait(layerdiffuse_dir):
    _, alpha = read_rgba(layerdiffuse_dir / "i2i_0_transparent.png")
    return alpha, refine_alpha(alpha)


def test_real_portrait_removes_deep_semi_transparency(real_portrait):
    alpha, result = real_portrait
    distance = zero_background_distance(alpha)
    deep = distance > 40
    before = np.count_nonzero(semi(alpha) & deep)
    after = np.count_nonzero(semi(result.alpha) & deep)
    assert before > 50_000  # the image really has the artifact
    # Issue 9: semi-transparent pixels more than 40 px from the true background drop by >= 94%.
    # (The defaults were checked on this image; it is not a held-out measurement.)
    assert after <= 0.06 * before, (before, after)


def test_real_portrait_keeps_pixels_near_true_background(real_portrait):
    alpha, result = real_portrait
    # The main body: the largest component of visible pixels (its rim is what "near" means).
    count, labels, stats, _ = cv2.connectedComponentsWithStats((alpha > HALF).astype(np.uint8), connectivity=8)
    body = labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    near = (zero_background_distance(alpha) <= 3) & body
    changed_near = np.count_nonzero(result.changed & near) / np.count_nonzero(near)
    assert changed_near <= 0.01
    moved = np.abs(result.alpha - alpha)[near]
    assert moved.mean() <= 0.01


def test_real_portrait_filled_regions_meet_the_band_without_steps(real_portrait):
    """Where filled pixels touch kept ones, the refinement creates few steps above 0.3 (the
    taper; without it about 0.9% of those neighbour pairs step). Defaults were checked on this
    image."""
    alpha, result = real_portrait
    created = pairs = 0
    for dy, dx in ((0, 1), (1, 0)):
        a, b = result.alpha[: alpha.shape[0] - dy, : alpha.shape[1] - dx], result.alpha[dy:, dx:]
        ca, cb = result.changed[: alpha.shape[0] - dy, : alpha.shape[1] - dx], result.changed[dy:, dx:]
        junction = ca ^ cb
        pairs += np.count_nonzero(junction)
        created += np.count_nonzero(junction & (np.abs(a - b) > 0.3))
    assert pairs > 10_000
    assert created <= 0.004 * pairs, (created, pairs)
    untapered = refine_alpha(alpha, taper_width=0)
    assert untapered.alpha.max() == 1.0 and np.count_nonzero(untapered.changed) >= np.count_nonzero(result.changed)


def test_real_portrait_fills_eye_highlights(real_portrait):
    alpha, result = real_portrait
    for rows, cols in ((slice(480, 540), slice(380, 460)), (slice(480, 540), slice(580, 660))):
        assert np.count_nonzero(semi(alpha[rows, cols])) >= 3  # see-through highlight in the raw alpha
        assert result.alpha[rows, cols].min() == 1.0


def test_real_portrait_stats_are_consistent_and_json(real_portrait):
    alpha, result = real_portrait
    stats = json.loads(json.dumps(result.stats))
    assert stats["changed_pixels"] == int(result.changed.sum())
    kinds = sum(stats[k] for k in ("interior_fixed", "pinholes_filled", "debris_removed", "frame_fade_fixed"))
    assert kinds == stats["changed_pixels"]
    assert stats["semi_before"] == int(semi(alpha).sum())
    assert stats["semi_after"] == int(semi(result.alpha).sum())
    assert stats["semi_after"] < stats["semi_before"]
    assert stats["frame_fade_fixed"] > 0  # the jacket fades where it leaves the frame
    assert set(np.unique(result.fix_kind)) <= {0, *FIX_KINDS}
    assert np.array_equal(result.fix_kind != 0, result.changed)
    assert result.alpha.dtype == np.float32 and result.alpha.min() >= 0 and result.alpha.max() <= 1
    # Unchanged pixels keep their exact value.
    assert np.array_equal(result.alpha[~result.changed], alpha[~result.changed])


def test_real_portrait_frame_fade_reaches_the_border(real_portrait):
    alpha, result = real_portrait
    bottom_centre = (slice(1000, 1024), slice(300, 700))
    assert alpha[bottom_centre].min() < 0.9
    assert result.alpha[bottom_centre].min() == 1.0


def test_clean_cut_out_is_left_almost_untouched(layerdiffuse_dir):
    _, alpha = read_rgba(layerdiffuse_dir / "causal_cut.png")
    result = refine_alpha(alpha)
    assert result.changed.mean() <= 0.005


def test_deterministic_and_input_untouched(real_portrait):
    alpha, result = real_portrait
    copy = alpha.copy()
    again = refine_alpha(alpha)
    assert np.array_equal(alpha, copy)
    assert np.array_equal(again.alpha, result.alpha)
    assert again.stats == result.stats


# --- each artifact family on a hand-made portrait -------------------------------------------

HEAD_ROW, HEAD_RADIUS = 0.38, 0.2


def disc_portrait(size=256):
    """An opaque head-and-shoulders blob with a soft 4-px edge; body leaves at the bottom."""
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    head = np.hypot(yy - size * HEAD_ROW, xx - size * 0.5) - size * HEAD_RADIUS
    body = np.maximum(np.abs(xx - size * 0.5) - size * 0.35, size * 0.55 - yy)
    signed = np.minimum(head, body)
    return np.clip(0.5 - signed / 4.0, 0, 1).astype(np.float32)


def test_interior_speckle_and_blotches_become_opaque():
    alpha = disc_portrait()
    rng = np.random.default_rng(0)
    inner = cv2.erode((alpha == 1).astype(np.uint8), np.ones((31, 31), np.uint8)).astype(bool)
    inner[-40:] = False  # keep clear of the frame-fade zone, which reports its own kind
    ys, xs = np.nonzero(inner)
    pick = rng.choice(len(ys), 400, replace=False)
    alpha[ys[pick], xs[pick]] = rng.uniform(0.85, 0.99, 400)
    alpha[150:160, 110:125] = 0.6  # blotch
    result = refine_alpha(alpha)
    assert result.alpha[inner].min() == 1.0
    assert np.all(result.fix_kind[ys[pick], xs[pick]] == 1)


def test_speckle_chained_to_the_band_is_removed_beyond_the_band():
    alpha = disc_portrait()
    # A one-pixel chain of 0.9 running from the soft edge deep into the head.
    centre_row = int(256 * HEAD_ROW)
    edge_col = int(256 * (0.5 - HEAD_RADIUS))
    alpha[centre_row, edge_col - 2: edge_col + 60] = np.minimum(alpha[centre_row, edge_col - 2: edge_col + 60], 0.9)
    result = refine_alpha(alpha)
    params = result.stats["params"]
    deep_cols = np.arange(edge_col + int(params["band_width"]) + 4, edge_col + 60)
    assert np.all(result.alpha[centre_row, deep_cols] == 1.0)


def test_pinholes_filled_but_large_enclosed_hole_kept():
    alpha = disc_portrait()
    alpha[170:174, 100:104] = 0.0  # specular pinhole in the body
    alpha[180:230, 140:190] = 0.0  # big gap (arm against the torso)
    result = refine_alpha(alpha)
    assert np.all(result.alpha[170:174, 100:104] == 1.0)
    assert np.all(result.fix_kind[170:174, 100:104] == 2)
    assert np.all(result.alpha[180:230, 140:190] == 0.0)
    assert result.background[200, 160]


def head_top_row(col, size=256):
    dx = col - size * 0.5
    return int(size * HEAD_ROW - np.sqrt((size * HEAD_RADIUS) ** 2 - dx ** 2))


def test_thin_strands_and_soft_edge_are_preserved():
    alpha = disc_portrait()
    strands = np.zeros(alpha.shape, bool)
    # One-pixel strands leaving the head into the background, fading along their length.
    for col in (100, 150):
        edge = head_top_row(col)
        strands[edge - 40: edge + 2, col] = True
        alpha[edge - 40: edge + 2, col] = np.linspace(0.2, 0.8, 42)
    diagonal = np.arange(30)
    edge = head_top_row(170)
    strands[edge + 1 - diagonal, 170 + diagonal] = True
    alpha[edge + 1 - diagonal, 170 + diagonal] = np.maximum(alpha[edge + 1 - diagonal, 170 + diagonal], 0.35)
    result = refine_alpha(alpha)
    assert not result.changed[strands].any()
    soft = semi(disc_portrait())
    assert result.changed[soft].mean() < 0.01


def test_faint_debris_removed_and_real_islands_kept():
    alpha = disc_portrait()
    alpha[10:16, 10:30] = 0.05  # faint floating smear
    alpha[20:22, 230:232] = 0.7  # tiny island
    alpha[5:40, 200:215] = 1.0  # a substantial second object is not debris
    result = refine_alpha(alpha)
    assert np.all(result.alpha[10:16, 10:30] == 0)
    assert np.all(result.alpha[20:22, 230:232] == 0)
    assert np.all(result.fix_kind[10:16, 10:30] == 3)
    assert np.all(result.alpha[5:40, 200:215] == 1.0)


def test_frame_fade_is_extended_to_the_border_but_side_edges_are_not():
    alpha = disc_portrait()
    alpha[-4:] *= np.array([0.95, 0.92, 0.9, 0.87], np.float32)[:, None]
    result = refine_alpha(alpha)
    body_cols = slice(int(256 * 0.15) + 8, int(256 * 0.85) - 8)
    assert np.all(result.alpha[-4:, body_cols] == 1.0)
    assert np.all(result.fix_kind[-4:, body_cols] == 4)
    # Columns at the body's soft side edge stay soft: the anchor above them is not opaque.
    side_col = int(256 * 0.15)
    assert result.alpha[-1, side_col] < 1.0


def test_switches_disable_each_repair():
    alpha = disc_portrait()
    alpha[170:174, 100:104] = 0.0
    alpha[10:16, 10:30] = 0.05
    alpha[-3:] *= 0.9
    alpha[120, 128] = 0.9
    off = refine_alpha(alpha, fix_interior=False, fix_pinholes=False, remove_debris=False, fix_frame_fade=False)
    assert not off.changed.any()
    only_pinholes = refine_alpha(alpha, fix_interior=False, remove_debris=False, fix_frame_fade=False)
    assert set(np.unique(only_pinholes.fix_kind)) == {0, 2}


def test_defaults_scale_with_image_size():
    small = RefineParams().resolved(256, 256)
    large = RefineParams().resolved(2048, 2048)
    assert large["band_width"] == pytest.approx(8 * small["band_width"])
    assert large["hole_min_area"] == pytest.approx(64 * small["hole_min_area"], rel=0.01)
    assert RefineParams(band_width=5).resolved(2048, 2048)["band_width"] == 5


def test_same_result_at_twice_the_resolution():
    small = disc_portrait(256)
    small[170:173, 100:103] = 0.0
    big = cv2.resize(small, (512, 512), interpolation=cv2.INTER_NEAREST)
    a = refine_alpha(small)
    b = refine_alpha(big)
    down = b.changed[::2, ::2]
    assert (down == a.changed).mean() > 0.999


# --- bad and edge-case input -------------------------------------------------------------------

@pytest.mark.parametrize("bad, message", [
    (np.full((8, 8), np.nan, np.float32), "NaN"),
    (np.array([[0.0, np.inf]], np.float32), "NaN or infinite"),
    (np.zeros((4, 4, 3), np.float32), "2-D"),
    (np.zeros((2, 4, 4), np.float32), "2-D"),
    (np.zeros(16, np.float32), "2-D"),
    (np.zeros((0, 5), np.float32), "empty"),
    (np.zeros((4, 4), np.int64), "integer dtype"),
    (np.full((4, 4), 2.0, np.float32), "expected 0..1"),
    (np.zeros((4, 4), "U1"), "dtype"),
])
def test_bad_alpha_is_rejected_with_a_clear_message(bad, message):
    with pytest.raises(ValueError, match=message):
        refine_alpha(bad)


@pytest.mark.parametrize("override", [
    {"gap_level": 1.5}, {"background_level": 0.6}, {"band_width": -1}, {"opaque_level": float("nan")},
])
def test_bad_parameters_are_rejected(override):
    with pytest.raises(ValueError):
        refine_alpha(disc_portrait(64), **override)


def test_unknown_parameter_is_a_type_error():
    with pytest.raises(TypeError):
        refine_alpha(disc_portrait(64), band_wdth=3)


def test_uint8_and_float_give_the_same_result():
    alpha = disc_portrait()
    alpha[120, 128] = 0.9
    as8 = (alpha * 255 + 0.5).astype(np.uint8)
    a = refine_alpha(as8)
    b = refine_alpha(as8.astype(np.float32) / 255)
    assert np.array_equal(a.alpha, b.alpha)


@pytest.mark.parametrize("value", [0.0, 0.5, 1.0])
def test_one_pixel_images(value):
    result = refine_alpha(np.full((1, 1), value, np.float32))
    assert result.alpha.shape == (1, 1)
    assert result.alpha[0, 0] == value


def test_all_zero_and_all_one_alphas_are_defined():
    empty = refine_alpha(np.zeros((64, 48), np.float32))
    assert not empty.changed.any() and empty.background.all()
    full = refine_alpha(np.ones((64, 48), np.float32))
    assert not full.changed.any() and full.stats["no_background"]


def test_no_background_means_no_connectivity_repairs():
    alpha = np.full((64, 64), 0.97, np.float32)
    alpha[20:40, 20:40] = 1.0
    result = refine_alpha(alpha)
    assert result.stats["no_background"]
    assert result.stats["interior_fixed"] == 0


def test_odd_sizes_and_true_background_helper():
    alpha = disc_portrait(256)[:255, :183]
    result = refine_alpha(alpha)
    assert result.alpha.shape == (255, 183)
    assert np.array_equal(true_background(alpha, 2 / 255, 16), result.background)


def test_8192_square_alpha():
    size = 8192
    small = disc_portrait(512)
    alpha = cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR)
    alpha[5000:5004, 3000:3004] = 0.0
    result = refine_alpha(alpha)
    assert result.alpha.shape == (size, size)
    assert np.all(result.alpha[5000:5004, 3000:3004] == 1.0)
    assert result.changed.mean() < 0.001


# --- band speckle, wide ramps and the synthetic benchmark ---------------------------------------

def test_speckle_inside_the_band_is_removed_but_the_ramp_is_not():
    alpha = disc_portrait()
    soft = semi(alpha)
    # Near-opaque pixels next to the soft edge, darker than every neighbour: speckle.
    inner_edge = soft & (alpha > 0.9)
    inside = cv2.dilate(inner_edge.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & (alpha == 1)
    ys, xs = np.nonzero(inside)
    pick = np.random.default_rng(1).choice(len(ys), 60, replace=False)
    speck_rows, speck_cols = ys[pick], xs[pick]
    alpha[speck_rows, speck_cols] = 0.86
    result = refine_alpha(alpha)
    # Isolated specks (no darker neighbour) are repaired; the ramp itself is left alone.
    isolated = [
        (r, c) for r, c in zip(speck_rows, speck_cols)
        if alpha[r - 1:r + 2, c - 1:c + 2].min() >= 0.86 and np.count_nonzero(alpha[r - 1:r + 2, c - 1:c + 2] == 0.86) == 1
    ]
    assert len(isolated) >= 10
    assert all(result.alpha[r, c] == 1.0 for r, c in isolated)
    untouched = soft & ~inside
    assert result.changed[untouched].mean() < 0.01


def test_wide_smooth_ramp_is_kept_beyond_the_band_width():
    size = 512
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    # A head whose soft edge climbs steadily over 24 px (4.7% of the side): deeper than the
    # 15 px band width, within the 23 px ramp depth.
    radius = np.hypot(yy - 300, xx - 256)
    alpha = np.clip((200 - radius) / 24.0, 0, 1).astype(np.float32)
    alpha[400:] = np.maximum(alpha[400:], (np.abs(xx[400:] - 256) < 200).astype(np.float32))
    result = refine_alpha(alpha)
    ramp = (alpha > 0.05) & (alpha < 0.75) & (yy < 380)
    assert result.changed[ramp].mean() < 0.02
    # ... while the same depth filled with noisy near-opaque speckle is repaired.
    noisy = alpha.copy()
    field = (radius > 140) & (radius < 185) & (yy < 380)
    noisy[field] = np.random.default_rng(2).uniform(0.85, 0.99, field.sum())
    assert refine_alpha(noisy).changed[field & (radius < 165)].mean() > 0.9


def test_synthetic_benchmark_gains():
    from comfyui_ld_portrait.pipeline.synthetic import evaluate_refinement, make_dataset

    portraits = make_dataset(8, 384, seed=0)
    report = evaluate_refinement(portraits, refine_alpha)
    whole, band = report["whole"], report["band"]
    assert whole["sad_after"] < 0.05 * whole["sad_before"]
    assert whole["mse_after"] < 0.05 * whole["mse_before"]
    # Some of this older family's short-hair texture is flat at mid levels, like the shelves
    # the refinement fills (issue 9's blotches along the outline): a few band pixels are set to
    # 1. Measured: band SAD +24%, band MSE x3.8 (the band error is small: 0.0034 -> 0.0042 over
    # 8 portraits).
    assert band["sad_after"] <= 1.3 * band["sad_before"]
    assert band["mse_after"] <= 5 * band["mse_before"]
    assert report["band_worse_fraction"] < 0.002
    for family, fraction in report["repaired"].items():
        assert fraction > 0.9, family

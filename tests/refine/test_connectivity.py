"""Connectivity-aware alpha refinement: real Layer Diffusion data, each artifact family on
hand-made alphas, invariants, and bad input."""
import json

import cv2
import numpy as np
import pytest

from comfyui_ld_portrait.dataset.imagefiles import read_rgba
from comfyui_ld_portrait.refine import connectivity
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
    # Measured: 73% of the semi-transparency more than 40 px from the true background goes
    # (interior speckle and dimming). What stays lies within the reach of see-through gaps
    # between the curls and inside them, or is line-like near-opaque texture, which the
    # refinement keeps as possible hair (the target is 94%; docs/refinement.md says why the
    # method cannot tell those apart). A regression guard:
    assert after <= 0.35 * before, (before, after)


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


def test_real_portrait_uncertain_pixels_are_kept_and_counted(real_portrait):
    alpha, result = real_portrait
    assert not (result.uncertain & result.changed).any()
    assert np.array_equal(result.alpha[result.uncertain], alpha[result.uncertain])
    assert not (result.uncertain & result.background).any()
    assert np.all(alpha[result.uncertain] < 1.0)
    assert result.stats["uncertain_pixels"] == int(result.uncertain.sum())
    portrait = result.background.size - int(result.background.sum())
    assert result.stats["uncertain_fraction"] == pytest.approx(result.stats["uncertain_pixels"] / portrait)


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
    bottom_center = (slice(1000, 1024), slice(300, 700))
    assert alpha[bottom_center].min() < 0.9
    assert result.alpha[bottom_center].min() == 1.0


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


def test_banded_dimming_is_filled_up_to_its_steps(monkeypatch):
    """Banding: a dimmed area at 0.92 reaching the outline with a band of 0.85 across it. The
    step of 0.07 fails the flatness test on the 0.92 side within the solid radius; those rim
    pixels belong to the same dimmed area and are filled with it."""
    alpha = disc_portrait()
    area = (slice(160, 200), slice(30, 120))
    alpha[area] = np.minimum(alpha[area], 0.92)
    alpha[175:185, 30:120] = np.minimum(alpha[175:185, 30:120], 0.85)
    rims = (slice(173, 175), slice(70, 120))  # 0.92 pixels just above the band, away from the edge
    result = refine_alpha(alpha)
    assert (result.alpha[160:200, 70:120] == 1.0).all()
    monkeypatch.setattr(connectivity, "_with_rims", lambda plateau, radius: plateau)
    without = refine_alpha(alpha)
    assert not without.changed[rims].any()
    assert not without.changed[185:187, 70:120].any()  # the rim below the band too
    assert (without.alpha[188:200, 70:120] == 1.0).all()  # the flat parts are filled either way


def test_a_near_opaque_line_is_kept_as_a_strand_but_a_dimmed_area_is_filled():
    alpha = disc_portrait()
    center_row = int(256 * HEAD_ROW)
    edge_col = int(256 * (0.5 - HEAD_RADIUS))
    # A one-pixel line of 0.9 running from the soft edge into the head: the prior cannot tell
    # it from a near-opaque strand, so it stays (and is uncertain where it is deep).
    line = (center_row, slice(edge_col - 2, edge_col + 60))
    alpha[line] = np.minimum(alpha[line], 0.9)
    # A dimmed area of 0.9 (20 x 20) reaching the same soft edge lower down: dimming.
    patch = (slice(center_row + 15, center_row + 35), slice(edge_col + 2, edge_col + 22))
    alpha[patch] = np.minimum(alpha[patch], 0.9)
    result = refine_alpha(alpha)
    params = result.stats["params"]
    deep_cols = np.arange(edge_col + int(np.ceil(params["reach"])) + 2, edge_col + 60)
    assert not result.changed[center_row, edge_col:edge_col + 60].any()
    assert result.uncertain[center_row, deep_cols].all()
    in_patch = np.zeros(alpha.shape, bool)
    in_patch[patch] = alpha[patch] >= 0.9
    # Filled wherever its flat neighbourhood is whole: farther than twice the speckle scale (plus
    # the flatness window) from anything dimmer than the patch.
    clear = cv2.distanceTransform((alpha >= 0.89).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    away = in_patch & (clear > 3 * params["solid_radius"] + 1)
    assert away.sum() > 50
    assert np.all(result.alpha[away] == 1.0)


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
    reach = int(np.ceil(result.stats["params"]["reach"]))
    # Beyond the reach of the side edges' see-through background the body goes on out of frame.
    body_cols = slice(int(256 * 0.15) + reach + 2, int(256 * 0.85) - reach - 2)
    assert np.all(result.alpha[-4:, body_cols] == 1.0)
    assert np.all(result.fix_kind[-4:, body_cols] == 4)
    # Columns at the body's soft side edge stay soft.
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
    assert large["reach"] == pytest.approx(8 * small["reach"])
    assert large["solid_radius"] == pytest.approx(8 * small["solid_radius"], rel=0.05) or small["solid_radius"] == 2.0
    assert large["hole_min_area"] == pytest.approx(64 * small["hole_min_area"], rel=0.01)
    assert RefineParams(reach=5).resolved(2048, 2048)["reach"] == 5


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
    {"see_through_level": 1.5}, {"background_level": 0.6}, {"reach": -1}, {"deep_fill_level": float("nan")},
    {"background_level": 0.5, "see_through_level": 0.4},
])
def test_bad_parameters_are_rejected(override):
    with pytest.raises(ValueError):
        refine_alpha(disc_portrait(64), **override)


def test_unknown_parameter_is_a_type_error():
    with pytest.raises(TypeError):
        refine_alpha(disc_portrait(64), reach_px=3)


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


def test_component_areas_are_exact_past_float32_counting():
    # The areas are counted with float32 histograms (exact up to 2**24 per bin): a component of
    # more pixels than that must still be counted exactly.
    from comfyui_ld_portrait.refine.connectivity import _components

    mask = np.ones((4099, 4099), bool)  # 16.8M pixels, > 2**24
    mask[:, 2000] = False  # two components, one of them past 2**24 / 2
    mask[7, 7] = False
    count, labels, areas = _components(mask)
    assert labels.dtype == np.uint16 and count == 3
    assert areas.tolist() == [4099 + 1, 4099 * 2000 - 1, 4099 * 2098]
    whole = np.ones((4097, 4097), bool)
    assert _components(whole)[2].tolist() == [0, 4097 * 4097]


def test_crowded_dips_match_a_pairwise_check_when_dips_sit_in_one_corner():
    """The crowded test works on the enclosed pixels' bounding box only: near the box's edges
    it must find what dilating each dip on the whole image finds."""
    from comfyui_ld_portrait.refine.connectivity import _components, _crowded

    rng = np.random.default_rng(5)
    mask = np.zeros((120, 160), bool)
    mask[70:118, 100:158] = rng.random((48, 58)) < 0.08  # specks near the bottom-right corner
    count, labels, _ = _components(mask)
    enclosed = np.ones(count, bool)
    enclosed[0] = False
    radius = 2.0
    square = np.ones((2 * 2 + 1, 2 * 2 + 1), np.uint8)
    grown = {label: cv2.dilate((labels == label).view(np.uint8), square).view(bool) for label in range(1, count)}
    expected = np.zeros(count, bool)
    for first in range(1, count):
        for second in range(first + 1, count):
            if (grown[first] & grown[second]).any():
                expected[first] = expected[second] = True
    found = _crowded(labels, enclosed, enclosed[labels], radius)
    assert expected.any() and not expected[1:].all()
    assert np.array_equal(found, expected)


def test_crowded_dips_agree_between_16_and_32_bit_labels():
    # Above 65,535 components the labels are 32-bit and the crowded test runs on float
    # images: both paths must find the same crowded components.
    from comfyui_ld_portrait.refine.connectivity import _components, _crowded

    rng = np.random.default_rng(3)
    count, labels16, _ = _components(rng.random((300, 300)) < 0.3)  # many small components
    assert labels16.dtype == np.uint16
    enclosed = rng.random(count) < 0.7
    enclosed[0] = False
    for radius in (1.0, 2.5):
        inside = enclosed[labels16]
        expected = _crowded(labels16, enclosed, inside, radius)
        assert expected.any() and not expected.all()
        assert np.array_equal(_crowded(labels16.astype(np.int32), enclosed, inside, radius), expected)
    many = np.zeros((600, 600), bool)
    many[::2, ::2] = True  # 90,000 single pixels, none touching another
    count, labels, areas = _components(many)
    assert labels.dtype == np.int32 and count == 90_001
    assert areas[0] == 600 * 600 - 90_000 and (areas[1:] == 1).all()


# --- band speckle, wide ramps and the synthetic benchmark ---------------------------------------

def test_speckle_just_inside_the_outline_is_kept_but_deeper_speckle_is_not():
    """Precision before recall: a speck at the inner rim of the soft edge looks like the
    near-opaque side of a strand and is kept; the same specks a few pixels deeper are filled."""
    alpha = disc_portrait()
    soft = semi(alpha)
    depth = cv2.distanceTransform((alpha == 1).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    rng = np.random.default_rng(1)
    specks = []
    for low, high in ((1, 2), (8, 10)):
        ys, xs = np.nonzero((depth >= low) & (depth < high) & (np.arange(256)[:, None] < 200))
        pick = rng.choice(len(ys), 40, replace=False)
        alpha[ys[pick], xs[pick]] = 0.86
        specks.append((ys[pick], xs[pick]))
    result = refine_alpha(alpha)
    (rim_rows, rim_cols), (deep_rows, deep_cols) = specks
    assert np.all(result.alpha[deep_rows, deep_cols] == 1.0)
    assert np.mean(result.alpha[rim_rows, rim_cols] == 0.86) > 0.5
    assert result.changed[soft].mean() < 0.01


def test_wide_smooth_ramp_is_kept_and_a_flat_dimming_at_its_depth_is_not():
    size = 512
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    # A head whose soft edge climbs steadily over 40 px (motion blur, a wide soft fringe).
    radius = np.hypot(yy - 300, xx - 256)
    alpha = np.clip((200 - radius) / 40.0, 0, 1).astype(np.float32)
    alpha[400:] = np.maximum(alpha[400:], (np.abs(xx[400:] - 256) < 200).astype(np.float32))
    alpha = np.round(alpha * 255) / 255
    result = refine_alpha(alpha)
    ramp = semi(alpha) & (yy < 380)
    assert result.changed[ramp].mean() < 0.02
    # ... while a flat dimming of the body at the same depth is repaired.
    dimmed = alpha.copy()
    field = (radius > 110) & (radius < 150) & (yy < 380)
    dimmed[field] = 0.9
    assert refine_alpha(dimmed).changed[field].mean() > 0.9
    # A noisy field reaching the soft edge from deep inside is texture the prior cannot tell
    # from a hair mass: kept, and marked uncertain where it is deep.
    noisy = alpha.copy()
    field = (radius > 110) & (radius < 170) & (yy < 380)
    noisy[field] = np.round(np.random.default_rng(2).uniform(0.6, 0.99, field.sum()) * 255) / 255
    noisy_result = refine_alpha(noisy)
    deep_field = field & (radius < 125)
    assert noisy_result.uncertain[deep_field].mean() > 0.5
    assert not noisy_result.changed[noisy_result.uncertain].any()


def test_hair_pockets_among_strands_are_kept_but_a_dim_dip_in_solid_body_is_filled():
    alpha = disc_portrait()
    # Pockets of 0.35 (4 x 4) every 6 px in a patch of the head 8..30 px inside the outline:
    # hair texture, each with soft company. One dim dip of 0.45 (6 x 6) deep in the chest: a hole
    # in a solid body (no soft company within the reach), filled at its level; without the
    # soft-company rule it is a lone dim dip the prior cannot judge: kept and uncertain.
    rows = [head_top_row(128) + 8 + 6 * i for i in range(4)]
    pockets = np.zeros(alpha.shape, bool)
    for r in rows:
        for c in range(100, 160, 6):
            pockets[r:r + 4, c:c + 4] = True
    alpha[pockets] = 0.35
    alpha[190:196, 60:66] = 0.45
    result = refine_alpha(alpha)
    assert not result.changed[pockets].any()
    assert (result.alpha[190:196, 60:66] == 1.0).all()
    assert not result.uncertain[190:196, 60:66].any()
    without = refine_alpha(alpha, soft_company_fraction=0.0)
    assert not without.changed[190:196, 60:66].any()
    assert without.uncertain[190:196, 60:66].all()


def test_a_blotch_is_filled_in_skin_but_kept_among_soft_hair_texture():
    """The soft-company rule reads the surroundings, not the dip: the same mid-level blotch
    (0.6, 9 x 9) with speckle beside it (so not alone) is filled in a solid chest and kept where
    more than the threshold of the surroundings within the reach is soft (a hair mass)."""
    solid = disc_portrait()
    solid[185:194, 55:64] = 0.6
    solid[186, 66] = solid[190, 52] = 0.7  # speckle beside it: the blotch is not alone
    filled = refine_alpha(solid)
    assert (filled.alpha[185:194, 55:64] == 1.0).all()

    hairy = solid.copy()
    reach = int(np.ceil(filled.stats["params"]["reach"]))
    texture = np.zeros(hairy.shape, bool)
    for row in range(185 - reach, 194 + reach, 4):  # 2 x 2 soft pockets every 4 px: a quarter soft
        for col in range(55 - reach, 64 + reach, 4):
            texture[row:row + 2, col:col + 2] = True
    texture[184:195, 54:65] = False  # an opaque margin: the blotch stays its own dip
    texture &= hairy >= 1.0
    hairy[texture] = 0.5
    kept = refine_alpha(hairy)
    assert not kept.changed[185:194, 55:64].any()
    assert kept.uncertain[185:194, 55:64].all()


def test_a_patch_joined_to_the_edge_only_by_noise_level_pixels_is_enclosed(monkeypatch):
    """A pixel within the background's noise of opaque (253-254) hides the background: a chain
    of them does not open a translucent patch to the soft edge. The patch in the chest is then a
    dip in a solid body and is filled; the chain itself is noise and becomes opaque, except where
    it touches the soft edge."""
    alpha = disc_portrait()
    patch = np.zeros(alpha.shape, bool)
    patch[180:192, 100:112] = True
    alpha[patch] = 0.7
    right_edge = int(np.argmax(alpha[186, 112:] < 1.0)) + 112  # first soft pixel of the flank
    chain = np.zeros(alpha.shape, bool)
    chain[186, 112:right_edge] = True
    alpha[chain] = 254 / 255
    result = refine_alpha(alpha)
    assert (result.alpha[patch] == 1.0).all()
    assert (result.alpha[186, 112:right_edge - 1] == 1.0).all()
    assert result.alpha[186, right_edge - 1] == np.float32(254 / 255)  # beside the soft edge
    soft = semi(disc_portrait())
    assert result.changed[soft].mean() < 0.01

    # Counting noise-level pixels as soft, the chain joins the patch to the edge: open, deep
    # and dim, so kept as decoded and marked uncertain.
    monkeypatch.setattr(connectivity, "_soft", lambda codes, background_code: codes < 255)
    joined = refine_alpha(alpha)
    assert not joined.changed[patch].any()
    assert joined.uncertain[patch].all()


def test_small_dips_are_specks_unless_the_background_shows_through(monkeypatch):
    """Crowded 2 x 2 dips a few pixels inside the outline (within the reach of the see-through
    edge, with soft company): at 0.6 the background shows through none of them, so they are
    specks of dimming and filled; at 0.3 they could be gaps between strands and are kept."""
    alpha = disc_portrait()
    dips = np.zeros(alpha.shape, bool)
    for col in range(104, 156, 4):
        row = head_top_row(col) + 6
        dips[row:row + 2, col:col + 2] = True
    specks = alpha.copy()
    specks[dips] = 0.6
    assert (refine_alpha(specks).alpha[dips] == 1.0).all()
    gaps = alpha.copy()
    gaps[dips] = 0.3
    assert not refine_alpha(gaps).changed[dips].any()
    # Without the speck rule, the 0.6 dips are hair texture among company: kept.
    monkeypatch.setattr(connectivity, "_seen", lambda labels, count, see_through: np.ones(count, bool))
    assert not refine_alpha(specks).changed[dips].any()


def test_solid_surroundings_match_a_direct_count():
    """The summed-area look-up per dip gives what counting the grown box directly gives."""
    from comfyui_ld_portrait.refine.connectivity import _components, _pixels_by_label, _solid_surroundings

    rng = np.random.default_rng(11)
    not_opaque = rng.random((120, 140)) < 0.04
    not_opaque[40:50, 60:75] = True
    background = np.zeros(not_opaque.shape, bool)
    background[:, :8] = True
    not_opaque |= background
    count, labels, areas = _components(not_opaque)
    enclosed_lut = np.ones(count, bool)
    enclosed_lut[0] = False
    enclosed_lut[np.unique(labels[background])] = False
    enclosed = enclosed_lut[labels]
    portrait = ~background
    soft = not_opaque & portrait
    reach, fraction = 6.0, 0.05
    dips = _pixels_by_label(labels, enclosed)
    solid = _solid_surroundings(dips, labels.shape, areas, not_opaque, background, reach, fraction)
    for label in np.flatnonzero(enclosed_lut):
        rows, cols = np.nonzero(labels == label)
        top, bottom = max(rows.min() - 6, 0), min(rows.max() + 7, labels.shape[0])
        left, right = max(cols.min() - 6, 0), min(cols.max() + 7, labels.shape[1])
        box = (slice(top, bottom), slice(left, right))
        own = labels[box] == label
        others_soft = np.count_nonzero(soft[box] & ~own)
        others = np.count_nonzero(portrait[box] & ~own)
        assert solid[label] == (others_soft < fraction * max(others, 1)), label
    assert solid[enclosed_lut].any() and not solid[enclosed_lut].all()
    assert not solid[~enclosed_lut].any()


def test_synthetic_benchmark_gains():
    """The demo's own procedural portraits (pipeline/synthetic.py): the band is no worse than
    raw, and most of the damage goes."""
    from comfyui_ld_portrait.pipeline.synthetic import evaluate_refinement, make_dataset

    portraits = make_dataset(8, 384, seed=0)
    report = evaluate_refinement(portraits, refine_alpha)
    whole, band = report["whole"], report["band"]
    assert whole["sad_after"] < 0.3 * whole["sad_before"]
    assert band["sad_after"] <= band["sad_before"]
    assert report["band_worse_fraction"] < 0.002

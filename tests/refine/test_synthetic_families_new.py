"""The synthetic families with wide or flat soft structure: ``pocket_hair`` (soft pockets
enclosed by opaque strands, a flat translucent hair volume) and ``sheer_motion`` (sheer veil
or sleeve, motion-blurred hand), and their corruption models."""
import cv2
import numpy as np
import pytest

from fixtures.synthetic_families import (
    FAMILIES, family_split, make_family, true_band, yardstick_filter)
from fixtures.synthetic_families import pocket_hair, sheer_motion

NEW_FAMILIES = (pocket_hair, sheer_motion)
HALF = 0.5 / 255
#: Artifact kinds present in every portrait of each family, all kept off the true band.
ALWAYS = ("dimming", "banding", "edge_speckle", "pinhole", "glow_rim", "debris")


def _is_8bit(alpha):
    return np.abs(alpha * 255 - np.round(alpha * 255)).max() < 1e-3


def _enclosed_soft_pockets(truth):
    """Bool [H, W]: soft truth pixels whose 8-connected region of truth < 1 holds no truth-0
    pixel and does not touch the image border (not connected to the background through
    anything but opaque alpha)."""
    count, labels = cv2.connectedComponents((truth < 1 - HALF).astype(np.uint8), connectivity=8)
    touches_empty = np.bincount(labels[truth <= HALF], minlength=count) > 0
    touches_empty[np.concatenate((labels[0], labels[-1], labels[:, 0], labels[:, -1]))] = True
    touches_empty[0] = True
    return ~touches_empty[labels] & true_band(truth)


def _wide_soft(truth, low, high, radius):
    """Bool [H, W]: truth in (low, high) at least ``radius`` px from anything outside it."""
    soft = ((truth > low) & (truth < high)).astype(np.uint8)
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.erode(soft, disk, borderType=cv2.BORDER_CONSTANT, borderValue=0) > 0


def test_new_families_are_registered():
    assert FAMILIES["pocket_hair"] is pocket_hair.make_portrait
    assert FAMILIES["sheer_motion"] is sheer_motion.make_portrait
    assert [p.seed for p in make_family("sheer_motion", "evaluation", 2, 256)] == family_split("evaluation", 2)


@pytest.mark.parametrize("family", NEW_FAMILIES, ids=lambda m: m.NAME)
def test_deterministic_per_seed_and_seeds_differ(family):
    first, again, other = family.make_portrait(11, 256), family.make_portrait(11, 256), family.make_portrait(12, 256)
    for name in ("rgb", "alpha_true", "alpha_raw"):
        assert np.array_equal(getattr(first, name), getattr(again, name)), name
    assert first.artifacts.keys() == again.artifacts.keys()
    assert all(np.array_equal(first.artifacts[k], again.artifacts[k]) for k in first.artifacts)
    assert not np.array_equal(first.alpha_true, other.alpha_true)


@pytest.mark.parametrize("size", [256, 384, 768])
@pytest.mark.parametrize("family", NEW_FAMILIES, ids=lambda m: m.NAME)
def test_record_types_ranges_and_8bit_levels(family, size):
    portrait = family.make_portrait(3, size)
    assert portrait.family == family.NAME and portrait.seed == 3
    assert portrait.rgb.shape == (size, size, 3) and portrait.rgb.dtype == np.float32
    for alpha in (portrait.alpha_true, portrait.alpha_raw):
        assert alpha.shape == (size, size) and alpha.dtype == np.float32
        assert alpha.min() >= 0.0 and alpha.max() <= 1.0
        assert _is_8bit(alpha)
    assert portrait.rgb.min() >= 0.0 and portrait.rgb.max() <= 1.0
    truth = portrait.alpha_true
    # A portrait: opaque body, true background, and a soft band of real extent.
    assert (truth == 1).mean() > 0.15 and (truth == 0).mean() > 0.15
    assert true_band(truth).mean() > 0.02
    # The body leaves the frame at the bottom.
    assert (truth[-1] == 1).mean() > 0.3
    for kind in ALWAYS:
        mask = portrait.artifacts[kind]
        assert mask.dtype == bool and mask.shape == (size, size), kind
        assert mask.any(), f"{family.NAME} {size}: no {kind}"


@pytest.mark.parametrize("family", NEW_FAMILIES, ids=lambda m: m.NAME)
def test_raw_differs_from_truth_only_where_an_artifact_is_recorded(family):
    for portrait in make_family(family.NAME, "calibration", 3, 256):
        recorded = np.logical_or.reduce(list(portrait.artifacts.values()))
        assert np.array_equal(portrait.alpha_raw[~recorded], portrait.alpha_true[~recorded])
        assert np.all(np.abs(portrait.alpha_raw - portrait.alpha_true)[recorded] > 1 / 255)


@pytest.mark.parametrize("family", NEW_FAMILIES, ids=lambda m: m.NAME)
def test_artifacts_stay_off_the_true_band_and_have_their_statistics(family):
    for portrait in make_family(family.NAME, "calibration", 4, 384):
        truth, raw, art = portrait.alpha_true, portrait.alpha_raw, portrait.artifacts
        band = true_band(truth)
        for kind in ALWAYS:
            assert not (art[kind] & band).any(), kind
        opaque, empty = truth == 1, truth == 0
        for kind in ("dimming", "banding", "edge_speckle", "pinhole"):
            assert np.all(opaque[art[kind]]), kind
        for kind in ("glow_rim", "debris"):
            assert np.all(empty[art[kind]]), kind
        # Glow rims: faint, within 8 px outside the outline.
        outside = cv2.distanceTransform(empty.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        assert outside[art["glow_rim"]].max() <= 8.0 + 1e-3
        assert 0.0 < raw[art["glow_rim"]].max() <= 0.25 + HALF
        # Speckle reaches the outline: specks on opaque pixels touching non-opaque ones.
        depth = cv2.distanceTransform(opaque.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_3)
        assert (art["edge_speckle"] & (depth <= 1.0)).sum() >= 5
        # Dimming patches are large (a patch >= 10% of the body is well over 100 px).
        assert art["dimming"].sum() > 300
        assert np.all(raw[art["pinhole"] & ~art["edge_speckle"]] == 0)
        # Debris is faint and away from the subject.
        assert raw[art["debris"]].max() <= 0.3 + HALF


def test_sheer_banding_is_the_only_band_artifact_and_sits_on_the_sheer_fabric():
    hits = 0
    for portrait in make_family("sheer_motion", "calibration", 6, 256):
        stepped = portrait.artifacts["sheer_banding"]
        assert not (stepped & ~true_band(portrait.alpha_true)).any()
        if stepped.any():  # at most half a 0.12 step away from the truth
            assert np.abs(portrait.alpha_raw - portrait.alpha_true)[stepped].max() <= 0.06 + 2 / 255
            hits += 1
    assert 0 < hits < 6  # about half of the portraits


def test_pocket_hair_has_soft_pockets_enclosed_by_opaque_strands():
    for portrait in make_family("pocket_hair", "calibration", 4, 384):
        truth = portrait.alpha_true
        pockets = _enclosed_soft_pockets(truth)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(pockets.astype(np.uint8), connectivity=8)
        cells = np.count_nonzero(stats[1:, cv2.CC_STAT_AREA] >= 20)
        assert pockets.sum() >= 1000 and cells >= 10, (portrait.seed, pockets.sum(), cells)
        levels = truth[pockets]
        assert np.median(levels) < 0.85 and np.percentile(levels, 10) < 0.5
        # Exactly what a naive connectivity fill destroys: the yardstick makes them opaque.
        assert yardstick_filter(truth)[pockets].mean() > 0.95


@pytest.mark.parametrize("size", [256, 384, 768])
def test_pocket_hair_has_a_flat_translucent_hair_volume_10_to_40_px_wide(size):
    scale = size / 384
    for portrait in make_family("pocket_hair", "calibration", 3, size):
        truth = portrait.alpha_true
        volume = (truth >= 0.55 - HALF) & (truth <= 0.8 + HALF)
        local_range = cv2.dilate(truth, np.ones((5, 5), np.uint8)) - cv2.erode(truth, np.ones((5, 5), np.uint8))
        flat = volume & (local_range < 0.06)
        assert flat.sum() > 2000 * scale ** 2, (size, portrait.seed, flat.sum())
        # Half of the narrowest allowed width (10 px at 384) fits inside it somewhere.
        assert _wide_soft(truth, 0.55 - HALF, 0.8 + HALF, int(4 * scale)).any(), (size, portrait.seed)
        # And it is around the head: mostly in the upper half of the frame.
        rows = np.nonzero(flat)[0]
        assert np.median(rows) < 0.5 * size


@pytest.mark.parametrize("size", [256, 384, 768])
def test_sheer_motion_has_wide_flat_translucent_regions(size):
    scale = size / 384
    for portrait in make_family("sheer_motion", "calibration", 3, size):
        truth = portrait.alpha_true
        wide = _wide_soft(truth, 0.15, 0.75, int(5 * scale))  # >= 10 px across (at 384)
        assert wide.sum() > 1500 * scale ** 2, (size, portrait.seed, wide.sum())
        assert 0.2 <= np.median(truth[wide]) <= 0.7


def test_sheer_motion_blur_is_a_box_along_a_line_12_to_45_px_long():
    for seed in range(4):
        impulse = np.zeros((101, 101), np.float32)
        impulse[50, 50] = 1.0
        kernel = sheer_motion._motion_blur(np.random.default_rng(seed), impulse, 1.0)
        assert abs(kernel.sum() - 1.0) < 1e-4
        ys, xs = np.nonzero(kernel > 0.2 * kernel.max())
        length = np.hypot(np.ptp(ys), np.ptp(xs))
        assert 10 <= length <= 48, (seed, length)
        # A half-plane edge becomes a monotone ramp (no ringing, no overshoot).
        edge = np.zeros((200, 400), np.float32)
        edge[:, 100:] = 1.0
        row = sheer_motion._motion_blur(np.random.default_rng(seed), edge, 1.0)[100, :250]
        assert np.all(np.diff(row) >= -1e-5) and row[0] < 1e-6 and row[-1] > 1 - 1e-5


def test_backdrop_sometimes_shares_colour_with_the_subject():
    """Plausible for a colour-based refiner without giving the answer away: in some portraits
    the backdrop is within a small distance of the median hair or clothing colour."""
    close = 0
    for portrait in make_family("pocket_hair", "calibration", 10, 256):
        truth, rgb = portrait.alpha_true, portrait.rgb
        backdrop = np.median(rgb[truth == 0], axis=0)
        opaque = rgb[truth == 1]
        distances = np.linalg.norm(opaque - backdrop, axis=1)
        close += np.mean(distances < 0.12) > 0.02
    assert 0 < close < 10

"""Synthetic portraits: ground truth, Layer-Diffusion-like artifacts, matting metrics."""
from functools import lru_cache

import numpy as np
import pytest
from scipy import ndimage

from comfyui_ld_portrait.pipeline.synthetic import (
    ARTIFACT_FAMILIES,
    POSES,
    REPAIR_TOLERANCE,
    SyntheticPortrait,
    evaluate_refinement,
    make_dataset,
    make_portrait,
    matting_errors,
    pose_for_seed,
)

LEVEL = 1.0 / 255.0
EIGHT = np.ones((3, 3), bool)


@lru_cache(maxsize=None)
def portrait(seed, size=256):
    return make_portrait(seed, size)


def border_labels(labels):
    return set(np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])).tolist()) - {0}


def distance_from(mask):
    """Euclidean distance of every pixel to the nearest True pixel of ``mask``."""
    return ndimage.distance_transform_edt(~mask)


# --- determinism ------------------------------------------------------------------------


def test_same_seed_gives_identical_arrays():
    a = make_portrait(7, 96)
    b = make_portrait(7, 96)
    for name in ("rgb", "alpha_true", "alpha_artifacts", "transition_band", "enclosed_hole"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    for family in ARTIFACT_FAMILIES:
        assert np.array_equal(a.artifact_masks[family], b.artifact_masks[family]), family
    assert (a.seed, a.pose, a.hair_style) == (b.seed, b.pose, b.hair_style)


def test_different_seeds_differ():
    a = make_portrait(7, 96)
    b = make_portrait(8, 96)
    c = make_portrait(10, 96)  # same pose as 7
    assert not np.array_equal(a.alpha_true, b.alpha_true)
    assert not np.array_equal(a.alpha_true, c.alpha_true)
    assert not np.array_equal(a.rgb, c.rgb)
    assert not np.array_equal(a.alpha_artifacts, c.alpha_artifacts)


# --- shapes, dtypes, ranges -----------------------------------------------------------------


@pytest.mark.parametrize("size, shape", [(64, (64, 64)), ((257, 300), (257, 300)),
                                         ((300, 257), (300, 257)), (1024, (1024, 1024))])
def test_shape_dtype_and_range(size, shape):
    p = make_portrait(3, size)
    assert isinstance(p, SyntheticPortrait)
    assert p.size == shape
    assert p.rgb.shape == shape + (3,) and p.rgb.dtype == np.float32
    for alpha in (p.alpha_true, p.alpha_artifacts):
        assert alpha.shape == shape and alpha.dtype == np.float32
        assert alpha.min() >= 0.0 and alpha.max() <= 1.0
        # 8-bit levels, as a PNG would store them
        assert np.allclose(alpha * 255.0, np.round(alpha * 255.0), atol=1e-3)
    assert p.rgb.min() >= 0.0 and p.rgb.max() <= 1.0
    assert set(p.artifact_masks) == set(ARTIFACT_FAMILIES)
    for mask in list(p.artifact_masks.values()) + [p.transition_band, p.enclosed_hole]:
        assert mask.shape == shape and mask.dtype == np.bool_
    # the colour has texture and is not one flat tone inside the portrait
    inside = p.alpha_true >= 1.0
    assert p.rgb[inside].std(axis=0).max() > 0.05


def test_arrays_are_read_only():
    p = portrait(0)
    with pytest.raises(ValueError):
        p.alpha_true[0, 0] = 0.5
    with pytest.raises(ValueError):
        p.artifact_masks["interior"][0, 0] = True


def test_same_seed_keeps_pose_and_hair_across_sizes():
    small, large = make_portrait(4, 128), make_portrait(4, 384)
    assert (small.pose, small.hair_style) == (large.pose, large.hair_style)
    assert small.pose == pose_for_seed(4) == POSES[4 % 3]


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
def test_bad_seed_is_refused(bad):
    with pytest.raises(ValueError, match="seed"):
        make_portrait(bad, 64)


@pytest.mark.parametrize("bad", [16, (64,), (64, 20), "512", (64.0, 64), None])
def test_bad_size_is_refused(bad):
    with pytest.raises(ValueError, match="size"):
        make_portrait(0, bad)


# --- ground truth ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_truth_has_soft_band_and_thin_strands(seed):
    p = portrait(seed, 512)
    alpha = p.alpha_true
    semi = (alpha > 0) & (alpha < 1)
    assert semi.sum() > 1000
    assert np.array_equal(p.transition_band, ndimage.binary_dilation(semi, EIGHT, iterations=2))
    away_from_body = distance_from(alpha >= 1.0)
    # a fuzzy hair boundary several pixels wide
    assert (semi & (away_from_body >= 4)).sum() > 200
    # strands reach well into the background ...
    far = semi & (away_from_body >= 0.03 * 512)
    assert far.sum() > 30
    # ... and they are thin: nearly every far semi pixel has transparent background within 3 px
    near_background = distance_from(alpha <= 0.0) <= 3.0
    assert (near_background[far]).mean() > 0.85


@pytest.mark.parametrize("size", [64, (257, 300), 512])
@pytest.mark.parametrize("seed", range(6))
def test_truth_obeys_the_connectivity_prior(seed, size):
    """Every transition pixel reaches the border or the enclosed hole through non-opaque
    pixels; the portrait is one piece; the body leaves the frame opaque at the bottom only."""
    p = portrait(seed, size)
    alpha = p.alpha_true
    labels, _ = ndimage.label(alpha < 1.0)
    reachable = border_labels(labels) | (set(np.unique(labels[p.enclosed_hole]).tolist()) - {0})
    semi = (alpha > 0) & (alpha < 1)
    assert np.isin(labels[semi], list(reachable)).all()
    _, pieces = ndimage.label(alpha > 0, structure=EIGHT)
    assert pieces == 1
    bottom = alpha[-1]
    assert (bottom >= 1.0).sum() >= 0.2 * alpha.shape[1]
    assert (alpha[0] == 0).all()  # hair and strands stay inside the frame at the top


@pytest.mark.parametrize("size", [128, 256, (300, 257), 512])
def test_enclosed_hole_for_the_arm_on_hip_pose(size):
    for seed in range(12):
        p = portrait(seed, size)
        if seed % 3 == 0:
            assert p.pose == "arm_on_hip"
            hole = p.enclosed_hole
            height, width = p.size
            assert hole.sum() >= 0.003 * height * width, (seed, int(hole.sum()))
            assert (p.alpha_true[hole] == 0).all()
            labels, _ = ndimage.label(p.alpha_true <= 0.0)
            assert not (set(np.unique(labels[hole]).tolist()) & border_labels(labels))
            # soft edges: the hole is surrounded by a transition band before the opaque body
            rim = ndimage.binary_dilation(hole, EIGHT) & ~hole
            assert ((p.alpha_true[rim] > 0) & (p.alpha_true[rim] < 1)).mean() > 0.5
        else:
            assert p.pose != "arm_on_hip"
            assert not p.enclosed_hole.any()


def test_poses_and_hair_styles_vary():
    portraits = [portrait(seed) for seed in range(12)]
    assert {p.pose for p in portraits} == set(POSES)
    assert len({p.hair_style for p in portraits}) >= 2
    # the head size changes with the pose: the opaque area differs a lot between poses
    areas = [float((p.alpha_true >= 1).mean()) for p in portraits]
    assert max(areas) - min(areas) > 0.1


# --- artifacts ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [64, 256, (257, 300)])
@pytest.mark.parametrize("seed", range(6))
def test_every_artifact_family_is_present_and_where_promised(seed, size):
    p = portrait(seed, size)
    truth, damaged = p.alpha_true, p.alpha_artifacts
    masks = p.artifact_masks
    for family in ARTIFACT_FAMILIES:
        assert masks[family].any(), family
    # disjoint, and together exactly the changed pixels, each off by more than the tolerance
    total = sum(masks[f].astype(int) for f in ARTIFACT_FAMILIES)
    assert total.max() == 1
    changed = damaged != truth
    assert np.array_equal(total.astype(bool), changed)
    assert np.abs(damaged - truth)[changed].min() > REPAIR_TOLERANCE
    # the genuine band and strands are never touched
    semi = (truth > 0) & (truth < 1)
    assert np.array_equal(damaged[semi], truth[semi])

    opaque = truth >= 1.0
    interior = masks["interior"]
    assert opaque[interior].all()
    assert (damaged[interior] >= 0.5 - 1e-6).all() and (damaged[interior] <= 0.99 + 1e-6).all()

    pinhole = masks["pinhole"]
    assert opaque[pinhole].all()
    assert (damaged[pinhole] == 0).any()  # fully transparent specular spots
    labels, count = ndimage.label(pinhole, structure=EIGHT)
    # both eyes at least, except in 64 px thumbnails where a small head may leave room for one
    assert count >= (2 if min(truth.shape) >= 128 else 1)
    for index in range(1, count + 1):
        ys, xs = np.nonzero(labels == index)
        assert max(np.ptp(ys), np.ptp(xs)) + 1 <= 8  # 2-6 px spots with their soft rim
    assert opaque[ndimage.binary_dilation(pinhole, EIGHT)].all()  # surrounded by the body

    debris = masks["debris"]
    assert (truth[debris] == 0).all()
    assert (damaged[debris] > 0).all() and (damaged[debris] <= 0.15 + 1e-6).all()
    assert not (ndimage.binary_dilation(truth > 0, EIGHT) & debris).any()  # never touches the portrait

    fade = masks["frame_fade"]
    height = truth.shape[0]
    rows = np.nonzero(fade.any(axis=1))[0]
    assert rows.min() >= height - max(2, round(0.04 * height)) - 1
    assert fade[-1].any()
    assert opaque[fade].all()
    assert (damaged[fade] >= 0.84).all() and (damaged[fade] < 1).all()
    # the fade deepens towards the border
    assert damaged[-1][fade[-1]].mean() < damaged[rows.min()][fade[rows.min()]].mean()


@pytest.mark.parametrize("seed", range(6))
def test_interior_speckle_is_deep_inside_and_some_chains_touch_the_band(seed):
    p = portrait(seed, 256)
    truth = p.alpha_true
    interior = p.artifact_masks["interior"]
    depth = distance_from(truth < 1.0)
    assert (interior & (depth >= 8)).sum() > 50  # deep inside hair, face, clothes
    semi = (truth > 0) & (truth < 1)
    cross = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)
    touching = interior & ndimage.binary_dilation(semi, cross)
    assert touching.any()  # speckle chained to the genuine transition band
    # isolated single pixels and small clusters dominate, as in real decodes
    labels, count = ndimage.label(interior, structure=EIGHT)
    sizes = np.bincount(labels.ravel())[1:]
    assert count > 50 and np.median(sizes) <= 3


def test_frame_fade_sits_in_the_bottom_rows_where_the_body_leaves_the_frame():
    p = portrait(1, 512)
    fade = p.artifact_masks["frame_fade"]
    rows = np.nonzero(fade.any(axis=1))[0]
    assert 0.02 * 512 - 1 <= len(rows) <= 0.04 * 512 + 1
    assert (fade[-1] == (p.alpha_true[-1] >= 1)).mean() > 0.8


# --- make_dataset -----------------------------------------------------------------------------


def test_make_dataset_uses_consecutive_seeds():
    data = make_dataset(4, 64, seed=5)
    assert [p.seed for p in data] == [5, 6, 7, 8]
    assert [p.pose for p in data] == [pose_for_seed(s) for s in (5, 6, 7, 8)]
    assert np.array_equal(data[1].alpha_true, make_portrait(6, 64).alpha_true)
    assert make_dataset(0, 64) == []
    with pytest.raises(ValueError, match="count"):
        make_dataset(-1, 64)


# --- matting_errors ----------------------------------------------------------------------------


def test_matting_errors_on_known_arrays():
    truth = np.ones((10, 10), np.float32)
    pred = np.zeros((10, 10), np.float32)
    errors = matting_errors(pred, truth)
    assert errors["sad"] == pytest.approx(0.1)
    assert errors["mse"] == pytest.approx(1.0)
    assert errors["mse_x1e3"] == pytest.approx(1000.0)
    assert errors["pixels"] == 100

    pred = truth.copy()
    pred[0, :4] = 0.5  # 4 pixels off by 0.5
    errors = matting_errors(pred, truth)
    assert errors["sad"] == pytest.approx(2.0 / 1000)
    assert errors["mse"] == pytest.approx(4 * 0.25 / 100)

    region = np.zeros((10, 10), bool)
    region[0, :2] = True
    region[5, 5] = True
    errors = matting_errors(pred, truth, region)
    assert errors["pixels"] == 3
    assert errors["sad"] == pytest.approx(1.0 / 1000)
    assert errors["mse"] == pytest.approx(2 * 0.25 / 3)

    # 8-bit input is scaled to 0..1
    errors = matting_errors(np.full((4, 4), 255, np.uint8), np.zeros((4, 4), np.float32))
    assert errors["sad"] == pytest.approx(16 / 1000)

    assert matting_errors(pred, truth, np.zeros((10, 10), bool)) == {
        "sad": 0.0, "mse": 0.0, "mse_x1e3": 0.0, "pixels": 0}


def test_matting_errors_refuses_bad_input():
    a = np.zeros((4, 4), np.float32)
    with pytest.raises(ValueError, match="width x height|same size"):
        matting_errors(a, np.zeros((4, 5), np.float32))
    with pytest.raises(ValueError, match="bool"):
        matting_errors(a, a, np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="shape"):
        matting_errors(a, a, np.zeros((4, 5), bool))
    with pytest.raises(ValueError, match="0..1"):
        matting_errors(a + 2.0, a)


# --- evaluate_refinement --------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_set():
    return make_dataset(3, 128, seed=0)


def test_identity_refinement_changes_nothing(small_set):
    report = evaluate_refinement(small_set, lambda alpha: alpha)
    for region in ("whole", "band"):
        values = report[region]
        assert values["sad_after"] == pytest.approx(values["sad_before"])
        assert values["mse_after"] == pytest.approx(values["mse_before"])
    assert report["whole"]["sad_before"] > 0
    assert report["repaired"] == {family: 0.0 for family in ARTIFACT_FAMILIES}
    assert report["band_worse_fraction"] == 0.0
    assert report["count"] == 3
    assert all(report["family_pixels"][f] > 0 for f in ARTIFACT_FAMILIES)


def test_oracle_refinement_repairs_everything(small_set):
    by_content = [(p.alpha_artifacts, p.alpha_true) for p in small_set]

    def oracle(alpha):  # looks the truth up by content: evaluate passes a copy
        for damaged, truth in by_content:
            if np.array_equal(alpha, damaged):
                return truth
        raise AssertionError("unknown alpha")

    report = evaluate_refinement(small_set, oracle)
    assert report["whole"]["sad_after"] == 0.0 and report["band"]["mse_after"] == 0.0
    assert report["repaired"] == {family: 1.0 for family in ARTIFACT_FAMILIES}
    assert report["band_worse_fraction"] == 0.0


def test_destructive_refinement_is_caught(small_set):
    # binarising at 0.5 repairs interior speckle and debris but destroys the soft band
    report = evaluate_refinement(small_set, lambda alpha: (alpha >= 0.5).astype(np.float32))
    assert report["repaired"]["interior"] > 0.9
    assert report["repaired"]["debris"] == 1.0
    assert report["band_worse_fraction"] > 0.3
    assert report["band"]["sad_after"] > report["band"]["sad_before"]


def test_evaluate_accepts_result_objects_tuples_and_uint8(small_set):
    class Result:
        def __init__(self, alpha):
            self.alpha = alpha

    plain = evaluate_refinement(small_set, lambda a: a)
    as_object = evaluate_refinement(small_set, lambda a: Result(a))
    as_tuple = evaluate_refinement(small_set, lambda a: (a, np.zeros(a.shape, bool), {}))
    as_uint8 = evaluate_refinement(small_set, lambda a: np.round(a * 255).astype(np.uint8))
    assert plain["whole"] == as_object["whole"] == as_tuple["whole"]
    assert as_uint8["whole"]["sad_after"] == pytest.approx(plain["whole"]["sad_after"], abs=1e-6)


def test_evaluate_refinement_gets_a_writable_copy(small_set):
    before = [p.alpha_artifacts.copy() for p in small_set]

    def scribble(alpha):
        alpha[:] = 1.0
        return alpha

    evaluate_refinement(small_set, scribble)
    for p, original in zip(small_set, before):
        assert np.array_equal(p.alpha_artifacts, original)


def test_evaluate_refinement_refuses_bad_input(small_set):
    with pytest.raises(ValueError, match="at least one"):
        evaluate_refinement([], lambda a: a)
    with pytest.raises(ValueError, match="shape"):
        evaluate_refinement(small_set, lambda a: a[:-1])

"""Issue 9's benchmark, small: the independent synthetic families, the yardstick filter, and
refine_alpha against both on a few held-out (evaluation-half) portraits per family."""
from dataclasses import fields

import cv2
import numpy as np
import pytest

from comfyui_ld_portrait.pipeline.synthetic_families import (
    FAMILIES, enclosed_holes, family_split, make_family, score_methods, summarise, true_band,
    yardstick_filter)
from comfyui_ld_portrait.refine.connectivity import refine_alpha
from comfyui_ld_portrait.refine.refine_params import REFINE_PRESETS, RefineParams, preset_params

METHODS = {
    "raw": lambda alpha, rgb: alpha,
    "yardstick": lambda alpha, rgb: yardstick_filter(alpha),
    "ours": lambda alpha, rgb: refine_alpha(alpha).alpha,
}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family_scores(request):
    portraits = make_family(request.param, "evaluation", 3, 384)
    return request.param, score_methods(portraits, METHODS)


def test_refinement_beats_the_yardstick_on_held_out_portraits(family_scores):
    name, scores = family_scores
    totals = summarise(scores)
    raw, yard, ours = totals["raw"], totals["yardstick"], totals["ours"]
    # Issue 9 asks for >= 95% on the whole evaluation half (benchmarks/bench_refine_quality.py);
    # three portraits vary more, so the test asks for 90%.
    assert ours["sad"] <= 0.10 * raw["sad"], (name, ours["sad"], raw["sad"])
    assert ours["band_sad"] < yard["band_sad"], name
    assert ours["hole_max"] <= 0.01, name
    for index, (mine, theirs) in enumerate(zip(scores["ours"], scores["yardstick"])):
        assert mine["sad"] < theirs["sad"], (name, index)


def test_band_is_no_worse_than_raw_on_held_out_portraits(family_scores):
    # Issue 9: band SAD ratio <= 1.00 on the evaluation half (the benchmark measures 0.996 for
    # fourier_fur and 0.83 for metaball_strands over 24 portraits each).
    name, scores = family_scores
    totals = summarise(scores)
    assert totals["ours"]["band_sad"] <= totals["raw"]["band_sad"], name


def test_families_are_deterministic_and_halves_disjoint():
    assert not set(family_split("calibration", 50)) & set(family_split("evaluation", 50))
    for name, make in FAMILIES.items():
        first, again = make(7, 128), make(7, 128)
        assert np.array_equal(first.alpha_raw, again.alpha_raw), name
        assert not np.array_equal(first.alpha_true, make(8, 128).alpha_true), name
        # 8-bit levels, like a PNG.
        assert np.abs(first.alpha_raw * 255 - np.round(first.alpha_raw * 255)).max() < 1e-3, name
    with pytest.raises(ValueError, match="half"):
        family_split("test", 3)
    with pytest.raises(ValueError, match="unknown family"):
        make_family("nope", "evaluation", 1)


def test_strand_family_artifacts_also_hit_the_soft_band_and_hair():
    hits = 0
    for portrait in make_family("metaball_strands", "calibration", 3, 256):
        band = true_band(portrait.alpha_true)
        damaged = np.abs(portrait.alpha_raw - portrait.alpha_true) > 1.5 / 255
        hits += np.count_nonzero(damaged & band)
        assert portrait.artifacts["hair_flicker"].any()
    assert hits > 100


def test_yardstick_follows_the_five_steps():
    size = 200
    alpha = np.zeros((size, size), np.float32)
    cv2.circle(alpha, (100, 120), 70, 1.0, -1)
    alpha = cv2.GaussianBlur(alpha, (0, 0), 1.5)
    alpha[100:130, 90:120] = 0.0  # enclosed hole of 900 px >= 0.1% of the image: background
    alpha[150, 100] = 0.0  # pinhole: not background, filled
    alpha[80, 60] = 0.9  # speckle deep inside: not transition, filled
    alpha[5:8, 5:8] = 0.3  # tiny island far from the body: debris
    out = yardstick_filter(alpha)
    assert np.all(out[100:130, 90:120] == 0.0)
    assert out[150, 100] == 1.0 and out[80, 60] == 1.0
    assert np.all(out[5:8, 5:8] == 0.0)
    radius = np.hypot(*(np.mgrid[:size, :size] - np.array([120, 100])[:, None, None]))
    edge = (alpha > 0.05) & (alpha < 0.8) & (radius > 60) & (radius < 80)
    np.testing.assert_array_equal(out[edge], alpha[edge])  # the soft edge is transition: kept
    assert enclosed_holes((out > 0.5).astype(np.float32))[115, 105]


def test_refine_params_fields_carry_range_and_help():
    for spec in fields(RefineParams):
        assert {"min", "max", "doc"} <= set(spec.metadata), spec.name
        assert len(spec.metadata["doc"].split()) >= 6, spec.name
    with pytest.raises(ValueError, match=r"band_width \(0.0\.\.65536.0\)"):
        RefineParams.from_kwargs(band_widht=3)
    with pytest.raises(ValueError, match=r"shelf_rise=1.5 is outside its range \[0.0, 1.0\]"):
        RefineParams(shelf_rise=1.5).validate()
    with pytest.raises(ValueError, match="fix_interior must be True or False"):
        RefineParams(fix_interior="yes").validate()
    for name in REFINE_PRESETS:
        preset_params(name).validate()
    with pytest.raises(ValueError, match="unknown refinement preset"):
        preset_params("extreme")

"""Simple and advanced refine / gate nodes: the simple forms call the library with a preset, the
advanced forms build every widget from the library's field metadata."""
import json
from dataclasses import fields

import cv2
import numpy as np
import pytest
import torch

from comfyui_ld_portrait.nodes.matte import (
    LDPConnectivityRefine,
    LDPQualityGate,
    LDPQualityGateSimple,
    LDPRefineAlpha,
)
from comfyui_ld_portrait.refine.connectivity import refine_alpha
from comfyui_ld_portrait.refine.quality import QUALITY_PRESETS, assess_quality, quality_preset
from comfyui_ld_portrait.refine.refine_params import REFINE_PRESETS, RefineParams, preset_params

SIZE = 256


def _bust(cx=SIZE // 2, seed=0, blotch=True) -> np.ndarray:
    """A soft-edged head and shoulders (independent of the refiner) with a blotch dimming the body
    where it meets the outline and a few interior specks."""
    mask = np.zeros((SIZE, SIZE), np.uint8)
    cv2.circle(mask, (cx, 80), 38, 1, -1)
    cv2.rectangle(mask, (cx - 16, 100), (cx + 16, 190), 1, -1)  # neck
    cv2.ellipse(mask, (cx, SIZE + 30), (85, 110), 0, 0, 360, 1, -1)
    alpha = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 1.2)
    if blotch:
        region = np.zeros_like(mask)
        cv2.circle(region, (cx - 38, 80), 7, 1, -1)
        alpha[region.astype(bool) & (alpha > 0)] *= 0.7
        rng = np.random.default_rng(seed)
        rows, cols = rng.integers(200, 245, 30), rng.integers(cx - 40, cx + 40, 30)
        alpha[rows, cols] = 0.9
    return (np.round(alpha * 255) / 255).astype(np.float32)


def _image(alpha) -> torch.Tensor:
    colour = np.dstack([alpha * 0.8, alpha * 0.5, alpha * 0.3]).astype(np.float32)
    return torch.from_numpy(colour)[None]


def _mask(*alphas) -> torch.Tensor:
    return torch.from_numpy(np.stack(alphas))


def test_simple_refine_is_the_library_with_the_chosen_preset():
    alpha = _bust()
    # A flat dimming of 0.85 reaching the left shoulder's outline (standard fills it, gentle
    # keeps it) and one of 0.7 reaching the right shoulder's (only strong fills it; standard
    # keeps it as uncertain).
    shoulder = alpha[210:240, 50:90]
    shoulder[shoulder > 0.85] = 0.85
    shoulder = alpha[210:240, SIZE - 90:SIZE - 50]
    shoulder[shoulder > 0.7] = 0.7
    node = LDPRefineAlpha()
    outputs = {}
    for strength in REFINE_PRESETS:
        refined, changed, error_map, stats, uncertain = node.refine(_image(alpha), _mask(alpha),
                                                                    strength=strength)
        expected = refine_alpha(alpha, preset_params(strength))
        np.testing.assert_array_equal(refined[0].numpy(), expected.alpha)
        np.testing.assert_array_equal(changed[0].numpy() > 0.5, expected.changed)
        np.testing.assert_array_equal(uncertain[0].numpy() > 0.5, expected.uncertain)
        assert error_map.shape == (1, SIZE, SIZE, 3)
        assert json.loads(stats)[0]["changed_pixels"] == int(expected.changed.sum())
        outputs[strength] = int(expected.changed.sum())
    # Strengths are ordered: gentle repairs least, strong most.
    assert outputs["gentle"] < outputs["standard"] < outputs["strong"]


def test_simple_refine_declares_image_alpha_and_a_strength_choice():
    spec = LDPRefineAlpha.INPUT_TYPES()
    assert list(spec["required"]) == ["image", "alpha", "strength"]
    choices, options = spec["required"]["strength"]
    assert choices == list(REFINE_PRESETS) and options["default"] == "standard"
    assert LDPRefineAlpha.RETURN_NAMES == LDPConnectivityRefine.RETURN_NAMES
    inverted = LDPRefineAlpha().refine(_image(_bust()), 1.0 - _mask(_bust()), invert=True)
    plain = LDPRefineAlpha().refine(_image(_bust()), _mask(_bust()))
    np.testing.assert_array_equal(inverted[1].numpy(), plain[1].numpy())


def test_advanced_refine_widgets_come_from_the_field_metadata():
    widgets = LDPConnectivityRefine.INPUT_TYPES()["optional"]
    specs = {spec.name: spec for spec in fields(RefineParams)}
    exposed = [name for name in widgets if name not in ("image", "invert")]
    # Every field is a widget; new fields come after the original ones (saved UI workflows
    # store widget values by position). The current parameter set started the order afresh.
    assert set(exposed) == set(specs)
    assert exposed[:3] == ["background_level", "see_through_level", "deep_fill_level"]
    assert exposed[-5:] == ["fix_interior", "fix_pinholes", "remove_debris", "fix_frame_fade", "soft_company_fraction"]
    for name in exposed:
        kind, options = widgets[name]
        assert options["tooltip"].startswith(specs[name].metadata["doc"]), name
        if kind != "BOOLEAN":
            assert options["min"] == specs[name].metadata["min"], name
            assert options["max"] <= specs[name].metadata["max"], name


def test_advanced_refine_zero_means_automatic_and_unknown_names_fail():
    alpha = _bust()
    node = LDPConnectivityRefine()
    automatic = node.refine(_mask(alpha), reach=0.0, hole_min_area=0)
    np.testing.assert_array_equal(automatic[0][0].numpy(), refine_alpha(alpha).alpha)
    interior_off = node.refine(_mask(alpha), fix_interior=False)
    assert interior_off[1].sum() < automatic[1].sum()
    with pytest.raises(ValueError, match="reach"):
        node.refine(_mask(alpha), raech=3.0)


def test_simple_gate_applies_the_strictness_presets():
    off_center = _bust(cx=70, blotch=False)  # centre offset about 0.23 of the width
    node = LDPQualityGateSimple()
    verdicts = {}
    for strictness in QUALITY_PRESETS:
        keep, kept, reasons, verdict = node.judge(_mask(off_center), strictness=strictness)
        expected = assess_quality(off_center, **quality_preset(strictness).to_dict())
        assert json.loads(verdict)[0] == json.loads(expected.to_json())
        verdicts[strictness] = keep
    assert verdicts["lenient"] and not verdicts["strict"]
    spec = LDPQualityGateSimple.INPUT_TYPES()
    assert list(spec["required"]) == ["alpha", "strictness"]
    assert set(spec["optional"]) == {"raw_alpha", "changed", "invert", "uncertain"}


def test_advanced_gate_keeps_every_threshold_widget():
    from comfyui_ld_portrait.refine.quality import QualityThresholds

    widgets = LDPQualityGate.INPUT_TYPES()["optional"]
    assert {spec.name for spec in fields(QualityThresholds)} <= set(widgets)
    with pytest.raises(ValueError, match="unknown quality threshold"):
        LDPQualityGate().judge(_mask(_bust()), max_peple=2)

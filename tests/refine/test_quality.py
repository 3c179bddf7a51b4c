"""Quality verdict: real Layer Diffusion outputs and synthetic mattes that trigger each reason."""
import json

import cv2
import numpy as np
import pytest

from comfyui_ld_portrait.dataset.imagefiles import read_rgba
from comfyui_ld_portrait.refine.quality import (
    DEFAULT_THRESHOLDS,
    REASON_CODES,
    QualityThresholds,
    QualityVerdict,
    assess_quality,
)

SIZE = 256


def _soften(mask: np.ndarray) -> np.ndarray:
    """Binary mask -> float alpha with an anti-aliased few-pixel soft edge."""
    return cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 1.5)


def _bust(height=SIZE, width=SIZE, cx=None, top=40) -> np.ndarray:
    """A head-and-shoulders silhouette (binary) leaving the frame at the bottom only."""
    cx = width // 2 if cx is None else cx
    mask = np.zeros((height, width), np.uint8)
    head_r = height // 6
    cv2.circle(mask, (cx, top + head_r), head_r, 1, -1)
    cv2.ellipse(mask, (cx, height), (int(height * 0.38), int(height * 0.58)), 0, 0, 360, 1, -1)
    cv2.rectangle(mask, (cx - head_r // 2, top + head_r), (cx + head_r // 2, height), 1, -1)  # neck
    return mask.astype(bool)


def _portrait(**kwargs) -> np.ndarray:
    return _soften(_bust(**kwargs))


def _reasons(alpha, **kwargs) -> list:
    return assess_quality(alpha, **kwargs).reasons


# --- real data ---------------------------------------------------------------------------

def test_real_layer_diffusion_portrait_is_kept(layerdiffuse_dir):
    _, alpha = read_rgba(layerdiffuse_dir / "i2i_0_transparent.png")
    verdict = assess_quality(alpha, raw_alpha=alpha)
    assert verdict.keep, verdict.messages
    assert verdict.reasons == [] and verdict.messages == []
    assert verdict.measures["person_count"] == 1
    assert verdict.measures["soft_edge_source"] == "raw_alpha"
    assert verdict.measures["semi_per_contour"] > 5  # hair gives a wide soft band


def test_real_portrait_refined_with_its_changed_mask_is_kept(layerdiffuse_dir):
    from comfyui_ld_portrait.refine.connectivity import refine_alpha

    _, raw = read_rgba(layerdiffuse_dir / "i2i_0_transparent.png")
    result = refine_alpha(raw)
    verdict = assess_quality(result.alpha, raw_alpha=raw, changed=result.changed)
    assert verdict.keep, verdict.messages
    assert 0 < verdict.measures["changed_fraction"] < DEFAULT_THRESHOLDS["max_changed_fraction"]


def test_clean_hand_cut_portrait_is_kept(layerdiffuse_dir):
    _, alpha = read_rgba(layerdiffuse_dir / "causal_cut.png")
    for raw in (None, alpha):
        verdict = assess_quality(alpha, raw_alpha=raw)
        assert verdict.keep, verdict.messages
    # Nearly binary but anti-aliased: must stay above the "no soft edge at all" floor.
    assert 1.0 < verdict.measures["semi_per_contour"] < 5.0


def test_glass_bottle_is_rejected_as_translucent(layerdiffuse_dir):
    _, alpha = read_rgba(layerdiffuse_dir / "t2i_0_transparent.png")
    assert alpha.shape == (1152, 896)
    verdict = assess_quality(alpha, raw_alpha=alpha)
    assert not verdict.keep
    assert "too_transparent" in verdict.reasons
    assert verdict.measures["translucent_fraction"] > 0.8
    message = verdict.messages[verdict.reasons.index("too_transparent")]
    assert "semi-transparent" in message
    # A curator who wants glass can relax the threshold and keep it.
    assert assess_quality(alpha, max_translucent_fraction=0.95).keep


# --- synthetic mattes, one per reason ---------------------------------------------------------

def test_synthetic_bust_is_kept():
    verdict = assess_quality(_portrait())
    assert verdict.keep, verdict.messages
    assert verdict.measures["bottom_contact"] > 0.3  # leaving the frame at the bottom is fine
    assert verdict.measures["center_offset"] < 0.01


def test_empty_and_near_empty_mattes():
    assert _reasons(np.zeros((SIZE, SIZE), np.float32)) == ["empty_matte"]
    speck = np.zeros((SIZE, SIZE), np.float32)
    speck[100:105, 100:105] = 1.0  # 25 px = 0.04 % of the image
    verdict = assess_quality(speck)
    assert verdict.reasons == ["empty_matte"]
    assert verdict.measures["foreground_fraction"] == pytest.approx(25 / SIZE**2)


def test_all_opaque_matte_reasons_exactly():
    verdict = assess_quality(np.ones((SIZE, SIZE), np.float32))
    # No contour at all: the soft-edge ratio is undefined (None), not a division by zero.
    assert verdict.measures["semi_per_contour"] is None
    assert verdict.reasons == ["no_background", "cut_off_top", "cut_off_left", "cut_off_right"]


def test_small_subject():
    mask = np.zeros((SIZE, SIZE), np.uint8)
    cv2.circle(mask, (128, 200), 14, 1, -1)  # ~1 % of the image
    assert _reasons(_soften(mask)) == ["too_small"]


def test_two_people():
    mask = _bust(cx=70) | _bust(cx=186)
    mask[:, 126:130] = False  # keep the two shoulders apart
    verdict = assess_quality(_soften(mask))
    assert "multiple_people" in verdict.reasons
    assert verdict.measures["person_count"] == 2
    assert assess_quality(_soften(mask), max_people=2).reasons.count("multiple_people") == 0


def test_fragmented_matte():
    mask = _bust()
    for x in range(8, SIZE - 8, 16):  # two rows of separate debris blobs above the head
        for y in (10, 26):
            cv2.circle(mask.view(np.uint8), (x, y), 5, 1, -1)
    verdict = assess_quality(_soften(mask))
    assert verdict.reasons == ["fragmented"]
    assert verdict.measures["person_count"] == 1
    assert verdict.measures["fragment_fraction"] > DEFAULT_THRESHOLDS["max_fragment_fraction"]


def test_cut_off_top():
    assert _reasons(_portrait(top=-20)) == ["cut_off_top"]


def test_cut_off_left_and_right():
    left = np.zeros((SIZE, SIZE), bool)
    left[60:, :150] = True
    cv2.circle(left.view(np.uint8), (100, 60), 40, 1, -1)
    assert "cut_off_left" in _reasons(_soften(left), max_center_offset=0.5)
    right = left[:, ::-1]
    reasons = _reasons(_soften(right), max_center_offset=0.5)
    assert "cut_off_right" in reasons and "cut_off_left" not in reasons


def test_not_centered():
    alpha = _portrait(width=3 * SIZE, cx=3 * SIZE - 120)  # subject near the right edge
    verdict = assess_quality(alpha)
    assert verdict.reasons == ["not_centered"]
    assert verdict.measures["center_offset"] > 0.3


def test_not_touching_bottom_only_when_enabled():
    mask = np.zeros((SIZE, SIZE), np.uint8)
    cv2.ellipse(mask, (128, 120), (60, 90), 0, 0, 360, 1, -1)
    alpha = _soften(mask)
    assert assess_quality(alpha).keep
    assert _reasons(alpha, min_bottom_contact=0.1) == ["not_touching_bottom"]


def test_too_many_corrections():
    alpha = _portrait()
    foreground = alpha >= 0.5
    changed = np.zeros_like(foreground)
    rows = np.nonzero(foreground.any(axis=1))[0]
    changed[rows[: len(rows) * 2 // 3]] = True
    changed &= foreground  # two thirds of the foreground rows rewritten
    verdict = assess_quality(alpha, changed=changed)
    assert verdict.reasons == ["too_many_corrections"]
    assert verdict.measures["changed_fraction"] > 0.4
    few = np.zeros_like(changed)
    few[foreground.nonzero()[0][:50], foreground.nonzero()[1][:50]] = True
    assert assess_quality(alpha, changed=few).keep
    # Float 0/1 masks (ComfyUI MASK) count the same as bool masks.
    assert assess_quality(alpha, changed=changed.astype(np.float32)).measures == verdict.measures


def test_nearly_binary_decode():
    binary = _bust().astype(np.float32)
    verdict = assess_quality(binary)
    assert verdict.reasons == ["nearly_binary"]
    assert verdict.measures["semi_per_contour"] == 0.0
    # The decoder's (raw) alpha decides, not the refined one.
    assert _reasons(_portrait(), raw_alpha=binary) == ["nearly_binary"]
    assert assess_quality(binary, raw_alpha=_portrait()).keep
    assert assess_quality(binary, min_semi_per_contour=0).keep


def test_too_transparent():
    alpha = _portrait() * 0.45  # a glassy body ...
    core = np.zeros((SIZE, SIZE), np.uint8)
    cv2.circle(core, (128, 180), 30, 1, -1)
    alpha[core > 0] = 1.0  # ... with an opaque core, so it is not empty
    verdict = assess_quality(alpha)
    assert "too_transparent" in verdict.reasons
    assert verdict.measures["translucent_fraction"] > 0.5


def test_low_resolution():
    small = cv2.resize(_portrait(), (128, 128), interpolation=cv2.INTER_AREA)
    assert _reasons(small) == ["low_resolution"]
    assert assess_quality(small, min_side=0).keep


# --- input handling, determinism, serialisation -----------------------------------------------

def test_uint8_and_float_give_the_same_verdict():
    alpha = _portrait()
    as_uint8 = (alpha * 255 + 0.5).astype(np.uint8)
    quantised = as_uint8.astype(np.float32) / 255
    assert assess_quality(as_uint8).to_dict() == assess_quality(quantised).to_dict()


def test_verdict_is_json_and_complete():
    verdict = assess_quality(_portrait(), changed=np.zeros((SIZE, SIZE), bool))
    assert isinstance(verdict, QualityVerdict)
    data = json.loads(verdict.to_json())
    assert data["keep"] is True and data["reasons"] == []
    assert data["thresholds"] == DEFAULT_THRESHOLDS
    assert data["measures"]["changed_fraction"] == 0.0
    assert set(data) == {"keep", "reasons", "messages", "measures", "thresholds"}
    with pytest.raises(Exception):
        verdict.keep = False  # frozen


def test_deterministic():
    alpha = _soften(_bust() | _bust(cx=40))
    assert assess_quality(alpha).to_json() == assess_quality(alpha.copy()).to_json()


def test_every_reason_code_has_a_message():
    verdict = assess_quality(np.ones((SIZE, SIZE), np.float32), min_side=512)
    assert len(verdict.messages) == len(verdict.reasons) >= 4
    assert all(code in REASON_CODES for code in verdict.reasons)
    assert all(isinstance(message, str) and len(message) > 20 for message in verdict.messages)


@pytest.mark.parametrize("bad", [
    np.full((SIZE, SIZE), np.nan, np.float32),
    np.full((SIZE, SIZE), np.inf, np.float32),
    np.zeros((SIZE, SIZE, 3), np.float32),
    np.zeros((SIZE,), np.float32),
    np.full((SIZE, SIZE), 2.0, np.float32),
    np.zeros((SIZE, SIZE), np.int32),
])
def test_bad_alpha_raises_value_error(bad):
    with pytest.raises(ValueError, match="alpha"):
        assess_quality(bad)


def test_bad_companions_and_thresholds_raise_value_error():
    alpha = _portrait()
    with pytest.raises(ValueError, match="raw_alpha"):
        assess_quality(alpha, raw_alpha=np.zeros((10, 10), np.float32))
    with pytest.raises(ValueError, match="changed"):
        assess_quality(alpha, changed=np.zeros((10, 10), bool))
    with pytest.raises(ValueError, match="changed"):
        assess_quality(alpha, changed=np.full(alpha.shape, np.nan))
    with pytest.raises(ValueError, match="unknown quality threshold"):
        assess_quality(alpha, max_peple=2)
    with pytest.raises(ValueError, match="max_top_contact"):
        assess_quality(alpha, max_top_contact=1.5)
    with pytest.raises(ValueError, match="max_people"):
        assess_quality(alpha, max_people=1.5)
    with pytest.raises(ValueError, match="opaque_level"):
        QualityThresholds(opaque_level=float("nan"))


def test_one_pixel_image_gives_a_defined_verdict():
    assert _reasons(np.zeros((1, 1), np.float32)) == ["low_resolution", "empty_matte"]
    verdict = assess_quality(np.ones((1, 1), np.float32))
    assert not verdict.keep and verdict.reasons[:2] == ["low_resolution", "no_background"]


# --- measure + judge split ------------------------------------------------------------------

def test_measure_then_judge_equals_assess_and_rejudging_needs_no_image():
    from comfyui_ld_portrait.refine.quality import judge_quality, measure_quality

    alpha = _portrait()
    measures = measure_quality(alpha)
    assert json.loads(json.dumps(measures)) == measures  # storable as it is
    assert judge_quality(measures).to_dict() == assess_quality(alpha).to_dict()
    # Re-judging the stored measures with a stricter decision threshold rejects the same matte.
    strict = QualityThresholds(min_subject_fraction=measures["subject_fraction"] + 0.01)
    verdict = judge_quality(json.loads(json.dumps(measures)), strict)
    assert verdict.reasons == ["too_small"]
    assert verdict.thresholds["min_subject_fraction"] == strict.min_subject_fraction


def test_measure_uses_only_the_measuring_thresholds():
    from comfyui_ld_portrait.refine.quality import measure_quality

    alpha = _portrait()
    # A decision threshold does not change the measures; a measuring one does.
    assert measure_quality(alpha, thresholds=QualityThresholds(max_people=5)) == measure_quality(alpha)
    soft = measure_quality(alpha, thresholds=QualityThresholds(opaque_level=0.99))
    assert soft["foreground_fraction"] < measure_quality(alpha)["foreground_fraction"]

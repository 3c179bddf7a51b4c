"""The uncertain outcome downstream of refinement: the gate's 'uncertain_matte' reason
and the uncertain colour of the error map and its panel."""
import dataclasses

import numpy as np
import pytest

from comfyui_ld_portrait.dataset.imagefiles import read_rgba
from comfyui_ld_portrait.refine.connectivity import refine_alpha
from comfyui_ld_portrait.base.errormap import (ERROR_RED, LEGEND_COLOURS, PANEL_TITLES,
                                               PANEL_TITLES_WITH_UNCERTAIN, RED_LEGEND,
                                               UNCERTAIN_CYAN, UNCERTAIN_LEGEND,
                                               alpha_bar_error_view, error_map, error_panel)
from comfyui_ld_portrait.refine.quality import (PORTRAIT_FLOOR, QUALITY_PRESETS, REASON_CODES,
                                                QualityThresholds, assess_quality, judge_quality,
                                                measure_quality, quality_preset)
from helpers.veiled_bust import veiled_bust

CYAN = np.array(UNCERTAIN_CYAN, np.float32)
RED = np.array(ERROR_RED, np.float32)


def _bust(veil: float | None = None) -> np.ndarray:
    return veiled_bust(veil)


def _share_of_portrait(alpha: np.ndarray, share: float) -> np.ndarray:
    """An uncertain mask covering the first ``share`` of the portrait's pixels (scan order)."""
    portrait = np.flatnonzero(alpha > PORTRAIT_FLOOR)
    mask = np.zeros(alpha.size, bool)
    mask[portrait[:int(round(share * portrait.size))]] = True
    return mask.reshape(alpha.shape)


# --- the gate ------------------------------------------------------------------------------

def test_the_reason_code_and_its_threshold_exist():
    assert "uncertain_matte" in REASON_CODES
    field = {spec.name: spec for spec in dataclasses.fields(QualityThresholds)}["max_uncertain_fraction"]
    assert field.default == 0.1
    assert (field.metadata["min"], field.metadata["max"]) == (0.0, 1.0)
    assert "uncertain_matte" in field.metadata["doc"]
    # Last, so the advanced gate node's existing widgets keep their positions.
    assert dataclasses.fields(QualityThresholds)[-1].name == "max_uncertain_fraction"
    with pytest.raises(ValueError, match="max_uncertain_fraction"):
        QualityThresholds(max_uncertain_fraction=1.5)


def test_without_an_uncertain_mask_the_check_is_skipped():
    alpha = _bust()
    measures = measure_quality(alpha, thresholds=QualityThresholds(min_side=128))
    assert measures["uncertain_fraction"] is None and measures["uncertain_pixels"] is None
    verdict = judge_quality(measures, QualityThresholds(min_side=128, max_uncertain_fraction=0.0))
    assert "uncertain_matte" not in verdict.reasons


def test_rejects_above_the_threshold_and_keeps_at_or_below_it():
    alpha = _bust()
    below, above = _share_of_portrait(alpha, 0.09), _share_of_portrait(alpha, 0.12)
    kept = assess_quality(alpha, uncertain=below, min_side=128)
    assert kept.keep, kept.messages
    assert kept.measures["uncertain_fraction"] == pytest.approx(0.09, abs=1e-3)
    rejected = assess_quality(alpha, uncertain=above, min_side=128)
    assert rejected.reasons == ["uncertain_matte"]
    assert "12.00%" in rejected.messages[0] and "10.00%" in rejected.messages[0]
    assert rejected.measures["uncertain_pixels"] == int(above.sum())
    # The threshold is a keyword like every other; 1 disables the check.
    assert assess_quality(alpha, uncertain=above, min_side=128, max_uncertain_fraction=0.15).keep
    assert assess_quality(alpha, uncertain=np.ones_like(above), min_side=128,
                          max_uncertain_fraction=1.0).keep


def test_the_share_is_of_the_decoders_portrait_pixels():
    alpha = _bust()
    noisy = alpha.copy()
    noisy[:40, :40] = 2.0 / 255.0  # background noise of 2 codes is no portrait
    uncertain = _share_of_portrait(alpha, 0.2)
    portrait = int(np.count_nonzero(alpha > PORTRAIT_FLOOR))
    for matte in (alpha, noisy, np.round(noisy * 255).astype(np.uint8)):
        measures = measure_quality(matte, uncertain=uncertain)
        assert measures["uncertain_fraction"] == pytest.approx(uncertain.sum() / portrait)
    # raw_alpha is the decoder's view: the refined alpha (here all opaque) does not change it.
    refined = np.ones_like(alpha)
    measures = measure_quality(refined, raw_alpha=alpha, uncertain=uncertain)
    assert measures["uncertain_fraction"] == pytest.approx(uncertain.sum() / portrait)
    # A float mask counts values above 0.5, as 'changed' does.
    as_float = measure_quality(alpha, uncertain=uncertain.astype(np.float32))
    assert as_float["uncertain_fraction"] == pytest.approx(uncertain.sum() / portrait)
    with pytest.raises(ValueError, match="same size|shape"):
        measure_quality(alpha, uncertain=uncertain[:10])


def test_stored_measures_without_the_uncertain_share_rejudge_without_the_key():
    alpha = _bust()
    measures = measure_quality(alpha, thresholds=QualityThresholds(min_side=128))
    del measures["uncertain_fraction"], measures["uncertain_pixels"]
    verdict = judge_quality(measures, QualityThresholds(min_side=128, max_uncertain_fraction=0.0))
    assert verdict.keep, verdict.messages


def test_presets_order_the_uncertain_threshold():
    values = {name: quality_preset(name).max_uncertain_fraction for name in QUALITY_PRESETS}
    assert values["strict"] < values["standard"] < values["lenient"]


def test_refinement_marks_a_wide_veil_uncertain_and_the_gate_rejects_it():
    plain, veiled = _bust(), _bust(veil=0.65)
    for alpha, expected in ((plain, []), (veiled, ["uncertain_matte"])):
        result = refine_alpha(alpha)
        verdict = assess_quality(result.alpha, raw_alpha=alpha, changed=result.changed,
                                 uncertain=result.uncertain, min_side=128)
        assert verdict.reasons == expected, verdict.messages
        # The gate's share agrees with refinement's own statistic (the portrait's pixels are
        # counted slightly differently: decoder alpha above 2 codes, or not true background).
        assert verdict.measures["uncertain_fraction"] == pytest.approx(
            result.stats["uncertain_fraction"], rel=0.02, abs=1e-4)
    # Without the mask the same veiled matte is kept: the reason is the uncertain share alone.
    result = refine_alpha(veiled)
    assert assess_quality(result.alpha, raw_alpha=veiled, changed=result.changed, min_side=128).keep


@pytest.mark.parametrize("name", ["i2i_0_transparent.png", "causal_cut.png"])
def test_real_portraits_are_kept_with_their_uncertain_mask(layerdiffuse_dir, name):
    _, alpha = read_rgba(layerdiffuse_dir / name)
    result = refine_alpha(alpha)
    verdict = assess_quality(result.alpha, raw_alpha=alpha, changed=result.changed,
                             uncertain=result.uncertain)
    assert "uncertain_matte" not in verdict.reasons
    # The default's basis: real portraits measure far below it (0.0002 and 0 when chosen).
    assert verdict.measures["uncertain_fraction"] < 0.5 * QualityThresholds().max_uncertain_fraction


# --- the error map ---------------------------------------------------------------------------

@pytest.fixture
def scene():
    rgb = np.full((6, 8, 3), 0.4, np.float32)
    alpha = np.ones((6, 8), np.float32)
    alpha[:, :2] = 0.0
    alpha[0, 2] = alpha[2, 2] = alpha[3, 4] = 0.5
    changed = np.zeros((6, 8), bool)
    changed[2, 2] = changed[1, 5] = True
    uncertain = np.zeros((6, 8), bool)
    uncertain[3, 4] = uncertain[4, 6] = True
    uncertain[2, 2] = True  # both: changed wins
    return rgb, alpha, changed, uncertain


def test_uncertain_has_its_own_colour():
    colours = {tuple(ERROR_RED), tuple(UNCERTAIN_CYAN), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0)}
    assert len(colours) == 4
    assert LEGEND_COLOURS == {RED_LEGEND: ERROR_RED, UNCERTAIN_LEGEND: UNCERTAIN_CYAN}
    assert "uncertain" in UNCERTAIN_LEGEND and "cyan" in UNCERTAIN_LEGEND


def test_error_map_paints_uncertain_cyan_and_changed_red(scene):
    rgb, alpha, changed, uncertain = scene
    plain = error_map(rgb, alpha, changed)
    marked = error_map(rgb, alpha, changed, uncertain=uncertain)
    np.testing.assert_array_equal(marked[3, 4], CYAN)
    np.testing.assert_array_equal(marked[4, 6], CYAN)
    np.testing.assert_array_equal(marked[2, 2], RED)  # changed wins over uncertain
    np.testing.assert_array_equal(marked[1, 5], RED)
    others = ~uncertain | changed
    np.testing.assert_array_equal(marked[others], plain[others])
    # The dimmed portrait never reaches the cyan: the marks stand out.
    assert not np.any(np.all(plain == CYAN, axis=-1))


def test_alpha_bar_h_paints_uncertain_cyan(scene):
    _, alpha, changed, uncertain = scene
    view = alpha_bar_error_view(alpha, changed, uncertain)
    np.testing.assert_array_equal(view[3, 4], CYAN)  # semi, kept unjudged
    np.testing.assert_array_equal(view[4, 6], CYAN)  # opaque, but marked
    np.testing.assert_array_equal(view[2, 2], RED)
    np.testing.assert_array_equal(view[0, 2], (1.0, 1.0, 1.0))  # semi, kept as genuine
    np.testing.assert_array_equal(alpha_bar_error_view(alpha, changed, None),
                                  alpha_bar_error_view(alpha, changed))


def test_panel_passes_uncertain_to_its_views(scene):
    rgb, alpha, changed, uncertain = scene
    refined = alpha.copy()
    refined[changed] = 1.0
    panel = error_panel(rgb, alpha, refined, changed, uncertain=uncertain, labels=False, gap=3)
    tiles = [panel[:, i * 11: i * 11 + 8] for i in range(4)]
    np.testing.assert_array_equal(tiles[1], alpha_bar_error_view(alpha, changed, uncertain))
    np.testing.assert_array_equal(tiles[2], error_map(rgb, alpha, changed, uncertain=uncertain))
    plain = error_panel(rgb, alpha, refined, changed, labels=False, gap=3)
    np.testing.assert_array_equal(panel[:, :8], plain[:, :8])  # raw composite unaffected
    np.testing.assert_array_equal(panel[:, 33:], plain[:, 33:])  # refined composite too


def _cyan_text_pixels(picture: np.ndarray) -> int:
    r, g, b = picture[..., 0], picture[..., 1], picture[..., 2]
    return int(np.count_nonzero((r < 0.25) & (g > 0.45) & (b > 0.6)))


def test_panel_titles_carry_the_uncertain_legend_in_cyan():
    assert PANEL_TITLES_WITH_UNCERTAIN[1].split("\n") == [PANEL_TITLES[1], UNCERTAIN_LEGEND]
    assert PANEL_TITLES_WITH_UNCERTAIN[2].split("\n") == [PANEL_TITLES[2], UNCERTAIN_LEGEND]
    assert PANEL_TITLES_WITH_UNCERTAIN[0] == PANEL_TITLES[0]
    assert PANEL_TITLES_WITH_UNCERTAIN[3] == PANEL_TITLES[3]
    rgb = np.full((160, 640, 3), 0.5, np.float32)
    alpha = np.ones((160, 640), np.float32)
    nothing = np.zeros((160, 640), bool)  # no marked pixels: only the letters can be cyan
    with_legend = error_panel(rgb, alpha, alpha, nothing, uncertain=nothing, labels=True, gap=0)
    without = error_panel(rgb, alpha, alpha, nothing, labels=True, gap=0)
    strips = [with_legend[:80, i * 640:(i + 1) * 640] for i in range(4)]
    cyan = [_cyan_text_pixels(strip) for strip in strips]
    assert cyan[1] > 20 and cyan[2] > 20 and cyan[0] == 0 and cyan[3] == 0
    assert _cyan_text_pixels(without) == 0
    # The red legend stays on the first line, the cyan one is written below it.
    rows = np.nonzero(np.any((strips[1][..., 0] < 0.25) & (strips[1][..., 2] > 0.6), axis=1))[0]
    red_rows = np.nonzero(np.any((strips[1][..., 0] > 0.6) & (strips[1][..., 1] < 0.25), axis=1))[0]
    assert red_rows.size and rows.min() > red_rows.max()


def test_demo_portraits_are_not_rejected_as_uncertain():
    from comfyui_ld_portrait.pipeline.synthetic import make_dataset

    limit = QualityThresholds().max_uncertain_fraction
    for portrait in make_dataset(3, 256):
        result = refine_alpha(portrait.alpha_artifacts)
        # 0.0005 at most on the demo portraits when the default was chosen.
        assert result.stats["uncertain_fraction"] < 0.2 * limit, portrait.seed

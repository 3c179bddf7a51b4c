"""The keyer judged against its targets: soft band first, against the plain colour-difference key,
on subjects shot on varied green and blue screens (benchmarks/fixtures/keying_benchmark.py).

The keyer's defaults were chosen on the calibration half; these tests score the evaluation
half. The synthetic tests always run; the real ground-truth tests need ``LDP_REAL_MATTES``
(a folder of <subject>/image.png + alpha.png, see docs/evaluation.md) and skip without it.
"""
import os

import numpy as np
import pytest

from comfyui_ld_portrait.matting.keying import (KeyParams, chroma_key, estimate_key_colour,
                                                estimate_screen_plate, screen_signal)

from fixtures import keying_benchmark as kb
from fixtures.real_mattes import ENV_VAR, find_real_mattes
from fixtures.synthetic_families.scoring import dim_band

METHODS = {"keyer": kb.keyer_method(), "plain": kb.plain_key}


def _scores(shots):
    return kb.evaluate(shots, METHODS)


def _check_keyer_targets(scores, whole_ratio):
    keyer, plain = scores["keyer"], scores["plain"]
    for ours, theirs in zip(keyer, plain):
        assert ours["band_sad"] <= theirs["band_sad"], ours["shot"]
    total, base = kb.totals(keyer), kb.totals(plain)
    assert total["band_sad"] < base["band_sad"]
    assert total["sad"] <= whole_ratio * base["sad"]
    # Green (or blue) excess on the subject at most half the input's; the colour of the
    # keyed foreground in the band closer to the truth than the plain key's plain despill.
    assert total["excess_ratio"] <= 0.5
    assert total["fg_error"] < base["fg_error"]
    # Clean background and body: what is left there is small next to the plain key's.
    assert total["background_sad"] < 0.2 * base["background_sad"] + 0.05
    assert total["body_sad"] < 0.5 * base["body_sad"] + 0.05


@pytest.fixture(scope="module")
def synthetic_evaluation():
    return kb.synthetic_shots("evaluation", 4, 256)


def test_synthetic_held_out_band_and_whole_image(synthetic_evaluation):
    shots = synthetic_evaluation
    assert {shot.kind for shot in shots} == {"green", "blue"}
    _check_keyer_targets(_scores(shots), whole_ratio=0.8)


def test_refined_plate_reads_the_screen_under_the_hair(synthetic_evaluation):
    # The first plate estimate also takes screen seen through hair (dimmer), so under the
    # hair it reads too dim; the refinement passes measure the screen only where it is clear.
    errors = {0: 0.0, 2: 0.0}
    for shot in synthetic_evaluation:
        key = np.asarray(estimate_key_colour(shot.image), np.float32)
        band = dim_band(shot.alpha_true)
        truth = screen_signal(shot.screen, key)[band]
        for passes in errors:
            plate = estimate_screen_plate(shot.image, key, passes=passes)
            errors[passes] += float(np.abs(screen_signal(plate, key)[band] - truth).mean())
    assert errors[2] < 0.8 * errors[0]


def test_noise_clip_cleans_a_dim_noisy_screen_and_keeps_the_body():
    rng = np.random.default_rng(3)
    height, width = 96, 128
    # The screen dims to 35% toward the right: the same sensor noise is a larger part of
    # the dim screen's signal, so a fixed clip black lets it through as faint grey.
    light = np.linspace(1.0, 0.35, width, dtype=np.float32)[None, :, None]
    screen = np.float32([0.1, 0.7, 0.2]) * light * np.ones((height, 1, 1), np.float32)
    alpha = np.zeros((height, width), np.float32)
    alpha[30:66, 40:88] = 1.0
    image = alpha[..., None] * np.float32([0.6, 0.4, 0.3]) + (1 - alpha[..., None]) * screen
    image = np.clip(image + rng.normal(0, 0.015, image.shape), 0, 1).astype(np.float32)
    background = alpha == 0
    fixed = chroma_key(image, KeyParams(noise_clip=0.0)).alpha
    aware = chroma_key(image, KeyParams()).alpha
    assert fixed[background].sum() > 50.0
    assert aware[background].sum() < 0.3 * fixed[background].sum()
    assert aware[alpha == 1].min() == 1.0


def test_plain_key_is_exact_on_a_gray_subject_over_an_even_screen():
    # d(F) = 0 for grey, so 1 - d(c) / d(key) is the alpha itself: the baseline is the plain
    # colour-difference key itself, not a weakened one.
    alpha = np.zeros((48, 64), np.float32)
    alpha[8:40, 8:56] = np.linspace(0, 1, 48, dtype=np.float32)  # the border stays screen
    screen = np.float32([0.1, 0.7, 0.2])
    image = alpha[..., None] * np.float32([0.5, 0.5, 0.5]) + (1 - alpha[..., None]) * screen
    keyed, foreground = kb.plain_key(image.astype(np.float32))
    assert np.abs(keyed - alpha).max() < 1e-4
    assert np.all(foreground[..., 1] <= np.maximum(foreground[..., 0], foreground[..., 2]) + 1e-6)


def test_shots_are_reproducible_and_halves_disjoint():
    names = ["d", "a", "c", "b", "e"]
    calibration = kb.split_subjects(names, "calibration")
    evaluation = kb.split_subjects(names, "evaluation")
    assert set(calibration).isdisjoint(evaluation)
    assert set(calibration) | set(evaluation) == set(names)
    first = kb.synthetic_shots("calibration", 2, 96)
    again = kb.synthetic_shots("calibration", 2, 96)
    assert [s.name for s in first] == [s.name for s in again]
    assert np.array_equal(first[0].image, again[0].image)
    held_out = kb.synthetic_shots("evaluation", 2, 96)
    assert not {s.name for s in first} & {s.name for s in held_out}
    with pytest.raises(ValueError, match="half"):
        kb.synthetic_shots("test", 1, 96)
    with pytest.raises(ValueError, match="green' or 'blue"):
        kb.make_screen(np.random.default_rng(0), (8, 8), "red")


def test_blue_screen_is_skipped_for_a_subject_wearing_blue():
    alpha = np.ones((16, 16), np.float32)
    blue_coat = np.broadcast_to(np.float32([0.1, 0.2, 0.6]), (16, 16, 3))
    assert kb.wears_key_colour(blue_coat, alpha, "blue")
    assert not kb.wears_key_colour(blue_coat, alpha, "green")


@pytest.mark.parametrize("field, value", [("plate_passes", -1), ("plate_erode", 2.5),
                                          ("plate_passes", True), ("noise_clip", -1.0)])
def test_bad_plate_and_noise_settings_are_refused(field, value):
    with pytest.raises(ValueError, match=field):
        KeyParams(**{field: value}).validate()


@pytest.fixture(scope="module")
def real_records():
    if not os.environ.get(ENV_VAR, "").strip():
        pytest.skip(f"{ENV_VAR} is not set: the real ground-truth mattes are not shipped; set it "
                    "to a folder of <subject>/image.png + alpha.png (docs/evaluation.md).")
    records = find_real_mattes(max_side=512)
    if len(records) < 2:
        pytest.skip(f"{ENV_VAR}={os.environ[ENV_VAR]} holds fewer than two subjects.")
    return records


def test_real_held_out_band_and_whole_image(real_records):
    shots = kb.real_shots(real_records, "evaluation")
    assert shots, "no evaluation shots from the real subjects"
    _check_keyer_targets(_scores(shots), whole_ratio=1.0)

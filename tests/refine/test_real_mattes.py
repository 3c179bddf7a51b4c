"""Real ground-truth person mattes (read at run time, never shipped) and the
Layer-Diffusion-like corruption put on top of them.

The loader and corruption tests build their own small PNGs; the benchmark-style test runs
only where ``LDP_REAL_MATTES`` names a folder of real mattes (docs/evaluation.md says how to
fill one) and skips with the reason otherwise.
"""
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from fixtures.real_mattes import (
    CORRUPTION_MARGIN, CORRUPTION_MODELS, ENV_VAR, RealMatte, corrupt_real, find_real_mattes, protected_band, real_portraits,
    real_scores)
from fixtures.synthetic_families import FamilyPortrait, yardstick_filter


def _subject_alpha(height: int, width: int) -> np.ndarray:
    """A head-and-shoulders matte leaving the bottom of the frame, a soft band around the head
    and a few soft strands: float 0..1."""
    alpha = np.zeros((height, width), np.float32)
    cv2.ellipse(alpha, (width // 2, height // 3), (width // 6, height // 5), 0, 0, 360, 1.0, -1)
    cv2.rectangle(alpha, (width // 5, height // 2), (4 * width // 5, height - 1), 1.0, -1)
    soft = cv2.GaussianBlur(alpha, (0, 0), 2.0)
    alpha = np.where(np.arange(height)[:, None] < height // 2, soft, alpha)  # hard edge lower down
    for k in range(5):
        x = width // 3 + k * width // 15
        cv2.line(alpha, (x, height // 8), (x - 10, 2), 0.4, 1, cv2.LINE_AA)
    return np.clip(alpha, 0.0, 1.0)


def _write_subject(root: Path, name: str, height: int = 160, width: int = 120, alpha=None,
                   image_ext: str = "png") -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    alpha = _subject_alpha(height, width) if alpha is None else alpha
    colour = np.zeros((alpha.shape[0], alpha.shape[1], 3), np.uint8)
    colour[..., 0] = 40
    colour[..., 2] = (alpha * 200).astype(np.uint8)  # BGR on disk: red where the subject is
    cv2.imwrite(str(folder / f"image.{image_ext}"), colour)
    cv2.imwrite(str(folder / "alpha.png"), np.round(alpha * 255).astype(np.uint8))
    return folder


def _record(height=200, width=160, name="subject") -> RealMatte:
    alpha = np.round(_subject_alpha(height, width) * 255) / 255
    rgb = np.dstack([alpha] * 3).astype(np.float32)
    return RealMatte(name, rgb, alpha.astype(np.float32))


# ------------------------------------------------------------------------------ loader

def test_loader_reads_subjects_sorted_and_converts_colour_and_levels(tmp_path):
    _write_subject(tmp_path, "b_second")
    _write_subject(tmp_path, "a_first", image_ext="jpg")
    (tmp_path / "notes").mkdir()  # a folder without either file is not a subject
    subjects = find_real_mattes(tmp_path)
    assert [s.name for s in subjects] == ["a_first", "b_second"]
    second = subjects[1]
    assert second.rgb.dtype == np.float32 and second.rgb.shape == (160, 120, 3)
    assert second.alpha_true.dtype == np.float32 and second.alpha_true.shape == (160, 120)
    # BGR on disk -> RGB in memory: the red channel carries the subject.
    inside = second.alpha_true > 0.99
    assert second.rgb[..., 0][inside].mean() > 0.7 > second.rgb[..., 2][inside].mean()
    expected = np.round(_subject_alpha(160, 120) * 255) / 255
    assert np.abs(second.alpha_true - expected).max() < 1e-6


def test_loader_shrinks_long_side_with_image_and_matte_alike(tmp_path):
    _write_subject(tmp_path, "tall", height=300, width=100)
    subject, = find_real_mattes(tmp_path, max_side=150)
    assert subject.alpha_true.shape == (150, 50) and subject.rgb.shape == (150, 50, 3)
    # Area interpolation keeps the mean coverage; 8-bit levels are kept.
    full = np.round(_subject_alpha(300, 100) * 255) / 255
    assert abs(subject.alpha_true.mean() - full.mean()) < 2e-3
    assert np.abs(subject.alpha_true * 255 - np.round(subject.alpha_true * 255)).max() < 1e-3


def test_missing_folder_or_unset_variable_gives_no_subjects(tmp_path, monkeypatch):
    assert find_real_mattes(tmp_path / "absent") == []
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert find_real_mattes() == []
    assert real_portraits() == []
    _write_subject(tmp_path, "one")
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert [s.name for s in find_real_mattes()] == ["one"]


def test_mismatched_sizes_raise_an_error_naming_the_file(tmp_path):
    folder = _write_subject(tmp_path, "wrong")
    cv2.imwrite(str(folder / "alpha.png"), np.zeros((100, 120), np.uint8))
    with pytest.raises(ValueError, match=r"wrong[/\\]alpha\.png.*120x100.*image\.png is 120x160"):
        find_real_mattes(tmp_path)


def test_half_a_subject_or_a_colour_matte_is_refused(tmp_path):
    folder = _write_subject(tmp_path, "half")
    (folder / "alpha.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"half.*alpha\.png"):
        find_real_mattes(tmp_path)
    colour = np.zeros((160, 120, 3), np.uint8)
    colour[..., 1] = 255
    cv2.imwrite(str(folder / "alpha.png"), colour)
    with pytest.raises(ValueError, match="greyscale"):
        find_real_mattes(tmp_path)


# -------------------------------------------------------------------------- corruption

@pytest.mark.parametrize("model", sorted(CORRUPTION_MODELS))
def test_corruption_leaves_the_soft_band_untouched_and_damages_the_rest(model):
    record = _record()
    portrait = corrupt_real(record, model, seed=3)
    assert isinstance(portrait, FamilyPortrait) and portrait.family == f"real_{model}"
    assert portrait.subject == "subject"
    # The true soft region itself is never touched; its 2-px DIM margin may be (speckle on the
    # outline, a glow rim), as Layer Diffusion's artifacts reach it.
    soft = protected_band(portrait.alpha_true, CORRUPTION_MARGIN)
    assert soft.sum() > 500  # the test matte does have a soft band to protect
    assert np.array_equal(portrait.alpha_raw[soft], portrait.alpha_true[soft])
    damaged = np.abs(portrait.alpha_raw - portrait.alpha_true) > 0.5 / 255
    assert damaged.sum() > 200
    # Damage only where the truth is exactly 0 or 1.
    truth = portrait.alpha_true
    assert np.all((truth[damaged] == 0) | (truth[damaged] == 1))
    assert set(portrait.artifacts) == set(CORRUPTION_MODELS[model])
    union = np.zeros_like(damaged)
    for mask in portrait.artifacts.values():
        union |= mask
    assert np.array_equal(union & damaged, damaged)
    # 8-bit levels, like a PNG.
    assert np.abs(portrait.alpha_raw * 255 - np.round(portrait.alpha_raw * 255)).max() < 1e-3


def test_corruption_values_follow_the_layer_diffusion_failure_ranges():
    record = _record(320, 240)
    portrait = corrupt_real(record, "all", seed=11)
    raw, truth, art = portrait.alpha_raw, portrait.alpha_true, portrait.artifacts
    opaque, empty = truth == 1, truth == 0
    background_gain = raw[empty & (raw > 0)]
    assert background_gain.size > 0 and background_gain.max() <= 0.3 + 1e-6  # debris, glow rim
    assert raw[art["pinholes"]].max() == 0.0  # pinholes are fully transparent
    assert art["pinholes"].any() and art["speckle"].any() and art["patches"].any()
    # Some speckle reaches the outline (within 2.5 px of a not-opaque pixel).
    depth = cv2.distanceTransform(opaque.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    assert (art["speckle"] & (depth <= 2.5)).any()
    # The glow rim is a halo beside the subject, not floating far away.
    outside = cv2.distanceTransform(empty.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    assert art["glow_rim"].any() and np.median(outside[art["glow_rim"]]) < 12
    # Banding: the interior damage sits on a few quantised plateaus, not a continuum.
    only_bands = corrupt_real(record, "banded_glow", seed=11)
    interior = only_bands.artifacts["banding"] & ~only_bands.artifacts["speckle"] & ~only_bands.artifacts["pinholes"]
    assert 1 <= np.unique(only_bands.alpha_raw[interior]).size <= 8
    # The subject crosses the bottom border: the frame fade can dim it there.
    assert art["frame_fade"].any() or corrupt_real(record, "all", seed=12).artifacts["frame_fade"].any()


def test_corruption_is_deterministic_per_seed_and_differs_between_seeds_and_models():
    record = _record()
    first = corrupt_real(record, "blotchy", seed=5)
    again = corrupt_real(record, "blotchy", seed=5)
    assert np.array_equal(first.alpha_raw, again.alpha_raw)
    assert not np.array_equal(first.alpha_raw, corrupt_real(record, "blotchy", seed=6).alpha_raw)
    assert not np.array_equal(first.alpha_raw, corrupt_real(record, "banded_glow", seed=5).alpha_raw)
    with pytest.raises(ValueError, match="unknown corruption model"):
        corrupt_real(record, "nope")


def test_real_portraits_pairs_every_subject_with_every_model_and_scores_them(tmp_path):
    _write_subject(tmp_path, "one")
    _write_subject(tmp_path, "two", height=140, width=140)
    portraits = real_portraits(tmp_path, models=("blotchy", "banded_glow"))
    assert [(p.subject, p.family) for p in portraits] == [
        ("one", "real_blotchy"), ("one", "real_banded_glow"), ("two", "real_blotchy"), ("two", "real_banded_glow")]
    rows = real_scores(portraits, {"raw": lambda alpha, rgb: alpha})
    # Damage lies outside the true soft region; only its 2-px DIM margin may be touched.
    assert all(row["sad"] > 0.0 and row["band_sad"] < 0.5 * row["sad"] for row in rows)
    with pytest.raises(ValueError, match="unknown corruption model"):
        real_portraits(tmp_path, models=("nope",))


# ----------------------------------------------------------------------------- benchmark

def _real_root():
    root = os.environ.get(ENV_VAR, "").strip()
    if not root:
        pytest.skip(f"{ENV_VAR} is not set: no real ground-truth mattes to measure on "
                    "(docs/evaluation.md, 'Real ground-truth mattes', says how to fetch them).")
    if not Path(root).is_dir():
        pytest.skip(f"{ENV_VAR}={root} is not a folder.")
    return root


def test_real_mattes_benchmark_raw_and_yardstick_per_image():
    root = _real_root()
    portraits = real_portraits(root)
    if not portraits:
        pytest.skip(f"{ENV_VAR}={root} holds no subject folders.")
    rows = real_scores(portraits, {"raw": lambda alpha, rgb: alpha,
                                   "yardstick": lambda alpha, rgb: yardstick_filter(alpha)})
    print(f"\n{'subject':28s} {'model':18s} {'method':10s} {'SAD':>8s} {'band SAD':>9s}")
    for row in rows:
        print(f"{row['subject']:28s} {row['family']:18s} {row['method']:10s} {row['sad']:8.3f} {row['band_sad']:9.3f}")
    raw = [row for row in rows if row["method"] == "raw"]
    # The corruption is real damage, mostly outside the band (only its 2-px margin is reachable).
    assert all(row["sad"] > 0.0 and row["band_sad"] < 0.5 * row["sad"] for row in raw)
    assert len({row["subject"] for row in raw}) == len(find_real_mattes(root))

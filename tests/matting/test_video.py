"""Video matting on a synthetic moving-portrait clip with known alpha and jittering masks."""
import numpy as np
import pytest

from scipy import ndimage

from comfyui_ld_portrait.matting.video import (VideoMatteParams, matte_video, stabilise_masks,
                                               video_trimaps)

from fixtures.matting_scenes import make_moving_clip


@pytest.fixture(scope="module")
def clip():
    return make_moving_clip(2, frames=24, size=96)


def _flicker_and_sad(result, clip):
    alpha = np.stack(result.alpha)
    truth = np.stack(clip.alphas)
    flicker = float(np.abs(np.diff(alpha, axis=0))[:, clip.static].mean())
    sad = float(np.abs(alpha - truth).sum(axis=(1, 2)).mean() / 1000.0)
    return flicker, sad


def test_stabilised_matting_halves_flicker_on_static_parts_without_losing_accuracy(clip):
    assert clip.static.sum() > 100 and len(clip.frames) >= 24
    independent = matte_video(clip.frames, clip.masks, VideoMatteParams(stabilise=False),
                              foreground=False)
    stable = matte_video(clip.frames, clip.masks, VideoMatteParams(), foreground=False)
    flicker_independent, sad_independent = _flicker_and_sad(independent, clip)
    flicker_stable, sad_stable = _flicker_and_sad(stable, clip)
    assert flicker_independent > 0.005  # the baseline really flickers
    assert flicker_stable <= 0.5 * flicker_independent
    assert sad_stable <= sad_independent


def test_the_trimap_band_flickers_less_on_static_parts(clip):
    region = ndimage.binary_dilation(clip.static, iterations=6)

    def changes(params):
        trimaps = np.stack(video_trimaps(clip.masks, clip.frames, params))
        return float((np.diff(trimaps, axis=0)[:, region] != 0).mean())

    raw = changes(VideoMatteParams(stabilise=False))
    assert raw > 0.05  # the masks really jitter
    assert changes(VideoMatteParams()) <= 0.5 * raw


def test_rgba_frames_come_out_with_alpha_last(clip):
    result = matte_video(clip.frames[:3], clip.masks[:3])
    assert len(result.rgba) == 3
    assert result.rgba[0].shape == clip.frames[0].shape[:2] + (4,)
    assert np.array_equal(result.rgba[1][..., 3], result.alpha[1])


def test_one_frame_mask_flicker_is_removed():
    base = np.zeros((40, 40), np.float32)
    base[10:30, 10:30] = 1.0
    masks = [base.copy() for _ in range(5)]
    masks[2][2:8, 2:8] = 1.0  # a blob in one frame only
    stable = stabilise_masks(masks, VideoMatteParams())
    assert not stable[2][2:8, 2:8].any()
    assert np.array_equal(stable[2], base > 0.5)


def test_frames_without_a_person_or_filled_by_one_have_defined_alpha():
    rng = np.random.default_rng(1)
    frames = [rng.random((32, 32, 3)).astype(np.float32) for _ in range(3)]
    empty = [np.zeros((32, 32), np.float32)] * 3
    full = [np.ones((32, 32), np.float32)] * 3
    assert all(np.all(a == 0) for a in matte_video(frames, empty, foreground=False).alpha)
    assert all(np.all(a == 1) for a in matte_video(frames, full, foreground=False).alpha)


def test_empty_clip_and_mismatched_counts_or_sizes_are_clear_errors():
    frame = np.zeros((16, 16, 3), np.float32)
    mask = np.zeros((16, 16), np.float32)
    with pytest.raises(ValueError, match="empty"):
        matte_video([], [])
    with pytest.raises(ValueError, match="2 frame\\(s\\) but 1 mask"):
        matte_video([frame, frame], [mask])
    with pytest.raises(ValueError, match="frame 1"):
        matte_video([frame, np.zeros((8, 16, 3), np.float32)], [mask, mask])


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="window"):
        VideoMatteParams(window=2).validate()
    with pytest.raises(ValueError, match="smoothing"):
        VideoMatteParams(smoothing=1.5).validate()

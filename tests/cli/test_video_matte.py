"""``ld-portrait video-matte FRAMES_DIR MASKS_DIR OUT_DIR`` end to end."""
import json

import numpy as np
import pytest

from comfyui_ld_portrait.dataset.imagefiles import read_rgba, write_png_atomic

from fixtures.matting_scenes import make_moving_clip
from helpers.cli_runs import run_cli


def _run(*argv):
    return run_cli(argv)


@pytest.fixture
def clip_dirs(tmp_path):
    clip = make_moving_clip(3, frames=4, size=48)
    for t, (frame, mask) in enumerate(zip(clip.frames, clip.masks)):
        write_png_atomic(tmp_path / "frames" / f"{t:04d}.png", frame)
        write_png_atomic(tmp_path / "masks" / f"{t:04d}.png", mask)
    return tmp_path, clip


def test_video_matte_writes_rgba_pngs_with_the_frames_names(clip_dirs):
    root, clip = clip_dirs
    code, out, err = _run("video-matte", str(root / "frames"), str(root / "masks"),
                          str(root / "out"), "--band", "3", "--json")
    assert code == 0, err
    assert json.loads(out)["written"] == 4
    assert "video-matte: " in err  # the progress bar's final line
    names = sorted(p.name for p in (root / "out").iterdir())
    assert names == ["0000.png", "0001.png", "0002.png", "0003.png"]
    _, alpha = read_rgba(root / "out" / "0002.png")
    assert np.abs(alpha - clip.alphas[2]).mean() < 0.05


def test_missing_and_extra_masks_are_named(clip_dirs):
    root, _ = clip_dirs
    (root / "masks" / "0001.png").unlink()
    write_png_atomic(root / "masks" / "9999.png", np.zeros((48, 48), np.float32))
    code, _, err = _run("video-matte", str(root / "frames"), str(root / "masks"), str(root / "out"))
    assert code == 2
    assert "0001.png" in err and "9999.png" in err
    assert not (root / "out").exists()


def test_mask_of_another_size_and_output_over_input_are_refused(clip_dirs):
    root, _ = clip_dirs
    write_png_atomic(root / "masks" / "0002.png", np.zeros((20, 48), np.float32))
    code, _, err = _run("video-matte", str(root / "frames"), str(root / "masks"), str(root / "out"))
    assert code == 2 and "0002.png" in err and "one size" in err
    code, _, err = _run("video-matte", str(root / "frames"), str(root / "masks"), str(root / "frames"))
    assert code == 2 and "overwrite" in err


def test_empty_frames_folder_is_a_clear_error(tmp_path):
    (tmp_path / "frames").mkdir()
    (tmp_path / "masks").mkdir()
    code, _, err = _run("video-matte", str(tmp_path / "frames"), str(tmp_path / "masks"),
                        str(tmp_path / "out"))
    assert code == 1 and "no PNG file" in err  # like refine on an empty folder
    assert not (tmp_path / "out").exists()

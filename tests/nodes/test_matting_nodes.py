"""Matting nodes as the host calls them (torch tensors in and out), without the host."""
import numpy as np
import pytest
import torch

from comfyui_ld_portrait.dataset.imagefiles import read_rgba, write_png_atomic
from comfyui_ld_portrait.nodes.matting import (LDPChromaKey, LDPLoadFrameFolder, LDPLoadMaskFolder,
                                               LDPSaveRGBASequence, LDPTrimapFromMask,
                                               LDPTrimapMatting, LDPVideoMatte)

from fixtures.matting_scenes import make_green_screen, make_moving_clip


def test_chroma_key_node_returns_foreground_alpha_preview_and_stats():
    scene = make_green_screen(3, 96)
    image = torch.from_numpy(np.stack([scene.image, scene.image]))
    fg, alpha, preview, stats = LDPChromaKey().key(image, "auto", 0.1, 0.88, 1.0, 0.0)
    assert fg.shape == (2, 96, 96, 3) and preview.shape == (2, 96, 96, 3)
    assert alpha.shape == (2, 96, 96) and alpha.dtype == torch.float32
    assert np.abs(alpha[0].numpy() - scene.alpha).mean() < 0.05
    assert '"key_source": "border"' in stats


def test_chroma_key_node_refuses_a_bad_key_colour():
    image = torch.zeros(1, 16, 16, 3)
    with pytest.raises(ValueError, match="not understood"):
        LDPChromaKey().key(image, "purple-ish", 0.1, 0.9, 1.0, 0.0)


def test_trimap_nodes_chain_into_an_alpha():
    clip = make_moving_clip(0, frames=1, size=64)
    (trimap,) = LDPTrimapFromMask().trimap(torch.from_numpy(clip.masks[0][None]), 3)
    assert set(np.unique(trimap.numpy())) <= {0.0, 0.5, 1.0}
    alpha, fg, rgba = LDPTrimapMatting().matte(torch.from_numpy(clip.frames[0][None]), trimap, "cf")
    assert alpha.shape == (1, 64, 64) and fg.shape == (1, 64, 64, 3) and rgba.shape == (1, 64, 64, 4)
    assert np.abs(alpha[0].numpy() - clip.alphas[0]).mean() < 0.05


def test_video_matte_node_checks_frame_and_mask_counts():
    frames = torch.rand(3, 24, 24, 3)
    masks = torch.zeros(2, 24, 24)
    with pytest.raises(ValueError, match="3 frame\\(s\\) but 2 mask"):
        LDPVideoMatte().matte(frames, masks, 4, 0.8, "cf")


def test_folders_load_matte_and_save_as_named_rgba_pngs(tmp_path, monkeypatch):
    clip = make_moving_clip(5, frames=3, size=48)
    (tmp_path / "frames").mkdir()
    (tmp_path / "masks").mkdir()
    for t, (frame, mask) in enumerate(zip(clip.frames, clip.masks)):
        write_png_atomic(tmp_path / "frames" / f"f{t:02d}.png", frame)
        write_png_atomic(tmp_path / "masks" / f"f{t:02d}.png", mask)
    frames, names, count = LDPLoadFrameFolder().load(str(tmp_path / "frames"), 0)
    assert count == 3 and names.splitlines() == ["f00.png", "f01.png", "f02.png"]
    (masks,) = LDPLoadMaskFolder().load(str(tmp_path / "masks"), names)
    rgba, alpha, fg, trimaps = LDPVideoMatte().matte(frames, masks, 3, 0.8, "cf")
    monkeypatch.setenv("LDP_OUTPUT_DIR", str(tmp_path))  # no host: the pack's output-folder rule
    result = LDPSaveRGBASequence().save(rgba, "out", names)
    folder = tmp_path / "out"
    assert result["result"] == (str(folder),)
    assert sorted(p.name for p in folder.iterdir()) == ["f00.png", "f01.png", "f02.png"]
    _, saved_alpha = read_rgba(folder / "f01.png")
    assert np.abs(saved_alpha - alpha[1].numpy()).max() <= 1 / 255 + 1e-6


def test_mask_folder_names_the_missing_mask(tmp_path):
    (tmp_path / "masks").mkdir()
    write_png_atomic(tmp_path / "masks" / "a.png", np.zeros((8, 8), np.float32))
    with pytest.raises(ValueError, match="b.png"):
        LDPLoadMaskFolder().load(str(tmp_path / "masks"), "a.png\nb.png")


def test_save_refuses_a_folder_name_that_leaves_the_output(tmp_path, monkeypatch):
    monkeypatch.setenv("LDP_OUTPUT_DIR", str(tmp_path))
    with pytest.raises(ValueError, match="escape"):
        LDPSaveRGBASequence().save(torch.zeros(1, 8, 8, 4), "../escape")

"""Reading samples back."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from comfyui_ld_portrait.dataset import DatasetError, DatasetWriter, load_sample
from helpers.dataset_samples import write_sample


def test_load_sample_reads_a_colour_alpha_file_as_luma_not_blue(tmp_path):
    writer = DatasetWriter(tmp_path)
    write_sample(writer, "a")
    stored = load_sample(tmp_path, "a").alpha
    height, width = stored.shape
    bgr = np.zeros((height, width, 3), np.uint8)
    bgr[..., 2] = 255  # a red picture: its blue channel is 0, its luma 0.299
    cv2.imwrite(str(tmp_path / "alpha/a.png"), bgr)
    assert np.allclose(load_sample(tmp_path, "a").alpha, 0.299, atol=1e-6)
    (tmp_path / "alpha/a.png").write_bytes(b"junk")
    with pytest.raises(DatasetError, match="not a readable PNG"):
        load_sample(tmp_path, "a")


@pytest.mark.parametrize("listed", ["../outside.png", "/tmp/elsewhere.png", 7])
def test_load_sample_refuses_meta_file_paths_outside_the_root(tmp_path, listed):
    # Review: load_sample joined the meta's "files" entries to the root unchecked, so an edited
    # meta made it read a picture outside the dataset (or a non-string gave a TypeError).
    import json

    root = tmp_path / "root"
    writer = DatasetWriter(root)
    write_sample(writer, "a")
    outside = tmp_path / "outside.png"
    cv2.imwrite(str(outside), np.full((4, 4), 255, np.uint8))
    meta_path = root / "meta/a.json"
    meta = json.loads(meta_path.read_text())
    meta["files"]["alpha"] = listed
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match="inside the dataset"):
        load_sample(root, "a")

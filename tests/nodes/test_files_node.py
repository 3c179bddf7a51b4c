"""LDPLoadRGBA refuses decompression bombs before decoding."""
from __future__ import annotations

import numpy as np
import pytest
from helpers.bombs import write_full_png_bomb, write_png_bomb

from comfyui_ld_portrait.dataset.imagefiles import ImageTooLargeError, write_png_atomic
from comfyui_ld_portrait.nodes.files import LDPLoadRGBA


def test_loader_refuses_bombs_by_name_and_still_loads_the_next_file(tmp_path, monkeypatch):
    write_png_bomb(tmp_path / "a_huge.png", 60000, 60000)
    write_full_png_bomb(tmp_path / "b_bomb.png", 9000, 9000)  # 81 MP, complete data
    write_png_atomic(tmp_path / "c_fine.png", np.full((4, 6, 4), 0.5, np.float32))
    node = LDPLoadRGBA()
    for index, name in ((0, "a_huge.png"), (1, "b_bomb.png")):
        with pytest.raises(ImageTooLargeError, match="megapixels") as caught:
            node.load(str(tmp_path), index)
        assert name in str(caught.value)
    image, alpha, _, name, count = node.load(str(tmp_path), 2)
    assert name == "c_fine.png" and count == 3 and tuple(image.shape) == (1, 4, 6, 3)
    # The host's environment sets the limit.
    monkeypatch.setenv("LDP_MAX_IMAGE_PIXELS", "20")
    with pytest.raises(ImageTooLargeError, match="6x4 = 24 pixels"):
        node.load(str(tmp_path), 2)


def test_description_tells_how_to_change_the_limits():
    assert "LDP_MAX_IMAGE_PIXELS" in LDPLoadRGBA.DESCRIPTION

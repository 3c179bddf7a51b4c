"""Checkerboard preview of decoded foreground and alpha."""
import pytest
import torch

from comfyui_ld_portrait.layerdiffusion.preview import checkerboard, checkerboard_preview


def test_checkerboard_cells_and_shades():
    board = checkerboard(130, 70)
    assert board.shape == (130, 70)
    assert board[0, 0] == pytest.approx(0.45) and board[63, 63] == pytest.approx(0.45)
    assert board[0, 64] == pytest.approx(0.55) and board[64, 0] == pytest.approx(0.55)
    assert board[64, 64] == pytest.approx(0.45) and board[128, 69] == pytest.approx(0.55)


def test_preview_composites_over_board():
    fg = torch.rand(2, 70, 90, 3)
    alpha = torch.zeros(2, 70, 90)
    alpha[:, :10] = 1.0
    alpha[:, 10:20] = 0.25
    out = checkerboard_preview(fg, alpha)
    board = checkerboard(70, 90)
    assert out.shape == (2, 70, 90, 3)
    assert torch.equal(out[:, :10], fg[:, :10])
    assert torch.allclose(out[:, 30:], board[None, 30:, :, None].expand(2, 40, 90, 3))
    assert torch.allclose(out[:, 10:20], fg[:, 10:20] * 0.25 + board[None, 10:20, :, None] * 0.75)
    with pytest.raises(ValueError, match=r"\[B, H, W\]"):
        checkerboard_preview(fg, alpha[0])
    with pytest.raises(ValueError, match=r"\[B, H, W, 3\]"):
        checkerboard_preview(fg.permute(0, 3, 1, 2), alpha)

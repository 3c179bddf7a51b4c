"""Checkerboard preview of a transparent result, as upstream shows it.

Upstream composites the foreground over a grey checkerboard of 64-pixel cells whose two shades
are 0.45 and 0.55 (``0.5 +- 0.05``). This works on ComfyUI's channel-last IMAGE layout.
"""
from __future__ import annotations

import torch

from ..base.errormap import checkerboard as _checkerboard_rgb

__all__ = ["checkerboard", "checkerboard_preview"]

CELL = 64
SHADES = (0.45, 0.55)


def checkerboard(
    height: int, width: int, *, cell: int = CELL, device=None, dtype=torch.float32
) -> torch.Tensor:
    """``[H, W]`` grey checkerboard: ``SHADES[0]`` where (row // cell + col // cell) is even
    (the pack's one checkerboard, :func:`..base.errormap.checkerboard`, in upstream's shades)."""
    board = _checkerboard_rgb(int(height), int(width), int(cell), shades=SHADES)[..., 0]
    return torch.from_numpy(board).to(device=device, dtype=dtype)


def checkerboard_preview(
    foreground: torch.Tensor, alpha: torch.Tensor, *, cell: int = CELL
) -> torch.Tensor:
    """Composite ``foreground`` over the checkerboard with ``alpha``.

    Parameters
    ----------
    foreground : torch.Tensor
        ``[B, H, W, 3]`` RGB in 0..1 (ComfyUI IMAGE layout).
    alpha : torch.Tensor
        ``[B, H, W]`` in 0..1, 1 = opaque.

    Returns
    -------
    torch.Tensor
        ``[B, H, W, 3]`` float32 in 0..1.
    """
    if foreground.ndim != 4 or foreground.shape[-1] != 3:
        raise ValueError(f"foreground must be [B, H, W, 3]; got {tuple(foreground.shape)}.")
    if alpha.shape != foreground.shape[:3]:
        raise ValueError(
            f"alpha must be [B, H, W] = {tuple(foreground.shape[:3])}; got {tuple(alpha.shape)}."
        )
    board = checkerboard(
        foreground.shape[1], foreground.shape[2], cell=cell, device=foreground.device
    )
    a = alpha.float()[..., None]
    return foreground.float() * a + board[None, :, :, None] * (1.0 - a)

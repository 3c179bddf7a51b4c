"""Helpers shared by the node modules: tensor <-> numpy conversion and host services (the node
declarations are in :mod:`._schema`).

ComfyUI passes IMAGE as float32 torch tensors ``[B, H, W, C]`` in 0..1 and MASK as float32
``[B, H, W]``. The library in ``refine/`` works on one numpy image at a time, so nodes split a
batch into numpy arrays, call the library per image and stack the results back.

Nothing here imports the host (``comfy``) or torch at module level: the pack must import
without the host and without paying for torch when only the library or CLI is used. The host
services the node modules use with these helpers (progress bar, interrupt) come from
:mod:`._host`, the one place that looks the host up, and are re-exported here.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ._host import Progress, check_interrupt

if TYPE_CHECKING:  # annotations only: numpy is imported where it is used, not at import
    import numpy as np

__all__ = [
    "each_in_batch",
    "image_list",
    "mask_list",
    "match_batch",
    "image_tensor",
    "mask_tensor",
    "Progress",
    "check_interrupt",
]


def _as_numpy(tensor) -> np.ndarray:
    """A torch tensor (any device, any float dtype) or array-like as a float32 numpy array."""
    import numpy as np  # here, not at import: the ld-portrait command starts without numpy

    if hasattr(tensor, "detach"):  # torch.Tensor without importing torch
        tensor = tensor.detach().to("cpu").float().numpy()
    return np.asarray(tensor, dtype=np.float32)


def image_list(image, name: str = "image", channels: int = 3) -> list[np.ndarray]:
    """IMAGE ``[B, H, W, C]`` (or ``[H, W, C]``) -> list of float32 ``[H, W, channels]``.

    Extra channels (an RGBA IMAGE) are dropped when ``channels`` is 3.
    """
    import numpy as np

    array = _as_numpy(image)
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or array.shape[-1] < channels:
        raise ValueError(
            f"{name} must be an IMAGE tensor [B, H, W, C] with at least {channels} channels; "
            f"got shape {tuple(array.shape)}.")
    return [np.ascontiguousarray(frame[..., :channels]) for frame in array]


def mask_list(mask, name: str = "alpha", invert: bool = False) -> list[np.ndarray]:
    """MASK ``[B, H, W]`` (or ``[H, W]`` / ``[B, H, W, 1]``) -> list of float32 ``[H, W]``.

    With ``invert`` the values become ``1 - mask`` (core's LoadImage MASK is 1 - alpha).
    """
    import numpy as np

    array = _as_numpy(mask)
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise ValueError(f"{name} must be a MASK tensor [B, H, W]; got shape {tuple(array.shape)}.")
    if invert:
        array = 1.0 - array
    return [np.ascontiguousarray(frame) for frame in array]


def match_batch(*lists, names) -> list[list]:
    """Broadcast batch lists of length 1 to the longest one; other length mismatches fail.

    ``None`` entries (unconnected optional inputs) stay ``None``.
    """
    sizes = {len(items) for items in lists if items is not None}
    size = max(sizes) if sizes else 0
    out = []
    for items, name in zip(lists, names):
        if items is None:
            out.append(None)
        elif len(items) == size:
            out.append(items)
        elif len(items) == 1:
            out.append(items * size)
        else:
            raise ValueError(
                f"{name} has a batch of {len(items)} but another input has {size}; connect "
                "batches of the same size (or a single image/mask, which is reused).")
    return out


def _stacked_tensor(frames: list[np.ndarray]):
    """Stack equally shaped arrays into one float32 torch tensor with a leading batch axis."""
    import numpy as np
    import torch

    return torch.from_numpy(np.ascontiguousarray(np.stack(frames).astype(np.float32, copy=False)))


def image_tensor(frames: list[np.ndarray]):
    """List of ``[H, W, C]`` arrays -> IMAGE float32 tensor ``[B, H, W, C]``."""
    return _stacked_tensor(frames)


def mask_tensor(frames: list[np.ndarray]):
    """List of ``[H, W]`` arrays (float or bool) -> MASK float32 tensor ``[B, H, W]``."""
    return _stacked_tensor(frames)


def each_in_batch(items):
    """Yield every item of a batch (a sequence), checking the host's Cancel before each and
    advancing its progress bar after each."""
    progress = Progress(len(items))
    for item in items:
        check_interrupt()
        yield item
        progress.update()

"""Checks on images a host run saved (8-bit round trips)."""
from __future__ import annotations

import numpy as np


def saved_8bit(value: np.ndarray) -> np.ndarray:
    """What core SaveImage writes for float values in 0..1."""
    return np.clip(255.0 * value, 0, 255).astype(np.uint8)


def read_rgb(path) -> np.ndarray:
    import cv2

    picture = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert picture is not None, f"{path} does not decode as an image"
    assert picture.ndim == 3 and picture.shape[2] == 3, (path, picture.shape)
    return picture[..., ::-1]


def assert_within_one_step(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape}, expected {expected.shape}"
    diff = np.abs(actual.astype(np.int16) - expected.astype(np.int16))
    assert diff.max() <= 1, (f"{what}: {int((diff > 1).sum())} values differ by more than one "
                             f"step (max {int(diff.max())})")

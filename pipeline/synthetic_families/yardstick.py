"""The yardstick: the plain connectivity filter of issue 9, the baseline refine_alpha must beat.

Implemented exactly as the issue specifies it (five steps, OpenCV):

1. true background = alpha <= 1/255 in 8-connected components that touch the image border,
   plus enclosed ones of at least 0.1% of the image;
2. 8-connected components of alpha < 0.97 that touch the true background are the
   transition region;
3. every other non-background pixel becomes 1, except pixels >= 0.97 within 2 px of the
   transition region, which keep their value; the true background becomes 0;
4. components of alpha > 1/255 smaller than 1% of the largest are removed (debris);
5. pixels >= 0.8 farther than 4 px from the background become 1.
"""
from __future__ import annotations

import cv2
import numpy as np

__all__ = ["yardstick_filter"]

_LOW = 1.0 / 255.0


def _components(mask: np.ndarray):
    """8-connected components: (count, int32 labels, area per label)."""
    count, labels = cv2.connectedComponents(mask.view(np.uint8), connectivity=8, ltype=cv2.CV_32S)
    return count, labels, np.bincount(labels.ravel(), minlength=count)


def _border_labels(labels: np.ndarray) -> np.ndarray:
    edges = np.concatenate((labels[0], labels[-1], labels[:, 0], labels[:, -1]))
    return np.unique(edges[edges > 0])


def yardstick_filter(alpha: np.ndarray) -> np.ndarray:
    """The five-step filter above.

    Parameters
    ----------
    alpha : float32 ndarray [H, W], 0..1

    Returns
    -------
    float32 ndarray [H, W], 0..1
    """
    alpha = np.ascontiguousarray(alpha, np.float32)
    height, width = alpha.shape
    # 1. True background.
    count, labels, areas = _components(alpha <= _LOW)
    keep = areas >= 0.001 * height * width
    keep[_border_labels(labels)] = True
    keep[0] = False
    background = keep[labels]
    # 2. Transition region: components of alpha < 0.97 touching the true background.
    count, labels, _ = _components(alpha < 0.97)
    touching = np.bincount(labels[background], minlength=count) > 0
    touching[0] = False
    transition = touching[labels] & ~background
    # 3. Everything else becomes 1, except near-opaque pixels within 2 px of the transition.
    near_transition = cv2.distanceTransform((~transition).view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_5) <= 2
    out = alpha.copy()
    other = ~background & ~transition & ~(near_transition & (alpha >= 0.97))
    out[other] = 1.0
    out[background] = 0.0
    # 4. Debris: components of alpha > 1/255 smaller than 1% of the largest.
    count, labels, areas = _components(out > _LOW)
    if count > 1:
        small = areas < 0.01 * areas[1:].max()
        small[0] = False
        out[small[labels]] = 0.0
    # 5. Near-opaque pixels farther than 4 px from the background become 1.
    distance = cv2.distanceTransform((~background).view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_5)
    out[(out >= 0.8) & (distance > 4)] = 1.0
    return out

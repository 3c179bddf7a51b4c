"""A portrait whose matte refinement cannot judge (the uncertain outcome), for the tests
of everything downstream of refinement: gate, error map, nodes, pipeline."""
import cv2
import numpy as np

SIZE = 256


def veiled_bust(veil: float | None = 0.65, size: int = SIZE) -> np.ndarray:
    """A soft-edged head and shoulders leaving the frame at the bottom, float32 [size, size]
    with 8-bit levels; with ``veil``, a flat translucent veil of that alpha around the head,
    wide and reaching the background: a veil or a dimming blotch, refinement cannot tell, so
    it keeps it as decoded and marks it uncertain (about 18% of the portrait at 0.65)."""
    scale = size / SIZE
    mask = np.zeros((size, size), np.uint8)
    cv2.circle(mask, (size // 2, int(80 * scale)), int(38 * scale), 1, -1)
    cv2.rectangle(mask, (int(112 * scale), int(100 * scale)), (int(144 * scale), int(190 * scale)), 1, -1)
    cv2.ellipse(mask, (size // 2, size + int(30 * scale)), (int(85 * scale), int(110 * scale)), 0, 0, 360, 1, -1)
    alpha = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 1.2)
    if veil is not None:
        region = np.zeros((size, size), np.uint8)
        cv2.ellipse(region, (size // 2, int(80 * scale)), (int(70 * scale), int(60 * scale)), 0, 0, 360, 1, -1)
        alpha = np.maximum(alpha, cv2.GaussianBlur(region.astype(np.float32), (0, 0), 1.2) * veil)
    return (np.round(alpha * 255) / 255).astype(np.float32)

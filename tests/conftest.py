import os
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _shared_data_dir() -> Path:
    env = os.environ.get("LDP_SHARED_DATA")
    if env:
        return Path(env)
    return REPO_ROOT.parent / "shared" / "data" / "layerdiffuse"


@pytest.fixture(scope="session")
def layerdiffuse_dir() -> Path:
    path = _shared_data_dir()
    if not (path / "i2i_0_transparent.png").is_file():
        raise FileNotFoundError(
            f"Real Layer Diffusion test images not found in {path}; put the project's shared/ "
            "folder beside the checkout or set LDP_SHARED_DATA."
        )
    return path


def read_rgba_unit(path: Path):
    """Test helper: (rgb float32 [H,W,3], alpha float32 [H,W]) from an RGBA PNG."""
    import cv2

    bgra = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert bgra is not None and bgra.ndim == 3 and bgra.shape[2] == 4, path
    rgb = bgra[..., 2::-1].astype(np.float32) / 255.0
    alpha = bgra[..., 3].astype(np.float32) / 255.0
    return np.ascontiguousarray(rgb), np.ascontiguousarray(alpha)

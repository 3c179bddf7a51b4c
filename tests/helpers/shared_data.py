"""Where the project's real Layer Diffusion test images are: ``$LDP_SHARED_DATA`` if set, else
``shared/data/layerdiffuse`` beside the checkout. Used by tests/conftest.py and the benchmarks
(which put ``tests/`` on ``sys.path``, see benchmarks/benchtools.py)."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA_ENV = "LDP_SHARED_DATA"


def shared_data_dir() -> Path:
    """The folder holding ``i2i_0_transparent.png`` and the other real RGBA samples."""
    env = os.environ.get(SHARED_DATA_ENV)
    if env:
        return Path(env)
    return REPO_ROOT.parent / "shared" / "data" / "layerdiffuse"

from pathlib import Path

import pytest
from helpers.shared_data import shared_data_dir


@pytest.fixture(scope="session")
def layerdiffuse_dir() -> Path:
    path = shared_data_dir()
    if not (path / "i2i_0_transparent.png").is_file():
        raise FileNotFoundError(
            f"Real Layer Diffusion test images not found in {path}; put the project's shared/ "
            "folder beside the checkout or set LDP_SHARED_DATA."
        )
    return path


@pytest.fixture(scope="module")
def single_torch_thread():
    """One torch thread for a test module: on the shared 2-core machine two OpenMP threads were
    measured up to 10x slower from oversubscription."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)

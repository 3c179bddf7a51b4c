import pytest


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread_per_module(single_torch_thread):
    """Every module here runs torch on one thread (see ``single_torch_thread`` in tests/conftest.py)."""

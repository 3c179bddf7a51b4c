"""Fixtures shared by the dataset tests."""
import pytest

from helpers.dataset_samples import make_stats_dataset


@pytest.fixture()
def root(tmp_path):
    """A small dataset with attributes, rejects, an interrupted write and an unreadable meta."""
    return make_stats_dataset(tmp_path / "ds")

"""Fixtures of the queue tests: fake ComfyUI servers writing into one output folder."""
from __future__ import annotations

import pytest

from helpers.fake_comfy_server import FakeComfyServer
from helpers.queue_runs import DATASET


@pytest.fixture
def output_dir(tmp_path):
    return tmp_path / "output"


@pytest.fixture
def root(output_dir):
    return output_dir / DATASET


@pytest.fixture
def fake(output_dir):
    server = FakeComfyServer(output_dir, exec_delay=0.03).start()
    yield server
    server.stop()


@pytest.fixture
def fake2(output_dir):
    server = FakeComfyServer(output_dir, exec_delay=0.03).start()
    yield server
    server.stop()

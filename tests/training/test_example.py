"""tools/train_tiny_matting.py trains on a dataset written by `ld-portrait demo`: the loss
falls and the held-out SAD is printed."""
from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import numpy as np
import pytest

from comfyui_ld_portrait.cli.app import main as cli_main

EXAMPLE = Path(__file__).resolve().parents[2] / "tools" / "train_tiny_matting.py"


@pytest.fixture(scope="module")
def demo_dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    code = cli_main(["demo", str(out), "--count", "6", "--size", "64", "--gate", "min_side=64"],
                    stdout=io.StringIO(), stderr=io.StringIO())
    assert code == 0
    return out / "dataset"


def _example():
    spec = importlib.util.spec_from_file_location("train_tiny_matting", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_loss_falls_and_prints_held_out_sad(demo_dataset):
    example = _example()
    out = io.StringIO()
    argv = [str(demo_dataset), "--steps", "30", "--size", "32", "--crop", "48", "--batch", "4",
            "--seed", "0", "--log-every", "10"]
    result = example.main(argv, stdout=out)
    losses = result["losses"]
    assert len(losses) == 30 and all(np.isfinite(losses))
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    text = out.getvalue()
    assert "held-out SAD" in text and "step   30" in text
    assert np.isfinite(result["sad_after"]) and result["sad_after"] >= 0
    # Same seed, same run.
    again = example.main(argv, stdout=io.StringIO())
    assert again["losses"] == pytest.approx(losses, rel=1e-4)


def test_example_explains_a_folder_that_is_not_a_dataset(tmp_path):
    with pytest.raises(ValueError, match="not an ld-portrait dataset"):
        _example().main([str(tmp_path), "--steps", "1"], stdout=io.StringIO())

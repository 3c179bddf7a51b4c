"""training/torch_dataset.py: shapes, ranges, the compositing equation, crops centred on the
soft region, determinism across DataLoader workers, validation mode, bad input."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from comfyui_ld_portrait.dataset import DatasetWriter
from comfyui_ld_portrait.training.torch_dataset import (AugmentOptions, MattingDataset,
                                                        list_training_ids, seed_worker,
                                                        split_ids)

KEYS = {"image": 3, "alpha": 1, "trimap": 1, "fg": 3, "bg": 3}


def _soft_disc(height, width, center, radius, fade, seed):
    """RGB noise and an alpha disc with a linear fade of ``fade`` px (written independently of
    the code under test: plain distance arithmetic)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    distance = np.hypot(y - center[0], x - center[1])
    alpha = np.clip((radius + fade - distance) / fade, 0.0, 1.0).astype(np.float32)
    fg = rng.uniform(0.0, 1.0, (height, width, 3)).astype(np.float32)
    return fg, alpha


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("train") / "dataset"
    writer = DatasetWriter(root, durable=False)
    # A small image (under the crop of 48), odd sizes, and a big one whose soft ring is a
    # small part of the picture (for the crop-centring test).
    for number, (sample_id, shape, center, radius) in enumerate([
            ("small", (20, 31), (10, 15), 6),
            ("odd", (57, 43), (28, 21), 14),
            ("big", (160, 150), (120, 30), 10),
            ("square", (64, 64), (32, 32), 20)]):
        fg, alpha = _soft_disc(*shape, center, radius, 4, number)
        writer.write_sample(sample_id, fg, alpha)
    return root


def _check_item(item, size):
    for key, channels in KEYS.items():
        tensor = item[key]
        assert tensor.dtype == torch.float32, key
        assert tuple(tensor.shape) == (channels, size, size), key
        assert float(tensor.min()) >= 0.0 and float(tensor.max()) <= 1.0, key
    assert set(torch.unique(item["trimap"]).tolist()) <= {0.0, 0.5, 1.0}
    composite = item["fg"] * item["alpha"] + item["bg"] * (1 - item["alpha"])
    assert torch.allclose(item["image"], composite, atol=1e-6)
    soft = (item["alpha"] > 1 / 255) & (item["alpha"] < 1 - 1 / 255)
    assert (item["trimap"][soft] == 0.5).all()  # every soft pixel is unknown
    assert (item["trimap"][item["alpha"] == 0] != 1.0).all()
    assert (item["trimap"][item["alpha"] == 1] != 0.0).all()


@pytest.mark.parametrize("size", [33, 48])
def test_items_have_documented_shapes_and_ranges(root, size):
    dataset = MattingDataset(root, options=AugmentOptions(size=size, crop=48), seed=3)
    assert len(dataset) == 4
    for index in range(len(dataset)):
        item = dataset[index]
        _check_item(item, size)
        assert item["index"] == index


def test_deterministic_per_seed_epoch_and_index(root):
    options = AugmentOptions(size=24, crop=40)
    first = MattingDataset(root, options=options, seed=5)
    again = MattingDataset(root, options=options, seed=5)
    for index in range(len(first)):
        a, b = first[index], again[index]
        for key in KEYS:
            assert torch.equal(a[key], b[key]), key
    again.set_epoch(1)
    assert not torch.equal(first[1]["image"], again[1]["image"])


def test_dataloader_with_two_workers_matches_single_process(root):
    dataset = MattingDataset(root, options=AugmentOptions(size=24, crop=40), seed=1)
    batches = {}
    for workers in (0, 2):
        # spawn: a fork of this threaded test process can inherit a held lock and hang
        loader = torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=workers,
                                             worker_init_fn=seed_worker if workers else None,
                                             multiprocessing_context="spawn" if workers else None,
                                             timeout=300 if workers else 0)
        batches[workers] = list(loader)
    assert len(batches[2]) == 2
    for single, parallel in zip(batches[0], batches[2]):
        assert tuple(parallel["image"].shape) == (2, 3, 24, 24)
        for key in KEYS:
            assert torch.equal(single[key], parallel[key]), key


def test_crops_are_centered_on_the_soft_region(root):
    options = AugmentOptions(size=32, crop=40, unknown_center_probability=1.0)
    dataset = MattingDataset(root, ["big"], options=options, seed=0)
    for epoch in range(6):
        dataset.set_epoch(epoch)
        alpha = dataset[0]["alpha"]
        soft = ((alpha > 0.02) & (alpha < 0.98)).float().mean()
        assert soft > 0.02, epoch  # random 40 px crops of the 160x150 image mostly miss it
    # Uniform crops miss the small ring of "big" in some epochs.
    uniform = MattingDataset(root, ["big"], options=AugmentOptions(
        size=32, crop=40, unknown_center_probability=0.0), seed=0)
    misses = 0
    for epoch in range(12):
        uniform.set_epoch(epoch)
        alpha = uniform[0]["alpha"]
        misses += int(((alpha > 0.02) & (alpha < 0.98)).sum() == 0)
    assert misses > 0


def test_validation_items_are_the_whole_image_unaugmented(root):
    options = AugmentOptions(size=32, crop=16)
    dataset = MattingDataset(root, ["square"], options=options, seed=2, augment=False)
    item = dataset[0]
    _check_item(item, 32)
    from comfyui_ld_portrait.dataset import load_sample

    sample = load_sample(root, "square")
    # 64 -> 32: each output pixel is the mean of a 2x2 block (independent of OpenCV).
    blocks = sample.alpha.reshape(32, 2, 32, 2).mean(axis=(1, 3))
    assert np.allclose(item["alpha"][0].numpy(), blocks, atol=1e-5)
    fg_blocks = sample.fg.reshape(32, 2, 32, 2, 3).mean(axis=(1, 3))
    assert np.allclose(item["fg"].permute(1, 2, 0).numpy(), fg_blocks, atol=1e-5)
    dataset.set_epoch(4)
    assert torch.equal(dataset[0]["image"], item["image"])


def test_split_and_ids(root):
    ids = list_training_ids(root)
    assert ids == ["big", "odd", "small", "square"]
    train, held = split_ids(ids, 0.25, seed=0)
    assert len(held) == 1 and sorted(train + held) == ids
    assert split_ids(ids, 0.25, seed=0) == (train, held)


def test_bad_input(tmp_path, root):
    with pytest.raises(ValueError, match="not an ld-portrait dataset"):
        MattingDataset(tmp_path)
    (tmp_path / "meta").mkdir()
    with pytest.raises(ValueError, match="no samples to train on"):
        list_training_ids(tmp_path)
    with pytest.raises(ValueError, match="size must be"):
        AugmentOptions(size=4)
    with pytest.raises(ValueError, match="hue"):
        AugmentOptions(hue=0.9)
    with pytest.raises(ValueError, match="holdout"):
        split_ids(["a", "b"], 1.0)
    with pytest.raises(IndexError):
        MattingDataset(root)[10]

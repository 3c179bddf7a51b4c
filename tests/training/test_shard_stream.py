"""training/shard_stream.py: streaming the webdataset export in a DataLoader."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from comfyui_ld_portrait.dataset import load_sample
from comfyui_ld_portrait.dataset.export import plan_split
from comfyui_ld_portrait.dataset.export_shards import ShardOptions, export_shards
from comfyui_ld_portrait.training.shard_stream import (ShardStream, decode_sample,
                                                       shard_urls)
from comfyui_ld_portrait.training.torch_dataset import AugmentOptions, make_item
from helpers.shard_samples import make_shard_dataset

OPTIONS = AugmentOptions(size=16, crop=24)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("stream")
    root = make_shard_dataset(base / "dataset", 200)
    export_shards(root, base / "export", ShardOptions("webdataset", shard_mb=0.2))
    return root, base / "export"


def _ids(root: Path) -> list:
    return sorted(p.stem for p in (root / "meta").glob("*.json"))


def test_two_workers_stream_each_training_sample_once_per_epoch(exported):
    root, export = exported
    urls = shard_urls(export, "train")
    assert len(urls) >= 4  # enough shards for both workers
    stream = ShardStream(urls, options=OPTIONS, seed=3)
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=2)
    train, _ = plan_split(_ids(root), 0.9, 0)
    by_epoch = []
    for epoch in range(2):
        stream.set_epoch(epoch)
        items = {}
        for item in loader:
            assert item["id"] not in items  # once per epoch
            items[item["id"]] = item
        assert sorted(items) == sorted(train)
        by_epoch.append(items)
    sample_id = train[0]
    # Augmentation draws follow the epoch, not the worker
    assert not torch.equal(by_epoch[0][sample_id]["image"], by_epoch[1][sample_id]["image"])
    stream.set_epoch(1)
    alone = {item["id"]: item for item in stream}  # in this process, no workers
    for key in ("image", "alpha", "trimap", "fg", "bg"):
        assert torch.equal(alone[sample_id][key], by_epoch[1][sample_id][key])


def test_streamed_arrays_equal_the_folder_reader_and_items_its_augmentations(exported):
    import webdataset as wds

    root, export = exported
    stream = ShardStream(shard_urls(export, "validation"), options=OPTIONS, seed=5)
    checked = 0
    for raw in wds.WebDataset(shard_urls(export, "validation"), shardshuffle=False):
        sample_id, fg, alpha, meta = decode_sample(raw)
        folder = load_sample(root, sample_id)
        assert meta["id"] == sample_id
        np.testing.assert_array_equal(fg, folder.fg)  # float32, bit for bit
        np.testing.assert_array_equal(alpha, folder.alpha)
        checked += 1
    assert checked == 20
    for item in stream:  # the folder reader's augmentations with the stream's draws
        folder = load_sample(root, item["id"])
        expected = make_item(folder.fg, folder.alpha, stream._rng(item["id"]), 0,
                             options=OPTIONS, augment=True)
        for key in ("image", "alpha", "trimap", "fg", "bg"):
            assert torch.equal(item[key], expected[key]), (item["id"], key)


def test_validation_stream_is_the_same_every_epoch(exported):
    _, export = exported
    stream = ShardStream(shard_urls(export, "validation"), options=OPTIONS, augment=False)
    first = [item["image"] for item in stream]
    stream.set_epoch(4)
    assert all(torch.equal(a, b["image"]) for a, b in zip(first, stream))


def test_shuffled_shards_change_order_not_content(exported):
    _, export = exported
    urls = shard_urls(export, "train")
    plain = [item["id"] for item in ShardStream(urls, options=OPTIONS)]
    shuffled = ShardStream(urls, options=OPTIONS, shuffle_shards=True)
    orders = []
    for epoch in range(3):
        shuffled.set_epoch(epoch)
        orders.append([item["id"] for item in shuffled])
        assert sorted(orders[-1]) == sorted(plain)
    assert any(order != plain for order in orders)


def test_errors_name_the_fix(tmp_path, monkeypatch, exported):
    with pytest.raises(ValueError, match="--layout webdataset"):
        shard_urls(tmp_path, "train")
    _, export = exported
    monkeypatch.setitem(sys.modules, "webdataset", None)
    with pytest.raises(ImportError, match="pip install webdataset"):
        ShardStream(shard_urls(export, "train"))
